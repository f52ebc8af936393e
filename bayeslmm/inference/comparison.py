"""Model comparison by sample-space leave-one-out cross-validation (PSIS-LOO).

:func:`bayeslmm.sample` writes a ``log_likelihood`` group with one value per individual and
draw, log p(y_i | y_−i, θ) of the non-factorized Gaussian (see
:func:`bayeslmm.inference.effects.loo_pointwise`). This module checks that fits can be compared
(sample-space log-likelihood, same samples, same phenotype values), runs PSIS-LOO through
:mod:`arviz_stats`, and builds bayeslmm's own comparison table (:data:`COMPARE_COLUMNS`), so
that what users read does not change with ArviZ's table. It and
:mod:`bayeslmm.inference.sampling` are the only modules that call ArviZ.

WAIC is not offered: ArviZ 1 dropped it, and PSIS-LOO estimates the same quantity with a
per-sample diagnostic (Pareto k) that WAIC lacks (Vehtari, Gelman & Gabry 2017).

Large cohorts: a fit whose pointwise terms (draws × samples) would not fit in memory (a model
built from a Gram above :data:`bayeslmm.inference.effects.LARGE_COHORT_VALUES`) stores no
``log_likelihood`` group but its PSIS-LOO, reduced sample block by sample block by
:class:`BlockedLoo` while the terms are computed (group
:data:`bayeslmm.inference.effects.LOO_GROUP`: ``elpd_i``, ``pareto_k``, ``p_loo_i`` by
sample); :func:`loo` and :func:`compare` read it as they would compute it.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from xarray import DataTree

from bayeslmm.errors import InputError, SamplingWarning
from bayeslmm.inference.effects import LOO_GROUP
from bayeslmm.inference.psis import psis_loo

#: Columns of :func:`compare`, in order, with their meaning (also in its docstring).
COMPARE_COLUMNS = {
    "rank": "0 for the best model (highest elpd_loo)",
    "elpd_loo": "expected log pointwise predictive density, summed over samples (higher is better)",
    "se": "standard error of elpd_loo",
    "p_loo": "effective number of parameters",
    "elpd_diff": "elpd_loo minus the best model's (0 for the best, otherwise negative)",
    "dse": "standard error of elpd_diff, from the pointwise differences aligned by sample ID",
    "weight": "stacking weight (Yao et al. 2018); the weights sum to 1",
    "n_bad_k": "samples whose Pareto k is above good_k or not finite (unreliable terms)",
    "max_k": "largest finite Pareto k",
    "good_k": "the Pareto k threshold min(0.7, 1 - 1/log10(draws))",
    "warning": "True when n_bad_k > 0",
}


def relative_efficiency(posterior: xr.Dataset) -> float:
    """ArviZ's relative efficiency of the draws for PSIS: mean ESS (method "mean") / draws.

    The mean over every value of every variable of ``posterior`` (1 with one chain), as
    :func:`arviz_stats.loo` computes it from a result's posterior group.
    """
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    if n_chains == 1:
        return 1.0
    ess = posterior.azstats.ess(method="mean")
    values = np.hstack([np.ravel(ess[name].values) for name in ess.data_vars])
    return float(values.mean() / (n_chains * n_draws))


class BlockedLoo:
    r"""PSIS-LOO of pointwise terms that arrive by blocks of samples and are not kept.

    Parameters
    ----------
    posterior : xarray.Dataset
        The draws the terms belong to (dims ``chain``, ``draw``): their relative efficiency
        (:func:`relative_efficiency`) sets the Pareto smoothing, as in :func:`arviz_stats.loo`.
    samples : list of str
        Sample IDs, in the order of the terms.

    Notes
    -----
    PSIS smooths the importance weights of each sample separately (over its draws), so the
    pointwise results of a block of samples are those of the whole matrix given the same
    relative efficiency: ``add`` runs PSIS-LOO on one block [draws, block] at a time (memory
    O(draws·block)), vectorized over the block's samples
    (:func:`bayeslmm.inference.psis.psis_loo`: arviz_stats' algorithm and settings, its
    pointwise values to ~1e-13, ~100× faster than its loop over samples), and keeps elpd_i,
    Pareto k and p_loo_i; :meth:`result` gives
    them as the :data:`LOO_GROUP` group of a result. The relative efficiency is that of the
    model's parameters (the draws of u and v, drawn afterwards and not stored at this size,
    are not among them), so elpd_i can differ by ~1e-3 of its Monte Carlo error from what
    ``arviz_stats.loo`` gives on a result that stores u's draws.
    """

    def __init__(self, posterior: xr.Dataset, samples: list[str]) -> None:
        self.shape = (posterior.sizes["chain"], posterior.sizes["draw"])
        self.reff = relative_efficiency(posterior)
        self.samples = list(samples)
        n = len(self.samples)
        self.values = {name: np.full(n, np.nan) for name in ("elpd_i", "pareto_k", "p_loo_i")}

    def add(self, rows: np.ndarray | slice, loglik: np.ndarray) -> None:
        """PSIS-LOO of the samples at positions ``rows`` from their terms [shape: (draws, k)]."""
        elpd_i, pareto_k, p_loo_i = psis_loo(loglik, self.reff)
        for name, part in zip(self.values, (elpd_i, pareto_k, p_loo_i), strict=True):
            self.values[name][rows] = part

    def result(self) -> xr.Dataset:
        """The :data:`LOO_GROUP` group: pointwise values by sample, and how they were made."""
        coords = {"sample": self.samples}
        return xr.Dataset(
            {
                name: xr.DataArray(values, dims="sample", coords=coords)
                for name, values in self.values.items()
            },
            attrs={
                "reff": self.reff,
                "n_draws": int(np.prod(self.shape)),
                "method": "PSIS-LOO by sample blocks (the pointwise terms were not stored)",
            },
        )


def _stored(idata: DataTree) -> bool:
    """Whether a fit holds its PSIS-LOO (large cohorts) instead of the pointwise terms."""
    return (
        isinstance(idata, DataTree)
        and LOO_GROUP in idata.children
        and "log_likelihood" not in idata.children
    )


def _stored_elpd(idata: DataTree, label: str) -> Any:
    """The ELPDDataLOO of a fit that stores its PSIS-LOO (see :class:`BlockedLoo`)."""
    group = idata[LOO_GROUP]
    missing = [name for name in ("elpd_i", "pareto_k", "p_loo_i") if name not in group]
    if missing or group["elpd_i"].dims != ("sample",):
        raise InputError(
            f"the {LOO_GROUP} group of {label} lacks {missing or 'the sample dimension'}; it "
            "is not a result of bayeslmm.sample."
        )
    elpd_i, pareto_k, p_loo_i = (group[name] for name in ("elpd_i", "pareto_k", "p_loo_i"))
    n_draws = int(group.attrs["n_draws"])
    elpd, se, p, _ = elpd_i.azstats.loo_summary(p_loo_i)
    good_k = min(1 - 1 / np.log10(n_draws), 0.7) if n_draws > 1 else 0.7
    return azs.ELPDDataLOO(
        elpd=float(elpd),
        se=float(se),
        p=float(p),
        n_samples=n_draws,
        n_data_points=elpd_i.size,
        scale="log",
        warning=bool(np.any(pareto_k.values > good_k)),
        good_k=good_k,
        elpd_i=elpd_i.copy(),
        pareto_k=pareto_k.copy(),
        p_loo_i=p_loo_i.copy(),
    )


def _loglik(idata: DataTree, label: str) -> xr.DataArray | None:
    """The sample-space pointwise log-likelihood of a fit, or an InputError saying why not.

    None for a fit that stores its PSIS-LOO instead (large cohorts, :data:`LOO_GROUP`).
    """
    if not isinstance(idata, DataTree):
        raise InputError(
            f"{label} is a {type(idata).__name__}, not an xarray.DataTree (ArviZ 1's result "
            "type); pass the result of bayeslmm.sample."
        )
    if _stored(idata):
        return None
    if "log_likelihood" not in idata.children:
        raise InputError(
            f"{label} has no log_likelihood group, so its LOO cannot be computed; fit it "
            "with bayeslmm.sample, which writes the sample-space log-likelihood."
        )
    group = idata["log_likelihood"]
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


def _observed(idata: DataTree, label: str) -> pd.Series:
    """The phenotype a fit used, indexed by sample ID."""
    if "observed_data" not in idata.children or "y" not in idata["observed_data"]:
        raise InputError(
            f"{label} has no observed_data.y, so it cannot be checked to use the same "
            "samples as the others; fit it with bayeslmm.sample, which stores it."
        )
    y = idata["observed_data"]["y"]
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


def _bad_k(elpd: Any) -> np.ndarray:
    """Samples whose Pareto k is above the threshold or NaN (ArviZ 1 gives NaN in extreme tails)."""
    k = np.asarray(elpd.pareto_k, dtype=float)
    return ~(k <= float(elpd.good_k))


def _warn_unreliable(elpd: Any, label: str, stacklevel: int) -> None:
    """Warn (SamplingWarning) about the samples whose pointwise estimate is unreliable."""
    bad = _bad_k(elpd)
    if not bad.any():
        return
    k = np.asarray(elpd.pareto_k, dtype=float)
    n_nan = int(np.isnan(k).sum())
    finite = k[np.isfinite(k)]
    largest = f"max {finite.max():.2f}" if finite.size else "none finite"
    nan_note = (
        f", {n_nan} of them with no estimate of k (NaN: the importance weights' tail is too "
        "extreme to fit, which is as unreliable as a large k)"
        if n_nan
        else ""
    )
    warnings.warn(
        f"{label}: {int(bad.sum())} of {k.size} samples have a Pareto k above "
        f"{float(elpd.good_k):.2f} ({largest}{nan_note}); their PSIS-LOO terms are unreliable "
        "(influential samples, or too few draws: the threshold is min(0.7, 1 - 1/log10(draws))). "
        "Run more draws, or check those samples (the loo() result has pareto_k per sample) and "
        "consider exact refits leaving them out.",
        SamplingWarning,
        stacklevel=stacklevel,
    )


def _elpd(idata: DataTree, label: str, stacklevel: int) -> Any:
    loglik = _loglik(idata, label)
    if loglik is None:  # reduced by sample blocks when it was computed (large cohorts)
        elpd = _stored_elpd(idata, label)
        _warn_unreliable(elpd, label, stacklevel + 1)
        return elpd
    if loglik.sizes["chain"] * loglik.sizes["draw"] < 2:
        raise InputError(
            f"{label} has a single draw (a MAP estimate?); LOO needs posterior draws "
            "from bayeslmm.sample."
        )
    with warnings.catch_warnings():
        # ArviZ's own warning is replaced by one that counts the samples and names the model.
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*", category=UserWarning)
        elpd = azs.loo(idata, pointwise=True, var_name=str(loglik.name))
    _warn_unreliable(elpd, label, stacklevel + 1)
    return elpd


def loo(idata: DataTree) -> Any:
    r"""PSIS-LOO of one fit in sample space, with the pointwise values.

    Parameters
    ----------
    idata : xarray.DataTree
        From :func:`bayeslmm.sample` (a ``log_likelihood`` group with dim ``sample``).

    Returns
    -------
    arviz_stats.ELPDData
        ArviZ 1's LOO result: ``elpd``, ``se``, ``p``, ``good_k``, and per sample ``elpd_i``
        and ``pareto_k`` [shape: (n_samples,)].

    Warns
    -----
    SamplingWarning
        When some samples have a Pareto k above ArviZ's threshold min(0.7, 1 − 1/log10 S) for
        S draws, or no estimate of k (NaN); the message gives their number.

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

    Large cohorts: the terms of a model built from a Gram with more than
    :data:`~bayeslmm.inference.effects.LARGE_COHORT_VALUES` draws × samples (3.2 GB for
    N = 100,000 and 4,000 draws) are not stored: :func:`bayeslmm.sample` computes them in sample
    blocks and runs this same PSIS-LOO on each block as it goes (PSIS smooths each sample's
    weights on its own, so nothing is approximated), keeping elpd_i, Pareto k and p_loo_i per
    sample (the :data:`~bayeslmm.inference.effects.LOO_GROUP` group, :class:`BlockedLoo`).
    This function then reads them: the same ``ELPDDataLOO``, without ``log_weights``.
    (``arviz_stats.loo_subsample`` would estimate elpd from a subsample of samples instead, at
    the price of a subsampling error; with every term available block by block there is no
    need.)
    """
    return _elpd(idata, "this fit", stacklevel=3)


def compare(fits: Mapping[str, DataTree], *, ic: str = "loo") -> pd.DataFrame:
    """Rank models fitted to the same samples by their expected log predictive density.

    Parameters
    ----------
    fits : mapping of str to xarray.DataTree
        Named fits from :func:`bayeslmm.sample`, at least two, all on the same samples with the
        same phenotype values (the sample order may differ).
    ic : {"loo"}
        The criterion: PSIS-LOO in sample space, the only one (WAIC was dropped in 0.2.0, see
        Notes).

    Returns
    -------
    pandas.DataFrame
        One row per model, best first, indexed by model name, with the columns of
        :data:`COMPARE_COLUMNS`:

        - ``rank``: 0 for the best model (highest ``elpd_loo``);
        - ``elpd_loo``, ``se``: the summed LOO log predictive density (higher is better) and
          its standard error;
        - ``p_loo``: effective number of parameters;
        - ``elpd_diff``, ``dse``: ``elpd_loo`` minus the best model's (0 for the best,
          otherwise ≤ 0) and its standard error from the pointwise differences;
        - ``weight``: stacking weights (sum to 1);
        - ``n_bad_k``, ``max_k``, ``good_k``, ``warning``: Pareto-k diagnostics per model: the
          number of samples whose k is above ``good_k`` or NaN, the largest finite k, the
          threshold, and whether any sample is unreliable.

    Raises
    ------
    InputError
        A fit has no sample-space ``log_likelihood``, a single draw, or no ``observed_data``;
        the fits do not share the same samples and phenotype values; or ``ic`` is not "loo".

    Warns
    -----
    SamplingWarning
        For each model with samples whose Pareto k is above the threshold or NaN.

    Notes
    -----
    The pointwise terms are log p(y_i | y_−i, θ) in sample space (the rotated observations of
    the eigenbasis are combinations of individuals, and leaving one out is meaningless).
    Before the differences are taken, every model's pointwise terms are aligned by sample ID,
    so ``elpd_diff = Σ_i (elpd_i − elpd_i^best)`` and
    ``dse = sqrt(N · Var_i(elpd_i − elpd_i^best))`` (the population variance over samples,
    as ArviZ computes it; R's loo uses N − 1, a factor √(N/(N−1)) larger). A difference of
    less than about 2–4 ``dse`` is weak evidence. The table is bayeslmm's own, built from
    ArviZ 1's LOO results, so that its columns and sign convention stay as documented here.

    WAIC estimates the same elpd as PSIS-LOO but has no per-sample diagnostic of when it
    fails; ArviZ 1 dropped it, and so did bayeslmm 0.2.0.

    Fits of large cohorts (a model built from a Gram above
    :data:`~bayeslmm.inference.effects.LARGE_COHORT_VALUES` draws × samples) carry their
    PSIS-LOO computed by sample blocks instead of the pointwise terms (see :func:`loo`); they
    compare with each other and with any other fit on the same samples.

    Examples
    --------
    >>> fits = {
    ...     "standardized": bl.sample(bl.kinship_model(y, K_std), random_seed=1),
    ...     "centered": bl.sample(bl.kinship_model(y, K_cen), random_seed=1),
    ... }  # doctest: +SKIP
    >>> bl.compare(fits)[["elpd_loo", "elpd_diff", "dse", "weight"]]  # doctest: +SKIP
    """
    if ic != "loo":
        raise InputError(
            f"ic must be 'loo', got {ic!r}: bayeslmm compares models by sample-space PSIS-LOO "
            "only (WAIC was dropped in 0.2.0, as in ArviZ 1; PSIS-LOO estimates the same "
            "quantity and says, through Pareto k, where it is unreliable)."
        )
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
    elpds = {name: _aligned(_elpd(fits[name], labels[name], 3), order) for name in names}
    return _table(elpds)


def _table(elpds: Mapping[str, Any]) -> pd.DataFrame:
    """The comparison table of :data:`COMPARE_COLUMNS` from aligned LOO results."""
    pointwise = {name: np.asarray(e.elpd_i, dtype=float) for name, e in elpds.items()}
    total = pd.Series({name: float(e.elpd) for name, e in elpds.items()})
    order = total.sort_values(ascending=False, kind="stable").index
    best = pointwise[order[0]]
    n = best.size
    weights = azs.compare(dict(elpds), method="stacking", round_to="none")["weight"]
    rows = {}
    for rank, name in enumerate(order):
        e, diff = elpds[name], pointwise[name] - best
        k = np.asarray(e.pareto_k, dtype=float)
        bad = int(_bad_k(e).sum())
        rows[name] = {
            "rank": rank,
            "elpd_loo": float(e.elpd),
            "se": float(e.se),
            "p_loo": float(e.p),
            "elpd_diff": float(diff.sum()),
            "dse": float(np.sqrt(n * diff.var())) if rank else 0.0,
            "weight": float(weights[name]),
            "n_bad_k": bad,
            "max_k": float(np.nanmax(k)) if np.isfinite(k).any() else np.nan,
            "good_k": float(e.good_k),
            "warning": bad > 0,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")[list(COMPARE_COLUMNS)]
    table.index.name = "model"
    return table


def _aligned(elpd: Any, order: pd.Index) -> Any:
    """A copy of ``elpd`` with its pointwise values in the sample order ``order``."""
    out = copy.copy(elpd)
    for key in ("elpd_i", "pareto_k"):
        values = getattr(elpd, key, None)
        if values is not None:
            ids = np.asarray(values["sample"].values).astype(str)
            setattr(out, key, values.isel(sample=pd.Index(ids).get_indexer(order)))
    return out
