"""BIMBAM mean genotypes (GEMMA's ``-g`` files) and their SNP annotation (GEMMA's ``-a``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslmm.data.samples import positional_ids
from bayeslmm.errors import InputError
from bayeslmm.io.bimbam_text import parse_exact, parse_fast
from bayeslmm.io.chromosomes import normalize_chromosomes
from bayeslmm.io.files import compression, read_bytes
from bayeslmm.io.genotypes import Genotypes, check_dosages, in_memory_genotypes
from bayeslmm.io.values import MISSING, MISSING_TEXT, parse_values


def read_bimbam(
    path: str | Path, anno: str | Path | None = None, samples: Sequence[str] | None = None
) -> Genotypes:
    """Read a BIMBAM mean-genotype file (GEMMA's ``-g`` format), gzipped or not.

    Parameters
    ----------
    path : str or Path
        One line per SNP: ``rs, allele1, allele2, g_1, ..., g_N`` separated by commas and/or
        whitespace; missing dosages are ``NA``, ``NaN`` or -9 (any other non-number is an
        InputError naming line, SNP and value). The dosages count allele1. Gzip is detected
        from the content.
    anno : str or Path, optional
        SNP annotation (``rs, position, chromosome``), GEMMA's ``-a`` file; chromosome codes
        are normalized (:func:`~bayeslmm.io.chromosomes.normalize_chromosomes`).
    samples : sequence of str, optional
        Sample IDs in column order (default: "1", "2", ... by position).

    Returns
    -------
    Genotypes
        Held in memory (BIMBAM is text).

    Raises
    ------
    InputError
        A missing or empty file, a malformed line (see
        :func:`~bayeslmm.io.bimbam_text.parse_exact`), a dosage outside
        0..2 (:func:`~bayeslmm.io.genotypes.check_dosages`), ``samples`` of the wrong length,
        or an annotation without a position for some SNP.

    Notes
    -----
    The file is decompressed once and parsed in C by
    :func:`~bayeslmm.io.bimbam_text.parse_fast` (about 0.5 s for GEMMA's 1,940 × 12,226 mouse
    example; ``benchmarks/readers.py`` times it beside GEMMA); a file that parser is not sure of
    is read line by line by :func:`~bayeslmm.io.bimbam_text.parse_exact`, which names the first
    bad line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"BIMBAM file {path} not found.")
    data = read_bytes(path).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    if not data or data.isspace():  # (no copy, unlike strip)
        raise InputError(f"BIMBAM file {path} is empty; expected one line per SNP.")
    lines = parse_fast(data)
    if lines is None:
        lines = parse_exact(data, str(path))
    G = lines.dosages
    nines = G == -9
    if nines.any():
        G = np.where(nines, np.nan, G)  # -9.0 is the missing code -9 too
    check_dosages(
        G.T,
        str(path),
        snps=lines.snps,
        fix=f"BIMBAM mean genotypes are expected counts of allele1 (missing: {MISSING_TEXT}): "
        "fix the file, or rescale dosages given on another scale.",
    )
    n = G.shape[1]
    ids = positional_ids(n) if samples is None else np.asarray(samples, str)
    if ids.size != n:
        raise InputError(f"{len(ids)} sample IDs given for {n} genotype columns in {path}.")
    snps = pd.DataFrame(
        {"chrom": "0", "snp": lines.snps, "cm": 0.0, "pos": 0, "a1": lines.a1, "a2": lines.a2}
    )
    if anno is not None:
        _annotate(snps, Path(anno), path)
    return in_memory_genotypes(G.T, ids, snps, str(path))


def _annotate(snps: pd.DataFrame, anno: Path, path: Path) -> None:
    """Fill pos and chrom of a BIMBAM SNP table from GEMMA's annotation file, in place."""
    if not anno.is_file():
        raise InputError(f"BIMBAM annotation file {anno} not found.")
    table = pd.read_csv(
        anno,
        sep=r"[\s,]+",
        header=None,
        engine="python",
        dtype=str,
        keep_default_na=False,
        compression=compression(anno),
    )
    if table.shape[1] < 2:
        raise InputError(f"{anno} must have columns rs, position[, chromosome].")
    dup = table[0][table[0].duplicated()]
    if len(dup):
        raise InputError(f"{anno} lists SNP {dup.iloc[0]!r} more than once; keep one line per SNP.")
    table = table.set_index(0)
    missing = ~snps["snp"].isin(table.index)
    if missing.any():
        raise InputError(
            f"{anno} has no position for {int(missing.sum())} SNPs of {path} (first: "
            f"{snps['snp'][missing].iloc[0]})."
        )
    rows = table.loc[snps["snp"]]
    pos, is_missing, bad = parse_values(rows[1].str.strip(), MISSING)
    if bad.any() or (np.nan_to_num(pos) % 1 != 0).any():
        j = int(np.flatnonzero(bad | (np.nan_to_num(pos) % 1 != 0))[0])
        line = int(table.index.get_loc(snps["snp"].iloc[j])) + 1
        raise InputError(
            f"{anno}, line {line}: position {rows[1].iloc[j]!r} of SNP {snps['snp'].iloc[j]} is "
            f"not a whole number (missing: {MISSING_TEXT})."
        )
    snps["pos"] = np.where(is_missing, 0, np.nan_to_num(pos)).astype(np.int64)
    if table.shape[1] >= 2:
        snps["chrom"] = normalize_chromosomes(rows[2].to_numpy(dtype=str))
