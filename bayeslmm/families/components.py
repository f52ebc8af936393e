"""Several variance components: y = Xβ + Σ_k u_k + ε, u_k ~ N(0, σk² Kk), ε ~ N(0, σe² I).

V = Σ_k σk² Kk + σe² I has no common eigenbasis (DESIGN §1). The model keeps every component
but one latent, non-centred in its own eigenbasis, and marginalizes the remaining one (the one
of largest rank) in its eigenbasis, so one evaluation of the log-density costs
O(r_m · r_l + (d + r_l)²) — r_m the rank of the marginalized K, r_l the summed ranks of the
latent ones — never a dense N×N solve. The sample-space LOO terms and the random effects are
computed afterwards from the posterior draws (:func:`loo_components`, :func:`draw_components`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import linalg

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.constants import LOG_2PI
from bayeslmm.data.inputs import components_inputs
from bayeslmm.errors import InputError
from bayeslmm.families.base import Family, ModelInfo, register_model
from bayeslmm.families.priors import (
    POSITIVE,
    REAL,
    SIMPLEX,
    Parameter,
    Prior,
    PriorLike,
    add_prior,
    choose_parametrization,
    default_priors,
    resolve,
)
from bayeslmm.inference.effects import draw_u, flat_draws, store_effects
from bayeslmm.linalg.spectral import Rotated, Spectral

#: Names that exist only in the variance parametrization of the several-component model.
VARIANCE_NAMES = ("sigma_g2_component", "sigma_e2")


# --------------------------------------------------------------------------------------------
# Priors
# --------------------------------------------------------------------------------------------


def component_parameters(
    parametrization: str, y: np.ndarray, X: np.ndarray, n_components: int
) -> dict[str, Parameter]:
    """The parameter table of the several-component model, defaults scaled by the data.

    Parameters
    ----------
    parametrization : {"h2", "variance"}
    y, X
        Aligned phenotype and covariates (the defaults scale with them).
    n_components
        Number of kinships k.

    Returns
    -------
    dict
        ``"h2"``: ``beta`` (as in the one-K model), ``sigma_p`` ~ HalfStudentT(3, sd(y)) and
        ``shares`` ~ Dirichlet(1, ..., 1) on the simplex of k + 1 entries (the k genetic shares
        and the residual share); ``priors="flat"`` gives flat β, Jeffreys σp and the same
        shares. ``"variance"``: ``beta``, ``sigma_g2_component`` (one prior of shape (k,):
        array parameters of length k give each component its own) and ``sigma_e2``, each
        ~ HalfStudentT(3, var(y)).
    """
    k = n_components
    beta = default_priors("h2", y, X)["beta"]
    sd_y = float(np.std(y, ddof=1))
    if parametrization == "h2":
        shares = Prior("Dirichlet", a=np.ones(k + 1))
        return {
            "beta": Parameter(beta, REAL, (X.shape[1],), flat=Prior("Flat")),
            "sigma_p": Parameter(
                Prior("HalfStudentT", nu=3, sigma=sd_y), POSITIVE, flat=Prior("Jeffreys")
            ),
            "shares": Parameter(
                shares,
                SIMPLEX,
                (k + 1,),
                flat=shares,
                suggestion=(
                    f"a distribution on the simplex of {k + 1} entries (the {k} genetic shares "
                    f"and the residual share), e.g. Prior('Dirichlet', a=np.ones({k + 1}))"
                ),
            ),
        }
    return {
        "beta": Parameter(beta, REAL, (X.shape[1],)),
        "sigma_g2_component": Parameter(Prior("HalfStudentT", nu=3, sigma=sd_y**2), POSITIVE, (k,)),
        "sigma_e2": Parameter(Prior("HalfStudentT", nu=3, sigma=sd_y**2), POSITIVE),
    }


def component_hints(n_components: int) -> dict[str, str]:
    """What to do instead when ``priors`` names a parameter of another model or parametrization."""
    k = n_components
    return {
        "h2": "with several kinships the genetic shares have a joint prior: use 'shares', e.g. "
        f"Prior('Dirichlet', a=np.ones({k + 1})) (k shares and the residual share)",
        "sigma_g2": "with several kinships put the prior on 'sigma_g2_component' (each "
        "component's variance; 'sigma_g2' is their sum, a Deterministic)",
        **dict.fromkeys(
            VARIANCE_NAMES, "priors on sigma_g2_component/sigma_e2 need parametrization='variance'"
        ),
        **dict.fromkeys(
            ("sigma_p", "shares"), "priors on sigma_p/shares need parametrization='h2'"
        ),
    }


# --------------------------------------------------------------------------------------------
# Precomputed quantities
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Layout:
    r"""Everything the several-component likelihood needs, precomputed once.

    Attributes
    ----------
    marginal : int
        Index of the marginalized component m (largest rank; the last among ties).
    latent : tuple of int
        Indices of the latent components, in order.
    rotated : Rotated
        y and X in the eigenbasis of K_m (``y1 = U_m'y``, ``X1 = U_m'X``).
    loadings : ndarray
        :math:`C = U_m^\top B` with B = [U_l for l latent] [shape: (r_m, r_l)].
    latent_s : ndarray
        Eigenvalues of the latent components, concatenated [shape: (r_l,)].
    latent_map : ndarray
        One-hot map of each latent column to its component [shape: (r_l, k)].
    marginal_select : ndarray
        One-hot vector of the marginalized component [shape: (k,)].
    gram : ndarray
        Gram matrix of the residuals of ``[X, B, y]`` off U_m [shape: (d + r_l + 1,) * 2];
        zeros when K_m has full rank.
    """

    marginal: int
    latent: tuple[int, ...]
    rotated: Rotated
    loadings: np.ndarray
    latent_s: np.ndarray
    latent_map: np.ndarray
    marginal_select: np.ndarray
    gram: np.ndarray

    @property
    def n_null(self) -> int:
        """Dimension of the null space of K_m."""
        return self.rotated.n_null


def latent_basis(spectra: Sequence[Spectral], latent: Sequence[int]) -> np.ndarray:
    """B = [U_l for l in latent] [shape: (n_samples, r_l)]."""
    n = spectra[0].n
    return np.column_stack([spectra[j].U for j in latent]) if latent else np.empty((n, 0))


def layout(spectra: Sequence[Spectral], y: np.ndarray, X: np.ndarray) -> Layout:
    """Choose the marginalized component and precompute the rotated data (O(N·r_m·(d + r_l)))."""
    k = len(spectra)
    ranks = [sp.rank for sp in spectra]
    marginal = max(range(k), key=lambda j: (ranks[j], j))
    latent = tuple(j for j in range(k) if j != marginal)
    spec_m = spectra[marginal]
    B = latent_basis(spectra, latent)
    latent_s = np.concatenate([spectra[j].s for j in latent]) if latent else np.empty(0)
    latent_map = np.zeros((B.shape[1], k))
    start = 0
    for j in latent:
        latent_map[start : start + spectra[j].rank, j] = 1.0
        start += spectra[j].rank
    A = np.column_stack([X, B, y])
    A1, residual = spec_m.rotate(A)
    n_null = spec_m.n - spec_m.rank
    gram = residual.T @ residual if n_null > 0 else np.zeros((A.shape[1], A.shape[1]))
    d = X.shape[1]
    rot = Rotated(
        y1=A1[:, -1],
        X1=A1[:, :d],
        gram=np.block([[gram[:d, :d], gram[:d, -1:]], [gram[-1:, :d], gram[-1:, -1:]]]),
        n_null=n_null,
        s=spec_m.s,
    )
    return Layout(
        marginal=marginal,
        latent=latent,
        rotated=rot,
        loadings=A1[:, d:-1],
        latent_s=latent_s,
        latent_map=latent_map,
        marginal_select=np.eye(k)[marginal],
        gram=gram,
    )


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def _components(parametrization: str, priors: Mapping[str, PriorLike], k: int) -> tuple:
    """Create the variance parameters; return (σk² [k], σe²)."""
    if parametrization == "h2":
        sigma_p = add_prior("sigma_p", priors["sigma_p"])
        shares = add_prior("shares", priors["shares"], dims="share")
        sigma_p2 = sigma_p**2
        h2_component = pm.Deterministic("h2_component", shares[:k], dims="component")
        pm.Deterministic("h2", pt.sum(shares[:k]))
        sigma_k2 = pm.Deterministic("sigma_g2_component", h2_component * sigma_p2, dims="component")
        pm.Deterministic("sigma_g2", pt.sum(sigma_k2))
        sigma_e2 = pm.Deterministic("sigma_e2", shares[k] * sigma_p2)
    else:
        sigma_k2 = add_prior("sigma_g2_component", priors["sigma_g2_component"], dims="component")
        sigma_e2 = add_prior("sigma_e2", priors["sigma_e2"])
        sigma_g2 = pm.Deterministic("sigma_g2", pt.sum(sigma_k2))
        sigma_p2 = sigma_g2 + sigma_e2
        pm.Deterministic("h2_component", sigma_k2 / sigma_p2, dims="component")
        pm.Deterministic("h2", sigma_g2 / sigma_p2)
    return sigma_k2, sigma_e2


def multi_kinship_model(
    y: Any,
    Ks: Sequence[Any] | Mapping[str, Any],
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    parametrization: str | None = None,
    normalize: bool = True,
    family: str = "gaussian",
) -> pm.Model:
    r"""Build the LMM with several variance components y = Xβ + Σ_k u_k + ε.

    Reached through :func:`bayeslmm.kinship_model` with a list or dict of kinships.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]: array or Series indexed by sample ID.
    Ks
        Kinships [each of shape: (n_samples, n_samples)]: a list (components ``K1``, ``K2``,
        ...) or a dict name → K; arrays, DataFrames indexed by sample ID, or Kinship objects
        (see :func:`components_inputs` for the alignment rules).
    X
        Covariates; None means intercept only.
    priors
        None, ``"default"``, ``"flat"`` or a dict by parameter name, merged into the defaults
        of :func:`component_parameters`.
    parametrization : {"h2", "variance"}, optional
        ``"h2"`` (default): σp ~ HalfStudentT(3, sd(y)) and the shares (h²_1, ..., h²_k,
        1 − Σh²) ~ Dirichlet(1, ..., 1); ``"variance"``: priors on each σk² and on σe².
    normalize
        Divide each K by its mean diagonal (factors in ``info_of(model).extra["scales"]``).
    family : {"gaussian"}
        Only Gaussian: a probit model with several components is not supported yet.

    Returns
    -------
    pymc.Model
        Free: ``beta`` (dim ``covariate``), ``z`` (dim ``latent``) and either ``sigma_p`` and
        ``shares`` (dim ``share``) or ``sigma_g2_component`` (dim ``component``) and
        ``sigma_e2``. Deterministics: ``h2`` (total genetic share), ``h2_component``,
        ``sigma_g2_component`` (dim ``component``), ``sigma_g2`` (their sum), ``sigma_e2``.
        Observed ``y`` in the eigenbasis of the marginalized K (dim ``eigen``).

    Notes
    -----
    Let m be the component of largest rank (the last among ties) and L the others. Each latent
    component is non-centred in its own eigenbasis :math:`K_l = U_l\operatorname{diag}(s_l)
    U_l^\top`:

    .. math::

        u_l = U_l \operatorname{diag}(\sqrt{\sigma_l^2 s_l})\, z_l, \quad z_l \sim N(0, I_{r_l}),

    and, given them, :math:`y - X\beta - \sum_l u_l \sim N(0, \sigma_m^2 K_m + \sigma_e^2 I)` is
    evaluated in the eigenbasis of :math:`K_m` exactly as the one-component model: with
    :math:`B = [U_l]`, :math:`a = (\sqrt{\sigma_l^2 s_l} z_l)_l` and :math:`C = U_m^\top B`,

    .. math::

        U_m^\top y \sim N(U_m^\top X\beta + C a,\; \operatorname{diag}(\sigma_m^2 s_m +
        \sigma_e^2)),

    plus the null-space term :math:`-\tfrac12[(N - r_m)\log 2\pi\sigma_e^2 + c^\top G c /
    \sigma_e^2]` with :math:`c = (-\beta, -a, 1)` and G the Gram matrix of the residuals of
    :math:`[X, B, y]` off :math:`U_m`. One evaluation costs :math:`O(r_m r_L + (d + r_L)^2)`;
    the precomputation O(N·r_m·(d + r_L)) once. Memory: C holds r_m·r_L numbers and G
    (d + r_L + 1)² (both 8 bytes each; for two full-rank kinships at N = 3,000, 72 MB each),
    so pass the lower-rank kinships to the latent side by construction (it is automatic).
    """
    if family != "gaussian":
        raise InputError(
            f"family={family!r} with several kinships is not supported yet (the probit model "
            "has one component); fit one K, or a Gaussian model with several."
        )
    data, spectra, names = components_inputs(y, Ks, X, normalize=normalize)
    k = len(spectra)
    parametrization = choose_parametrization(priors, parametrization, VARIANCE_NAMES)
    priors = resolve(
        priors,
        component_parameters(parametrization, data.y, data.X, k),
        model=f"the several-component model ('{parametrization}' parametrization)",
        hints=component_hints(k),
    )
    lay = layout(spectra, data.y, data.X)
    rot = lay.rotated
    coords = {
        "covariate": list(data.covariates),
        "eigen": np.arange(rot.s.size),
        "latent": np.arange(lay.latent_s.size),
        "component": names,
        "share": [*names, "residual"],
        "sample": list(data.samples),
    }
    with pm.Model(coords=coords) as model:
        y_rot = pm.Data("y_rot", rot.y1, dims="eigen")
        X_rot = pm.Data("X_rot", rot.X1, dims=("eigen", "covariate"))
        s = pm.Data("s", rot.s, dims="eigen")
        C = pm.Data("latent_loadings", lay.loadings, dims=("eigen", "latent"))
        latent_s = pm.Data("latent_s", lay.latent_s, dims="latent")
        latent_map = pm.Data("latent_map", lay.latent_map, dims=("latent", "component"))
        select = pm.Data("marginal_select", lay.marginal_select, dims="component")
        beta = add_prior("beta", priors["beta"], dims="covariate")
        sigma_k2, sigma_e2 = _components(parametrization, priors, k)
        z = pm.Normal("z", 0.0, 1.0, dims="latent")
        a = pt.sqrt(latent_s * (latent_map @ sigma_k2)) * z
        sigma_m2 = pt.dot(select, sigma_k2)
        pm.Normal(
            "y",
            mu=X_rot @ beta + C @ a,
            sigma=pt.sqrt(sigma_m2 * s + sigma_e2),
            observed=y_rot,
            dims="eigen",
        )
        if lay.n_null:
            gram = pm.Data("null_gram", lay.gram)
            n_null = pm.Data("n_null", float(lay.n_null))
            coef = pt.concatenate([-beta, -a, pt.ones((1,))])
            rss = coef @ gram @ coef
            pm.Potential(
                "y_null_space", -0.5 * (n_null * (LOG_2PI + pt.log(sigma_e2)) + rss / sigma_e2)
            )
    info = ModelInfo(
        family="components",
        form="multi_kinship_lmm",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=spectra[lay.marginal],
        rotated=rot,
        extra={
            "components": names,
            "spectra": spectra,
            "layout": lay,
            "scales": [sp.scale for sp in spectra],
            "marginalized": names[lay.marginal],
        },
    )
    return register_model(model, info)


# --------------------------------------------------------------------------------------------
# After sampling: LOO in sample space and the random effects
# --------------------------------------------------------------------------------------------


def loo_components(
    spectra: Sequence[Spectral],
    lay: Layout,
    y: np.ndarray,
    X: np.ndarray,
    beta: np.ndarray,
    sigma_k2: np.ndarray,
    sigma_e2: np.ndarray,
) -> np.ndarray:
    r"""Sample-space LOO log p(y_i | y_−i, θ) of the marginal Gaussian, for each draw.

    Parameters
    ----------
    spectra : list of Spectral
        Decomposition of each normalized K.
    lay : Layout
        From :func:`layout` (which component is marginalized).
    y, X : ndarray
        Phenotype [shape: (n_samples,)] and covariates [shape: (n_samples, d)].
    beta : ndarray
        [shape: (draws, d)].
    sigma_k2 : ndarray
        Component variances [shape: (draws, k)].
    sigma_e2 : ndarray
        [shape: (draws,)].

    Returns
    -------
    ndarray
        [shape: (draws, n_samples)].

    Notes
    -----
    :math:`V = A + B D B^\top` with :math:`A = \sigma_m^2 K_m + \sigma_e^2 I` (inverted in its
    eigenbasis), B the latent eigenvectors and :math:`D = \operatorname{diag}(\sigma_l^2 s_l)`.
    By Woodbury, with :math:`E = A^{-1} B D^{1/2}` and
    :math:`M = I + D^{1/2} B^\top A^{-1} B D^{1/2} = L L^\top`,

    .. math::

        V^{-1} = A^{-1} - E M^{-1} E^\top, \quad
        c_{ii} = (A^{-1})_{ii} - \|L^{-1} E_{i\cdot}^\top\|^2, \quad g = V^{-1}(y - X\beta),

    and :math:`\log p(y_i \mid y_{-i}) = -\tfrac12\log 2\pi + \tfrac12\log c_{ii} -
    \tfrac12 g_i^2/c_{ii}`. Cost per draw O(N·r_m·r_L + N·r_L² + r_L³): cheap when the latent
    kinships have low rank, about 3N³ flops when all are full rank (≈ 0.1 s per draw at N = 1,000
    on one core), which is no less than a dense Cholesky of V. Exact for every draw; no thinning.
    """
    spec_m = spectra[lay.marginal]
    U, s = spec_m.U, spec_m.s
    U_sq = U**2
    B = latent_basis(spectra, lay.latent)
    C = lay.loadings
    BtB = B.T @ B
    out = np.empty((beta.shape[0], y.shape[0]))
    for t in range(beta.shape[0]):
        se2 = float(sigma_e2[t])
        resid = y - X @ beta[t]
        w = 1.0 / (sigma_k2[t, lay.marginal] * s + se2) - 1.0 / se2
        a_inv_diag = U_sq @ w + 1.0 / se2
        a_inv_r = U @ (w * (U.T @ resid)) + resid / se2
        if B.shape[1]:
            root = np.sqrt(lay.latent_s * (lay.latent_map @ sigma_k2[t]))
            E = (U @ (w[:, None] * C) + B / se2) * root[None, :]
            M = np.eye(B.shape[1]) + root[:, None] * root[None, :] * (
                C.T @ (w[:, None] * C) + BtB / se2
            )
            L = linalg.cholesky(M, lower=True)
            F = linalg.solve_triangular(L, E.T, lower=True)  # [shape: (r_l, N)]
            c = a_inv_diag - np.einsum("ij,ij->j", F, F)
            g = a_inv_r - F.T @ (F @ resid)
        else:
            c, g = a_inv_diag, a_inv_r
        out[t] = -0.5 * LOG_2PI + 0.5 * np.log(c) - 0.5 * g**2 / c
    return out


def draw_components(
    spectra: Sequence[Spectral],
    lay: Layout,
    y: np.ndarray,
    X: np.ndarray,
    beta: np.ndarray,
    z: np.ndarray,
    sigma_k2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
) -> np.ndarray:
    r"""Posterior draws of each component's random effect u_k [shape: (draws, k, n_samples)].

    Notes
    -----
    The latent components are deterministic given the draw:
    :math:`u_l = U_l\operatorname{diag}(\sqrt{\sigma_l^2 s_l}) z_l`. The marginalized one is then
    drawn from its Gaussian conditional given the others, as in the one-component model
    (:func:`bayeslmm.inference.effects.draw_u` on the residual
    :math:`y - X\beta - \sum_l u_l`), O(N·r)
    per draw. With ``rng`` None (a MAP point) it is the conditional mean.
    """
    n_draws, k, n = beta.shape[0], len(spectra), y.shape[0]
    B = latent_basis(spectra, lay.latent)
    a = np.sqrt(lay.latent_s[None, :] * (sigma_k2 @ lay.latent_map.T)) * z  # (draws, r_l)
    out = np.zeros((n_draws, k, n))
    for j in lay.latent:
        cols = lay.latent_map[:, j] > 0
        out[:, j] = a[:, cols] @ B[:, cols].T
    rot = lay.rotated
    X1 = np.column_stack([rot.X1, lay.loadings])  # the latent part enters as known covariates
    coef = np.column_stack([beta, a])
    out[:, lay.marginal] = draw_u(
        spectra[lay.marginal], rot.y1, X1, coef, sigma_k2[:, lay.marginal], sigma_e2, rng
    )
    return out


def _variances(posterior: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    sigma_k2 = flat_draws(posterior, "sigma_g2_component").reshape(-1, k)
    return sigma_k2, flat_draws(posterior, "sigma_e2").reshape(-1)


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """The family's post-processing: u, u_<component> and the sample-space LOO terms.

    Returns ``u`` (total) and ``u_<name>`` per component (dim ``sample``) when
    ``random_effects`` and the draws fit in memory, and the LOO matrix of
    :func:`loo_components` [shape: (draws_total, n_samples)].
    """
    data = info.data
    spectra, lay, names = info.extra["spectra"], info.extra["layout"], info.extra["components"]
    k = len(spectra)
    beta = flat_draws(posterior, "beta").reshape(-1, data.X.shape[1])
    sigma_k2, sigma_e2 = _variances(posterior, k)
    new: dict[str, Any] = {}
    samples = list(data.samples)
    n_draws = beta.shape[0]
    what = f"{n_draws} draws × {data.n} samples × {k + 1} effects"
    if store_effects(random_effects, n_draws * data.n * (k + 1), what, stacklevel=4):
        z = flat_draws(posterior, "z").reshape(n_draws, -1)
        u = draw_components(spectra, lay, data.y, data.X, beta, z, sigma_k2, sigma_e2, rng)
        new["u"] = (u.sum(axis=1), "sample", samples)
        for j, name in enumerate(names):
            new[f"u_{name}"] = (u[:, j], "sample", samples)
    loglik = loo_components(spectra, lay, data.y, data.X, beta, sigma_k2, sigma_e2)
    return new, loglik


#: Several kinships: ``kinship_model(y, [K1, K2, ...])``.
COMPONENTS = Family(
    name="components",
    build=multi_kinship_model,
    postprocess=postprocess,
    summary=("h2", "sigma_g2", "sigma_e2", "h2_component"),
)
