"""Dense, literal reference of the prediction of new samples: for reading, teaching and tests.

.. math::

    u_n \\mid y, \\theta \\sim N\\big(\\sigma_g^2 K_{nt} V^{-1}(y - X\\beta),\\;
    \\sigma_g^2 K_{nn} - \\sigma_g^4 K_{nt} V^{-1} K_{tn}\\big), \\quad
    V = \\sigma_g^2 K_{tt} + \\sigma_e^2 I

Every function forms V and solves with it densely, O(N³) per call. The package ``bayeslmm``
never imports this module, and this module never imports ``bayeslmm`` (see MODEL.md).
"""

from __future__ import annotations

import numpy as np


def conditional_genetic_values(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    train: np.ndarray,
    new: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    sigma_e2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of u_new given y and θ, by the dense formula.

    Parameters
    ----------
    y
        Training phenotypes [shape: (n_train,)].
    X
        Training covariates, intercept included [shape: (n_train, d)].
    K
        Kinship over every sample, on the scale of the fit [shape: (n_all, n_all)].
    train, new
        Row positions in K of the training samples (in the order of y) and of the new ones.
    beta
        Fixed effects [shape: (d,)].
    sigma_g2, sigma_e2
        Genetic and residual variances.

    Returns
    -------
    mean : ndarray
        σg² K_nt V⁻¹ (y − Xβ) [shape: (n_new,)].
    cov : ndarray
        σg² K_nn − σg⁴ K_nt V⁻¹ K_tn [shape: (n_new, n_new)].
    """
    K_tt = K[np.ix_(train, train)]
    K_nt = K[np.ix_(new, train)]
    K_nn = K[np.ix_(new, new)]
    V = sigma_g2 * K_tt + sigma_e2 * np.eye(len(train))
    mean = sigma_g2 * K_nt @ np.linalg.solve(V, y - X @ beta)
    cov = sigma_g2 * K_nn - sigma_g2**2 * K_nt @ np.linalg.solve(V, K_nt.T)
    return mean, cov


def conditional_phenotypes(
    y: np.ndarray,
    X: np.ndarray,
    X_new: np.ndarray,
    K: np.ndarray,
    train: np.ndarray,
    new: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    sigma_e2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of y_new = X_new β + u_new + ε given y and θ.

    Returns
    -------
    mean : ndarray
        X_new β + E[u_new | y, θ] [shape: (n_new,)].
    cov : ndarray
        Cov(u_new | y, θ) + σe² I [shape: (n_new, n_new)].
    """
    mean, cov = conditional_genetic_values(y, X, K, train, new, beta, sigma_g2, sigma_e2)
    return X_new @ beta + mean, cov + sigma_e2 * np.eye(len(new))


def snp_conditional_effects(
    y: np.ndarray, X: np.ndarray, W: np.ndarray, beta: np.ndarray, sigma_g2: float, sigma_e2: float
) -> np.ndarray:
    """E[v | y, θ] = σv² W' V⁻¹ (y − Xβ), σv² = σg²/M, V = σv² W W' + σe² I [shape: (M,)]."""
    n, m = W.shape
    sigma_v2 = sigma_g2 / m
    V = sigma_v2 * W @ W.T + sigma_e2 * np.eye(n)
    return sigma_v2 * W.T @ np.linalg.solve(V, y - X @ beta)


def sparse_genetic_values(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    W_new: np.ndarray,
    beta: np.ndarray,
    v: np.ndarray,
    sigma_b2: float,
    sigma_e2: float,
) -> np.ndarray:
    """g_new = W_new v + E[u_new | y, θ, v] of the BSLMM-like sparse model, densely.

    y = Xβ + Wv + u + ε with u ~ N(0, σb² K) over training and new samples, K = WW'/M from
    the training-standardized genotypes, so that with V = σb² K_tt + σe² I

    E[u_new | y, θ, v] = σb² K_nt V⁻¹ (y − Xβ − Wv),  K_nt = W_new W'/M  [shape: (n_new,)].
    """
    n, m = W.shape
    K_tt = W @ W.T / m
    K_nt = W_new @ W.T / m
    V = sigma_b2 * K_tt + sigma_e2 * np.eye(n)
    return W_new @ v + sigma_b2 * K_nt @ np.linalg.solve(V, y - X @ beta - W @ v)


def standardize_new(G_new: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """New genotypes on the training scale: (G_new − center)/scale, NaN → the training centre."""
    G_new = np.where(np.isnan(G_new), center, G_new)
    return (G_new - center) / scale


def probit_conditional_genetic_values(
    u_train: np.ndarray,
    K: np.ndarray,
    train: np.ndarray,
    new: np.ndarray,
    sigma_g2: float,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and covariance of the new samples' liability-scale u given the training u (probit).

    Notes
    -----
    u ~ N(0, σg² K) jointly, so, with the pseudo-inverse (u_t lies in the range of K_tt),

    .. math::

        u_n \mid u_t \sim N\big(K_{nt} K_{tt}^{+} u_t,\;
        \sigma_g^2 (K_{nn} - K_{nt} K_{tt}^{+} K_{tn})\big).
    """
    K_tt = K[np.ix_(train, train)]
    K_nt = K[np.ix_(new, train)]
    pinv = np.linalg.pinv(K_tt, hermitian=True)
    mean = K_nt @ pinv @ u_train
    cov = sigma_g2 * (K[np.ix_(new, new)] - K_nt @ pinv @ K_nt.T)
    return mean, cov
