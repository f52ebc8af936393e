"""Multi-trait REML (``bl.reml(Y, K, X)``) against GEMMA's mvLMM, both in the same run.

    python benchmarks/multitrait.py [--n 2000] [--snps 5000] [--gemma /usr/bin/gemma]
                                    [--workdir DIR] [--seed 1]

Issue 12, speed: multi-trait REML ≥ 5× faster than GEMMA's mvLMM on the same data. Two data
sets, each written as PLINK files (and, for GEMMA, phenotypes in the .fam's columns 6 and 7):

- **simulated**: N = 2,000 (``--n``) samples × 5,000 SNPs (``--snps``) from ``bl.simulate``;
  two traits with h² = 0.5 and 0.3 and genetic correlation 0.6 (genetic values from the
  standardized genotypes), one covariate.
- **EUR**: the frozen eurA set (``tests/data/eur``, 366 × 2,431) with the two traits and
  covariates of ``tests/data/eur_mv`` (PHENO and SIM, GEMMA ``-n 1 3``).

Timed, each in this process or a subprocess started by it:

- GEMMA ``-gk 1`` (centred K; not in the ratio, reported for scale);
- GEMMA ``-lmm 1 -n 1 2`` (``-n 1 3`` on EUR): its eigendecomposition, the null mvLMM fit and
  the Wald scan of every SNP (the command users run);
- the same restricted by ``-snps`` to one SNP: the eigendecomposition and null fit only, the
  work that ``bl.reml`` does;
- ``bl.reml(Y, K, X)`` from the (centred, as ``-gk 1``) kinship: its eigendecomposition
  (``bl eigh of K``, cached on the Kinship) and the multi-trait REML fit with its standard
  errors (``bl.reml(Y) fit``); ``bl.reml(Y)`` is their sum;
- ``bl.reml(y, K, X)`` of the first trait alone (fit only, the eigenbasis reused), for scale.

Ratios: GEMMA time / multi-trait REML time, for the full command and for the null-only run.
Both tools use the BLAS threads the environment gives them (the same for both); the timings are
wall-clock seconds of one run each, the kinship not counted. On a shared or small machine run it
with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``: an OpenBLAS that starts more threads than
free cores made a 366 × 366 ``eigh`` 26× slower here (0.73 s instead of 0.028 s, load 6 on 2
cores), which swamps both tools' timings.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayeslmm as bl

ROOT = Path(__file__).resolve().parents[1]
EUR = ROOT / "tests" / "data" / "eur"
EUR_MV = ROOT / "tests" / "data" / "eur_mv"


def _gemma(gemma: str, args: list[str], cwd: Path) -> float:
    """Run GEMMA with ``args`` in ``cwd``; return its wall time in seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [gemma, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"gemma {' '.join(args)} failed:\n{done.stdout[-2000:]}")
    return elapsed


def _simulated(work: Path, n: int, n_snps: int, seed: int) -> tuple[str, str, str]:
    """Write the simulated set (PLINK + GEMMA covariates); return (prefix, covariates, -n)."""
    from bed_reader import to_bed

    data = bl.simulate(n, n_snps, 0.5, n_covariates=1, seed=seed)
    rng = np.random.default_rng(seed + 1)
    G = np.asarray(data.G, dtype=float)
    W = (G - G.mean(axis=0)) / np.where(G.std(axis=0) > 0, G.std(axis=0), 1.0)
    chol = np.linalg.cholesky(np.array([[1.0, 0.6], [0.6, 1.0]]))
    effects = rng.standard_normal((n_snps, 2)) @ chol.T / np.sqrt(n_snps)
    genetic = W @ effects
    genetic /= genetic.std(axis=0)
    h2 = np.array([0.5, 0.3])
    x = np.asarray(data.X, dtype=float).reshape(n, -1)[:, 0]
    Y = np.sqrt(h2) * genetic + np.sqrt(1 - h2) * rng.standard_normal((n, 2)) + 0.3 * x[:, None]
    ids = [str(s) for s in data.samples]
    prefix = work / "sim"
    to_bed(
        f"{prefix}.bed",
        G.astype(np.float32),
        properties={
            "fid": ids,
            "iid": ids,
            "sid": [f"rs{j + 1}" for j in range(n_snps)],
            "chromosome": ["1"] * n_snps,
            "bp_position": np.arange(1, n_snps + 1),
        },
    )
    fam = pd.DataFrame({"fid": ids, "iid": ids, "f": 0, "m": 0, "sex": 0, "t1": Y[:, 0]})
    fam["t2"] = Y[:, 1]
    fam.to_csv(f"{prefix}.fam", sep=" ", header=False, index=False, float_format="%.10g")
    cov = pd.DataFrame({"intercept": 1.0, "x": x})
    cov.to_csv(work / "sim.cov.txt", sep=" ", header=False, index=False, float_format="%.10g")
    return "sim", "sim.cov.txt", "1 2"


def _eur(work: Path) -> tuple[str, str, str]:
    """Copy the EUR two-trait set into ``work``; return (prefix, covariates, -n)."""
    for suffix in ("bed", "bim"):
        shutil.copy(EUR / f"eurA.{suffix}", work / f"eurA_mv.{suffix}")
    shutil.copy(EUR_MV / "eurA_mv.fam", work / "eurA_mv.fam")
    shutil.copy(EUR_MV / "eurA_mv.cov.txt", work / "eurA_mv.cov.txt")
    return "eurA_mv", "eurA_mv.cov.txt", "1 3"


