"""Dense, literal references of the major-loci LMM and the linear model (no random effect).

.. math::

    y = X\\beta + X_L\\beta_L + u + \\varepsilon, \\quad u \\sim N(0, \\sigma_g^2 K), \\quad
    \\varepsilon \\sim N(0, \\sigma_e^2 I)

    y = X\\beta + \\varepsilon \\quad \\text{(linear model)}

Every function here is the equation of MODEL.md written out with dense NumPy/SciPy/PyMC: the
variance shares by ``np.var`` over samples, the LMM by ``MvNormal`` on σg²K + σe²I, the linear
model's pointwise log-likelihood by ``scipy.stats.norm`` and its flat-prior posterior by the
textbook conjugate formulas. The package ``bayeslmm`` never imports this module, and this module
never imports ``bayeslmm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats

from models.kinship_lmm.reference import dense_kinship_model

# --------------------------------------------------------------------------------------------
# Major loci
# --------------------------------------------------------------------------------------------


def impute_mean(G: np.ndarray) -> np.ndarray:
    """Replace each NaN by its column's mean over the observed entries."""
    G = np.array(G, dtype=float)
    mean = np.nanmean(G, axis=0)
    rows, cols = np.nonzero(np.isnan(G))
    G[rows, cols] = mean[cols]
    return G


def loci_shares(
    G_loci: np.ndarray,
    beta_loci: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
) -> dict[str, np.ndarray]:
    """Variance shares of the loci, the polygenic background and in total, per draw.

    Parameters
    ----------
    G_loci
        Allele counts of the loci in the analysed samples [shape: (n_samples, n_loci)].
    beta_loci
        Their effects [shape: (n_draws, n_loci)].
    sigma_g2, sigma_e2
        [shape: (n_draws,)].

    Returns
    -------
    dict
        ``sigma_loci2`` = var over samples (ddof = 0) of G_loci β_loci; ``h2_loci``,
        ``h2_background``, ``h2_total`` [each shape: (n_draws,)].
    """
    contribution = beta_loci @ G_loci.T  # [draws, samples]
    sigma_loci2 = np.var(contribution, axis=1)
    total = sigma_loci2 + sigma_g2 + sigma_e2
    return {
        "sigma_loci2": sigma_loci2,
        "h2_loci": sigma_loci2 / total,
        "h2_background": sigma_g2 / total,
        "h2_total": (sigma_loci2 + sigma_g2) / total,
    }


def dense_loci_model(
    y: np.ndarray,
    X: np.ndarray,
    G_loci: np.ndarray,
    K: np.ndarray,
    loci: Sequence[str],
    covariates: Sequence[str] | None = None,
    parametrization: str = "h2",
) -> pm.Model:
    """The literal model: y ~ MvNormal([X, G_loci]β, σg²K + σe²I) with the share Deterministics.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)].
    X
        Covariates with the intercept as the first column [shape: (n_samples, d)].
    G_loci
        Mean-imputed allele counts of the loci [shape: (n_samples, n_loci)].
    K
        Kinship [shape: (n_samples, n_samples)], used as given.
    loci
        Locus names (their covariate names).
    covariates
        Names of X's columns; default ``["intercept", "x1", ...]``.
    parametrization
        ``"h2"`` or ``"variance"``, as in the kinship reference.

    Returns
    -------
    pymc.Model
        The kinship reference model on X_aug = [X, G_loci] (default priors, same as the
        package's), plus ``sigma_loci2``, ``h2_loci``, ``h2_background``, ``h2_total`` computed
        with ``pt.var`` over samples.
    """
    d = X.shape[1]
    names = list(covariates) if covariates is not None else None
    if names is None:
        names = ["intercept"] + [f"x{j}" for j in range(1, d)]
    X_aug = np.column_stack([X, G_loci])
    model = dense_kinship_model(
        y, X_aug, K, parametrization=parametrization, covariates=[*names, *loci]
    )
    with model:
        beta_loci = model["beta"][d:]
        sigma_loci2 = pm.Deterministic("sigma_loci2", pt.var(pt.as_tensor(G_loci) @ beta_loci))
        total = sigma_loci2 + model["sigma_g2"] + model["sigma_e2"]
        pm.Deterministic("h2_loci", sigma_loci2 / total)
        pm.Deterministic("h2_background", model["sigma_g2"] / total)
        pm.Deterministic("h2_total", (sigma_loci2 + model["sigma_g2"]) / total)
    return model


