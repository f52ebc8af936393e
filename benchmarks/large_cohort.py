"""Large cohorts (issue 11): files → Gram → REML, posterior of h², LOCO scan; memory; dask.

    python benchmarks/large_cohort.py [--n 100000] [--m 5000] [--t 50000] [--chromosomes 22]
        [--draws 1000] [--chains 4] [--switch-n 1000,2000,4000,8000] [--dask-snps 10000]
        [--stages files,gemm,reml,posterior,scan,dask,switch] [--workdir DIR] [--json PATH]

A cohort of N samples and T SNPs on 22 chromosomes is simulated straight to PLINK files
(``bl.simulate(..., out=prefix)``, streamed); the model SNPs are M of them, evenly spaced (an
LD-pruned panel stands in for them); every SNP is tested. Each stage runs in its own Python
process, so that its peak resident memory (``ru_maxrss``) is its own:

- ``files``: the simulated cohort written (.bed/.bim/.fam, phenotype, covariates).
- ``gemm``: the machine's float64 GEMM rate, a (M × 4096)(4096 × M) product (best of 3), with
  all threads and with one; the reference of the Gram's flop rate (target ≥ 50 %).
- ``reml``: ``bl.gram`` (N·M² flops), the eigendecomposition of W'W (``Gram.subset``), one
  W'[1, X, y] pass (``Gram.project``), ``bl.reml(y, gram, X)``. Target files → REML ≤ 4 min.
- ``posterior``: ``bl.gram``, ``bl.snp_model(y, gram, X)``, ``bl.sample`` (4 × 1,000 draws,
  R-hat ≤ 1.01). Target files → posterior ≤ 5 min.
- ``scan``: ``bl.gram`` and ``bl.scan(genotypes, y, K=gram, X=X)`` of the T SNPs with LOCO.
  Target ≤ 20 min.
- ``dask``: ``bl.gram(..., client=client)`` and the scan of ``--dask-snps`` SNPs on a
  ``LocalCluster`` of 1 worker and of 2 workers of 1 thread each. Target ≥ 1.7×. (The peak
  memory is the client's; the workers are other processes.)
- ``switch``: the N×N path (``bl.kinship`` + eigh inside ``bl.reml``) against the Gram path
  (``bl.gram`` + ``bl.reml``) on the first n samples, M fixed, for each n of ``--switch-n``:
  where the Gram path becomes the cheaper one.

Every stage also fits the ≤ 2 GB target of peak memory. At the end: a projection to
N = 500,000, M = 20,000 on 32 workers from the measured per-block rates. A stage whose API has
not landed yet (the package's "so far"/"not yet" InputError, or a keyword it does not take
yet) is reported as "not available yet", so the script runs on any version of the package.

The cohort is kept in ``--workdir`` (default: a new temporary folder) and reused by a later run
with the same sizes and seed (``--stages`` without ``files``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("files", "gemm", "reml", "posterior", "scan", "dask", "switch")
H2 = 0.5
SEED = 1
N_COVARIATES = 2

#: Targets of the issue (seconds, bytes, ratios).
TARGET_POSTERIOR = 300.0
TARGET_REML = 240.0
TARGET_SCAN = 1200.0
TARGET_RSS = 2e9
TARGET_GEMM_SHARE = 0.5
TARGET_DASK = 1.7

#: The projection (issue 11, "Speed and memory").
PROJECT_N, PROJECT_M, PROJECT_WORKERS = 500_000, 20_000, 32

GEMM_ROWS = 4096


class NotYet(Exception):
    """The stage needs an API that has not landed in the package yet."""


# --------------------------------------------------------------------------------------------
# stages (each runs in its own process: ``--stage NAME``)


def _not_yet(exc: BaseException) -> bool:
    """Whether ``exc`` says that the package does not offer this yet."""
    from bayeslmm.errors import InputError

    text = str(exc)
    if isinstance(exc, InputError):  # (a K that is a Gram, where only matrices are read yet)
        return any(word in text for word in ("so far", "not yet", "not 'Gram'"))
    return isinstance(exc, TypeError) and "unexpected keyword argument" in text


def _attempt(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, with the package's "not yet" turned into :class:`NotYet`."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        if _not_yet(exc):
            raise NotYet(f"{type(exc).__name__}: {exc}") from None
        raise


def _prefix(args: argparse.Namespace) -> Path:
    return Path(args.workdir) / f"cohort_n{args.n}_t{args.t}_c{args.chromosomes}_s{SEED}"


def model_snps(t: int, m: int) -> np.ndarray:
    """M model SNPs among T, evenly spaced (every chromosome has its share, for LOCO)."""
    return np.unique(np.linspace(0, t - 1, min(m, t)).round().astype(np.intp))


def _load(args: argparse.Namespace, n: int | None = None) -> tuple[Any, Any, Any]:
    """The genotypes (lazy), y and X indexed by IID (the first n samples when n is given)."""
    import pandas as pd

    import bayeslmm as bl

    prefix = _prefix(args)
    genotypes = bl.read_plink(prefix)
    pheno = pd.read_csv(f"{prefix}.pheno.tsv", sep="\t", dtype={"FID": str, "IID": str})
    covar = pd.read_csv(f"{prefix}.covar.tsv", sep="\t", dtype={"FID": str, "IID": str})
    y = pheno.set_index("IID")["y"]
    X = covar.set_index("IID").drop(columns="FID")
    if n is not None:
        y, X = y.iloc[:n], X.iloc[:n]
    return genotypes, y, X


def _clock() -> float:
    return time.perf_counter()


def stage_files(args: argparse.Namespace) -> dict:
    import bayeslmm as bl

    t0 = _clock()
    bl.simulate(
        args.n,
        args.t,
        H2,
        n_covariates=N_COVARIATES,
        n_populations=2,
        fst=0.02,
        n_chromosomes=args.chromosomes,
        seed=SEED,
        out=_prefix(args),
        overwrite=True,
    )
    size = Path(f"{_prefix(args)}.bed").stat().st_size
    return {"seconds": _clock() - t0, "bed_bytes": size}


def _gemm_rate(m: int, rows: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((rows, m))
    A.T @ A  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = _clock()
        A.T @ A
        best = min(best, _clock() - t0)
    return 2.0 * rows * m * m / best


def stage_gemm(args: argparse.Namespace) -> dict:
    from threadpoolctl import threadpool_limits

    m = len(model_snps(args.t, args.m))
    rate = _gemm_rate(m, GEMM_ROWS)
    with threadpool_limits(1):
        rate1 = _gemm_rate(m, GEMM_ROWS // 2, repeats=2)
    rng = np.random.default_rng(1)
    A = rng.standard_normal((m, m))
    A = A @ A.T  # a symmetric M×M, as W'W: its eigh is the projection's reference (∝ M³)
    eigh = math.inf
    for _ in range(2):
        t0 = _clock()
        np.linalg.eigh(A)
        eigh = min(eigh, _clock() - t0)
    return {
        "flops_per_s": rate,
        "flops_per_s_1_thread": rate1,
        "shape": [m, GEMM_ROWS, m],
        "eigh_seconds": eigh,
    }


def _gram(genotypes: Any, args: argparse.Namespace, **kwargs: Any) -> tuple[Any, float]:
    import bayeslmm as bl

    t0 = _clock()
    gram = _attempt(bl.gram, genotypes, snps=model_snps(args.t, args.m), **kwargs)
    return gram, _clock() - t0


def stage_reml(args: argparse.Namespace) -> dict:
    import bayeslmm as bl

    genotypes, y, X = _load(args)
    gram, t_gram = _gram(genotypes, args)
    t0 = _clock()
    gram.subset()
    t_eigh = _clock() - t0
    A = np.column_stack([np.ones(len(y)), X.to_numpy(), y.to_numpy()])
    t0 = _clock()
    gram.project(A)
    t_wy = _clock() - t0
    t0 = _clock()
    fit = bl.reml(y, gram, X)
    t_reml = _clock() - t0
    return {
        "gram": t_gram,
        "eigh": t_eigh,
        "wty": t_wy,
        "reml": t_reml,
        # files → REML: what bl.gram + bl.reml cost in a fresh process (bl.reml reused the
        # decomposition timed above and made its own W'y pass)
        "total": t_gram + t_eigh + t_reml,
        "n": gram.n_samples,
        "m": gram.n_snps,
        "h2": fit.h2,
        "h2_se": fit.h2_se,
    }


def stage_posterior(args: argparse.Namespace) -> dict:
    import bayeslmm as bl

    genotypes, y, X = _load(args)
    gram, t_gram = _gram(genotypes, args)
    t0 = _clock()
    model = _attempt(bl.snp_model, y, gram, X)
    t_model = _clock() - t0
    t0 = _clock()
    idata = _attempt(
        bl.sample, model, draws=args.draws, chains=args.chains, random_seed=SEED, progressbar=False
    )
    t_sample = _clock() - t0
    table = bl.heritability(idata)
    return {
        "gram": t_gram,
        "model": t_model,
        "sample": t_sample,
        "total": t_gram + t_model + t_sample,
        "h2_mean": float(table.loc["h2", "mean"]),
        "h2_sd": float(table.loc["h2", "sd"]),
        "r_hat": float(table["r_hat"].max()),
        "draws": args.draws,
        "chains": args.chains,
    }


class _LocoClock:
    """Time LOCO by update's null fits and the whole Gram's eigendecomposition in a scan.

    Wraps ``bayeslmm.gwas.lowrank.loco_null`` and ``whole_gram`` (both run in this process,
    also with a dask client): the projection scales them as M³.
    """

    def __init__(self) -> None:
        from bayeslmm.gwas import lowrank

        self.fits, self.fit_seconds, self.whole_seconds = 0, 0.0, 0.0
        self._module = lowrank
        self._saved = (lowrank.loco_null, lowrank.whole_gram)
        loco_null, whole_gram = self._saved

        def timed_fit(*a: Any, **k: Any) -> Any:
            t0 = _clock()
            out = loco_null(*a, **k)
            self.fits += 1
            self.fit_seconds += _clock() - t0
            return out

        def timed_whole(*a: Any, **k: Any) -> Any:
            t0 = _clock()
            out = whole_gram(*a, **k)
            self.whole_seconds += _clock() - t0
            return out

        lowrank.loco_null, lowrank.whole_gram = timed_fit, timed_whole

    def result(self) -> dict:
        self._module.loco_null, self._module.whole_gram = self._saved
        return {
            "loco_fits": self.fits,
            "loco_fit_seconds": self.fit_seconds,
            "whole_eigh_seconds": self.whole_seconds,
        }


def stage_scan(args: argparse.Namespace) -> dict:
    import bayeslmm as bl

    clock = _LocoClock()
    genotypes, y, X = _load(args)
    gram, t_gram = _gram(genotypes, args)
    t0 = _clock()
    table = _attempt(bl.scan, genotypes, y, K=gram, X=X, loco=True, progress=False)
    t_scan = _clock() - t0
    p = table["p_wald"].to_numpy() if "p_wald" in table else np.full(len(table), np.nan)
    return {
        **clock.result(),
        "gram": t_gram,
        "scan": t_scan,
        "total": t_gram + t_scan,
        "tests": len(table),
        "min_p": float(np.nanmin(p)) if np.isfinite(p).any() else None,
    }


def _worker_rss() -> int:
    """Peak resident memory of the process it runs in (a dask worker), bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def stage_dask(args: argparse.Namespace) -> dict:
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    import bayeslmm as bl

    genotypes, y, X = _load(args)
    tested = np.arange(min(args.dask_snps, args.t))
    out: dict[str, Any] = {"tests": int(tested.size)}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: None)  # the workers are up
            result: dict[str, Any] = {}
            clock = _LocoClock()
            try:
                gram, result["gram"] = _gram(genotypes, args, client=client)
            except NotYet as exc:
                result["gram"] = None
                result["gram_reason"] = str(exc)
                gram, _ = _gram(genotypes, args)  # the scan still needs it
            try:
                _attempt(  # warm-up: the workers import bayeslmm, read their first block
                    bl.scan,
                    genotypes,
                    y,
                    K=gram,
                    X=X,
                    snps=tested[:50],
                    client=client,
                    progress=False,
                )
                t0 = _clock()
                _attempt(
                    bl.scan,
                    genotypes,
                    y,
                    K=gram,
                    X=X,
                    snps=tested,
                    client=client,
                    progress=False,
                )
                result["scan"] = _clock() - t0
                result.update(clock.result())  # (the warm-up's fits included)
            except NotYet as exc:
                result["scan"] = None
                result["scan_reason"] = str(exc)
            except Exception as exc:  # noqa: BLE001 (the Gram part's result is kept)
                result["scan"] = None
                result["scan_reason"] = f"FAILED: {type(exc).__name__}: {exc}"
            rss = client.run(_worker_rss)  # each worker's own peak, while it is alive
            result["worker_peak_rss"] = max(rss.values()) if rss else None
            out[f"workers_{workers}"] = result
    return out


