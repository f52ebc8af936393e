"""Principal components of genotypes or of a kinship matrix, as covariates for the models.

PCs are the top eigenvectors of K = W W'/M (W the standardized genotypes), computed by the
same spectral machinery as the models (:mod:`bayeslmm.linalg.spectral`): a thin SVD of W when there
are fewer SNPs than samples, else an eigendecomposition of K built by streaming SNP chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.samples import positional_ids
from bayeslmm.errors import InputError
from bayeslmm.linalg.spectral import (
    Spectral,
    check_kinship,
    spectral_from_genotypes,
    spectral_from_kinship,
)
from bayeslmm.relatedness.grm import Kinship, kinship


def _is_genotypes(obj: Any) -> bool:
    return hasattr(obj, "read") and hasattr(obj, "snps") and hasattr(obj, "samples")


def _select(ids: np.ndarray, samples: Any, what: str) -> np.ndarray:
    """Positions in ``ids`` of the requested sample IDs (all when ``samples`` is None)."""
    if samples is None:
        return np.arange(len(ids))
    wanted = pd.Index(np.asarray(samples).astype(str))
    if wanted.has_duplicates:
        raise InputError("samples has duplicated IDs; list every sample once.")
    pos = pd.Index(ids.astype(str)).get_indexer(wanted)
    if (pos < 0).any():
        absent = wanted[pos < 0][:5].tolist()
        raise InputError(
            f"{int((pos < 0).sum())} of the requested samples are not in the {what} "
            f"(first: {absent}); pass IDs that the {what} has."
        )
    return pos


def _own_ids(samples: Any, n: int) -> np.ndarray:
    """IDs of a source without IDs: ``samples`` if given, else the positional IDs '1'..'N'."""
    if samples is None:
        return positional_ids(n)
    ids = np.asarray(samples).astype(str)
    if ids.shape != (n,):
        raise InputError(
            f"samples has {ids.size} IDs but the source has {n} rows; give one ID per row."
        )
    if pd.Index(ids).has_duplicates:
        raise InputError("samples has duplicated IDs; every sample must appear once.")
    return ids


def _standardize_counts(G: np.ndarray) -> np.ndarray:
    """Mean-impute, centre and scale each SNP (ddof=0); drop monomorphic SNPs."""
    if np.isinf(G).any():
        raise InputError("genotypes have infinite values; NaN marks a missing call.")
    observed = ~np.isnan(G)
    keep = observed.any(axis=0)
    G = G[:, keep]
    mean = np.nanmean(G, axis=0)
    Z = np.where(np.isnan(G), 0.0, G - mean)
    sd = np.sqrt(np.einsum("ij,ij->j", Z, Z) / Z.shape[0])
    varying = sd > 1e-12
    if not varying.any():
        raise InputError("no SNP varies across the samples; principal components are undefined.")
    return Z[:, varying] / sd[varying]


def _from_genotypes(source: Any, samples: Any) -> tuple[Spectral, np.ndarray]:
    if _is_genotypes(source):
        ids = np.asarray(source.samples).astype(str)
        rows = _select(ids, samples, "genotypes")
        n, m = rows.size, source.n_snps
        if m >= n:  # stream SNP chunks into K = WW'/M, then eigh (O(N²M + N³))
            K = kinship(source, method="standardized_empirical", samples=rows)
            return spectral_from_kinship(K.matrix, normalize=False), ids[rows]
        G = source.read(samples=rows)
        ids = ids[rows]
    else:
        if isinstance(source, pd.DataFrame):
            ids = source.index.astype(str).to_numpy()
            rows = _select(ids, samples, "genotype table")
            G, ids = source.to_numpy(dtype=float)[rows], ids[rows]
        else:
            G = np.asarray(source, dtype=float)
            if G.ndim != 2:
                raise InputError(f"genotypes must be 2-D (samples × SNPs), got {G.shape}.")
            ids = _own_ids(samples, G.shape[0])
    W = _standardize_counts(np.asarray(G, dtype=float))
    # K = W W'/M; thin SVD of W/√M when M < N (spectral_from_genotypes chooses).
    return spectral_from_genotypes(W, normalize=False), ids


def _from_kinship(source: Any, samples: Any) -> tuple[Spectral, np.ndarray]:
    if isinstance(source, Spectral):
        return source, _own_ids(samples, source.n)
    if isinstance(source, Kinship):
        ids, matrix = np.asarray(source.samples).astype(str), source.matrix
        if samples is None:
            return source.spectral(), ids
    elif isinstance(source, pd.DataFrame):
        ids = source.index.astype(str).to_numpy()
        if not pd.Index(ids).equals(source.columns.astype(str)):
            raise InputError("K's row and column labels differ; index both by the same IDs.")
        matrix = source.to_numpy(dtype=float)
    else:
        matrix = np.asarray(source, dtype=float)
        ids = _own_ids(samples, matrix.shape[0])
        samples = None
    rows = _select(ids, samples, "kinship")
    K = check_kinship(np.asarray(matrix, dtype=float)[np.ix_(rows, rows)])
    return spectral_from_kinship(K), ids[rows]


def _looks_like_kinship(source: Any) -> bool:
    if isinstance(source, Spectral | Kinship):
        return True
    if isinstance(source, pd.DataFrame):
        return source.shape[0] == source.shape[1] and source.index.astype(str).equals(
            source.columns.astype(str)
        )
    if _is_genotypes(source):
        return False
    try:
        A = np.asarray(source, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"pcs could not read the source as numbers ({exc}).") from None
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.isfinite(A).all():
        return False
    return bool(np.allclose(A, A.T, rtol=0, atol=1e-8 * max(np.abs(A).max(), 1e-300)))


def _fix_signs(U: np.ndarray) -> np.ndarray:
    """Flip each column so that its entry of largest magnitude is positive."""
    top = U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])]
    return U * np.where(top < 0, -1.0, 1.0)


def pcs(source: Any, n: int = 10, *, samples: Any = None) -> pd.DataFrame:
    r"""Principal components of genotypes or of a kinship matrix.

    Parameters
    ----------
    source
        Either genotypes: :class:`~bayeslmm.Genotypes`, allele counts [shape: (n_samples,
        n_snps)] as an array or a DataFrame indexed by sample ID (NaN = missing, imputed by the
        SNP mean; monomorphic SNPs are skipped); or a kinship matrix [shape: (n_samples,
        n_samples)]: :class:`~bayeslmm.Kinship`, DataFrame indexed both ways by sample ID,
        :class:`~bayeslmm.Spectral`, or a square symmetric array (a square symmetric array is
        always read as a kinship matrix).
    n
        Number of components.
    samples
        For a source with sample IDs (Genotypes, Kinship, DataFrame): the IDs of the samples to
        compute the PCs on, in the order wanted (default: all). For a plain array or a
        Spectral: the IDs of its rows (default ``"1", "2", ...``, the package's positional IDs,
        as :func:`~bayeslmm.kinship` and :func:`~bayeslmm.scan` number a plain array).

    Returns
    -------
    pandas.DataFrame
        Columns ``PC1`` … ``PCn``, index the sample IDs [shape: (n_samples, n)]. Each column is
        an eigenvector of K of unit norm (as ``plink2 --pca`` and ``gcta --pca`` write them),
        its entry of largest magnitude positive. ``attrs["eigenvalues"]`` (of K as given, or of
        W W'/M for genotypes) and ``attrs["explained_variance_ratio"]`` (each eigenvalue over
        the sum of K's positive eigenvalues, i.e. over trace(K)) are lists of n numbers.

    Raises
    ------
    InputError
        If n is not a positive integer or exceeds the rank of K (the number of eigenvalues
        above 1e-10 times the largest), or the source cannot be read.

    Notes
    -----
    With W the standardized genotypes (each SNP centred, scaled to variance 1) and
    :math:`W/\sqrt{M} = U S V^\top`, the PCs are the columns of U and

    .. math::

        K = W W^\top / M = U S^2 U^\top, \qquad
        \text{explained variance ratio}_k = \frac{S_k^2}{\sum_j S_j^2} =
        \frac{\lambda_k}{\operatorname{tr} K},

    the share of the total variance of the standardized genotypes on the k-th axis. For
    M < N this is a thin SVD of W (O(N·M²)); otherwise K is built by streaming SNP chunks and
    decomposed (O(N²·M + N³)). The scores U·S (sklearn's ``transform``) differ from these
    columns by a constant factor per column, which a regression coefficient absorbs.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"n must be a positive integer number of components, got {n!r}.")
    if _looks_like_kinship(source):
        spectral, ids = _from_kinship(source, samples)
    else:
        spectral, ids = _from_genotypes(source, samples)
    if n > spectral.rank:
        raise InputError(
            f"asked for {n} principal components but K has rank {spectral.rank} (eigenvalues "
            f"above 1e-10 of the largest) over {len(ids)} samples; ask for at most "
            f"{spectral.rank}."
        )
    U = _fix_signs(spectral.U[:, :n])
    values = spectral.s[:n] * spectral.scale  # eigenvalues of K as given (before normalizing)
    total = float(spectral.s.sum())
    out = pd.DataFrame(
        U, index=pd.Index(ids, name="sample"), columns=[f"PC{k + 1}" for k in range(n)]
    )
    out.attrs["eigenvalues"] = [float(v) for v in values]
    out.attrs["explained_variance_ratio"] = [float(v) for v in spectral.s[:n] / total]
    return out
