"""Genotypes: a matrix of allele counts read in blocks, its SNP and sample tables, its checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayeslmm.errors import InputError

SNP_COLUMNS = ["chrom", "snp", "cm", "pos", "a1", "a2"]
"""Columns of :attr:`Genotypes.snps` (PLINK ``.bim`` order; a1 is the counted allele)."""

FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "phenotype"]
"""Columns of :attr:`Genotypes.fam` (PLINK ``.fam`` order)."""

DEFAULT_CHUNK = 2048
"""SNPs read at a time by :meth:`Genotypes.chunks` and the streaming kinships."""

DOSAGE_TOLERANCE = 1e-6
"""How far outside 0..2 a dosage may lie (rounding in the writer) before it is an error."""

ARRAY_FIX = (
    "Set missing calls (-9, 3) to NaN; pass standardized genotypes to bl.snp_model, not here."
)
"""The way out that :func:`check_dosages` gives for an in-memory matrix."""

Index = slice | Sequence[int] | np.ndarray | None


def as_index(index: Index, n: int, what: str) -> np.ndarray:
    """Turn a selection of SNPs or samples into an array of non-negative positions.

    Parameters
    ----------
    index
        None (all), a slice, a boolean mask [shape: (n,)] or integer positions (negative ones
        count from the end).
    n
        Number of items (SNPs or samples) selected from.
    what
        What is selected (``"SNPs"``, ``"samples"``), for the error messages.

    Returns
    -------
    ndarray of intp
        The selected positions, each in ``[0, n)``, in the order given.

    Raises
    ------
    InputError
        A mask of the wrong length, non-integer positions, or a position out of range.
    """
    if index is None:
        return np.arange(n)
    if isinstance(index, slice):
        return np.arange(n)[index]
    arr = np.asarray(index)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InputError(f"a boolean {what} mask must have length {n}, got {arr.shape}.")
        return np.flatnonzero(arr)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what} must be given as positions (integers), a slice or a mask.")
    arr = arr.astype(np.intp).ravel()
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise InputError(f"{what} positions out of range: there are {n} {what}.")
    return np.where(arr < 0, arr + n, arr)


@dataclass(frozen=True, eq=False)
class Genotypes:
    """A genotype matrix on disk or in memory, read in blocks.

    Attributes
    ----------
    samples : ndarray of str
        Sample IDs in file order (the .fam IID for PLINK).
    snps : pandas.DataFrame
        One row per SNP: chrom, snp, cm, pos, a1 (the counted allele), a2.
    fam : pandas.DataFrame
        Sample table (PLINK .fam columns fid, iid, father, mother, sex, phenotype).
    source : str
        Where the genotypes come from.
    """

    samples: np.ndarray
    snps: pd.DataFrame
    fam: pd.DataFrame
    source: str
    _reader: Callable[[np.ndarray, np.ndarray], np.ndarray] = field(repr=False)

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return len(self.samples)

    @property
    def n_snps(self) -> int:
        """Number of SNPs."""
        return len(self.snps)

    @property
    def shape(self) -> tuple[int, int]:
        """(n_samples, n_snps)."""
        return self.n_samples, self.n_snps

    def read(self, snps: Index = None, samples: Index = None) -> np.ndarray:
        """Read allele counts of the counted allele (a1) as float64, NaN where missing.

        Parameters
        ----------
        snps, samples
            Positions (integers, a slice or a boolean mask); None means all.

        Returns
        -------
        ndarray
            [shape: (n_selected_samples, n_selected_snps)].
        """
        snp_idx = as_index(snps, self.n_snps, "SNPs")
        sample_idx = as_index(samples, self.n_samples, "samples")
        if snp_idx.size == 0 or sample_idx.size == 0:
            return np.empty((sample_idx.size, snp_idx.size))
        return self._reader(sample_idx, snp_idx)

    def chunks(
        self, chunk_size: int = DEFAULT_CHUNK, snps: Index = None, samples: Index = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Iterate over SNP blocks: yields (SNP positions, genotypes [samples × block])."""
        snp_idx = as_index(snps, self.n_snps, "SNPs")
        if chunk_size < 1:
            raise InputError(f"chunk_size must be positive, got {chunk_size}.")
        for start in range(0, snp_idx.size, chunk_size):
            block = snp_idx[start : start + chunk_size]
            yield block, self.read(block, samples)

    def __repr__(self) -> str:
        return f"Genotypes({self.n_samples} samples × {self.n_snps} SNPs from {self.source})"


