"""Dense, literal reference of the multi-trait LMM: for reading, teaching and the tests.

.. math::

    Y = XB + U + E, \\quad \\operatorname{vec}(U) \\sim N(0, \\Sigma_g \\otimes K), \\quad
    \\operatorname{vec}(E) \\sim N(0, \\Sigma_e \\otimes I), \\quad
    V = \\Sigma_g \\otimes K + \\Sigma_e \\otimes I_N

vec stacks the columns (traits) of an N×T matrix: vec(Y) = (y_1', ..., y_T')'. Every function
here forms the NT×NT matrix V and uses dense linear algebra, O((NT)³) per evaluation; the
optimizer is brute force (Nelder-Mead, then BFGS on finite differences). Nothing is clever on
purpose: each line should read like the equations in MODEL.md. The package ``bayeslmm`` never
imports this module, and this module never imports ``bayeslmm``.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize, stats

LOG_2PI = np.log(2 * np.pi)


def vec(A: np.ndarray) -> np.ndarray:
    """Stack the columns of A [shape: (N, T)] into one vector [shape: (N·T,)]."""
    return A.T.reshape(-1)


def covariance(K: np.ndarray, sigma_g: np.ndarray, sigma_e: np.ndarray) -> np.ndarray:
    """V = Σg ⊗ K + Σe ⊗ I [shape: (N·T, N·T)]."""
    n = K.shape[0]
    return np.kron(sigma_g, K) + np.kron(sigma_e, np.eye(n))


def design(X: np.ndarray, n_traits: int) -> np.ndarray:
    """The design of vec(Y): I_T ⊗ X [shape: (N·T, T·d)], so that vec(XB) = (I ⊗ X) vec(B)."""
    return np.kron(np.eye(n_traits), X)


def dense_loglik(
    Y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    B: np.ndarray,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
) -> float:
    """log N(vec Y | vec(XB), Σg ⊗ K + Σe ⊗ I), by SciPy."""
    V = covariance(K, sigma_g, sigma_e)
    return float(stats.multivariate_normal.logpdf(vec(Y), mean=vec(X @ B), cov=V))


def dense_marginal_loglik(
    Y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    B_mean: np.ndarray,
    B_cov: np.ndarray,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
) -> float:
    """log ∫ N(vec Y | vec(XB), V) N(vec B | vec B_mean, B_cov) dB, by SciPy.

    vec(Y) = (I ⊗ X) vec(B) + vec(U + E) with vec(B) ~ N(vec(B_mean), B_cov) independent of
    U and E: vec(Y) ~ N((I ⊗ X) vec(B_mean), V + (I ⊗ X) B_cov (I ⊗ X)'). ``B_cov`` is
    [shape: (T·d, T·d)] in the order of vec(B), B [shape: (d, T)].
    """
    Xbar = design(X, Y.shape[1])
    V = covariance(K, sigma_g, sigma_e) + Xbar @ B_cov @ Xbar.T
    return float(stats.multivariate_normal.logpdf(vec(Y), mean=Xbar @ vec(B_mean), cov=V))


def conditional_b(
    Y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    B_mean: np.ndarray,
    B_cov: np.ndarray,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean [shape: (T·d,)] and covariance of vec(B) | Y, Σg, Σe under that Gaussian prior.

    Precision P = X̄'V⁻¹X̄ + B_cov⁻¹, mean P⁻¹(X̄'V⁻¹ vec(Y) + B_cov⁻¹ vec(B_mean)).
    """
    Xbar = design(X, Y.shape[1])
    V = covariance(K, sigma_g, sigma_e)
    prior_precision = np.linalg.inv(B_cov)
    P = Xbar.T @ np.linalg.solve(V, Xbar) + prior_precision
    h = Xbar.T @ np.linalg.solve(V, vec(Y)) + prior_precision @ vec(B_mean)
    cov = np.linalg.inv(P)
    return cov @ h, cov


def gls(Y: np.ndarray, X: np.ndarray, V: np.ndarray) -> np.ndarray:
    """GLS fixed effects B̂ [shape: (d, T)]: vec(B̂) = (X̄'V⁻¹X̄)⁻¹ X̄'V⁻¹ vec(Y), X̄ = I ⊗ X."""
    T = Y.shape[1]
    Xbar = design(X, T)
    Vinv_X = np.linalg.solve(V, Xbar)
    b = np.linalg.solve(Xbar.T @ Vinv_X, Vinv_X.T @ vec(Y))
    return b.reshape(T, X.shape[1]).T


def restricted_loglik(
    Y: np.ndarray, X: np.ndarray, K: np.ndarray, sigma_g: np.ndarray, sigma_e: np.ndarray
) -> float:
    """REML log-likelihood, GEMMA's convention (with +T/2·log|X'X|).

    −½[(N − d)T log 2π + log|V| + log|X̄'V⁻¹X̄| − T log|X'X| + r'V⁻¹r], r = vec(Y − XB̂).
    """
    n, T = Y.shape
    d = X.shape[1]
    V = covariance(K, sigma_g, sigma_e)
    B = gls(Y, X, V)
    r = vec(Y - X @ B)
    Xbar = design(X, T)
    logdet_v = np.linalg.slogdet(V)[1]
    logdet_xvx = np.linalg.slogdet(Xbar.T @ np.linalg.solve(V, Xbar))[1]
    logdet_xx = np.linalg.slogdet(X.T @ X)[1]
    quad = r @ np.linalg.solve(V, r)
    return float(-0.5 * ((n - d) * T * LOG_2PI + logdet_v + logdet_xvx - T * logdet_xx + quad))


def ml_loglik(
    Y: np.ndarray, X: np.ndarray, K: np.ndarray, sigma_g: np.ndarray, sigma_e: np.ndarray
) -> float:
    """ML log-likelihood with B at its GLS estimate."""
    B = gls(Y, X, covariance(K, sigma_g, sigma_e))
    return dense_loglik(Y, X, K, B, sigma_g, sigma_e)


def loglik(Y, X, K, sigma_g, sigma_e, method: str = "reml") -> float:
    """REML (GEMMA's convention) or ML log-likelihood at B̂, one Cholesky factor of V.

    The same numbers as :func:`restricted_loglik` and :func:`ml_loglik` (which solve with V
    several times); −inf where V is not positive definite. This is what :func:`fit` optimizes.
    """
    n, T = Y.shape
    d = X.shape[1]
    V = covariance(K, sigma_g, sigma_e)
    try:
        factor = linalg.cho_factor(V, lower=True)
    except linalg.LinAlgError:
        return -np.inf
    Xbar = design(X, T)
    Vinv_X = linalg.cho_solve(factor, Xbar)
    Vinv_y = linalg.cho_solve(factor, vec(Y))
    xvx = Xbar.T @ Vinv_X
    b = np.linalg.solve(xvx, Xbar.T @ Vinv_y)
    r = vec(Y) - Xbar @ b
    quad = r @ linalg.cho_solve(factor, r)
    logdet_v = 2 * np.log(np.diag(factor[0])).sum()
    if method == "ml":
        return float(-0.5 * (n * T * LOG_2PI + logdet_v + quad))
    logdet_xvx = np.linalg.slogdet(xvx)[1]
    logdet_xx = np.linalg.slogdet(X.T @ X)[1]
    return float(-0.5 * ((n - d) * T * LOG_2PI + logdet_v + logdet_xvx - T * logdet_xx + quad))


def from_cholesky(theta: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Σg = Lg Lg' (Lg any lower-triangular), Σe = Le Le' (Le with log-diagonal)."""
    rows, cols = np.tril_indices(T)
    m = rows.size
    Lg, Le = np.zeros((T, T)), np.zeros((T, T))
    Lg[rows, cols] = theta[:m]
    Le[rows, cols] = theta[m:]
    Le[np.diag_indices(T)] = np.exp(np.diag(Le))
    return Lg @ Lg.T, Le @ Le.T


def fit(
    Y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    method: str = "reml",
    starts: int = 1,
    seed: int = 0,
    nelder_mead: bool = True,
) -> dict:
    """Brute-force (RE)ML: Nelder-Mead then BFGS (finite differences) on the dense likelihood.

    Over the same parameters as the package (the Cholesky factors of Σg, free, and of Σe,
    log-diagonal), from ``starts`` starting points (the first at Σg = Σe = cov(resid)/2, the
    others random perturbations of it), the best kept; ``nelder_mead=False`` runs BFGS only.
    Returns a dict with ``sigma_g``, ``sigma_e``, ``loglik``, ``B``.
    """
    n, T = Y.shape
    rows, cols = np.tril_indices(T)
    rng = np.random.default_rng(seed)
    resid = Y - X @ np.linalg.lstsq(X, Y, rcond=None)[0]
    half = np.cov(resid.T) / 2

    def negative(theta):
        sg, se = from_cholesky(theta, T)
        value = loglik(Y, X, K, sg, se, method)
        return -value if np.isfinite(value) else 1e300

    best = None
    for k in range(starts):
        L = np.linalg.cholesky(half)
        if k:
            L = L * np.exp(rng.normal(scale=0.3, size=(T, T)))
        Le = L.copy()
        Le[np.diag_indices(T)] = np.log(np.diag(L))
        x0 = np.concatenate([L[rows, cols], Le[rows, cols]])
        if nelder_mead:
            x0 = optimize.minimize(
                negative, x0, method="Nelder-Mead", options={"maxfev": 400 * x0.size}
            ).x
        res = optimize.minimize(negative, x0, method="BFGS", options={"gtol": 1e-6})
        if best is None or res.fun < best.fun:
            best = res
    sg, se = from_cholesky(best.x, T)
    B = gls(Y, X, covariance(K, sg, se))
    return {"sigma_g": sg, "sigma_e": se, "loglik": -float(best.fun), "B": B}
