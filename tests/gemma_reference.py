"""Parsers for the frozen peer-tool outputs in tests/data/eur (made by validation/eur_gemma.sh)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

EUR_DIR = Path(__file__).resolve().parent / "data" / "eur"

_LOG_KEYS = {
    "REMLE log-likelihood in the null model": "logl_reml",
    "MLE log-likelihood in the null model": "logl_ml",
    "pve estimate in the null model": "pve",
    "se(pve) in the null model": "pve_se",
    "vg estimate in the null model": "vg",
    "ve estimate in the null model": "ve",
    "number of analyzed individuals": "n_analyzed",
    "number of analyzed SNPs/var": "n_snps",
}


def read_gemma_log(path: str | Path) -> dict:
    """Scalar results of a GEMMA ``-lmm`` log file, as floats (plus ``beta``, ``beta_se``)."""
    out: dict = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r"##\s*(.+?)\s*=\s*(.+)$", line)
        if not match:
            continue
        key, value = match.groups()
        if key in _LOG_KEYS:
            out[_LOG_KEYS[key]] = float(value)
        elif key == "beta estimate in the null model":
            out["beta"] = np.array(value.split(), dtype=float)
        elif key == "se(beta)":
            out["beta_se"] = np.array(value.split(), dtype=float)
    return out


def read_gemma_assoc(path: str | Path) -> pd.DataFrame:
    """A GEMMA ``.assoc.txt`` table (gzip-aware)."""
    return pd.read_csv(path, sep="\t")


def read_block(path: str | Path) -> np.ndarray:
    """A square block of a kinship matrix as printed by the tool."""
    return np.loadtxt(path, delimiter="\t", ndmin=2)


def read_diag(path: str | Path) -> np.ndarray:
    """A kinship diagonal, one value per line."""
    return np.loadtxt(path, ndmin=1)
