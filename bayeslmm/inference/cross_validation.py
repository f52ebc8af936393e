"""Cross-validation of the prediction of new samples, with folds by group (e.g. families).

:func:`cross_validate` refits the model without each fold and predicts the fold's phenotypes
with :func:`bayeslmm.inference.prediction.predict`; it reports the correlation and the mean
squared error of the predicted phenotypes and, for a binary (0/1) trait, the AUC and the Brier
score. Folds by group keep relatives together, so that a sample is never predicted from its
own family (which would overstate the accuracy for unrelated new samples). With a table of
several traits it cross-validates the multi-trait LMM
(:func:`bayeslmm.inference.prediction_multitrait.predict_multitrait`), scoring each trait.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.inputs import kinship_array
from bayeslmm.data.samples import positional_ids, sample_ids
from bayeslmm.errors import InputError
from bayeslmm.families.gaussian import kinship_model, snp_model
from bayeslmm.inference.prediction import predict
from bayeslmm.inference.prediction_multitrait import predict_multitrait
from bayeslmm.inference.sampling import map_estimate, sample


@dataclass(frozen=True, eq=False)
class CrossValidation:
    """The result of :func:`cross_validate`.

    Attributes
    ----------
    predictions : pandas.DataFrame
        One row per sample with a phenotype (index ``sample``): ``fold``, ``group``, ``y``
        (observed), ``y_pred`` and ``g_pred`` (posterior predictive means from the fit
        without the sample's fold; with ``family="probit"`` y_pred is the probability
        P(y = 1)), ``y_sd`` (predictive SD; NaN for a MAP fit). With several traits, one row
        per sample and observed trait (index ``sample``, ``trait``).
    metrics : pandas.DataFrame
        One row per fold and a row ``"all"`` (every sample pooled): ``n``, ``r`` (Pearson
        correlation of y_pred with y), ``mse``; for a 0/1 trait also ``auc`` and ``brier``.
        With several traits, one row per fold and trait (index ``fold``, ``trait``), the
        metrics of each trait's observed values.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame


