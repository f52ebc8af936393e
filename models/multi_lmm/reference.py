"""Dense, literal reference of the LMM with several variance components.

.. math::

    y = X\\beta + \\sum_k u_k + \\varepsilon, \\quad u_k \\sim N(0, \\sigma_k^2 K_k), \\quad
    \\varepsilon \\sim N(0, \\sigma_e^2 I), \\quad V = \\sum_k \\sigma_k^2 K_k + \\sigma_e^2 I

Every function forms V (or H = Σ h_k K_k + (1 − Σ h_k) I) and uses dense linear algebra,
O(N³) per evaluation. Nothing is clever on purpose; each line should read like MODEL.md. The
package ``bayeslmm`` never imports this module and this module never imports ``bayeslmm``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pymc as pm
from scipy import optimize, stats

LOG_2PI = np.log(2 * np.pi)
MAX_CONDITION = 1e12


def covariance(Ks: Sequence[np.ndarray], sigma_k2: Sequence[float], sigma_e2: float) -> np.ndarray:
    """V = Σ σk² Kk + σe² I [shape: (n_samples, n_samples)]."""
    n = Ks[0].shape[0]
    return sum(s2 * K for s2, K in zip(sigma_k2, Ks, strict=True)) + sigma_e2 * np.eye(n)


def dense_loglik(y, X, Ks, beta, sigma_k2, sigma_e2) -> float:
    """log N(y | Xβ, Σ σk² Kk + σe² I), by SciPy."""
    V = covariance(Ks, sigma_k2, sigma_e2)
    return float(stats.multivariate_normal.logpdf(y, mean=X @ beta, cov=V))


def conditional_loglik(y, mean, K, sigma_g2, sigma_e2) -> float:
    """log N(y | mean, σg² K + σe² I): y given the latent components (in ``mean``)."""
    V = sigma_g2 * K + sigma_e2 * np.eye(len(y))
    return float(stats.multivariate_normal.logpdf(y, mean=mean, cov=V))


def loo_dense(y, X, Ks, beta, sigma_k2, sigma_e2) -> np.ndarray:
    """log p(y_i | y_−i, θ) for every i, from C = V⁻¹ and g = C(y − Xβ) [shape: (n,)].

    log p(y_i | y_−i) = −½ log 2π + ½ log c_ii − ½ g_i² / c_ii.
    """
    C = np.linalg.inv(covariance(Ks, sigma_k2, sigma_e2))
    g = C @ (y - X @ beta)
    c = np.diag(C)
    return -0.5 * LOG_2PI + 0.5 * np.log(c) - 0.5 * g**2 / c


def loo_brute_force(y, X, Ks, beta, sigma_k2, sigma_e2) -> np.ndarray:
    """The same by conditioning each y_i on the others with the Gaussian formulas (O(N⁴))."""
    V = covariance(Ks, sigma_k2, sigma_e2)
    mu = X @ beta
    out = np.empty(len(y))
    for i in range(len(y)):
        rest = np.delete(np.arange(len(y)), i)
        w = np.linalg.solve(V[np.ix_(rest, rest)], V[rest, i])
        mean = mu[i] + w @ (y[rest] - mu[rest])
        var = V[i, i] - V[i, rest] @ w
        out[i] = stats.norm.logpdf(y[i], mean, np.sqrt(var))
    return out


def conditional_mean_u(y, X, Ks, beta, sigma_k2, sigma_e2) -> np.ndarray:
    """E[u_k | y, θ] = σk² Kk V⁻¹ (y − Xβ) for each k [shape: (k, n)]."""
    V = covariance(Ks, sigma_k2, sigma_e2)
    g = np.linalg.solve(V, y - X @ beta)
    return np.array([s2 * K @ g for s2, K in zip(sigma_k2, Ks, strict=True)])


def conditional_cov_u(Ks, sigma_k2, sigma_e2, k: int) -> np.ndarray:
    """Cov[u_k | y, θ] = σk² Kk − σk⁴ Kk V⁻¹ Kk."""
    V = covariance(Ks, sigma_k2, sigma_e2)
    G = sigma_k2[k] * Ks[k]
    return G - G @ np.linalg.solve(V, G)


# --------------------------------------------------------------------------------------------
# (RE)ML
# --------------------------------------------------------------------------------------------


def gls_beta(y, X, V) -> np.ndarray:
    """β̂ = (X'V⁻¹X)⁻¹ X'V⁻¹y."""
    return np.linalg.solve(X.T @ np.linalg.solve(V, X), X.T @ np.linalg.solve(V, y))


def loglik(y, X, Ks, sigma_k2, sigma_e2, method: str = "reml") -> float:
    """(RE)ML log-likelihood at the variance components, NOT profiled in any variance.

    ML: log N(y | Xβ̂, V) with β̂ the GLS estimate.
    REML: −½[(N − d) log 2π + log|V| + log|X'V⁻¹X| + r'V⁻¹r] + ½ log|X'X|, r = y − Xβ̂
    (the GEMMA/GCTA constant convention).
    """
    n, d = X.shape
    V = covariance(Ks, sigma_k2, sigma_e2)
    if np.linalg.cond(V) > MAX_CONDITION:
        return -np.inf
    beta = gls_beta(y, X, V)
    resid = y - X @ beta
    sign, logdet_v = np.linalg.slogdet(V)
    if sign <= 0:
        return -np.inf
    if method == "ml":
        return float(-0.5 * (n * LOG_2PI + logdet_v + resid @ np.linalg.solve(V, resid)))
    value = -0.5 * (
        (n - d) * LOG_2PI
        + logdet_v
        + np.linalg.slogdet(X.T @ np.linalg.solve(V, X))[1]
        + resid @ np.linalg.solve(V, resid)
    )
    return float(value + 0.5 * np.linalg.slogdet(X.T @ X)[1])


def profile_loglik(shares, y, X, Ks, method: str = "reml") -> float:
    """Log-likelihood at the shares h_k with σp² (and β) at their maximizers.

    H = Σ h_k K_k + (1 − Σ h_k) I, RSS = (y − Xβ̂)'H⁻¹(y − Xβ̂); ML: σ̂p² = RSS/N,
    ℓ = −½[N log 2πσ̂p² + log|H| + N]; REML: σ̂p² = RSS/(N − d),
    ℓ = −½[(N − d) log 2πσ̂p² + log|H| + log|X'H⁻¹X| + N − d] + ½ log|X'X|.
    """
    n, d = X.shape
    shares = np.asarray(shares, dtype=float)
    H = covariance(Ks, shares, 1.0 - shares.sum())
    if np.linalg.cond(H) > MAX_CONDITION:
        return -np.inf
    beta = gls_beta(y, X, H)
    resid = y - X @ beta
    rss = resid @ np.linalg.solve(H, resid)
    logdet_h = np.linalg.slogdet(H)[1]
    if method == "ml":
        return float(-0.5 * (n * np.log(2 * np.pi * rss / n) + logdet_h + n))
    m = n - d
    value = -0.5 * (
        m * np.log(2 * np.pi * rss / m)
        + logdet_h
        + np.linalg.slogdet(X.T @ np.linalg.solve(H, X))[1]
        + m
    )
    return float(value + 0.5 * np.linalg.slogdet(X.T @ X)[1])


def brute_force_fit(y, X, Ks, method: str = "reml") -> dict:
    """Maximize :func:`loglik` over (σ1², ..., σk², σe²) by brute force.

    For every subset of components allowed to be non-zero (the others fixed at 0, so the faces
    of the parameter space are searched explicitly), L-BFGS-B with finite-difference gradients
    over the variances divided by var(y), bounded below by 0 (σe² by 1e-10), from two starts,
    then a bounded Nelder–Mead polish of the better; the best of all is returned. Nothing is
    profiled.

    Returns
    -------
    dict
        ``sigma_k2`` [shape: (k,)], ``sigma_e2``, ``h2_components`` (σk²/σp²), ``h2``,
        ``beta`` (GLS), ``loglik``.
    """
    k = len(Ks)
    scale = float(np.var(y))
    best = None
    for size in range(k + 1):
        for subset in itertools.combinations(range(k), size):
            free = list(subset)

            def full(theta, free=free):
                sk = np.zeros(k)
                sk[free] = theta[:-1] * scale
                return sk, theta[-1] * scale

            def negative(theta, full=full):
                sk, se = full(theta)
                value = loglik(y, X, Ks, sk, se, method)
                return -value if np.isfinite(value) else 1e300

            bounds = [(0.0, 10.0)] * len(free) + [(1e-10, 10.0)]
            runs = [
                optimize.minimize(
                    negative,
                    np.r_[np.full(len(free), f / max(len(free), 1)), 1 - f],
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000},
                )
                for f in (0.2, 0.7)
            ]
            res = min(runs, key=lambda r: r.fun)
            polish = optimize.minimize(
                negative,
                res.x,
                method="Nelder-Mead",
                bounds=bounds,
                options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000},
            )
            for r in (res, polish):
                if best is None or r.fun < best[0]:
                    best = (float(r.fun), full(r.x))
    sk, se = best[1]
    V = covariance(Ks, sk, se)
    total = sk.sum() + se
    return {
        "sigma_k2": sk,
        "sigma_e2": se,
        "h2_components": sk / total,
        "h2": sk.sum() / total,
        "beta": gls_beta(y, X, V),
        "loglik": -best[0],
    }


# --------------------------------------------------------------------------------------------
# The literal PyMC model
# --------------------------------------------------------------------------------------------


def dense_multi_model(y, X, Ks, names: Sequence[str] | None = None) -> pm.Model:
    """y ~ MvNormal(Xβ, Σ σk² Kk + σe² I) with the package's default priors, O(N³) per step.

    Priors (``parametrization="h2"``)::

        sigma_p ~ HalfStudentT(nu=3, sigma=sd(y))
        shares  ~ Dirichlet(1, ..., 1)          (k genetic shares and the residual share)
        beta    ~ Normal(mean(y), 10 sd(y)) for the intercept at the covariate means,
                  Normal(0, 10 sd(y)/sd(x_j))
        sigma_g2_component = shares[:k] sigma_p², sigma_e2 = shares[k] sigma_p²,
        h2 = Σ shares[:k]
    """
    k = len(Ks)
    names = list(names or [f"K{j + 1}" for j in range(k)])
    sd_y = float(np.std(y, ddof=1))
    sd_x = np.std(X, axis=0, ddof=1)
    constant = sd_x == 0
    mu = np.where(constant, float(np.mean(y)), 0.0)
    sigma = np.where(constant, 10 * sd_y, 10 * sd_y / np.where(constant, 1.0, sd_x))
    coords = {"covariate": [f"x{j}" for j in range(X.shape[1])], "component": names}
    coords["share"] = [*names, "residual"]
    with pm.Model(coords=coords) as model:
        if constant.sum() != 1 or X.shape[1] == 1:
            beta = pm.Normal("beta", mu=mu, sigma=sigma, dims="covariate")
        else:  # intercept prior at the covariate means (models/kinship_lmm/reference.py)
            A = np.eye(X.shape[1])
            A[np.flatnonzero(constant)[0], ~constant] = -X[:, ~constant].mean(axis=0)
            beta = pm.MvNormal("beta", mu=mu, cov=A @ np.diag(sigma**2) @ A.T, dims="covariate")
        sigma_p = pm.HalfStudentT("sigma_p", nu=3, sigma=sd_y)
        shares = pm.Dirichlet("shares", a=np.ones(k + 1), dims="share")
        sigma_k2 = pm.Deterministic("sigma_g2_component", shares[:k] * sigma_p**2)
        sigma_e2 = pm.Deterministic("sigma_e2", shares[k] * sigma_p**2)
        pm.Deterministic("h2", shares[:k].sum())
        V = sum(sigma_k2[j] * Ks[j] for j in range(k)) + sigma_e2 * np.eye(len(y))
        pm.MvNormal("y", mu=X @ beta, cov=V, observed=y)
    return model
