"""Dense, literal reference of the probit (liability threshold) LMM: for reading and the tests.

.. math::

    \\ell = X\\beta + u + \\varepsilon, \\quad u \\sim N(0, \\sigma_g^2 K), \\quad
    \\varepsilon \\sim N(0, I), \\quad y_i = 1[\\ell_i > 0], \\quad
    P(y_i = 1 \\mid u) = \\Phi(X_i\\beta + u_i), \\quad h^2 = \\sigma_g^2 / (\\sigma_g^2 + 1)

u is centred and explicit, with a dense MvNormal prior on the N × N covariance σg²K (O(N³) per
evaluation), and y is a literal Bernoulli with p = Φ(η). The package ``bayeslmm`` never imports
this module, and this module never imports ``bayeslmm``. See MODEL.md beside this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

# --------------------------------------------------------------------------------------------
# Likelihood
# --------------------------------------------------------------------------------------------


def probit_loglik(y: np.ndarray, X: np.ndarray, beta: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Pointwise Bernoulli log-likelihood log P(y_i | β, u) with p_i = Φ(X_i β + u_i), by SciPy.

    Parameters
    ----------
    y
        0/1 phenotype [shape: (n_samples,)].
    X
        Covariates with the intercept [shape: (n_samples, n_covariates)].
    beta
        [shape: (n_covariates,)].
    u
        Genetic values on the liability scale [shape: (n_samples,)].

    Returns
    -------
    numpy.ndarray
        [shape: (n_samples,)]. Literal: ``bernoulli.logpmf(y, norm.cdf(η))``, so it loses
        precision where Φ(η) rounds to 0 or 1 (|η| > 8); fine at moderate η.
    """
    return stats.bernoulli.logpmf(y, stats.norm.cdf(X @ beta + u))


def genetic_values(U: np.ndarray, s: np.ndarray, sigma_g2: float, z: np.ndarray) -> np.ndarray:
    """u = U diag(√(σg² s)) z: the map from the non-centred z to u ~ N(0, σg² U diag(s) U')."""
    return U @ (np.sqrt(sigma_g2 * s) * z)


# --------------------------------------------------------------------------------------------
# The literal PyMC model
# --------------------------------------------------------------------------------------------


def dense_probit_model(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    covariates: Sequence[str] | None = None,
) -> pm.Model:
    """The literal probit LMM with a centred, explicit u.

    Priors::

        beta     ~ Normal(Φ⁻¹(mean y), 2.5)         intercept (a constant column)
                   Normal(0, 2.5 / sd(x_j))          other columns (SD with ddof = 1)
        h2       ~ Beta(1, 1)                        liability-scale heritability
        sigma_g2 = h2 / (1 − h2)                     (Deterministic; sigma_e2 = 1)
        u        ~ MvNormal(0, sigma_g2 · K)         dims sample
        y        ~ Bernoulli(Φ(X beta + u))          dims sample

    Parameters
    ----------
    y
        0/1 phenotype [shape: (n_samples,)].
    X
        Covariates with the intercept as a column [shape: (n_samples, n_covariates)].
    K
        Kinship [shape: (n_samples, n_samples)], used as given (full rank for a proper
        MvNormal density).
    covariates
        Names of the ``covariate`` dim; default ``["intercept", "x1", ...]``.

    Returns
    -------
    pymc.Model
    """
    n, d = X.shape
    names = ["intercept"] + [f"x{j}" for j in range(1, d)] if covariates is None else covariates
    constant = np.ptp(X, axis=0) == 0
    sd_x = np.where(constant, 1.0, np.std(X, axis=0, ddof=1))
    prevalence = np.clip(np.mean(y), 0.01, 0.99)
    with pm.Model(coords={"sample": np.arange(n), "covariate": list(names)}) as model:
        beta = pm.Normal(
            "beta",
            mu=np.where(constant, special.ndtri(prevalence), 0.0),
            sigma=2.5 / sd_x,
            dims="covariate",
        )
        h2 = pm.Beta("h2", alpha=1, beta=1)
        sigma_g2 = pm.Deterministic("sigma_g2", h2 / (1 - h2))
        u = pm.MvNormal("u", mu=np.zeros(n), cov=sigma_g2 * K, dims="sample")
        # Φ(η) = erfc(−η/√2)/2; pm.math.invprobit would round √2 to float32 (error ~1e-9 in p)
        p = 0.5 * pt.erfc(-(pt.as_tensor(X) @ beta + u) / np.sqrt(2.0))
        pm.Bernoulli("y", p=p, observed=y, dims="sample")
    return model