# --------------------------------------------------------------------------------------------
# Linear model (no random effect)
# --------------------------------------------------------------------------------------------


def linear_loglik_pointwise(
    y: np.ndarray, X: np.ndarray, beta: np.ndarray, sigma_e: float
) -> np.ndarray:
    """log N(y_i | x_i β, σe²) by SciPy [shape: (n_samples,)]."""
    return stats.norm.logpdf(y, loc=X @ beta, scale=sigma_e)


def dense_linear_model(
    y: np.ndarray, X: np.ndarray, covariates: Sequence[str] | None = None
) -> pm.Model:
    """The literal linear model with the package's default priors, as one MvNormal.

    Priors::

        beta    ~ Normal(mean(y), 10 sd(y))          intercept at the covariate means
                  Normal(0, 10 sd(y) / sd(x_j))       other columns (SDs with ddof = 1)
        sigma_e ~ HalfStudentT(nu=3, sigma=sd(y))
        y       ~ MvNormal(Xβ, σe² I)
    """
    n, d = X.shape
    sd_y = np.std(y, ddof=1)
    constant = np.ptp(X, axis=0) == 0
    sd_x = np.where(constant, 1.0, np.std(X, axis=0, ddof=1))
    coords = {
        "sample": np.arange(n),
        "covariate": list(covariates)
        if covariates is not None
        else ["intercept"] + [f"x{j}" for j in range(1, d)],
    }
    mu = np.where(constant, np.mean(y), 0.0)
    sigma = np.where(constant, 10 * sd_y, 10 * sd_y / sd_x)
    with pm.Model(coords=coords) as model:
        if constant.sum() != 1 or d == 1:
            beta = pm.Normal("beta", mu=mu, sigma=sigma, dims="covariate")
        else:  # intercept prior at the covariate means (models/kinship_lmm/reference.py)
            A = np.eye(d)
            A[np.flatnonzero(constant)[0], ~constant] = -X[:, ~constant].mean(axis=0)
            beta = pm.MvNormal("beta", mu=mu, cov=A @ np.diag(sigma**2) @ A.T, dims="covariate")
        sigma_e = pm.HalfStudentT("sigma_e", nu=3, sigma=sd_y)
        pm.MvNormal(
            "y", mu=pt.as_tensor(X) @ beta, cov=sigma_e**2 * np.eye(n), observed=y, dims="sample"
        )
    return model


def conjugate_posterior(y: np.ndarray, X: np.ndarray) -> dict[str, np.ndarray]:
    """Posterior of β and σe² under flat β and Jeffreys σe² (p(σe²) ∝ 1/σe²).

    β | y is multivariate t with ν = N − d degrees of freedom, location the OLS estimate
    β̂ = (X'X)⁻¹X'y and scale s²(X'X)⁻¹, s² = ‖y − Xβ̂‖²/(N − d); so E[β | y] = β̂ and
    Cov[β | y] = ν/(ν − 2) s²(X'X)⁻¹. σe² | y is scaled-inverse-χ²(ν, s²):
    E[σe² | y] = ν s²/(ν − 2).

    Returns
    -------
    dict
        ``beta_mean``, ``beta_sd``, ``sigma_e2_mean``, ``df``.
    """
    n, d = X.shape
    XtX_inv = np.linalg.inv(X.T @ X)
    beta_hat = XtX_inv @ X.T @ y
    nu = n - d
    s2 = float(np.sum((y - X @ beta_hat) ** 2) / nu)
    return {
        "beta_mean": beta_hat,
        "beta_sd": np.sqrt(np.diag(XtX_inv) * s2 * nu / (nu - 2)),
        "sigma_e2_mean": np.array(nu * s2 / (nu - 2)),
        "df": np.array(nu),
    }
