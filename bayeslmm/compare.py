"""Model comparison by sample-space leave-one-out cross-validation (PSIS-LOO) or WAIC.

:func:`bayeslmm.sample` writes a ``log_likelihood`` group with one value per individual and
draw, log p(y_i | y_−i, θ) of the non-factorized Gaussian (see
:func:`bayeslmm.effects.loo_pointwise`). This module checks that the fits can be compared
(sample-space log-likelihood, same samples, same phenotype values) and hands them to ArviZ.
It and :mod:`bayeslmm.inference` are the only modules that call ArviZ.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayeslmm.errors import InputError, SamplingWarning

ICS = ("loo", "waic")
SCALES = ("log", "negative_log", "deviance")
#: WAIC is unreliable where the posterior variance of a pointwise log-density exceeds this.
WAIC_VARIANCE_LIMIT = 0.4


def _loglik(idata: az.InferenceData, label: str) -> xr.DataArray:
    """The sample-space pointwise log-likelihood of a fit, or an InputError saying why not."""
    if not isinstance(idata, az.InferenceData):
        raise InputError(
            f"{label} is a {type(idata).__name__}, not an arviz.InferenceData; pass the "
            "result of bayeslmm.sample."
        )
    if "log_likelihood" not in idata.groups():
        raise InputError(
            f"{label} has no log_likelihood group, so its LOO cannot be computed; fit it "
            "with bayeslmm.sample, which writes the sample-space log-likelihood."
        )
    group = idata.log_likelihood
    names = list(group.data_vars)
    if len(names) != 1:
        raise InputError(
            f"the log_likelihood group of {label} holds {len(names)} variables "
            f"({names}); it needs exactly one, with dims (chain, draw, sample), as written by "
            "bayeslmm.sample."
        )
    loglik = group[names[0]]
    if loglik.dims != ("chain", "draw", "sample"):
        raise InputError(
            f"the log_likelihood of {label} has dims {loglik.dims}, not (chain, draw, "
            "sample): it is not in sample space (rotated observations are linear combinations "
            "of individuals, not individuals, and their LOO is meaningless). Refit with "
            "bayeslmm.sample, which writes log p(y_i | y_-i, θ) per sample."
        )
    return loglik


def _observed(idata: az.InferenceData, label: str) -> pd.Series:
    """The phenotype a fit used, indexed by sample ID."""
    if "observed_data" not in idata.groups() or "y" not in idata.observed_data:
        raise InputError(
            f"{label} has no observed_data.y, so it cannot be checked to use the same "
            "samples as the others; fit it with bayeslmm.sample, which stores it."
        )
    y = idata.observed_data["y"]
    if y.dims != ("sample",):
        raise InputError(
            f"observed_data.y of {label} has dims {y.dims}, not (sample,); fit it with "
            "bayeslmm.sample."
        )
    index = pd.Index(np.asarray(y["sample"].values).astype(str), name="sample")
    if index.has_duplicates:
        raise InputError(f"{label} has duplicated sample IDs in observed_data.y.")
    return pd.Series(np.asarray(y.values, dtype=float), index=index)


def _sample_differences(reference: pd.Series, other: pd.Series) -> tuple[int, int]:
    """(samples in only one of the two fits, shared samples with different phenotype values)."""
    only_one = len(reference.index.symmetric_difference(other.index))
    shared = reference.index.intersection(other.index)
    a, b = reference[shared].to_numpy(), other[shared].to_numpy()
    same = np.isclose(a, b, rtol=1e-12, atol=0.0) | (np.isnan(a) & np.isnan(b))
    return only_one, int((~same).sum())


def _check_same_samples(observed: Mapping[str, pd.Series]) -> None:
    names = list(observed)
    first = names[0]
    problems = []
    for name in names[1:]:
        only_one, changed = _sample_differences(observed[first], observed[name])
        if only_one or changed:
            parts = []
            if only_one:
                parts.append(f"{only_one} samples are in one fit but not the other")
            if changed:
                parts.append(f"{changed} shared samples have different phenotype values")
            problems.append(f"'{first}' and '{name}' ({'; '.join(parts)})")
    if problems:
        raise InputError(
            "models fitted to different samples cannot be compared by LOO (their elpd sums "
            "over different data): " + ", ".join(problems) + ". Refit every model on the same "
            "samples and the same phenotype, e.g. by dropping incomplete samples once before "
            "building the models."
        )


def _warn_unreliable(elpd: az.ELPDData, loglik: xr.DataArray, label: str, stacklevel: int) -> None:
    """Warn (SamplingWarning) about the samples whose pointwise estimate is unreliable."""
    n = int(loglik.sizes["sample"])
    if "pareto_k" in elpd:
        k = np.asarray(elpd["pareto_k"])
        threshold = float(elpd["good_k"])
        bad = int(np.sum(k > threshold))
        if bad:
            warnings.warn(
                f"{label}: {bad} of {n} samples have a Pareto k above {threshold:.2f} "
                f"(max {np.nanmax(k):.2f}); their PSIS-LOO terms are unreliable (influential "
                "samples, or too few draws: the threshold is min(0.7, 1 - 1/log10(draws))). "
                "Run more draws, or check those samples (the loo() result has pareto_k per "
                "sample) and consider exact refits leaving them out.",
                SamplingWarning,
                stacklevel=stacklevel,
            )
    else:
        variance = loglik.var(dim=("chain", "draw")).values
        bad = int(np.sum(variance > WAIC_VARIANCE_LIMIT))
        if bad:
            warnings.warn(
                f"{label}: {bad} of {n} samples have a posterior variance of the "
                f"log predictive density above {WAIC_VARIANCE_LIMIT}; WAIC is unreliable for "
                "them. Use ic='loo'.",
                SamplingWarning,
                stacklevel=stacklevel,
            )


def _elpd(
    idata: az.InferenceData, label: str, ic: str, scale: str, stacklevel: int
) -> tuple[az.ELPDData, xr.DataArray]:
    loglik = _loglik(idata, label)
    if loglik.sizes["chain"] * loglik.sizes["draw"] < 2:
        raise InputError(
            f"{label} has a single draw (a MAP estimate?); LOO needs posterior draws "
            "from bayeslmm.sample."
        )
    function = az.loo if ic == "loo" else az.waic
    with warnings.catch_warnings():
        # ArviZ's own warnings are replaced by one that counts the samples and names the model.
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        warnings.filterwarnings("ignore", message="For one or more samples the posterior variance")
        elpd = function(idata, pointwise=True, scale=scale, var_name=str(loglik.name))
    _warn_unreliable(elpd, loglik, label, stacklevel + 1)
    return elpd, loglik


def _check_options(ic: str, scale: str) -> None:
    if ic not in ICS:
        raise InputError(f"ic must be one of {ICS}, got {ic!r}.")
    if scale not in SCALES:
        raise InputError(f"scale must be one of {SCALES}, got {scale!r}.")


def loo(idata: az.InferenceData, *, scale: str = "log") -> az.ELPDData:
    r"""PSIS-LOO of one fit in sample space, with the pointwise values.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`bayeslmm.sample` (a ``log_likelihood`` group with dim ``sample``).
    scale : {"log", "negative_log", "deviance"}
        Scale of the returned elpd (ArviZ's convention).

    Returns
    -------
    arviz.ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, ``loo_i`` and ``pareto_k`` [shape: (n_samples,)], ...

    Warns
    -----
    SamplingWarning
        When some samples have a Pareto k above ArviZ's threshold min(0.7, 1 − 1/log10 S) for
        S draws; the message gives their number.

    Notes
    -----
    The pointwise terms are the exact conditional densities of the Gaussian model,

    .. math::

        \log p(y_i \mid y_{-i}, \theta) = -\tfrac12\log 2\pi + \tfrac12\log c_{ii}
        - \tfrac12 g_i^2 / c_{ii}, \quad C = V^{-1},\; g = C(y - X\beta),

    and PSIS-LOO estimates :math:`\log p(y_i \mid y_{-i}) = \log \int p(y_i \mid y_{-i},
    \theta)\, p(\theta \mid y_{-i})\, d\theta` by importance-weighting the full-data posterior
    draws with weights :math:`\propto 1/p(y_i \mid y_{-i}, \theta)` (Bürkner, Gabry & Vehtari
    2021, non-factorized models).
    """
    _check_options("loo", scale)
    return _elpd(idata, "this fit", "loo", scale, stacklevel=3)[0]


def compare(
    fits: Mapping[str, az.InferenceData],
    *,
    ic: str = "loo",
    scale: str = "log",
) -> pd.DataFrame:
    """Rank models fitted to the same samples by their expected log predictive density.

    Parameters
    ----------
    fits : mapping of str to arviz.InferenceData
        Named fits from :func:`bayeslmm.sample`, at least two, all on the same samples with the
        same phenotype values (the sample order may differ).
    ic : {"loo", "waic"}
        PSIS-LOO (default) or WAIC.
    scale : {"log", "negative_log", "deviance"}
        ArviZ's scale of the elpd; with ``"log"`` higher is better.

    Returns
    -------
    pandas.DataFrame
        ArviZ's comparison table, best model first: rank, elpd_loo (or elpd_waic), p_loo,
        elpd_diff, weight (stacking), se, dse, warning, scale; indexed by model name.

    Raises
    ------
    InputError
        A fit has no sample-space ``log_likelihood``, a single draw, or no ``observed_data``;
        or the fits do not share the same samples and phenotype values.

    Warns
    -----
    SamplingWarning
        For each model with samples whose pointwise estimate is unreliable (Pareto k above
        ArviZ's threshold for LOO; log-density variance above 0.4 for WAIC), with their number.

    Notes
    -----
    elpd_diff is the difference of the summed pointwise terms from the best model and dse its
    standard error from the pointwise differences, so the models' terms are aligned by sample
    ID before the table is made. A difference of less than about 2–4 dse is weak evidence.

    Examples
    --------
    >>> fits = {
    ...     "standardized": bl.sample(bl.kinship_model(y, K_std), random_seed=1),
    ...     "centered": bl.sample(bl.kinship_model(y, K_cen), random_seed=1),
    ... }  # doctest: +SKIP
    >>> bl.compare(fits)[["elpd_loo", "elpd_diff", "dse", "weight"]]  # doctest: +SKIP
    """
    _check_options(ic, scale)
    if not isinstance(fits, Mapping) or len(fits) < 2:
        raise InputError("compare needs a dict of at least two named fits, {'name': idata, ...}.")
    names = [str(name) for name in fits]
    if len(set(names)) != len(names):
        raise InputError(f"model names must be distinct as strings, got {list(fits)}.")
    fits = dict(zip(names, fits.values(), strict=True))
    labels = {name: f"model '{name}'" for name in names}
    for name, idata in fits.items():
        _loglik(idata, labels[name])
    observed = {name: _observed(idata, labels[name]) for name, idata in fits.items()}
    _check_same_samples(observed)
    order = observed[names[0]].index
    elpds = {}
    for name, idata in fits.items():
        elpd, _ = _elpd(idata, labels[name], ic, scale, stacklevel=3)
        elpds[name] = _aligned(elpd, order)
    with warnings.catch_warnings():
        # ArviZ 0.23 calls pandas APIs that pandas 3 deprecates; not ours to fix, not the user's.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"arviz\.")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arviz\.")
        return az.compare(elpds, ic=ic, scale=scale)


def _aligned(elpd: az.ELPDData, order: pd.Index) -> az.ELPDData:
    """Put the pointwise values of ``elpd`` in the sample order ``order``."""
    out = elpd.copy()
    for key in (f"{elpd.index[0].split('_')[1]}_i", "pareto_k"):
        if key in out:
            values = out[key]
            ids = np.asarray(values["sample"].values).astype(str)
            position = pd.Index(ids).get_indexer(order)
            out[key] = values.isel(sample=position)
    return out