def stage_switch(args: argparse.Namespace) -> dict:
    import bayeslmm as bl

    n = args.size
    genotypes, y, X = _load(args, n)
    snps, samples = model_snps(args.t, args.m), np.arange(n)
    t0 = _clock()
    if args.path == "nn":
        K = bl.kinship(genotypes, "standardized_empirical", snps=snps, samples=samples)
        fit = bl.reml(y, K, X)  # eigh of the N×N K inside
    else:
        gram = _attempt(bl.gram, genotypes, snps=snps, samples=samples)
        fit = bl.reml(y, gram, X)
    return {"seconds": _clock() - t0, "n": n, "h2": fit.h2}


def run_stage(args: argparse.Namespace) -> None:
    """Run one stage in this process; print its result and peak memory as one JSON line."""
    stage = {
        "files": stage_files,
        "gemm": stage_gemm,
        "reml": stage_reml,
        "posterior": stage_posterior,
        "scan": stage_scan,
        "dask": stage_dask,
        "switch": stage_switch,
    }[args.stage]
    try:
        result = stage(args)
    except NotYet as exc:
        result = {"not_available": str(exc)}
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# the driver


def _child(args: argparse.Namespace, stage: str, **extra: Any) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage]
    for name in ("n", "m", "t", "chromosomes", "draws", "chains", "dask_snps", "workdir"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    for name, value in extra.items():
        cmd += [f"--{name}", str(value)]
    env = dict(os.environ)
    if args.threads:  # BLAS threads of the stage (dask workers keep their own 1 thread)
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(args.threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return {"failed": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1][len("RESULT ") :])


def _gb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e9:.2f} GB"


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value:.0f} s ({value / 60:.1f} min)"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISSED")


