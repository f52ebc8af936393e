"""Dense, literal reference of the SNP-effects LMM: for reading, teaching and the tests.

.. math::

    y = X\\beta + W v + \\varepsilon, \\quad v \\sim N(0, \\sigma_v^2 I_M), \\quad
    \\varepsilon \\sim N(0, \\sigma_e^2 I), \\quad \\sigma_g^2 = M \\sigma_v^2, \\quad K = WW'/M

W is the standardized genotype matrix (see :func:`standardize`). Everything here is dense: the
explicit model keeps all M effects, the marginal model forms the N × N covariance. The package
``bayeslmm`` never imports this module, and this module never imports ``bayeslmm`` (nor the
kinship reference: the few prior lines are repeated so that the file reads on its own). See
MODEL.md beside this file for the equations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt


def standardize(G: np.ndarray) -> np.ndarray:
    """Centre each SNP (column) and divide it by its SD with ddof = 0.

    Then every column has mean 0 and variance 1, K = WW'/M has mean diagonal exactly 1, and it
    equals GEMMA's ``-gk 2`` and GCTA's GRM (up to GCTA's use of 2p(1 − p) for the variance).
    A monomorphic SNP (SD 0) gives a column of NaN: drop such SNPs first.

    Parameters
    ----------
    G
        Allele counts [shape: (n_samples, n_snps)], no missing values.

    Returns
    -------
    numpy.ndarray
        W [shape: (n_samples, n_snps)].
    """
    G = np.asarray(G, dtype=float)
    return (G - G.mean(axis=0)) / G.std(axis=0)


# --------------------------------------------------------------------------------------------
# Priors: the same as in models/kinship_lmm/reference.py
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
    if priors == "flat":  # Jeffreys: flat on log σp, i.e. p(σp²) ∝ 1/σp²
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


def _coords(n: int, d: int, covariates: Sequence[str] | None) -> dict:
    names = ["intercept"] + [f"x{j}" for j in range(1, d)] if covariates is None else covariates
    return {"sample": np.arange(n), "covariate": list(names)}


# --------------------------------------------------------------------------------------------
# The literal PyMC models
# --------------------------------------------------------------------------------------------


def dense_snp_model(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    priors: str = "default",
    parametrization: str = "h2",
    covariates: Sequence[str] | None = None,
) -> pm.Model:
    """Explicit, non-centred SNP effects: z ~ N(0, I_M), v = σv z, y ~ N(Xβ + Wv, σe² I).

    Priors on β, h², σp² (or σg², σe²) as in ``models/kinship_lmm/reference.py``, then::

        sigma_v = sqrt(sigma_g2 / M)                      (Deterministic)
        z       ~ Normal(0, 1)                            dims snp
        v       = sigma_v · z                             (Deterministic, dims snp)
        y       ~ Normal(X beta + W v, sqrt(sigma_e2))    dims sample

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)].
    X
        Covariates with the intercept as a column [shape: (n_samples, n_covariates)].
    W
        Genotypes, used as passed [shape: (n_samples, n_snps)]; the caller standardizes
        (:func:`standardize`). The implied kinship is WW'/M.
    priors, parametrization, covariates
        As in the kinship reference: ``"default"``/``"flat"``, ``"h2"``/``"variance"``, names
        of the ``covariate`` dim.

    Returns
    -------
    pymc.Model
        Coordinates ``sample``, ``covariate``, ``snp`` (0..M−1).
    """
    _check_options(priors, parametrization)
    n, m = W.shape
    coords = {**_coords(n, X.shape[1], covariates), "snp": np.arange(m)}
    with pm.Model(coords=coords) as model:
        beta = _beta_prior(y, X, priors)
        sigma_g2, sigma_e2 = _variance_components(y, priors, parametrization)
        sigma_v = pm.Deterministic("sigma_v", pt.sqrt(sigma_g2 / m))
        z = pm.Normal("z", 0, 1, dims="snp")
        v = pm.Deterministic("v", sigma_v * z, dims="snp")
        pm.Normal(
            "y",
            mu=pt.as_tensor(X) @ beta + pt.as_tensor(W) @ v,
            sigma=pt.sqrt(sigma_e2),
            observed=y,
            dims="sample",
        )
    return model


def dense_marginal_snp_model(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    priors: str = "default",
    parametrization: str = "h2",
    covariates: Sequence[str] | None = None,
) -> pm.Model:
    """v integrated out: y ~ MvNormal(Xβ, σg² WW'/M + σe² I), priors as in :func:`dense_snp_model`.

    Its log density equals that of the kinship reference with K = WW'/M; it is the dense
    counterpart of ``bayeslmm.snp_model(..., marginalize=True)``.
    """
    _check_options(priors, parametrization)
    n, m = W.shape
    K = W @ W.T / m
    with pm.Model(coords=_coords(n, X.shape[1], covariates)) as model:
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
# SNP effects given the variance components
# --------------------------------------------------------------------------------------------


def conditional_v(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    sigma_e2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian posterior of the SNP effects v given (β, σg², σe², y).

    With σv² = σg²/M and V = σv² WW' + σe² I (= σg² K + σe² I):

    .. math::

        v \\mid \\cdot \\sim N\\left(\\sigma_v^2 W' V^{-1} (y - X\\beta),\\;
        \\sigma_v^2 I - \\sigma_v^4 W' V^{-1} W\\right)

    Returns
    -------
    mean, cov
        [shape: (n_snps,)] and [shape: (n_snps, n_snps)].
    """
    n, m = W.shape
    sigma_v2 = sigma_g2 / m
    V = sigma_v2 * W @ W.T + sigma_e2 * np.eye(n)
    mean = sigma_v2 * W.T @ np.linalg.solve(V, y - X @ beta)
    cov = sigma_v2 * np.eye(m) - sigma_v2**2 * W.T @ np.linalg.solve(V, W)
    return mean, cov
