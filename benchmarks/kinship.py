"""Kinship from a PLINK file: bayeslmm vs ``plink2 --make-rel cov`` in the same run.

    python benchmarks/kinship.py [--n 2000] [--m 50000] [--chunk 2048] [--workdir DIR]

Prints wall times and their ratio (target: bayeslmm within 2× of plink2), and bayeslmm's peak
traced memory against the bound N²·8 bytes + one SNP chunk (N·chunk·8 bytes, times the few
copies a chunk goes through). plink2 comes from Debian (``apt-get install plink2``); without it
only bayeslmm is timed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from bed_reader import to_bed

import bayeslmm as bl


def make_bed(prefix: Path, n: int, m: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.5, m)
    block = 5000
    G = np.empty((n, m), dtype=np.int8)
    for start in range(0, m, block):
        stop = min(start + block, m)
        G[:, start:stop] = rng.binomial(2, p[start:stop], size=(n, stop - start))
    ids = [f"s{i}" for i in range(n)]
    to_bed(
        f"{prefix}.bed",
        G,
        properties={
            "fid": ids,
            "iid": ids,
            "sid": [f"rs{j}" for j in range(m)],
            "chromosome": [str(1 + j * 22 // m) for j in range(m)],
            "bp_position": list(range(1, m + 1)),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--m", type=int, default=50000)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bayeslmm-kin-"))
    prefix = work / "bench"
    if not Path(f"{prefix}.bed").exists():
        t0 = time.perf_counter()
        make_bed(prefix, args.n, args.m)
        print(f"wrote {args.n} × {args.m} PLINK file in {time.perf_counter() - t0:.1f} s")
    g = bl.read_plink(prefix)
    tracemalloc.start()
    t0 = time.perf_counter()
    K = bl.kinship(g, "centered", chunk_size=args.chunk)
    t_ours = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    bound = args.n**2 * 8 + args.n * args.chunk * 8
    print(
        f"bayeslmm kinship(centered): {t_ours:.2f} s; peak traced memory {peak / 1e6:.0f} MB "
        f"(N²·8 = {args.n**2 * 8 / 1e6:.0f} MB, one chunk N·c·8 = "
        f"{args.n * args.chunk * 8 / 1e6:.0f} MB; peak/(N²·8 + chunk) = {peak / bound:.2f})"
    )
    plink2 = shutil.which("plink2")
    if plink2 is None:
        print("plink2 not found (apt-get install plink2): no reference timing")
        return
    t0 = time.perf_counter()
    subprocess.run(
        [
            plink2,
            "--bfile",
            str(prefix),
            "--make-rel",
            "cov",
            "square",
            "--out",
            str(work / "rel"),
            "--threads",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    t_plink = time.perf_counter() - t0
    ref = np.loadtxt(work / "rel.rel")
    diff = np.abs(ref - K.matrix).max()
    print(f"plink2 --make-rel cov square: {t_plink:.2f} s (includes writing the text matrix)")
    print(f"max |bayeslmm − plink2| = {diff:.2e} (plink2 prints 6 significant digits)")
    print(f"RATIO bayeslmm / plink2 wall time = {t_ours / t_plink:.2f} (target ≤ 2)")


if __name__ == "__main__":
    main()