def _status(result: dict) -> str | None:
    if "failed" in result:
        return "FAILED: " + result["failed"]
    if "not_available" in result:
        return "not available yet (" + result["not_available"].splitlines()[0][:110] + ")"
    return None


def _row(name: str, seconds: float | None, rss: float | None, target: str = "", ok: Any = None):
    print(f"  {name:<34} {_s(seconds):>20} {_gb(rss):>10}   {target:<22} {_mark(ok)}")


def _switch_point(sizes: list[int], nn: list[float], gr: list[float]) -> str:
    """The n from which the Gram path is the cheaper one (log-linear interpolation)."""
    ratios = [math.log(a / b) for a, b in zip(nn, gr, strict=True)]  # > 0: Gram cheaper
    if all(r > 0 for r in ratios):
        return f"the Gram path is cheaper at every n measured (from n = {sizes[0]:,} or below)"
    if all(r <= 0 for r in ratios):
        return f"the N×N path is cheaper at every n measured (up to n = {sizes[-1]:,})"
    for i in range(1, len(sizes)):
        if ratios[i - 1] <= 0 < ratios[i]:
            a, b = math.log(sizes[i - 1]), math.log(sizes[i])
            x = a + (b - a) * (-ratios[i - 1]) / (ratios[i] - ratios[i - 1])
            return f"the Gram path is cheaper from n ≈ {math.exp(x):,.0f}"
    return "no single crossing (timings too noisy at these sizes)"


