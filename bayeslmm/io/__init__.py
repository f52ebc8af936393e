"""Readers and writers: PLINK 1 binary, BIMBAM mean genotypes, phenotype tables, GCTA GRMs.

Genotypes are read lazily: :class:`Genotypes` knows the samples and the SNP table, and reads
the requested block of the genotype matrix on demand (PLINK ``.bed`` through ``bed-reader``).
Every malformed input raises an :class:`~bayeslmm.errors.InputError` naming the file, line or
sample and the way out.

Reading rules, the same in every reader (nothing is guessed silently):

- **Missing values** are exactly the codes in :data:`MISSING` (``NA``, ``na``, ``NaN``, ``nan``,
  ``-9`` and the empty field) and any number equal to -9 (``-9.0``). Other placeholders that tools
  write (``.``, ``N/A``, ``NULL``, ``?``, ``None``) are *not* missing: in a numeric column they are
  an InputError naming file, line, column and value (pass ``missing=`` to add them). Missing codes
  apply to values (phenotypes, covariates, dosages, the ``.fam`` phenotype), never to IDs: a
  sample called ``NA`` is read as the ID ``NA``.
- **Compression** is detected from the content (gzip magic bytes), never from the file name.
- **Chromosome codes** are normalized on read (:func:`normalize_chromosomes`): ``chr1`` = ``1``,
  X = 23, Y = 24, XY (pseudo-autosomal) = 25, MT = 26, as PLINK numbers them; 0 = unknown.
"""

from __future__ import annotations

import gzip
import io as _io
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.samples import positional_ids
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.io.outputs import atomic_path
from bayeslmm.linalg.spectral import check_kinship
from bayeslmm.relatedness.relationship import Kinship

log = logging.getLogger("bayeslmm")

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
SNP_COLUMNS = ["chrom", "snp", "cm", "pos", "a1", "a2"]
FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "phenotype"]
MISSING = ("NA", "na", "NaN", "nan", "-9", "")
"""Missing-value codes of every reader (a number equal to -9, e.g. ``-9.0``, is missing too)."""
MISSING_TEXT = "NA, NaN, -9 or an empty field"
ID_NAMES = ("FID", "IID", "ID", "SAMPLE", "SAMPLE_ID", "SAMPLEID", "INDIVIDUAL", "SUBJECT")
"""First-column names that mark a table's first line as a header (case-insensitive, '#' ok)."""
CHROMOSOME_NAMES = {"X": "23", "Y": "24", "XY": "25", "PAR1": "25", "PAR2": "25", "MT": "26"}
CHROMOSOME_NAMES["M"] = "26"
NON_AUTOSOMES = ("23", "24", "25", "26")
DEFAULT_CHUNK = 2048

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