def _bayeslmm_inputs(
    work: Path, prefix: str, covariates: str, columns: str
) -> tuple[pd.DataFrame, object, pd.DataFrame]:
    """The traits, centred kinship (as GEMMA -gk 1) and covariates of one set."""
    fam = pd.read_csv(work / f"{prefix}.fam", sep=r"\s+", header=None)
    # bl.read_plink reads a standard 6-column .fam; GEMMA's extra trait columns are read here.
    for suffix in ("bed", "bim"):
        shutil.copy(work / f"{prefix}.{suffix}", work / f"{prefix}_bl.{suffix}")
    fam.iloc[:, :6].to_csv(work / f"{prefix}_bl.fam", sep=" ", header=False, index=False)
    genotypes = bl.read_plink(str(work / f"{prefix}_bl"))
    K = bl.kinship(genotypes, "centered")
    ids = fam[1].astype(str).to_numpy()
    picked = [5 + int(c) - 1 for c in columns.split()]
    Y = pd.DataFrame(fam[picked].to_numpy(float), index=ids, columns=["trait1", "trait2"])
    cov = pd.read_csv(work / covariates, sep=r"\s+", header=None).to_numpy(float)
    X = pd.DataFrame(cov[:, 1:], index=ids, columns=[f"c{j}" for j in range(1, cov.shape[1])])
    return Y, K, X


def _one(name: str, work: Path, setup: tuple[str, str, str], gemma: str) -> dict[str, float]:
    prefix, covariates, columns = setup
    times: dict[str, float] = {}
    times["gemma -gk 1"] = _gemma(gemma, ["-bfile", prefix, "-gk", "1", "-o", prefix], work)
    kin = f"output/{prefix}.cXX.txt"
    base = ["-bfile", prefix, "-k", kin, "-c", covariates, "-lmm", "1", "-n", *columns.split()]
    times["gemma mvLMM"] = _gemma(gemma, [*base, "-o", f"{prefix}_mv"], work)
    first_snp = pd.read_csv(work / f"{prefix}.bim", sep=r"\s+", header=None, nrows=1)[1][0]
    (work / "one_snp.txt").write_text(f"{first_snp}\n")
    times["gemma mvLMM null"] = _gemma(
        gemma, [*base, "-snps", "one_snp.txt", "-o", f"{prefix}_mv1"], work
    )
    Y, K, X = _bayeslmm_inputs(work, prefix, covariates, columns)
    start = time.perf_counter()
    K.spectral()  # the eigendecomposition, cached on the Kinship for both fits below
    times["bl eigh of K"] = time.perf_counter() - start
    start = time.perf_counter()
    fit = bl.reml(Y, K, X)
    times["bl.reml(Y) fit"] = time.perf_counter() - start
    start = time.perf_counter()
    uni = bl.reml(Y["trait1"], K, X)
    times["bl.reml(y1) fit"] = time.perf_counter() - start
    times["bl.reml(Y)"] = times["bl eigh of K"] + times["bl.reml(Y) fit"]
    print(f"\n{name}: N = {Y.shape[0]}, traits {list(Y.columns)} (GEMMA -n {columns})")
    for what, seconds in times.items():
        print(f"  {what:<18} {seconds:8.3f} s")
    print(
        f"  ratio GEMMA mvLMM / bl.reml(Y):      {times['gemma mvLMM'] / times['bl.reml(Y)']:7.2f}×"
    )
    print(
        f"  ratio GEMMA null-only / bl.reml(Y):  "
        f"{times['gemma mvLMM null'] / times['bl.reml(Y)']:7.2f}×"
    )
    print(
        f"  ratio fits bl.reml(Y) / bl.reml(y1): "
        f"{times['bl.reml(Y) fit'] / times['bl.reml(y1) fit']:7.2f}×"
    )
    print(f"  bl.reml(Y): {_describe(fit)}")
    print(f"  bl.reml(y1): h2 = {uni.h2:.4f} (SE {uni.h2_se:.4f})")
    return times


def _describe(fit: object) -> str:
    parts = []
    for attr in ("h2", "rg"):
        value = getattr(fit, attr, None)
        if value is not None:
            parts.append(f"{attr} = {np.array2string(np.asarray(value), precision=4)}")
    return "; ".join(parts).replace("\n", " ")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--snps", type=int, default=5000)
    parser.add_argument("--gemma", default=shutil.which("gemma") or "/usr/bin/gemma")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bayeslmm_multitrait_"))
    work.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([args.gemma, "-license"], capture_output=True, text=True)
    print(f"GEMMA: {(version.stdout or version.stderr).strip().splitlines()[0]}")
    print(f"bayeslmm {bl.__version__}; work folder {work}")
    sim = work / "simulated"
    sim.mkdir(exist_ok=True)
    _one("simulated", sim, _simulated(sim, args.n, args.snps, args.seed), args.gemma)
    eur = work / "eur"
    eur.mkdir(exist_ok=True)
    _one("EUR (eurA)", eur, _eur(eur), args.gemma)


if __name__ == "__main__":
    main()
