"""Inputs and summaries of the frozen GEMMA BSLMM runs (called by run_gemma.sh).

    python bslmm_files.py phenotype EURDIR PREFIX   # PREFIX.fam: eurA's phenotype, covariates out
    python bslmm_files.py summarize OUTDIR HERE S1 [S2 ...]   # the frozen tables from the .hyp.txt

GEMMA's BSLMM takes no covariates (-c), so column 6 of PREFIX.fam is eurA's PHENO minus its
least-squares fit on the four columns of covA.txt (intercept, CAT_COV == B, QCOV1, QCOV2),
printed to 10 significant digits.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: The hyperparameters of a BSLMM .hyp.txt, in GEMMA's column order.
COLUMNS = ["h", "pve", "rho", "pge", "pi", "n_gamma"]


def phenotype(eur: Path, prefix: str) -> None:
    """Write PREFIX.fam: eurA.fam with PHENO replaced by its residual on covA.txt."""
    fam = pd.read_csv(eur / "eurA.fam", sep=r"\s+", header=None)
    covariates = np.loadtxt(eur / "covA.txt")
    y = fam[5].to_numpy(float)
    coef, *_ = np.linalg.lstsq(covariates, y, rcond=None)
    fam[5] = y - covariates @ coef
    fam.to_csv(f"{prefix}.fam", sep=" ", header=False, index=False, float_format="%.10g")


def summarize(outdir: Path, here: Path, seeds: list[str]) -> None:
    """Write the thinned draws of every seed (gzipped) and their per-seed summary table."""
    frames = []
    for seed in seeds:
        hyp = pd.read_csv(outdir / f"eurA_bslmm_s{seed}.hyp.txt", sep=r"\s+")
        hyp = hyp[COLUMNS]
        hyp.insert(0, "seed", int(seed))
        frames.append(hyp)
    draws = pd.concat(frames, ignore_index=True)
    with gzip.GzipFile(here / "eurA_bslmm.hyp.tsv.gz", "wb", mtime=0) as handle:
        handle.write(draws.to_csv(sep="\t", index=False, float_format="%.6e").encode())
    rows = []
    for seed, group in draws.groupby("seed", sort=True):
        for name in COLUMNS:
            values = group[name].to_numpy(float)
            low, median, high = np.quantile(values, [0.025, 0.5, 0.975])
            rows.append(
                {
                    "seed": seed,
                    "parameter": name,
                    "n_draws": values.size,
                    "mean": values.mean(),
                    "sd": values.std(ddof=1),
                    "q2.5": low,
                    "q50": median,
                    "q97.5": high,
                }
            )
    table = pd.DataFrame(rows)
    table.to_csv(here / "eurA_bslmm.summary.tsv", sep="\t", index=False, float_format="%.6g")


if __name__ == "__main__":
    if sys.argv[1] == "phenotype":
        phenotype(Path(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "summarize":
        summarize(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
    else:
        raise SystemExit(__doc__)