def cross_validate(
    y: Any,
    *,
    K: Any = None,
    genotypes: Any = None,
    X: Any = None,
    groups: Any = None,
    family: str = "gaussian",
    n_folds: int = 5,
    method: str = "map",
    sample_options: Mapping[str, Any] | None = None,
    random_seed: int | None = None,
) -> CrossValidation:
    r"""K-fold cross-validation of the LMM's predictions, folds made of whole groups.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]: a Series indexed by sample ID, or an array
        (positional IDs ``"1"``, ``"2"``, ...). Samples with a missing phenotype are left out.
        Or several traits [shape: (n_samples, n_traits)], T ≥ 2 (a DataFrame of trait columns
        or a 2-D array): the multi-trait LMM (kinship form), each fold's samples predicted
        for every trait from the other folds; a sample is kept if it has at least one trait,
        and each trait is scored on the samples where it is observed (missing training values
        are handled by the model's ``missing="latent"`` default).
    K, genotypes
        Exactly one: a kinship over the samples (kinship form,
        :func:`bayeslmm.kinship_model`) or their allele counts (SNP form,
        :func:`bayeslmm.snp_model`), as those builders take them.
    X
        Covariates, as :func:`bayeslmm.kinship_model` takes them (None: intercept only).
    groups
        Group of each sample [shape: (n_samples,)] (e.g. family IDs): a Series indexed by
        sample ID or an array in the order of y. Every group falls in one fold. None: each
        sample is its own group.
    family : {"gaussian", "probit"}
        ``"probit"``: the liability threshold model of a 0/1 trait (kinship form only); the
        predictions are the probabilities P(y = 1) of :func:`bayeslmm.predict`, and AUC and
        Brier score use them.
    n_folds
        Number of folds (at least 2, at most the number of groups).
    method : {"map", "sample"}
        Fit of each fold: :func:`bayeslmm.map_estimate` (fast; predictions are conditional
        means at the MAP; with ``family="probit"`` β and h² at the mode of the marginal
        likelihood with the genetic values integrated out by expectation propagation, and
        probabilities from EP's predictive mean and variance of the liability) or
        :func:`bayeslmm.sample` with ``sample_options``.
    sample_options
        Keyword arguments of :func:`bayeslmm.sample` (``draws``, ``chains``, ``tune``, ...).
    random_seed
        Seeds the assignment of groups to folds, the fits and the predictive draws.

    Returns
    -------
    CrossValidation
        ``predictions`` (per sample) and ``metrics`` (per fold and pooled).

    Raises
    ------
    InputError
        Neither or both of K and genotypes; fewer groups than folds; groups that do not
        cover the samples; an unknown method; several traits with ``family="probit"`` or
        with genotypes= (the multi-trait SNP form keeps no SNP effects to predict with).

    Notes
    -----
    Groups are shuffled and each is put in the fold with the fewest samples so far (largest
    groups first), so folds have similar sizes. With :math:`\hat y_i` the predictive mean,
    :math:`\mathrm{MSE} = \frac1n\sum_i(y_i - \hat y_i)^2`; for 0/1 traits the AUC is the
    Mann–Whitney probability that a case has a higher :math:`\hat y` than a control (ties
    count ½) and the Brier score is :math:`\frac1n\sum_i(\min(\max(\hat y_i, 0), 1) - y_i)^2`
    (the Gaussian model's prediction read as a probability, clipped to [0, 1]; with
    ``family="probit"``, :math:`\hat y_i` is the predicted probability P(y_i = 1)).
    """
    if (K is None) == (genotypes is None):
        raise InputError(
            "cross_validate needs exactly one of K= (kinship form) or genotypes= (SNP form)."
        )
    if family not in ("gaussian", "probit"):
        raise InputError(f"family must be 'gaussian' or 'probit', got {family!r}.")
    if family == "probit" and K is None:
        raise InputError(
            "cross_validate(family='probit') takes K= (the probit model has no SNP form); "
            "pass a kinship over the samples."
        )
    if method not in ("map", "sample"):
        raise InputError(f"method must be 'map' or 'sample', got {method!r}.")
    ids, values, traits = _phenotype(y)
    if traits is not None and family != "gaussian":
        raise InputError(
            f"cross_validate with several traits takes family='gaussian' (the multi-trait "
            f"LMM), got {family!r}; cross-validate a binary trait alone."
        )
    if traits is not None and K is None:
        raise InputError(
            "cross_validate with several traits takes K= (kinship form): the multi-trait SNP "
            "form keeps no SNP effects to predict with; pass K = bl.kinship(genotypes)."
        )
    group_of = _groups(groups, ids)
    keep = ~np.isnan(values) if traits is None else ~np.isnan(values).all(axis=1)
    ids, values, group_of = ids[keep], values[keep], group_of[keep]
    fold_of = _folds(group_of, n_folds, np.random.default_rng(random_seed))
    if traits is None:
        y_series: Any = pd.Series(values, index=ids, name=getattr(y, "name", None) or "y")
    else:
        y_series = pd.DataFrame(values, index=ids, columns=traits)
    X_frame = _covariate_frame(X, ids, y)
    genetic = _kinship_frame(K) if K is not None else _genotype_frame(genotypes)
    seeds = np.random.SeedSequence(random_seed).generate_state(2 * n_folds)
    rows = []
    for fold in range(n_folds):
        test, train = ids[fold_of == fold], ids[fold_of != fold]
        X_train = None if X_frame is None else X_frame.loc[train]
        if K is not None:
            model = kinship_model(
                y_series.loc[train], genetic.loc[train, train], X_train, family=family
            )
        else:
            model = snp_model(y_series.loc[train], genetic.loc[train], X_train)
        seed = int(seeds[2 * fold])
        if method == "map":
            fit = map_estimate(model, random_seed=seed)
        else:
            options = {"progressbar": False, **(sample_options or {})}
            fit = sample(model, random_seed=seed, **options)
        both = np.concatenate([train, test])
        X_new = None if X_frame is None else X_frame.loc[test]
        if traits is not None:
            _, summary = predict_multitrait(
                fit, K=genetic.loc[both, both], X=X_new, random_seed=int(seeds[2 * fold + 1])
            )
            rows.append(
                _trait_rows(
                    summary,
                    test,
                    traits,
                    fold,
                    group_of[fold_of == fold],
                    values[fold_of == fold],
                )
            )
            continue
        if K is not None:
            pred = predict(
                fit, K=genetic.loc[both, both], X=X_new, random_seed=int(seeds[2 * fold + 1])
            )
        else:
            pred = predict(
                fit, genotypes=genetic.loc[test], X=X_new, random_seed=int(seeds[2 * fold + 1])
            )
        summary = pred.summary.loc[list(test)]
        outcome = "p" if family == "probit" else "y"
        rows.append(
            pd.DataFrame(
                {
                    "fold": fold,
                    "group": group_of[fold_of == fold],
                    "y": values[fold_of == fold],
                    "y_pred": summary[f"{outcome}_mean"].to_numpy(),
                    "g_pred": summary["g_mean"].to_numpy(),
                    "y_sd": summary[f"{outcome}_sd"].to_numpy(),
                },
                index=pd.Index(test, name="sample"),
            )
        )
    predictions = pd.concat(rows).loc[list(ids)]
    if traits is not None:
        return CrossValidation(predictions=predictions, metrics=_trait_metrics(predictions))
    binary = bool(np.isin(values, (0.0, 1.0)).all() and np.unique(values).size == 2)
    metrics = {
        str(fold): _metrics(part["y"].to_numpy(), part["y_pred"].to_numpy(), binary)
        for fold, part in predictions.groupby("fold")
    }
    metrics["all"] = _metrics(values, predictions["y_pred"].to_numpy(), binary)
    return CrossValidation(
        predictions=predictions, metrics=pd.DataFrame.from_dict(metrics, orient="index")
    )


