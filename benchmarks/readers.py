"""read_bimbam on a gzipped BIMBAM file vs GEMMA's files → kinship run, in the same run.

    python benchmarks/readers.py [--file GENO.txt.gz] [--n 1940] [--m 12226] [--workdir DIR]

Default file: GEMMA's mouse HS1940 example (1,940 samples × 12,226 SNPs), shipped by Debian's
``gemma-doc`` package (``/usr/share/doc/gemma/example/mouse_hs1940.geno.txt.gz``); without it a
simulated gzipped BIMBAM file of ``--n`` × ``--m`` with dosages and NA is written. GEMMA
(``apt-get install gemma``) is timed on the same file with ``gemma -g FILE -p PHENO -gk 1``
(read, kinship, write). Target (issue 10): read_bimbam ≤ 1 s, below GEMMA's run. Prints wall
and CPU seconds (CPU is the fairer number on a shared machine).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import bayeslmm as bl

MOUSE = Path("/usr/share/doc/gemma/example/mouse_hs1940.geno.txt.gz")


def make_bimbam(path: Path, n: int, m: int, seed: int = 1) -> None:
    """A gzipped BIMBAM file: m lines 'rs, A, G, dosages...' (3 decimals, 1 % NA)."""
    rng = np.random.default_rng(seed)
    with gzip.open(path, "wt", compresslevel=6) as handle:
        for j in range(m):
            g = rng.binomial(2, rng.uniform(0.05, 0.5), n).astype(str).astype(object)
            g[rng.uniform(size=n) < 0.01] = "NA"
            handle.write(f"rs{j}, A, G, " + ", ".join(g) + "\n")


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--n", type=int, default=1940)
    parser.add_argument("--m", type=int, default=12226)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bayeslmm-readers-"))
    work.mkdir(parents=True, exist_ok=True)
    path = args.file or (MOUSE if MOUSE.is_file() else None)
    if path is None:
        path = work / "sim.geno.txt.gz"
        print(f"writing a simulated BIMBAM file {args.n} × {args.m} to {path}")
        make_bimbam(path, args.n, args.m)
    wall, cpu, g = timed(lambda: bl.read_bimbam(path))
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB gzipped), {g.shape[0]} × {g.shape[1]}")
    print(f"bayeslmm read_bimbam: {wall:6.2f} s wall, {cpu:6.2f} s CPU (target ≤ 1 s)")
    gemma = shutil.which("gemma")
    if gemma is None:
        print("gemma: not installed (apt-get install gemma); not timed")
        return
    pheno = work / "pheno.txt"
    pheno.write_text(
        "".join(f"{v:.6f}\n" for v in np.random.default_rng(2).normal(size=g.shape[0]))
    )
    cmd = [
        gemma,
        "-g",
        str(path),
        "-p",
        str(pheno),
        "-gk",
        "1",
        "-o",
        "bench",
        "-outdir",
        str(work),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=work, check=True, capture_output=True)
    gemma_wall = time.perf_counter() - start
    print(f"gemma -g FILE -p PHENO -gk 1 (read + kinship): {gemma_wall:6.2f} s wall")
    print(f"read_bimbam / gemma: {wall / gemma_wall:.2f}")


if __name__ == "__main__":
    main()
