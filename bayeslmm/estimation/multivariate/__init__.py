"""Multi-trait (RE)ML in the eigenbasis of K (issue 12, point 2; DESIGN §1).

Y = XB + U + E with vec(U) ~ N(0, Σg ⊗ K) and vec(E) ~ N(0, Σe ⊗ I) for T ≥ 2 traits measured
on the same samples. In the eigenbasis of K the rotated rows are independent T-variate normals
with covariance sᵢΣg + Σe (Σe alone on the null space of K); one change of basis of the trait
space that diagonalizes Σg and Σe together (as GEMMA's mvLMM) turns them into T independent
univariate problems, so the (restricted) log-likelihood and its gradient cost O(r·T·d² + T³).

The package, one concern a module: :mod:`~bayeslmm.estimation.multivariate.parameters`
(Cholesky and vech coordinates of (Σg, Σe), h², correlations, the boundary),
:mod:`~bayeslmm.estimation.multivariate.rotation` (the rotated traits and the likelihood),
:mod:`~bayeslmm.estimation.multivariate.optimization` (the maximum and the observed information),
:mod:`~bayeslmm.estimation.multivariate.uncertainty` (the standard errors and profile intervals)
and :mod:`~bayeslmm.estimation.multivariate.fit` (:class:`MultiRemlFit`,
:func:`reml_multivariate`).
"""

from __future__ import annotations

from bayeslmm.estimation.multivariate.fit import (
    MultiRemlFit,
    check_traits,
    reml_multivariate,
    trait_table,
)
from bayeslmm.estimation.multivariate.optimization import (
    GRADIENT_TOLERANCE,
    HESSIAN_STEP,
    Optimum,
    absorbed,
    hessian,
    maximize,
    ranged,
)
from bayeslmm.estimation.multivariate.parameters import (
    BOUNDARY,
    boundary_terms,
    cholesky_gradient,
    correlation,
    from_cholesky,
    heritability,
    lower_triangle,
    on_boundary,
    to_cholesky,
    unvech,
    vech,
    vech_gradient,
)
from bayeslmm.estimation.multivariate.rotation import (
    Evaluation,
    RotatedTraits,
    evaluate,
    rotate_traits,
)
from bayeslmm.estimation.multivariate.uncertainty import (
    H2_MAX,
    PROFILE_XTOL,
    SE_INFORMATION,
    SE_PROFILE,
    ProfileMap,
    Uncertainty,
    information_uncertainty,
    profile_uncertainty,
)

__all__ = [
    "BOUNDARY",
    "Evaluation",
    "GRADIENT_TOLERANCE",
    "H2_MAX",
    "HESSIAN_STEP",
    "MultiRemlFit",
    "Optimum",
    "PROFILE_XTOL",
    "ProfileMap",
    "RotatedTraits",
    "SE_INFORMATION",
    "SE_PROFILE",
    "Uncertainty",
    "absorbed",
    "boundary_terms",
    "check_traits",
    "cholesky_gradient",
    "correlation",
    "evaluate",
    "from_cholesky",
    "heritability",
    "hessian",
    "information_uncertainty",
    "lower_triangle",
    "maximize",
    "on_boundary",
    "profile_uncertainty",
    "ranged",
    "reml_multivariate",
    "rotate_traits",
    "to_cholesky",
    "trait_table",
    "unvech",
    "vech",
    "vech_gradient",
]
