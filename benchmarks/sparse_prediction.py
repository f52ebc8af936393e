"""Sparse-prior fit + prediction against GEMMA BSLMM ``-predict``, same split, in one run.

    python benchmarks/sparse_prediction.py [--quick] [--json OUT] [--n 1000] [--snps 10000]
        [--n-train 750] [--prior mixture|horseshoe|both] [--chains 4] [--draws 1000]
        [--tune 1000] [--thin 10] [--skip-eur] [--gemma /usr/bin/gemma] [--workdir DIR]
        [--seed 1]

Issue 12, speed: a sparse-prior fit and prediction on ~750 training samples × ~10,000 SNPs in
≤ 10× the time of GEMMA BSLMM (``-bslmm 1 -w 1000 -s 10000`` then ``-predict 1``) on the same
data and split, predicting the held-out samples at least as well. Two data sets, each written
as PLINK files that both tools read:

- **simulated** (the size target): ``bl.simulate(--n, --snps)`` genotypes (one population,
  MAF ≥ 0.05) written by the package's writer (``bayeslmm.data.simulation.write_cohort``),
  with a sparse + polygenic phenotype: 10 large-effect SNPs explaining 0.2 of the variance, a
  polygenic part over every SNP explaining 0.3 (the simulator's standardized-genotype values,
  rescaled), noise 0.5 (h² = 0.5, true PGE = 0.4). ``--n-train`` samples (a fixed-seed random
  subset) train, the others are held out.
- **EUR** (real data, accuracy): ``tests/data/eur`` eurA (366 × 2,431), a fixed-seed 80/20
  split. GEMMA's BSLMM takes no covariates, so both tools get PHENO minus its least-squares fit
  on covA.txt's four columns with the coefficients of the *training* samples (applied to all).

For each set and prior, timed in this process (GEMMA in subprocesses it starts):

- GEMMA ``-bslmm 1 -w 1000 -s 10000 -maf 0 -seed S`` on the .fam with the held-out phenotypes
  NA (GEMMA fits the samples with a phenotype), then ``-predict 1 -epm fit.param.txt -emu
  fit.log.txt`` (prediction from the per-SNP effects α + βγ and the estimated mean);
- bayeslmm: ``bl.snp_model(y_train, W_train, marginalize=False, prior=...)`` (build),
  ``bl.sample`` (``--chains`` × ``--draws`` after ``--tune``, the model's default sampler:
  the mixture's exact BSLMM-style MCMC, ``sampler="bslmm"``, ``--tune`` burn-in iterations
  and a draw kept every ``--thin`` iterations (``ModelInfo.extra["thin"]``, default 10);
  the horseshoe's exact blocked MCMC, ``sampler="gibbs"``, ``--tune`` burn-in iterations,
  every iteration kept),
  ``bl.predict(idata, genotypes=W_test)`` (predict); their sum is the fit + prediction time.

Printed: each stage's wall time, the ratio bayeslmm / GEMMA (target ≤ 10×), the held-out
accuracy of each tool (Pearson correlation of the predicted mean phenotype ``y_mean`` / GEMMA's
``.prdt.txt`` with the observed one, and the MSE), the posterior PVE and PGE beside the mean
of GEMMA's draws, and bayeslmm's largest R-hat (of ``pve``, ``pge``, ``sigma_e2``) and its
divergent transitions. ``--quick``: 200 samples × 500 SNPs (150 train), eurA's first 500
SNPs, 2 × 200 draws after 200 tuning: a smoke run of every step, not a measurement.

Timings are wall clock on a shared machine: read them as one noisy run. On a small machine run
it with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` (see ``benchmarks/multitrait.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bayeslmm as bl  # noqa: E402
from bayeslmm.data.simulation import write_cohort  # noqa: E402
from bayeslmm.families.base import info_of  # noqa: E402

EUR = ROOT / "tests" / "data" / "eur"

#: GEMMA's BSLMM run of the issue's target: burn-in and sampling iterations.
GEMMA_BURNIN, GEMMA_SAMPLING = 1000, 10000
#: The issue's target: bayeslmm fit + prediction within this many times GEMMA's.
TARGET_RATIO = 10.0
#: Simulated architecture: large-effect SNPs, their variance, the polygenic variance.
N_LARGE, VAR_LARGE, VAR_POLYGENIC = 10, 0.2, 0.3


@dataclasses.dataclass
class Split:
    """One data set, written for both tools: PLINK prefix and the train/test phenotypes."""

    name: str
    work: Path
    prefix: str
    y: pd.Series  # every sample's phenotype (by IID), as both tools get it
    train: np.ndarray  # IIDs
    test: np.ndarray


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


def _write_gemma_fam(split: Split) -> None:
    """The .fam GEMMA reads: the phenotype of the training samples, NA for the held-out ones."""
    fam = pd.read_csv(split.work / f"{split.prefix}.fam", sep=r"\s+", header=None, dtype=str)
    iid = fam[1].to_numpy()
    values = split.y.reindex(iid).to_numpy(float)
    text = np.where(np.isin(iid, split.train), np.char.mod("%.10g", values), "NA")
    fam[5] = text
    fam.to_csv(split.work / f"{split.prefix}.fam", sep=" ", header=False, index=False)


def _random_split(ids: np.ndarray, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(ids))
    return np.sort(ids[order[:n_train]]), np.sort(ids[order[n_train:]])


def simulated(work: Path, n: int, n_snps: int, n_train: int, seed: int) -> Split:
    """Simulate the sparse + polygenic cohort and write it as PLINK files."""
    data = bl.simulate(n, n_snps, 0.5, seed=seed)
    rng = np.random.default_rng(seed + 1)
    W = np.asarray(data.W)
    polygenic = data.truth["u"] / np.std(data.truth["u"]) * np.sqrt(VAR_POLYGENIC)
    large = np.sort(rng.choice(n_snps, size=min(N_LARGE, n_snps), replace=False))
    sparse = W[:, large] @ rng.standard_normal(large.size)
    sparse = sparse / np.std(sparse) * np.sqrt(VAR_LARGE)
    noise = rng.normal(0.0, np.sqrt(1.0 - VAR_LARGE - VAR_POLYGENIC), size=n)
    y = 1.0 + sparse + polygenic + noise
    truth = {**data.truth, "large": large, "h2": VAR_LARGE + VAR_POLYGENIC}
    write_cohort(dataclasses.replace(data, y=y, truth=truth), work / "sim", overwrite=True)
    ids = np.asarray(data.samples, dtype=str)
    train, test = _random_split(ids, n_train, seed + 2)
    split = Split("simulated", work, "sim", pd.Series(y, index=ids), train, test)
    _write_gemma_fam(split)
    return split


def eur(work: Path, seed: int, n_snps: int | None) -> Split:
    """eurA with an 80/20 split; the phenotype residualized on the training covariate fit."""
    bim = pd.read_csv(EUR / "eurA.bim", sep=r"\s+", header=None)
    if n_snps is None:
        shutil.copy(EUR / "eurA.bed", work / "eurA.bed")
        bim.to_csv(work / "eurA.bim", sep="\t", header=False, index=False)
    else:  # --quick: the first n_snps SNPs, rewritten through the package's reader and writer
        genotypes = bl.read_plink(EUR / "eurA")
        G = genotypes.read(snps=slice(0, n_snps))
        snps = genotypes.snps.iloc[:n_snps].reset_index(drop=True)
        ids = np.asarray(genotypes.samples, dtype=str)
        dummy = bl.simulate(len(ids), n_snps, 0.5, seed=seed)  # only a container for the writer
        sub = dataclasses.replace(dummy, G=G, samples=ids, snps=snps, X=np.empty((len(ids), 0)))
        write_cohort(sub, work / "eurA", overwrite=True)
    fam = pd.read_csv(EUR / "eurA.fam", sep=r"\s+", header=None)
    ids = fam[1].astype(str).to_numpy()
    fam.to_csv(work / "eurA.fam", sep=" ", header=False, index=False)
    train, test = _random_split(ids, int(round(0.8 * len(ids))), seed)
    covariates = np.loadtxt(EUR / "covA.txt")
    pheno = fam[5].to_numpy(float)
    in_train = np.isin(ids, train)
    coef, *_ = np.linalg.lstsq(covariates[in_train], pheno[in_train], rcond=None)
    y = pd.Series(pheno - covariates @ coef, index=ids)
    split = Split("EUR (eurA)", work, "eurA", y, train, test)
    _write_gemma_fam(split)
    return split


def run_gemma(split: Split, gemma: str, seed: int) -> dict[str, Any]:
    """GEMMA BSLMM fit on the training samples, then -predict 1; times and predictions."""
    base = ["-bfile", split.prefix, "-maf", "0"]
    t_fit = _gemma(
        gemma,
        [*base, "-bslmm", "1", "-w", str(GEMMA_BURNIN), "-s", str(GEMMA_SAMPLING)]
        + ["-seed", str(seed), "-o", "bslmm"],
        split.work,
    )
    t_pred = _gemma(
        gemma,
        [*base, "-epm", "output/bslmm.param.txt", "-emu", "output/bslmm.log.txt"]
        + ["-predict", "1", "-o", "bslmm_pred"],
        split.work,
    )
    fam = pd.read_csv(split.work / f"{split.prefix}.fam", sep=r"\s+", header=None, dtype=str)
    prdt = np.loadtxt(split.work / "output" / "bslmm_pred.prdt.txt", dtype=str)
    predicted = pd.Series(
        pd.to_numeric(pd.Series(prdt), errors="coerce").to_numpy(), index=fam[1].to_numpy()
    )
    hyp = pd.read_csv(split.work / "output" / "bslmm.hyp.txt", sep=r"\s+")
    return {
        "time_fit": t_fit,
        "time_predict": t_pred,
        "time": t_fit + t_pred,
        "prediction": predicted.reindex(split.test).to_numpy(float),
        "pve": float(hyp["pve"].mean()),
        "pge": float(hyp["pge"].mean()),
    }


def run_bayeslmm(
    split: Split, prior: str, chains: int, draws: int, tune: int, seed: int, thin: int = 10
) -> dict[str, Any]:
    """bayeslmm's sparse prior fitted on the training samples, then bl.predict of the others."""
    import arviz_stats as azs

    genotypes = bl.read_plink(split.work / split.prefix)
    ids = np.asarray(genotypes.samples, dtype=str)
    G = pd.DataFrame(genotypes.read(), index=ids, columns=genotypes.snps["snp"].to_numpy())
    y_train = split.y.reindex(split.train)
    start = time.perf_counter()
    model = bl.snp_model(y_train, G.loc[split.train], marginalize=False, prior=prior)
    info_of(model).extra["thin"] = thin  # iterations per kept draw of sampler="bslmm"
    t_build = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R-hat and divergences are reported below
        idata = bl.sample(
            model, draws=draws, chains=chains, tune=tune, random_seed=seed, progressbar=False
        )
    t_sample = time.perf_counter() - start
    start = time.perf_counter()
    prediction = bl.predict(idata, genotypes=G.loc[split.test], random_seed=seed)
    t_predict = time.perf_counter() - start
    posterior = idata["posterior"]
    rhat = max(
        float(np.max(azs.rhat(posterior[name]).values))
        for name in ("pve", "pge", "sigma_e2")
        if name in posterior
    )
    stats = idata.get("sample_stats")
    divergent = int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0
    return {
        "time_build": t_build,
        "time_sample": t_sample,
        "time_predict": t_predict,
        "time": t_build + t_sample + t_predict,
        "prediction": prediction.summary["y_mean"].reindex(split.test).to_numpy(float),
        "pve": float(posterior["pve"].mean()),
        "pge": float(posterior["pge"].mean()) if "pge" in posterior else float("nan"),
        "max_rhat": rhat,
        "divergent": divergent,
        "sampler": str(idata.attrs.get("sampler", "")),
        "thin": idata.attrs.get("thin", 1),
    }


