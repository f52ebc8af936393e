"""Run code in a fresh interpreter: what importing bayeslmm loads is a per-process fact."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter with warnings as errors; its stdout.

    Fails on a non-zero exit and on any traceback printed to stderr (PyTensor prints one for a
    failed graph rewrite without failing the process).
    """
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout
