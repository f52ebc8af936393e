r"""Posterior predictive of new samples: genetic values and phenotypes (issue 12, point 3).

:func:`predict` takes a result of :func:`bayeslmm.sample` (or :func:`bayeslmm.map_estimate`)
of a Gaussian model and, for samples that were not in the fit, draws per posterior draw

- their genetic values g: in the kinship form u_new | y, θ from a kinship that covers the
  training and the new samples (aligned by ID); in the SNP form W_new v from the new samples'
  genotypes, standardized with the training means and scales kept in ``constant_data`` (the
  sparse priors' fits add their background's BLUP for the new samples, W_new b);
- their phenotypes y_new = X_new β + g + ε, ε ~ N(0, σe² I).

The kinship form never solves an N×N system per draw: K_tt is decomposed once (the training
eigenbasis), and every draw costs O(n_new·(r + n_new)) (see :func:`predict`, Notes). The dense,
literal formulas are in ``models/prediction/reference.py``; the tests compare against them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special
from xarray import DataTree

from bayeslmm.data.inputs import kinship_array
from bayeslmm.data.samples import positional_ids, sample_ids
from bayeslmm.errors import InputError, KinshipWarning
from bayeslmm.inference.ep import ep_fit, ep_prediction
from bayeslmm.inference.prediction_multitrait import (
    covariates_of_new,
    predict_multitrait,
    summarize_predictions,
)
from bayeslmm.linalg.spectral import spectral_from_kinship

#: Families whose posterior is that of y = Xβ + u + ε with one K (the kinship form applies).
KINSHIP_FAMILIES = ("gaussian", "snp")

#: Relative size (to the largest diagonal of K_nn) of a negative eigenvalue of the new samples'
#: conditional kinship that is taken as rounding, not warned about: a GCTA binary GRM stores K
#: in float32 (relative precision 6e-8), which leaves eigenvalues of about -1e-7 there.
PSD_TOLERANCE = 1e-5

#: The liability threshold model of a 0/1 trait (its predictions are probabilities).
PROBIT_FAMILY = "probit"
#: The multi-trait LMM (its predictions have a ``trait`` dimension:
#: :func:`~bayeslmm.inference.prediction_multitrait.predict_multitrait`).
MULTITRAIT_FAMILY = "multitrait"


@dataclass(frozen=True, eq=False)
class Prediction:
    """The posterior predictive of new samples (the result of :func:`predict`).

    Attributes
    ----------
    draws : xarray.DataTree
        Group ``predictions``: ``g`` (genetic values) and ``y`` (phenotypes), per draw
        [dims: (chain, draw, sample)], and in the kinship form ``g_mean``, E[g | y, θ] of each
        draw (the BLUP at that draw's β, σg², σe²); group ``predictions_constant_data``: ``X``
        of the new samples [dims: (sample, covariate)]; ``attrs``: the training result's
        provenance plus ``prediction`` (``"kinship"`` or ``"snp"``) and ``random_seed``.
    summary : pandas.DataFrame
        One row per new sample (indexed by sample ID): ``g_mean``, ``g_sd``, ``g_hdi_lower``,
        ``g_hdi_upper``, ``y_mean``, ``y_sd``, ``y_hdi_lower``, ``y_hdi_upper``. The means are
        averages of the per-draw conditional means where the form has them (kinship form: Rao-
        Blackwellized, less Monte Carlo noise); SD and HDI come from the draws (NaN for a
        single draw, e.g. a MAP result).
    """

    draws: DataTree
    summary: pd.DataFrame

    @property
    def samples(self) -> list[str]:
        """The IDs of the new samples, in the order of the draws."""
        return [str(s) for s in self.draws["predictions"]["sample"].values]


def predict(
    idata: DataTree,
    *,
    K: Any = None,
    genotypes: Any = None,
    X: Any = None,
    random_seed: int | None = None,
    hdi_prob: float = 0.95,
) -> Prediction:
    r"""Posterior predictive genetic values and phenotypes of new samples.

    Parameters
    ----------
    idata : xarray.DataTree
        From :func:`bayeslmm.sample` or :func:`bayeslmm.map_estimate` of
        :func:`bayeslmm.kinship_model` (family ``"gaussian"``) or :func:`bayeslmm.snp_model`
        (family ``"snp"``, either form; the SNP form needs the ``v`` draws, and takes the sparse
        priors' fits too, family ``"sparse"``), or of the probit model (``family="probit"``,
        kinship form only, with its ``u`` draws), or of the multi-trait LMM (a table of T ≥ 2
        traits, family ``"multitrait"``: draws and summary gain a ``trait`` dimension, see
        :func:`~bayeslmm.inference.prediction_multitrait.predict_multitrait`).
    K
        Kinship form: a kinship covering the training samples and the new ones
        [shape: (n_train + n_new, n_train + n_new)], a DataFrame indexed both ways by sample
        ID or a :class:`~bayeslmm.Kinship`; a plain array has positional IDs ``"1"``, ``"2"``,
        ... (the training samples of a positional fit first). It must be the K of the fit on
        the training samples, on the same scale (checked on its eigenvalues); the new samples
        are those of K that are not in the fit.
    genotypes
        SNP form: allele counts of the new samples [shape: (n_new, n_snps)]: a DataFrame
        indexed by sample ID with SNP names as columns (aligned to the fit's SNPs by name),
        :class:`~bayeslmm.Genotypes`, or an array with the fit's SNPs in order (positional
        IDs). Missing calls (NaN) are imputed by the training mean.
    X
        Covariates of the new samples, needed when the model has covariates besides the
        intercept: a DataFrame indexed by sample ID with the fit's covariate columns, or an
        array with one row per new sample (in the order of the new samples) and those columns
        (the intercept column may be left out).
    random_seed
        Seed of the predictive draws (the noise of g and of ε).
    hdi_prob
        Probability mass of the highest-density intervals of the summary.

    Returns
    -------
    Prediction
        ``draws`` (DataTree: ``predictions`` g, y [and g_mean], dims (chain, draw, sample)) and
        ``summary`` (DataFrame, one row per new sample). At a MAP point (one draw, no spread)
        g is E[g | y, θ̂] and y = X_new β̂ + g (no noise is drawn), as ``map_estimate`` gives
        the conditional means of u and v.

    Raises
    ------
    InputError
        Neither or both of ``K`` and ``genotypes``; a family that is not Gaussian with one K;
        a K that lacks training samples, has no new ones or is not the K of the fit; genotypes
        without the fit's SNPs, or a fit that did not keep its standardization; X missing or
        not matching the fit's covariates.

    Notes
    -----
    Kinship form. For each draw θ = (β, σg², σe²), with V = σg² K_tt + σe² I and
    r = y − Xβ,

    .. math::

        u_n \mid y, \theta \sim N\big(\sigma_g^2 K_{nt} V^{-1} r,\;
        \sigma_g^2 K_{nn} - \sigma_g^4 K_{nt} V^{-1} K_{tn}\big).

    With :math:`K_{tt} = U \operatorname{diag}(s) U^\top` (once, O(N³)) and
    :math:`V^{-1} = U \operatorname{diag}(1/(\sigma_g^2 s + \sigma_e^2)) U^\top +
    (I - UU^\top)/\sigma_e^2`, :math:`B = K_{nt} U` and the null-space products
    :math:`K_{nt}(I - UU^\top)[y, X]` are formed once; a draw's mean costs O(n·(r + d)). The
    draw itself is pathwise: with :math:`S = K_{nn} - B \operatorname{diag}(1/s) B^\top = LL^\top`
    (the conditional covariance of u_n given u_t, fixed, factored once),

    .. math::

        u_n = \text{mean} + B \operatorname{diag}\!\Big(\sqrt{\tfrac{\sigma_g^2\sigma_e^2}
        {s_i(\sigma_g^2 s_i + \sigma_e^2)}}\Big) z_1 + \sigma_g L z_2,
        \quad z_1, z_2 \sim N(0, I),

    whose covariance is the one above whenever K (training and new) is positive
    semidefinite (then :math:`K_{nt}(I - UU^\top) = 0`); otherwise S is clipped at 0 and a
    :class:`~bayeslmm.errors.KinshipWarning` says so. The draws of different new samples are
    jointly distributed as the posterior predictive; they are independent of the stored u
    draws of the training samples (each is exact given θ).

    Probit form (a fit of ``kinship_model(y01, K, X, family="probit")``). The model's
    liability is :math:`\ell = X\beta + u + \varepsilon` with the residual variance fixed at 1
    and :math:`u_t` sampled in the column space of :math:`K_{tt}`; each draw of :math:`u_t`
    (stored in the posterior) gives the liability-scale genetic values of the new samples

    .. math::

        u_n \mid u_t, \sigma_g^2 \sim N\big(K_{nt} K_{tt}^{+} u_t,\; \sigma_g^2 S\big),
        \quad K_{nt} K_{tt}^{+} u_t = B \operatorname{diag}(1/s) U^\top u_t,

    drawn as :math:`u_n = \text{mean} + \sigma_g L z`, and the probability
    :math:`p = P(y = 1 \mid \beta, u_n) = \Phi(X_{new}\beta + u_n)` (group ``predictions``
    ``p`` instead of ``y``; summary columns ``p_*`` instead of ``y_*``). The summary's
    ``p_mean`` averages over the draws the Rao-Blackwellized
    :math:`E[\Phi(\eta + u_n) \mid u_t, \theta] = \Phi\big((\eta + \text{mean}) /
    \sqrt{1 + \sigma_g^2 S_{ii}}\big)`; ``g_mean`` averages the conditional means. At the
    point of :func:`bayeslmm.map_estimate` (the EP fit: :math:`\hat\beta, \hat\sigma_g^2`
    with u integrated out, :math:`\hat u_t = E_q[u_t]` under the EP posterior q at them) the
    denominator adds the variance of the mean under q,
    :math:`\operatorname{diag}(G\Sigma_q G^\top)`, :math:`G = K_{nt}K_{tt}^{+}`
    (:func:`bayeslmm.inference.ep.ep_prediction`), so ``p_mean`` is
    :math:`\Phi\big(\hat\mu / \sqrt{1 + \hat v}\big)` with the EP predictive mean and
    variance of the new liabilities (Rasmussen & Williams 2006, eqs. 3.60–3.63).

    SNP form. :math:`W_{new} = (G_{new} - c)/a` with the training centre c and scale a of each
    SNP (``constant_data`` ``snp_center``, ``snp_scale``), and g = W_new v for each draw of v.
    The sparse priors' fits (BSLMM-like: sparse v plus a background u ~ N(0, σb² K),
    K = WW'/M) add the background's conditional mean for the new samples per draw,

    .. math::

        E[u_{new} \mid y, \theta, v] = \sigma_b^2 K_{new,t} V^{-1}(y - X\beta - Wv)
        = W_{new} b, \quad K_{new,t} = W_{new} W'/M,

    with b = ``v_background`` of the posterior, computed after sampling through the eigenbasis
    (:func:`bayeslmm.families.sparse.background_effects`, O(r·M) per draw, no N×N system):
    g = W_new (v + b). The background's conditional spread for the new samples is not drawn
    (g is its BLUP given each draw), so y's draws add σe² noise only.
    """
    if (K is None) == (genotypes is None):
        raise InputError(
            "predict needs exactly one of K= (a kinship covering the training and the new "
            "samples: kinship form) or genotypes= (the new samples' allele counts: SNP form)."
        )
    if not 0 < hdi_prob < 1:
        raise InputError(f"hdi_prob must be in (0, 1), got {hdi_prob!r}.")
    if isinstance(idata, DataTree) and idata.attrs.get("family") == MULTITRAIT_FAMILY:
        draws, summary = predict_multitrait(  # several traits (it checks the result itself)
            idata, K=K, genotypes=genotypes, X=X, random_seed=random_seed, hdi_prob=hdi_prob
        )
        return Prediction(draws, summary)
    _check_result(idata)
    posterior = idata["posterior"]
    beta, sigma_g2, sigma_e2 = (_flat(posterior, name) for name in ("beta", "sigma_g2", "sigma_e2"))
    rng = None if _is_point(idata) else np.random.default_rng(random_seed)
    family = str(idata.attrs.get("family", ""))
    if family == PROBIT_FAMILY:
        return _predict_probit(idata, K, X, beta, sigma_g2, rng, random_seed, hdi_prob)
    if K is not None:
        if family not in KINSHIP_FAMILIES:
            raise InputError(
                f"predict(K=...) takes a result of the Gaussian LMM with one kinship (families "
                f"{list(KINSHIP_FAMILIES)}) or of the probit LMM, got family {family!r}."
            )
        new, K_parts = _kinship_parts(idata, K)
        X_new = _new_covariates(idata, X, new)
        g, g_mean = _kinship_draws(idata, K_parts, beta, sigma_g2, sigma_e2, rng)
        form = "kinship"
    else:
        new, W_new = _snp_parts(idata, genotypes)
        X_new = _new_covariates(idata, X, new)
        g = _snp_effects(posterior) @ W_new.T
        g_mean = None
        form = "snp"
    mean_y = beta @ X_new.T
    if rng is None:
        y_new = mean_y + g
    else:
        y_new = mean_y + g + np.sqrt(sigma_e2)[:, None] * rng.standard_normal(g.shape)
    draws = _as_tree(idata, new, X_new, g, g_mean, y_new, form, random_seed)
    centre_g = g if g_mean is None else g_mean
    summary = pd.concat(
        [
            summarize_predictions(centre_g, g, "g", hdi_prob),
            summarize_predictions(mean_y + centre_g, y_new, "y", hdi_prob),
        ],
        axis=1,
    )
    summary.index = pd.Index(new, name="sample")
    return Prediction(draws=draws, summary=summary)


def _predict_probit(
    idata: DataTree,
    K: Any,
    X: Any,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    rng: np.random.Generator | None,
    random_seed: int | None,
    hdi_prob: float,
) -> Prediction:
    """The probit form of :func:`predict` (see its Notes)."""
    if K is None:
        raise InputError(
            "predict on a probit fit takes K= (a kinship covering the training and the new "
            "samples); the probit model has no SNP form, so genotypes= does not apply."
        )
    if "u" not in idata["posterior"]:
        raise InputError(
            "predict on a probit fit needs the posterior genetic values u of the training "
            "samples; sample with random_effects=True (the default) so that they are stored."
        )
    new, parts = _kinship_parts(idata, K)
    X_new = _new_covariates(idata, X, new)
    u_train = _flat(idata["posterior"], "u")
    g, g_mean, schur_diag = _probit_draws(parts, u_train, sigma_g2, rng)
    eta = beta @ X_new.T
    p = special.ndtr(eta + g)
    # E[Φ(η + g) | u_t, θ] over g ~ N(g_mean, σg² S_ii): Φ((η + g_mean) / √(1 + σg² S_ii)).
    variance = sigma_g2[:, None] * schur_diag
    if str(idata.attrs.get("sampler", "")) == "map":
        # the EP fit's u_t is E_q[u_t]: add the spread of q (EP at β̂, σ̂g²)
        _, y_train, X_train, _ = _training(idata)
        fit = ep_fit(y_train, X_train, parts.U, parts.s, beta[0], float(np.log(sigma_g2[0])))
        _, spread = ep_prediction(fit, parts.U, parts.s, float(sigma_g2[0]), parts.K_nt @ parts.U)
        variance = variance + spread
    p_mean = special.ndtr((eta + g_mean) / np.sqrt(1.0 + variance))
    draws = _as_tree(
        idata, new, X_new, g, g_mean, p, "probit", random_seed, outcome=("p", _P_DESCRIPTION)
    )
    summary = pd.concat(
        [
            summarize_predictions(g_mean, g, "g", hdi_prob),
            summarize_predictions(p_mean, p, "p", hdi_prob),
        ],
        axis=1,
    )
    summary.index = pd.Index(new, name="sample")
    return Prediction(draws=draws, summary=summary)


_P_DESCRIPTION = "probability P(y = 1) = Φ(X β + g) of each new sample, per posterior draw"


# --------------------------------------------------------------------------------------------
# Reading the training result
# --------------------------------------------------------------------------------------------


def _check_result(idata: Any) -> None:
    if not isinstance(idata, DataTree) or "posterior" not in idata.children:
        raise InputError(
            "predict takes the result of bayeslmm.sample or bayeslmm.map_estimate (an "
            "xarray.DataTree with a posterior group)."
        )
    for group, name in (
        ("posterior", "beta"),
        ("posterior", "sigma_g2"),
        ("posterior", "sigma_e2"),
    ):
        if name not in idata[group]:
            raise InputError(f"predict: the result has no {group} variable {name!r}.")
    if "observed_data" not in idata.children or "constant_data" not in idata.children:
        raise InputError(
            "predict: the result lacks its observed_data or constant_data group; pass the "
            "DataTree that bayeslmm.sample returned (or read back with xarray.open_datatree)."
        )


def _is_point(idata: DataTree) -> bool:
    post = idata["posterior"]
    return (
        str(idata.attrs.get("sampler", "")) == "map"
        or post.sizes["chain"] * post.sizes["draw"] == 1
    )


def _flat(posterior: Any, name: str) -> np.ndarray:
    """Draws of ``name`` as [shape: (chains·draws,)] or [shape: (chains·draws, k)]."""
    values = np.asarray(posterior[name].values, dtype=float)
    n = values.shape[0] * values.shape[1]
    return values.reshape(n) if values.ndim == 2 else values.reshape(n, -1)


def _training(idata: DataTree) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    y = idata["observed_data"]["y"]
    X = idata["constant_data"]["X"]
    samples = [str(s) for s in y["sample"].values]
    return (
        samples,
        y.values.astype(float),
        X.values.astype(float),
        [str(c) for c in X["covariate"].values],
    )


@dataclass(frozen=True)
class _KinshipParts:
    U: np.ndarray  # training eigenvectors [shape: (n_train, r)]
    s: np.ndarray  # eigenvalues [shape: (r,)]
    K_nt: np.ndarray  # [shape: (n_new, n_train)]
    K_nn: np.ndarray  # [shape: (n_new, n_new)]


def _kinship_parts(idata: DataTree, K: Any) -> tuple[list[str], _KinshipParts]:
    """The new samples and the blocks of K (on the fit's scale) with K_tt's eigenbasis."""
    train, _, _, _ = _training(idata)
    matrix = kinship_array(K)
    ids = sample_ids(K, "K")
    ids = list(positional_ids(matrix.shape[0]) if ids is None else ids)
    where = {sample: i for i, sample in enumerate(ids)}
    lacking = [sample for sample in train if sample not in where]
    if lacking:
        raise InputError(
            f"K lacks {len(lacking)} of the {len(train)} training samples (first "
            f"{lacking[:5]}); pass a kinship covering the samples of the fit and the new ones."
        )
    training = set(train)
    new = [sample for sample in ids if sample not in training]
    if not new:
        raise InputError(
            "K has no sample besides those of the fit; the genetic values of the training "
            "samples are the posterior's u (idata['posterior']['u'])."
        )
    t = np.array([where[sample] for sample in train])
    n = np.array([where[sample] for sample in new])
    scale = float(idata.attrs.get("kinship_scale", 1.0))
    matrix = matrix / scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KinshipWarning)  # the fit warned about K_tt already
        spectral = spectral_from_kinship(matrix[np.ix_(t, t)], normalize=False)
    stored = np.asarray(idata["constant_data"]["kinship_eigenvalues"].values, dtype=float)
    k = min(stored.size, spectral.rank)
    top = max(float(stored[0]) if stored.size else 0.0, float(spectral.s[0]))
    same = (
        np.allclose(spectral.s[:k], stored[:k], rtol=1e-6, atol=1e-9 * top)
        and np.allclose(spectral.s[k:], 0.0, atol=1e-8 * top)
        and np.allclose(stored[k:], 0.0, atol=1e-8 * top)
    )
    if not same:
        raise InputError(
            "K's block of the training samples is not the kinship the model was fitted with "
            f"(its largest eigenvalue is {spectral.s[0]:.6g} on the fit's scale "
            f"{scale:.6g}, the fit's is {stored[0]:.6g}); pass the same K, on the same scale, "
            "extended to the new samples."
        )
    parts = _KinshipParts(
        U=spectral.U, s=spectral.s, K_nt=matrix[np.ix_(n, t)], K_nn=matrix[np.ix_(n, n)]
    )
    return new, parts


def _snp_parts(idata: DataTree, genotypes: Any) -> tuple[list[str], np.ndarray]:
    """The new samples and their genotypes standardized as in the fit [shape: (n_new, M)]."""
    posterior, constant = idata["posterior"], idata["constant_data"]
    if "v" not in posterior:
        raise InputError(
            "predict(genotypes=...) needs the posterior SNP effects v of a bayeslmm.snp_model "
            "fit (sampled with random_effects=True); for a kinship model pass K= instead."
        )
    if "snp_center" not in constant or "snp_scale" not in constant:
        raise InputError(
            "predict(genotypes=...): the result does not keep the training standardization of "
            "the genotypes (constant_data snp_center, snp_scale): it comes from a model built "
            "from a Gram, or from an older bayeslmm; use the kinship form "
            "(K= covering training and new samples) or refit with bl.snp_model(y, W, X)."
        )
    snps = [str(s) for s in posterior["v"]["snp"].values]
    if hasattr(genotypes, "read") and hasattr(genotypes, "snps") and hasattr(genotypes, "samples"):
        genotypes = pd.DataFrame(
            genotypes.read(), index=genotypes.samples, columns=genotypes.snps["snp"].astype(str)
        )
    if isinstance(genotypes, pd.DataFrame):
        columns = [str(c) for c in genotypes.columns]
        missing = [snp for snp in snps if snp not in set(columns)]
        if missing:
            raise InputError(
                f"genotypes lack {len(missing)} of the fit's {len(snps)} SNPs (first "
                f"{missing[:5]}); pass allele counts of the same SNPs (columns named as in "
                "the fit)."
            )
        ids = list(sample_ids(genotypes, "genotypes"))
        frame = genotypes.set_axis(columns, axis=1)
        values = frame[snps].to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            values = np.asarray(genotypes, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"genotypes could not be read as numbers ({exc}).") from None
        if values.ndim != 2 or values.shape[1] != len(snps):
            raise InputError(
                f"genotypes must be an array of shape (n_new, {len(snps)}) (the fit's SNPs in "
                f"order), got shape {values.shape}; or pass a DataFrame with SNP names as columns."
            )
        ids = list(positional_ids(values.shape[0]))
    if np.isinf(values).any():
        raise InputError("genotypes has infinite values; fix them (NaN marks a missing call).")
    mean = constant["snp_mean"].values if "snp_mean" in constant else constant["snp_center"].values
    values = np.where(np.isnan(values), mean, values)
    W_new = (values - constant["snp_center"].values) / constant["snp_scale"].values
    return ids, W_new


def _snp_effects(posterior: Any) -> np.ndarray:
    """The SNP effects that predict g = W_new·effects per draw [shape: (draws, M)].

    v, plus for the sparse priors' fits (which have a background ``sigma_b2``) the background's
    BLUP as SNP effects, ``v_background``.
    """
    v = _flat(posterior, "v")
    if "sigma_b2" not in posterior:
        return v
    if "v_background" not in posterior:
        raise InputError(
            "predict(genotypes=...) on a sparse-prior fit needs the background's SNP effects "
            "v_background, stored by bl.sample with random_effects=True (the default); "
            "sample again with it."
        )
    return v + _flat(posterior, "v_background")


def _new_covariates(idata: DataTree, X: Any, new: list[str]) -> np.ndarray:
    """X of the new samples, in the fit's covariate order [shape: (n_new, d)]."""
    _, _, X_train, names = _training(idata)
    return covariates_of_new(X_train, names, X, new)


# --------------------------------------------------------------------------------------------
# The draws
# --------------------------------------------------------------------------------------------


def _kinship_draws(
    idata: DataTree,
    parts: _KinshipParts,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws and conditional means of u_new [each shape: (draws, n_new)] (see predict, Notes)."""
    _, y, X, _ = _training(idata)
    U, s, K_nt = parts.U, parts.s, parts.K_nt
    y1, X1 = U.T @ y, U.T @ X
    B = K_nt @ U
    null_y = K_nt @ (y - U @ y1)
    null_X = K_nt @ (X - U @ X1)
    v = sigma_g2[:, None] * s + sigma_e2[:, None]
    r1 = y1 - beta @ X1.T
    g_mean = sigma_g2[:, None] * ((r1 / v) @ B.T + (null_y - beta @ null_X.T) / sigma_e2[:, None])
    if rng is None:
        return g_mean, g_mean
    schur = parts.K_nn - (B / s) @ B.T
    values, vectors = np.linalg.eigh((schur + schur.T) / 2)
    floor = PSD_TOLERANCE * max(1.0, float(np.abs(np.diag(parts.K_nn)).max()))
    if values.min() < -floor:
        warnings.warn(
            f"K over the training and new samples is not positive semidefinite (the new "
            f"samples' conditional kinship has eigenvalue {values.min():.3g}); it was clipped "
            "at 0 for the predictive draws.",
            KinshipWarning,
            stacklevel=3,
        )
    L = vectors * np.sqrt(np.clip(values, 0.0, None))
    z1 = rng.standard_normal(r1.shape)
    z2 = rng.standard_normal(g_mean.shape)
    fluct = (z1 * np.sqrt(sigma_g2[:, None] * sigma_e2[:, None] / (s * v))) @ B.T
    fluct += np.sqrt(sigma_g2)[:, None] * (z2 @ L.T)
    return g_mean + fluct, g_mean


def _probit_draws(
    parts: _KinshipParts,
    u_train: np.ndarray,
    sigma_g2: np.ndarray,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws and conditional means of u_new given the training u, and diag(S) (probit form).

    Returns g, g_mean [each shape: (draws, n_new)] and the diagonal of the conditional kinship
    S = K_nn − K_nt K_tt⁺ K_tn [shape: (n_new,)].
    """
    U, s = parts.U, parts.s
    B = parts.K_nt @ U
    g_mean = ((u_train @ U) / s) @ B.T
    schur = parts.K_nn - (B / s) @ B.T
    schur = (schur + schur.T) / 2
    values, vectors = np.linalg.eigh(schur)
    floor = PSD_TOLERANCE * max(1.0, float(np.abs(np.diag(parts.K_nn)).max()))
    if values.min() < -floor:
        warnings.warn(
            f"K over the training and new samples is not positive semidefinite (the new "
            f"samples' conditional kinship has eigenvalue {values.min():.3g}); it was clipped "
            "at 0 for the predictive draws.",
            KinshipWarning,
            stacklevel=4,
        )
    values = np.clip(values, 0.0, None)
    schur_diag = (vectors**2) @ values
    if rng is None:
        return g_mean, g_mean, schur_diag
    L = vectors * np.sqrt(values)
    z = rng.standard_normal(g_mean.shape)
    return g_mean + np.sqrt(sigma_g2)[:, None] * (z @ L.T), g_mean, schur_diag


def _as_tree(
    idata: DataTree,
    new: list[str],
    X_new: np.ndarray,
    g: np.ndarray,
    g_mean: np.ndarray | None,
    y_new: np.ndarray,
    form: str,
    random_seed: int | None,
    outcome: tuple[str, str] = ("y", "phenotype X β + g + ε of each new sample, per draw"),
) -> DataTree:
    post = idata["posterior"]
    chains, draws = post["chain"].values, post["draw"].values
    coords = {"chain": chains, "draw": draws, "sample": new}

    def var(values: np.ndarray, what: str) -> xr.DataArray:
        return xr.DataArray(
            values.reshape(len(chains), len(draws), len(new)),
            dims=("chain", "draw", "sample"),
            coords=coords,
            attrs={"description": what},
        )

    data = {
        "g": var(g, "genetic value of each new sample, per posterior draw"),
        outcome[0]: var(y_new, outcome[1]),
    }
    if g_mean is not None:
        data["g_mean"] = var(g_mean, "E[g | y, θ] of each draw (the BLUP at that draw)")
    covariates = [str(c) for c in idata["constant_data"]["X"]["covariate"].values]
    tree = DataTree.from_dict(
        {
            "predictions": xr.Dataset(data),
            "predictions_constant_data": xr.Dataset(
                {
                    "X": xr.DataArray(
                        X_new,
                        dims=("sample", "covariate"),
                        coords={"sample": new, "covariate": covariates},
                    )
                }
            ),
        }
    )
    tree.attrs.update(dict(idata.attrs))
    tree.attrs["prediction"] = form
    tree.attrs["prediction_random_seed"] = "" if random_seed is None else int(random_seed)
    return tree