def _phenotype(y: Any) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """IDs, values [shape: (n,) or (n, T)] and the trait names (None for one trait)."""
    ids = sample_ids(y, "y")
    traits = None
    if isinstance(y, pd.DataFrame):
        if y.shape[1] == 0:
            raise InputError("y has no columns; pass one phenotype, or a table of traits.")
        if y.shape[1] == 1:
            y = y.iloc[:, 0]
        else:
            traits = [str(c) for c in y.columns]
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"y could not be read as numbers ({exc}).") from None
    if values.ndim == 2 and values.shape[1] >= 2:
        traits = traits or [f"trait{j + 1}" for j in range(values.shape[1])]
    else:
        values = values.reshape(-1)
    ids = positional_ids(values.shape[0]) if ids is None else np.asarray(ids)
    return np.asarray(ids).astype(str), values, traits


def _trait_rows(
    summary: pd.DataFrame,
    test: np.ndarray,
    traits: list[str],
    fold: int,
    groups: np.ndarray,
    values: np.ndarray,
) -> pd.DataFrame:
    """One row per test sample and observed trait (several traits).

    ``groups`` and ``values`` [shape: (n_test, T)] are in the order of ``test``; ``summary``
    is predict_multitrait's (index ``sample``, ``trait``).
    """
    index = pd.MultiIndex.from_product([list(test), traits], names=["sample", "trait"])
    summary = summary.reindex(index)
    frame = pd.DataFrame(
        {
            "fold": fold,
            "group": np.repeat(groups, len(traits)),
            "y": values.reshape(-1),
            "y_pred": summary["y_mean"].to_numpy(),
            "g_pred": summary["g_mean"].to_numpy(),
            "y_sd": summary["y_sd"].to_numpy(),
        },
        index=index,
    )
    return frame[frame["y"].notna()]


def _trait_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """The metrics of each fold and trait, and of all folds pooled (several traits)."""
    metrics = {}
    traits = list(dict.fromkeys(predictions.index.get_level_values("trait")))
    by_trait = predictions.groupby(level="trait", sort=False)
    for trait in traits:
        part = by_trait.get_group(trait)
        y = part["y"].to_numpy()
        binary = bool(np.isin(y, (0.0, 1.0)).all() and np.unique(y).size == 2)
        for fold, rows in part.groupby("fold"):
            metrics[(str(fold), trait)] = _metrics(
                rows["y"].to_numpy(), rows["y_pred"].to_numpy(), binary
            )
        metrics[("all", trait)] = _metrics(y, part["y_pred"].to_numpy(), binary)
    table = pd.DataFrame.from_dict(metrics, orient="index")
    table.index = pd.MultiIndex.from_tuples(list(metrics), names=["fold", "trait"])
    order = [(str(f), t) for f in sorted(predictions["fold"].unique()) for t in traits]
    return table.loc[[key for key in order if key in metrics] + [("all", t) for t in traits]]


