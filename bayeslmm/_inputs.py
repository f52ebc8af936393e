"""Turn user inputs (y, X and K or W) into aligned data and a spectral decomposition."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm._data import Prepared, prepare
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.spectral import (
    Spectral,
    check_kinship,
    spectral_from_genotypes,
    spectral_from_kinship,
)


def _kinship_array(K: Any) -> np.ndarray:
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
    if isinstance(K, Spectral):
        prepared = prepare(y, X, np.empty((K.n, 0)), genetic_name="K")
        if np.array_equal(prepared.rows, np.arange(K.n)):
            return prepared, K
        block = K.matrix()[np.ix_(prepared.rows, prepared.rows)]
        return prepared, spectral_from_kinship(block, normalize=normalize)
    matrix = _kinship_array(K)
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
    y: Any, W: Any, X: Any = None, *, standardize_snps: bool = True, normalize: bool = True
) -> tuple[Prepared, np.ndarray, list[str], Spectral]:
    """Align y, X with the genotype matrix W; return the prepared data, the W used and SNP names."""
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
    if standardize_snps:
        values = standardize(values)
    spectral = spectral_from_genotypes(values, normalize=normalize)
    return prepared, values / np.sqrt(spectral.scale), snps, spectral