def report(args: argparse.Namespace, results: dict) -> None:
    n, t = args.n, args.t
    m = len(model_snps(t, args.m))
    print()
    print(
        f"Large cohort: N = {n:,}, M = {m:,} model SNPs, T = {t:,} tested, "
        f"{args.chromosomes} chromosomes; {os.cpu_count()} CPUs, BLAS threads "
        f"{args.threads or 'all'}"
    )
    print(f"  {'stage':<34} {'time':>20} {'peak RSS':>10}   {'target':<22}")
    if results.get("load"):
        load = results["load"]
        print(
            f"  1-min load average between stages {min(load):.1f}–{max(load):.1f} on "
            f"{os.cpu_count()} CPUs (other work on the machine slows every stage)"
        )
    files = results.get("files")
    if files:
        _row(
            "files written (streamed)",
            files.get("seconds"),
            files.get("peak_rss"),
            "≤ 2 GB",
            files.get("peak_rss", 0) <= TARGET_RSS,
        )
    gemm = results.get("gemm", {})
    reml = results.get("reml")
    if reml:
        if (status := _status(reml)) is not None:
            print(f"  REML: {status}")
        else:
            ok_rss = reml["peak_rss"] <= TARGET_RSS
            _row(f"Gram (N·M² = {n * m * m:.2g} flops)", reml["gram"], None)
            _row("eigh of W'W (M×M)", reml["eigh"], None)
            _row("W'[1, X, y] (one pass)", reml["wty"], None)
            _row("bl.reml (its W'y pass, the profile)", reml["reml"], None)
            _row(
                "files → REML",
                reml["total"],
                reml["peak_rss"],
                "≤ 4 min, ≤ 2 GB",
                reml["total"] <= TARGET_REML and ok_rss,
            )
            print(f"  {'':<34} REML h² = {reml['h2']:.4f} ± {reml['h2_se']:.4f}")
            if "flops_per_s" in gemm:
                rate = n * m * m / reml["gram"]
                share = rate / gemm["flops_per_s"]
                print(
                    f"  {'Gram flop rate':<34} {rate / 1e9:>17.1f} GF/s = {100 * share:.0f} % "
                    f"of GEMM {gemm['flops_per_s'] / 1e9:.1f} GF/s (target ≥ 50 %) "
                    f"{_mark(share >= TARGET_GEMM_SHARE)}"
                )
    post = results.get("posterior")
    if post:
        if (status := _status(post)) is not None:
            print(f"  posterior of h²: {status}")
        else:
            ok = post["total"] <= TARGET_POSTERIOR and post["peak_rss"] <= TARGET_RSS
            _row("Gram", post["gram"], None)
            _row("bl.snp_model (eigh, W'y)", post["model"], None)
            _row(f"bl.sample {post['chains']} × {post['draws']}", post["sample"], None)
            _row("files → posterior", post["total"], post["peak_rss"], "≤ 5 min, ≤ 2 GB", ok)
            print(
                f"  {'':<34} h² = {post['h2_mean']:.4f} (sd {post['h2_sd']:.4f}), "
                f"max R-hat {post['r_hat']:.4f} {_mark(post['r_hat'] <= 1.01)}"
            )
    scan = results.get("scan")
    if scan:
        if (status := _status(scan)) is not None:
            print(f"  LOCO scan: {status}")
        else:
            ok = scan["total"] <= TARGET_SCAN and scan["peak_rss"] <= TARGET_RSS
            _row(f"LOCO scan of {scan['tests']:,} SNPs", scan["scan"], None)
            _row(
                "files → scan (Gram + scan)",
                scan["total"],
                scan["peak_rss"],
                "≤ 20 min, ≤ 2 GB",
                ok,
            )
    dask = results.get("dask")
    if dask:
        if (status := _status(dask)) is not None:
            print(f"  dask: {status}")
        else:
            for part, what in (("gram", "Gram"), ("scan", f"scan of {dask['tests']:,} SNPs")):
                one, two = dask["workers_1"].get(part), dask["workers_2"].get(part)
                if one is None or two is None:
                    reason = dask["workers_1"].get(f"{part}_reason", "")
                    print(f"  dask {what}: not available yet ({reason.splitlines()[0][:100]})")
                    continue
                print(
                    f"  dask {what}: 1 worker {_s(one)}, 2 workers {_s(two)}: "
                    f"{one / two:.2f}× (target ≥ 1.7×) {_mark(one / two >= TARGET_DASK)}"
                )
                if part == "gram" and "flops_per_s_1_thread" in gemm:
                    rate = n * m * m / one
                    share = rate / gemm["flops_per_s_1_thread"]
                    print(
                        f"  {'Gram rate of 1 worker (1 thread)':<34} {rate / 1e9:>17.1f} GF/s = "
                        f"{100 * share:.0f} % of 1-thread GEMM "
                        f"{gemm['flops_per_s_1_thread'] / 1e9:.1f} GF/s "
                        f"{_mark(share >= TARGET_GEMM_SHARE)}"
                    )
            worker = max(
                (dask[f"workers_{w}"].get("worker_peak_rss") or 0 for w in (1, 2)), default=0
            )
            print(
                f"  dask peak RSS: client {_gb(dask['peak_rss'])}, largest worker {_gb(worker)}"
                f" {_mark(max(dask['peak_rss'], worker) <= TARGET_RSS)}"
            )
    switch = results.get("switch")
    if switch:
        print(f"  N×N path (bl.kinship + eigh) vs Gram path (bl.gram), REML, M = {m:,}:")
        sizes, nn, gr = [], [], []
        for size, pair in sorted(switch.items(), key=lambda kv: int(kv[0])):
            a, b = pair.get("nn", {}), pair.get("gram", {})
            if "seconds" in a and "seconds" in b:
                sizes.append(int(size))
                nn.append(a["seconds"])
                gr.append(b["seconds"])
                print(
                    f"    n = {int(size):>7,}: N×N {_s(a['seconds']):>10} "
                    f"({_gb(a['peak_rss'])}), Gram {_s(b['seconds']):>10} "
                    f"({_gb(b['peak_rss'])}), N×N/Gram = {a['seconds'] / b['seconds']:.2f}"
                )
            else:
                print(f"    n = {int(size):>7,}: {_status(a) or _status(b)}")
        if sizes:
            print(f"    switch point: {_switch_point(sizes, nn, gr)}")
    project(args, results, m)


