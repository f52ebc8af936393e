"""Priors on the explicit SNP effects v of ``snp_model(marginalize=False)``: normal and sparse.

Three priors, each built inside the model on the context stack by one function that returns v:

- ``"normal"``: v = σv·z, z ~ N(0, I), σv² = σg²/M (the infinitesimal model, as marginalized).
- ``"mixture"``: each v_j from a spike-and-slab pair of normals, slab with probability π
  (GEMMA BSLMM's prior with its point mass relaxed to a narrow normal), the indicator summed out.
- ``"horseshoe"``: the regularized horseshoe of Piironen & Vehtari (2017).

The two sparse priors are BSLMM-like: beside v, a polygenic background u ~ N(0, σb² K),
K = WW'/M, summed out in the eigenbasis of K (:func:`explicit_snp_model`).
:func:`effect_summaries` adds what every prior reports: the proportion of variance explained
``pve`` (GEMMA BSLMM's PVE, the background averaged out given the draw) and, for the sparse
priors, the per-SNP probability of a large effect ``pip`` and the share of the genetic variance
from the sparse effects ``pge``. :func:`postprocess` gives :func:`bayeslmm.sample` u (Wv plus
the background), the background's BLUP as SNP effects (``v_background``, for prediction) and
the pointwise leave-one-out log-likelihood.
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
    "mixture": {"n_nonzero": 10.0, "spike_sd": 0.3},
    "horseshoe": {"n_nonzero": 10.0, "slab_scale": None, "slab_df": 4.0},
}

#: NUTS target acceptance each sparse prior needs (measured: see
#: models/sparse_snp_lmm/MODEL.md, "Parametrization and why"); in ``ModelInfo.extra``.
TARGET_ACCEPT = {"mixture": 0.9, "horseshoe": 0.99}

#: Prior of the mixture's ρ excess (ρ, the slab's share of σg², is uniform on (ρ_min, 1) given
#: π); π's default comes from n_nonzero.
MIXTURE_DEFAULTS = {"rho_excess": Prior("Beta", alpha=1, beta=1)}


def pi_prior(n_nonzero: float, n_snps: int) -> Prior:
    """π ~ Beta(10, 10 (M − p0)/p0): mean p0/M (p0 expected slab effects), SD ≈ 30 % of it."""
    return Prior("Beta", alpha=10, beta=10 * (n_snps - n_nonzero) / n_nonzero)


def _options(prior: str, given: Mapping[str, float] | None, y: np.ndarray, n_snps: int) -> dict:
    allowed = OPTIONS[prior]
    given = dict(given or {})
    unknown = set(given) - set(allowed)
    if unknown:
        hint = f"allowed: {sorted(allowed)}" if allowed else "it takes none"
        raise InputError(f"unknown prior_options {sorted(unknown)} for prior='{prior}'; {hint}.")
    options = {**allowed, **given}
    if prior == "normal":
        return options
    if "n_nonzero" not in given:  # the default, 10, capped at half the SNPs for tiny M
        options["n_nonzero"] = min(float(options["n_nonzero"]), n_snps / 2)
    if prior == "mixture":
        spike = options["spike_sd"]
        if not 0 < float(spike) < 1:
            raise InputError(
                "prior_options['spike_sd'] (the spike's SD as a fraction of the background's "
                f"per-SNP SD) must lie strictly between 0 and 1, got {spike!r}."
            )
    else:
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
    prior: str,
    parametrization: str,
    y: np.ndarray,
    X: np.ndarray,
    n_snps: int | None = None,
    n_nonzero: float = 10.0,
) -> dict[str, Parameter]:
    """The parameter table of the explicit SNP model under one prior on v.

    Parameters
    ----------
    prior : {"normal", "mixture", "horseshoe"}
    parametrization : {"h2", "variance"}
        For ``"normal"`` and ``"mixture"`` (ignored for the horseshoe).
    y, X
        Phenotype [shape: (n_samples,)] and covariates with intercept.
    n_snps, n_nonzero
        M and p0 (mixture: π's default prior has mean p0/M).

    Returns
    -------
    dict
        ``"normal"``: the Gaussian LMM's (:func:`~bayeslmm.families.priors.gaussian_parameters`);
        ``"mixture"``: those (σg² the whole genetic variance, background and sparse) plus
        ``pi`` (probability of a slab effect, default Beta(10, 10 (M − p0)/p0): mean p0/M) and
        ``rho_excess`` (default Beta(1, 1); ρ = ρ_min + (1 − ρ_min)·rho_excess is the slab's
        share of σg², ρ_min = πε²/(1 + πε²) keeps the slab wider than the spike); ``"horseshoe"``:
        ``beta``, ``sigma_e2`` and ``sigma_b2`` (the background's variance; both default
        HalfStudentT(3, var y)), with no ``"flat"`` preset.
    """
    if prior == "horseshoe":
        table = gaussian_parameters("variance", y, X)
        return {"beta": table["beta"], "sigma_e2": table["sigma_e2"], "sigma_b2": table["sigma_g2"]}
    table = gaussian_parameters(parametrization, y, X)
    if prior == "mixture":
        defaults = {"pi": pi_prior(n_nonzero, n_snps), **MIXTURE_DEFAULTS}
        for name, default in defaults.items():
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
        Both: ``n_nonzero`` (the expected number of non-zero effects p0, default 10, or M/2
        when M < 20). Mixture: ``spike_sd`` (ε, the spike's SD as a fraction of the
        background's per-SNP SD √(σb²/M), default 0.3). Horseshoe: ``slab_scale`` (s,
        default sd(y)), ``slab_df`` (ν, default 4).

    Returns
    -------
    parametrization : str
        ``"horseshoe"`` for the horseshoe.
    priors : dict
        Every prior the model creates, by variable name (the horseshoe's ``lambda_a``,
        ``lambda_b``, ``tau_a``, ``tau_b`` and ``c2`` from its options).
    options : dict
    """
    if prior not in SPARSE_PRIORS:
        raise InputError(f"prior must be one of {SPARSE_PRIORS}, got {prior!r}.")
    options = _options(prior, prior_options, y, n_snps)
    if prior != "horseshoe":
        parametrization = choose_parametrization(priors, parametrization, ("sigma_g2", "sigma_e2"))
        model = f"prior={prior!r} ('{parametrization}' parametrization)"
        table = sparse_parameters(
            prior, parametrization, y, X, n_snps, options.get("n_nonzero", 10.0)
        )
        return (
            parametrization,
            resolve(priors, table, model=model, hints=PARAMETRIZATION_HINTS),
            options,
        )
    if parametrization is not None:
        raise InputError(
            "prior='horseshoe' has no h2/variance parametrization: its h2 is the realized "
            "proportion of variance explained by the genetic values; leave parametrization unset."
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
    sigma_g2: pt.TensorVariable, n_snps: int, priors: Mapping[str, PriorLike], spike_sd: float
) -> tuple[pt.TensorVariable, pt.TensorVariable, pt.TensorVariable]:
    r"""Spike-and-slab normal mixture per SNP beside the background, the indicator summed out.

    Parameters
    ----------
    sigma_g2
        The whole genetic variance (background and slab effects).
    n_snps
        M.
    priors
        With ``pi`` and ``rho_excess``.
    spike_sd
        ε: the spike's SD as a fraction of the background's per-SNP SD √(σb²/M).

    Returns
    -------
    v, pip, sigma_b2
        The effects, per SNP the conditional probability of the slab (dim snp), and the
        background's variance.

    Notes
    -----
    .. math::

        v_j \sim \pi N(0, \sigma_L^2) + (1-\pi) N(0, \sigma_S^2), \quad
        \sigma_L^2 = \frac{\rho\,\sigma_g^2}{M\pi}, \quad
        \sigma_b^2 = (1-\rho)\,\sigma_g^2, \quad
        \sigma_S^2 = \varepsilon^2 \sigma_b^2 / M,

    BSLMM's prior with its point mass relaxed to a spike narrower than the background's own
    per-SNP effects (u ~ N(0, σb² K) is W times iid N(0, σb²/M) effects): ρ is the share of σg²
    in the slab (BSLMM's ρ, the PGE's prior counterpart), the rest is the background, and the
    spike's effects, iid normal too, add at most ε²σb² of background-like variance. A spike of
    width zero (BSLMM's point mass) would leave NUTS a density it cannot cross. Non-centred by
    the spike, v = σS z with r² = σL²/σS² = ρ / (π ε² (1 − ρ)),

    .. math::

        z_j \sim \pi N(0, r^2) + (1-\pi) N(0, 1),

    evaluated by logsumexp (``pm.NormalMixture``): the hundreds of spike effects, which the data
    barely inform, are N(0, 1) in z whatever the variance components (no funnel), while the
    few slab effects are identified by the data and nearly centred. ρ = ρ_min + (1 − ρ_min)·
    ``rho_excess`` with ρ_min = πε²/(1 + πε²) is the same as r ≥ 1: the slab is the wider
    component in every draw, so the two labels cannot switch (on a polygenic trait, ρ → 0
    would otherwise make the "slab" the narrower one and ``pip`` mean the opposite).
    """
    pi = add_prior("pi", priors["pi"])
    rho_excess = add_prior("rho_excess", priors["rho_excess"])
    # ρ ≥ ρ_min ⇔ r² ≥ 1 ⇔ σL ≥ σS: the slab is the wider component in every draw
    rho_min = pi * spike_sd**2 / (1.0 + pi * spike_sd**2)
    rho = pm.Deterministic("rho", rho_min + (1.0 - rho_min) * rho_excess)
    pm.Deterministic("sigma_slab2", rho * sigma_g2 / (n_snps * pi))
    sigma_b2 = pm.Deterministic("sigma_b2", (1.0 - rho) * sigma_g2)
    sigma_spike2 = pm.Deterministic("sigma_spike2", spike_sd**2 * sigma_b2 / n_snps)
    ratio2 = rho / (pi * spike_sd**2 * (1.0 - rho))
    z = pm.NormalMixture(
        "z",
        w=pt.stack([pi, 1.0 - pi]),
        mu=pt.zeros(2),
        sigma=pt.stack([pt.sqrt(ratio2), pt.ones(())]),
        dims="snp",
    )
    v = pm.Deterministic("v", pt.sqrt(sigma_spike2) * z, dims="snp")
    # log odds of the slab: log π/(1−π) + log N(z; 0, r²) − log N(z; 0, 1)
    log_odds = pt.log(pi) - pt.log1p(-pi) - 0.5 * pt.log(ratio2) + 0.5 * z**2 * (1.0 - 1.0 / ratio2)
    pip = pm.Deterministic("pip", pt.sigmoid(log_odds), dims="snp")
    return v, pip, sigma_b2


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


def _sample_variance(g1: Any, ones_rot: Any, n_samples: int) -> pt.TensorVariable:
    """Variance over samples (ddof 0) of the vector U·g1, from its coordinates g1 on U."""
    mean = (ones_rot @ g1) / n_samples
    return (g1 @ g1) / n_samples - mean**2


def background_moments(
    resid_rot: Any, s: Any, sigma_b2: Any, sigma_e2: Any
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    r"""The background's conditional mean and variance on U given y, β, v and the variances.

    Returns
    -------
    mean, var
        ū₁ = σb² s / (σb² s + σe²) ⊙ e₁ and c = σb² s σe² / (σb² s + σe²), with e₁ = y₁ − X₁β − Bv
        [shape: (rank,)]: u = U a with a_k independent N(ū₁ₖ, c_k).
    """
    prior_var = sigma_b2 * s
    total = prior_var + sigma_e2
    return prior_var / total * resid_rot, prior_var * sigma_e2 / total


def effect_summaries(
    B: Any,
    v: pt.TensorVariable,
    sigma_e2: pt.TensorVariable,
    ones_rot: Any,
    n_samples: int,
    *,
    pip: pt.TensorVariable | None = None,
    snp_var: Any = None,
    background: tuple[Any, Any] | None = None,
) -> pt.TensorVariable:
    r"""Add ``pve`` (and with ``pip``: ``pge``) as Deterministics; return the genetic variance.

    Parameters
    ----------
    B, v, sigma_e2, ones_rot, n_samples
        U'W, the effects, σe², U'1 and N.
    pip, snp_var
        Per-SNP probability of a large effect and var(w_j), for ``pge``.
    background
        (ū₁, c) of :func:`background_moments`, for the models with a background.

    Notes
    -----
    Wv and u lie in the span of U, so with g₁ = Bv + ū₁ (their coordinates on U; ū₁ = 0
    without background) the sample variance of the genetic value, u averaged out given the
    draw, is

    .. math::

        V_g = E_u \operatorname{var}(Wv + u)
            = \|g_1\|^2/N - (\mathbf 1'U g_1/N)^2
              + \textstyle\sum_k c_k/N - \sum_k c_k (\mathbf 1'U)_k^2/N^2,

    O(r·M) per draw, never O(N·M). Then

    .. math::

        \mathrm{pve} = \frac{V_g}{V_g + \sigma_e^2},
        \qquad
        \mathrm{pge} = \frac{E_\gamma \operatorname{var}(W(\gamma\circ v))}{V_g},\quad
        \gamma_j \sim \mathrm{Bernoulli}(\mathrm{pip}_j)\ \text{independently},

    and :math:`E_\gamma \operatorname{var}(W(\gamma\circ v)) = \operatorname{var}(W(p\circ v))
    + \sum_j p_j(1-p_j) v_j^2 \operatorname{var}(w_j)` with p = pip: GEMMA BSLMM's PVE and
    PGE (genetic value Xβ̃ + u, sparse part Xβ̃ over the effects with γ = 1), with the
    indicator and the background averaged out given the draw (Rao–Blackwellized).
    """
    g1 = B @ v
    if background is not None:
        mean_b, var_b = background
        g1 = g1 + mean_b
    var_g = _sample_variance(g1, ones_rot, n_samples)
    if background is not None:
        var_g = var_g + pt.sum(var_b) / n_samples - pt.sum(var_b * ones_rot**2) / n_samples**2
    pm.Deterministic("pve", var_g / (var_g + sigma_e2))
    if pip is not None:
        var_large = _sample_variance(B @ (pip * v), ones_rot, n_samples)
        var_large += pt.sum(pip * (1.0 - pip) * v**2 * snp_var)
        pm.Deterministic("pge", var_large / var_g)
    return var_g


# --------------------------------------------------------------------------------------------
# After sampling
# --------------------------------------------------------------------------------------------


def background_effects(
    B: np.ndarray, resid_rot: np.ndarray, s: np.ndarray, sigma_b2: np.ndarray, sigma_e2: np.ndarray
) -> np.ndarray:
    r"""The background's BLUP as SNP effects, per draw [shape: (draws, n_snps)].

    Parameters
    ----------
    B
        U'W [shape: (rank, n_snps)].
    resid_rot
        e₁ = y₁ − X₁β − Bv per draw [shape: (draws, rank)].
    s
        Eigenvalues of K = WW'/M [shape: (rank,)].
    sigma_b2, sigma_e2
        [shape: (draws,)].

    Notes
    -----
    With V = σb² K + σe² I and e = y − Xβ − Wv, :math:`E[u \mid y, \theta, v] = \sigma_b^2 K
    V^{-1} e = W b` with

    .. math::

        b = \frac{\sigma_b^2}{M} W' V^{-1} e = \frac{\sigma_b^2}{M}
            B' \big(e_1 / (\sigma_b^2 s + \sigma_e^2)\big),

    since W lies in the span of U (W'(I − UU') = 0). For new samples of genotypes W_new
    (standardized as in training), :math:`E[u_{new} \mid y, \theta, v] = \sigma_b^2 K_{new,t}
    V^{-1} e = W_{new} b` with :math:`K_{new,t} = W_{new} W'/M`: the background's prediction
    is a linear predictor in the SNPs, O(r·M) per draw, no N×N matrix.
    """
    n_snps = B.shape[1]
    weights = sigma_b2[:, None] / (sigma_b2[:, None] * s[None, :] + sigma_e2[:, None])
    return (weights * resid_rot) @ B / n_snps


def conditional_loo(
    U: np.ndarray, resid: np.ndarray, resid_rot: np.ndarray, d: np.ndarray, sigma_e2: np.ndarray
) -> np.ndarray:
    r"""Leave-one-out log p(y_i | y_−i, θ, v) of y ~ N(Xβ + Wv, σb² K + σe² I) per draw.

    Parameters
    ----------
    U
        Eigenvectors [shape: (n_samples, rank)].
    resid, resid_rot
        e = y − Xβ − Wv [shape: (draws, n_samples)] and e₁ = U'e [shape: (draws, rank)].
    d
        σb² s + σe² [shape: (draws, rank)].
    sigma_e2
        [shape: (draws,)].

    Notes
    -----
    With :math:`Q = V^{-1} = U \operatorname{diag}(1/d - 1/\sigma_e^2) U' + I/\sigma_e^2`,
    the Gaussian leave-one-out identities give :math:`\log p(y_i \mid y_{-i}) =
    -\tfrac12 \log(2\pi / Q_{ii}) - \tfrac12 (Qe)_i^2 / Q_{ii}`.
    """
    inv_e = 1.0 / sigma_e2[:, None]
    delta = 1.0 / d - inv_e  # [shape: (draws, rank)]
    q_diag = delta @ (U**2).T + inv_e
    qe = (delta * resid_rot) @ U.T + resid * inv_e
    return -0.5 * (np.log(2 * np.pi / q_diag) + qe**2 / q_diag)


#: Share of non-zero effects below which :func:`postprocess` multiplies the draws of v as a
#: sparse matrix (the point-mass spike of ``sampler="bslmm"``: a few dozen SNPs per draw).
SPARSE_SHARE = 0.05


def _draws_times_wt(v: np.ndarray, W: np.ndarray) -> Any:
    """A function of a block of draws v [shape: (draws, n_snps)] that gives v @ W'."""
    if np.count_nonzero(v) >= SPARSE_SHARE * v.size:
        return lambda block: block @ W.T
    from scipy import sparse

    Wt = np.ascontiguousarray(W.T)
    return lambda block: np.asarray(sparse.csr_array(block) @ Wt)


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    r"""The sparse family's post-processing: u, the background as SNP effects, the LOO terms.

    Returns
    -------
    new_vars : dict
        When ``random_effects`` and they fit in memory: ``u`` (dim sample), the genetic value
        Wv + u_b with the background u_b drawn from its conditional N(U ū₁, U diag(c) U')
        (:func:`background_moments`; its mean when ``rng`` is None), and ``v_background``
        (dim snp), the background's conditional mean as SNP effects (:func:`background_effects`),
        which :func:`bayeslmm.predict` adds to v for new genotypes.
    loglik : ndarray
        log p(y_i | y_−i, θ, v) of y ~ N(Xβ + Wv, σb² K + σe² I) for each draw
        [shape: (draws, n_samples)] (:func:`conditional_loo`): exact given v, the background
        summed out. The marginal over a sparse prior has no closed form; PSIS-LOO on these
        terms is less reliable than for the normal prior (watch the Pareto k values).
    """
    data, W, spectral, rot = info.data, info.W, info.spectral, info.rotated
    v = flat_draws(posterior, "v")
    beta = flat_draws(posterior, "beta")
    sigma_e2 = flat_draws(posterior, "sigma_e2")
    sigma_b2 = flat_draws(posterior, "sigma_b2")
    B = spectral.U.T @ W
    n_draws, n_snps = v.shape
    keep = store_effects(
        random_effects, n_draws * data.n, f"{n_draws} draws × {data.n} samples", stacklevel=4
    )
    u_all = np.empty((n_draws, data.n)) if keep else None
    v_bg = np.empty((n_draws, n_snps)) if keep else None
    loglik = np.empty((n_draws, data.n))
    step = max(1, 4_000_000 // max(data.n + n_snps, 1))
    times_wt = _draws_times_wt(v, W)
    for start in range(0, n_draws, step):
        sl = slice(start, min(start + step, n_draws))
        vw = times_wt(v[sl])  # (Wv)' per draw; vB' = (Wv)'U as B = U'W
        resid = data.y[None, :] - beta[sl] @ data.X.T - vw
        resid_rot = rot.y1[None, :] - beta[sl] @ rot.X1.T - vw @ spectral.U
        prior_var = sigma_b2[sl, None] * spectral.s[None, :]
        d = prior_var + sigma_e2[sl, None]
        loglik[sl] = conditional_loo(spectral.U, resid, resid_rot, d, sigma_e2[sl])
        if u_all is None:
            continue
        a = prior_var / d * resid_rot
        if rng is not None:
            a += np.sqrt(prior_var * sigma_e2[sl, None] / d) * rng.standard_normal(a.shape)
        u_all[sl] = vw + a @ spectral.U.T
        v_bg[sl] = background_effects(B, resid_rot, spectral.s, sigma_b2[sl], sigma_e2[sl])
    if u_all is None:
        return {}, loglik
    new = {
        "u": (u_all, "sample", list(data.samples)),
        "v_background": (v_bg, "snp", list(info.snps)),
    }
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
    r"""Build y = Xβ + Wv (+ u) + ε with v explicit under one prior, in the eigenbasis of K = WW'/M.

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
    With B = U'W [r×M]: the normal prior, y₁ ~ N(X₁β + Bv, σe² I_r); the sparse priors add
    the polygenic background u ~ N(0, σb² K) (BSLMM), summed out in the eigenbasis,

    .. math::

        y_1 \sim N(X_1\beta + Bv,\ \operatorname{diag}(\sigma_b^2 s + \sigma_e^2)),

    plus, for both, the null-space term of the residual (Wv and u lie in the span of U, so
    that term involves only [X, y]): O(r·M) per evaluation.
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
        if prior == "normal":
            _, sigma_g2, sigma_e2 = variance_components(parametrization, priors)
            v = normal_effects(sigma_g2, n_snps)
            mu = X_rot @ beta + B @ v
            pm.Normal("y", mu=mu, sigma=pt.sqrt(sigma_e2), observed=y_rot, dims="eigen")
            null_space_term(rot, beta, sigma_e2)
            effect_summaries(B, v, sigma_e2, ones_rot, n)
            return model, rot, parametrization, priors, {"prior": prior, "options": options}
        snp_var = pm.Data("snp_var", W.var(axis=0), dims="snp")
        s = pm.Data("eigenvalues", spectral.s, dims="eigen")
        if prior == "horseshoe":
            sigma_e2 = add_prior("sigma_e2", priors["sigma_e2"])
            sigma_b2 = add_prior("sigma_b2", priors["sigma_b2"])
            tau0 = pm.Data("tau0", global_scale(options["n_nonzero"], n_snps, n))
            v, pip = horseshoe_effects(sigma_e2, priors, tau0, n * snp_var)
        else:
            _, sigma_g2, sigma_e2 = variance_components(parametrization, priors)
            v, pip, sigma_b2 = mixture_effects(sigma_g2, n_snps, priors, options["spike_sd"])
        mu = X_rot @ beta + B @ v
        sd = pt.sqrt(sigma_b2 * s + sigma_e2)
        pm.Normal("y", mu=mu, sigma=sd, observed=y_rot, dims="eigen")
        null_space_term(rot, beta, sigma_e2)
        background = background_moments(y_rot - mu, s, sigma_b2, sigma_e2)
        var_g = effect_summaries(
            B, v, sigma_e2, ones_rot, n, pip=pip, snp_var=snp_var, background=background
        )
        if prior == "horseshoe":  # no σg² parameter: the realized genetic variance and PVE
            pm.Deterministic("sigma_g2", var_g)
            pm.Deterministic("h2", var_g / (var_g + sigma_e2))
    return model, rot, parametrization, priors, {"prior": prior, "options": options}


def _set_by_user(
    priors: Mapping[str, PriorLike] | str | None, prior_options: Mapping[str, float] | None
) -> list[str]:
    """What the user set of the mixture's priors, which ``sampler="bslmm"`` does not use.

    The names of ``priors`` (or the preset ``priors="..."``) and of ``prior_options``:
    ``bl.sample`` refuses them with that sampler (its priors are BSLMM's,
    ``bslmm_mcmc.bslmm_priors``, and its spike a point mass).
    """
    names = [f"priors={priors!r}"] if isinstance(priors, str) and priors != "default" else []
    if isinstance(priors, Mapping):
        names += [f"priors[{name!r}]" for name in priors]
    names += [f"prior_options[{name!r}]" for name in (prior_options or {})]
    return names


#: The priors on β the horseshoe's Gibbs sampler takes (it draws β from its Gaussian
#: conditional: ``bayeslmm.inference.horseshoe_gibbs.beta_prior``).
GIBBS_BETA_PRIORS = ("Normal", "MvNormal", "Flat")


def gibbs_unsupported(priors: Mapping[str, PriorLike]) -> str | None:
    """Why ``sampler="gibbs"`` cannot sample a horseshoe model with these priors, or None.

    It takes any :class:`~bayeslmm.families.priors.Prior` on σe² and σb² (their log densities
    enter slice steps) and a Gaussian or flat one on β, not priors given as PyMC variables.
    The horseshoe's default sampler is ``"gibbs"`` exactly when this returns None.
    """
    for name in ("beta", "sigma_e2", "sigma_b2"):
        if not isinstance(priors[name], Prior):
            return f"the prior of '{name}' is given as a PyMC variable, not a bayeslmm Prior"
    if priors["beta"].distribution not in GIBBS_BETA_PRIORS:
        return (
            f"the prior of 'beta' is {priors['beta'].distribution}, not one of "
            f"{GIBBS_BETA_PRIORS} (which it draws in closed form)"
        )
    return None


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
    extra = {
        **extra,
        "constant_data": {name: (v, "snp", snps) for name, v in transform.items()},
        "target_accept": TARGET_ACCEPT[prior],
    }
    if prior == "mixture":  # bl.sample's default: the exact point-mass MCMC (bslmm_mcmc)
        extra["sampler"] = "bslmm"
        extra["bslmm_unused"] = _set_by_user(priors, prior_options)
    else:  # the exact blocked MCMC (horseshoe_gibbs) where it takes the priors, else NUTS
        reason = gibbs_unsupported(priors_used)
        extra["sampler"] = "gibbs" if reason is None else "nutpie"
        if reason is not None:
            extra["gibbs_unsupported"] = reason
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
    summary=("h2", "sigma_g2", "sigma_b2", "sigma_e2", "pve", "pge"),
)
