"""Chromosome codes in PLINK's numeric form, whatever the file wrote."""

from __future__ import annotations

from typing import Any

import numpy as np

CHROMOSOME_NAMES = {
    "X": "23",
    "Y": "24",
    "XY": "25",
    "PAR1": "25",
    "PAR2": "25",
    "MT": "26",
    "M": "26",
}
"""Named chromosomes (upper case, without ``chr``) and PLINK's number for each."""

NON_AUTOSOMES = ("23", "24", "25", "26")
"""Normalized codes of X, Y, XY (pseudo-autosomal) and MT."""


def _chromosome(code: str) -> str:
    """One code in PLINK's form (see :func:`normalize_chromosomes`)."""
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
