"""Dense, literal reference of the kinship LMM: for reading, teaching and the tests.

.. math::

    y = X\\beta + u + \\varepsilon, \\quad u \\sim N(0, \\sigma_g^2 K), \\quad
    \\varepsilon \\sim N(0, \\sigma_e^2 I), \\quad V = \\sigma_g^2 K + \\sigma_e^2 I

Every function here forms V (or H = h²K + (1 − h²)I) explicitly and uses dense linear algebra,
O(N³) per evaluation (O(N⁴) for the leave-one-out brute force). Nothing is clever on purpose:
each line should read like the equation in MODEL.md beside this file. The package ``bayeslmm``
never imports this module, and this module never imports ``bayeslmm``; the package's tests
compare the fast spectral code against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import optimize, special, stats

LOG_2PI = np.log(2 * np.pi)

# H = h²K + (1 − h²)I is treated as singular (log-likelihood −inf) above this condition number:
# for a low-rank K that happens as h² → 1, where the null-space variance (1 − h²) vanishes.
MAX_CONDITION = 1e12


# --------------------------------------------------------------------------------------------
# Likelihoods
# --------------------------------------------------------------------------------------------


def dense_loglik(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    sigma_e2: float,
) -> float:
    """Gaussian log-likelihood of the LMM with u integrated out, by SciPy.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)].
    X
        Covariates, intercept included [shape: (n_samples, n_covariates)].
    K
        Kinship matrix [shape: (n_samples, n_samples)].
    beta
        Fixed effects [shape: (n_covariates,)].
    sigma_g2, sigma_e2
        Genetic and residual variances (σe² > 0, so V is positive definite).

    Returns
    -------
    float
        log N(y | Xβ, σg² K + σe² I).
    """
    n = len(y)
    V = sigma_g2 * K + sigma_e2 * np.eye(n)
    return float(stats.multivariate_normal.logpdf(y, mean=X @ beta, cov=V))


def gls_beta(y: np.ndarray, X: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Generalized least squares β̂ = (X'V⁻¹X)⁻¹ X'V⁻¹y [shape: (n_covariates,)].

    V may be the covariance or any multiple of it (H = V/σp² gives the same β̂).
    """
    Vinv_X = np.linalg.solve(V, X)
    Vinv_y = np.linalg.solve(V, y)
    return np.linalg.solve(X.T @ Vinv_X, X.T @ Vinv_y)


def restricted_loglik(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    sigma_g2: float,
    sigma_e2: float,
    *,
    include_xtx: bool = True,
) -> float:
    """Restricted (REML) log-likelihood at (σg², σe²); β does not appear in it.

    .. math::

        \\ell_R = -\\tfrac12 \\left[ (N-d)\\log 2\\pi + \\log|V| + \\log|X'V^{-1}X|
                  + (y - X\\hat\\beta)' V^{-1} (y - X\\hat\\beta) \\right]
                  \\; [+ \\tfrac12 \\log|X'X|]

    with β̂ the GLS estimate at V. It is the likelihood of N − d error contrasts A'y (A'X = 0);
    the optional +½ log|X'X| makes it the likelihood of the contrasts with A'A = I, which is
    invariant to a change of basis of X (GEMMA's and GCTA's logL). See :func:`profile_loglik`.

    Parameters
    ----------
    y, X, K
        Phenotype [shape: (n_samples,)], covariates [shape: (n_samples, n_covariates)],
        kinship [shape: (n_samples, n_samples)].
    sigma_g2, sigma_e2
        Variance components.
    include_xtx
        Add +½ log|X'X| (default True, the GEMMA convention).

    Returns
    -------
    float
        ℓ_R(σg², σe²), or −inf where V is numerically singular.
    """
    n, d = X.shape
    V = sigma_g2 * K + sigma_e2 * np.eye(n)
    if np.linalg.cond(V) > MAX_CONDITION:
        return -np.inf
    beta = gls_beta(y, X, V)
    resid = y - X @ beta
    logdet_v = np.linalg.slogdet(V)[1]
    logdet_xvx = np.linalg.slogdet(X.T @ np.linalg.solve(V, X))[1]
    quad = resid @ np.linalg.solve(V, resid)
    loglik = -0.5 * ((n - d) * LOG_2PI + logdet_v + logdet_xvx + quad)
    if include_xtx:
        loglik += 0.5 * np.linalg.slogdet(X.T @ X)[1]
    return float(loglik)