def _groups(groups: Any, ids: np.ndarray) -> np.ndarray:
    if groups is None:
        return ids.copy()
    index = sample_ids(groups, "groups")
    if index is None:
        labels = np.asarray(groups).reshape(-1)
        if labels.size != ids.size:
            raise InputError(
                f"groups has {labels.size} entries for {ids.size} samples; pass one group per "
                "sample (or a Series indexed by sample ID)."
            )
        return labels.astype(str)
    series = pd.Series(np.asarray(groups).astype(str), index=index)
    absent = [sample for sample in ids if sample not in series.index]
    if absent:
        raise InputError(
            f"groups lacks {len(absent)} samples (first {absent[:5]}); give every sample a group."
        )
    return series.loc[list(ids)].to_numpy()


def _folds(group_of: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    labels, sizes = np.unique(group_of, return_counts=True)
    if int(n_folds) != n_folds or not 2 <= n_folds <= labels.size:
        raise InputError(
            f"n_folds must be an integer from 2 to the number of groups ({labels.size}), got "
            f"{n_folds!r}."
        )
    order = rng.permutation(labels.size)
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(n_folds, dtype=int)
    fold_of_group = {}
    for g in order:
        fold = int(np.argmin(load))
        fold_of_group[labels[g]] = fold
        load[fold] += sizes[g]
    return np.array([fold_of_group[label] for label in group_of])


def _covariate_frame(X: Any, ids: np.ndarray, y: Any) -> pd.DataFrame | None:
    if X is None:
        return None
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        frame = X.copy()
        frame.index = frame.index.astype(str)
        return frame
    values = np.asarray(X, dtype=float)
    values = values[:, None] if values.ndim == 1 else values
    all_ids = sample_ids(y, "y")
    all_ids = positional_ids(values.shape[0]) if all_ids is None else all_ids
    if values.shape[0] != len(all_ids):
        raise InputError(
            f"X has {values.shape[0]} rows for {len(all_ids)} samples of y; pass one row per "
            "sample (or a DataFrame indexed by sample ID)."
        )
    columns = [f"x{j + 1}" for j in range(values.shape[1])]
    return pd.DataFrame(values, index=pd.Index(all_ids).astype(str), columns=columns)


def _kinship_frame(K: Any) -> pd.DataFrame:
    matrix = kinship_array(K)
    ids = sample_ids(K, "K")
    ids = positional_ids(matrix.shape[0]) if ids is None else ids
    return pd.DataFrame(matrix, index=ids, columns=ids)


def _genotype_frame(genotypes: Any) -> pd.DataFrame:
    if hasattr(genotypes, "read") and hasattr(genotypes, "snps") and hasattr(genotypes, "samples"):
        return pd.DataFrame(
            genotypes.read(),
            index=pd.Index(genotypes.samples).astype(str),
            columns=genotypes.snps["snp"].astype(str),
        )
    if isinstance(genotypes, pd.DataFrame):
        frame = genotypes.copy()
        frame.index = frame.index.astype(str)
        return frame
    values = np.asarray(genotypes, dtype=float)
    return pd.DataFrame(
        values,
        index=positional_ids(values.shape[0]),
        columns=[f"snp{j + 1}" for j in range(values.shape[1])],
    )


def _metrics(y: np.ndarray, y_pred: np.ndarray, binary: bool) -> dict[str, float | int]:
    out = {
        "n": int(y.size),
        "r": float(np.corrcoef(y, y_pred)[0, 1]) if y.size > 2 and np.ptp(y) > 0 else np.nan,
        "mse": float(np.mean((y - y_pred) ** 2)),
    }
    if binary:
        cases, controls = y_pred[y == 1], y_pred[y == 0]
        if cases.size and controls.size:
            diff = cases[:, None] - controls[None, :]
            out["auc"] = float(np.mean((diff > 0) + 0.5 * (diff == 0)))
        else:
            out["auc"] = np.nan
        out["brier"] = float(np.mean((np.clip(y_pred, 0.0, 1.0) - y) ** 2))
    return out
