"""The Gram W'W of the model SNPs, streamed from genotypes: K = WW'/M without an N×N matrix.

With M < N model SNPs, everything the Gaussian LMM needs is in the M×M Gram W'W and in W'y, W'X
(DESIGN §6, "Large cohorts"). :func:`gram` reads the genotypes in blocks, never holding more than
one block of them as float64, and returns a :class:`Gram` that rotates any phenotype later with
one more streamed pass (:meth:`Gram.subset`, :meth:`GramSubset.rotate_data`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import blas

from bayeslmm.errors import InputError
from bayeslmm.io import DEFAULT_CHUNK, Genotypes, Index, as_index, normalize_chromosomes
from bayeslmm.io.plink_codes import (
    BedFile,
    Codebook,
    block_starts,
    code_counts,
    decode,
    moments,
    value_table,
)
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
class SnpReader:
    r"""Standardized genotypes of some SNPs, read by blocks of samples.

    From a PLINK .bed (``bed`` set) only the bytes of each block are read and decoded straight
    into standardized values (:mod:`bayeslmm.io.plink_codes`); the reader is then a path,
    positions and two vectors, so a dask task receives it and reads its own slice of the file.
    Otherwise blocks come from ``genotypes.read`` (genotypes held in memory).

    Attributes
    ----------
    snps : ndarray of int
        Positions of the SNPs in the file (the columns of every block, in this order).
    center : ndarray
        Subtracted from the allele counts, per SNP (2p) [shape: (k,)].
    spread : ndarray or None
        Divisor per SNP [shape: (k,)]; None: none.
    bed : BedFile or None
        The .bed read through its raw codes.
    genotypes : Genotypes or None
        Read through when ``bed`` is None.

    Notes
    -----
    A block is :math:`W_{ij} = (x_{ij} - c_j)/d_j` with missing calls 0 (the mean), computed
    with the same floating-point operations whichever way it is read.
    """

    snps: np.ndarray
    center: np.ndarray
    spread: np.ndarray | None
    bed: BedFile | None = None
    genotypes: Genotypes | None = field(default=None, repr=False)

    @property
    def n_snps(self) -> int:
        """Number of SNPs (columns of a block)."""
        return self.snps.size

    def columns(self, cols: np.ndarray) -> SnpReader:
        """The reader of some of the SNPs, in the order of ``cols``."""
        spread = None if self.spread is None else self.spread[cols]
        return SnpReader(self.snps[cols], self.center[cols], spread, self.bed, self.genotypes)

    def codebook(self, block_samples: int) -> Codebook:
        """The decoding table of these SNPs for blocks of ``block_samples`` samples."""
        return Codebook.build(value_table(self.center, self.spread), block_samples)

    def block(
        self, positions: np.ndarray, book: Codebook | None = None, extra: np.ndarray | None = None
    ) -> np.ndarray:
        """W of the samples at ``positions`` of the file, in that order [shape: (len, k)].

        Parameters
        ----------
        positions : ndarray of int
            Sample positions in the file; increasing ones read fastest (a .bed is then read as
            the bytes between the first and the last).
        book : Codebook, optional
            From :meth:`codebook` (built here when None).
        extra : ndarray, optional
            Columns to append, rows in the order of ``positions`` [shape: (len, e)].

        Returns
        -------
        ndarray
            Column-major [shape: (len, k + e)]: W, then ``extra`` (one GEMM then gives W'G
            and extra'G together).
        """
        positions = np.asarray(positions, dtype=np.intp)
        e = 0 if extra is None else extra.shape[1]
        out = np.empty((positions.size, self.n_snps + e), order="F")
        if e:
            out[:, self.n_snps :] = extra
        W = out[:, : self.n_snps]
        if self.bed is None:
            W[...] = self.genotypes.read(self.snps, positions)
            missing = np.isnan(W)
            W -= self.center
            if self.spread is not None:
                W /= self.spread
            W[missing] = 0.0
            return out
        if positions.size == 0:
            return out
        b0, b1 = int(positions.min()) // 4, int(positions.max()) // 4 + 1
        codes = self.bed.read(self.snps, b0, b1)
        book = self.codebook(positions.size) if book is None else book
        decode(codes, book, positions - 4 * b0, out=W)
        return out

    def blocks(
        self,
        positions: np.ndarray,
        size: int,
        book: Codebook | None = None,
        extra: np.ndarray | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start, W of the next block of ``positions``), one block at a time.

        Blocks hold ``size`` samples, or for a .bed read a run of consecutive samples, about
        ``size`` on byte boundaries (:func:`bayeslmm.io.plink_codes.block_starts`). With
        ``extra`` [shape: (len(positions), e)] its rows of the block follow W as e more
        columns (see :meth:`block`).
        """
        positions = np.asarray(positions, dtype=np.intp)

        def rows(a: int, b: int) -> np.ndarray | None:
            return None if extra is None else extra[a:b]

        if self.bed is None:
            for start in range(0, positions.size, size):
                stop = start + size
                yield start, self.block(positions[start:stop], book, rows(start, stop))
            return
        starts = block_starts(positions, size)
        stops = np.r_[starts[1:], positions.size]
        book = self.codebook(min(size, positions.size)) if book is None else book
        # the bytes of several blocks read at once (one pread per SNP): up to 2·size bytes a
        # SNP, a quarter of what one decoded block takes, so ~8 times fewer calls
        budget = 2 * size
        first = 0
        while first < starts.size:
            b0 = int(positions[starts[first] : stops[first]].min()) // 4
            last, b1 = first, int(positions[starts[first] : stops[first]].max()) // 4 + 1
            while last + 1 < starts.size:
                part = positions[starts[last + 1] : stops[last + 1]]
                lo, hi = int(part.min()) // 4, int(part.max()) // 4 + 1
                if min(lo, b0) < b0 or max(hi, b1) - b0 > budget:
                    break
                last, b1 = last + 1, max(hi, b1)
            codes = self.bed.read(self.snps, b0, b1)
            for i in range(first, last + 1):
                a, b = int(starts[i]), int(stops[i])
                e = 0 if extra is None else extra.shape[1]
                out = np.empty((b - a, self.n_snps + e), order="F")
                if e:
                    out[:, self.n_snps :] = extra[a:b]
                decode(codes, book, positions[a:b] - 4 * b0, out=out[:, : self.n_snps])
                yield a, out
            first = last + 1


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

    @property
    def bed(self) -> BedFile | None:
        """The PLINK .bed the genotypes are read from (through its raw codes), or None."""
        return BedFile.of(self.genotypes)

    def reader(self, columns: np.ndarray | None = None) -> SnpReader:
        """A :class:`SnpReader` of the standardized model SNPs (of ``columns`` of them).

        For a PLINK file it is picklable: dask tasks receive it and read their own blocks.
        """
        bed = self.bed
        reader = SnpReader(
            self.snp_index,
            self.center,
            self.spread,
            bed,
            None if bed is not None else self.genotypes,
        )
        return reader if columns is None else reader.columns(np.asarray(columns, dtype=np.intp))

    def blocks(self, rows: np.ndarray, size: int | None = None) -> Any:
        """Yield (start, W of the next rows), standardized, one block at a time.

        Parameters
        ----------
        rows : ndarray of int
            Positions among the Gram's samples, in the order wanted.
        size : int, optional
            Samples per block [default: the Gram's ``chunk_size``].

        Yields
        ------
        start : int
            Offset of the block in ``rows``.
        W : ndarray
            Standardized genotypes, missing calls 0 (the mean), column-major
            [shape: (block, n_snps)]: ``chunk_size`` samples, or about as many on byte
            boundaries of a .bed (:meth:`SnpReader.blocks`).
        """
        rows = np.asarray(rows, dtype=np.intp)
        size = self.chunk_size if size is None else max(1, int(size))
        yield from self.reader().blocks(self.sample_index[rows], size)

    def sorted_rows(self, rows: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
        """``rows`` ordered as their samples are in the file: (order, positions in the file).

        Sums over samples (W'A, W'W) do not depend on their order, and a .bed is read fastest
        in file order: ``rows[order]`` are at the increasing file positions returned (``order``
        is None when ``rows`` already are in file order).
        """
        rows = np.arange(self.n_samples) if rows is None else np.asarray(rows, dtype=np.intp)
        positions = self.sample_index[rows]
        if positions.size < 2 or bool(np.all(positions[1:] >= positions[:-1])):
            return None, positions
        order = np.argsort(positions, kind="stable")
        return order, positions[order]

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
        positions, A = self._in_file_order(A, rows)
        return project_part(self.reader(), positions, A, self.chunk_size)

    def _in_file_order(
        self, A: np.ndarray, rows: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The file positions of ``rows`` in increasing order, and A's rows in that order."""
        order, positions = self.sorted_rows(rows)
        A = np.asarray(A, dtype=float).reshape(positions.size, -1)
        return positions, (A if order is None else A[order])

    def submit_project(self, client: Any, A: np.ndarray, rows: np.ndarray | None = None) -> Any:
        """:meth:`project` as dask tasks: a future of ``W.T @ A``, left on the workers.

        The samples are split in ``2 × threads`` parts of whole blocks; each task reads its
        own rows of the .bed (:func:`project_part`) and the parts are summed in a tree
        (:func:`tree_sum`). Tasks that need ``W'A`` take the future; the client does no pass.
        """
        if self.bed is None:
            raise InputError(
                "the W'A pass runs on dask workers only for genotypes read from a PLINK .bed; "
                "use Gram.project on this machine for genotypes in memory"
            )
        positions, A = self._in_file_order(A, rows)
        reader = client.scatter(self.reader(), broadcast=True)
        futures = [
            client.submit(
                project_part, reader, positions[part], A[part], self.chunk_size, pure=False
            )
            for part in split_evenly(positions.size, 2 * n_workers(client), self.chunk_size)
        ]
        return tree_sum(client, futures, gather=False)

    def cross(self, rows: np.ndarray | None = None) -> np.ndarray:
        r"""W'W over the samples ``rows`` only, both triangles [shape: (n_snps, n_snps)].

        Parameters
        ----------
        rows : ndarray of int, optional
            Positions among the Gram's samples (any order, each once); None: all (``wtw``
            itself, not a copy).

        Returns
        -------
        ndarray

        Notes
        -----
        Dropping samples d from the Gram leaves :math:`W_k^\top W_k = W^\top W -
        W_d^\top W_d`: one read of only the dropped rows (a rank-|d| downdate). When more than
        half the samples are dropped, :math:`W_k^\top W_k` is accumulated from the kept rows
        instead, which is cheaper and keeps the subtraction from cancelling.
        """
        every = np.arange(self.n_samples)
        kept = every if rows is None else np.sort(np.asarray(rows, dtype=np.intp))
        if kept.size == self.n_samples:
            return self.wtw
        dropped = np.setdiff1d(every, kept)
        if dropped.size <= kept.size:
            wtw = np.array(self.wtw, order="F")
            self._accumulate(wtw, dropped, alpha=-1.0)
        else:
            wtw = np.zeros((self.n_snps, self.n_snps), order="F")
            self._accumulate(wtw, kept, alpha=1.0)
        return symmetric_from_upper(wtw)

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
        W'W of the samples kept comes from :meth:`cross` (a downdate by the rows dropped).
        The per-SNP means and divisors stay those of the whole Gram, as when an N×N kinship
        is restricted.
        """
        every = np.arange(self.n_samples)
        rows = every if rows is None else np.asarray(rows, dtype=np.intp)
        kept = np.sort(rows)
        if np.unique(kept).size != kept.size or kept.size == 0:
            raise InputError("the samples of a Gram subset must be distinct and at least one.")
        key = (kept.tobytes(), normalize)
        if key in self._cache:
            return GramSubset(self, rows, self._cache[key].basis)
        wtw = self.cross(kept)
        basis = spectral_from_gram(wtw, kept.size, normalize=normalize, rtol=DEFAULT_RTOL)
        del wtw
        self._cache.clear()  # one decomposition kept: M² doubles each
        result = GramSubset(self, rows, basis)
        self._cache[key] = result
        return result

    def _accumulate(self, acc: np.ndarray, rows: np.ndarray, alpha: float) -> None:
        """``acc ← acc + alpha · W_rows' W_rows`` in the upper triangle (BLAS syrk, in place)."""
        _, positions = self.sorted_rows(rows)
        accumulate_syrk(acc, self.reader(), positions, self.chunk_size, alpha)


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


def accumulate_syrk(
    acc: np.ndarray, reader: SnpReader, positions: np.ndarray, size: int, alpha: float = 1.0
) -> np.ndarray:
    """``acc ← acc + alpha · W'W`` over the samples at ``positions``, upper triangle (syrk).

    Parameters
    ----------
    acc : ndarray
        Column-major accumulator [shape: (k, k)], updated in place (and returned).
    reader : SnpReader
        The standardized SNPs.
    positions : ndarray of int
        Sample positions in the file (increasing ones read fastest).
    size : int
        Samples per block.
    alpha : float
        +1 to add, -1 to remove (a downdate).

    Returns
    -------
    ndarray
        ``acc``.
    """
    for _, W in reader.blocks(positions, size):
        out = blas.dsyrk(alpha, W, beta=1.0, c=acc, trans=1, overwrite_c=1)
        if out is not acc:  # (f2py copied a non-Fortran accumulator)
            acc[...] = out
    return acc


def gram_part(reader: SnpReader, positions: np.ndarray, size: int) -> np.ndarray:
    """W'W over some samples, upper triangle: one task of :func:`gram` on dask.

    Parameters
    ----------
    reader : SnpReader
        The model SNPs (a .bed reader: the task reads its own blocks of the file).
    positions : ndarray of int
        Sample positions in the file of this part.
    size : int
        Samples per block.

    Returns
    -------
    ndarray
        [shape: (k, k)], column-major, the lower triangle zero.
    """
    acc = np.zeros((reader.n_snps, reader.n_snps), order="F")
    return accumulate_syrk(acc, reader, positions, size)


def project_part(reader: SnpReader, positions: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """W'A over some samples, streamed by blocks: :meth:`Gram.project`, or one dask task of it.

    Parameters
    ----------
    reader : SnpReader
        The model SNPs.
    positions : ndarray of int
        Sample positions in the file, increasing.
    A : ndarray
        Vectors over those samples, in that order [shape: (len(positions), k)].
    size : int
        Samples per block.

    Returns
    -------
    ndarray
        [shape: (n_snps, k)].
    """
    out = np.zeros((reader.n_snps, A.shape[1]))
    for start, W in reader.blocks(positions, size):
        out += W.T @ A[start : start + W.shape[0]]
    return out


def add_parts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` in place in ``a``: one node of the tree that sums the parts of a Gram."""
    a += b
    return a


def bed_counts(bed: BedFile, snps: np.ndarray, positions: np.ndarray | None) -> np.ndarray:
    """Code counts of some SNPs over the samples at ``positions`` (None: all): a dask task.

    Returns
    -------
    ndarray
        [shape: (len(snps), 4)], as :func:`bayeslmm.io.plink_codes.code_counts`.
    """
    return code_counts(bed.read(snps), bed.n_samples, positions)


def tree_sum(client: Any, futures: list[Any], *, gather: bool = True) -> Any:
    """Sum dask futures pairwise on the workers (a tree of depth log2 of their number).

    Parameters
    ----------
    client : dask.distributed.Client
    futures : list of Future
        Arrays of one shape (each is consumed: summed in place).
    gather : bool
        Return the sum itself (True) or its future, left on the workers (False).

    Returns
    -------
    ndarray or Future
        The sum.
    """
    while len(futures) > 1:
        pairs = [
            client.submit(add_parts, futures[i], futures[i + 1], pure=False)
            for i in range(0, len(futures) - 1, 2)
        ]
        futures = pairs + futures[len(pairs) * 2 :]
    return futures[0].result() if gather else futures[0]


def split_evenly(n: int, parts: int, multiple: int) -> list[slice]:
    """``parts`` consecutive slices of range(n), of lengths that are multiples of ``multiple``.

    The lengths differ by at most ``multiple`` (and the last takes the remainder), so tasks of
    whole blocks get about the same work.
    """
    blocks = -(-n // multiple)
    parts = max(1, min(parts, blocks))
    edges = [min(n, multiple * (blocks * k // parts)) for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def n_workers(client: Any) -> int:
    """Threads of the cluster behind a dask client (at least 1)."""
    return max(1, int(sum(client.nthreads().values())))


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


def screen(
    counts: np.ndarray, n: int, maf: float, max_missing: float, qc: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QC, means and sums of squares of SNPs from their code counts (a .bed's first pass).

    Parameters
    ----------
    counts : ndarray
        :func:`bayeslmm.io.plink_codes.code_counts` over the n samples [shape: (k, 4)].
    n : int
        Number of samples.
    maf, max_missing : float
        As in :func:`bayeslmm.kinship`.
    qc : dict
        Counts of dropped SNPs by reason, incremented in place.

    Returns
    -------
    keep : ndarray of int
        Positions of the SNPs kept.
    mean : ndarray
        Their mean allele count 2p.
    sum_sq : ndarray
        Their sum of squares about the mean after mean imputation.

    Notes
    -----
    The rules and their order are those of :func:`bayeslmm.relatedness.grm.prepare_block`,
    which works on float genotypes; from counts the mean is the same number to the last bit
    and the sum of squares agrees to rounding.
    """
    count, mean, sum_sq = moments(counts)
    p = mean / 2
    reasons = {
        "all_missing": count == 0,
        "monomorphic": (count > 0) & (sum_sq <= 1e-12 * n),
        "missingness": (count > 0) & (1 - count / n > max_missing),
        "maf": (count > 0) & (np.minimum(p, 1 - p) < maf),
    }
    drop = np.zeros(count.size, bool)
    for reason, mask in reasons.items():
        qc[reason] += int((mask & ~drop).sum())
        drop |= mask
    keep = np.flatnonzero(~drop)
    return keep, mean[keep], sum_sq[keep]


def _bed_statistics(
    bed: BedFile,
    snp_idx: np.ndarray,
    sample_idx: np.ndarray,
    width: int,
    method: str,
    maf: float,
    max_missing: float,
    qc: dict[str, int],
    client: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First pass over a .bed: code counts of SNP blocks (raw bytes, on dask when given)."""
    n = sample_idx.size
    positions = None if np.array_equal(sample_idx, np.arange(bed.n_samples)) else sample_idx
    starts = range(0, snp_idx.size, width)
    if client is not None:
        futures = [
            client.submit(bed_counts, bed, snp_idx[a : a + width], positions, pure=False)
            for a in starts
        ]
        counts = np.concatenate([f.result() for f in futures]) if futures else np.empty((0, 4))
    else:
        counts = np.concatenate(
            [bed_counts(bed, snp_idx[a : a + width], positions) for a in starts]
        )
    keep, mean, sum_sq = screen(counts, n, maf, max_missing, qc)
    if method == "standardized_empirical":  # as bl.kinship: sd of the imputed calls
        spread = np.sqrt(sum_sq / n)
    else:
        spread = np.ones(keep.size)
    return snp_idx[keep], mean, spread


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
    client: Any = None,
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
    client : dask.distributed.Client, optional
        Run both passes as tasks on its workers: each reads its own part of the PLINK file
        (a path and positions are sent, never genotypes) and the parts of W'W are summed in a
        tree on the workers. The same Gram as without it, to rounding (the sum is taken in
        another order). Genotypes held in memory are processed here.

    Returns
    -------
    Gram
        Accepted by :func:`bayeslmm.reml` and :func:`bayeslmm.scan` in place of K; several
        phenotypes reuse it.

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

    From a PLINK .bed each pass reads every byte of the model SNPs once: the first counts the
    2-bit codes of whole SNP rows (no float genotypes: mean, calls and sum of squares follow
    from the four counts), the second reads, for each block of samples, only the bytes holding
    them (one ``pread`` per SNP) and decodes them by table look-up straight into
    standardized values (:mod:`bayeslmm.io.plink_codes`), the same numbers to the last bit as
    standardizing float allele counts. The syrk is then ~90 % of the time (measured at
    N = 100,000, M = 2,000).
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
    bed = BedFile.of(genotypes)
    if bed is not None:
        used, center, spread = _bed_statistics(
            bed, snp_idx, sample_idx, width, method, maf, max_missing, qc, client
        )
    else:
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
    if client is not None and bed is not None:
        _, positions = result.sorted_rows()
        parts = split_evenly(positions.size, 2 * n_workers(client), chunk)
        reader = client.scatter(result.reader(), broadcast=True)
        futures = [
            client.submit(gram_part, reader, positions[part], chunk, pure=False) for part in parts
        ]
        result.wtw[...] = tree_sum(client, futures)
    else:
        result._accumulate(result.wtw, np.arange(n), alpha=1.0)
    symmetric_from_upper(result.wtw)
    log.info("gram %s: %s", method, qc)
    return result
