"""Validation and sample alignment of phenotype, covariates and a genetic matrix.

One function, :func:`prepare`, turns what a user passes (numpy arrays or pandas objects indexed
by sample ID) into clean float arrays in one common sample order, or raises an
:class:`~bayeslmm.errors.InputError` that names the problem and the fix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.errors import DataWarning, InputError

MIN_SAMPLES = 3
SHOWN_IDS = 5  # sample IDs listed per reason in the DataWarning about dropped samples


def positional_ids(n: int) -> np.ndarray:
    """The sample IDs of an input that carries none: ``"1"``, ``"2"``, ..., ``str(n)``.

    Parameters
    ----------
    n
        Number of rows (samples) of the input.

    Returns
    -------
    ndarray of str
        [shape: (n,)]

    Notes
    -----
    The one positional-ID convention of the package: every plain array, and every output
    computed from one (``bl.kinship``, ``bl.pcs``, ``bl.read_bimbam`` without IDs,
    ``bl.write_grm``), numbers its samples from 1, as GEMMA, PLINK and GCTA users count rows
    and as BIMBAM files without IDs have always been read. Results of plain arrays can then be
    combined with each other in any mixture (e.g. ``bl.reml(y, bl.kinship(G), bl.pcs(G, 2))``).
    A pandas object with its default index (0, 1, ...) next to such IDs would be shifted by one
    sample; :func:`prepare` refuses that combination with an InputError.
    """
    return np.array([str(i + 1) for i in range(n)])


@dataclass(frozen=True)
class Prepared:
    """Aligned, complete data of one analysis.

    Attributes
    ----------
    y : ndarray
        Phenotype [shape: (n_samples,)].
    X : ndarray
        Covariates including the intercept [shape: (n_samples, n_covariates)].
    covariates : tuple of str
        Column names of ``X``.
    samples : ndarray of str
        Sample IDs in analysis order (positions as strings when no IDs were given).
    rows : ndarray of int or None
        Rows of the genetic matrix (K or W) that the analysis uses, in analysis order; None when
        no genetic matrix was given.
    y_name : str
        Name of the phenotype.
    dropped : dict
        Number of samples dropped, by reason.
    dropped_samples : dict
        The IDs of the samples dropped, by the same reasons.
    """

    y: np.ndarray
    X: np.ndarray
    covariates: tuple[str, ...]
    samples: np.ndarray
    rows: np.ndarray | None
    y_name: str = "y"
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_samples: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples analysed."""
        return self.y.shape[0]


def sample_ids(obj: Any, what: str) -> pd.Index | None:
    """The sample IDs an input carries, as strings, or None for an input that carries none.

    Parameters
    ----------
    obj
        A pandas Series or DataFrame (IDs from its index), an object with a ``.samples``
        attribute (Genotypes, Kinship), or anything else (a plain array: no IDs).
    what
        The input's name (``"y"``, ``"X"``, ``"K"``), for the error message.

    Returns
    -------
    pandas.Index or None
        The IDs as strings [shape: (n_samples,)], or None.

    Raises
    ------
    InputError
        If an ID appears more than once.
    """
    if isinstance(obj, pd.Series | pd.DataFrame):
        index = obj.index.astype(str)
    elif hasattr(obj, "samples") and not isinstance(obj, np.ndarray):
        index = pd.Index(np.asarray(obj.samples).astype(str))
    else:
        return None
    if index.has_duplicates:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise InputError(
            f"{what} has duplicated sample IDs {dup}; every sample must appear once "
            "(remove or rename the duplicates)."
        )
    return index


def _head(index: pd.Index | None) -> list[str] | None:
    return None if index is None else list(index[:3])