def _is_gzip(path: Path) -> bool:
    """True if the file starts with gzip's magic bytes (whatever its name)."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _compression(path: Path) -> str | None:
    """``compression=`` for pandas readers, from the content (pandas would go by the suffix)."""
    return "gzip" if _is_gzip(path) else None


def _read_bytes(path: Path) -> bytes:
    """The whole file as bytes, gunzipped if it is gzip by content."""
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _chromosome(code: str) -> str:
    text = code.strip()
    bare = text[3:] if text[:3].lower() == "chr" and len(text) > 3 else text
    upper = bare.upper()
    if upper in CHROMOSOME_NAMES:
        return CHROMOSOME_NAMES[upper]
    if bare.isascii() and bare.isdigit():
        return str(int(bare))
    return text


def normalize_chromosomes(codes: Any) -> np.ndarray:
    """Chromosome codes in PLINK's numeric form, as strings.

    Parameters
    ----------
    codes : sequence of str or int
        As written in a ``.bim``, a BIMBAM annotation or a SNP table [shape: (n_snps,)].

    Returns
    -------
    ndarray of str
        ``chr1``, ``01`` and ``1`` → ``"1"``; ``X``/``chrX``/``23`` → ``"23"``; ``Y`` → ``"24"``;
        ``XY``/``PAR1``/``PAR2`` → ``"25"``; ``MT``/``M``/``chrM`` → ``"26"``; ``0`` (unknown)
        stays ``"0"``; any other name (a contig such as ``chrUn_gl000220``) is kept as written.
        Case-insensitive. Human numbering: a species whose ``.bim`` writes X under another number
        (``plink --dog`` writes 39) should rename its codes first.
    """
    arr = np.asarray(codes).astype(str)
    if arr.size == 0:
        return arr.astype(object).astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    mapped = np.array([_chromosome(c) for c in uniq], dtype=object)
    return mapped[inverse.reshape(arr.shape)].astype(str)


def is_autosome(codes: Any) -> np.ndarray:
    """True for normalized codes that are autosomes: positive integers other than 23-26.

    Unknown (``"0"``), X, Y, XY, MT and named contigs are not autosomes.
    """
    arr = np.asarray(codes).astype(str)
    digits = np.char.isdigit(arr) if arr.size else np.zeros(arr.shape, bool)
    return digits & (arr != "0") & ~np.isin(arr, NON_AUTOSOMES)


def _parse_values(
    raw: pd.Series, missing: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers from stripped strings: (values, is_missing, not_a_number) [shape: (n,)].

    The codes in ``missing``, NaN, and (when ``"-9"`` is a code) any number equal to -9 are
    missing; ``not_a_number`` marks the other values that do not parse as numbers.
    """
    is_missing = raw.isin(list(missing)).to_numpy() | (raw.str.lower() == "nan").to_numpy()
    values = np.array(pd.to_numeric(raw.where(~is_missing), errors="coerce"), dtype=float)
    bad = np.isnan(values) & ~is_missing
    if "-9" in missing:
        is_missing |= values == -9
    values[is_missing] = np.nan
    return values, is_missing, bad


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


def _read_text_table(path: Path, names: list[str], what: str, expected_cols: int) -> pd.DataFrame:
    try:
        table = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            dtype=str,
            comment=None,
            keep_default_na=False,  # IDs, SNP names and alleles verbatim ("NA" is a name)
            compression=_compression(path),
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
    values, _, bad = _parse_values(fam["phenotype"].str.strip(), MISSING)
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


def _open_text(path: Path) -> _io.TextIOBase:
    with open(path, "rb") as handle:
        gz = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if gz else open(path)  # noqa: SIM115 - caller closes


def _bimbam_fast(data: bytes) -> tuple[list[list[bytes]], np.ndarray] | None:
    """Parse BIMBAM bytes in C (numpy's loadtxt); None if anything is off.

    The exact path (:func:`_bimbam_exact`) then finds the line and says what is wrong.
    """
    heads, rests = [], []
    for line in data.replace(b",", b" ").split(b"\n"):
        fields = line.split(None, 3)
        if not fields:
            continue
        if len(fields) < 4:
            return None
        heads.append(fields[:3])
        rests.append(fields[3])
    if not rests:
        return None
    # only dosages are left, so every NA token is a missing code (NaN, nan parse as NaN)
    numbers = b"\n".join(rests).replace(b"NA", b"nan")
    try:
        G = np.loadtxt(_io.BytesIO(numbers), dtype=float, ndmin=2, comments=None, quotechar=None)
    except ValueError:
        return None
    if G.shape[0] != len(rests):
        return None
    return heads, G


