"""Posterior of h²: wall time by stage at several N, and ESS/s against the dense reference.

    python benchmarks/h2_posterior.py [--sizes 1000 2000 5000] [--quick] [--json PATH]

Part 0, at N = 2,000 (``--fresh-n``): what a user sees, in fresh processes: ``bl.sample`` on
``bl.kinship_model`` (all defaults: 4 chains × 1000 draws after 1000 tuning), timed from the
decomposed K to the returned InferenceData, (a) with an empty PyTensor cache (a temporary
``base_compiledir``: the first fit ever on a machine) and (b) again in a new process with that
cache filled (every later session; ``bash install.sh`` fills the default cache through
``bayeslmm demo``). The target (≤ 5 s, issue 9 point 6) is for (b).

Targets (issue 9, point 6), each beside a reference measured in the same run: ``import pymc``
vs ``import bayeslmm`` in fresh processes (best of 3); post-processing at N = 5,000
(``--post-n``) with 4,000 draws: the exact sample-space LOO terms vs the interpolated ones (and
their largest difference), the u draws (exact: float64 GEMM; new: mean from the LOO tables,
random part by a float32 GEMM) and their sum, target ≤ 3 s; ``bayeslmm demo`` with an empty
and then a filled PyTensor cache. With ``--old-python PY --old-checkout
DIR`` (e.g. a Python 3.11 / PyMC 5 venv and ``git worktree add DIR 704a7bf``) the import and
demo times of that stack too. ``--only-targets`` runs these and part 0 only.

Part 1, for each N: simulate N samples × 2N SNPs (``--snp-ratio``; building K is not timed),
then time separately

- eigh      ``bl.spectral_from_kinship(K)``
- build     ``bl.kinship_model(y, spectral, X)``
- compile   what ``bl.sample`` does before sampling: PyTensor's numba functions for nutpie
            (``bayeslmm.inference.compiled``; from the disk cache once any process compiled this
            structure), with bayeslmm's in-process cache emptied first
- sample    ``nutpie.sample(..., draws=1000, tune=1000, chains=4)``, threads as ``bl.sample``
- post      what ``bl.sample`` does after NUTS: closed-form draws of u and the sample-space
            log-likelihood (``bayeslmm.inference.sampling._add_groups``) and the convergence check

"K→post" = build + compile + sample + post. ESS/s is bulk ESS of h² per second of sampling.

Part 2, at N = 500 (``--dense-n``): the literal MvNormal model of
``models/kinship_lmm/reference.py`` sampled with PyMC's NUTS (2 chains × 100 draws after 100
tuning: it is slow) against bayeslmm's rotated model on the same data, sampled with nutpie and
with PyMC's NUTS (4 × 1000 after 1000). ESS/s of h² and its ratio to the dense model (target
≥ 100×), and the cost of one log-density + gradient evaluation of each (PyTensor C backend).
Part 2 runs in a subprocess with single-threaded BLAS (``OPENBLAS_NUM_THREADS=1``): two
chains on two cores, each with two OpenBLAS threads, slow the dense model down several-fold
(spinning threads on a shared machine), which would flatter bayeslmm.

Timings are wall clock on a shared machine: read them as one noisy run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import arviz_stats as azs  # noqa: E402
import nutpie  # noqa: E402
import pymc as pm  # noqa: E402

import bayeslmm as bl  # noqa: E402
from bayeslmm.data.simulation import simulate  # noqa: E402
from bayeslmm.families.base import info_of  # noqa: E402
from bayeslmm.inference import sampling as inference  # noqa: E402
from bayeslmm.inference.sampling import (  # noqa: E402
    _add_groups,
    _check_convergence,
    _clean_posterior,
    _numeric_stats,
)
from models.kinship_lmm.reference import dense_kinship_model  # noqa: E402

H2 = 0.5
SEED = 1
TARGET_K_TO_POSTERIOR_S = 5.0
TARGET_POST_S = 3.0
TARGET_DEMO_COLD_S = 30.0
POST_N = 5000
TARGET_N = 2000
TARGET_ESS_RATIO = 100.0


def h2_diagnostics(idata: Any) -> tuple[float, float]:
    """Bulk ESS and R-hat of h²."""
    table = bl.heritability(idata)
    return float(table.loc["h2", "ess_bulk"]), float(table.loc["h2", "r_hat"])


def n_divergent(idata: Any) -> int:
    stats = idata.get("sample_stats")
    return int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0


def time_eval(model: pm.Model, min_seconds: float = 1.0, max_evals: int = 20_000) -> float:
    """Seconds per log-density + gradient evaluation (PyTensor C backend), at the zero vector."""
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    size = sum(np.size(v) for v in model.initial_point().values())
    x = np.zeros(size)
    t0 = time.perf_counter()
    fn(x)
    once = max(time.perf_counter() - t0, 1e-7)
    n = int(min(max_evals, max(5, min_seconds / once)))
    best = np.inf
    for _ in range(3):  # best of three batches: the least disturbed by other load
        t0 = time.perf_counter()
        for _ in range(n):
            fn(x)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def nutpie_fit(model: pm.Model, draws: int, tune: int, chains: int, seed: int) -> dict:
    """Compile, sample and post-process as ``bl.sample`` does, timing each stage."""
    inference._COMPILED.clear()  # time the compilation, not an in-process reuse
    t0 = time.perf_counter()
    compiled, cores = inference._compiled_nutpie(model, info_of(model))
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores or 2,
        seed=seed,
        progress_bar=False,
        save_warmup=False,
    )
    t_sample = time.perf_counter() - t0
    t0 = time.perf_counter()
    posterior = _clean_posterior(raw["posterior"].to_dataset())
    stats = _numeric_stats(raw["sample_stats"].to_dataset())
    idata = _add_groups(posterior, stats, info_of(model), np.random.default_rng(seed), True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R-hat and divergences are reported in the table
        _check_convergence(idata)
    t_post = time.perf_counter() - t0
    return {"compile_s": t_compile, "sample_s": t_sample, "post_s": t_post, "idata": idata}


def stages(n: int, snp_ratio: float, seed: int = SEED) -> dict:
    t0 = time.perf_counter()
    data = simulate(n, max(1, round(snp_ratio * n)), H2, n_covariates=2, seed=seed)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    spectral = bl.spectral_from_kinship(data.K)
    t_eig = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = bl.kinship_model(data.y, spectral, data.X)
    t_build = time.perf_counter() - t0
    fit = nutpie_fit(model, draws=1000, tune=1000, chains=4, seed=seed)
    ess, rhat = h2_diagnostics(fit["idata"])
    row = {
        "n": n,
        "n_snps": data.W.shape[1],
        "rank": spectral.rank,
        "simulate_s": t_sim,
        "eigh_s": t_eig,
        "build_s": t_build,
        "compile_s": fit["compile_s"],
        "sample_s": fit["sample_s"],
        "post_s": fit["post_s"],
        "ess_h2": ess,
        "rhat_h2": rhat,
        "divergent": n_divergent(fit["idata"]),
        "ess_per_s": ess / fit["sample_s"],
        "h2_mean": float(fit["idata"].posterior["h2"].mean()),
    }
    row["k_to_posterior_s"] = row["build_s"] + row["compile_s"] + row["sample_s"] + row["post_s"]
    return row


def dense_comparison(n: int, dense_draws: int, seed: int = SEED) -> dict:
    data = simulate(n, 2 * n, H2, n_covariates=2, seed=seed + 1)
    spectral = bl.spectral_from_kinship(data.K)
    fast = bl.kinship_model(data.y, spectral, data.X)
    info = info_of(fast)  # the dense model gets exactly the same y, X (with intercept) and K
    dense = dense_kinship_model(info.data.y, info.data.X, spectral.matrix())
    out: dict = {"n": n, "rank": spectral.rank}
    out["eval_dense_s"] = time_eval(dense, min_seconds=2.0)
    out["eval_rotated_s"] = time_eval(fast, min_seconds=1.0)

    t0 = time.perf_counter()
    idata = pm.sample(
        draws=dense_draws,
        tune=dense_draws,
        chains=2,
        cores=2,
        model=dense,
        random_seed=seed,
        progressbar=False,
        compute_convergence_checks=False,
    )
    total = time.perf_counter() - t0
    ess = float(azs.ess(idata.posterior["h2"].values, method="bulk"))
    rhat = float(azs.rhat(idata.posterior["h2"].values))
    sampling = float(idata.sample_stats.attrs.get("sampling_time", total))
    out["dense"] = {
        "draws": f"2 × {dense_draws}",
        "total_s": total,
        "sample_s": sampling,
        "ess_h2": ess,
        "rhat_h2": rhat,
        "h2_mean": float(idata.posterior["h2"].mean()),
    }

    fit = nutpie_fit(fast, draws=1000, tune=1000, chains=4, seed=seed)
    ess, rhat = h2_diagnostics(fit["idata"])
    out["nutpie"] = {
        "draws": "4 × 1000",
        "total_s": fit["compile_s"] + fit["sample_s"] + fit["post_s"],
        "sample_s": fit["sample_s"],
        "ess_h2": ess,
        "rhat_h2": rhat,
        "h2_mean": float(fit["idata"].posterior["h2"].mean()),
    }

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = bl.sample(
            fast, draws=1000, chains=4, random_seed=seed, sampler="pymc", progressbar=False, cores=2
        )
    total = time.perf_counter() - t0
    ess, rhat = h2_diagnostics(idata)
    out["pymc"] = {
        "draws": "4 × 1000",
        "total_s": total,
        "sample_s": float(idata.sample_stats.attrs.get("sampling_time", total)),
        "ess_h2": ess,
        "rhat_h2": rhat,
        "h2_mean": float(idata.posterior["h2"].mean()),
    }
    for key in ("dense", "nutpie", "pymc"):
        r = out[key]
        r["ess_per_s"] = r["ess_h2"] / r["sample_s"]
        r["ess_per_total_s"] = r["ess_h2"] / r["total_s"]
    return out


def fresh_fit(n: int, seed: int = SEED) -> dict:
    """In this (fresh) process: decomposed K → ``bl.sample`` result, timed end to end."""
    data = simulate(n, 2 * n, H2, n_covariates=2, seed=seed)
    spectral = bl.spectral_from_kinship(data.K)
    t0 = time.perf_counter()
    model = bl.kinship_model(data.y, spectral, data.X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = bl.sample(model, random_seed=seed, progressbar=False)
    total = time.perf_counter() - t0
    ess, rhat = h2_diagnostics(idata)
    return {"n": n, "k_to_posterior_s": total, "ess_h2": ess, "rhat_h2": rhat}


def fresh_in_subprocesses(n: int) -> dict:
    """:func:`fresh_fit` in new processes: PyTensor cache empty, then filled by the first."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "pytensor"
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        env = dict(os.environ, PYTENSOR_FLAGS=f"{flags},base_compiledir={cache}".strip(","))
        for label in ("cold", "warm"):
            result = Path(tmp) / f"{label}.json"
            cmd = [sys.executable, __file__, "--fresh-worker", str(result), "--fresh-n", str(n)]
            subprocess.run(cmd, env=env, check=True)
            out[label] = json.loads(result.read_text())
    return out


