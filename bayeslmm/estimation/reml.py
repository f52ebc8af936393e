"""Profiled (RE)ML in spectral space: the fast point estimate of h² (DESIGN §1).

For fixed h², β̂ is weighted least squares in the rotated space and σp² has a closed form, so
the likelihood is a function of h² alone, maximized by a grid plus bounded Brent on [0, 1]
with both endpoints compared.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from bayeslmm.data.inputs import components_inputs, gram_inputs, kinship_inputs
from bayeslmm.errors import ConvergenceError, InputError, KinshipWarning
from bayeslmm.estimation.likelihood import CHI2_HALF, Z95, Profile, profile
from bayeslmm.estimation.multivariate import MultiRemlFit, reml_multivariate
from bayeslmm.linalg.spectral import Rotated, rotate_data, standardize
from bayeslmm.relatedness.gram import Gram

#: Expected information about h² below which h² is reported as not identifiable (SE > 1).
MIN_INFORMATION = 1.0
#: Smallest eigenvalue of the Gram matrix of I, K_1, ..., K_m (unit norm) below which the
#: variance-component shares are reported as not identifiable.
MIN_INDEPENDENCE = 1e-6
#: First half-width of the bracket, relative to max(h², 1e-4), in which :func:`_polish` looks
#: for the root of the derivative around bounded Brent's answer, and how often it widens it.
POLISH_WIDTH = 1e-7
POLISH_STEPS = 5
EPS = float(np.finfo(float).eps)


def profile_derivative(rot: Rotated, h2: float, method: str = "reml") -> float:
    r"""Derivative in h² of the profiled log-likelihood of :func:`profile`, analytically.

    Parameters
    ----------
    rot : Rotated
        Data in the eigenbasis of K.
    h2 : float
        A heritability in [0, 1) (at 1 with a null space the derivative is not finite).
    method : {"reml", "ml"}

    Returns
    -------
    float
        :math:`\partial\ell/\partial h^2` (NaN where the likelihood is not finite).

    Notes
    -----
    With :math:`H = h^2 K + (1-h^2) I`, :math:`\dot H = K - I` (eigenvalues
    :math:`s_i - 1` on the range of K, −1 on its complement), :math:`r = y - X\hat\beta` and
    :math:`P = X^\top H^{-1} X`, the envelope theorem (β̂ maximizes, so its own derivative
    drops out) gives

    .. math::

        \dot{\mathrm{RSS}} = -r^\top H^{-1}\dot H H^{-1} r, \quad
        \partial_h \log|H| = \operatorname{tr}(H^{-1}\dot H), \quad
        \partial_h \log|P| = -\operatorname{tr}(P^{-1} X^\top H^{-1}\dot H H^{-1} X),

    and :math:`\ell' = -\tfrac12[n_e\,\dot{\mathrm{RSS}}/\mathrm{RSS} + \partial_h\log|H|
    (+ \partial_h\log|P| \text{ for REML})]` with :math:`n_e` = N (ML) or N − d (REML).
    Every term is a sum over the r eigenvalues plus the null-space part (the residual
    r enters through ``rot.null_factor``), O(r·d²). :func:`_maximize` refines the maximizer
    to a root of this derivative.
    """
    h = float(h2)
    n, d = rot.n, rot.X1.shape[1]
    at = profile(rot, h, method)
    if not np.isfinite(at.loglik[0]):
        return float("nan")
    beta = at.beta[0]
    w = 1.0 / (h * rot.s + (1.0 - h))
    dw = (rot.s - 1.0) * w  # eigenvalues of H^-1 (K - I) on the range of K
    resid = rot.y1 - rot.X1 @ beta
    rss = float(w @ resid**2)
    d_rss = -float(np.sum(dw * w * resid**2))
    d_logdet = float(dw.sum())
    wx = w[:, None] * rot.X1
    dxx = (dw[:, None] * wx).T @ rot.X1  # X'H^-1 (K - I) H^-1 X on the range
    if rot.n_null:
        wc = 1.0 / (1.0 - h)
        coef = np.concatenate([-beta, [1.0]])
        if rot.null_factor is not None:
            null_rss = float(np.sum((rot.null_factor @ coef) ** 2))
        else:
            null_rss = float(coef @ rot.gram @ coef)
        rss += wc * null_rss
        d_rss += wc**2 * null_rss  # (−1)·wc² on the complement, negated
        d_logdet -= rot.n_null * wc
        dxx = dxx - wc**2 * rot.gram[:-1, :-1]
    if method == "ml":
        return -0.5 * (n * d_rss / rss + d_logdet)
    trace = float(np.trace(np.linalg.solve(at.xtwx[0], dxx))) if d else 0.0
    return -0.5 * ((n - d) * d_rss / rss + d_logdet - trace)


def _maximize(rot: Rotated, method: str, grid_size: int) -> float:
    """Grid plus bounded Brent over [0, 1], endpoints compared, then a root of the derivative."""
    grid = np.linspace(0.0, 1.0, grid_size)
    values = profile(rot, grid, method).loglik
    if not np.isfinite(values).any():
        raise ConvergenceError("the likelihood is not finite anywhere on h² ∈ [0, 1].")
    k = int(np.nanargmax(values))
    best_h, best_l = grid[k], values[k]
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid_size - 1)]

    def negative(h: float) -> float:
        value = profile(rot, h, method).loglik[0]
        return -value if np.isfinite(value) else np.inf

    res = optimize.minimize_scalar(
        negative, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
    )
    if np.isfinite(res.fun) and -res.fun > best_l:
        best_h, best_l = float(res.x), -float(res.fun)
    for end in (0.0, 1.0):  # h² = 0 and h² = 1 are legal answers
        value = profile(rot, end, method).loglik[0]
        if value >= best_l:
            best_h, best_l = end, value
    return _polish(rot, float(best_h), method)


def _polish(rot: Rotated, h: float, method: str) -> float:
    r"""Refine an interior maximizer to the root of :func:`profile_derivative` next to it.

    Notes
    -----
    Near its maximum the log-likelihood changes by :math:`\tfrac12\ell''\delta^2`, which
    falls below its round-off (:math:`\epsilon|\ell|`) for :math:`|\delta| \lesssim
    \sqrt{2\epsilon|\ell/\ell''|}`: bounded Brent, which compares values, cannot place the
    maximum better than that (1e-8 to 1e-7 relative in practice), and two computations of the
    same likelihood that differ only by round-off (the N×N kinship and the Gram, or a
    reordering of the samples) stop at points that far apart. The derivative is a sum with
    no such flattening: it changes sign at the maximum to round-off, so Brent's root finder
    (``brentq``) in a bracket around the answer pins the maximizer to ~1e-14. The bracket
    starts at ±:data:`POLISH_WIDTH`·max(h², 1e-4) and widens tenfold (at most
    :data:`POLISH_STEPS` times) until the derivative goes from positive to negative across it.
    Where it never does (an answer at 0 or 1, a maximum at a kink, a flat or non-finite
    likelihood), or where the root would lower the likelihood beyond round-off, the answer
    is returned unchanged.
    """
    if not 0.0 < h < 1.0:
        return h
    width = POLISH_WIDTH * max(h, 1e-4)
    for _ in range(POLISH_STEPS):
        lo, hi = max(h - width, 0.5 * h), min(h + width, 0.5 * (h + 1.0))
        f_lo, f_hi = profile_derivative(rot, lo, method), profile_derivative(rot, hi, method)
        if not (np.isfinite(f_lo) and np.isfinite(f_hi)):
            return h
        if f_lo > 0.0 > f_hi:
            break
        width *= 10.0
    else:
        return h
    root = float(
        optimize.brentq(
            lambda x: profile_derivative(rot, x, method), lo, hi, xtol=1e-300, rtol=4 * EPS
        )
    )
    before, after = profile(rot, np.array([h, root]), method).loglik
    if not after >= before - 1e-12 * (1.0 + abs(before)):
        return h
    return root


def _curvature(rot: Rotated, h: float, method: str) -> float:
    """Second derivative of the profiled log-likelihood at h.

    Central differences of the analytic first derivative (:func:`profile_derivative`),
    Richardson-extrapolated (error O(step⁴)); differences of the derivative rather than of the
    values keep the round-off at ~ε·N/step instead of ~ε·|ℓ|/step².
    """

    def second(step: float) -> float:
        up = profile_derivative(rot, h + step, method)
        down = profile_derivative(rot, h - step, method)
        return (up - down) / (2 * step)

    step = min(1e-3, h / 2, (1 - h) / 2)
    return (4 * second(step / 2) - second(step)) / 3


def _profile_interval(rot: Rotated, h: float, best: float, method: str) -> tuple[float, float]:
    """Values of h² where the log-likelihood drops by χ²₁(0.95)/2 from its maximum."""
    target = best - CHI2_HALF

    def gap(x: float) -> float:
        value = profile(rot, x, method).loglik[0]
        return (value if np.isfinite(value) else -1e300) - target

    lower = 0.0 if gap(0.0) >= 0 else optimize.brentq(gap, 0.0, h, xtol=1e-8)
    upper = 1.0 if gap(1.0) >= 0 else optimize.brentq(gap, h, 1.0, xtol=1e-8)
    return float(lower), float(upper)


def _identifiable(s: np.ndarray, n: int) -> bool:
    r"""Whether the data can tell h² apart at all (warns with a KinshipWarning when not).

    Notes
    -----
    At h² = 0 the expected information about h² of the likelihood with σp² profiled out is
    :math:`\tfrac12 N \operatorname{var}(\lambda)/\bar\lambda^2` over the N eigenvalues of K
    (the zeros of its null space included). When K is close to a multiple of I it vanishes:
    σg²K + σe²I is then σp²I for every h², and only the sum σg² + σe² is estimable. Below
    :data:`MIN_INFORMATION` one standard error of h² exceeds the whole interval [0, 1].
    """
    lam = np.concatenate([s, np.zeros(n - s.size)])
    info = 0.5 * n * float(np.var(lam)) / float(np.mean(lam)) ** 2
    if info >= MIN_INFORMATION:
        return True
    warnings.warn(
        f"h² is not identifiable from these data: the eigenvalues of K vary with coefficient of "
        f"variation {np.sqrt(2 * info / n):.2g}, so σg²·K + σe²·I is nearly σp²·I whatever h² "
        f"is (expected information about h² {info:.3g}: one standard error would exceed the "
        "whole range [0, 1]). K is close to a multiple of the identity (unrelated samples and "
        "a kinship from very many SNPs, or not a kinship). Only σp² is estimable; read h² as "
        "unknown (fit.identifiable is False), or use a kinship with more relatedness or more "
        "samples.",
        KinshipWarning,
        stacklevel=3,
    )
    return False


def _components_identifiable(Ks: list[np.ndarray]) -> bool:
    r"""Whether I and the kinships are linearly independent.

    Notes
    -----
    The shares h_k are identifiable only if no combination of :math:`K_1, \dots, K_m` and I
    vanishes. With the Frobenius inner product, the Gram matrix of the unit-norm matrices
    :math:`I/\|I\|, K_k/\|K_k\|` has a smallest eigenvalue of 0 exactly when one is a
    combination of the others (two identical components, or a K ∝ I); below
    :data:`MIN_INDEPENDENCE` the split of the total along that direction is arbitrary. The
    total h² is still estimated (it equals the one-K fit for K twice), so this sets
    ``RemlFit.identifiable`` and the printed summary says so, without a warning.
    """
    n = Ks[0].shape[0]
    mats = [np.eye(n) / np.sqrt(n), *(K / np.linalg.norm(K) for K in Ks)]
    gram = np.array([[float(np.vdot(a, b)) for b in mats] for a in mats])
    return bool(np.linalg.eigvalsh(gram)[0] >= MIN_INDEPENDENCE)


def _reml_components(y: Any, Ks: Any, X: Any, method: str, *, normalize: bool) -> RemlFit:
    """(RE)ML with several kinships: dense profiled likelihood over the shares."""
    from bayeslmm.estimation.multi import BOUNDARY, DenseProblem, fit

    prepared, spectra, names = components_inputs(y, Ks, X, normalize=normalize)
    std = standardize(prepared.y, prepared.X)  # invariant to units and offsets
    matrices = [sp.matrix() for sp in spectra]
    identifiable = _components_identifiable(matrices)
    problem = DenseProblem(std.y, std.X, matrices, method)
    result = fit(problem)
    point, h = result.point, result.h
    total = float(h.sum())
    sigma_p2 = float(point.sigma_p2) * std.scale**2
    cov_beta = std.beta_cov(float(point.sigma_p2) * np.linalg.inv(point.xthx))
    n_eff = prepared.n - (prepared.X.shape[1] if method == "reml" else 0)
    covariates = list(prepared.covariates)
    return RemlFit(
        h2=total,
        h2_se=float(result.total_se),
        h2_ci=(float(result.total_ci[0]), float(result.total_ci[1])),
        se_method=result.se_method,
        sigma_g2=total * sigma_p2,
        sigma_e2=(1 - total) * sigma_p2,
        sigma_p2=sigma_p2,
        beta=pd.Series(std.beta(point.beta), index=covariates, name="beta"),
        beta_se=pd.Series(np.sqrt(np.diag(cov_beta)), index=covariates, name="beta_se"),
        loglik=std.loglik(float(point.loglik), n_eff),
        at_boundary=bool((h <= BOUNDARY).any() or total >= 1 - 1e-5),
        method=method,
        n=prepared.n,
        kinship_scale=float("nan"),
        dropped=prepared.dropped,
        h2_components=pd.Series(h, index=names, name="h2"),
        h2_components_se=pd.Series(result.h_se, index=names, name="h2_se"),
        sigma_g2_components=pd.Series(h * sigma_p2, index=names, name="sigma_g2"),
        kinship_scales=pd.Series([sp.scale for sp in spectra], index=names, name="scale"),
        identifiable=identifiable,
    )


@dataclass(frozen=True)
class RemlFit:
    """Profiled (RE)ML estimate of the variance components.

    Attributes
    ----------
    h2, h2_se : float
        Heritability and its standard error (never NaN; see ``se_method``).
    h2_ci : tuple of float
        95 % profile-likelihood interval of h² (clipped to [0, 1]).
    se_method : str
        ``"observed information"`` (interior estimate) or ``"profile likelihood"``
        (estimate at the boundary or singular information: SE = interval width / 3.92).
    sigma_g2, sigma_e2, sigma_p2 : float
        Variance components on the scale of K normalized to mean diagonal 1
        (``kinship_scale`` is the factor K was divided by).
    beta, beta_se : pandas.Series
        Fixed effects (GLS at h²) and their standard errors, indexed by covariate.
    loglik : float
        Maximized (restricted) log-likelihood of y in the user's units (GEMMA/GCTA
        convention). The fit itself runs on standardized data; the log-likelihood is brought
        back by the exact Jacobian, so y → a·y + b changes it by −N·log|a| (ML) or
        −(N − d)·log|a| (REML) and nothing else changes.
    at_boundary : bool
        Whether h² is 0 or 1 (with several kinships: also whether any component's share is 0).
    h2_components, h2_components_se, sigma_g2_components, kinship_scales : pandas.Series or None
        With several kinships: each component's share of σp², its standard error, its variance
        and the factor its K was divided by, indexed by component name (None with one K, where
        ``kinship_scale`` holds the factor; with several it is NaN). ``h2``, ``h2_se`` and
        ``sigma_g2`` are then the totals.
    identifiable : bool
        False when the data cannot separate the components at all: K close to a multiple of
        the identity (one K), or kinships that are linearly dependent with the identity (e.g.
        the same K twice). h² (or the split) is then arbitrary; a KinshipWarning says why.
    """

    h2: float
    h2_se: float
    h2_ci: tuple[float, float]
    se_method: str
    sigma_g2: float
    sigma_e2: float
    sigma_p2: float
    beta: pd.Series
    beta_se: pd.Series
    loglik: float
    at_boundary: bool
    method: str
    n: int
    kinship_scale: float
    dropped: dict[str, int] = field(default_factory=dict)
    h2_components: pd.Series | None = None
    h2_components_se: pd.Series | None = None
    sigma_g2_components: pd.Series | None = None
    kinship_scales: pd.Series | None = None
    identifiable: bool = True

    def __str__(self) -> str:
        lines = [
            f"{self.method.upper()} fit on {self.n} samples"
            + (" (h² at the boundary)" if self.at_boundary else ""),
            f"  h2       {self.h2:.4f}  (SE {self.h2_se:.4f}, {self.se_method}; "
            f"95% profile CI [{self.h2_ci[0]:.4f}, {self.h2_ci[1]:.4f}])",
            f"  sigma_g2 {self.sigma_g2:.6g}",
            f"  sigma_e2 {self.sigma_e2:.6g}",
            f"  loglik   {self.loglik:.6f}",
        ]
        if not self.identifiable:
            lines.append(
                "  not identifiable: the data cannot separate these components "
                + (
                    "(only their total is estimable)"
                    if self.h2_components is not None
                    else "(K is nearly a multiple of I: only sigma_p2 is estimable)"
                )
            )
        if self.h2_components is not None:
            for name, value in self.h2_components.items():
                lines.append(
                    f"  h2[{name}] {value:.4f}  (SE {self.h2_components_se[name]:.4f}; "
                    f"sigma_g2 {self.sigma_g2_components[name]:.6g})"
                )
        return "\n".join(lines)

    def to_series(self) -> pd.Series:
        """The scalar results as a Series (for tables and TSV output)."""
        return pd.Series(
            {
                "h2": self.h2,
                "h2_se": self.h2_se,
                "h2_lower": self.h2_ci[0],
                "h2_upper": self.h2_ci[1],
                "se_method": self.se_method,
                "sigma_g2": self.sigma_g2,
                "sigma_e2": self.sigma_e2,
                "loglik": self.loglik,
                "at_boundary": self.at_boundary,
                "method": self.method,
                "n": self.n,
                "kinship_scale": self.kinship_scale,
                **self._component_entries(),
            }
        )

    def _component_entries(self) -> dict[str, float]:
        if self.h2_components is None:
            return {}
        out: dict[str, float] = {}
        for name, value in self.h2_components.items():
            out[f"h2_{name}"] = float(value)
            out[f"h2_{name}_se"] = float(self.h2_components_se[name])
            out[f"sigma_g2_{name}"] = float(self.sigma_g2_components[name])
        return out


def _n_traits(y: Any) -> int:
    """Trait columns of y: those of a DataFrame, of a 2-D array of more than one row, else 1."""
    if isinstance(y, pd.DataFrame):
        return int(y.shape[1])
    if isinstance(y, pd.Series):
        return 1
    shape = np.shape(y) if isinstance(y, np.ndarray | list | tuple) else ()
    return int(shape[1]) if len(shape) == 2 and shape[0] > 1 else 1


def fit_rotated(
    rot: Rotated, covariates: tuple[str, ...], method: str = "reml", grid_size: int = 101
) -> tuple[float, float, tuple[float, float], str, Profile]:
    """Maximize the profiled likelihood of rotated data; return h², SE, CI, SE method, profile."""
    if method not in ("reml", "ml"):
        raise InputError(f"method must be 'reml' or 'ml', got {method!r}.")
    h = _maximize(rot, method, grid_size)
    at = profile(rot, h, method)
    best = float(at.loglik[0])
    ci = _profile_interval(rot, h, best, method)
    boundary = h <= 1e-6 or h >= 1 - 1e-6
    curvature = _curvature(rot, h, method) if not boundary else np.nan
    if not boundary and np.isfinite(curvature) and curvature < 0:
        se, se_method = float(np.sqrt(-1.0 / curvature)), "observed information"
    else:
        se, se_method = (ci[1] - ci[0]) / (2 * Z95), "profile likelihood"
    return h, se, ci, se_method, at


def reml(
    y: Any,
    K: Any,
    X: Any = None,
    method: str = "reml",
    *,
    normalize: bool = True,
    grid_size: int = 101,
) -> RemlFit | MultiRemlFit:
    r"""Estimate h² and the variance components by profiled REML or ML.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]; array, or Series indexed by sample ID. Several traits
        [shape: (n_samples, n_traits)], a DataFrame of T ≥ 2 trait columns indexed by sample ID
        or a 2-D array, fit the multi-trait model with one kinship
        (:func:`~bayeslmm.estimation.multivariate.reml_multivariate`, see Notes).
    K
        Kinship [shape: (n_samples, n_samples)]: array, DataFrame indexed by ID, Kinship, or a
        precomputed :class:`~bayeslmm.linalg.spectral.Spectral`. A list (components ``K1``, ``K2``,
        ...) or a dict name → K fits several variance components (see Notes). A
        :class:`~bayeslmm.relatedness.gram.Gram` (:func:`bayeslmm.gram`) stands for K = WW'/M
        without forming it (see Notes).
    X
        Covariates [shape: (n_samples, n_covariates)]; an intercept is added unless X spans
        the constant. None: intercept only.
    method : {"reml", "ml"}
    normalize
        Divide K (each K) by its mean diagonal first (h² then matches GCTA and GEMMA's PVE).
    grid_size
        Points of the initial grid on [0, 1] (one K only).

    Returns
    -------
    RemlFit or MultiRemlFit
        A :class:`MultiRemlFit` (Σg, Σe, h², rg, re with SEs) when y holds several traits.

    Raises
    ------
    InputError
        Several traits with several kinships or with a Gram (the multi-trait fit takes one
        kinship), and everything :func:`reml_multivariate` refuses.

    Notes
    -----
    With several traits, ``reml(Y, K, X, method)`` is ``reml_multivariate(Y, K, X,
    method=method, normalize=normalize)``: :math:`Y = XB + U + E`,
    :math:`\operatorname{vec}(U) \sim N(0, \Sigma_g\otimes K)`,
    :math:`\operatorname{vec}(E) \sim N(0, \Sigma_e\otimes I)`, complete cases only
    (``grid_size`` is not used). A one-column DataFrame is one trait.

    y is first replaced by its least-squares residual on X in units of its residual standard
    deviation, and X by orthogonal columns spanning it
    (:func:`bayeslmm.linalg.spectral.standardize`);
    β, its SEs, the variances and the log-likelihood are transformed back exactly, so the fit
    does not depend on the units or offsets of y and of the covariates (a trait of 1e6 + noise
    used to lose every digit of the profile RSS to cancellation).
    Each evaluation of the profiled likelihood costs O(r·d²) after one rotation of y and X;
    see :func:`profile` for the formulas. The maximum is found by a grid and bounded Brent,
    then refined to where the analytic derivative vanishes (Brent, comparing values, stops
    within ~√ε of the maximizer's scale where the likelihood is flat to round-off). The
    standard error is :math:`(-\partial^2\ell/\partial (h^2)^2)^{-1/2}` at an interior
    maximum; at h² = 0 or 1, or where that information is not positive, it is the width of
    the 95 % profile-likelihood interval divided by 2·1.96, and ``se_method`` says so.

    With a Gram of M model SNPs, K = WW'/M is never formed: its M×M Gram restricted to the
    samples analysed (a downdate when some are dropped) is decomposed in O(M³) and y and X are
    rotated through W'[X, y], one streamed O(N·M) pass over the genotypes
    (:class:`~bayeslmm.linalg.spectral.LowRank`); the profiled likelihood equals the one from
    the N×N kinship ``bl.kinship(genotypes, method=gram.method)`` to round-off, and so do ĥ²
    and its SE (~1e-14 relative): bounded Brent's answer is refined to the root of the
    analytic derivative of the profile (:func:`profile_derivative`), and the curvature is
    taken from differences of that derivative.

    With several kinships, V = σp² (Σ_k h_k K_k + (1 − Σ_k h_k) I): β and σp² are profiled out
    and the shares h_k are maximized by SLSQP on the simplex with the analytic gradient, on
    every face of the simplex too (a share of 0 is a legal answer, flagged by ``at_boundary``).
    There is no common eigenbasis, so each evaluation is a dense Cholesky, O(N³) (as GCTA's
    AI-REML; about 30–60 evaluations per face, 4 faces for two kinships). The SEs come from the
    observed information by differences of the analytic gradient (see
    :func:`bayeslmm.estimation.multi.fit`); ``h2_ci`` is then the Wald interval of the total clipped
    to [0, 1], not a profile interval.

    Examples
    --------
    >>> import bayeslmm as bl
    >>> data = bl.simulate(300, 500, h2=0.5, seed=1)
    >>> fit = bl.reml(data.y, data.K)
    >>> round(fit.h2, 2)  # doctest: +SKIP
    0.47
    """
    if (n_traits := _n_traits(y)) > 1:
        if isinstance(K, Gram):
            raise InputError(
                f"y has {n_traits} trait columns and K is a Gram: the multi-trait fit takes one "
                "kinship (array, DataFrame, Kinship or Spectral); form it with "
                "bl.kinship(genotypes, method=gram.method), or fit each trait alone with "
                "bl.reml(Y[trait], gram, X)."
            )
        if isinstance(K, list | tuple | Mapping):
            raise InputError(
                f"y has {n_traits} trait columns and K holds {len(K)} kinships: several traits "
                "are fitted with one kinship only (several variance components with several "
                "traits are not supported); pass one K, or fit each trait alone with "
                "bl.reml(Y[trait], [K1, K2], X)."
            )
        return reml_multivariate(y, K, X, method=method, normalize=normalize)
    if isinstance(K, list | tuple | Mapping):
        if method not in ("reml", "ml"):
            raise InputError(f"method must be 'reml' or 'ml', got {method!r}.")
        return _reml_components(y, K, X, method, normalize=normalize)
    if isinstance(grid_size, bool) or not isinstance(grid_size, int | np.integer) or grid_size < 3:
        raise InputError(
            f"grid_size must be an integer of at least 3 (points on h² ∈ [0, 1] before the "
            f"bounded search), got {grid_size!r}; the default 101 suits almost every data set."
        )
    if isinstance(K, Gram):  # K = WW'/M through its M×M Gram: no N×N, no U (issue 11)
        prepared, subset = gram_inputs(y, K, X, normalize=normalize)
        std = standardize(prepared.y, prepared.X)
        spectral, rot = subset.basis, subset.rotate_data(std.y, std.X)
    else:
        prepared, spectral = kinship_inputs(y, K, X, normalize=normalize)
        std = standardize(prepared.y, prepared.X)  # invariant to units and offsets, see Notes
        rot = rotate_data(spectral, std.y, std.X)
    h, se, ci, se_method, at = fit_rotated(rot, prepared.covariates, method, grid_size)
    sigma_p2 = float(at.sigma_p2[0]) * std.scale**2
    cov_beta = std.beta_cov(float(at.sigma_p2[0]) * np.linalg.inv(at.xtwx[0]))
    n_eff = prepared.n - (prepared.X.shape[1] if method == "reml" else 0)
    identifiable = _identifiable(spectral.s, prepared.n)
    if se_method == "profile likelihood" and not (h <= 1e-6 or h >= 1 - 1e-6):
        warnings.warn(
            "the observed information of h² is not positive at the estimate; the SE comes from "
            "the profile-likelihood interval.",
            stacklevel=2,
        )
    names = list(prepared.covariates)
    return RemlFit(
        h2=h,
        h2_se=float(se),
        h2_ci=ci,
        se_method=se_method,
        sigma_g2=h * sigma_p2,
        sigma_e2=(1 - h) * sigma_p2,
        sigma_p2=sigma_p2,
        beta=pd.Series(std.beta(at.beta[0]), index=names, name="beta"),
        beta_se=pd.Series(np.sqrt(np.diag(cov_beta)), index=names, name="beta_se"),
        loglik=std.loglik(float(at.loglik[0]), n_eff),
        at_boundary=bool(h <= 1e-6 or h >= 1 - 1e-6),
        method=method,
        n=prepared.n,
        kinship_scale=spectral.scale,
        dropped=prepared.dropped,
        identifiable=identifiable,
    )