def _bimbam_exact(path: Path, data: bytes) -> tuple[list[list[str]], np.ndarray]:
    """Parse BIMBAM line by line, raising an InputError at the first bad line."""
    heads, rows = [], []
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) < 4:
            raise InputError(
                f"{path}, line {lineno}: expected 'rs, allele1, allele2, "
                f"genotypes...', got {len(fields)} fields."
            )
        values = np.empty(len(fields) - 3)
        for k, token in enumerate(fields[3:]):
            try:
                values[k] = np.nan if token in MISSING else float(token)
            except ValueError:
                raise InputError(
                    f"{path}, line {lineno} (SNP {fields[0]}): genotypes must be numbers or NA; "
                    f"genotype {k + 1} is {token!r} (missing values are {MISSING_TEXT}: replace "
                    "it)."
                ) from None
        rows.append(values)
        if rows[-1].size != rows[0].size:
            raise InputError(
                f"{path}, line {lineno} (SNP {fields[0]}) has {rows[-1].size} genotypes; the "
                f"first line has {rows[0].size}."
            )
        heads.append(fields[:3])
    if not rows:
        raise InputError(f"{path} holds no SNP.")
    return heads, np.asarray(rows)


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
        are normalized (:func:`normalize_chromosomes`).
    samples : sequence of str, optional
        Sample IDs in column order (default: "1", "2", ... by position).

    Returns
    -------
    Genotypes
        Held in memory (BIMBAM is text).

    Notes
    -----
    The file is read once as bytes and parsed by numpy's C text parser (about 1 s for GEMMA's
    1,940 × 12,226 mouse example); a file the parser rejects is read again line by line to name
    the first bad line (``benchmarks/readers.py``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"BIMBAM file {path} not found.")
    data = _read_bytes(path).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    if not data.strip():
        raise InputError(f"BIMBAM file {path} is empty; expected one line per SNP.")
    fast = _bimbam_fast(data)
    try:
        heads = [[f.decode() for f in head] for head in fast[0]] if fast else None
    except UnicodeDecodeError:
        heads = None
    if fast is None or heads is None:
        heads, G = _bimbam_exact(path, data)
    else:
        G = fast[1]
    G[G == -9] = np.nan  # -9.0 is the missing code -9 too
    names, a1, a2 = (list(col) for col in zip(*heads, strict=True))
    outside = (G < -1e-6) | (G > 2 + 1e-6)  # NaN compares False
    if outside.any():
        i, k = np.argwhere(outside)[0]
        raise InputError(
            f"{path}: SNP {names[i]} (SNP {i + 1} of the file) has genotype {k + 1} = {G[i, k]:g}, "
            f"outside 0..2 ({int(outside.sum())} such values); BIMBAM mean genotypes are "
            f"expected counts of allele1 between 0 and 2 (missing: {MISSING_TEXT}). Fix the file "
            "or rescale dosages given on another scale."
        )
    n = G.shape[1]
    ids = positional_ids(n) if samples is None else np.asarray(samples, str)
    if ids.size != n:
        raise InputError(f"{len(ids)} sample IDs given for {n} genotype columns in {path}.")
    snps = pd.DataFrame({"chrom": "0", "snp": names, "cm": 0.0, "pos": 0, "a1": a1, "a2": a2})
    if anno is not None:
        _annotate(snps, Path(anno), path)
    fam = pd.DataFrame(
        {"fid": ids, "iid": ids, "father": "0", "mother": "0", "sex": "0", "phenotype": np.nan}
    )

    def reader(sample_idx: np.ndarray, snp_idx: np.ndarray) -> np.ndarray:
        return G[np.ix_(snp_idx, sample_idx)].T  # G is SNP-major as in the file

    return Genotypes(samples=ids, snps=snps, fam=fam, source=str(path), _reader=reader)


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
        compression=_compression(anno),
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
    pos, is_missing, bad = _parse_values(rows[1].str.strip(), MISSING)
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


def _looks_numeric(token: str, missing: Sequence[str] = MISSING) -> bool:
    if token in missing:
        return True
    try:
        float(token)
    except ValueError:
        return False
    return True


def _has_header(tokens: list[str], id_column: str | None, missing: Sequence[str]) -> bool:
    """Whether a table's first line is a header (the rule of :func:`read_table`)."""
    names = [t.lstrip("#").strip().upper() for t in tokens]
    if names and names[0] in ID_NAMES or "IID" in names[:2]:
        return True
    if id_column is not None and id_column.lstrip("#").strip().upper() in names:
        return True
    return not all(_looks_numeric(t, missing) for t in tokens[2:])


