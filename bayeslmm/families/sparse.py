"""Priors on the explicit SNP effects v of ``snp_model(marginalize=False)``: normal and sparse.

Three priors, each built inside the model on the context stack by one function that returns v:

- ``"normal"``: v = σv·z, z ~ N(0, I), σv² = σg²/M (the infinitesimal model, as marginalized).
- ``"mixture"``: each v_j from a two-normal mixture, large with probability π (BOLT-LMM's
  prior, BayesC-like), the indicator summed out.
- ``"horseshoe"``: the regularized horseshoe of Piironen & Vehtari (2017).

:func:`effect_summaries` adds what every prior reports: the realized proportion of variance
explained ``pve`` (GEMMA BSLMM's PVE) and, for the sparse priors, the per-SNP probability of a
large effect ``pip`` and the share of the genetic variance from large effects ``pge``.
:func:`postprocess` gives :func:`bayeslmm.sample` u = Wv and the pointwise log-likelihood.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.data.inputs import genotype_inputs
from bayeslmm.data.samples import Prepared
from bayeslmm.errors import InputError
from bayeslmm.families.base import (
    Family,
    ModelInfo,
    model_coords,
    null_space_term,
    register_model,
    variance_components,
)
from bayeslmm.families.priors import (
    PARAMETRIZATION_HINTS,
    UNIT,
    Parameter,
    Prior,
    PriorLike,
    add_prior,
    choose_parametrization,
    gaussian_parameters,
    resolve,
)
from bayeslmm.inference.effects import flat_draws, store_effects
from bayeslmm.linalg.spectral import Rotated, Spectral, rotate_data

#: The priors of ``snp_model(..., prior=...)``.
SPARSE_PRIORS = ("normal", "mixture", "horseshoe")

#: Options of each prior (``snp_model(..., prior_options=...)``) and their defaults; None means
#: "from the data" (the slab scale defaults to sd(y)).
OPTIONS: dict[str, dict[str, float | None]] = {
    "normal": {},
    "mixture": {},
    "horseshoe": {"n_nonzero": 10.0, "slab_scale": None, "slab_df": 4.0},
}

#: Priors of the mixture's own parameters, besides those of the normal model.
MIXTURE_DEFAULTS = {
    "pi": Prior("Beta", alpha=1, beta=9),
    "rho_excess": Prior("Beta", alpha=1, beta=1),
}


def _options(prior: str, given: Mapping[str, float] | None, y: np.ndarray, n_snps: int) -> dict:
    allowed = OPTIONS[prior]
    given = dict(given or {})
    unknown = set(given) - set(allowed)
    if unknown:
        hint = f"allowed: {sorted(allowed)}" if allowed else "it takes none"
        raise InputError(f"unknown prior_options {sorted(unknown)} for prior='{prior}'; {hint}.")
    options = {**allowed, **given}
    if prior != "horseshoe":
        return options
    if "n_nonzero" not in given:  # the default, 10, capped at half the SNPs for tiny M
        options["n_nonzero"] = min(float(options["n_nonzero"]), n_snps / 2)
    if options["slab_scale"] is None:
        options["slab_scale"] = float(np.std(y, ddof=1))
    for key in ("slab_scale", "slab_df"):
        if not float(options[key]) > 0:
            raise InputError(f"prior_options['{key}'] must be positive, got {options[key]!r}.")
    p0 = float(options["n_nonzero"])
    if not 0 < p0 < n_snps:
        raise InputError(
            f"prior_options['n_nonzero'] (the expected number of non-zero SNP effects) must lie "
            f"strictly between 0 and the number of SNPs ({n_snps}), got {p0:g}."
        )
    return {key: float(value) for key, value in options.items()}


def sparse_parameters(
    prior: str, parametrization: str, y: np.ndarray, X: np.ndarray
) -> dict[str, Parameter]:
    """The parameter table of the explicit SNP model under one prior on v.

    Parameters
    ----------
    prior : {"normal", "mixture", "horseshoe"}
    parametrization : {"h2", "variance"}
        For ``"normal"`` and ``"mixture"`` (ignored for the horseshoe).
    y, X
        Phenotype [shape: (n_samples,)] and covariates with intercept.

    Returns
    -------
    dict
        ``"normal"``: the Gaussian LMM's (:func:`~bayeslmm.families.priors.gaussian_parameters`);
        ``"mixture"``: those plus ``pi`` (probability of a large effect, default Beta(1, 9)) and
        ``rho_excess`` (default Beta(1, 1)); ``"horseshoe"``: ``beta`` and ``sigma_e2`` (default
        HalfStudentT(3, var y)) only, with no ``"flat"`` preset.
    """
    if prior == "horseshoe":
        table = gaussian_parameters("variance", y, X)
        return {"beta": table["beta"], "sigma_e2": table["sigma_e2"]}
    table = gaussian_parameters(parametrization, y, X)
    if prior == "mixture":
        for name, default in MIXTURE_DEFAULTS.items():
            table[name] = Parameter(default, UNIT, flat=default, suggestion=UNIT_SUGGESTION)
    return table


#: What a prior on a probability of the mixture should be, for messages.
UNIT_SUGGESTION = "a distribution on (0, 1), e.g. Prior('Beta', alpha=1, beta=9)"

#: What to do instead when ``priors`` names a parameter that the horseshoe does not have.
HORSESHOE_HINTS = dict.fromkeys(
    ("h2", "sigma_p", "sigma_g2", "lambda", "lambda_a", "lambda_b", "tau", "tau_unit", "tau_a")
    + ("tau_b", "c2"),
    "the local, global and slab scales are set through prior_options",
)


def resolve_sparse_priors(
    prior: str,
    priors: Mapping[str, PriorLike] | str | None,
    parametrization: str | None,
    y: np.ndarray,
    X: np.ndarray,
    n_snps: int,
    prior_options: Mapping[str, float] | None = None,
) -> tuple[str, dict[str, PriorLike], dict[str, float]]:
    """The priors and options of one SNP-effect prior: the resolver on :func:`sparse_parameters`.

    Parameters
    ----------
    prior : {"normal", "mixture", "horseshoe"}
    priors
        As in :func:`bayeslmm.snp_model`; see :func:`sparse_parameters` for the names.
    parametrization
        ``"h2"``/``"variance"`` for ``"normal"`` and ``"mixture"``; must be None for the
        horseshoe, whose h² is the realized PVE, not a parameter.
    y, X
        Phenotype [shape: (n_samples,)] and covariates with intercept.
    n_snps
        M.
    prior_options
        Horseshoe only: ``n_nonzero`` (expected number of non-zero effects p0, default 10, or
        M/2 when M < 20), ``slab_scale`` (s, default sd(y)), ``slab_df`` (ν, default 4).

    Returns
    -------
    parametrization : str
        ``"horseshoe"`` for the horseshoe.
    priors : dict
        Every prior the model creates, by variable name (the horseshoe's ``lambda``,
        ``tau_unit`` and ``c2`` from its options).
    options : dict
    """
    if prior not in SPARSE_PRIORS:
        raise InputError(f"prior must be one of {SPARSE_PRIORS}, got {prior!r}.")
    options = _options(prior, prior_options, y, n_snps)
    if prior != "horseshoe":
        parametrization = choose_parametrization(priors, parametrization, ("sigma_g2", "sigma_e2"))
        model = f"prior={prior!r} ('{parametrization}' parametrization)"
        table = sparse_parameters(prior, parametrization, y, X)
        return (
            parametrization,
            resolve(priors, table, model=model, hints=PARAMETRIZATION_HINTS),
            options,
        )
    if parametrization is not None:
        raise InputError(
            "prior='horseshoe' has no h2/variance parametrization: its h2 is the realized "
            "proportion of variance explained by Wv; leave parametrization unset."
        )
    table = sparse_parameters(prior, "variance", y, X)
    merged = resolve(priors, table, model="prior='horseshoe'", hints=HORSESHOE_HINTS)
    nu, scale = options["slab_df"], options["slab_scale"]
    # half-Cauchy scales as a·√b, a ~ N⁺(0, 1), b ~ InvGamma(1/2, 1/2) (= 1/χ²₁): the same
    # prior, with light-tailed coordinates that NUTS explores without the Cauchy funnel
    for name in ("lambda", "tau"):
        merged[f"{name}_a"] = Prior("HalfNormal", sigma=1.0)
        merged[f"{name}_b"] = Prior("InverseGamma", alpha=0.5, beta=0.5)
    merged["c2"] = Prior("InverseGamma", alpha=nu / 2, beta=nu * scale**2 / 2)
    return "horseshoe", merged, options


def global_scale(n_nonzero: float, n_snps: int, n_samples: int) -> float:
    r"""τ0 = p0 / (M − p0) / √N: the horseshoe's global scale per unit σe (Piironen & Vehtari)."""
    return n_nonzero / (n_snps - n_nonzero) / np.sqrt(n_samples)


