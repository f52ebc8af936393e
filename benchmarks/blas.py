"""Does linking a BLAS into PyTensor's C backend speed up bayeslmm's models?

    python benchmarks/blas.py [--rounds 2] [--json PATH]

pip-installed PyTensor links no BLAS (``blas__ldflags`` empty): its C code then computes dot
products through NumPy from Python-level ops. This script times one log-density + gradient
evaluation (``model.logp_dlogp_function``, the function PyMC's NUTS calls) of

- the kinship model (rotated, ``bl.kinship_model``) at N = 2,000 and N = 5,000, d = 4,
- the SNP model with explicit effects (``bl.snp_model(marginalize=False)``) at N = 1,000,
  M = 2,000, d = 4,

in two fresh subprocesses that differ only in ``PYTENSOR_FLAGS``:

- unlinked: ``base_compiledir=<tmp A>``
- linked:   ``base_compiledir=<tmp B>,blas__ldflags=-lopenblas`` (Debian's libopenblas-dev)

Each is run ``--rounds`` times, alternating (A B A B ...), so that the machine's load drifts over
both; the first round compiles cold, later ones reuse the cache. The best batch over all rounds
is reported (µs per evaluation) with the ratio linked / unlinked (< 1: linking helps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OPENBLAS = Path("/usr/lib/x86_64-linux-gnu/libopenblas.so")
KINSHIP_SIZES = (2000, 5000)
SNP_SIZE = (1000, 2000)
N_COVARIATES = 3  # plus the intercept: d = 4
SEED = 1


def prepare(workdir: Path) -> None:
    """Simulate and decompose the kinship cases once; both subprocesses load the same arrays."""
    import bayeslmm as bl
    from bayeslmm.data.simulation import simulate

    for n in KINSHIP_SIZES:
        data = simulate(n, 2 * n, 0.5, n_covariates=N_COVARIATES, seed=SEED)
        spectral = bl.spectral_from_kinship(data.K)
        np.savez(
            workdir / f"kinship_{n}.npz",
            U=spectral.U,
            s=spectral.s,
            scale=spectral.scale,
            y=data.y,
            X=data.X,
        )


def time_eval(model, seconds: float = 0.5, batches: int = 5) -> tuple[float, float, list[str]]:
    """Compile the logp+gradient function; return compile s, best s per evaluation, dot ops."""
    t0 = time.perf_counter()
    fn = model.logp_dlogp_function(ravel_inputs=True)
    t_compile = time.perf_counter() - t0
    fn.set_extra_values({})
    x = np.zeros(sum(np.size(v) for v in model.initial_point().values()))
    fn(x)
    t0 = time.perf_counter()
    for _ in range(10):
        fn(x)
    n = max(10, int(seconds / max((time.perf_counter() - t0) / 10, 1e-7)))
    best = np.inf
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(x)
        best = min(best, (time.perf_counter() - t0) / n)
    ops = sorted(
        {
            str(node.op).split("{")[0]
            for node in fn._pytensor_function.maker.fgraph.toposort()
            if any(k in type(node.op).__name__ for k in ("Gemv", "Gemm", "Dot", "Ger"))
        }
    )
    return t_compile, best, ops


def child(workdir: Path, out: Path) -> None:
    """Time every case in this process (PYTENSOR_FLAGS set by the parent)."""
    import pytensor

    import bayeslmm as bl
    from bayeslmm.data.simulation import simulate
    from bayeslmm.linalg.spectral import Spectral

    results = {
        "ldflags": pytensor.config.blas__ldflags,
        "compiledir": pytensor.config.compiledir,
        "cases": {},
    }
    for n in KINSHIP_SIZES:
        arrays = np.load(workdir / f"kinship_{n}.npz")
        spectral = Spectral(U=arrays["U"], s=arrays["s"], scale=float(arrays["scale"]))
        model = bl.kinship_model(arrays["y"], spectral, arrays["X"])
        t_compile, t_eval, ops = time_eval(model)
        results["cases"][f"kinship N={n}"] = {"compile_s": t_compile, "eval_s": t_eval, "ops": ops}
    n, m = SNP_SIZE
    data = simulate(n, m, 0.5, n_covariates=N_COVARIATES, seed=SEED)
    model = bl.snp_model(data.y, data.W, data.X, marginalize=False)
    t_compile, t_eval, ops = time_eval(model)
    results["cases"][f"snp explicit N={n} M={m}"] = {
        "compile_s": t_compile,
        "eval_s": t_eval,
        "ops": ops,
    }
    out.write_text(json.dumps(results))


def run_child(workdir: Path, compiledir: Path, linked: bool, out: Path) -> dict:
    flags = f"base_compiledir={compiledir}"
    if linked:
        flags += ",blas__ldflags=-lopenblas"
    env = dict(os.environ, PYTENSOR_FLAGS=flags)
    cmd = [sys.executable, __file__, "--child", str(workdir), str(out)]
    subprocess.run(cmd, env=env, check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="A/B alternations")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    if not OPENBLAS.exists():
        print(
            f"{OPENBLAS} not found: install Debian's OpenBLAS development files first,\n"
            "    sudo apt-get install libopenblas-dev\n"
            "then run this script again. Nothing was measured."
        )
        return

    with tempfile.TemporaryDirectory(prefix="bayeslmm-blas-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        prepare(tmp)
        print(f"data simulated and decomposed in {time.perf_counter() - t0:.0f} s", flush=True)
        runs: dict[str, list[dict]] = {"unlinked": [], "linked": []}
        for r in range(args.rounds):
            for label in ("unlinked", "linked"):
                compiledir = tmp / f"compiledir_{label}"
                res = run_child(tmp, compiledir, label == "linked", tmp / f"{label}_{r}.json")
                runs[label].append(res)
                times = ", ".join(
                    f"{case} {c['eval_s'] * 1e6:.0f} µs (compile {c['compile_s']:.1f} s)"
                    for case, c in res["cases"].items()
                )
                print(f"round {r + 1} {label:<8} ldflags={res['ldflags']!r}: {times}", flush=True)

    cases = list(runs["unlinked"][0]["cases"])
    summary = {}
    for case in cases:
        row = {}
        for label in ("unlinked", "linked"):
            evals = [res["cases"][case]["eval_s"] for res in runs[label]]
            row[f"{label}_us"] = 1e6 * min(evals)
            row[f"{label}_compile_cold_s"] = runs[label][0]["cases"][case]["compile_s"]
            row[f"{label}_ops"] = runs[label][0]["cases"][case]["ops"]
        row["ratio"] = row["linked_us"] / row["unlinked_us"]
        summary[case] = row

    print()
    print("one logp+gradient evaluation, PyTensor C backend (best batch over all rounds)")
    print(
        f"{'model':<26} {'unlinked':>10} {'linked':>10} {'linked/unlinked':>16} "
        f"{'cold compile u/l':>17}"
    )
    for case, row in summary.items():
        print(
            f"{case:<26} {row['unlinked_us']:>8.1f}µs {row['linked_us']:>8.1f}µs "
            f"{row['ratio']:>16.2f} {row['unlinked_compile_cold_s']:>7.1f}s/"
            f"{row['linked_compile_cold_s']:.1f}s"
        )
    print()
    for case, row in summary.items():
        print(f"{case}: dot ops unlinked {row['unlinked_ops']}, linked {row['linked_ops']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