def profile_loglik(
    h2: float,
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    method: str = "reml",
    *,
    include_xtx: bool = True,
) -> float:
    """Profiled (restricted) log-likelihood at h², with β and σp² at their maximizers.

    With H = h²K + (1 − h²)I (so V = σp² H):

    .. math::

        \\hat\\beta = (X'H^{-1}X)^{-1} X'H^{-1} y, \\qquad
        \\mathrm{RSS} = (y - X\\hat\\beta)' H^{-1} (y - X\\hat\\beta)

    ML: σ̂p² = RSS/N and ℓ = −½ [N log(2π σ̂p²) + log|H| + N], the full Gaussian log-likelihood
    at (β̂, σ̂p² H).

    REML: σ̂p² = RSS/(N − d) and
    ℓ = −½ [(N − d) log(2π σ̂p²) + log|H| + log|X'H⁻¹X| + (N − d)]  [+ ½ log|X'X|].

    **Constant convention.** With ``include_xtx=True`` (the default) the REML value includes
    +½ log|X'X|. That is the convention of GEMMA (``logl_reml`` in its log) and GCTA, and the
    one ``bayeslmm.reml`` reports: on the EUR example of ``tests/data/eur`` this function with
    ``include_xtx=True`` reproduces GEMMA 0.98.5's logl_reml to 4 decimals (−516.7818 vs
    −516.782 and −530.4505 vs −530.451); without the term it is off by ½ log|X'X| (9.15 and
    2.96). The term does not depend on h², so the maximizer, the SE and the posterior of h² are
    the same in both conventions. ``include_xtx`` is ignored for ML.

    Parameters
    ----------
    h2
        Heritability in [0, 1].
    y, X, K
        Phenotype [shape: (n_samples,)], covariates [shape: (n_samples, n_covariates)],
        kinship [shape: (n_samples, n_samples)].
    method
        ``"reml"`` or ``"ml"``.
    include_xtx
        REML only: add +½ log|X'X|.

    Returns
    -------
    float
        The profiled log-likelihood, −inf where H is numerically singular (h² = 1 with a
        rank-deficient K).
    """
    if method not in ("reml", "ml"):
        raise ValueError(f"method must be 'reml' or 'ml', got {method!r}")
    n, d = X.shape
    H = h2 * K + (1 - h2) * np.eye(n)
    if np.linalg.cond(H) > MAX_CONDITION:
        return -np.inf
    beta = gls_beta(y, X, H)
    resid = y - X @ beta
    rss = resid @ np.linalg.solve(H, resid)
    logdet_h = np.linalg.slogdet(H)[1]
    if method == "ml":
        sigma_p2 = rss / n
        return float(-0.5 * (n * np.log(2 * np.pi * sigma_p2) + logdet_h + n))
    sigma_p2 = rss / (n - d)
    logdet_xhx = np.linalg.slogdet(X.T @ np.linalg.solve(H, X))[1]
    loglik = -0.5 * ((n - d) * np.log(2 * np.pi * sigma_p2) + logdet_h + logdet_xhx + (n - d))
    if include_xtx:
        loglik += 0.5 * np.linalg.slogdet(X.T @ X)[1]
    return float(loglik)


# --------------------------------------------------------------------------------------------
# Brute-force (RE)ML
# --------------------------------------------------------------------------------------------


def _joint_loglik(
    log_variances: np.ndarray,
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    method: str,
    include_xtx: bool,
) -> float:
    """(RE)ML log-likelihood at (log σg², log σe²), NOT profiled in σp²; β by GLS for ML."""
    sigma_g2, sigma_e2 = np.exp(log_variances)
    if method == "reml":
        return restricted_loglik(y, X, K, sigma_g2, sigma_e2, include_xtx=include_xtx)
    V = sigma_g2 * K + sigma_e2 * np.eye(len(y))
    if np.linalg.cond(V) > MAX_CONDITION:
        return -np.inf
    return dense_loglik(y, X, K, gls_beta(y, X, V), sigma_g2, sigma_e2)


