"""Dense, literal reference forms of the kinship LMM (for reading, teaching and the tests).

    y = Xβ + u + ε,   u ~ N(0, σg² K),   ε ~ N(0, σe² I),   V = σg² K + σe² I

Everything here forms V (or H = h²K + (1−h²)I) explicitly and uses dense linear algebra: O(N³)
per evaluation. The package never imports this module; its tests compare the fast spectral
code against it. See MODEL.md beside this file for the equations.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import optimize, special, stats

LOG_2PI = np.log(2 * np.pi)


def dense_loglik(y, X, K, beta, sigma_g2, sigma_e2) -> float:
    """log N(y | Xβ, σg² K + σe² I), by scipy."""
    V = sigma_g2 * K + sigma_e2 * np.eye(len(y))
    return float(stats.multivariate_normal(X @ beta, V).logpdf(y))


def profile_loglik(h2, y, X, K, method="reml") -> float:
    """Profiled (restricted) log-likelihood at h², with β and σp² at their maximizers.

    H = h²K + (1−h²)I; β̂ = (X'H⁻¹X)⁻¹X'H⁻¹y; RSS = (y−Xβ̂)'H⁻¹(y−Xβ̂).
    ML:   σ̂p² = RSS/N,     ℓ = −½[N log(2πσ̂p²) + log|H| + N].
    REML: σ̂p² = RSS/(N−d), ℓ = −½[(N−d) log(2πσ̂p²) + log|H| + log|X'H⁻¹X| − log|X'X| + (N−d)],
    the GEMMA/GCTA convention (the −log|X'X| makes ℓ invariant to a change of basis of X).
    Returns −inf where H is singular.
    """
    n, d = X.shape
    H = h2 * K + (1 - h2) * np.eye(n)
    sign, logdet_h = np.linalg.slogdet(H)
    if sign <= 0 or not np.isfinite(logdet_h) or np.linalg.cond(H) > 1e12:
        return -np.inf
    Hinv = np.linalg.inv(H)
    xtx_h = X.T @ Hinv @ X
    beta = np.linalg.solve(xtx_h, X.T @ Hinv @ y)
    r = y - X @ beta
    rss = r @ Hinv @ r
    if method == "ml":
        s2 = rss / n
        return float(-0.5 * (n * (LOG_2PI + np.log(s2)) + logdet_h + n))
    s2 = rss / (n - d)
    logdet_xhx = np.linalg.slogdet(xtx_h)[1]
    logdet_xx = np.linalg.slogdet(X.T @ X)[1]
    return float(
        -0.5 * ((n - d) * (LOG_2PI + np.log(s2)) + logdet_h + logdet_xhx - logdet_xx + (n - d))
    )


def _gls(y, X, V):
    Vinv = np.linalg.inv(V)
    return np.linalg.solve(X.T @ Vinv @ X, X.T @ Vinv @ y)


def _dense_objective(log_sigmas, y, X, K, method):
    """(RE)ML log-likelihood in (σg², σe²) with β profiled by GLS (not profiled in h²)."""
    sg2, se2 = np.exp(log_sigmas)
    n, d = X.shape
    V = sg2 * K + se2 * np.eye(n)
    try:
        beta = _gls(y, X, V)
        ll = stats.multivariate_normal(X @ beta, V).logpdf(y)
    except (np.linalg.LinAlgError, ValueError):  # σe² → 0 with a singular K
        return -np.inf
    if method == "reml":
        ll += 0.5 * d * LOG_2PI - 0.5 * np.linalg.slogdet(X.T @ np.linalg.inv(V) @ X)[1]
        ll += 0.5 * np.linalg.slogdet(X.T @ X)[1]
    return ll


def brute_force_fit(y, X, K, method="reml") -> dict:
    """Maximize the dense (RE)ML likelihood by brute force; return the better of two searches.

    1. Nelder–Mead over (log σg², log σe²) from several starts, on the dense likelihood.
    2. A 2001-point grid of the dense profile likelihood in h² ∈ [0, 1] (endpoints included),
       refined by bounded Brent around the best grid point.
    """
    var_y = np.var(y)
    best = None
    for frac in (0.05, 0.3, 0.6, 0.95):
        start = np.log([frac * var_y, (1 - frac) * var_y])
        res = optimize.minimize(
            lambda t: -_dense_objective(t, y, X, K, method),
            start,  # noqa: B023
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000},
        )
        if best is None or res.fun < best.fun:
            best = res
    sg2, se2 = np.exp(best.x)
    candidates = [(-best.fun, sg2 / (sg2 + se2), sg2, se2)]
    grid = np.linspace(0, 1, 2001)
    values = np.array([profile_loglik(h, y, X, K, method) for h in grid])
    k = int(np.argmax(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(
        lambda h: -profile_loglik(h, y, X, K, method),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-12},
    )
    h_best, l_best = (res.x, -res.fun) if -res.fun > values[k] else (grid[k], values[k])
    n, d = X.shape
    H = h_best * K + (1 - h_best) * np.eye(n)
    beta = _gls(y, X, H)
    r = y - X @ beta
    s2 = (r @ np.linalg.solve(H, r)) / (n - d if method == "reml" else n)
    candidates.append((l_best, h_best, h_best * s2, (1 - h_best) * s2))
    loglik, h2, sg2, se2 = max(candidates, key=lambda c: c[0])
    beta = _gls(y, X, sg2 * K + se2 * np.eye(n))
    return {
        "h2": float(h2),
        "sigma_g2": float(sg2),
        "sigma_e2": float(se2),
        "beta": beta,
        "loglik": float(loglik),
    }


def grid_posterior_h2(y, X, K, grid=None, prior=(1.0, 1.0)):
    """Exact posterior density of h² under flat β, Jeffreys σp² and a Beta prior on h².

    Integrating β (flat) and σp² (p ∝ 1/σp²) out of N(y | Xβ, σp² H) leaves
    p(h² | y) ∝ Beta(h²; a, b) · |H|^{−½} |X'H⁻¹X|^{−½} RSS^{−(N−d)/2} ∝ Beta · exp(ℓ_REML(h²)).
    """
    grid = np.linspace(0, 1, 2001) if grid is None else np.asarray(grid)
    a, b = prior
    log_post = np.array([profile_loglik(h, y, X, K, "reml") for h in grid])
    with np.errstate(divide="ignore"):
        log_post = log_post + stats.beta(a, b).logpdf(grid)
    log_post = np.where(np.isfinite(log_post), log_post, -np.inf)
    density = np.exp(log_post - special.logsumexp(log_post[np.isfinite(log_post)]))
    density /= np.trapezoid(density, grid)
    return grid, density


def grid_posterior_summary(grid, density) -> dict:
    """Mean, sd and 2.5 % / 97.5 % quantiles of a density tabulated on a grid."""
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


def conditional_u(y, X, K, beta, sigma_g2, sigma_e2):
    """u | y, β, σg², σe² ~ N(σg²K V⁻¹(y − Xβ), σg²K − σg²K V⁻¹ σg²K)."""
    n = len(y)
    V = sigma_g2 * K + sigma_e2 * np.eye(n)
    G = sigma_g2 * K
    Vinv = np.linalg.inv(V)
    return G @ Vinv @ (y - X @ beta), G - G @ Vinv @ G


def dense_loo_pointwise(y, X, K, beta, sigma_g2, sigma_e2):
    """log p(y_i | y_−i, θ) for each i, by conditioning the N-dim Gaussian (Schur complement)."""
    n = len(y)
    mu = X @ beta
    V = sigma_g2 * K + sigma_e2 * np.eye(n)
    out = np.empty(n)
    for i in range(n):
        rest = np.delete(np.arange(n), i)
        w = np.linalg.solve(V[np.ix_(rest, rest)], V[rest, i])
        mean = mu[i] + w @ (y[rest] - mu[rest])
        var = V[i, i] - V[i, rest] @ w
        out[i] = stats.norm(mean, np.sqrt(var)).logpdf(y[i])
    return out


def _beta_prior(y, X, priors):
    """β ~ Normal(mean(y) for a constant column else 0, 10·sd(y)/sd(x_j)) or Flat."""
    if priors == "flat":
        return pm.Flat("beta", dims="covariate")
    sd_y = np.std(y, ddof=1)
    sd_x = np.std(X, axis=0, ddof=1)
    constant = sd_x == 0
    mu = np.where(constant, np.mean(y), 0.0)
    sigma = np.where(constant, 10 * sd_y, 10 * sd_y / np.where(constant, 1.0, sd_x))
    return pm.Normal("beta", mu=mu, sigma=sigma, dims="covariate")


def _variance_components(y, priors, parametrization):
    sd_y = np.std(y, ddof=1)
    if parametrization == "variance":
        sigma_g2 = pm.HalfStudentT("sigma_g2", nu=3, sigma=sd_y**2)
        sigma_e2 = pm.HalfStudentT("sigma_e2", nu=3, sigma=sd_y**2)
        pm.Deterministic("h2", sigma_g2 / (sigma_g2 + sigma_e2))
        return sigma_g2, sigma_e2
    h2 = pm.Beta("h2", alpha=1, beta=1)
    if priors == "flat":  # Jeffreys: p(σp) ∝ 1/σp, i.e. flat on log σp
        log_sigma_p = pm.Flat("log_sigma_p")
        sigma_p = pm.Deterministic("sigma_p", pt.exp(log_sigma_p))
    else:
        sigma_p = pm.HalfStudentT("sigma_p", nu=3, sigma=sd_y)
    sigma_g2 = pm.Deterministic("sigma_g2", h2 * sigma_p**2)
    sigma_e2 = pm.Deterministic("sigma_e2", (1 - h2) * sigma_p**2)
    return sigma_g2, sigma_e2


def dense_kinship_model(y, X, K, priors="default", parametrization="h2", covariates=None):
    """The literal PyMC model: y ~ MvNormal(Xβ, σg² K + σe² I), O(N³) per evaluation."""
    n, d = X.shape
    coords = {
        "sample": np.arange(n),
        "covariate": covariates or ["intercept"] + [f"x{j}" for j in range(1, d)],
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
