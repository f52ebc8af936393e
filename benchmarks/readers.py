"""read_bimbam on a gzipped BIMBAM file vs GEMMA's files → kinship run, in the same run.

    python benchmarks/readers.py [--file GENO.txt.gz] [--n 1940] [--m 12226] [--repeat 3]
                                 [--workdir DIR] [--no-reference]

Default file: GEMMA's mouse HS1940 example (1,940 samples × 12,226 SNPs), shipped by Debian's
``gemma-doc`` package (``/usr/share/doc/gemma/example/mouse_hs1940.geno.txt.gz``); without it a
simulated gzipped BIMBAM file of ``--n`` × ``--m`` with dosages and NA is written. Timed in the
same run, as yardsticks of the machine's load:

- the previous reader's parser (``numpy.loadtxt`` of the dosages after a Python split per line,
  ~2 s on an idle machine for the mouse file);
- GEMMA (``apt-get install gemma``) on the same file, ``gemma -g FILE -p PHENO -gk 1`` (read,
  kinship, write).

Target (issue 10): read_bimbam ≤ 1 s, below GEMMA's run. Prints the best of ``--repeat`` runs,
wall and CPU seconds (CPU is the fairer number on a shared machine; Arrow parses on all cores).
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import bayeslmm as bl
from bayeslmm.io.files import read_bytes

MOUSE = Path("/usr/share/doc/gemma/example/mouse_hs1940.geno.txt.gz")


def make_bimbam(path: Path, n: int, m: int, seed: int = 1) -> None:
    """A gzipped BIMBAM file: m lines 'rs, A, G, dosages...' (3 decimals, 1 % NA)."""
    rng = np.random.default_rng(seed)
    with gzip.open(path, "wt", compresslevel=6) as handle:
        for j in range(m):
            g = rng.binomial(2, rng.uniform(0.05, 0.5), n).astype(str).astype(object)
            g[rng.uniform(size=n) < 0.01] = "NA"
            handle.write(f"rs{j}, A, G, " + ", ".join(g) + "\n")


def timed(fn, repeat: int = 1) -> tuple[float, float, object]:
    """Best wall and CPU seconds of ``repeat`` calls, and the last result."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), out


def loadtxt_reference(path: Path) -> np.ndarray:
    """The previous reader's parser: a Python split per line, then numpy.loadtxt of the dosages."""
    data = read_bytes(path)
    rests = [f.split(None, 3)[3] for f in data.replace(b",", b" ").split(b"\n") if f.strip()]
    numbers = b"\n".join(rests).replace(b"NA", b"nan")
    return np.loadtxt(io.BytesIO(numbers), dtype=float, ndmin=2, comments=None, quotechar=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--n", type=int, default=1940)
    parser.add_argument("--m", type=int, default=12226)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-reference", action="store_true", help="skip the loadtxt yardstick")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bayeslmm-readers-"))
    work.mkdir(parents=True, exist_ok=True)
    path = args.file or (MOUSE if MOUSE.is_file() else None)
    if path is None:
        path = work / "sim.geno.txt.gz"
        print(f"writing a simulated BIMBAM file {args.n} × {args.m} to {path}")
        make_bimbam(path, args.n, args.m)
    wall, cpu, g = timed(lambda: bl.read_bimbam(path), args.repeat)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB gzipped), {g.shape[0]} × {g.shape[1]}")
    print(f"bayeslmm read_bimbam: {wall:6.2f} s wall, {cpu:6.2f} s CPU (target ≤ 1 s)")
    if not args.no_reference:
        ref_wall, ref_cpu, ref = timed(lambda: loadtxt_reference(path), 1)
        assert np.array_equal(np.where(ref == -9, np.nan, ref).T, g.read(), equal_nan=True)
        print(
            f"previous parser (split + numpy.loadtxt): {ref_wall:6.2f} s wall, {ref_cpu:6.2f} s "
            f"CPU (same values); read_bimbam is {ref_wall / wall:.1f}× faster"
        )
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