def accuracy(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Pearson correlation and mean squared error of held-out predictions."""
    return {
        "r": float(np.corrcoef(observed, predicted)[0, 1]),
        "mse": float(np.mean((observed - predicted) ** 2)),
    }


def one_set(split: Split, priors: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Both tools on one split; print and return the timings and accuracies."""
    observed = split.y.reindex(split.test).to_numpy(float)
    gemma = run_gemma(split, args.gemma, args.seed)
    n_snps = len(pd.read_csv(split.work / f"{split.prefix}.bim", sep=r"\s+", header=None))
    print(
        f"\n{split.name}: {len(split.train)} training × {n_snps} SNPs, "
        f"{len(split.test)} held out (phenotype variance {np.var(observed):.4f})"
    )
    g_acc = accuracy(observed, gemma.pop("prediction"))
    print(
        f"  GEMMA -bslmm 1 -w {GEMMA_BURNIN} -s {GEMMA_SAMPLING}: fit {gemma['time_fit']:8.2f} s, "
        f"-predict {gemma['time_predict']:6.2f} s, total {gemma['time']:8.2f} s"
    )
    print(
        f"    held out: r = {g_acc['r']:.4f}, MSE = {g_acc['mse']:.4f}; "
        f"mean PVE {gemma['pve']:.3f}, PGE {gemma['pge']:.3f}"
    )
    out: dict[str, Any] = {"gemma": {**gemma, **g_acc}, "n_train": len(split.train)}
    out["n_test"], out["n_snps"] = len(split.test), n_snps
    for prior in priors:
        fit = run_bayeslmm(split, prior, args.chains, args.draws, args.tune, args.seed, args.thin)
        acc = accuracy(observed, fit.pop("prediction"))
        ratio = fit["time"] / gemma["time"]
        verdict = "met" if ratio <= TARGET_RATIO else "missed"
        print(
            f"  bayeslmm {prior} ({fit['sampler']}, {args.chains} × {args.draws} draws, thin "
            f"{fit['thin']}, {args.tune} tune): "
            f"build {fit['time_build']:.2f} s, sample {fit['time_sample']:.2f} s, "
            f"predict {fit['time_predict']:.2f} s, total {fit['time']:.2f} s"
        )
        print(
            f"    held out: r = {acc['r']:.4f}, MSE = {acc['mse']:.4f}; posterior PVE "
            f"{fit['pve']:.3f}, PGE {fit['pge']:.3f}; max R-hat {fit['max_rhat']:.3f}, "
            f"{fit['divergent']} divergent"
        )
        print(
            f"    ratio bayeslmm / GEMMA time: {ratio:.2f}× (target ≤ {TARGET_RATIO:g}×: "
            f"{verdict}); r {acc['r'] - g_acc['r']:+.4f}, MSE {acc['mse'] - g_acc['mse']:+.4f} "
            "vs GEMMA"
        )
        out[prior] = {**fit, **acc, "ratio": ratio}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run of every step")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--snps", type=int, default=10000)
    parser.add_argument("--n-train", type=int, default=750)
    parser.add_argument("--prior", choices=("mixture", "horseshoe", "both"), default="mixture")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--thin", type=int, default=10, help="bslmm: iterations per draw")
    parser.add_argument("--skip-eur", action="store_true")
    parser.add_argument("--gemma", default=shutil.which("gemma") or "/usr/bin/gemma")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    eur_snps = None
    if args.quick:
        args.n, args.snps, args.n_train = 200, 500, 150
        args.chains, args.draws, args.tune = 2, 200, 200
        eur_snps = 500
    priors = ["mixture", "horseshoe"] if args.prior == "both" else [args.prior]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bayeslmm_sparse_prediction_"))
    work.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([args.gemma, "-license"], capture_output=True, text=True)
    print(f"GEMMA: {(version.stdout or version.stderr).strip().splitlines()[0]}")
    print(f"bayeslmm {bl.__version__}; work folder {work}; seed {args.seed}")
    results: dict[str, Any] = {"args": vars(args)}
    sim_dir = work / "simulated"
    sim_dir.mkdir(exist_ok=True)
    split = simulated(sim_dir, args.n, args.snps, args.n_train, args.seed)
    results["simulated"] = one_set(split, priors, args)
    if not args.skip_eur:
        eur_dir = work / "eur"
        eur_dir.mkdir(exist_ok=True)
        results["eur"] = one_set(eur(eur_dir, args.seed, eur_snps), priors, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
