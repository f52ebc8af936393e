"""Dense, literal G×E forms: the relationship K ∘ (e eᵀ) and the per-SNP interaction test.

Read next to ``MODEL.md``. ``gxe_relationship`` builds K_GxE element by element, the way the
equation reads; ``interaction_wald`` is generalized least squares of y on [X, e, g, g∘e] with a
dense Cholesky of V = λK + I. Both cost O(N²) or O(N³) and exist so that tests can compare the
package's vectorized and eigenbasis forms against them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def gxe_relationship(K: np.ndarray, env: np.ndarray) -> np.ndarray:
    """K_GxE[i, j] = K[i, j] · e_i · e_j, written as the double loop of its definition."""
    n = K.shape[0]
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = K[i, j] * env[i] * env[j]
    return out


def interaction_wald(
    y: np.ndarray, X: np.ndarray, env: np.ndarray, g: np.ndarray, V: np.ndarray
) -> tuple[float, float, float]:
    """GLS estimate of b_gxe in y = Xβ + e b_e + g b_g + (g∘e) b_gxe + r, Cov(r) = σ² V.

    Returns the estimate, its standard error and the Wald p-value on F(1, N − p), p the number
    of columns of [X, e, g, g∘e] (X without an intercept gets one).
    """
    n = y.shape[0]
    X = np.asarray(X, dtype=float).reshape(n, -1)
    if not np.any(np.all(np.isclose(X, 1.0), axis=0)):
        X = np.column_stack([np.ones(n), X])
    Z = np.column_stack([X, env, g, g * env])
    L = np.linalg.cholesky(V)
    Zw, yw = np.linalg.solve(L, Z), np.linalg.solve(L, y)
    coef, *_ = np.linalg.lstsq(Zw, yw, rcond=None)
    p = Z.shape[1]
    sigma2 = np.sum((yw - Zw @ coef) ** 2) / (n - p)
    se = float(np.sqrt(sigma2 * np.linalg.inv(Zw.T @ Zw)[-1, -1]))
    return float(coef[-1]), se, float(stats.f.sf((coef[-1] / se) ** 2, 1, n - p))