def brute_force_fit(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    method: str = "reml",
    *,
    include_xtx: bool = True,
) -> dict:
    """Maximize the dense (RE)ML likelihood by brute force; return the better of two searches.

    1. Joint search: Nelder–Mead over (log σg², log σe²) from four starts, on the dense
       likelihood (:func:`restricted_loglik` for REML; for ML :func:`dense_loglik` with β at
       its GLS value). Nothing is profiled in σp² here.
    2. Profile search: :func:`profile_loglik` on a 2001-point grid of h² ∈ [0, 1] (both
       endpoints included, so h² = 0 and h² = 1 are reachable), refined by bounded Brent
       (``minimize_scalar``) between the neighbours of the best grid point.

    The joint search cannot reach a boundary (log σ² → −∞); the grid can. Search 2 also
    returns σg² = h²σ̂p², σe² = (1 − h²)σ̂p² with σ̂p² = RSS/N (ML) or RSS/(N − d) (REML).

    Parameters
    ----------
    y, X, K
        Phenotype [shape: (n_samples,)], covariates [shape: (n_samples, n_covariates)],
        kinship [shape: (n_samples, n_samples)].
    method
        ``"reml"`` or ``"ml"``.
    include_xtx
        REML only: the +½ log|X'X| convention of :func:`profile_loglik`.

    Returns
    -------
    dict
        ``h2``, ``sigma_g2``, ``sigma_e2``, ``beta`` (GLS at the optimum,
        [shape: (n_covariates,)]), ``loglik``, and ``search`` (``"joint"`` or ``"profile"``,
        whichever found the larger log-likelihood).

    Notes
    -----
    With ML, a kinship whose null space is spanned by columns of X (a centred K of full rank
    N − 1 and an intercept) has an unbounded likelihood as h² → 1: the null-space residual is
    exactly 0 while its variance (1 − h²)σp² → 0. Both searches then chase that spike and the
    result is meaningless; REML does not have it (log|X'H⁻¹X| cancels the divergence).
    """
    if method not in ("reml", "ml"):
        raise ValueError(f"method must be 'reml' or 'ml', got {method!r}")
    n, d = X.shape

    # 1. joint search over (log σg², log σe²)
    def negative_joint(theta: np.ndarray) -> float:
        value = _joint_loglik(theta, y, X, K, method, include_xtx)
        return -value if np.isfinite(value) else np.inf

    var_y = np.var(y)
    joint = None
    for fraction in (0.05, 0.3, 0.6, 0.95):
        start = np.log([fraction * var_y, (1 - fraction) * var_y])
        result = optimize.minimize(
            negative_joint,
            start,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10000},
        )
        if joint is None or result.fun < joint.fun:
            joint = result
    sigma_g2, sigma_e2 = np.exp(joint.x)
    candidates = [("joint", -joint.fun, sigma_g2, sigma_e2)]

    # 2. profile search over h² ∈ [0, 1]: grid, then Brent around the best grid point
    def negative_profile(h2: float) -> float:
        value = profile_loglik(h2, y, X, K, method, include_xtx=include_xtx)
        return -value if np.isfinite(value) else np.inf

    grid = np.linspace(0.0, 1.0, 2001)
    values = np.array([-negative_profile(h) for h in grid])
    k = int(np.argmax(values))
    h2_best, loglik_best = grid[k], values[k]
    lower, upper = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    brent = optimize.minimize_scalar(
        negative_profile, bounds=(lower, upper), method="bounded", options={"xatol": 1e-12}
    )
    if -brent.fun > loglik_best:
        h2_best, loglik_best = float(brent.x), -brent.fun
    H = h2_best * K + (1 - h2_best) * np.eye(n)
    resid = y - X @ gls_beta(y, X, H)
    sigma_p2 = resid @ np.linalg.solve(H, resid) / (n - d if method == "reml" else n)
    candidates.append(("profile", loglik_best, h2_best * sigma_p2, (1 - h2_best) * sigma_p2))

    search, loglik, sigma_g2, sigma_e2 = max(candidates, key=lambda c: c[1])
    V = sigma_g2 * K + sigma_e2 * np.eye(n)
    return {
        "h2": float(sigma_g2 / (sigma_g2 + sigma_e2)),
        "sigma_g2": float(sigma_g2),
        "sigma_e2": float(sigma_e2),
        "beta": gls_beta(y, X, V),
        "loglik": float(loglik),
        "search": search,
    }