def project(args: argparse.Namespace, results: dict, m: int) -> None:
    """N = 500,000, M = 20,000 on 32 workers, from the rates measured in this run."""
    from bayeslmm.relatedness.gram import gram_memory

    n = args.n
    N, M, P = PROJECT_N, PROJECT_M, PROJECT_WORKERS
    reml, gemm = results.get("reml", {}), results.get("gemm", {})
    if "gram" not in reml:
        return
    dask = results.get("dask", {})
    one = dask.get("workers_1", {}) if isinstance(dask, dict) else {}
    cores = args.threads or os.cpu_count() or 1
    if one.get("gram"):
        per_worker, source = n * m * m / one["gram"], "dask, 1 worker of 1 thread"
    else:
        per_worker = n * m * m / reml["gram"] / cores
        source = f"the local Gram over {cores} thread(s)"
    print(
        f"Projection to N = {N:,}, M = {M:,} on {P} workers of one thread "
        f"(Gram rate per worker {per_worker / 1e9:.1f} GF/s, from {source}):"
    )
    t_gram = N * M * M / (P * per_worker)
    # eigh ∝ M³ on this machine's cores, from the clean eigh of the gemm stage where it ran
    t_eigh = gemm.get("eigh_seconds", reml["eigh"]) * (M / m) ** 3
    t_wy = reml["wty"] * (N * M) / (n * m) / P * cores
    t_profile = max(reml["reml"] - reml["wty"], 0.0) * M / m
    print(
        f"  Gram {_s(t_gram)}; eigh of W'W (M³) with {cores} thread(s) here "
        f"{_s(t_eigh)}, on a node of 32 such cores ≥ {_s(t_eigh * cores / 32)}; "
        f"W'y {_s(t_wy)}; REML profile {_s(t_profile)} (O(M) per evaluation)"
    )
    post = results.get("posterior", {})
    if "sample" in post:
        t_sample = post["sample"] * M / m
        print(
            f"  sampling {_s(t_sample)} (NUTS, O(M) per gradient, scaled by M; the u and LOO "
            f"post-processing in it grows as N·M); files → posterior "
            f"{_s(t_gram + t_eigh + t_wy + t_sample)}"
        )
    print(f"  files → REML {_s(t_gram + t_eigh + 2 * t_wy + t_profile)}")
    scan = results.get("scan", {})
    timed = next(
        (r for r in (scan, one) if r.get("loco_fits")), {}
    )  # LOCO by update's null fits, timed in the scan stage or in dask's
    if "scan" in scan and "eigh_seconds" in gemm:
        c = args.chromosomes
        scale = (M / m) ** 3  # a fit is O(k²·r + k³) with k ≈ M/C, r = M: ∝ M³, as the eigh
        if timed:
            per_fit = timed["loco_fit_seconds"] / timed["loco_fits"]
            loco = scan.get("whole_eigh_seconds") or gemm["eigh_seconds"]
            loco_here = loco + c * per_fit if c > 1 else loco
            t_loco = loco_here * scale
            loco_text = (
                f"LOCO by update: one eigendecomposition of W'W ({_s(loco * scale)}) and {c} "
                f"rank-{M // c:,} null fits of {_s(per_fit * scale)} each, in the client "
                f"(measured here: {per_fit:.2f} s a fit at M = {m:,})"
            )
        else:  # (a run before the fits were timed) one eigendecomposition per chromosome
            loco_here = c * gemm["eigh_seconds"] * ((c - 1) / c) ** 3 if c > 1 else 0.0
            t_loco = loco_here * scale
            loco_text = f"the {c} LOCO eigendecompositions {_s(t_loco)} on this machine's cores"
        tests = max(scan["scan"] - loco_here, 0.1 * scan["scan"])
        per_test = tests * cores / (scan["tests"] * n * m)  # core-seconds per N·M
        t_tests = per_test * N * M * 1_000_000 / P
        print(
            f"  scan of 1,000,000 SNPs: tests {_s(t_tests)} on {P} workers (2·N·M flops per SNP, "
            f"at this run's rate); {loco_text}; total {_s(t_tests + t_loco)}"
        )
    need = gram_memory(N, M)
    print(
        f"  memory: the driver's W'W and its eigendecomposition {need / 1e9:.1f} GB "
        f"(5·M² doubles + one block); a worker holds one block of samples × M "
        f"({8 * 2048 * M / 1e9:.2f} GB at 2,048 samples)"
    )
    if "flops_per_s_1_thread" in gemm:
        print(
            f"  (one thread's GEMM rate here: {gemm['flops_per_s_1_thread'] / 1e9:.1f} GF/s; "
            f"all threads {gemm['flops_per_s'] / 1e9:.1f} GF/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="samples [100,000]")
    parser.add_argument("--m", type=int, default=5_000, help="model SNPs [5,000]")
    parser.add_argument("--t", type=int, default=50_000, help="SNPs in the file, tested [50,000]")
    parser.add_argument("--chromosomes", type=int, default=22)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument(
        "--switch-n",
        default="1000,2000,4000,8000",
        help="sample sizes of the N×N vs Gram comparison (≤ N)",
    )
    parser.add_argument(
        "--dask-snps", type=int, default=10_000, help="SNPs scanned in the dask comparison [10,000]"
    )
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads of each stage [all cores]; 1 on a machine shared with other work "
        "(OpenBLAS threads that wait for a busy core slow eigh by up to 4×)",
    )
    parser.add_argument("--workdir", default=None, help="where the cohort is written [a tmp dir]")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--report", default=None, help="print the report of a --json file again and stop"
    )
    args = parser.parse_args()
    if args.stage is not None:
        run_stage(args)
        return
    if args.report is not None:
        saved = json.loads(Path(args.report).read_text())
        results = saved["results"]
        reml = results.get("reml", {})
        if "eigh" in reml:  # (files written before the fix: the total left the eigh out)
            reml["total"] = reml["gram"] + reml["eigh"] + reml["reml"]
        for name, value in saved["args"].items():
            if name not in ("report", "json"):
                setattr(args, name, value)
        report(args, results)
        return
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="bayeslmm-large-")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; choose from {STAGES}")
    if "files" not in stages and not Path(f"{_prefix(args)}.bed").exists():
        stages.insert(0, "files")
    print(f"cohort: {_prefix(args)}")
    results: dict[str, Any] = {"load": [os.getloadavg()[0]]}
    for stage in stages:
        t0 = _clock()
        if stage == "switch":
            results["switch"] = {}
            for size in (int(s) for s in args.switch_n.split(",")):
                if size > args.n:
                    continue
                results["switch"][str(size)] = {
                    path: _child(args, "switch", size=size, path=path) for path in ("nn", "gram")
                }
        else:
            results[stage] = _child(args, stage)
        results["load"].append(os.getloadavg()[0])
        status = _status(results[stage]) if stage != "switch" else None
        print(f"  {stage}: {_s(_clock() - t0)} wall{'; ' + status if status else ''}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    report(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
