"""Execute the example notebooks at full size and commit-ready: their outputs, stamped.

    python docs/refresh_notebooks.py [NAME ...] [--force] [--timeout 3600]

Each notebook of ``examples/`` (or those named) is executed top to bottom at full size (no
``BAYESLMM_QUICK``) in a kernel that imports bayeslmm from this checkout, and written back in
place with its outputs and a stamp in its metadata (``metadata["bayeslmm"]``):

- ``code_sha256``: the hash of its code cells' sources (:func:`code_hash`), the key of the
  cached outputs: ``tests/test_examples.py`` fails when a notebook's code changed since its
  outputs were produced (run this script again for it, then commit);
- ``version`` and ``commit``: the bayeslmm version and the git commit it ran on (``+dirty`` when
  the package had uncommitted changes), and ``seconds``, its wall time.

A notebook whose stamp already matches its code is skipped unless ``--force``: the outputs are a
cache keyed on the notebook's code. Changes of the package do not invalidate it (every change
would); they are covered by the test suite, which executes every notebook in quick mode on
each run, and the outputs are refreshed with ``--force`` before a release.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def code_hash(notebook: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells' sources, in order (what the outputs were produced from)."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode("utf-8"))
            digest.update(b"\0")
    return digest.hexdigest()


def _commit() -> str:
    """The checkout's commit, ``+dirty`` when bayeslmm/ has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "bayeslmm") else "")


def refresh(path: Path, timeout: int) -> float:
    """Execute one notebook at full size and write it back with its outputs and stamp."""
    import bayeslmm

    notebook = nbformat.read(path, as_version=4)
    env_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.environ["PYTHONPATH"] = env_path
    os.environ.pop("BAYESLMM_QUICK", None)
    start = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    seconds = time.perf_counter() - start
    notebook.metadata["bayeslmm"] = {
        "code_sha256": code_hash(notebook),
        "version": bayeslmm.__version__,
        "commit": _commit(),
        "seconds": round(seconds, 1),
    }
    nbformat.write(notebook, path)
    return seconds


def main() -> int:
    """Refresh the notebooks named (default: all) whose stamp does not match their code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: every one)")
    parser.add_argument("--force", action="store_true", help="even if the stamp matches")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    paths = sorted(EXAMPLES.glob("*.ipynb"))
    if args.names:
        wanted = {Path(name).stem for name in args.names}
        unknown = wanted - {path.stem for path in paths}
        if unknown:
            parser.error(f"no such notebook in examples/: {sorted(unknown)}")
        paths = [path for path in paths if path.stem in wanted]
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        stamp = notebook.metadata.get("bayeslmm", {})
        if not args.force and stamp.get("code_sha256") == code_hash(notebook):
            print(f"{path.name}: outputs current (stamp {stamp.get('commit')}), skipped")
            continue
        print(f"{path.name}: executing at full size ...", flush=True)
        print(f"{path.name}: {refresh(path, args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