# --------------------------------------------------------------------------------------------
# Laplace approximation (Rasmussen & Williams 2006, Algorithms 3.1 and 3.2), dense
# --------------------------------------------------------------------------------------------


def _probit_terms(y: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log Φ(t f), its gradient t φ/Φ and W = −(second derivative), t = 2y − 1, by SciPy."""
    t = 2.0 * y - 1.0
    log_cdf = special.log_ndtr(t * f)
    ratio = np.exp(stats.norm.logpdf(t * f) - log_cdf)
    return log_cdf, t * ratio, ratio * (t * f + ratio)


def laplace_marginal(
    y: np.ndarray, X: np.ndarray, K: np.ndarray, beta: np.ndarray, sigma_g2: float
) -> tuple[float, np.ndarray]:
    """Laplace approximation of log p(y | β, σg²), literally R&W Algorithm 3.1 in f = Xβ + u.

    Parameters
    ----------
    y, X, K
        0/1 phenotype [shape: (n,)], covariates [shape: (n, d)], kinship [shape: (n, n)]
        (any positive semidefinite K: the algorithm never inverts it).
    beta, sigma_g2
        The parameters; the prior of u is N(0, σg² K).

    Returns
    -------
    log_q : float
        ψ(û) + log det terms: −½ aᵀu + Σ log Φ − Σ log diag(L), B = I + W^½ Σ W^½ = LLᵀ.
    u : numpy.ndarray
        Mode of u [shape: (n,)].
    """
    n = y.size
    m = X @ beta
    S = sigma_g2 * K
    u = np.zeros(n)
    for _ in range(500):
        _, grad, W = _probit_terms(y, m + u)
        sw = np.sqrt(W)
        L = np.linalg.cholesky(np.eye(n) + sw[:, None] * S * sw[None, :])
        b = W * u + grad
        a = b - sw * np.linalg.solve(L.T, np.linalg.solve(L, sw * (S @ b)))
        new = S @ a
        if np.max(np.abs(new - u)) < 1e-13:
            u = new
            break
        u = new
    log_cdf, grad, W = _probit_terms(y, m + u)
    sw = np.sqrt(W)
    L = np.linalg.cholesky(np.eye(n) + sw[:, None] * S * sw[None, :])
    a = grad  # at the mode, u = S ∇log p
    return float(-0.5 * a @ u + log_cdf.sum() - np.log(np.diag(L)).sum()), u


def laplace_prediction(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    train: np.ndarray,
    new: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Laplace predictive mean and variance of the new samples' u, literally R&W Algorithm 3.2.

    Parameters
    ----------
    y, X
        Training phenotype and covariates (rows of ``train``).
    K
        Kinship over all samples [shape: (n_all, n_all)].
    train, new
        Row indices of the training and new samples in K.
    beta, sigma_g2
        The parameters.

    Returns
    -------
    mean, variance : numpy.ndarray
        E[u_n | y] = σg² K_nt ∇log p(f̂) and σg² K_nn − σg⁴ K_nt (σg² K_tt + W⁻¹)⁻¹ K_tn
        (the diagonal) [each shape: (n_new,)]; P(y = 1) = Φ((X_n β + mean)/√(1 + variance)).
    """
    K_tt = K[np.ix_(train, train)]
    _, u = laplace_marginal(y, X, K_tt, beta, sigma_g2)
    _, grad, W = _probit_terms(y, X @ beta + u)
    K_nt = sigma_g2 * K[np.ix_(new, train)]
    mean = K_nt @ grad
    V = sigma_g2 * K_tt + np.diag(1.0 / W)
    variance = sigma_g2 * np.diag(K[np.ix_(new, new)]) - np.einsum(
        "ij,ji->i", K_nt, np.linalg.solve(V, K_nt.T)
    )
    return mean, variance
