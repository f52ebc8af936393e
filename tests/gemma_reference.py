"""Parsers for the frozen peer-tool outputs in tests/data/eur (made by validation/eur_gemma.sh).

Plain numpy/pandas, no bayeslmm imports, so the frozen files can be checked on their own.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

EUR_DIR = Path(__file__).resolve().parent / "data" / "eur"
GEMMA_DIR = EUR_DIR / "gemma"
PLINK2_DIR = EUR_DIR / "plink2"

# "## <label> = <value>" lines of a GEMMA 0.98.5 -lmm log. GEMMA prints 6 significant digits
# and no lambda in the log (lambda = vg/ve; per-SNP l_remle/l_mle are in the .assoc.txt).
_LOG_KEYS = {
    "REMLE log-likelihood in the null model": "logl_reml",
    "MLE log-likelihood in the null model": "logl_ml",
    "pve estimate in the null model": "pve",
    "se(pve) in the null model": "pve_se",
    "vg estimate in the null model": "vg",
    "ve estimate in the null model": "ve",
    "number of total individuals": "n_total",
    "number of analyzed individuals": "n_analyzed",
    "number of covariates": "n_covariates",
    "number of phenotypes": "n_phenotypes",
    "number of total SNPs/var": "n_snps_total",
    "number of analyzed SNPs/var": "n_snps",
}


def read_gemma_log(path: str | Path) -> dict:
    """Scalar results of a GEMMA ``-lmm`` log file.

    Floats under ``logl_reml``, ``logl_ml``, ``pve``, ``pve_se``, ``vg``, ``ve``, ``n_total``,
    ``n_analyzed``, ``n_covariates``, ``n_phenotypes``, ``n_snps_total``, ``n_snps``; arrays
    ``beta`` and ``beta_se`` (null-model fixed effects, one per covariate column); the strings
    ``version`` and ``command``.
    """
    out: dict = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r"##\s*(.+?)\s*=\s*(.+?)\s*$", line)
        if not match:
            continue
        key, value = match.groups()
        if key in _LOG_KEYS:
            out[_LOG_KEYS[key]] = float(value)
        elif key == "beta estimate in the null model":
            out["beta"] = np.array(value.split(), dtype=float)
        elif key == "se(beta)":
            out["beta_se"] = np.array(value.split(), dtype=float)
        elif key == "GEMMA Version":
            out["version"] = value
        elif key == "Command Line Input":
            out["command"] = value
    return out


def gemma_assoc_path(name: str, kin: str) -> Path:
    """Frozen ``-lmm 4`` table of set ``name`` (eurA/eurB) with kinship ``kin`` (sXX/cXX).

    The script stores it plain, or gzipped when over 300 KB; this returns whichever exists.
    """
    plain = GEMMA_DIR / f"{name}_{kin}_lmm4.assoc.txt"
    return plain if plain.exists() else plain.with_name(plain.name + ".gz")


def read_gemma_assoc(path: str | Path) -> pd.DataFrame:
    """A GEMMA ``.assoc.txt`` table (gzip-aware by content, whatever the file name)."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return pd.read_csv(path, sep="\t", compression="gzip" if gz else None)


def read_block(path: str | Path) -> np.ndarray:
    """A square block (tab-separated) of a kinship matrix, values as the tool printed them."""
    return np.loadtxt(path, delimiter="\t", ndmin=2)


def read_diag(path: str | Path) -> np.ndarray:
    """A kinship diagonal, one value per line."""
    return np.loadtxt(path, ndmin=1)
