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


# --------------------------------------------------------------------------------------------
# GEMMA BSLMM (-bslmm 1), frozen in tests/data/eur_bslmm by its run_gemma.sh
# --------------------------------------------------------------------------------------------

BSLMM_DIR = Path(__file__).resolve().parent / "data" / "eur_bslmm"

#: The hyperparameters of a BSLMM ``.hyp.txt``, in GEMMA's column order.
BSLMM_HYPERPARAMETERS = ("h", "pve", "rho", "pge", "pi", "n_gamma")


def read_bslmm_hyp(path: str | Path) -> pd.DataFrame:
    """Hyperparameter draws of GEMMA BSLMM: a ``.hyp.txt`` or the frozen thinned table.

    Columns :data:`BSLMM_HYPERPARAMETERS` (and ``seed`` for the frozen table, which holds every
    seed's draws); gzip-aware by content. GEMMA writes a draw every ``-rpace`` iterations after
    the ``-w`` burn-in: h (the prior's PVE parameter), pve, rho (share of the genetic
    variance the sparse effects are allowed, a prior parameter), pge (realized share of the
    genetic variance from the sparse effects), pi (probability a SNP is in the sparse set) and
    n_gamma (the number in it).
    """
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    table = pd.read_csv(path, sep=r"\s+", compression="gzip" if gz else None)
    return table.loc[:, [c for c in ("seed", *BSLMM_HYPERPARAMETERS) if c in table.columns]]


def read_bslmm_summary(path: str | Path | None = None) -> pd.DataFrame:
    """The frozen per-seed BSLMM summary (mean, sd, 2.5/50/97.5 % quantiles per parameter).

    One row per (``seed``, ``parameter``); columns ``n_draws``, ``mean``, ``sd``, ``q2.5``,
    ``q50``, ``q97.5``. Default: ``tests/data/eur_bslmm/eurA_bslmm.summary.tsv``.
    """
    return pd.read_csv(path or BSLMM_DIR / "eurA_bslmm.summary.tsv", sep="\t")


def read_bslmm_log(path: str | Path) -> dict:
    """Scalars of a BSLMM log: those of :func:`read_gemma_log` plus the MCMC lines.

    Adds ``h_init``, ``rho_init``, ``pi_init``, ``n_gamma_init`` (GEMMA's starting values, from
    its null LMM and single-SNP tests), ``seed`` and ``acceptance``.
    """
    out = read_gemma_log(path)
    keys = {
        "initial value of h": "h_init",
        "initial value of rho": "rho_init",
        "initial value of pi": "pi_init",
        "initial value of |gamma|": "n_gamma_init",
        "random seed": "seed",
        "acceptance ratio": "acceptance",
    }
    for line in Path(path).read_text().splitlines():
        match = re.match(r"##\s*(.+?)\s*=\s*(.+?)\s*$", line)
        if match and match.group(1) in keys:
            out[keys[match.group(1)]] = float(match.group(2))
    return out
