"""PLINK 1 binary filesets (``.bed``/``.bim``/``.fam``), read lazily through ``bed-reader``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslmm.errors import DataWarning, InputError
from bayeslmm.io.chromosomes import normalize_chromosomes
from bayeslmm.io.files import compression
from bayeslmm.io.genotypes import FAM_COLUMNS, SNP_COLUMNS, Genotypes
from bayeslmm.io.values import MISSING, MISSING_TEXT, parse_values

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
"""The first three bytes of a SNP-major PLINK 1 ``.bed``."""


def _read_text_table(path: Path, names: list[str], what: str, expected_cols: int) -> pd.DataFrame:
    """A whitespace-separated ``.bim`` or ``.fam``, every field verbatim as text."""
    try:
        table = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            dtype=str,
            comment=None,
            keep_default_na=False,  # IDs, SNP names and alleles verbatim ("NA" is a name)
            compression=compression(path),
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty; a {what} file needs one line per record.") from None
    if table.shape[1] != expected_cols:
        raise InputError(
            f"{path} has {table.shape[1]} columns; a {what} file has {expected_cols} "
            f"({' '.join(names)})."
        )
    table.columns = names
    return table


def read_plink(prefix: str | Path) -> Genotypes:
    """Open a PLINK 1 binary fileset (``.bed``/``.bim``/``.fam``) for lazy reading.

    Parameters
    ----------
    prefix : str or Path
        Path without extension (``data/cohort`` for ``data/cohort.bed`` etc.); a path ending in
        ``.bed`` is accepted too.

    Returns
    -------
    Genotypes
        Allele counts of the .bim's first allele (a1), as PLINK and GEMMA count them.

    Raises
    ------
    InputError
        Missing files, a .bed without PLINK's magic bytes or in individual-major mode, a .bed
        whose size disagrees with the .fam and .bim counts, or duplicated sample IDs.
    """
    prefix = Path(prefix)
    if prefix.suffix in (".bed", ".bim", ".fam"):
        prefix = prefix.with_suffix("")
    paths = {ext: Path(f"{prefix}.{ext}") for ext in ("bed", "bim", "fam")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise InputError(f"PLINK fileset {prefix} is incomplete: {', '.join(missing)} not found.")
    fam = _read_text_table(paths["fam"], FAM_COLUMNS, "PLINK .fam", 6)
    bim = _read_text_table(paths["bim"], SNP_COLUMNS, "PLINK .bim", 6)
    try:
        bim["pos"] = bim["pos"].astype(np.int64)
        bim["cm"] = bim["cm"].astype(float)
    except ValueError:
        raise InputError(
            f"{paths['bim']}: columns 3-4 (cM, bp position) must be numbers."
        ) from None
    n, m = len(fam), len(bim)
    with open(paths["bed"], "rb") as handle:
        head = handle.read(3)
    if head[:2] != BED_MAGIC[:2]:
        raise InputError(
            f"{paths['bed']} is not a PLINK 1 .bed file (magic bytes {head[:2].hex()} instead of "
            "6c1b); convert it with plink --make-bed."
        )
    if head[2:3] != BED_MAGIC[2:]:
        raise InputError(
            f"{paths['bed']} is in individual-major mode; rewrite it in SNP-major mode with "
            "plink --make-bed."
        )
    expected = 3 + m * ((n + 3) // 4)
    size = paths["bed"].stat().st_size
    if size != expected:
        raise InputError(
            f"{paths['bed']} has {size} bytes but {n} samples (.fam) × {m} SNPs (.bim) need "
            f"{expected}; the fileset is truncated or the .fam/.bim do not belong to this .bed."
        )
    samples = fam["iid"].to_numpy(dtype=str)
    dup = pd.Index(samples)[pd.Index(samples).duplicated()]
    if len(dup):
        raise InputError(
            f"{paths['fam']} has duplicated sample IDs (IID) {list(dup.unique()[:5])}; sample "
            "IDs must be unique (rename or remove the duplicates)."
        )
    bim["chrom"] = normalize_chromosomes(bim["chrom"])
    values, _, bad = parse_values(fam["phenotype"].str.strip(), MISSING)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        warnings.warn(
            f"{paths['fam']}, line {row + 1}: phenotype {fam['phenotype'].iloc[row]!r} (column 6) "
            f"is not a number nor a missing code ({MISSING_TEXT}); {int(bad.sum())} such .fam "
            "phenotype(s) read as missing. Fix the .fam if you analyse its phenotype.",
            DataWarning,
            stacklevel=2,
        )
    fam["phenotype"] = values
    from bed_reader import open_bed

    bed = open_bed(paths["bed"], iid_count=n, sid_count=m, skip_format_check=True)

    def reader(sample_idx: np.ndarray, snp_idx: np.ndarray) -> np.ndarray:
        return bed.read(index=np.s_[sample_idx, snp_idx], dtype="float64", order="F")

    return Genotypes(
        samples=samples,
        snps=bim.reset_index(drop=True),
        fam=fam,
        source=str(paths["bed"]),
        _reader=reader,
    )