# --------------------------------------------------------------------------------------------
# Builders: each creates its variables in the model on the context stack and returns v
# --------------------------------------------------------------------------------------------


def normal_effects(sigma_g2: pt.TensorVariable, n_snps: int) -> pt.TensorVariable:
    r"""Normal prior: v = σv·z, z ~ N(0, I_M), σv² = σg²/M (Deterministics ``sigma_v2``, ``v``)."""
    sigma_v2 = pm.Deterministic("sigma_v2", sigma_g2 / n_snps)
    z = pm.Normal("z", 0.0, 1.0, dims="snp")
    return pm.Deterministic("v", pt.sqrt(sigma_v2) * z, dims="snp")


def mixture_effects(
    sigma_g2: pt.TensorVariable, n_snps: int, priors: Mapping[str, PriorLike]
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    r"""Two-normal mixture per SNP, the indicator summed out, non-centred by the small component.

    Returns
    -------
    v, pip
        The effects and, per SNP, the conditional probability of the large component (dim snp).

    Notes
    -----
    .. math::

        v_j \sim \pi N(0, \sigma_L^2) + (1-\pi) N(0, \sigma_S^2), \quad
        \sigma_L^2 = \frac{\rho\,\sigma_g^2}{M\pi}, \quad
        \sigma_S^2 = \frac{(1-\rho)\,\sigma_g^2}{M(1-\pi)},

    so that :math:`M(\pi\sigma_L^2 + (1-\pi)\sigma_S^2) = \sigma_g^2` and ρ is the share of σg²
    in the large component. ρ = π + (1 − π)·``rho_excess`` lies in (π, 1), which orders the
    components (σL ≥ σS ⇔ ρ ≥ π): "large" keeps its meaning in every draw, and the two labels
    cannot switch. With v = σS·z (non-centred by the small SD) and r = σL/σS,

    .. math::

        z_j \sim \pi N(0, r^2) + (1-\pi) N(0, 1), \quad
        r^2 = \frac{\rho}{\pi(1-\rho_{excess})}, \quad
        \sigma_S^2 = (1-\rho_{excess})\,\sigma_g^2 / M,

    evaluated by logsumexp (``pm.NormalMixture``). The many small effects, which the data
    barely inform, are N(0, 1) in z whatever the variance components (no funnel); the few large
    ones are well identified by the data and nearly centred (z = v/σS with a wide prior).
    """
    pm.Deterministic("sigma_v2", sigma_g2 / n_snps)
    pi = add_prior("pi", priors["pi"])
    rho_excess = add_prior("rho_excess", priors["rho_excess"])
    rho = pm.Deterministic("rho", pi + (1.0 - pi) * rho_excess)
    pm.Deterministic("sigma_large2", rho * sigma_g2 / (n_snps * pi))
    sigma_small2 = pm.Deterministic("sigma_small2", (1.0 - rho_excess) * sigma_g2 / n_snps)
    ratio2 = rho / (pi * (1.0 - rho_excess))
    z = pm.NormalMixture(
        "z",
        w=pt.stack([pi, 1.0 - pi]),
        mu=pt.zeros(2),
        sigma=pt.stack([pt.sqrt(ratio2), pt.ones(())]),
        dims="snp",
    )
    v = pm.Deterministic("v", pt.sqrt(sigma_small2) * z, dims="snp")
    # log odds of the large component: log π/(1−π) + log N(z; 0, r²) − log N(z; 0, 1)
    log_odds = pt.log(pi) - pt.log1p(-pi) - 0.5 * pt.log(ratio2) + 0.5 * z**2 * (1.0 - 1.0 / ratio2)
    pip = pm.Deterministic("pip", pt.sigmoid(log_odds), dims="snp")
    return v, pip


def horseshoe_effects(
    sigma_e2: pt.TensorVariable,
    priors: Mapping[str, PriorLike],
    tau0: pt.TensorVariable,
    snp_sumsq: pt.TensorVariable,
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    r"""Regularized horseshoe (Piironen & Vehtari 2017), non-centred.

    Parameters
    ----------
    sigma_e2
        Residual variance (the global scale is proportional to σe).
    priors
        With ``lambda_a``, ``lambda_b``, ``tau_a``, ``tau_b`` and ``c2`` (from
        :func:`resolve_sparse_priors`).
    tau0
        τ0 of :func:`global_scale`.
    snp_sumsq
        Σ_i (w_ij − w̄_j)² per SNP, for the shrinkage factors [shape: (n_snps,)].

    Returns
    -------
    v, pip
        The effects and 1 − κ_j, the share of SNP j's least-squares effect that the prior lets
        through (dim snp).

    Notes
    -----
    .. math::

        z_j \sim N(0, 1),\quad \lambda_j = a_j\sqrt{b_j} \sim C^+(0, 1),\quad
        \tau = \tau_0\sigma_e\,t,\ t = a_\tau\sqrt{b_\tau} \sim C^+(0, 1),\quad
        c^2 \sim \mathrm{InvGamma}(\nu/2, \nu s^2/2),

        \tilde\lambda_j^2 = \frac{c^2\lambda_j^2}{c^2 + \tau^2\lambda_j^2},\quad
        v_j = z_j\,\tau\,\tilde\lambda_j,\quad
        \kappa_j = \frac{1}{1 + \tau^2\tilde\lambda_j^2 \sum_i (w_{ij} - \bar w_j)^2/\sigma_e^2}.

    Each half-Cauchy scale is written a·√b with a ~ N⁺(0, 1) and b ~ InvGamma(1/2, 1/2)
    (Piironen & Vehtari's Stan code): the same prior, but coordinates whose tails NUTS can
    cross (a half-Cauchy directly on the log scale leaves a funnel of z against λ).
    τ0 = p0/(M − p0)/√N puts the prior mass of the effective number of non-zero effects
    Σ(1 − κ_j) near p0. κ_j is the shrinkage factor of Carvalho, Polson & Scott (2010): the
    posterior mean of v_j is (1 − κ_j) times its least-squares value for an orthogonal design.
    """
    lam_a = add_prior("lambda_a", priors["lambda_a"], dims="snp")
    lam_b = add_prior("lambda_b", priors["lambda_b"], dims="snp")
    lam = pm.Deterministic("lambda", lam_a * pt.sqrt(lam_b), dims="snp")
    tau_a = add_prior("tau_a", priors["tau_a"])
    tau_b = add_prior("tau_b", priors["tau_b"])
    tau_unit = tau_a * pt.sqrt(tau_b)
    tau = pm.Deterministic("tau", tau0 * pt.sqrt(sigma_e2) * tau_unit)
    c2 = add_prior("c2", priors["c2"])
    lam_tilde2 = c2 * lam**2 / (c2 + tau**2 * lam**2)
    z = pm.Normal("z", 0.0, 1.0, dims="snp")
    v = pm.Deterministic("v", z * tau * pt.sqrt(lam_tilde2), dims="snp")
    kappa = 1.0 / (1.0 + tau**2 * lam_tilde2 * snp_sumsq / sigma_e2)
    pip = pm.Deterministic("pip", 1.0 - kappa, dims="snp")
    return v, pip


def _sample_variance(B: Any, effects: Any, ones_rot: Any, n_samples: int) -> pt.TensorVariable:
    """Variance over samples (ddof 0) of W·effects, from its coordinates B·effects on U."""
    g1 = B @ effects
    mean = (ones_rot @ g1) / n_samples
    return (g1 @ g1) / n_samples - mean**2


def effect_summaries(
    B: Any,
    v: pt.TensorVariable,
    sigma_e2: pt.TensorVariable,
    ones_rot: Any,
    n_samples: int,
    *,
    pip: pt.TensorVariable | None = None,
    snp_var: Any = None,
) -> pt.TensorVariable:
    r"""Add ``pve`` (and with ``pip``: ``pge``) as Deterministics; return var(Wv).

    Notes
    -----
    Wv lies in the span of U, so with g₁ = Bv = U'Wv its sample variance is
    :math:`\|g_1\|^2/N - (\mathbf 1'U g_1/N)^2`: O(r·M) per draw, never O(N·M).

    .. math::

        \mathrm{pve} = \frac{\operatorname{var}(Wv)}{\operatorname{var}(Wv) + \sigma_e^2},
        \qquad
        \mathrm{pge} = \frac{E_\gamma \operatorname{var}(W(\gamma\circ v))}
                            {\operatorname{var}(Wv)},\quad
        \gamma_j \sim \mathrm{Bernoulli}(\mathrm{pip}_j)\ \text{independently},

    and :math:`E_\gamma \operatorname{var}(W(\gamma\circ v)) = \operatorname{var}(W(p\circ v))
    + \sum_j p_j(1-p_j) v_j^2 \operatorname{var}(w_j)` with p = pip: GEMMA BSLMM's PVE and
    PGE, the indicator averaged out given the draw (Rao–Blackwellized).
    """
    var_g = _sample_variance(B, v, ones_rot, n_samples)
    pm.Deterministic("pve", var_g / (var_g + sigma_e2))
    if pip is not None:
        var_large = _sample_variance(B, pip * v, ones_rot, n_samples)
        var_large += pt.sum(pip * (1.0 - pip) * v**2 * snp_var)
        pm.Deterministic("pge", var_large / var_g)
    return var_g


# --------------------------------------------------------------------------------------------
# After sampling
# --------------------------------------------------------------------------------------------


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    r"""The sparse family's post-processing: u = Wv and the log-likelihood.

    Returns
    -------
    new_vars : dict
        ``u`` (dim sample) when ``random_effects`` and it fits in memory.
    loglik : ndarray
        :math:`\log N(y_i \mid X_i\beta + W_i v, \sigma_e^2)` for each draw
        [shape: (draws, n_samples)]. It is conditional on v: the marginal over a sparse prior
        has no closed form. It targets the same log p(y_i | y_−i) as the marginal form of the
        normal prior, but its PSIS-LOO is less reliable (watch the Pareto k values).
    """
    del rng  # everything here is a function of the draws
    data, W = info.data, info.W
    v = flat_draws(posterior, "v")
    beta = flat_draws(posterior, "beta")
    sigma_e2 = flat_draws(posterior, "sigma_e2")
    n_draws = v.shape[0]
    keep_u = store_effects(
        random_effects, n_draws * data.n, f"{n_draws} draws × {data.n} samples", stacklevel=4
    )
    u_all = np.empty((n_draws, data.n)) if keep_u else None
    loglik = np.empty((n_draws, data.n))
    step = max(1, 4_000_000 // max(data.n + W.shape[1], 1))
    for start in range(0, n_draws, step):
        sl = slice(start, min(start + step, n_draws))
        u = v[sl] @ W.T
        resid = data.y[None, :] - beta[sl] @ data.X.T - u
        se2 = sigma_e2[sl, None]
        loglik[sl] = -0.5 * (np.log(2 * np.pi * se2) + resid**2 / se2)
        if u_all is not None:
            u_all[sl] = u
    new = {"u": (u_all, "sample", list(data.samples))} if u_all is not None else {}
    return new, loglik


# --------------------------------------------------------------------------------------------
# The explicit SNP model of snp_model(marginalize=False)
# --------------------------------------------------------------------------------------------


def explicit_snp_model(
    data: Prepared,
    W: np.ndarray,
    spectral: Spectral,
    coords: dict[str, Any],
    prior: str,
    priors: Mapping[str, PriorLike] | str | None,
    parametrization: str | None,
    prior_options: Mapping[str, float] | None,
) -> tuple[pm.Model, Rotated, str, dict[str, PriorLike], dict[str, Any]]:
    r"""Build y = Xβ + Wv + ε with v explicit under one prior, in the eigenbasis of K = WW'/M.

    Parameters
    ----------
    data
        Aligned data.
    W
        Normalized genotypes [shape: (n_samples, n_snps)].
    spectral
        Thin decomposition of K = WW'/M.
    coords
        Model coordinates, ``snp`` included.
    prior, priors, parametrization, prior_options
        As in :func:`bayeslmm.snp_model`.

    Returns
    -------
    model, rotated, parametrization, priors, extra
        ``extra`` holds the prior's name and options.

    Notes
    -----
    With B = U'W [r×M], y₁ ~ N(X₁β + Bv, σe² I_r) plus the null-space term of the residual
    (Wv lies in the span of U, so that term involves only [X, y]): O(r·M) per evaluation.
    """
    n, n_snps = W.shape
    parametrization, priors, options = resolve_sparse_priors(
        prior, priors, parametrization, data.y, data.X, n_snps, prior_options
    )
    rot = rotate_data(spectral, data.y, data.X)
    loadings = spectral.U.T @ W  # B = U'W [shape: (rank, n_snps)]
    with pm.Model(coords=coords) as model:
        y_rot = pm.Data("y_rot", rot.y1, dims="eigen")
        X_rot = pm.Data("X_rot", rot.X1, dims=("eigen", "covariate"))
        B = pm.Data("snp_loadings", loadings, dims=("eigen", "snp"))
        ones_rot = pm.Data("ones_rot", spectral.U.sum(axis=0), dims="eigen")
        beta = add_prior("beta", priors["beta"], dims="covariate")
        pip = snp_var = None
        if prior != "normal":
            snp_var = pm.Data("snp_var", W.var(axis=0), dims="snp")
        if prior == "horseshoe":
            sigma_e2 = add_prior("sigma_e2", priors["sigma_e2"])
            tau0 = pm.Data("tau0", global_scale(options["n_nonzero"], n_snps, n))
            v, pip = horseshoe_effects(sigma_e2, priors, tau0, n * snp_var)
        else:
            _, sigma_g2, sigma_e2 = variance_components(parametrization, priors)
            if prior == "normal":
                v = normal_effects(sigma_g2, n_snps)
            else:
                v, pip = mixture_effects(sigma_g2, n_snps, priors)
        pm.Normal(
            "y",
            mu=X_rot @ beta + B @ v,
            sigma=pt.sqrt(sigma_e2),
            observed=y_rot,
            dims="eigen",
        )
        null_space_term(rot, beta, sigma_e2)
        var_g = effect_summaries(B, v, sigma_e2, ones_rot, n, pip=pip, snp_var=snp_var)
        if prior == "horseshoe":  # no σg² parameter: the realized genetic variance and PVE
            pm.Deterministic("sigma_g2", var_g)
            pm.Deterministic("h2", var_g / (var_g + sigma_e2))
    return model, rot, parametrization, priors, {"prior": prior, "options": options}


def sparse_snp_model(
    y: Any,
    W: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    prior: str = "mixture",
    parametrization: str | None = None,
    standardize: bool = True,
    prior_options: Mapping[str, float] | None = None,
) -> pm.Model:
    """Build the SNP-effects LMM under a sparse prior on v (the ``"sparse"`` family).

    Reached through :func:`bayeslmm.snp_model` with ``marginalize=False`` and
    ``prior="mixture"`` or ``"horseshoe"``; the arguments are those of :func:`bayeslmm.snp_model`.
    Form ``"snp_lmm_<prior>"``.
    """
    if prior not in ("mixture", "horseshoe"):
        raise InputError(f"a sparse prior is 'mixture' or 'horseshoe', got {prior!r}.")
    data, W_used, snps, spectral, transform = genotype_inputs(
        y, W, X, standardize_snps=standardize, with_transform=True
    )
    coords = {**model_coords(data, spectral), "snp": snps}
    model, rot, parametrization, priors_used, extra = explicit_snp_model(
        data, W_used, spectral, coords, prior, priors, parametrization, prior_options
    )
    # the training standardization, kept in constant_data for predicting new samples
    extra = {**extra, "constant_data": {name: (v, "snp", snps) for name, v in transform.items()}}
    info = ModelInfo(
        family="sparse",
        form=f"snp_lmm_{prior}",
        parametrization=parametrization,
        priors=priors_used,
        data=data,
        spectral=spectral,
        rotated=rot,
        W=W_used,
        snps=snps,
        marginalize=False,
        extra=extra,
    )
    return register_model(model, info)


#: Sparse priors on explicit SNP effects: ``snp_model(y, W, marginalize=False, prior=...)``.
SPARSE = Family(
    name="sparse",
    build=sparse_snp_model,
    postprocess=postprocess,
    summary=("h2", "sigma_g2", "sigma_e2", "sigma_v2", "pve", "pge"),
)