def dropped_message(
    n: int, dropped: dict[str, int], samples: dict[str, Any], *, context: str = ""
) -> str:
    """The DataWarning text: how many samples are analysed, and which were dropped and why.

    Parameters
    ----------
    n
        Number of samples analysed.
    dropped
        Reason → number of samples dropped for it (e.g. ``"in y but not in K"``).
    samples
        Reason → the IDs dropped for it; the first few are listed.
    context
        Words after "analysing n samples" (e.g. " present in every kinship").
    """
    parts = []
    for reason, count in dropped.items():
        ids = [str(i) for i in list(samples.get(reason, ()))[:SHOWN_IDS]]
        shown = ", ".join(repr(i) for i in ids) + (", ..." if count > len(ids) else "")
        parts.append(f"{count} {reason} [{shown}]" if ids else f"{count} {reason}")
    text = f"analysing {n} samples{context}; dropped {sum(dropped.values())}: {'; '.join(parts)}"
    if any("not in " in reason for reason in dropped):
        text += (
            ". Samples are matched by ID (pandas index, .samples of a Kinship or Genotypes); "
            "inputs without IDs (plain arrays) are matched by position and numbered '1'..'N'"
        )
    return text


def _integer_span(index: pd.Index) -> tuple[int, int] | None:
    """(min, max) when every ID is a plain non-negative integer ("0", "17"), else None."""
    values = pd.Series(index.to_numpy(dtype=str), dtype=object)
    if values.empty or not values.str.fullmatch(r"0|[1-9][0-9]{0,17}").all():
        return None  # "007", "id3", "²": IDs, not positions
    numbers = values.astype(np.int64)
    return int(numbers.min()), int(numbers.max())


def _check_offset(index: pd.Index, name: str, reference: pd.Index, ref_name: str) -> None:
    """Refuse IDs that look like the same rows numbered from 0 in one input and 1 in the other."""
    if index.isin(reference).all() and reference.isin(index).all():
        return
    a, b = _integer_span(index), _integer_span(reference)
    if a is None or b is None or {a[0], b[0]} != {0, 1} or a[1] - b[1] != a[0] - b[0]:
        return
    zero, one = (name, ref_name) if a[0] == 0 else (ref_name, name)
    raise InputError(
        f"{zero} is numbered from 0 (pandas' default index) and {one} from 1 (the sample IDs "
        "bayeslmm gives an input without IDs, as GEMMA and PLINK count); matching them by ID "
        f"would shift every sample by one. Pass {zero} as a plain array (.to_numpy()) to match "
        "by position, or index every input by the real sample IDs."
    )


def _phenotype(y: Any) -> tuple[np.ndarray, str]:
    name = "y"
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise InputError(
                f"y is a table with {y.shape[1]} columns {list(y.columns)[:5]}; pass one "
                "phenotype column, e.g. pheno['height']."
            )
        name = str(y.columns[0])
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series):
        name = str(y.name) if y.name is not None else name
        if not pd.api.types.is_numeric_dtype(y.dtype):
            raise InputError(
                f"phenotype '{name}' is not numeric (dtype {y.dtype}); convert it to numbers "
                "(case/control as 0/1)."
            )
        values = y.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            values = np.asarray(y, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"y could not be read as numbers ({exc}).") from None
    values = np.squeeze(values) if values.ndim == 2 and 1 in values.shape else values
    if values.ndim != 1:
        raise InputError(
            f"y must be one phenotype [shape (n_samples,)], got shape {values.shape}; for the "
            "genetic covariance of several traits use bl.reml_multivariate(Y, K, X) with Y a "
            "DataFrame of trait columns."
        )
    if np.isinf(values).any():
        bad = np.flatnonzero(np.isinf(values))[:5].tolist()
        raise InputError(
            f"phenotype '{name}' has infinite values at positions {bad}; fix or set them to "
            "NaN (missing)."
        )
    return values, name


def _covariates(X: Any, n: int) -> tuple[np.ndarray, list[str]]:
    if X is None:
        return np.empty((n, 0)), []
    if isinstance(X, pd.Series):
        X = X.to_frame(name=X.name if X.name is not None else "x1")
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        for col in X.columns:
            if not (pd.api.types.is_numeric_dtype(X[col].dtype) or X[col].dtype == bool):
                raise InputError(
                    f"covariate '{col}' is not numeric (dtype {X[col].dtype}); encode it as "
                    "indicator columns (bl.read_table does this for categorical columns)."
                )
        values = X.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            values = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"X could not be read as numbers ({exc}).") from None
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise InputError(
                f"X must be 2-D [shape (n_samples, n_covariates)], got {values.shape}."
            )
        names = [f"x{j + 1}" for j in range(values.shape[1])]
    if values.shape[0] != n:
        raise InputError(
            f"X has {values.shape[0]} rows but there are {n} samples; pass one row per sample "
            "(or pandas objects indexed by sample ID to align them)."
        )
    if np.isinf(values).any():
        j = int(np.flatnonzero(np.isinf(values).any(axis=0))[0])
        raise InputError(f"covariate '{names[j]}' has infinite values; fix them or set to NaN.")
    return values, names


