"""Phenotype and covariate tables: PLINK style or CSV/TSV, indexed by sample ID."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.errors import InputError
from bayeslmm.io.files import compression, open_text, read_bytes
from bayeslmm.io.values import MISSING, MISSING_TEXT, parse_values

ID_NAMES = ("FID", "IID", "ID", "SAMPLE", "SAMPLE_ID", "SAMPLEID", "INDIVIDUAL", "SUBJECT")
"""First-column names that mark a table's first line as a header (case-insensitive, '#' ok)."""


def _looks_numeric(token: str, missing: Sequence[str] = MISSING) -> bool:
    """Whether a header-line field could be a value: a missing code or a number."""
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
        with open_text(path) as handle:
            first = handle.readline().removeprefix("\ufeff")
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(
            f"{path} is not a text table ({exc}); give a UTF-8 (or gzipped UTF-8) text file."
        ) from None
    if not first.strip():
        if not read_bytes(path).strip():
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
            compression=compression(path),
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
        values, is_missing, bad = parse_values(raw, missing)
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