def import_times(python: str = sys.executable, cwd: Path = ROOT, repeats: int = 3) -> dict:
    """Wall time of ``import pymc`` and of ``import bayeslmm`` in fresh processes, best of 3.

    Interleaved, so that both see the same load; each includes the interpreter's start.
    """
    out: dict = {}
    for _ in range(repeats):
        for name in ("pymc", "bayeslmm"):
            t0 = time.perf_counter()
            subprocess.run([python, "-c", f"import {name}"], cwd=cwd, check=True)
            out[name] = min(out.get(name, np.inf), time.perf_counter() - t0)
    return out


def demo_times(command: list[str], cwd: Path = ROOT) -> dict:
    """``bayeslmm demo`` wall time with an empty PyTensor cache, then with it filled."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        env = dict(os.environ, PYTENSOR_FLAGS=f"{flags},base_compiledir={tmp}".strip(","))
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
            out[label] = time.perf_counter() - t0
    return out


def post_processing(n: int, n_draws: int = 4000, seed: int = SEED) -> dict:
    """What ``bl.sample`` does after NUTS at N = ``n``: u draws and LOO terms, new vs exact.

    Draws of (h², σp², β) are synthetic, spread as a posterior at this N (h² sd 0.03). Each
    repetition times, back to back (so that both see the same load; best of 3 each): the
    exact LOO terms (``loo_pointwise_exact``) and u draws (``draw_u``: one float64 GEMM per
    batch) as the reference; the LOO terms alone (``loo_pointwise``: tables + interpolation);
    u and LOO together as ``bl.sample`` computes them (``u_and_loo``); its random part alone
    (``_add_u_noise``: the float32 GEMM U·(√c ∘ z)). The u mean's share is the total less the
    other two (the tables are shared). Also the largest differences from the exact formulas.
    """
    from bayeslmm.inference import effects

    data = simulate(n, 2 * n, H2, n_covariates=2, seed=seed)
    spectral = bl.spectral_from_kinship(data.K)
    info = info_of(bl.kinship_model(data.y, spectral, data.X))
    rng = np.random.default_rng(seed)
    y, X = info.data.y, info.data.X
    h2 = np.clip(rng.normal(H2, 0.03, n_draws), 0.01, 0.99)
    sp2 = np.var(y) * np.exp(rng.normal(0, 0.03, n_draws))
    beta = np.linalg.lstsq(X, y, rcond=None)[0] + rng.normal(0, 0.02, (n_draws, X.shape[1]))
    sg2, se2 = h2 * sp2, (1 - h2) * sp2
    rot = info.rotated
    noise = np.zeros((n_draws, spectral.n))
    runs = {
        "loo_exact_s": lambda: effects.loo_pointwise_exact(spectral, y, X, beta, sg2, se2),
        "u_exact_s": lambda: effects.draw_u(
            spectral, rot.y1, rot.X1, beta, sg2, se2, np.random.default_rng(seed)
        ),
        "loo_s": lambda: effects.loo_pointwise(spectral, y, X, beta, sg2, se2),
        "total_s": lambda: effects.u_and_loo(
            spectral, y, X, beta, sg2, se2, np.random.default_rng(seed)
        ),
        "u_random_s": lambda: effects._add_u_noise(
            noise, spectral, sg2, se2, np.random.default_rng(seed)
        ),
    }
    out: dict = {"n": n, "rank": spectral.rank, "draws": n_draws}
    values: dict = {}
    for _ in range(3):
        for label, fn in runs.items():
            noise[:] = 0.0
            t0 = time.perf_counter()
            values[label] = fn()
            out[label] = min(out.get(label, np.inf), time.perf_counter() - t0)
    out["u_mean_s"] = max(out["total_s"] - out["loo_s"] - out["u_random_s"], 0.0)
    u, loglik = values["total_s"]
    out["loo_max_abs_diff"] = float(np.abs(loglik - values["loo_exact_s"]).max())
    exact_mean = effects.draw_u(spectral, rot.y1, rot.X1, beta, sg2, se2, None)
    out["u_mean_max_abs_diff"] = float(np.abs(u - noise - exact_mean).max())
    # the same z as draw_u: the difference is the float32 rounding of the random part, here
    # relative to the posterior sd of each u_n
    sd = values["u_exact_s"].std(axis=0)
    out["u_draws_max_diff_per_sd"] = float((np.abs(u - values["u_exact_s"]) / sd).max())
    U = spectral.U
    z = rng.standard_normal((n_draws, spectral.rank))
    t0 = time.perf_counter()
    z @ U.T  # the float64 GEMM of the exact u draws, for scale
    out["u_gemm64_s"] = time.perf_counter() - t0
    return out


def machine() -> str:
    """CPU model and core count."""
    name = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def dense_in_subprocess(n: int, dense_draws: int) -> dict:
    """Run :func:`dense_comparison` in a fresh process with one BLAS thread per process."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dense.json"
        cmd = [sys.executable, __file__, "--dense-worker", str(out)]
        cmd += ["--dense-n", str(n), "--dense-draws", str(dense_draws)]
        subprocess.run(cmd, env=env, check=True)
        return json.loads(out.read_text())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict) -> str:
    lines = [
        f"bayeslmm h² posterior benchmark — {results['date']}, {results['machine']}",
        "",
    ]
    targets = results.get("targets")
    if targets:
        imp = targets["import"]
        extra = imp["bayeslmm"] - imp["pymc"]
        lines += [
            "Targets of issue 9, point 6 (references measured in the same run)",
            f"  import, fresh process (best of 3): pymc {imp['pymc']:.2f} s, bayeslmm "
            f"{imp['bayeslmm']:.2f} s (+{extra:.2f} s, ×{imp['bayeslmm'] / imp['pymc']:.2f})",
        ]
        post = targets.get("post")
        if post:
            total, exact = post["total_s"], post["loo_exact_s"] + post["u_exact_s"]
            lines += [
                f"  post-processing at N = {post['n']:,} (rank {post['rank']:,}), "
                f"{post['draws']:,} draws (best of 3, new and exact back to back):",
                f"    exact: LOO terms {post['loo_exact_s']:.2f} s + u draws "
                f"{post['u_exact_s']:.2f} s (float64 GEMM U·z alone {post['u_gemm64_s']:.2f} s) "
                f"= {exact:.2f} s",
                f"    new:   LOO terms {post['loo_s']:.2f} s (tables + interpolation), u mean "
                f"{post['u_mean_s']:.2f} s (same tables), u random part {post['u_random_s']:.2f} s "
                f"(float32 GEMM)",
                f"    LOO + u {total:.2f} s (×{exact / total:.1f}; target ≤ "
                f"{TARGET_POST_S:.0f} s): {verdict(total <= TARGET_POST_S)}",
                f"    max |new − exact|: LOO {post['loo_max_abs_diff']:.1e}, u mean "
                f"{post['u_mean_max_abs_diff']:.1e}, u draws (same z) "
                f"{post['u_draws_max_diff_per_sd']:.1e} of their posterior sd",
            ]
        demo = targets.get("demo")
        if demo:
            lines.append(
                f"  bayeslmm demo: empty PyTensor cache {demo['cold']:.1f} s (target ≤ "
                f"{TARGET_DEMO_COLD_S:.0f} s: {verdict(demo['cold'] <= TARGET_DEMO_COLD_S)}), "
                f"cache filled {demo['warm']:.1f} s"
            )
        old = targets.get("old")
        if old:
            lines += [
                f"  old stack ({old['python']}):",
                f"    import pymc {old['import']['pymc']:.2f} s, bayeslmm "
                f"{old['import']['bayeslmm']:.2f} s; demo empty cache {old['demo']['cold']:.1f} s, "
                f"filled {old['demo']['warm']:.1f} s",
            ]
        lines.append("")
    fresh = results.get("fresh")
    if fresh:
        n = fresh["warm"]["n"]
        lines.append(f"Part 0: fresh process, N = {n:,}, decomposed K → bl.sample result")
        for label, what in (("cold", "empty PyTensor cache"), ("warm", "cache filled")):
            r = fresh[label]
            lines.append(
                f"  {what:<22} {r['k_to_posterior_s']:6.2f} s  (ESS h2 {r['ess_h2']:.0f}, "
                f"R-hat {r['rhat_h2']:.3f})"
            )
        t = fresh["warm"]["k_to_posterior_s"]
        lines += [
            f"K→posterior in a fresh process at N = {n:,}: {t:.2f} s "
            f"(target ≤ {TARGET_K_TO_POSTERIOR_S:.0f} s): {verdict(t <= TARGET_K_TO_POSTERIOR_S)}",
            "",
        ]
    lines += [
        "Part 1: kinship model, nutpie, 4 chains × (1000 tune + 1000 draws), one process",
        f"{'N':>6} {'M':>6} {'eigh':>7} {'build':>6} {'compile':>8} {'sample':>7} {'post':>6} "
        f"{'K→post':>7} {'ESS h2':>7} {'R-hat':>6} {'div':>4} {'ESS/s':>6}",
    ]
    for r in results["stages"]:
        lines.append(
            f"{r['n']:>6} {r['n_snps']:>6} {r['eigh_s']:>6.2f}s {r['build_s']:>5.2f}s "
            f"{r['compile_s']:>7.2f}s {r['sample_s']:>6.2f}s {r['post_s']:>5.2f}s "
            f"{r['k_to_posterior_s']:>6.2f}s {r['ess_h2']:>7.0f} {r['rhat_h2']:>6.3f} "
            f"{r['divergent']:>4d} {r['ess_per_s']:>6.0f}"
        )
    lines.append("(compile of the first size includes loading numba in this process)")
    at_target = [r for r in results["stages"] if r["n"] == TARGET_N]
    if at_target:
        t = at_target[0]["k_to_posterior_s"]
        lines.append(
            f"K→posterior after eigh at N = {TARGET_N:,} (in this process): {t:.2f} s "
            f"(target ≤ {TARGET_K_TO_POSTERIOR_S:.0f} s): {verdict(t <= TARGET_K_TO_POSTERIOR_S)}"
        )
    else:
        lines.append(f"K→posterior target not checked (N = {TARGET_N:,} not among the sizes)")
    bad = [r["n"] for r in results["stages"] if r["rhat_h2"] > 1.01]
    if bad:
        lines.append(f"WARNING: R-hat of h2 > 1.01 at N = {bad}")

    d = results.get("dense")
    if d:
        ratio_eval = d["eval_dense_s"] / d["eval_rotated_s"]
        lines += [
            "",
            f"Part 2: N = {d['n']} (rank {d['rank']}), dense MvNormal reference vs rotated model",
            f"one logp+gradient (PyTensor C): dense {d['eval_dense_s'] * 1e3:.2f} ms, rotated "
            f"{d['eval_rotated_s'] * 1e6:.1f} µs; RATIO {ratio_eval:,.0f}×",
            f"{'model / sampler':<26} {'draws':>9} {'sample':>8} {'total':>8} {'ESS h2':>7} "
            f"{'R-hat':>6} {'mean h2':>7} {'ESS/s':>8} {'ESS/s tot':>9}",
        ]
        labels = {
            "dense": "dense MvNormal / PyMC",
            "pymc": "bayeslmm rotated / PyMC",
            "nutpie": "bayeslmm rotated / nutpie",
        }
        for key in ("dense", "pymc", "nutpie"):
            r = d[key]
            lines.append(
                f"{labels[key]:<26} {r['draws']:>9} {r['sample_s']:>7.1f}s {r['total_s']:>7.1f}s "
                f"{r['ess_h2']:>7.0f} {r['rhat_h2']:>6.3f} {r['h2_mean']:>7.3f} "
                f"{r['ess_per_s']:>8.1f} {r['ess_per_total_s']:>9.1f}"
            )
        lines.append(
            "(sample: NUTS only; total: with compilation and, for bayeslmm, post-processing)"
        )
        for key in ("nutpie", "pymc"):
            ratio = d[key]["ess_per_s"] / d["dense"]["ess_per_s"]
            ratio_tot = d[key]["ess_per_total_s"] / d["dense"]["ess_per_total_s"]
            lines.append(
                f"RATIO ESS/s bayeslmm {key} / dense: {ratio:,.0f}× sampling only "
                f"({verdict(ratio >= TARGET_ESS_RATIO)}), {ratio_tot:,.0f}× end to end "
                f"({verdict(ratio_tot >= TARGET_ESS_RATIO)}); target ≥ {TARGET_ESS_RATIO:.0f}×"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="N of part 1")
    parser.add_argument("--snp-ratio", type=float, default=2.0, help="SNPs per sample (M/N)")
    parser.add_argument("--dense-n", type=int, default=None, help="N of part 2 (default 500)")
    parser.add_argument("--dense-draws", type=int, default=None, help="tune = draws (100)")
    parser.add_argument("--no-dense", action="store_true", help="skip part 2")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--fresh-n", type=int, default=TARGET_N, help="N of part 0")
    parser.add_argument("--no-fresh", action="store_true", help="skip part 0")
    parser.add_argument("--no-targets", action="store_true", help="skip the targets part")
    parser.add_argument("--post-n", type=int, default=POST_N, help="N of post-processing")
    parser.add_argument("--old-python", default=None, help="interpreter of the old stack")
    parser.add_argument("--old-checkout", default=None, help="bayeslmm checkout for it")
    parser.add_argument("--only-targets", action="store_true", help="targets and part 0 only")
    parser.add_argument("--dense-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fresh-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dense_worker:  # part 2 alone, in the subprocess started by dense_in_subprocess
        result = dense_comparison(args.dense_n, args.dense_draws)
        Path(args.dense_worker).write_text(json.dumps(result))
        return
    if args.fresh_worker:  # part 0, in a subprocess started by fresh_in_subprocesses
        Path(args.fresh_worker).write_text(json.dumps(fresh_fit(args.fresh_n)))
        return
    sizes = args.sizes or ([300, 1000] if args.quick else [1000, 2000, 5000])
    dense_n = args.dense_n or (200 if args.quick else 500)
    dense_draws = args.dense_draws or (50 if args.quick else 100)

    results: dict = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "versions": {
            "bayeslmm": bl.__version__,
            "pymc": pm.__version__,
            "nutpie": nutpie.__version__,
            "numpy": np.__version__,
        },
        "stages": [],
        "dense": None,
        "fresh": None,
        "targets": None,
    }
    if not args.no_targets:
        targets: dict = {"import": import_times()}
        print("import times done", flush=True)
        targets["post"] = post_processing(1000 if args.quick else args.post_n)
        print("post-processing done", flush=True)
        demo = [str(Path(sys.executable).with_name("bayeslmm")), "demo"]
        targets["demo"] = demo_times(demo)
        print("demo done", flush=True)
        if args.old_python and args.old_checkout:
            old = Path(args.old_checkout)
            targets["old"] = {
                "python": args.old_python,
                "import": import_times(args.old_python, old),
                "demo": demo_times([args.old_python, "-m", "bayeslmm.cli.main", "demo"], old),
            }
            print("old stack done", flush=True)
        results["targets"] = targets
    if not args.no_fresh:
        results["fresh"] = fresh_in_subprocesses(300 if args.quick else args.fresh_n)
        print("fresh-process fits done", flush=True)
    if args.only_targets:
        sizes, args.no_dense = [], True
    for n in sizes:
        row = stages(n, args.snp_ratio)
        results["stages"].append(row)
        print(
            f"N = {n}: simulate {row['simulate_s']:.1f} s, eigh {row['eigh_s']:.2f} s, K→posterior "
            f"{row['k_to_posterior_s']:.2f} s, ESS {row['ess_h2']:.0f}, R-hat {row['rhat_h2']:.3f}",
            flush=True,
        )
    if not args.no_dense:
        results["dense"] = dense_in_subprocess(dense_n, dense_draws)
        print(f"dense comparison at N = {dense_n} done", flush=True)
    print()
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