def read_table(
    path: str | Path,
    columns: Sequence[str] | None = None,
    *,
    id_column: str | None = None,
    missing: Sequence[str] = MISSING,
    categorical: Sequence[str] | None = None,
    numeric: bool = False,
    header: bool | None = None,
) -> pd.DataFrame:
    """Read a phenotype or covariate table indexed by sample ID.

    Parameters
    ----------
    path : str or Path
        PLINK style (``FID IID v1 v2 ...``, with or without a header line) or a CSV/TSV with a
        header and a sample-ID column. Separator: comma, tab or whitespace (detected); gzip
        detected from the content.
    columns : sequence of str, optional
        Keep these columns (default: all but the ID columns).
    id_column : str, optional
        Name of the sample-ID column (default: ``IID`` if present, else the first column).
    missing : sequence of str
        Tokens read as missing (default :data:`MISSING`: ``NA``, ``na``, ``NaN``, ``nan``,
        ``-9``, empty; with ``"-9"`` listed, any number equal to -9 is missing too). Add
        ``"."``, ``"N/A"``, ... here if a file uses them.
    categorical : sequence of str, optional
        Columns to encode as indicators even if numeric: one column per level but the first
        (the baseline, recorded in ``table.attrs["baselines"]``).
    numeric : bool
        Require numbers (phenotypes): a non-numeric value is an InputError naming the column,
        line and value instead of a categorical encoding.
    header : bool, optional
        Whether the first line holds column names; None detects it (see Notes).

    Returns
    -------
    pandas.DataFrame
        Float columns (NaN = missing), index = sample IDs (str), named ``sample``.

    Raises
    ------
    InputError
        A value that is neither a number nor a missing code in a column that is not text (see
        Notes), naming file, line, column and value; duplicated or empty sample IDs; absent
        columns.

    Notes
    -----
    *Categorical or numeric.* A column is encoded as indicators only when named in
    ``categorical`` or when it is clearly text: more than half of its non-missing values are
    not numbers. A mostly numeric column with a stray token (``.``, ``N/A``, ``NULL``, ``?``,
    a typo) is an InputError, never an encoding: replace the token, add it to ``missing``, or
    name the column in ``categorical``.

    *Header.* The first line is a header when its first field is a sample-ID name (``FID``,
    ``IID``, ``ID``, ``SAMPLE``, ``SAMPLE_ID``, ``INDIVIDUAL``, ``SUBJECT``, any case, ``#``
    allowed) or ``IID`` is its second field, when it names ``id_column``, or when a field after
    the first two is not a number; so numeric column names (``FID IID 1 2 3``, ``id,2019,2020``)
    are read as names. Otherwise a whitespace- or tab-separated file is read as PLINK's
    headerless ``FID IID v1 v2 ...``; a comma-separated file always has a header line.
    ``header=`` overrides the rule.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"table {path} is a folder, not a file; give the table's file name.")
    if not path.is_file():
        raise InputError(f"table {path} not found.")
    try:
        with _open_text(path) as handle:
            first = handle.readline().removeprefix("\ufeff")
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(
            f"{path} is not a text table ({exc}); give a UTF-8 (or gzipped UTF-8) text file."
        ) from None
    if not first.strip():
        if not _read_bytes(path).strip():
            raise InputError(
                f"{path} is empty; give a table with one row per sample (FID IID values..., "
                "or a header line and a sample-ID column)."
            )
        raise InputError(
            f"{path} starts with an empty line; remove it (the first line is the header or "
            "the first sample)."
        )
    sep = "," if first.count(",") else ("\t" if "\t" in first else r"\s+")
    tokens = [t.strip() for t in (first.split(",") if sep == "," else first.split())]
    if header is None:
        header = sep == "," or _has_header(tokens, id_column, missing)
    try:
        table = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            dtype=str,
            keep_default_na=False,
            engine="python" if sep == r"\s+" else "c",
            compression=_compression(path),
            encoding="utf-8-sig",
        )
    except pd.errors.ParserError as exc:
        detail = str(exc).split(". Error could possibly")[0].removeprefix("Error tokenizing data. ")
        raise InputError(
            f"{path}: rows have different numbers of fields ({detail}); every line needs the "
            "same columns (check for a stray separator, or spaces inside a value of a "
            "whitespace-separated file)."
        ) from None
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(
            f"{path} is not a text table ({exc}); give a UTF-8 (or gzipped UTF-8) text file."
        ) from None
    if table.empty:
        raise InputError(f"{path} has a header line but no rows; give one row per sample.")
    short = np.flatnonzero(table.isna().any(axis=1).to_numpy())  # fields absent, not empty
    if short.size:
        row = int(short[0])
        raise InputError(
            f"{path}, line {row + 1 + int(header)} has {int(table.iloc[row].notna().sum())} "
            f"fields but the table has {table.shape[1]} columns ({short.size} such lines); write "
            f"a missing value as {MISSING_TEXT} instead of leaving the field out."
        )
    if not header:
        if table.shape[1] < 3:
            raise InputError(f"{path}: a table without header needs FID, IID and a value column.")
        table.columns = ["FID", "IID"] + [f"V{j + 1}" for j in range(table.shape[1] - 2)]
    table.columns = [str(c).lstrip("#").strip() for c in table.columns]
    if id_column is None:
        id_column = "IID" if "IID" in table.columns else table.columns[0]
    if id_column not in table.columns:
        raise InputError(f"{path} has no column '{id_column}'; columns are {list(table.columns)}.")
    ids = table[id_column].astype(str).str.strip()
    empty = np.flatnonzero((ids == "").to_numpy())
    if empty.size:
        raise InputError(
            f"{path}, line {int(empty[0]) + 1 + int(header)}: empty sample ID in column "
            f"'{id_column}'; every row needs an ID."
        )
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(
            f"{path} has duplicated sample IDs {dup.unique()[:5].tolist()} in column "
            f"'{id_column}'; each sample must appear once."
        )
    drop = {id_column, "FID"} if id_column == "IID" else {id_column}
    keep = [c for c in table.columns if c not in drop] if columns is None else list(columns)
    absent = [c for c in keep if c not in table.columns]
    if absent:
        raise InputError(f"{path} has no column(s) {absent}; columns are {list(table.columns)}.")
    out: dict[str, Any] = {}
    baselines: dict[str, str] = {}
    categorical = set(categorical or ())
    for col in keep:
        raw = table[col].astype(str).str.strip()
        values, is_missing, bad = _parse_values(raw, missing)
        n_bad, n_present = int(bad.sum()), int((~is_missing).sum())
        text = 2 * n_bad > n_present  # clearly text: most values are not numbers
        if bad.any() and (numeric or not (text or col in categorical)):
            row = int(np.flatnonzero(bad)[0])
            where = (
                f"{path}: column '{col}' is not numeric: line {row + 1 + int(header)} has "
                f"{raw.iloc[row]!r}"
            )
            if numeric:
                raise InputError(f"{where}; phenotypes must be numbers (missing: NA or -9).")
            raise InputError(
                f"{where} ({n_bad} of {n_present} values are not numbers). Missing values must "
                f"be {MISSING_TEXT}: replace {raw.iloc[row]!r}, or add it to missing= to read it "
                "as missing; if the column is a category, name it in categorical= (CLI: "
                "--covar-categorical)."
            )
        if col in categorical or bad.any():
            levels = sorted(raw[~is_missing].unique())
            if len(levels) < 2:
                raise InputError(f"{path}: categorical column '{col}' has fewer than 2 levels.")
            baselines[col] = levels[0]
            for level in levels[1:]:
                out[f"{col}[{level}]"] = np.where(is_missing, np.nan, (raw == level).astype(float))
        else:
            out[col] = values
    frame = pd.DataFrame(out, index=pd.Index(ids.to_numpy(), name="sample"))
    frame.attrs["baselines"] = baselines
    frame.attrs["source"] = str(path)
    return frame


def _grm_paths(prefix: str | Path) -> dict[str, Path]:
    prefix = str(prefix)
    for ext in (".grm.bin", ".grm.id", ".grm.N.bin"):
        if prefix.endswith(ext):
            prefix = prefix[: -len(ext)]
    return {
        "bin": Path(prefix + ".grm.bin"),
        "id": Path(prefix + ".grm.id"),
        "N": Path(prefix + ".grm.N.bin"),
    }


def read_grm(prefix: str | Path):
    """Read a GCTA binary GRM (``.grm.bin``, ``.grm.id``, ``.grm.N.bin``) into a Kinship.

    Returns
    -------
    Kinship
        ``matrix`` (float64 from GCTA's float32), ``samples`` (IID), ``n_snps`` (the largest
        entry of ``.grm.N.bin``, or 0 if that file is absent).
    """
    paths = _grm_paths(prefix)
    for key in ("bin", "id"):
        if not paths[key].is_file():
            raise InputError(f"GCTA GRM file {paths[key]} not found.")
    ids = pd.read_csv(
        paths["id"],
        sep=r"\s+",
        header=None,
        dtype=str,
        keep_default_na=False,  # IDs verbatim: a sample called NA is "NA"
        compression=_compression(paths["id"]),
    )
    if ids.shape[1] < 2:
        raise InputError(f"{paths['id']} must have two columns (FID IID).")
    n = len(ids)
    values = np.fromfile(paths["bin"], dtype="<f4")
    if values.size != n * (n + 1) // 2:
        raise InputError(
            f"{paths['bin']} holds {values.size} values but {paths['id']} lists {n} samples "
            f"(needs {n * (n + 1) // 2}); the .id and .bin files do not belong together."
        )
    K = np.zeros((n, n))
    rows, cols = np.tril_indices(n)
    K[rows, cols] = values
    K[cols, rows] = values
    n_snps = 0
    if paths["N"].is_file():
        counts = np.fromfile(paths["N"], dtype="<f4")
        if counts.size not in (1, values.size):
            raise InputError(f"{paths['N']} has {counts.size} values; expected {values.size}.")
        n_snps = int(counts.max()) if counts.size else 0
    samples = ids[1].to_numpy(dtype=str)
    return Kinship(
        matrix=K, samples=samples, n_snps=n_snps, method="gcta_grm", fid=ids[0].to_numpy(dtype=str)
    )


def write_grm(
    K: Any, prefix: str | Path, samples: Sequence[str] | None = None, n_snps: int | None = None
) -> None:
    """Write a kinship matrix as a GCTA binary GRM, atomically.

    Parameters
    ----------
    K : Kinship, DataFrame or ndarray
        The matrix (stored as float32, lower triangle with diagonal, row by row); a DataFrame's
        index gives the sample IDs.
    prefix : str or Path
        Output prefix; writes ``prefix.grm.bin``, ``.grm.id`` and ``.grm.N.bin``.
    samples : sequence of str, optional
        Sample IDs (default: those of the Kinship or DataFrame, else "1", "2", ...).
    n_snps : int, optional
        SNP count for ``.grm.N.bin`` (default: the Kinship's).
    """
    if isinstance(K, pd.DataFrame):
        if list(K.index) != list(K.columns):
            raise InputError(
                "K's rows and columns must list the same sample IDs in the same order to write "
                "a GRM; reorder with K.loc[ids, ids]."
            )
        if samples is None:
            samples = [str(i) for i in K.index]
        K = K.to_numpy()
    matrix = np.asarray(getattr(K, "matrix", K), dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"K must be square to write a GRM, got shape {matrix.shape}.")
    matrix = check_kinship(matrix)  # finite and symmetric: GCTA stores one triangle
    n = matrix.shape[0]
    if samples is None:
        samples = getattr(K, "samples", None)
    samples = list(positional_ids(n)) if samples is None else [str(s) for s in samples]
    if len(samples) != n:
        raise InputError(f"{len(samples)} sample IDs for a {n}×{n} matrix.")
    fid = getattr(K, "fid", None)
    fid = list(fid) if fid is not None and len(fid) == n else samples
    n_snps = int(n_snps if n_snps is not None else getattr(K, "n_snps", 0) or 0)
    paths = _grm_paths(prefix)
    rows, cols = np.tril_indices(n)
    with atomic_path(paths["bin"]) as tmp:
        matrix[rows, cols].astype("<f4").tofile(tmp)
    with atomic_path(paths["N"]) as tmp:
        np.full(rows.size, n_snps, dtype="<f4").tofile(tmp)
    with atomic_path(paths["id"]) as tmp:
        tmp.write_text("".join(f"{f}\t{s}\n" for f, s in zip(fid, samples, strict=True)))
