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
# The marginal likelihood (u integrated out) and the predictive distribution given sites
# --------------------------------------------------------------------------------------------


def log_marginal_likelihood(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    maxpts: int = 1_000_000,
) -> float:
    """Exact log p(y | β, σg²) = log P(t ⊙ (Xβ + u + ε) > 0), an orthant probability, by SciPy.

    Parameters
    ----------
    y, X, K
        0/1 phenotype [shape: (n,)], covariates [shape: (n, d)], kinship [shape: (n, n)].
    beta, sigma_g2
        The parameters (u ~ N(0, σg² K), ε ~ N(0, I)).
    maxpts
        Integration points of ``scipy.stats.multivariate_normal.cdf`` (Genz's quasi-Monte
        Carlo; its error is ~1e-3 in the log at n = 40).

    Returns
    -------
    float
        With t = 2y − 1 and w = −t ⊙ (u + ε) ~ N(0, D(σg² K + I)D), D = diag(t):
        log P(w < t ⊙ Xβ).
    """
    t = 2.0 * y - 1.0
    cov = t[:, None] * (sigma_g2 * K + np.eye(y.size)) * t[None, :]
    mvn = stats.multivariate_normal(np.zeros(y.size), cov, maxpts=maxpts, seed=1)
    return float(mvn.logcdf(t * (X @ beta)))


def predictive_given_sites(
    K: np.ndarray,
    train: np.ndarray,
    new: np.ndarray,
    tau: np.ndarray,
    nu: np.ndarray,
    sigma_g2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the new samples' u under q(u_t) ∝ N(0, σg² K_tt) ∏ exp(−τu²/2 + νu).

    Literal inverses (K_tt of full rank): Σ_q = ((σg² K_tt)⁻¹ + diag(τ))⁻¹, μ = Σ_q ν;
    u_n | u_t ~ N(K_nt K_tt⁻¹ u_t, σg² (K_nn − K_nt K_tt⁻¹ K_tn)), so
    mean = K_nt K_tt⁻¹ μ and variance = σg² diag(K_nn − K_nt K_tt⁻¹ K_tn)
    + diag(K_nt K_tt⁻¹ Σ_q K_tt⁻¹ K_tn) [each shape: (n_new,)].
    """
    K_tt = K[np.ix_(train, train)]
    K_nt = K[np.ix_(new, train)]
    K_nn = K[np.ix_(new, new)]
    cov = np.linalg.inv(np.linalg.inv(sigma_g2 * K_tt) + np.diag(tau))
    G = K_nt @ np.linalg.inv(K_tt)
    mean = G @ (cov @ nu)
    variance = sigma_g2 * np.diag(K_nn - G @ K_nt.T) + np.diag(G @ cov @ G.T)
    return mean, variance
