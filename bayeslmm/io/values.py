"""Missing-value codes and the numbers of text fields, the same in every reader."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MISSING = ("NA", "na", "NaN", "nan", "-9", "")
"""Missing-value codes of every reader (a number equal to -9, e.g. ``-9.0``, is missing too)."""

MISSING_TEXT = "NA, NaN, -9 or an empty field"
"""How the error messages spell :data:`MISSING`."""


def parse_values(
    raw: pd.Series, missing: Sequence[str] = MISSING
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers from stripped text fields, with missing codes and non-numbers told apart.

    Parameters
    ----------
    raw
        Stripped strings [shape: (n,)].
    missing
        The missing-value codes (default :data:`MISSING`).

    Returns
    -------
    values : ndarray of float
        The numbers, NaN where missing or not a number [shape: (n,)].
    is_missing : ndarray of bool
        A code in ``missing``, any spelling of NaN, or (when ``"-9"`` is a code) a number equal
        to -9 [shape: (n,)].
    not_a_number : ndarray of bool
        Neither missing nor a number: what the caller reports or encodes [shape: (n,)].
    """
    is_missing = raw.isin(list(missing)).to_numpy() | (raw.str.lower() == "nan").to_numpy()
    values = np.array(pd.to_numeric(raw.where(~is_missing), errors="coerce"), dtype=float)
    bad = np.isnan(values) & ~is_missing
    if "-9" in missing:
        is_missing |= values == -9
    values[is_missing] = np.nan
    return values, is_missing, bad
