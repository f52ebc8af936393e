"""The Gram W'W of the model SNPs, streamed from genotypes: K = WW'/M without an N×N matrix.

With M < N model SNPs, everything the Gaussian LMM needs is in the M×M Gram W'W and in W'y, W'X
(DESIGN §6, "Large cohorts"). :func:`gram` reads the genotypes in blocks, never holding more than
one block of them as float64, and returns a :class:`Gram` that rotates any phenotype later with
one more streamed pass (:meth:`Gram.subset`, :meth:`GramSubset.rotate_data`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import blas

from bayeslmm.errors import InputError
from bayeslmm.io import DEFAULT_CHUNK, Genotypes, Index, as_index, normalize_chromosomes
from bayeslmm.linalg.spectral import (
    DEFAULT_RTOL,
    LowRank,
    Rotated,
    rotate_lowrank,
    spectral_from_gram,
)
from bayeslmm.relatedness.grm import as_genotypes, available_memory, in_kinship, prepare_block

log = logging.getLogger("bayeslmm")

#: Kinships that are a Gram matrix K = WW'/M (``bl.kinship``'s methods of the same names).
METHODS = ("standardized_empirical", "centered")

#: M×M float64 matrices alive at the peak: W'W, and during the eigendecomposition of the Gram
#: of the samples analysed its copy, the eigenvectors and LAPACK's workspace (2 M²).
GRAM_MATRICES = 5

#: Block-sized float64 arrays alive at once: the block read, and the copy some readers make.
BLOCK_COPIES = 2


def gram_memory(n_samples: int, n_snps: int, chunk_size: int = DEFAULT_CHUNK) -> int:
    """Bytes needed at the peak by :func:`gram` and by REML from the Gram.

    Parameters
    ----------
    n_samples, n_snps : int
        N and M.
    chunk_size : int
        Samples per block.

    Returns
    -------
    int
        ``8 · (5·M² + 2·min(chunk_size, N)·M)``: W'W, the eigendecomposition of the Gram of
        the samples analysed (a copy, the eigenvectors, LAPACK's workspace), and one block of
        genotypes as float64 with a copy. Never N², never N·M.
    """
    block = min(int(chunk_size), int(n_samples)) * int(n_snps)
    return 8 * (GRAM_MATRICES * int(n_snps) ** 2 + BLOCK_COPIES * block)


@dataclass(frozen=True, eq=False)
class Gram:
    r"""W'W of the standardized model SNPs, with what rotating a phenotype needs later.

    Attributes
    ----------
    wtw : ndarray
        ``W.T @ W`` over every sample of the Gram [shape: (n_snps, n_snps)], symmetric.
    samples : ndarray of str
        Sample IDs, the order of the rows of W [shape: (n_samples,)].
    snps : pandas.DataFrame
        The SNPs used (those that passed QC), in the order of ``wtw``: chrom, snp, cm, pos, a1,
        a2.
    center : ndarray
        Per-SNP mean of the observed calls, 2p [shape: (n_snps,)].
    spread : ndarray
        Per-SNP divisor: the SD of the imputed genotypes (``standardized_empirical``) or 1
        (``centered``) [shape: (n_snps,)].
    method : str
        ``"standardized_empirical"`` or ``"centered"``.
    qc : dict
        SNP counts of the quality control, as :func:`bayeslmm.kinship` reports them.
    chunk_size : int
        Samples per block in the streamed passes.
    genotypes : Genotypes
        Where W is read from in the later passes (W'y, the rows of dropped samples).
    sample_index, snp_index : ndarray
        Positions of the Gram's samples and SNPs in ``genotypes``.
    fid : ndarray of str
        Family IDs of the samples.

    Notes
    -----
    :math:`W_{ij} = (x_{ij} - 2p_j)/d_j` with missing calls set to 2p (the convention of
    :func:`bayeslmm.kinship`), so :math:`K = WW^\top/M` is exactly ``bl.kinship(G, method)``'s
    matrix, and its mean diagonal (``scale``) is the factor a model divides it by.
    """

    wtw: np.ndarray
    samples: np.ndarray
    snps: pd.DataFrame
    center: np.ndarray
    spread: np.ndarray
    method: str
    qc: dict[str, int]
    chunk_size: int
    genotypes: Genotypes = field(repr=False)
    sample_index: np.ndarray = field(repr=False)
    snp_index: np.ndarray = field(repr=False)
    fid: np.ndarray | None = field(default=None, repr=False)
    _cache: dict[Any, GramSubset] = field(default_factory=dict, repr=False)

    @property
    def n_samples(self) -> int:
        """Number of samples (N)."""
        return len(self.samples)

    @property
    def n_snps(self) -> int:
        """Number of SNPs used (M)."""
        return self.wtw.shape[0]

    @property
    def scale(self) -> float:
        """Mean diagonal of K = WW'/M over all the Gram's samples, trace(W'W)/(N·M)."""
        return float(np.trace(self.wtw) / (self.n_samples * self.n_snps))

    def __repr__(self) -> str:
        return (
            f"Gram({self.n_samples} samples, {self.n_snps} SNPs, method={self.method!r}, "
            f"mean diagonal {self.scale:.4g})"
        )

    def blocks(self, rows: np.ndarray) -> Any:
        """Yield (start, W of ``rows[start:start + chunk_size]``), standardized, one at a time.

        Parameters
        ----------
        rows : ndarray of int
            Positions among the Gram's samples, in the order wanted.

        Yields
        ------
        start : int
            Offset of the block in ``rows``.
        W : ndarray
            Standardized genotypes, missing calls 0 (the mean), column-major
            [shape: (block, n_snps)].
        """
        for start in range(0, rows.size, self.chunk_size):
            part = self.sample_index[rows[start : start + self.chunk_size]]
            block = np.asfortranarray(self.genotypes.read(self.snp_index, part))
            missing = np.isnan(block)
            block -= self.center
            block /= self.spread
            block[missing] = 0.0
            yield start, block

    def project(self, A: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``W.T @ A`` over the samples ``rows``, streamed (one pass over those rows).

        Parameters
        ----------
        A : ndarray
            Vectors over the samples ``rows``, in that order [shape: (n_rows, k)].
        rows : ndarray of int, optional
            Positions among the Gram's samples; None: all of them in order.

        Returns
        -------
        ndarray
            [shape: (n_snps, k)].
        """
        rows = np.arange(self.n_samples) if rows is None else np.asarray(rows, dtype=np.intp)
        A = np.asarray(A, dtype=float).reshape(rows.size, -1)
        out = np.zeros((self.n_snps, A.shape[1]))
        for start, W in self.blocks(rows):
            out += W.T @ A[start : start + W.shape[0]]
        return out

    def subset(self, rows: np.ndarray | None = None, *, normalize: bool = True) -> GramSubset:
        r"""The Gram restricted to some of its samples, decomposed (the last one is cached).

        Parameters
        ----------
        rows : ndarray of int, optional
            Positions among the Gram's samples, in the order of the data analysed; None: all.
        normalize : bool
            Divide K by its mean diagonal over these samples (as ``bl.reml`` does with an N×N K
            restricted to them).

        Returns
        -------
        GramSubset

        Notes
        -----
        Dropping samples d from the Gram leaves :math:`W_k^\top W_k = W^\top W -
        W_d^\top W_d`: one read of only the dropped rows (a rank-|d| downdate). When more than
        half the samples are dropped, :math:`W_k^\top W_k` is accumulated from the kept rows
        instead, which is cheaper and keeps the subtraction from cancelling. The per-SNP means
        and divisors stay those of the whole Gram, as when an N×N kinship is restricted.
        """
        every = np.arange(self.n_samples)
        rows = every if rows is None else np.asarray(rows, dtype=np.intp)
        kept = np.sort(rows)
        if np.unique(kept).size != kept.size or kept.size == 0:
            raise InputError("the samples of a Gram subset must be distinct and at least one.")
        key = (kept.tobytes(), normalize)
        if key in self._cache:
            return GramSubset(self, rows, self._cache[key].basis)
        if kept.size == self.n_samples:
            wtw = self.wtw
        else:
            dropped = np.setdiff1d(every, kept)
            if dropped.size <= kept.size:
                wtw = np.array(self.wtw, order="F")
                self._accumulate(wtw, dropped, alpha=-1.0)
            else:
                wtw = np.zeros((self.n_snps, self.n_snps), order="F")
                self._accumulate(wtw, kept, alpha=1.0)
            wtw = symmetric_from_upper(wtw)
        basis = spectral_from_gram(wtw, kept.size, normalize=normalize, rtol=DEFAULT_RTOL)
        del wtw
        self._cache.clear()  # one decomposition kept: M² doubles each
        result = GramSubset(self, rows, basis)
        self._cache[key] = result
        return result

    def _accumulate(self, acc: np.ndarray, rows: np.ndarray, alpha: float) -> None:
        """``acc ← acc + alpha · W_rows' W_rows`` in the upper triangle (BLAS syrk, in place)."""
        for _, W in self.blocks(rows):
            out = blas.dsyrk(alpha, W, beta=1.0, c=acc, trans=1, overwrite_c=1)
            if out is not acc:  # (f2py copied a non-Fortran accumulator)
                acc[...] = out


@dataclass(frozen=True, eq=False)
class GramSubset:
    """A :class:`Gram` restricted to the samples of one analysis, with its eigenbasis.

    Attributes
    ----------
    gram : Gram
        The whole Gram (the genotypes are read through it).
    rows : ndarray of int
        Positions of the samples analysed among the Gram's samples, in the data's order.
    basis : LowRank
        Eigenbasis of K = W_k W_k'/M over those samples (normalized as asked).
    """

    gram: Gram
    rows: np.ndarray
    basis: LowRank

    @property
    def s(self) -> np.ndarray:
        """Eigenvalues of the normalized K [shape: (rank,)]."""
        return self.basis.s

    @property
    def scale(self) -> float:
        """Factor K was divided by."""
        return self.basis.scale

    @property
    def n(self) -> int:
        """Number of samples analysed."""
        return self.basis.n

    def rotate_data(self, y: np.ndarray, X: np.ndarray) -> Rotated:
        """Rotate y and X (standardized, in the order of ``rows``): one pass over those rows.

        Returns
        -------
        Rotated
            Equal to :func:`bayeslmm.linalg.spectral.rotate_data` on the N×N K of these samples
            (see :func:`bayeslmm.linalg.spectral.rotate_lowrank`).
        """
        A = np.column_stack([X, y])
        return rotate_lowrank(self.basis, y, X, self.gram.project(A, self.rows))


def symmetric_from_upper(upper: np.ndarray) -> np.ndarray:
    """Fill the lower triangle of a square matrix from its upper one, in place (syrk's output).

    Works in column blocks, so the temporaries are 512 × M, not M × M.
    """
    m, step = upper.shape[0], 512
    for j0 in range(0, m, step):
        j1 = min(j0 + step, m)
        upper[j1:, j0:j1] = upper[j0:j1, j1:].T
        corner = upper[j0:j1, j0:j1]
        corner[...] = np.triu(corner) + np.triu(corner, 1).T
    return upper


def _check_memory(n: int, m: int, chunk: int) -> int:
    need = gram_memory(n, m, chunk)
    have = available_memory()
    log.info(
        "gram: %d samples × %d SNPs: W'W and its decomposition %.3g GB + one block of %d × %d "
        "%.3g GB = %.3g GB (available %.3g GB)",
        n,
        m,
        8 * GRAM_MATRICES * m * m / 1e9,
        min(chunk, n),
        m,
        8 * BLOCK_COPIES * min(chunk, n) * m / 1e9,
        need / 1e9,
        have / 1e9,
    )
    if need > 0.9 * have:
        raise InputError(
            f"the Gram of {m} SNPs over {n} samples needs {need / 1e9:.3g} GB "
            f"({GRAM_MATRICES} {m}×{m} float64 matrices and a block of {min(chunk, n)} samples "
            f"× {m} SNPs) but {have / 1e9:.3g} GB are available. Use fewer model SNPs "
            "(snps=..., e.g. an LD-pruned panel: memory grows as M²), a smaller chunk_size, or "
            "a machine with more memory."
        )
    return need


def _validate(
    genotypes: Any,
    method: str,
    maf: float,
    max_missing: float,
    snps: Index,
    samples: Index,
    chunk_size: Any,
) -> tuple[Genotypes, np.ndarray, np.ndarray, int]:
    if method not in METHODS:
        extra = (
            " GCTA's GRM ('standardized') has a diagonal that is not that of a Gram matrix "
            "(K = WW'/M + a diagonal, of full rank), so it has no low-rank form; use "
            "method='standardized_empirical' (GEMMA -gk 2) or bl.kinship(genotypes)."
            if method == "standardized"
            else ""
        )
        raise InputError(f"unknown Gram method {method!r}; choose one of {METHODS}.{extra}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise InputError(
            f"chunk_size must be a positive integer (samples per block), got {chunk_size!r}."
        )
    if chunk_size < 1:
        raise InputError(
            f"chunk_size must be a positive integer (samples per block), got {chunk_size}."
        )
    if not 0 <= maf < 0.5:
        raise InputError(f"maf must lie in [0, 0.5), got {maf}.")
    if not 0 <= max_missing <= 1:
        raise InputError(f"max_missing must lie in [0, 1], got {max_missing}.")
    genotypes = as_genotypes(genotypes)
    snp_idx = as_index(snps, genotypes.n_snps, "SNPs")
    sample_idx = as_index(samples, genotypes.n_samples, "samples")
    if np.unique(sample_idx).size != sample_idx.size:
        raise InputError("samples lists a sample more than once; give each position once.")
    if sample_idx.size < 2:
        raise InputError(f"a Gram needs at least 2 samples, got {sample_idx.size}.")
    if snp_idx.size == 0:
        raise InputError("no SNP selected (snps=... is empty).")
    return genotypes, snp_idx, sample_idx, int(chunk_size)


def _statistics(
    genotypes: Genotypes,
    snp_idx: np.ndarray,
    sample_idx: np.ndarray,
    width: int,
    method: str,
    maf: float,
    max_missing: float,
    qc: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First pass, SNP blocks of every sample: QC, the means (2p) and the divisors."""
    n = sample_idx.size
    used, centers, spreads = [], [], []
    for block_idx, block in genotypes.chunks(width, snp_idx, sample_idx):
        block = np.asfortranarray(block, dtype=float)
        block, keep, p, _ = prepare_block(block, maf, max_missing, qc)
        if keep.size == 0:
            continue
        used.append(block_idx[keep])
        centers.append(2 * p)
        if method == "standardized_empirical":  # as bl.kinship: sd of the imputed calls
            spreads.append(np.sqrt(np.einsum("ij,ij->j", block, block) / n))
        else:
            spreads.append(np.ones(keep.size))
        del block
    if not used:
        return np.empty(0, np.intp), np.empty(0), np.empty(0)
    return np.concatenate(used), np.concatenate(centers), np.concatenate(spreads)


def gram(
    genotypes: Any,
    method: str = "standardized_empirical",
    *,
    snps: Index = None,
    samples: Index = None,
    maf: float = 0.0,
    max_missing: float = 1.0,
    autosomes_only: bool = True,
    chunk_size: int = DEFAULT_CHUNK,
) -> Gram:
    r"""The Gram W'W of the standardized model SNPs, streamed in blocks (K = WW'/M, never N×N).

    Parameters
    ----------
    genotypes : Genotypes or ndarray or DataFrame
        From :func:`bayeslmm.read_plink` (read lazily) / :func:`bayeslmm.read_bimbam`, or
        allele counts [shape: (n_samples, n_snps)], NaN = missing (a DataFrame's index gives the
        sample IDs, as in :func:`bayeslmm.kinship`).
    method : {"standardized_empirical", "centered"}
        The kinship K = WW'/M stands for: that of ``bl.kinship(genotypes, method)``.
    snps, samples
        Restrict to these SNP / sample positions (the model SNPs: M should be well below N,
        e.g. an LD-pruned panel).
    maf, max_missing, autosomes_only
        Quality control, as in :func:`bayeslmm.kinship` (``qc`` counts the SNPs dropped).
    chunk_size : int
        Samples per block in the streamed passes; the first pass reads SNP blocks of the same
        size (about ``chunk_size × M`` genotypes).

    Returns
    -------
    Gram
        Accepted by :func:`bayeslmm.reml` in place of K; several phenotypes reuse it.

    Raises
    ------
    InputError
        Bad arguments, no SNP passing QC, or not enough memory (the message says what fits).

    Notes
    -----
    Two passes over the genotypes. The first reads SNP blocks of every sample and applies the
    QC, mean imputation and centring of :func:`bayeslmm.kinship` (missing calls set to 2p),
    keeping per SNP :math:`2p_j` and the divisor :math:`d_j` (the SD of the imputed calls, or
    1). The second reads sample blocks :math:`W_b` of every kept SNP, standardizes them with
    those numbers and accumulates :math:`W^\top W = \sum_b W_b^\top W_b` (BLAS ``syrk``), so
    memory is :func:`gram_memory`: O(M² + one block), stated in the log before the work starts
    and checked against the memory available. Cost O(N·M²) flops.
    Then :math:`K = WW^\top/M` equals ``bl.kinship(genotypes, method).matrix`` and a phenotype
    is rotated with :math:`U^\top a = \operatorname{diag}(s)^{-1/2}V^\top(W^\top a)/\sqrt{Mc}`
    (:class:`~bayeslmm.linalg.spectral.LowRank`): one O(N·M) pass per phenotype.

    Examples
    --------
    >>> import bayeslmm as bl
    >>> data = bl.simulate(600, 200, h2=0.5, seed=1)
    >>> fit = bl.reml(data.y, bl.gram(data.G))  # K = bl.kinship(data.G, "standardized_empirical")
    """
    genotypes, snp_idx, sample_idx, chunk = _validate(
        genotypes, method, maf, max_missing, snps, samples, chunk_size
    )
    n = sample_idx.size
    chrom = normalize_chromosomes(genotypes.snps["chrom"])
    qc: dict[str, int] = {"snps_in": int(snp_idx.size)}
    if autosomes_only:
        inside = in_kinship(chrom[snp_idx])
        if not inside.all():
            qc["non_autosomal"] = int((~inside).sum())
        if not inside.any():
            raise InputError(
                f"all {snp_idx.size} SNPs are on X, Y, XY, MT or contigs, which kinships leave "
                "out by default (as GCTA); pass autosomes_only=False to use them."
            )
        snp_idx = snp_idx[inside]
    qc.update(all_missing=0, monomorphic=0, missingness=0, maf=0)
    _check_memory(n, snp_idx.size, chunk)
    width = max(1, min(snp_idx.size, chunk * snp_idx.size // n))
    used, center, spread = _statistics(
        genotypes, snp_idx, sample_idx, width, method, maf, max_missing, qc
    )
    qc["used"] = int(used.size)
    if used.size == 0:
        raise InputError(f"no SNP passed quality control ({qc}); relax maf / max_missing.")
    result = Gram(
        wtw=np.zeros((used.size, used.size), order="F"),
        samples=np.asarray(genotypes.samples)[sample_idx],
        snps=genotypes.snps.iloc[used].reset_index(drop=True),
        center=center,
        spread=spread,
        method=method,
        qc=qc,
        chunk_size=chunk,
        genotypes=genotypes,
        sample_index=sample_idx,
        snp_index=used,
        fid=genotypes.fam["fid"].to_numpy(dtype=str)[sample_idx],
    )
    result._accumulate(result.wtw, np.arange(n), alpha=1.0)
    symmetric_from_upper(result.wtw)
    log.info("gram %s: %s", method, qc)
    return result
