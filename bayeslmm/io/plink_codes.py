"""PLINK .bed 2-bit codes: the raw bytes of SNP × sample ranges, decoded by table look-up.

A SNP-major .bed stores each SNP as ⌈N/4⌉ bytes, four samples to a byte, the first sample in
the lowest two bits: ``00`` = two copies of a1 (the .bim's first allele), ``01`` = missing,
``10`` = one copy, ``11`` = none. bed-reader turns a rectangle into float64 allele counts; the
streamed Gram and the scan with a Gram (DESIGN §6, "Large cohorts") instead read only the bytes
of the block they need, one ``pread`` per SNP, and decode them with a table of per-SNP values,
so that a block comes out centred, scaled and mean-imputed in one pass. A :class:`BedFile` is
a name and two counts, so dask tasks receive it and read their own slice of the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayeslmm.errors import InputError

#: Bytes before the first SNP: the magic number and the SNP-major flag.
HEADER_BYTES = 3

#: Allele count of a1 for each 2-bit code (NaN: missing).
CODE_DOSAGE = np.array([2.0, np.nan, 1.0, 0.0])

#: The four 2-bit codes of each byte value, first sample first [shape: (256, 4)].
BYTE_CODES = ((np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3).astype(np.uint8)

#: How many times each code occurs in each byte value [shape: (256, 4)].
BYTE_COUNTS = np.stack([(BYTE_CODES == c).sum(axis=1) for c in range(4)], axis=1)

#: Elements of the integer index arrays made at once (SNP sub-blocks keep them this small).
INDEX_ELEMENTS = 1 << 16

#: Samples per block from which :class:`Codebook` keeps the per-byte table of every SNP
#: (8 KiB per SNP, then no more than one decoded block of 8 bytes × samples per SNP).
CACHE_FROM = 1024


@dataclass(frozen=True)
class BedFile:
    """A SNP-major PLINK .bed known by its path and shape; picklable (tasks reopen it).

    Attributes
    ----------
    path : str
        The ``.bed`` file.
    n_samples, n_snps : int
        Samples (.fam lines) and SNPs (.bim lines).
    """

    path: str
    n_samples: int
    n_snps: int

    @classmethod
    def of(cls, genotypes: Any) -> BedFile | None:
        """The .bed behind a :class:`~bayeslmm.io.Genotypes` from ``read_plink``, else None."""
        source = Path(str(getattr(genotypes, "source", "")))
        if source.suffix != ".bed" or not source.is_file():
            return None
        bed = cls(str(source), int(genotypes.n_samples), int(genotypes.n_snps))
        if source.stat().st_size != HEADER_BYTES + bed.n_snps * bed.row_bytes:
            return None
        return bed

    @property
    def row_bytes(self) -> int:
        """Bytes per SNP, ⌈N/4⌉."""
        return (self.n_samples + 3) // 4

    def read(self, snps: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Bytes ``start:stop`` of the rows of ``snps`` [shape: (len(snps), stop - start)].

        Parameters
        ----------
        snps : ndarray of int
            SNP positions in the file, in the order wanted.
        start, stop : int
            Byte range within each SNP's row (samples ``4·start`` to ``4·stop - 1``); default
            the whole row.

        Returns
        -------
        ndarray of uint8
            The raw codes. Whole rows of consecutive SNPs are read with one call, a part of a
            row with one ``pread`` per SNP: the bytes read are exactly those returned.
        """
        snps = np.asarray(snps, dtype=np.intp).ravel()
        stop = self.row_bytes if stop is None else int(stop)
        out = np.empty((snps.size, stop - start), dtype=np.uint8)
        if out.size == 0:
            return out
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if start == 0 and stop == self.row_bytes:
                breaks = np.flatnonzero(np.diff(snps) != 1) + 1
                for a, b in zip(np.r_[0, breaks], np.r_[breaks, snps.size], strict=True):
                    offset = HEADER_BYTES + int(snps[a]) * self.row_bytes
                    self._pread(fd, out[a:b].reshape(-1), offset)
            else:
                for i, j in enumerate(snps):
                    self._pread(fd, out[i], HEADER_BYTES + int(j) * self.row_bytes + start)
        finally:
            os.close(fd)
        return out

    def _pread(self, fd: int, buffer: np.ndarray, offset: int) -> None:
        view = memoryview(buffer).cast("B")
        while len(view):
            got = os.preadv(fd, [view], offset)
            if got <= 0:
                raise InputError(
                    f"{self.path} ended before byte {offset}; the file changed after it was "
                    "opened (re-open it with bl.read_plink)."
                )
            view, offset = view[got:], offset + got


