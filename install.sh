#!/usr/bin/env bash
# Install bayeslmm with everything it needs, then run `bayeslmm demo` on its embedded data.
#   usage: bash install.sh [--no-demo]
# No system library is needed: PyTensor's optional BLAS link was measured and not worth it
# (benchmarks/blas.py), and bayeslmm silences PyTensor's warning about it for that reason.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"bayeslmm needs Python >= 3.11, this is {sys.version.split()[0]}")
PY
python3 -m pip install --quiet --upgrade pip
python3 -m pip install --quiet -e ".[dev]"
if [ "${1:-}" != "--no-demo" ]; then
  bayeslmm demo
fi