# --------------------------------------------------------------------------------------------
# Exact posterior of h² on a grid
# --------------------------------------------------------------------------------------------


def grid_posterior_h2(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    grid: np.ndarray | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior density of h² under flat β, Jeffreys σp² and a Beta(a, b) prior on h².

    Integrating β (flat) and σp² (p(σp²) ∝ 1/σp²) out of N(y | Xβ, σp² H) leaves

    .. math::

        p(h^2 | y) \\propto \\mathrm{Beta}(h^2; a, b)\\, |H|^{-1/2}\\, |X'H^{-1}X|^{-1/2}\\,
                   \\mathrm{RSS}^{-(N-d)/2} \\propto \\mathrm{Beta}(h^2; a, b)\\,
                   \\exp \\ell_{REML}(h^2)

    (MODEL.md derives it). The log density is evaluated on the grid, shifted by its logsumexp
    and normalized with the trapezoid rule. Grid points where it is not finite get density 0:
    h² = 1 with a rank-deficient K (H singular, the limit of the density is 0 there), and an
    endpoint where the Beta density is infinite (a < 1 or b < 1; prefer a, b ≥ 1 here).

    Parameters
    ----------
    y, X, K
        Phenotype [shape: (n_samples,)], covariates [shape: (n_samples, n_covariates)],
        kinship [shape: (n_samples, n_samples)].
    grid
        Increasing values of h² in [0, 1]; default 2001 equally spaced points, both ends included.
    prior
        (a, b) of the Beta prior on h².

    Returns
    -------
    grid, density
        The grid and the normalized density on it [shape: (n_grid,)].
    """
    grid = np.linspace(0.0, 1.0, 2001) if grid is None else np.asarray(grid, dtype=float)
    a, b = prior
    log_likelihood = np.array([profile_loglik(h, y, X, K, "reml") for h in grid])
    with np.errstate(divide="ignore"):
        log_prior = stats.beta.logpdf(grid, a, b)
    log_post = log_likelihood + log_prior
    log_post = np.where(np.isfinite(log_post), log_post, -np.inf)
    density = np.exp(log_post - special.logsumexp(log_post))
    density /= np.trapezoid(density, grid)
    return grid, density


def grid_posterior_summary(grid: np.ndarray, density: np.ndarray) -> dict:
    """Mean, SD and 2.5 % / 97.5 % quantiles of a density tabulated on a grid.

    Moments by the trapezoid rule; quantiles by linear interpolation of the trapezoid CDF.

    Returns
    -------
    dict
        ``mean``, ``sd``, ``q025``, ``q975``.
    """
    mean = np.trapezoid(grid * density, grid)
    sd = np.sqrt(np.trapezoid((grid - mean) ** 2 * density, grid))
    cdf = np.concatenate([[0.0], np.cumsum(np.diff(grid) * (density[1:] + density[:-1]) / 2)])
    cdf /= cdf[-1]
    return {
        "mean": float(mean),
        "sd": float(sd),
        "q025": float(np.interp(0.025, cdf, grid)),
        "q975": float(np.interp(0.975, cdf, grid)),
    }


# --------------------------------------------------------------------------------------------
# Breeding values and leave-one-out
# --------------------------------------------------------------------------------------------


def conditional_u(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    sigma_e2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian posterior of u given (β, σg², σe², y).

    .. math::

        u \\mid \\cdot \\sim N\\left(\\sigma_g^2 K V^{-1} (y - X\\beta),\\;
        \\sigma_g^2 K - \\sigma_g^2 K V^{-1} \\sigma_g^2 K\\right),
        \\quad V = \\sigma_g^2 K + \\sigma_e^2 I

    Returns
    -------
    mean, cov
        [shape: (n_samples,)] and [shape: (n_samples, n_samples)]. The mean is the BLUP.
    """
    n = len(y)
    G = sigma_g2 * K  # prior covariance of u
    V = G + sigma_e2 * np.eye(n)  # covariance of y
    mean = G @ np.linalg.solve(V, y - X @ beta)
    cov = G - G @ np.linalg.solve(V, G)
    return mean, cov


def dense_loo_pointwise(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    sigma_e2: float,
) -> np.ndarray:
    """Exact leave-one-out log predictive densities log p(y_i | y_−i, θ), by brute force.

    For each i, condition the N-dimensional Gaussian y ~ N(Xβ, V) on the other N − 1
    observations (Schur complement):

    .. math::

        y_i \\mid y_{-i} \\sim N\\left(\\mu_i + V_{i,-i} V_{-i,-i}^{-1} (y_{-i} - \\mu_{-i}),\\;
        V_{ii} - V_{i,-i} V_{-i,-i}^{-1} V_{-i,i}\\right)

    O(N⁴) in all; the package uses the closed form −½ log 2π + ½ log c_ii − ½ g_i²/c_ii.

    Returns
    -------
    numpy.ndarray
        [shape: (n_samples,)].
    """
    n = len(y)
    mu = X @ beta
    V = sigma_g2 * K + sigma_e2 * np.eye(n)
    out = np.empty(n)
    for i in range(n):
        rest = np.delete(np.arange(n), i)
        weights = np.linalg.solve(V[np.ix_(rest, rest)], V[rest, i])  # V_{-i,-i}⁻¹ V_{-i,i}
        cond_mean = mu[i] + weights @ (y[rest] - mu[rest])
        cond_var = V[i, i] - V[i, rest] @ weights
        out[i] = stats.norm.logpdf(y[i], loc=cond_mean, scale=np.sqrt(cond_var))
    return out


# --------------------------------------------------------------------------------------------
# The literal PyMC model
# --------------------------------------------------------------------------------------------


def _beta_prior(y: np.ndarray, X: np.ndarray, priors: str) -> pt.TensorVariable:
    """β ~ centred-intercept Normal (below), or Flat; dims ``covariate``.

    The intercept's prior is placed at the covariate means, as rstanarm does: with c the
    constant column and x̄_j the means of the others, α = β_c + Σ_j x̄_j β_j ~ N(mean(y),
    (10 sd(y))²) independently of β_j ~ N(0, (10 sd(y)/sd(x_j))²). β = A (α, β_j) with A the
    identity plus −x̄_j in row c, so β ~ MvNormal(μ, A diag(σ²) A'): moving a covariate by a
    constant (a date, a year of birth) moves the prior with it. Without covariates besides
    the intercept (or without an intercept) this is the independent Normal. SDs with ddof = 1.
    """
    if priors == "flat":
        return pm.Flat("beta", dims="covariate")
    sd_y = np.std(y, ddof=1)
    constant = np.ptp(X, axis=0) == 0
    sd_x = np.where(constant, 1.0, np.std(X, axis=0, ddof=1))
    mu_beta = np.where(constant, np.mean(y), 0.0)
    sigma_beta = np.where(constant, 10 * sd_y, 10 * sd_y / sd_x)
    if constant.sum() != 1 or X.shape[1] == 1:
        return pm.Normal("beta", mu=mu_beta, sigma=sigma_beta, dims="covariate")
    A = np.eye(X.shape[1])
    A[np.flatnonzero(constant)[0], ~constant] = -X[:, ~constant].mean(axis=0)
    cov = A @ np.diag(sigma_beta**2) @ A.T
    return pm.MvNormal("beta", mu=mu_beta, cov=cov, dims="covariate")


def _variance_components(
    y: np.ndarray, priors: str, parametrization: str
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Priors on (h², σp²) or (σg², σe²); returns the tensors σg², σe²."""
    sd_y = np.std(y, ddof=1)
    if parametrization == "variance":
        var_y = sd_y**2
        sigma_g2 = pm.HalfStudentT("sigma_g2", nu=3, sigma=var_y)
        sigma_e2 = pm.HalfStudentT("sigma_e2", nu=3, sigma=var_y)
        pm.Deterministic("h2", sigma_g2 / (sigma_g2 + sigma_e2))
        return sigma_g2, sigma_e2
    h2 = pm.Beta("h2", alpha=1, beta=1)
    if priors == "flat":
        # Jeffreys: p(σp) ∝ 1/σp, i.e. flat on log σp, i.e. p(σp²) ∝ 1/σp²
        log_sigma_p = pm.Flat("log_sigma_p")
        sigma_p = pm.Deterministic("sigma_p", pt.exp(log_sigma_p))
    else:
        sigma_p = pm.HalfStudentT("sigma_p", nu=3, sigma=sd_y)
    sigma_g2 = pm.Deterministic("sigma_g2", h2 * sigma_p**2)
    sigma_e2 = pm.Deterministic("sigma_e2", (1 - h2) * sigma_p**2)
    return sigma_g2, sigma_e2


def _check_options(priors: str, parametrization: str) -> None:
    if priors not in ("default", "flat"):
        raise ValueError(f"priors must be 'default' or 'flat', got {priors!r}")
    if parametrization not in ("h2", "variance"):
        raise ValueError(f"parametrization must be 'h2' or 'variance', got {parametrization!r}")
    if priors == "flat" and parametrization != "h2":
        raise ValueError("priors='flat' (flat β, Jeffreys σp²) is defined for parametrization='h2'")


def default_covariate_names(n_covariates: int) -> list[str]:
    """``["intercept", "x1", "x2", ...]``: the first column of X is taken to be the intercept."""
    return ["intercept"] + [f"x{j}" for j in range(1, n_covariates)]


def dense_kinship_model(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    priors: str = "default",
    parametrization: str = "h2",
    covariates: Sequence[str] | None = None,
) -> pm.Model:
    """The literal PyMC model: y ~ MvNormal(Xβ, σg² K + σe² I), O(N³) per evaluation.

    Priors (``priors="default"``, ``parametrization="h2"``)::

        h2       ~ Beta(1, 1)
        sigma_p  ~ HalfStudentT(nu=3, sigma=sd(y))
        beta     ~ Normal(mean(y), 10 sd(y))            intercept (a constant column)
                   Normal(0, 10 sd(y) / sd(x_j))         other columns
        sigma_g2 = h2 · sigma_p²,  sigma_e2 = (1 − h2) · sigma_p²     (Deterministic)

    ``parametrization="variance"``: sigma_g2, sigma_e2 ~ HalfStudentT(nu=3, sigma=var(y)) and
    h2 = sigma_g2 / (sigma_g2 + sigma_e2) (Deterministic); β as above.

    ``priors="flat"`` (the exact-check priors, h² parametrization only): beta ~ Flat,
    log_sigma_p ~ Flat with sigma_p = exp(log_sigma_p) (Jeffreys: p(σp²) ∝ 1/σp²),
    h2 ~ Beta(1, 1).

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)].
    X
        Covariates with the intercept as a column [shape: (n_samples, n_covariates)].
    K
        Kinship [shape: (n_samples, n_samples)], used as given.
    priors
        ``"default"`` or ``"flat"``.
    parametrization
        ``"h2"`` or ``"variance"``.
    covariates
        Names for the ``covariate`` dim; default ``["intercept", "x1", ...]``.

    Returns
    -------
    pymc.Model
        Coordinates ``sample`` = 0..N−1 and ``covariate``; observed ``y`` with dims ``sample``.
    """
    _check_options(priors, parametrization)
    n, d = X.shape
    coords = {
        "sample": np.arange(n),
        "covariate": list(covariates) if covariates is not None else default_covariate_names(d),
    }
    with pm.Model(coords=coords) as model:
        beta = _beta_prior(y, X, priors)
        sigma_g2, sigma_e2 = _variance_components(y, priors, parametrization)
        pm.MvNormal(
            "y",
            mu=pt.as_tensor(X) @ beta,
            cov=sigma_g2 * K + sigma_e2 * np.eye(n),
            observed=y,
            dims="sample",
        )
    return model


# --------------------------------------------------------------------------------------------
# Exact posterior draws and single leave-one-out densities (model comparison tests)
# --------------------------------------------------------------------------------------------


def exact_posterior_draws(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
    grid: np.ndarray | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
) -> dict:
    """Independent draws from the posterior under flat β, Jeffreys σp² and Beta(a, b) on h².

    No MCMC: h² is drawn from :func:`grid_posterior_h2` (the grid point with probability
    proportional to its trapezoid weight, so h² takes grid values only; the default grid is the
    2000 cell midpoints of [0, 1], avoiding σe² = 0 at h² = 1, where a conditional density of
    a rank-deficient V is degenerate), then

    .. math::

        \\sigma_p^2 \\mid h^2, y \\sim \\text{Inv-Gamma}\\big(\\tfrac{N-d}{2},
        \\tfrac{\\mathrm{RSS}}{2}\\big), \\qquad
        \\beta \\mid \\sigma_p^2, h^2, y \\sim N\\big(\\hat\\beta,
        \\sigma_p^2 (X'H^{-1}X)^{-1}\\big),

    with H = h²K + (1 − h²)I, β̂ the GLS estimate and RSS its weighted residual sum of squares
    (integrating β out of N(y | Xβ, σp²H) leaves (σp²)^{-(N−d)/2} exp(−RSS/2σp²), and the
    Jeffreys prior adds 1/σp²).

    Returns
    -------
    dict
        ``h2``, ``sigma_p2``, ``sigma_g2``, ``sigma_e2`` [shape: (n_draws,)] and ``beta``
        [shape: (n_draws, n_covariates)].
    """
    n, d = X.shape
    grid = (np.arange(2000) + 0.5) / 2000 if grid is None else np.asarray(grid, dtype=float)
    grid, density = grid_posterior_h2(y, X, K, grid, prior)
    weights = np.zeros_like(density)
    steps = np.diff(grid)
    weights[:-1] += steps * density[:-1] / 2
    weights[1:] += steps * density[1:] / 2
    index = rng.choice(len(grid), size=n_draws, p=weights / weights.sum())
    h2 = grid[index]
    sigma_p2 = np.empty(n_draws)
    beta = np.empty((n_draws, d))
    for k in np.unique(index):
        rows = np.flatnonzero(index == k)
        H = grid[k] * K + (1 - grid[k]) * np.eye(n)
        beta_hat = gls_beta(y, X, H)
        resid = y - X @ beta_hat
        rss = resid @ np.linalg.solve(H, resid)
        s2 = stats.invgamma.rvs((n - d) / 2, scale=rss / 2, size=len(rows), random_state=rng)
        cov = np.linalg.inv(X.T @ np.linalg.solve(H, X))
        z = rng.standard_normal((len(rows), d)) @ np.linalg.cholesky(cov).T
        sigma_p2[rows] = s2
        beta[rows] = beta_hat + np.sqrt(s2)[:, None] * z
    return {
        "h2": h2,
        "sigma_p2": sigma_p2,
        "sigma_g2": h2 * sigma_p2,
        "sigma_e2": (1 - h2) * sigma_p2,
        "beta": beta,
    }


def dense_conditional_logpdf(
    i: int,
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
) -> np.ndarray:
    """log p(y_i | y_−i, θ) for one sample i and many draws θ, by the Schur complement.

    The same conditional normal as :func:`dense_loo_pointwise`, for one i and each row of
    ``beta`` [shape: (draws, n_covariates)] with ``sigma_g2``, ``sigma_e2`` [shape: (draws,)].

    Returns
    -------
    numpy.ndarray
        [shape: (draws,)].
    """
    n = len(y)
    rest = np.delete(np.arange(n), i)
    out = np.empty(len(sigma_g2))
    for start in range(0, len(sigma_g2), 256):  # batches of draws, each V formed in full
        s = slice(start, start + 256)
        mu = beta[s] @ X.T  # [shape: (batch, n_samples)]
        V = sigma_g2[s, None, None] * K + sigma_e2[s, None, None] * np.eye(n)
        V_rest = V[:, rest][:, :, rest]  # V_{-i,-i}
        V_cross = V[:, rest, i]  # V_{-i,i}
        weights = np.linalg.solve(V_rest, V_cross[..., None])[..., 0]
        cond_mean = mu[:, i] + np.sum(weights * (y[rest] - mu[:, rest]), axis=1)
        cond_var = V[:, i, i] - np.sum(V_cross * weights, axis=1)
        out[s] = stats.norm.logpdf(y[i], loc=cond_mean, scale=np.sqrt(cond_var))
    return out
