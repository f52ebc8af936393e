"""BIMBAM text into SNP names, alleles and dosages: the exact parser and the fast ones.

A BIMBAM mean-genotype file has one line per SNP, ``rs, allele1, allele2, g_1, ..., g_N``,
fields separated by commas and/or whitespace, dosages counting allele1, missing ones written as
one of :data:`~bayeslmm.io.values.MISSING`. :func:`parse_exact` defines what a file means
(Python's ``str.split`` and ``float``, line by line) and names the first bad line;
:func:`parse_fast` returns the same or None, parsing in C:

1. :func:`one_delimiter` rewrites the text with one delimiter byte between fields;
2. :func:`parse_calls` reads it with numpy when nearly every dosage is one digit (hard calls,
   as in GEMMA's mouse example), :func:`parse_arrow` with Arrow's multi-threaded CSV reader
   otherwise (dosages such as ``0.863``).

tests/test_io.py checks on random files that each returns what :func:`parse_exact` returns or
None, and None whenever :func:`parse_exact` raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bayeslmm.errors import InputError
from bayeslmm.io.values import MISSING, MISSING_TEXT

ARROW_BLOCK = 1 << 22
"""Bytes per block that Arrow parses on one thread (4 MiB, the fastest on the mouse example;
more when lines are long: a line must fit in a block)."""

CALLS_BLOCK = 1 << 18
"""Bytes of lines that :func:`parse_calls` tokenizes at a time: its temporaries stay in cache
(256 KiB: 30 % faster than 4 MiB on the mouse example)."""

CALLS_SHARE = 0.005
"""Share of dosages longer than one digit beyond which :func:`parse_calls` leaves the file to
Arrow (they are converted one by one in Python)."""

CALLS_MIN = 10_000
"""Dosages longer than one digit that :func:`parse_calls` converts in any file, however small."""

#: What ``str.split()`` separates on besides the space and the newline (ASCII), and the comma.
_SEPARATORS = b",\t\r\x0b\x0c\x1c\x1d\x1e\x1f"
_TO_SPACE = bytes.maketrans(_SEPARATORS, b" " * len(_SEPARATORS))
#: Whitespace other than the space, the newline and the CR of CRLF: it rules the comma layout out.
_OTHER_SPACE = (b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
#: ``nan(...)``: a NaN that Arrow's number parser takes and Python's ``float`` refuses.
_NAN_PAYLOAD = re.compile(rb"(?i)nan\(")
_NULLS = [code for code in MISSING if code]  # the empty field never reaches a parser here


@dataclass(frozen=True, eq=False)
class BimbamLines:
    """The fields of a BIMBAM file, one entry per SNP line.

    Attributes
    ----------
    snps, a1, a2 : list of str
        SNP names, allele1 (the counted allele) and allele2 [shape: (n_snps,)].
    dosages : ndarray
        Expected counts of allele1, NaN for the missing codes (a number equal to -9 is still
        -9 here) [shape: (n_snps, n_samples)]; may be read-only.
    """

    snps: list[str]
    a1: list[str]
    a2: list[str]
    dosages: np.ndarray


def parse_exact(data: bytes, source: str) -> BimbamLines:
    """Parse BIMBAM text line by line, the reference semantics.

    Parameters
    ----------
    data
        The file's bytes, decompressed, without a byte-order mark.
    source
        The file, for the error messages.

    Returns
    -------
    BimbamLines
        Fields split on commas and whitespace (``str.split``), blank lines skipped, dosages by
        ``float`` or NaN for a missing code.

    Raises
    ------
    InputError
        At the first line with fewer than four fields, a dosage that is neither a number nor a
        missing code, or a number of dosages other than the first line's: naming the line, the
        SNP and the value.
    """
    heads, rows = [], []
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) < 4:
            raise InputError(
                f"{source}, line {lineno}: expected 'rs, allele1, allele2, "
                f"genotypes...', got {len(fields)} fields."
            )
        values = np.empty(len(fields) - 3)
        for k, token in enumerate(fields[3:]):
            try:
                values[k] = np.nan if token in MISSING else float(token)
            except ValueError:
                raise InputError(
                    f"{source}, line {lineno} (SNP {fields[0]}): genotypes must be numbers or NA; "
                    f"genotype {k + 1} is {token!r} (missing values are {MISSING_TEXT}: replace "
                    "it)."
                ) from None
        rows.append(values)
        if rows[-1].size != rows[0].size:
            raise InputError(
                f"{source}, line {lineno} (SNP {fields[0]}) has {rows[-1].size} genotypes; the "
                f"first line has {rows[0].size}."
            )
        heads.append(fields[:3])
    if not rows:
        raise InputError(f"{source} holds no SNP.")
    snps, a1, a2 = (list(column) for column in zip(*heads, strict=True))
    return BimbamLines(snps=snps, a1=a1, a2=a2, dosages=np.asarray(rows))


def parse_fast(data: bytes) -> BimbamLines | None:
    """Parse BIMBAM text in C (numpy or Arrow); None if anything is off.

    Parameters
    ----------
    data
        The file's bytes, decompressed, without a byte-order mark.

    Returns
    -------
    BimbamLines or None
        What :func:`parse_exact` returns, or None where that might differ or raise: then call
        it (it names the bad line).

    Notes
    -----
    Files with non-ASCII whitespace (which ``str.split`` splits on) or ``nan(...)`` (a NaN to
    Arrow, an error to ``float``) are left to :func:`parse_exact`. Each layout that
    :func:`one_delimiter` yields is tried with :func:`parse_calls`, then :func:`parse_arrow`.
    """
    if not data.isascii():
        text = data.decode("utf-8", errors="replace")  # as the exact parser reads it
        if any(char.isspace() for char in set(re.findall(r"[^\x00-\x7f]", text))):
            return None
        data = text.encode()
    if b"(" in data and _NAN_PAYLOAD.search(data):
        return None
    for text, delimiter in one_delimiter(data):
        lines = parse_calls(text, delimiter)
        if lines is None:
            lines = parse_arrow(text, delimiter)
        if lines is not None:
            return lines
    return None


def one_delimiter(data: bytes) -> Iterator[tuple[bytes, str]]:
    """BIMBAM text rewritten with one delimiter byte between fields, in the layouts that apply.

    Parameters
    ----------
    data
        ASCII or UTF-8 text without non-ASCII whitespace.

    Yields
    ------
    text : bytes
        The lines (newline-separated; blank lines may remain), one delimiter between fields.
    delimiter : str
        ``","`` or ``" "``.

    Notes
    -----
    The exact parser splits each line on runs of commas and whitespace.

    - *Comma layout* (GEMMA's ``rs, A, G, 1, 0, ...``): when every space follows a comma and
      there is no other whitespace (the CR of CRLF aside), deleting the spaces and CRs leaves
      one comma between fields (one ``bytes.translate``; a ``bytes.replace`` of ``", "`` costs
      5× more). A space that follows no comma separates fields too: deleting it would merge two.
    - *Whitespace layout*, always yielded last: commas and whitespace become spaces, runs of
      spaces one space, and lines lose their leading and trailing space.

    An empty field of the comma layout (``1,,2``, a trailing comma) is a field the exact parser
    never sees: the parsers refuse it, and the whitespace layout is tried next.
    """
    cr = data.count(b"\r") if b"\r" in data else 0
    if (
        b"," in data
        and not any(char in data for char in _OTHER_SPACE)
        and cr == (data.count(b"\r\n") if cr else 0)
    ):
        text = data.translate(None, b" \r")
        spaces = len(data) - len(text) - cr
        if spaces == 0 or spaces == data.count(b", "):  # every space follows a comma
            yield text, ","
    text = data.translate(_TO_SPACE)
    while b"  " in text:
        text = text.replace(b"  ", b" ")
    yield text.replace(b"\n ", b"\n").replace(b" \n", b"\n").strip(b" "), " "


def parse_calls(text: bytes, delimiter: str) -> BimbamLines | None:
    """Parse one-delimiter BIMBAM text with numpy, when nearly every dosage is one digit.

    Parameters
    ----------
    text, delimiter
        From :func:`one_delimiter`.

    Returns
    -------
    BimbamLines or None
        None for a blank line, a line whose number of fields differs from the first's, an
        empty field, more than :data:`CALLS_SHARE` dosages longer than one digit, or one that
        is neither a number nor a missing code.

    Notes
    -----
    Lines are tokenized by blocks of :data:`CALLS_BLOCK` bytes: the field ends are the
    positions of the delimiter and the newline, so every line has exactly as many fields as
    the first when there are (lines × fields) ends and each line's last one is its newline.
    A one-digit dosage is its byte minus ``b"0"``; the others go through the exact parser's rule
    (missing code or ``float``), so the values are those of :func:`parse_exact`.
    """
    if not text.endswith(b"\n"):
        text += b"\n"
    arr = np.frombuffer(text, np.uint8)
    newlines = np.flatnonzero(arr == ord("\n"))
    line_starts = np.concatenate([[0], newlines[:-1] + 1])
    if (newlines == line_starts).any():  # a blank line (Arrow skips them)
        return None
    n_fields = text.count(delimiter.encode(), 0, int(newlines[0])) + 1
    m, n = newlines.size, n_fields - 3
    if n < 1:
        return None
    budget = max(CALLS_MIN, int(CALLS_SHARE * m * n))
    per_block = max(1, int(CALLS_BLOCK * m / len(text)))
    G = np.empty((m, n))
    heads: list[list[str]] = [[], [], []]
    for a in range(0, m, per_block):
        b = min(m, a + per_block)
        lo, hi = int(line_starts[a]), int(newlines[b - 1]) + 1
        seg = arr[lo:hi]
        is_end = seg == ord(delimiter)
        is_end |= seg == ord("\n")
        ends = np.flatnonzero(is_end)
        if ends.size != (b - a) * n_fields:
            return None
        ends = ends.reshape(b - a, n_fields)
        if not (seg[ends[:, -1]] == ord("\n")).all():
            return None
        starts = np.empty_like(ends)
        starts.reshape(-1)[0] = 0
        starts.reshape(-1)[1:] = ends.reshape(-1)[:-1] + 1
        lengths = ends - starts
        if not lengths.all():  # an empty field
            return None
        for j, column in enumerate(heads):
            bounds = zip(starts[:, j].tolist(), ends[:, j].tolist(), strict=True)
            column += [text[lo + s : lo + e].decode() for s, e in bounds]
        S, L = starts[:, 3:], lengths[:, 3:]
        digits = seg[S] - np.uint8(ord("0"))  # (bytes below "0" wrap round to > 9)
        G[a:b] = digits
        rows, cols = np.nonzero((L != 1) | (digits > 9))
        budget -= rows.size
        if budget < 0:
            return None
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            start = lo + int(S[i, j])
            token = text[start : start + int(L[i, j])].decode()
            try:
                G[a + i, j] = np.nan if token in MISSING else float(token)
            except ValueError:
                return None
    snps, a1, a2 = heads
    return BimbamLines(snps=snps, a1=a1, a2=a2, dosages=G)


def parse_arrow(text: bytes, delimiter: str) -> BimbamLines | None:
    """Parse one-delimiter BIMBAM text (from :func:`one_delimiter`) with Arrow's CSV reader.

    Arrow parses blocks of lines on all cores. Blank lines are skipped; the result is None for
    a line whose number of fields differs from the first's, an empty field, a dosage that is
    neither a number nor a missing code to Arrow, or invalid UTF-8.

    Notes
    -----
    Arrow reads numbers as ``float`` does (correctly rounded; ``inf``, ``nan`` in any case) and
    refuses ``1_000``, ``0x10`` and non-ASCII digits, which ``float`` takes: those files go to
    :func:`parse_exact`. Quotes are part of a field, as for the exact parser.
    """
    import pyarrow as pa
    from pyarrow import csv

    start = 0
    while start < len(text) and text[start] == ord("\n"):
        start += 1  # blank lines before the first SNP
    end = text.find(b"\n", start)
    end = len(text) if end < 0 else end
    n_fields = text.count(delimiter.encode(), start, end) + 1
    if start == len(text) or n_fields < 4:
        return None
    names = [str(j) for j in range(n_fields)]
    try:
        table = csv.read_csv(
            pa.py_buffer(text),
            # a line must fit in a block: room for lines 16× longer than the first
            read_options=csv.ReadOptions(
                column_names=names, block_size=max(ARROW_BLOCK, 16 * (end - start))
            ),
            parse_options=csv.ParseOptions(
                delimiter=delimiter,
                quote_char=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=True,
            ),
            convert_options=csv.ConvertOptions(
                column_types=dict.fromkeys(names[:3], pa.string())
                | dict.fromkeys(names[3:], pa.float64()),
                null_values=_NULLS,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowException:  # a ragged line, a field that is not a number, invalid UTF-8
        return None
    snps, a1, a2 = (table.column(j).to_pylist() for j in range(3))
    if "" in snps or "" in a1 or "" in a2:
        return None
    dosages = table.select(names[3:]).to_pandas().to_numpy()  # one C++ pass, NaN for nulls
    return BimbamLines(snps=snps, a1=a1, a2=a2, dosages=dosages)
