"""Probit LMM for a binary (0/1) phenotype: a liability threshold model with u in K's eigenbasis.

The liability is ℓ = Xβ + u + ε with ε ~ N(0, 1) (its variance is fixed: a threshold model
identifies the liability only up to scale), and y = 1[ℓ > 0], so P(y = 1 | u) = Φ(Xβ + u). The
genetic values are sampled non-centred in the eigenbasis of K, u = U₁ diag(√(σg² s)) z with
z ~ N(0, I_r): one log-density and gradient cost O(N·r). h² is reported on the liability scale
directly, h² = σg² / (σg² + 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.data.inputs import kinship_inputs
from bayeslmm.errors import InputError
from bayeslmm.families.base import Family, ModelInfo, model_coords, register_model
from bayeslmm.families.priors import (
    POSITIVE,
    REAL,
    UNIT,
    Parameter,
    Prior,
    PriorLike,
    add_prior,
    choose_parametrization,
    resolve,
)
from bayeslmm.inference.effects import flat_draws, store_effects
from bayeslmm.linalg.spectral import rotate_data

#: Prior SD of a probit coefficient per SD of its covariate (Gelman et al. 2008 use 2.5 on the
#: logit scale; on the probit scale, where the latent noise has SD 1 instead of 1.8, it is wide).
BETA_SCALE = 2.5


def log_ndtr(x: pt.TensorVariable) -> pt.TensorVariable:
    r"""Compute log Φ(x), accurate in both tails and with a finite gradient everywhere.

    Notes
    -----
    .. math::

        \log\Phi(x) = \begin{cases}
            \log\big(\operatorname{erfcx}(-x/\sqrt2)/2\big) - x^2/2, & x < -1,\\
            \operatorname{log1p}\big(-\operatorname{erfc}(x/\sqrt2)/2\big), & x \ge -1.
        \end{cases}

    Each branch is evaluated at its input clipped to its own region before the switch, so that
    the branch not taken can neither overflow (erfcx of a large negative argument) nor feed a
    NaN into the gradient. Checked against ``scipy.special.log_ndtr`` for |x| ≤ 40.
    """
    lower = pt.minimum(x, -1.0)
    upper = pt.maximum(x, -1.0)
    left = pt.log(pt.erfcx(-lower / np.sqrt(2.0)) / 2.0) - lower**2 / 2.0
    right = pt.log1p(-pt.erfc(upper / np.sqrt(2.0)) / 2.0)
    return pt.switch(pt.lt(x, -1.0), left, right)


def _probit_logp(value: pt.TensorVariable, eta: pt.TensorVariable) -> pt.TensorVariable:
    """Bernoulli log-probability: log Φ(η) for y = 1 and log Φ(−η) for y = 0."""
    return log_ndtr((2.0 * value - 1.0) * eta)


def _probit_random(
    eta: np.ndarray, rng: np.random.Generator | None = None, size: Any = None
) -> np.ndarray:
    """Draw y = 1[η + ε > 0], ε ~ N(0, 1)."""
    rng = np.random.default_rng() if rng is None else rng
    return (eta + rng.standard_normal(size) > 0).astype(float)


def check_binary(y: Any) -> None:
    """Raise an InputError unless the non-missing values of y are 0 and 1, both present.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]: array or Series; NaN marks a missing value.
    """
    try:
        values = np.asarray(getattr(y, "values", y), dtype=float).ravel()
    except (TypeError, ValueError):
        return  # not numeric: bayeslmm.data.samples.prepare names the problem
    values = values[~np.isnan(values)]
    found = np.unique(values)
    other = found[(found != 0) & (found != 1)]
    if other.size:
        shown = ", ".join(f"{v:g}" for v in found[:8]) + (", ..." if found.size > 8 else "")
        raise InputError(
            f"family='probit' needs a 0/1 phenotype, found the values {{{shown}}}; code cases "
            "as 1 and controls as 0 (e.g. PLINK's 1/2 coding minus 1), or use "
            "family='gaussian' for a quantitative trait."
        )
    if found.size == 1:
        raise InputError(
            f"family='probit' needs both cases and controls; every non-missing value of y is "
            f"{found[0]:g} ({values.size} samples), so there is nothing to model."
        )


def probit_parameters(parametrization: str, y: np.ndarray, X: np.ndarray) -> dict[str, Parameter]:
    """The parameter table of the probit model, defaults scaled by the data.

    Parameters
    ----------
    parametrization : {"h2", "variance"}
    y, X
        The 0/1 phenotype [shape: (n_samples,)] and covariates with intercept
        [shape: (n_samples, n_covariates)].

    Returns
    -------
    dict
        ``beta`` ~ Normal(Φ⁻¹(mean y) for the intercept else 0, 2.5/sd(x_j)) (2.5 for the
        intercept); ``h2`` ~ Beta(1, 1) or ``sigma_g2`` ~ HalfStudentT(3, 1). No ``"flat"``
        preset (the exact flat check is for the Gaussian model).
    """
    sd_x = np.std(X, axis=0, ddof=1)
    constant = sd_x == 0
    prevalence = float(np.clip(np.mean(y), 0.01, 0.99))
    mu = np.where(constant, float(special.ndtri(prevalence)), 0.0)
    sigma = BETA_SCALE / np.where(constant, 1.0, sd_x)
    table = {"beta": Parameter(Prior("Normal", mu=mu, sigma=sigma), REAL, (X.shape[1],))}
    if parametrization == "h2":
        table["h2"] = Parameter(Prior("Beta", alpha=1, beta=1), UNIT)
    else:
        table["sigma_g2"] = Parameter(Prior("HalfStudentT", nu=3, sigma=1.0), POSITIVE)
    return table


#: What to do instead when ``priors`` names a parameter the probit model does not have.
PROBIT_HINTS = {
    **dict.fromkeys(
        ("sigma_e2", "sigma_p"),
        "the probit model fixes the residual liability variance sigma_e2 at 1 (a threshold "
        "model identifies the liability only up to scale), so it has no prior on sigma_e2 or "
        "sigma_p; put a prior on h2 or on sigma_g2 instead",
    ),
    "sigma_g2": "a prior on sigma_g2 needs parametrization='variance'",
    "h2": "a prior on h2 needs parametrization='h2'",
}


def probit_model(
    y: Any,
    K: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    parametrization: str | None = None,
    normalize: bool = True,
) -> pm.Model:
    r"""Build the probit (liability threshold) LMM for a 0/1 phenotype.

    Called by :func:`bayeslmm.kinship_model` with ``family="probit"``.

    Parameters
    ----------
    y
        Binary phenotype, 0 (control) or 1 (case) [shape: (n_samples,)]; NaN is missing.
    K
        Kinship [shape: (n_samples, n_samples)], as in :func:`bayeslmm.kinship_model`.
    X
        Covariates; None means intercept only.
    priors
        Dict of priors on ``beta`` and ``h2`` (or ``sigma_g2``), merged into the defaults of
        :func:`probit_parameters`.
    parametrization : {"h2", "variance"}, optional
        ``"h2"`` (default): prior on the liability-scale h², σg² = h²/(1 − h²). ``"variance"``:
        prior on σg², h² = σg²/(σg² + 1).
    normalize
        Divide K by its mean diagonal (then h² is on the usual liability scale).

    Returns
    -------
    pymc.Model
        Free ``beta`` (dim ``covariate``), ``h2`` (or ``sigma_g2``), ``z`` (dim ``eigen``);
        Deterministics ``sigma_g2`` (or ``h2``) and ``sigma_e2`` (= 1); observed ``y``
        (dim ``sample``). :func:`bayeslmm.sample` adds ``u`` (dim ``sample``) and the pointwise
        log-likelihood, both computed from the draws of z.

    Raises
    ------
    InputError
        If y has values other than 0 and 1, or only one of them.

    Notes
    -----
    .. math::

        \ell = X\beta + u + \varepsilon,\quad \varepsilon \sim N(0, I),\quad
        y_i = 1[\ell_i > 0],\quad P(y_i = 1 \mid u) = \Phi(X_i\beta + u_i),

        u = U_1 \operatorname{diag}\big(\sqrt{\sigma_g^2 s}\big)\, z,\quad z \sim N(0, I_r),
        \quad\text{so } u \sim N(0, \sigma_g^2 K),\quad h^2 = \sigma_g^2 / (\sigma_g^2 + 1).

    The log-likelihood sums :math:`\log\Phi((2y_i - 1)\eta_i)` through :func:`log_ndtr`, which
    stays accurate and differentiable for |η| far beyond 8. The pointwise log-likelihood that
    :func:`bayeslmm.sample` stores is conditional on u (the Bernoulli terms): it is the only
    factorized form available, and its PSIS-LOO is less reliable than the marginal Gaussian
    LOO of the Gaussian model (watch the Pareto k values).
    """
    check_binary(y)
    data, spectral = kinship_inputs(y, K, X, normalize=normalize)
    parametrization = choose_parametrization(priors, parametrization, ("sigma_g2",))
    priors = resolve(
        priors,
        probit_parameters(parametrization, data.y, data.X),
        model=f"family='probit' ('{parametrization}' parametrization)",
        hints=PROBIT_HINTS,
    )
    with pm.Model(coords=model_coords(data, spectral)) as model:
        y_obs = pm.Data("y_binary", data.y, dims="sample")
        X_data = pm.Data("X", data.X, dims=("sample", "covariate"))
        U = pm.Data("eigenvectors", spectral.U, dims=("sample", "eigen"))
        s = pm.Data("s", spectral.s, dims="eigen")
        beta = add_prior("beta", priors["beta"], dims="covariate")
        if parametrization == "h2":
            h2 = add_prior("h2", priors["h2"])
            sigma_g2 = pm.Deterministic("sigma_g2", h2 / (1.0 - h2))
        else:
            sigma_g2 = add_prior("sigma_g2", priors["sigma_g2"])
            pm.Deterministic("h2", sigma_g2 / (sigma_g2 + 1.0))
        pm.Deterministic("sigma_e2", pt.constant(1.0, dtype="float64"))
        z = pm.Normal("z", 0.0, 1.0, dims="eigen")
        u = U @ (pt.sqrt(sigma_g2 * s) * z)
        pm.CustomDist(
            "y",
            X_data @ beta + u,
            logp=_probit_logp,
            random=_probit_random,
            observed=y_obs,
            dims="sample",
        )
    info = ModelInfo(
        family="probit",
        form="probit_lmm",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rotate_data(spectral, data.y, data.X),
    )
    return register_model(model, info)


def genetic_values(z: np.ndarray, sigma_g2: np.ndarray, U: np.ndarray, s: np.ndarray) -> np.ndarray:
    r"""Genetic values u = U₁ diag(√(σg² s)) z for each draw [shape: (draws, n_samples)].

    Parameters
    ----------
    z : ndarray
        [shape: (draws, rank)].
    sigma_g2 : ndarray
        [shape: (draws,)].
    U, s : ndarray
        Eigenvectors [shape: (n_samples, rank)] and eigenvalues [shape: (rank,)] of K.
    """
    return (z * np.sqrt(sigma_g2[:, None] * s[None, :])) @ U.T


def pointwise_loglik(y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Pointwise log P(y_i | η_i) = log Φ((2y_i − 1) η_i) [shape: like η]."""
    return special.log_ndtr((2.0 * y - 1.0) * eta)


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """The family's post-processing: u from the draws of z and the conditional log-likelihood.

    Returns
    -------
    new_vars : dict
        ``{"u": (values [shape: (draws, n_samples)], "sample", sample IDs)}`` when
        ``random_effects`` (and the array fits in memory).
    loglik : ndarray
        log P(y_i | β, u) for each draw [shape: (draws, n_samples)]: conditional on u.
    """
    del rng  # u is a deterministic function of the draws
    data, spectral = info.data, info.spectral
    z = flat_draws(posterior, "z")
    sigma_g2 = flat_draws(posterior, "sigma_g2")
    beta = flat_draws(posterior, "beta")
    n_draws = z.shape[0]
    keep_u = store_effects(
        random_effects, n_draws * data.n, f"{n_draws} draws × {data.n} samples", stacklevel=4
    )
    u_all = np.empty((n_draws, data.n)) if keep_u else None
    loglik = np.empty((n_draws, data.n))
    step = max(1, 4_000_000 // max(data.n + spectral.rank, 1))
    for start in range(0, n_draws, step):
        sl = slice(start, min(start + step, n_draws))
        u = genetic_values(z[sl], sigma_g2[sl], spectral.U, spectral.s)
        loglik[sl] = pointwise_loglik(data.y[None, :], beta[sl] @ data.X.T + u)
        if u_all is not None:
            u_all[sl] = u
    new = {"u": (u_all, "sample", list(data.samples))} if u_all is not None else {}
    return new, loglik


#: The probit LMM of a binary trait: ``kinship_model(y, K, family="probit")``. Its h2 is on
#: the liability scale already.
PROBIT = Family(name="probit", build=probit_model, postprocess=postprocess, selectable=True)
