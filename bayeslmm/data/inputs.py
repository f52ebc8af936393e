"""Turn user inputs (y, X and K, several Ks, or W) into aligned data and spectral decompositions."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.samples import Prepared, dropped_message, prepare, sample_ids
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.linalg.spectral import (
    Rotated,
    Spectral,
    check_kinship,
    spectral_from_genotypes,
    spectral_from_kinship,
)
from bayeslmm.linalg.spectral import (
    standardize as standardize_data,
)
from bayeslmm.relatedness.gram import Gram, GramSubset

#: Why a :class:`~bayeslmm.relatedness.gram.Gram` is refused where only K or W is accepted so far.
GRAM_NOT_YET = (
    "a Gram (bl.gram) is accepted by bl.reml only with one kinship, and by bl.kinship_model / "
    "bl.snp_model for the Gaussian LMM (one kinship, normal SNP effects integrated out), so far; "
    "for this model pass the kinship (bl.kinship(genotypes, method=gram.method)) or the "
    "genotypes instead."
)


def kinship_array(K: Any) -> np.ndarray:
    """The kinship matrix of an array, DataFrame or Kinship ``K``, checked, as a float array.

    Parameters
    ----------
    K
        An array, a DataFrame indexed both ways by the same sample IDs (in the same order), or
        an object with a ``.matrix`` attribute (a Kinship). A :class:`Spectral` is not accepted
        here (it has no matrix to read; :func:`kinship_inputs` handles it first).

    Returns
    -------
    ndarray
        [shape: (n_samples, n_samples)], as returned by
        :func:`~bayeslmm.linalg.spectral.check_kinship` (square, finite, symmetric).

    Raises
    ------
    InputError
        A DataFrame whose row and column labels differ, or a matrix that fails the check.
    """
    if isinstance(K, pd.DataFrame):
        if not K.index.astype(str).equals(K.columns.astype(str)):
            raise InputError(
                "K is a DataFrame whose row and column labels differ; index both by the same "
                "sample IDs in the same order."
            )
        return check_kinship(K.to_numpy(dtype=float))
    if hasattr(K, "matrix") and not isinstance(K, Spectral | np.ndarray):
        return check_kinship(np.asarray(K.matrix))
    return check_kinship(K)


def kinship_inputs(
    y: Any, K: Any, X: Any = None, *, normalize: bool = True
) -> tuple[Prepared, Spectral]:
    """Align y, X with K and decompose K restricted to the samples analysed.

    ``K`` may be an array, a DataFrame indexed both ways by sample ID, an object with
    ``.matrix``/``.samples``/``.spectral()`` (a Kinship), or a :class:`Spectral` (positional).
    A decomposition is reused when every sample is kept; otherwise the kept block is decomposed.
    """
    if isinstance(K, Gram):
        raise InputError(GRAM_NOT_YET)
    if isinstance(K, Spectral):
        prepared = prepare(y, X, np.empty((K.n, 0)), genetic_name="K")
        if np.array_equal(prepared.rows, np.arange(K.n)):
            return prepared, K
        block = K.matrix()[np.ix_(prepared.rows, prepared.rows)]
        return prepared, spectral_from_kinship(block, normalize=normalize)
    matrix = kinship_array(K)
    prepared = prepare(y, X, K if not isinstance(K, np.ndarray) else matrix, genetic_name="K")
    rows = prepared.rows
    if hasattr(K, "spectral") and np.array_equal(rows, np.arange(matrix.shape[0])) and normalize:
        return prepared, K.spectral()
    return prepared, spectral_from_kinship(matrix[np.ix_(rows, rows)], normalize=normalize)


def standardize(G: np.ndarray) -> np.ndarray:
    """Centre each SNP and divide by its SD (ddof=0); monomorphic SNPs are an InputError.

    Parameters
    ----------
    G : ndarray
        Genotypes [shape: (n_samples, n_snps)], no missing values.

    Returns
    -------
    ndarray
        Standardized genotypes; K = W W'/M then equals GEMMA's ``-gk 2`` matrix.
    """
    sd = G.std(axis=0)
    mono = np.flatnonzero(sd == 0)
    if mono.size:
        raise InputError(
            f"{mono.size} SNP columns are monomorphic (first at positions {mono[:5].tolist()}) "
            "in the samples analysed; remove them before building the SNP model."
        )
    return (G - G.mean(axis=0)) / sd


def genotype_inputs(
    y: Any,
    W: Any,
    X: Any = None,
    *,
    standardize_snps: bool = True,
    normalize: bool = True,
    with_transform: bool = False,
) -> tuple:
    """Align y, X with the genotype matrix W; return the prepared data, the W used and SNP names.

    With ``with_transform``, a fifth element maps ``snp_mean`` (the training mean, which
    imputes a missing call), ``snp_center`` and ``snp_scale`` [each shape: (n_snps,)] to how
    the W used was made from the allele counts: ``W_used = (G - snp_center) / snp_scale``
    (what :func:`bayeslmm.inference.prediction.predict` applies to new samples' genotypes).
    """
    if isinstance(W, Gram):
        raise InputError(GRAM_NOT_YET)
    if hasattr(W, "read") and hasattr(W, "snps") and hasattr(W, "samples"):  # Genotypes
        W = pd.DataFrame(W.read(), index=W.samples, columns=W.snps["snp"].astype(str))
    if isinstance(W, pd.DataFrame):
        snps = [str(c) for c in W.columns]
        values = W.to_numpy(dtype=float)
    else:
        try:
            values = np.asarray(W, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"W could not be read as numbers ({exc}).") from None
        if values.ndim != 2:
            raise InputError(f"W must be 2-D (samples × SNPs), got shape {values.shape}.")
        snps = [f"snp{j + 1}" for j in range(values.shape[1])]
    prepared = prepare(y, X, W, genetic_name="W", square=False)
    values = values[prepared.rows]
    if np.isinf(values).any():
        raise InputError("W has infinite genotypes; fix them (NaN marks a missing call).")
    missing = np.isnan(values)
    if missing.any():
        if missing.all(axis=0).any():
            raise InputError(
                f"{int(missing.all(axis=0).sum())} SNPs have no observed genotype in the samples "
                "analysed; remove them."
            )
        warnings.warn(
            f"{int(missing.sum())} missing genotype calls in {int(missing.any(axis=0).sum())} "
            "SNPs were imputed by the SNP mean.",
            DataWarning,
            stacklevel=3,
        )
        values = np.where(missing, np.nanmean(values, axis=0), values)
    mean = values.mean(axis=0)
    center, sd = (mean, values.std(axis=0)) if standardize_snps else (0 * mean, 1 + 0 * mean)
    if standardize_snps:
        values = standardize(values)
    spectral = spectral_from_genotypes(values, normalize=normalize)
    out = (prepared, values / np.sqrt(spectral.scale), snps, spectral)
    if not with_transform:
        return out
    transform = {"snp_mean": mean, "snp_center": center, "snp_scale": sd * np.sqrt(spectral.scale)}
    return (*out, transform)


def _names(Ks: Any) -> tuple[list[str], list[Any]]:
    if isinstance(Ks, Mapping):
        names, mats = [str(k) for k in Ks], list(Ks.values())
        if len(set(names)) != len(names):
            raise InputError(f"the kinship names {names} are not unique as strings; rename them.")
    elif isinstance(Ks, Sequence) and not isinstance(Ks, str):
        mats = list(Ks)
        names = [f"K{j + 1}" for j in range(len(mats))]
    else:
        raise InputError(
            f"several kinships are given as a list or a dict of matrices, got {type(Ks).__name__}."
        )
    if not mats:
        raise InputError("the list of kinships is empty; pass at least one K.")
    return names, mats


class _Samples:
    """Stand-in genetic matrix for :func:`prepare`: the sample IDs shared by every K."""

    def __init__(self, samples: pd.Index) -> None:
        self.samples = samples
        self.matrix = np.empty((len(samples), 0))


def _restrict(prepared: Prepared, ids: list[pd.Index], names: list[str]) -> Prepared:
    """Keep the samples of ``prepared`` that every kinship has, with a DataWarning."""
    kept = pd.Index(prepared.samples)
    keep = np.ones(len(kept), dtype=bool)
    dropped = dict(prepared.dropped)
    dropped_samples = dict(prepared.dropped_samples)
    for name, index in zip(names, ids, strict=True):
        absent = keep & ~kept.isin(index)
        if absent.any():
            dropped[f"not in {name}"] = int(absent.sum())
            dropped_samples[f"not in {name}"] = tuple(kept[absent])
            keep &= ~absent
    if keep.all():
        return prepared
    n = int(keep.sum())
    message = dropped_message(n, dropped, dropped_samples, context=" present in every kinship")
    warnings.warn(message, DataWarning, stacklevel=4)
    X = prepared.X[keep]
    if n <= X.shape[1] + 1 or np.ptp(prepared.y[keep]) == 0:
        raise InputError(
            f"only {n} samples are shared by y, X and every kinship {names}, with a varying "
            "phenotype; check that the kinships use the same sample IDs."
        )
    return dataclasses.replace(
        prepared,
        y=prepared.y[keep],
        X=X,
        samples=prepared.samples[keep],
        rows=prepared.rows[keep],
        dropped=dropped,
        dropped_samples=dropped_samples,
    )


def components_inputs(
    y: Any, Ks: Any, X: Any = None, *, normalize: bool = True
) -> tuple[Prepared, list[Spectral], list[str]]:
    """Align y, X and several kinships; decompose each K restricted to the samples analysed.

    Parameters
    ----------
    y, X
        As in :func:`bayeslmm.kinship_model`.
    Ks
        A list of kinships (named ``K1``, ``K2``, ...) or a dict name → kinship. Each is an
        array [shape: (n_samples, n_samples)], a DataFrame indexed both ways by sample ID, a
        Kinship, or a :class:`Spectral` (positional).
    normalize
        Divide each K by its mean diagonal (the factor is each Spectral's ``scale``).

    Returns
    -------
    prepared : Prepared
        Aligned y and X; ``rows`` index the first K's samples.
    spectra : list of Spectral
        One decomposition per K, rows in the order of ``prepared.samples``.
    names : list of str
        Component names.

    Notes
    -----
    Kinships carrying IDs (DataFrame, Kinship) are aligned by ID; the first of them is the
    reference (y and X given as plain arrays are aligned by position with it, as in the one-K
    model), and a plain-array K is aligned by position with it too (and must have its size).
    With no IDs on any K, every K must have the same size and is aligned by position with y.
    Samples absent from any K are dropped with a DataWarning.
    """
    names, raw = _names(Ks)
    mats: list[np.ndarray] = []
    ids: list[pd.Index | None] = []
    for name, K in zip(names, raw, strict=True):
        if isinstance(K, Gram):
            raise InputError(GRAM_NOT_YET)
        if isinstance(K, Spectral):
            mats.append(K.matrix())
        elif isinstance(K, np.ndarray) or not (isinstance(K, pd.DataFrame) or hasattr(K, "matrix")):
            mats.append(check_kinship(K, name))
        else:
            mats.append(kinship_array(K))
        is_positional = isinstance(K, Spectral | np.ndarray) or not (
            isinstance(K, pd.DataFrame) or hasattr(K, "samples")
        )
        ids.append(None if is_positional else sample_ids(K, name))
    with_ids = [j for j, index in enumerate(ids) if index is not None]
    if not with_ids:
        sizes = {name: m.shape[0] for name, m in zip(names, mats, strict=True)}
        if len(set(sizes.values())) > 1:
            raise InputError(
                f"the kinships have different sizes {sizes}; plain arrays are aligned by position "
                "and must all be N×N for the same samples (pass DataFrames indexed by sample ID "
                "to align them by ID)."
            )
        prepared = prepare(y, X, mats[0], genetic_name=names[0])
        rows = [prepared.rows] * len(mats)
    else:
        ref = with_ids[0]
        reference = ids[ref]
        for j, index in enumerate(ids):
            if index is None:
                if mats[j].shape[0] != len(reference):
                    raise InputError(
                        f"{names[j]} has {mats[j].shape[0]} rows but {names[ref]} has "
                        f"{len(reference)} samples; a plain-array kinship is aligned by position "
                        f"with {names[ref]} and must have its size (or pass it as a DataFrame "
                        "indexed by sample ID)."
                    )
                ids[j] = reference
        prepared = prepare(y, X, _Samples(reference), genetic_name=names[ref])
        prepared = _restrict(prepared, ids, names)
        rows = [index.get_indexer(prepared.samples) for index in ids]
    spectra = []
    for j, (mat, r) in enumerate(zip(mats, rows, strict=True)):
        K = raw[j]
        if (
            hasattr(K, "spectral")
            and not isinstance(K, Spectral | np.ndarray)
            and normalize
            and np.array_equal(r, np.arange(mat.shape[0]))
        ):
            spectra.append(K.spectral())
        else:
            spectra.append(spectral_from_kinship(mat[np.ix_(r, r)], normalize=normalize))
    return prepared, spectra, names


def gram_inputs(
    y: Any, gram: Gram, X: Any = None, *, normalize: bool = True
) -> tuple[Prepared, GramSubset]:
    """Align y, X with the samples of a Gram and decompose the Gram of the samples analysed.

    Parameters
    ----------
    y, X
        As in :func:`bayeslmm.reml`: pandas objects are aligned by sample ID with
        ``gram.samples``; plain arrays by position (they must have ``gram.n_samples`` rows).
    gram : Gram
        From :func:`bayeslmm.gram`.
    normalize
        Divide K = WW'/M by its mean diagonal over the samples analysed.

    Returns
    -------
    prepared : Prepared
        Aligned y and X; ``rows`` index the Gram's samples.
    subset : GramSubset
        The Gram of the samples analysed (downdated when samples were dropped) and its
        eigenbasis; ``subset.rotate_data(y, X)`` rotates data in the order of ``prepared``.
    """
    prepared = prepare(y, X, _Samples(pd.Index(gram.samples)), genetic_name="gram")
    return prepared, gram.subset(prepared.rows, normalize=normalize)


def rotate_gram(subset: GramSubset, y: np.ndarray, X: np.ndarray) -> Rotated:
    r"""Rotate y and X as given (not standardized) in the eigenbasis of a Gram: one pass.

    Parameters
    ----------
    subset : GramSubset
        The Gram of the samples analysed (from :func:`gram_inputs`).
    y : ndarray
        Phenotype, in the order of ``subset.rows`` [shape: (n_samples,)].
    X : ndarray
        Covariates, same order [shape: (n_samples, n_covariates)].

    Returns
    -------
    Rotated
        What :func:`~bayeslmm.linalg.spectral.rotate_data` gives for the N×N K of these
        samples and the same y and X, up to the signs of the eigenvectors; ``null_factor`` is a
        square factor of the null-space Gram (not triangular).

    Notes
    -----
    :meth:`GramSubset.rotate_data` forms the null-space Gram as :math:`A^\top A - A_1^\top
    A_1`, which is accurate for standardized data only. So y and X are standardized first
    (:func:`~bayeslmm.linalg.spectral.standardize`: :math:`\tilde X = XT`,
    :math:`\tilde y = (y - Xb_0)/c`), rotated, and mapped back exactly: with
    :math:`A = [X, y] = [\tilde X, \tilde y]\,L`,

    .. math::

        L = \begin{pmatrix} T^{-1} & T^{-1} b_0 \\ 0 & c \end{pmatrix},

    the rotated data are :math:`\tilde A_1 L`, the null-space Gram :math:`L^\top \tilde G L`
    and its factor :math:`\tilde F L` (so ``‖F(−β, 1)‖²`` is the null-space residual sum of
    squares of the data as given, without forming the N − r null-space residuals).
    """
    std = standardize_data(y, X)
    rot = subset.rotate_data(std.y, std.X)
    d = X.shape[1]
    L = np.zeros((d + 1, d + 1))
    if d:
        inverse = np.linalg.inv(std.transform)  # T = sqrt(N) R^-1: T^-1 = R / sqrt(N)
        L[:d, :d] = inverse
        L[:d, d] = inverse @ std.offset
    L[d, d] = std.scale
    A1 = np.column_stack([rot.X1, rot.y1]) @ L
    gram = L.T @ rot.gram @ L
    factor = None if rot.null_factor is None else rot.null_factor @ L
    return Rotated(
        y1=A1[:, -1],
        X1=A1[:, :-1],
        gram=(gram + gram.T) / 2,
        n_null=rot.n_null,
        s=rot.s,
        null_factor=factor,
    )
