"""Multi-trait REML (``bl.reml(Y, K, X)``) against GEMMA's mvLMM, both in the same run.

    python benchmarks/multitrait.py [--n 2000] [--snps 5000] [--gemma /usr/bin/gemma]
                                    [--workdir DIR] [--seed 1] [--chains 4] [--draws 1000]
                                    [--skip-posterior] [--skip-reml] [--json OUT]

Issue 12, speed: multi-trait REML ≥ 5× faster than GEMMA's mvLMM on the same data, and the
two-trait posterior (4 × 1,000 draws, R-hat ≤ 1.01) in ≤ 3× the univariate time. Two data
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

``--skip-reml`` leaves out GEMMA and both REML stages (the simulated set is still written and
its kinship built, for the posterior stage).

Posterior stage (simulated set, N = 2,000, known rg = 0.6; ``--skip-posterior`` leaves it out):
``bl.sample(bl.kinship_model(Y, K, X))`` of both traits against ``bl.sample(bl.kinship_model(y,
K, X))`` of the first trait, the same K (its eigendecomposition cached, not timed) and
covariates, ``--chains`` × ``--draws`` after as many tuning draws, nutpie, one seed. Each model
is first sampled briefly (2 × 10 draws), untimed in the ratio: that compiles it (bayeslmm keeps
the compilation by model structure), so the timed call is model build, sampling and
post-processing; the warm-up times (compilation, from PyTensor's disk cache when it has the
structure) are printed too. The ratio is multi / univariate (target ≤ 3×); beside it the ratio of
the process's CPU time over the same calls (all threads; less sensitive than wall time to other
processes on a shared machine) and NUTS's leapfrog steps per draw of each. Printed beside them: the
largest R-hat over the posterior variables (``h2``, ``sigma_p``, ``rg``, ``re``, ``Sigma_g``,
``Sigma_e``, ``beta``; the constant diagonals of ``rg``/``re`` have none) with the target
≤ 1.01, divergent transitions, and rg's posterior mean and 95 % interval against the truth.
Both tools use the BLAS threads the environment gives them (the same for both); the timings are
wall-clock seconds of one run each, the kinship not counted. On a shared or small machine run it
with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``: an OpenBLAS that starts more threads than
free cores made a 366 × 366 ``eigh`` 26× slower here (0.73 s instead of 0.028 s, load 6 on 2
cores), which swamps both tools' timings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

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


#: Targets of issue 12: posterior time of two traits / one trait, and R-hat.
TARGET_POSTERIOR_RATIO, TARGET_RHAT = 3.0, 1.01
#: The simulated set's genetic correlation (see _simulated).
SIMULATED_RG = 0.6


def _one(
    name: str, work: Path, setup: tuple[str, str, str], gemma: str
) -> tuple[dict[str, float], tuple[pd.DataFrame, object, pd.DataFrame]]:
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
    return times, (Y, K, X)


def _max_rhat(posterior: Any) -> float:
    """The largest R-hat over every posterior variable (NaN for constants ignored)."""
    import arviz_stats as azs

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 for the constant diagonals
        values = [
            np.asarray(azs.rhat(posterior[name]).values, float) for name in posterior.data_vars
        ]
    return float(np.nanmax(np.concatenate([v.ravel() for v in values])))


def _fit(model_data: tuple, chains: int, draws: int, seed: int) -> tuple[float, float, Any]:
    """Wall and CPU time (this process, all threads) of building and sampling one kinship
    model, and the result."""
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R-hat and divergences are reported by the caller
        idata = bl.sample(
            bl.kinship_model(*model_data),
            draws=draws,
            chains=chains,
            tune=draws,
            random_seed=seed,
            progressbar=False,
        )
    return time.perf_counter() - start, time.process_time() - cpu, idata


def _posterior(
    Y: pd.DataFrame, K: object, X: pd.DataFrame, chains: int, draws: int, seed: int
) -> dict[str, Any]:
    """Two-trait posterior against the univariate one of the first trait, in this run."""
    K.spectral()  # cached: neither fit pays for the eigendecomposition
    warm_multi, _, _ = _fit((Y, K, X), 2, 10, seed)  # compiles; the timed fits reuse it
    warm_uni, _, _ = _fit((Y["trait1"], K, X), 2, 10, seed)
    t_multi, cpu_multi, multi = _fit((Y, K, X), chains, draws, seed)
    t_uni, cpu_uni, uni = _fit((Y["trait1"], K, X), chains, draws, seed)
    out: dict[str, Any] = {"time_multi": t_multi, "time_uni": t_uni, "ratio": t_multi / t_uni}
    out["cpu_multi"], out["cpu_uni"], out["cpu_ratio"] = cpu_multi, cpu_uni, cpu_multi / cpu_uni
    out["warmup_multi"], out["warmup_uni"] = warm_multi, warm_uni
    for label, idata in (("multi", multi), ("uni", uni)):
        stats = idata.get("sample_stats")
        if stats is not None and "n_steps" in stats:
            out[f"steps_per_draw_{label}"] = float(stats["n_steps"].mean())
        out[f"max_rhat_{label}"] = _max_rhat(idata["posterior"])
        out[f"divergent_{label}"] = (
            int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0
        )
    rg = multi["posterior"]["rg"].values[..., 0, 1].ravel()
    h2 = multi["posterior"]["h2"].values.reshape(-1, Y.shape[1]).mean(axis=0)
    out["rg_mean"], out["rg_low"], out["rg_high"] = (
        float(rg.mean()),
        *(float(q) for q in np.quantile(rg, [0.025, 0.975])),
    )
    out["h2_multi"] = h2.tolist()
    out["h2_uni"] = float(uni["posterior"]["h2"].mean())
    print(
        f"\nposterior, simulated (N = {Y.shape[0]}, true rg = {SIMULATED_RG}): "
        f"{chains} chains × {draws} draws after {draws} tuning, nutpie, seed {seed}"
    )
    print(f"  warm-up (compile) two traits  {warm_multi:8.2f} s, one trait {warm_uni:8.2f} s")
    print(f"  bl.sample(kinship_model(Y))   {t_multi:8.2f} s  (2 traits)")
    print(f"  bl.sample(kinship_model(y1))  {t_uni:8.2f} s  (1 trait)")
    verdict = "met" if out["ratio"] <= TARGET_POSTERIOR_RATIO else "missed"
    print(f"  ratio two traits / one trait: {out['ratio']:7.2f}× (target ≤ 3×: {verdict})")
    print(
        f"  CPU time (all threads): {cpu_multi:.2f} s / {cpu_uni:.2f} s = "
        f"{out['cpu_ratio']:.2f}× (less sensitive to other processes on a shared machine)"
    )
    if "steps_per_draw_multi" in out and "steps_per_draw_uni" in out:
        print(
            f"  leapfrog steps per draw: {out['steps_per_draw_multi']:.2f} (2 traits), "
            f"{out['steps_per_draw_uni']:.2f} (1 trait)"
        )
    for label in ("multi", "uni"):
        rhat = out[f"max_rhat_{label}"]
        print(
            f"  max R-hat ({label}): {rhat:.4f} (target ≤ {TARGET_RHAT}: "
            f"{'met' if rhat <= TARGET_RHAT else 'missed'}), "
            f"{out[f'divergent_{label}']} divergent"
        )
    print(
        f"  rg: {out['rg_mean']:.4f} [{out['rg_low']:.4f}, {out['rg_high']:.4f}]; h2 two-trait "
        f"{np.array2string(h2, precision=4)}, one-trait {out['h2_uni']:.4f}"
    )
    return out


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
    parser.add_argument("--chains", type=int, default=4, help="posterior stage")
    parser.add_argument("--draws", type=int, default=1000, help="posterior stage (and tune)")
    parser.add_argument("--skip-posterior", action="store_true")
    parser.add_argument("--skip-reml", action="store_true", help="no GEMMA, no REML stages")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bayeslmm_multitrait_"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_reml:
        version = subprocess.run([args.gemma, "-license"], capture_output=True, text=True)
        print(f"GEMMA: {(version.stdout or version.stderr).strip().splitlines()[0]}")
    print(f"bayeslmm {bl.__version__}; work folder {work}")
    sim = work / "simulated"
    sim.mkdir(exist_ok=True)
    results: dict[str, Any] = {"args": vars(args)}
    setup = _simulated(sim, args.n, args.snps, args.seed)
    if args.skip_reml:
        sim_data = _bayeslmm_inputs(sim, *setup)
    else:
        results["simulated"], sim_data = _one("simulated", sim, setup, args.gemma)
        eur = work / "eur"
        eur.mkdir(exist_ok=True)
        results["eur"], _ = _one("EUR (eurA)", eur, _eur(eur), args.gemma)
    if not args.skip_posterior:
        results["posterior"] = _posterior(*sim_data, args.chains, args.draws, args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
