"""Dense, literal reference of the multi-trait prediction of new samples: for tests and reading.

With vec stacking the columns (trait by trait), V = Σg ⊗ K_tt + Σe ⊗ I and R = Y − XB,

.. math::

    \\operatorname{vec}(U_n) \\mid Y, \\theta \\sim N\\big((\\Sigma_g \\otimes K_{nt})
    V^{-1}\\operatorname{vec}(R),\\; \\Sigma_g \\otimes K_{nn}
    - (\\Sigma_g \\otimes K_{nt}) V^{-1} (\\Sigma_g \\otimes K_{tn})\\big)

Every function forms the NT × NT matrix V and solves with it densely (``numpy.linalg.solve``),
O((NT)³) per call. The package ``bayeslmm`` never imports this module, and this module never
imports ``bayeslmm`` (see MODEL.md).
"""

from __future__ import annotations

import numpy as np


def vec(A: np.ndarray) -> np.ndarray:
    """The columns of A stacked [shape: (rows·columns,)]: trait by trait."""
    return A.reshape(-1, order="F")


def conditional_genetic_values(
    Y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    train: np.ndarray,
    new: np.ndarray,
    B: np.ndarray,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of U_new given Y and θ, by the dense NT × NT formula.

    Parameters
    ----------
    Y
        Complete training traits [shape: (n_train, T)].
    X
        Training covariates, intercept included [shape: (n_train, d)].
    K
        Kinship over every sample, on the scale of the fit [shape: (n_all, n_all)].
    train, new
        Row positions in K of the training samples (in the order of Y) and of the new ones.
    B
        Fixed effects [shape: (d, T)].
    sigma_g, sigma_e
        Genetic and residual covariances [each shape: (T, T)].

    Returns
    -------
    mean : ndarray
        E[U_new | Y, θ] [shape: (n_new, T)].
    cov : ndarray
        Cov(vec(U_new) | Y, θ) [shape: (n_new·T, n_new·T)], vec stacking traits.
    """
    K_tt = K[np.ix_(train, train)]
    K_nt = K[np.ix_(new, train)]
    K_nn = K[np.ix_(new, new)]
    V = np.kron(sigma_g, K_tt) + np.kron(sigma_e, np.eye(len(train)))
    C = np.kron(sigma_g, K_nt)  # Cov(vec U_new, vec Y)
    mean = C @ np.linalg.solve(V, vec(Y - X @ B))
    cov = np.kron(sigma_g, K_nn) - C @ np.linalg.solve(V, C.T)
    return mean.reshape(len(new), -1, order="F"), cov


def conditional_phenotypes(
    Y: np.ndarray,
    X: np.ndarray,
    X_new: np.ndarray,
    K: np.ndarray,
    train: np.ndarray,
    new: np.ndarray,
    B: np.ndarray,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of Y_new = X_new B + U_new + E_new given Y and θ.

    Returns
    -------
    mean : ndarray
        X_new B + E[U_new | Y, θ] [shape: (n_new, T)].
    cov : ndarray
        Cov(vec(U_new) | Y, θ) + Σe ⊗ I [shape: (n_new·T, n_new·T)].
    """
    mean, cov = conditional_genetic_values(Y, X, K, train, new, B, sigma_g, sigma_e)
    return X_new @ B + mean, cov + np.kron(sigma_e, np.eye(len(new)))
