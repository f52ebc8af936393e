"""Models without a random effect: Bayesian linear regression y = Xβ + ε.

The baseline that PCs-as-covariates are compared with: it has no K, so it has no h², and its
sample-space log-likelihood is a sum of independent normal terms, directly comparable by LOO
with the LMM's (see :func:`bayeslmm.sample`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.constants import LOG_2PI
from bayeslmm.data.samples import prepare
from bayeslmm.families.base import Family, ModelInfo, register_model
from bayeslmm.families.priors import (
    POSITIVE,
    REAL,
    Parameter,
    Prior,
    PriorLike,
    add_prior,
    default_priors,
    resolve,
)
from bayeslmm.linalg.spectral import Spectral, rotate_data


def linear_parameters(y: np.ndarray, X: np.ndarray) -> dict[str, Parameter]:
    """The parameter table of the linear model, defaults scaled by the data.

    Parameters
    ----------
    y, X
        Phenotype [shape: (n_samples,)] and covariates with intercept [shape: (n_samples, d)].

    Returns
    -------
    dict
        ``beta`` ~ the package's default (Normal(mean(y), 10 sd(y)) for the intercept,
        Normal(0, 10 sd(y)/sd(x_j)) otherwise) and ``sigma_e`` ~ HalfStudentT(3, sd(y)).
        ``priors="flat"``: β ~ Flat and σe ~ Jeffreys (the conjugate reference prior, whose
        posterior is the textbook multivariate t around the OLS estimate).
    """
    return {
        "beta": Parameter(
            default_priors("h2", y, X)["beta"], REAL, (X.shape[1],), flat=Prior("Flat")
        ),
        "sigma_e": Parameter(
            Prior("HalfStudentT", nu=3, sigma=float(np.std(y, ddof=1))),
            POSITIVE,
            flat=Prior("Jeffreys"),
        ),
    }


#: What to do instead when ``priors`` names a parameter the linear model does not have.
LINEAR_HINTS = {
    **dict.fromkeys(
        ("h2", "sigma_g2", "sigma_p"), "it has no random effect, so no h2, sigma_g2 or sigma_p"
    ),
    "sigma_e2": "put the prior on the residual SD sigma_e (sigma_e2 is its square)",
}


def pointwise_loglik(
    y: np.ndarray, X: np.ndarray, beta: np.ndarray, sigma_e2: np.ndarray
) -> np.ndarray:
    r"""Pointwise log N(y_i | x_i β, σe²) per draw and sample [shape: (n_draws, n_samples)].

    Parameters
    ----------
    y : ndarray
        [shape: (n_samples,)].
    X : ndarray
        [shape: (n_samples, d)].
    beta : ndarray
        [shape: (n_draws, d)].
    sigma_e2 : ndarray
        [shape: (n_draws,)].

    Notes
    -----
    The observations are independent given (β, σe²), so the leave-one-out predictive
    :math:`p(y_i \mid y_{-i}, \theta)` is the normal density itself.
    """
    resid = y[None, :] - beta @ X.T
    s2 = sigma_e2[:, None]
    return -0.5 * (LOG_2PI + np.log(s2) + resid**2 / s2)


def postprocess(
    posterior: xr.Dataset, info: ModelInfo, rng: Any, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """The family's post-processing: no random effect; log N(y_i | x_i β, σe²) per draw."""
    beta = posterior["beta"].values.reshape(-1, info.data.X.shape[1])
    sigma_e2 = posterior["sigma_e2"].values.reshape(-1)
    return {}, pointwise_loglik(info.data.y, info.data.X, beta, sigma_e2)


def linear_model(
    y: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
) -> pm.Model:
    r"""Build the Bayesian linear regression y = Xβ + ε, ε ~ N(0, σe² I): no random effect.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]: array or Series indexed by sample ID.
    X
        Covariates [shape: (n_samples, n_covariates)], e.g. the PCs from
        :func:`bayeslmm.pcs`; None means intercept only. An intercept column is added unless
        X already spans the constant. Samples with a missing phenotype or covariate are dropped.
    priors
        Dict with ``beta`` and/or ``sigma_e`` (a :class:`~bayeslmm.Prior` or PyMC ``.dist()``)
        merged into the defaults, ``"default"``, or ``"flat"`` (flat β, Jeffreys σe), see
        :func:`linear_parameters`.

    Returns
    -------
    pymc.Model
        Free ``beta`` (dim ``covariate``) and ``sigma_e``, Deterministic ``sigma_e2``; observed
        ``y`` (dim ``sample``). There is no ``h2``: :func:`bayeslmm.sample` checks R-hat of
        ``sigma_e2`` instead. Model form ``"linear"``; the ``log_likelihood`` group of
        :func:`bayeslmm.sample` holds log N(y_i | x_i β, σe²), comparable by LOO with an LMM
        fitted to the same samples.

    Notes
    -----
    .. math::

        y_i \sim N(x_i\beta, \sigma_e^2), \quad
        \beta_j \sim N(m_j, 10\,\mathrm{sd}(y)/\mathrm{sd}(x_j)), \quad
        \sigma_e \sim \mathrm{HalfStudentT}(3, \mathrm{sd}(y)).

    It is the LMM with σg² = 0 (K = 0), so LOO comparisons with :func:`kinship_model` on the
    same X ask whether the random effect earns its place beyond the covariates.
    """
    data = prepare(y, X)
    priors_used = resolve(
        priors, linear_parameters(data.y, data.X), model="the linear model", hints=LINEAR_HINTS
    )
    coords = {"covariate": list(data.covariates), "sample": list(data.samples)}
    with pm.Model(coords=coords) as model:
        y_data = pm.Data("y_obs", data.y, dims="sample")
        X_data = pm.Data("X", data.X, dims=("sample", "covariate"))
        beta = add_prior("beta", priors_used["beta"], dims="covariate")
        sigma_e = add_prior("sigma_e", priors_used["sigma_e"])
        pm.Deterministic("sigma_e2", sigma_e**2)
        pm.Normal("y", mu=X_data @ beta, sigma=sigma_e, observed=y_data, dims="sample")
    # No kinship: an empty spectral basis (rank 0), so the whole sample space is the "null
    # space" of K with variance σe², which is what provenance and constant_data record.
    spectral = Spectral(U=np.empty((data.n, 0)), s=np.empty(0))
    info = ModelInfo(
        family="linear",
        form="linear",
        parametrization="sigma_e",
        priors=priors_used,
        data=data,
        spectral=spectral,
        rotated=rotate_data(spectral, data.y, data.X),
    )
    return register_model(model, info)


#: Bayesian linear regression, no random effect: ``linear_model(y, X)``. Its summary is σe².
LINEAR = Family(name="linear", build=linear_model, postprocess=postprocess, summary=("sigma_e2",))