def value_table(center: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
    """The value each code stands for, per SNP [shape: (k, 4)].

    Parameters
    ----------
    center : ndarray
        Per-SNP value subtracted from the allele count (2p) [shape: (k,)].
    spread : ndarray, optional
        Per-SNP divisor [shape: (k,)]; None: no division.

    Returns
    -------
    ndarray
        ``(x - center) / spread`` for x = 2, 1, 0 at codes 00, 10, 11, and 0 (the mean) at the
        missing code 01: the arithmetic of ``(G - center) / spread`` on float allele counts,
        so the decoded values are the same numbers to the last bit.
    """
    center = np.asarray(center, dtype=float)
    table = np.zeros((center.size, 4))
    for code in (0, 2, 3):
        table[:, code] = CODE_DOSAGE[code] - center
        if spread is not None:
            table[:, code] /= spread
    return table


@dataclass(frozen=True, eq=False)
class Codebook:
    """A :func:`value_table` with, for long blocks, its per-byte expansion precomputed.

    Attributes
    ----------
    table : ndarray
        [shape: (k, 4)].
    byte_values : ndarray or None
        ``table[:, BYTE_CODES]`` [shape: (k·256, 4)] when kept (blocks of at least
        :data:`CACHE_FROM` samples); else each decode builds it for a few SNPs at a time.
    """

    table: np.ndarray
    byte_values: np.ndarray | None = None

    @classmethod
    def build(cls, table: np.ndarray, block_samples: int) -> Codebook:
        """Keep the per-byte expansion when blocks have at least :data:`CACHE_FROM` samples."""
        table = np.ascontiguousarray(table, dtype=float)
        keep = block_samples >= CACHE_FROM
        return cls(table, table[:, BYTE_CODES].reshape(-1, 4) if keep else None)

    @property
    def n_snps(self) -> int:
        """Number of SNPs (k)."""
        return self.table.shape[0]

    def columns(self, cols: np.ndarray) -> Codebook:
        """The codebook of some of the SNPs, in the order of ``cols``."""
        table = self.table[cols]
        if self.byte_values is None:
            return Codebook(table)
        byte_values = self.byte_values.reshape(-1, 256, 4)[cols].reshape(-1, 4)
        return Codebook(table, byte_values)


def decode(
    codes: np.ndarray, book: Codebook, positions: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Values of the samples at ``positions`` of SNP rows of codes, as a block.

    Parameters
    ----------
    codes : ndarray of uint8
        Raw bytes, one row per SNP, the first field of byte 0 being sample 0
        [shape: (k, n_bytes)].
    book : Codebook
        Values of the codes for these k SNPs.
    positions : ndarray of int
        Samples wanted, counted from the first field of byte 0, in the order wanted.
    out : ndarray, optional
        Where to write the values: column-major [shape: (len(positions), k)], e.g. the first
        k columns of a column-major block with more.

    Returns
    -------
    ndarray
        [shape: (len(positions), k)], column-major (each SNP contiguous, as BLAS wants it):
        ``out`` when given.

    Notes
    -----
    Increasing positions that fill at least half of the bytes they span are decoded a byte at
    a time: one look-up of the byte's four values in the SNP's 256 × 4 table
    (:class:`Codebook`), straight into the result when the positions are whole bytes, else
    into a scratch block from which they are taken. Any other set of samples takes the 2-bit
    field of each and one look-up in the SNP's 4 values. The integer indices of the look-ups
    are made for a few SNPs at a time (:data:`INDEX_ELEMENTS`).
    """
    positions = np.asarray(positions, dtype=np.intp).ravel()
    k, n = codes.shape[0], positions.size
    if out is None:
        out = np.empty((k, n))
    else:
        out = out.T
        if out.shape != (k, n) or not out.flags.c_contiguous:
            raise ValueError(f"out must be column-major of shape ({n}, {k}).")
    if k == 0 or n == 0:
        return out.T
    first, last = int(positions[0]), int(positions[-1])
    span = last - first + 1
    if span <= 2 * n and (n == 1 or bool(np.all(np.diff(positions) > 0))):
        b0, b1 = first // 4, last // 4 + 1
        if span == n and first % 4 == 0 and n == 4 * (b1 - b0):
            _decode_bytes(codes[:, b0:b1], book, out.reshape(k, b1 - b0, 4))
            return out.T
        scratch = np.empty((k, b1 - b0, 4))
        _decode_bytes(codes[:, b0:b1], book, scratch)
        scratch = scratch.reshape(k, -1)
        if span == n:
            out[...] = scratch[:, first - 4 * b0 : first - 4 * b0 + n]
        else:
            np.take(scratch, positions - 4 * b0, axis=1, out=out, mode="clip")
        return out.T
    step = max(1, INDEX_ELEMENTS // n)
    byte = positions >> 2
    shift = ((positions & 3) << 1).astype(np.uint8)
    flat = book.table.ravel()
    for j0 in range(0, k, step):
        j1 = min(j0 + step, k)
        index = ((codes[j0:j1][:, byte] >> shift) & 3).astype(np.intp)
        index += (np.arange(j0, j1, dtype=np.intp) * 4)[:, None]
        np.take(flat, index, out=out[j0:j1], mode="clip")  # (in range: "clip" is unbuffered)
        del index
    return out.T


def _decode_bytes(codes: np.ndarray, book: Codebook, out: np.ndarray) -> None:
    """out[j, b, :] = the four values of byte ``codes[j, b]`` of SNP j [out: (k, n_bytes, 4)]."""
    k, width = codes.shape
    step = max(1, INDEX_ELEMENTS // max(width, 1))
    if book.byte_values is None:  # tables built here: a quarter of the values decoded at most
        step = max(1, min(step, k * width // 1024))
    for j0 in range(0, k, step):
        j1 = min(j0 + step, k)
        if book.byte_values is not None:
            values = book.byte_values
            base = np.arange(j0, j1, dtype=np.intp) * 256
        else:
            values = book.table[j0:j1][:, BYTE_CODES].reshape(-1, 4)
            base = np.arange(j1 - j0, dtype=np.intp) * 256
        index = codes[j0:j1].astype(np.intp)
        index += base[:, None]
        np.take(values, index, axis=0, out=out[j0:j1], mode="clip")
        del values, index


def block_starts(positions: np.ndarray, size: int) -> np.ndarray:
    """Where blocks of about ``size`` samples start in ``positions``, on byte boundaries.

    For a run of consecutive positions (all samples of a file, or a range of them) the blocks
    after the first start at a multiple of 4 and hold a multiple of 4 samples (``size`` rounded
    down), so that :func:`decode` writes them straight from whole bytes; otherwise every
    ``size`` positions.

    Returns
    -------
    ndarray of int
        Increasing offsets into ``positions``, starting at 0 [shape: (n_blocks,)].
    """
    n = positions.size
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    first = int(positions[0])
    if size < 4 or int(positions[-1]) - first + 1 != n or not np.all(np.diff(positions) == 1):
        return np.arange(0, n, size)
    step = size - size % 4
    edges = np.arange(first - first % 4 + step, first + n, step) - first
    return np.r_[0, edges[edges > 0]].astype(np.intp)


def code_counts(
    codes: np.ndarray, n_samples: int, positions: np.ndarray | None = None
) -> np.ndarray:
    """How many of the samples carry each code, per SNP [shape: (k, 4)].

    Parameters
    ----------
    codes : ndarray of uint8
        Whole SNP rows [shape: (k, ⌈n_samples/4⌉)].
    n_samples : int
        Samples in the file (the fields of the last byte past it are padding).
    positions : ndarray of int, optional
        Count over these samples only; None: all of them.

    Returns
    -------
    ndarray of int64
        Columns: code 00 (two copies of a1), 01 (missing), 10 (one copy), 11 (none).
    """
    k = codes.shape[0]
    counts = np.zeros((k, 4), dtype=np.int64)
    if k == 0:
        return counts
    if positions is not None:
        positions = np.asarray(positions, dtype=np.intp)
        step = max(1, INDEX_ELEMENTS // max(positions.size, 1))
        shift = ((positions & 3) << 1).astype(np.uint8)
        for j0 in range(0, k, step):
            fields = (codes[j0 : j0 + step][:, positions >> 2] >> shift) & 3
            for c in range(4):
                counts[j0 : j0 + step, c] = (fields == c).sum(axis=1)
        return counts
    whole = n_samples // 4
    step = max(1, INDEX_ELEMENTS // max(whole, 1))
    for j0 in range(0, k, step):
        block = codes[j0 : j0 + step, :whole]
        index = block.astype(np.intp) + (np.arange(block.shape[0], dtype=np.intp) * 256)[:, None]
        hist = np.bincount(index.ravel(), minlength=256 * block.shape[0])
        counts[j0 : j0 + step] = hist.reshape(-1, 256) @ BYTE_COUNTS
    for field in range(n_samples - 4 * whole):  # the samples in the last, partial byte
        last = (codes[:, whole] >> (2 * field)) & 3
        counts[np.arange(k), last] += 1
    return counts


def moments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calls, mean allele count and sum of squares about it of mean-imputed SNPs.

    Parameters
    ----------
    counts : ndarray
        From :func:`code_counts` [shape: (k, 4)].

    Returns
    -------
    count : ndarray
        Non-missing calls [shape: (k,)].
    mean : ndarray
        Mean allele count of the calls, 2p (0 when there is none) [shape: (k,)].
    sum_sq : ndarray
        Σ (x − mean)² over the calls, the sum of squares of the mean-imputed, centred SNP.

    Notes
    -----
    The mean is (2·n₀₀ + n₁₀)/calls, the same number as a float sum of the calls divided by
    their count (integers below 2⁵³ are exact), so it equals what ``prepare_block`` computes
    from float genotypes to the last bit; the sum of squares agrees to rounding.
    """
    counts = np.asarray(counts)
    count = counts[:, 0] + counts[:, 2] + counts[:, 3]
    mean = (2 * counts[:, 0] + counts[:, 2]) / np.maximum(count, 1)
    sum_sq = (
        counts[:, 0] * (2.0 - mean) ** 2 + counts[:, 2] * (1.0 - mean) ** 2 + counts[:, 3] * mean**2
    )
    return count, mean, sum_sq