def in_memory_genotypes(
    matrix: np.ndarray, samples: np.ndarray, snps: pd.DataFrame, source: str
) -> Genotypes:
    """Genotypes held in memory, with a sample table that knows only the IDs.

    Parameters
    ----------
    matrix
        Allele counts, NaN = missing [shape: (n_samples, n_snps)]; kept, not copied. A
        transposed view of a SNP-major array (a BIMBAM file's layout) is read SNP-major.
    samples
        Sample IDs [shape: (n_samples,)].
    snps
        The SNP table, columns :data:`SNP_COLUMNS` [shape: (n_snps, 6)].
    source
        Where the genotypes come from (a file, ``"array"``).

    Returns
    -------
    Genotypes
        ``fam`` has FID = IID = the sample ID, unknown parents and sex, a missing phenotype.
    """
    fam = pd.DataFrame(
        {"fid": samples, "iid": samples, "father": "0", "mother": "0", "sex": "0"}
    ).assign(phenotype=np.nan)
    if matrix.flags.f_contiguous and not matrix.flags.c_contiguous:
        by_snp = matrix.T  # gather whole SNP rows, then transpose the block (a view)

        def reader(sample_idx: np.ndarray, snp_idx: np.ndarray) -> np.ndarray:
            return by_snp[np.ix_(snp_idx, sample_idx)].T

    else:

        def reader(sample_idx: np.ndarray, snp_idx: np.ndarray) -> np.ndarray:
            return matrix[np.ix_(sample_idx, snp_idx)]

    return Genotypes(samples=samples, snps=snps, fam=fam, source=source, _reader=reader)


def check_dosages(
    G: np.ndarray,
    where: str = "",
    *,
    snps: Sequence[str] | None = None,
    fix: str = ARRAY_FIX,
) -> None:
    """Raise an InputError unless every non-missing genotype lies in 0..2.

    Parameters
    ----------
    G
        Allele counts or dosages, NaN = missing [shape: (n_samples, n_snps)].
    where
        Where they come from (a file name), the start of the message; empty for arrays.
    snps
        SNP names [shape: (n_snps,)], to name the SNP in the message.
    fix
        The way out, the end of the message.

    Raises
    ------
    InputError
        Values below 0 or above 2 (beyond :data:`DOSAGE_TOLERANCE`), infinities included: the
        message names the first in SNP order (SNP, sample, value) and how many there are.
    """
    low, high = -DOSAGE_TOLERANCE, 2 + DOSAGE_TOLERANCE
    if G.size == 0 or not (
        np.fmin.reduce(G, axis=None) < low or np.fmax.reduce(G, axis=None) > high
    ):
        return  # two passes, no temporaries; fmin/fmax skip NaN (all missing gives NaN: fine)
    outside = (G < low) | (G > high)  # NaN compares False
    j, i = np.argwhere(outside.T)[0]  # the first SNP, then the first sample in it
    value, count = G[i, j], int(outside.sum())
    named = ""
    if snps is not None:
        named = f" (SNP {snps[j]} has genotype {i + 1} = {value:g}, outside 0..2)"
    raise InputError(
        f"{where + ': ' if where else ''}genotypes must be allele counts or dosages in 0..2 "
        f"(NaN = missing); {count} value{'s are' if count > 1 else ' is'} not, the first "
        f"{value:g} at sample {i + 1}, SNP {j + 1}{named}. {fix}"
    )