def _rank(A: np.ndarray) -> int:
    norms = np.linalg.norm(A, axis=0)
    A = A[:, norms > 0] / norms[norms > 0]
    if A.shape[1] == 0:
        return 0
    sv = np.linalg.svd(A, compute_uv=False)
    return int((sv > max(A.shape) * np.finfo(float).eps * sv[0] * 1e3).sum())


def _add_intercept(X: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    n = X.shape[0]
    ones = np.ones(n)
    if X.shape[1] and _rank(X - X.mean(axis=0)) < _rank(X):
        # X spans the constant iff centring its columns loses a dimension; ranks of columns
        # scaled to unit norm, so that a covariate of 1e6 + small variation is not mistaken
        # for the intercept (a least-squares fit of 1 by such a column leaves a tiny residual)
        return X, names
    name = "intercept"
    while name in names:
        name = "_" + name
    return np.column_stack([ones, X]), [name, *names]


def _check_design(X: np.ndarray, names: list[str]) -> None:
    n, d = X.shape
    constant = [j for j in range(d) if np.ptp(X[:, j]) == 0]
    if len(constant) > 1:
        named = [names[j] for j in constant if names[j] != "intercept"]
        raise InputError(
            f"covariate(s) {named} are constant over the {n} samples analysed, so they duplicate "
            "the intercept (or each other); remove them."
        )
    scale = np.linalg.norm(X, axis=0)
    scale[scale == 0] = 1.0
    _, sv, vt = np.linalg.svd(X / scale, full_matrices=False)
    tol = max(n, d) * np.finfo(float).eps * sv[0] * 1e3
    if sv[-1] <= tol:
        null = vt[-1]
        involved = [names[j] for j in np.flatnonzero(np.abs(null) > 1e-6 * np.abs(null).max())]
        rank = int((sv > tol).sum())
        raise InputError(
            f"covariates {involved} are collinear (X has rank {rank} < {d} columns); remove one "
            "of them (a given X gets an intercept column unless it already spans the constant)."
        )


def prepare(
    y: Any,
    X: Any = None,
    genetic: Any = None,
    *,
    genetic_name: str = "K",
    square: bool = True,
) -> Prepared:
    """Align y, X and a genetic matrix by sample and drop incomplete samples.

    Parameters
    ----------
    y
        Phenotype: array [shape: (n,)] or pandas Series indexed by sample ID.
    X
        Covariates: None (intercept only), array [shape: (n, c)] or DataFrame indexed by ID.
    genetic
        The matrix whose rows are samples: K (square) or W; array, DataFrame indexed by ID, or
        an object with ``.samples`` (e.g. a Kinship). Only its sample order is used here.
    genetic_name
        Name used in messages ("K" or "W").
    square
        Whether ``genetic`` is an N×N matrix (its columns are samples too).

    Returns
    -------
    Prepared
        The aligned data; ``rows`` indexes the genetic matrix.

    Notes
    -----
    The reference order is the genetic matrix's if it carries IDs, else y's, else X's. A plain
    array is aligned by position with that order and must have its length; when no input carries
    IDs, the samples are named by :func:`positional_ids` ("1".."N"). The analysis keeps the
    samples present in every input with a non-missing phenotype and covariates; a
    :class:`~bayeslmm.errors.DataWarning` says how many were dropped, from which input, why,
    and names the first few.
    """
    y_values, y_name = _phenotype(y)
    n_genetic = None
    if genetic is not None:
        shape = np.shape(genetic.matrix if hasattr(genetic, "matrix") else genetic)
        if len(shape) != 2:
            raise InputError(f"{genetic_name} must be a 2-D matrix, got shape {shape}.")
        n_genetic = shape[0]
    ids = {
        genetic_name: sample_ids(genetic, genetic_name) if genetic is not None else None,
        "y": sample_ids(y, "y"),
        "X": sample_ids(X, "X") if X is not None else None,
    }
    lengths = {"y": y_values.shape[0], genetic_name: n_genetic}
    if X is not None:
        lengths["X"] = np.shape(X)[0] if np.ndim(X) else 0
    reference = next((k for k in (genetic_name, "y", "X") if ids.get(k) is not None), None)
    if reference is None:
        n_ref = n_genetic if n_genetic is not None else y_values.shape[0]
        ref_ids = pd.Index(positional_ids(n_ref))
        ref_name = genetic_name if n_genetic is not None else "y"
    else:
        ref_ids, ref_name = ids[reference], reference
    positional = [k for k, v in lengths.items() if v is not None and ids.get(k) is None]
    for k in positional:
        if lengths[k] != len(ref_ids):
            raise InputError(
                f"{k} has {lengths[k]} rows but {ref_name} has {len(ref_ids)} samples; "
                "plain arrays are aligned by position and must have the same length (pass pandas "
                "objects indexed by sample ID to align by ID)."
            )
    # Put every input in reference order, restricted to the common IDs.
    common = ref_ids
    dropped: dict[str, int] = {}
    dropped_ids: dict[str, tuple[str, ...]] = {}

    def drop(reason: str, which: pd.Index) -> None:
        if len(which):
            dropped[reason] = len(which)
            dropped_ids[reason] = tuple(str(i) for i in which)

    for k, idx in ids.items():
        if idx is not None and k != reference:
            _check_offset(idx, k, ref_ids, reference)
            drop(f"in {k} but not in {reference}", idx[~idx.isin(ref_ids)])
            drop(f"not in {k}", common[~common.isin(idx)])
            common = common[common.isin(idx)]
    if len(common) == 0:
        raise InputError(
            "no sample ID is shared by y, X and the genetic matrix; check that they use the same "
            f"IDs (first IDs: {genetic_name}: {_head(ids[genetic_name])}, y: {_head(ids['y'])})."
        )
    pos_ref = ref_ids.get_indexer(common)

    def take(values: np.ndarray, key: str) -> np.ndarray:
        if ids.get(key) is None:
            return values[pos_ref]
        return values[ids[key].get_indexer(common)]

    y_al = take(y_values, "y")
    X_raw, names = _covariates(X, lengths.get("X", len(y_values)))
    X_al = take(X_raw, "X") if X is not None else np.empty((len(common), 0))
    rows = None
    if genetic is not None:
        rows = (
            np.arange(len(ref_ids))[pos_ref]
            if ids[genetic_name] is None
            else ids[genetic_name].get_indexer(common)
        )
    complete = ~np.isnan(y_al)
    drop(f"missing {y_name}", common[~complete])
    nan_x = np.isnan(X_al).any(axis=1) & complete
    if nan_x.any():
        cols = [names[j] for j in np.flatnonzero(np.isnan(X_al[complete]).any(axis=0))]
        drop(f"missing covariate ({', '.join(cols)})", common[nan_x])
    keep = complete & ~np.isnan(X_al).any(axis=1)
    y_al, X_al, common = y_al[keep], X_al[keep], common[keep]
    if rows is not None:
        rows = rows[keep]
    n = y_al.shape[0]
    if dropped:
        warnings.warn(dropped_message(n, dropped, dropped_ids), DataWarning, stacklevel=3)
    if n < MIN_SAMPLES:
        raise InputError(
            f"only {n} samples remain after alignment and removing missing values; at least "
            f"{MIN_SAMPLES} are needed (and many more for a useful estimate)."
        )
    if np.ptp(y_al) == 0:
        raise InputError(
            f"phenotype '{y_name}' is constant ({y_al[0]:g}) over the {n} samples analysed; "
            "there is no variance to partition."
        )
    X_al, names = _add_intercept(X_al, names)
    _check_design(X_al, names)
    if n <= X_al.shape[1] + 1:
        raise InputError(
            f"{n} samples cannot support {X_al.shape[1]} covariates; need more samples than "
            "covariates + 1."
        )
    return Prepared(
        y=y_al,
        X=X_al,
        covariates=tuple(names),
        samples=np.asarray(common, dtype=str),
        rows=rows,
        y_name=y_name,
        dropped=dropped,
        dropped_samples=dropped_ids,
    )
