#!/usr/bin/env bash
# Install bayeslmm into a virtual environment in this checkout (.venv), then run
# `bayeslmm demo` on its embedded data.
#   usage: bash install.sh [--no-demo]
#
# bayeslmm needs Python >= 3.12 (PyMC 6 / ArviZ 1). The interpreter is found in this order:
#   1. $BAYESLMM_PYTHON, if set (a path or a command name);
#   2. python3.13, python3.12, python3, python on PATH (the first that is >= 3.12);
#   3. pyenv's installed versions (newest first), whether or not pyenv is the active shim;
#   4. `uv python find '>=3.12'`.
# When none is found it says what to install and exits with status 1. No system library is
# needed: PyTensor's optional BLAS link was measured and not worth it (benchmarks/blas.py).
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv

is_recent() {  # is "$1" a Python interpreter >= 3.12?
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate root
  if [ -n "${BAYESLMM_PYTHON:-}" ]; then
    if is_recent "$BAYESLMM_PYTHON"; then echo "$BAYESLMM_PYTHON"; return 0; fi
    echo "install.sh: BAYESLMM_PYTHON=$BAYESLMM_PYTHON is not a Python >= 3.12" >&2
    return 1
  fi
  for candidate in python3.13 python3.12 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && is_recent "$(command -v "$candidate")"; then
      command -v "$candidate"; return 0
    fi
  done
  root="${PYENV_ROOT:-}"
  if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; fi
  if [ -z "$root" ] && [ -d "$HOME/.pyenv" ]; then root="$HOME/.pyenv"; fi
  if [ -n "$root" ] && [ -d "$root/versions" ]; then
    # plain CPython versions only (3.13.0, 3.12.1), newest first
    for candidate in $(ls "$root/versions" | grep -E '^3\.[0-9]+\.[0-9]+$' | sort -t. -k1,1nr -k2,2nr -k3,3nr); do
      if is_recent "$root/versions/$candidate/bin/python3"; then
        echo "$root/versions/$candidate/bin/python3"; return 0
      fi
    done
  fi
  if command -v uv >/dev/null 2>&1; then
    candidate="$(uv python find '>=3.12' 2>/dev/null || true)"
    if [ -n "$candidate" ] && is_recent "$candidate"; then echo "$candidate"; return 0; fi
  fi
  return 1
}

if ! PYTHON="$(find_python)"; then
  cat >&2 <<'MSG'
install.sh: bayeslmm needs Python >= 3.12 (PyMC 6 and ArviZ 1 do), and none was found
(looked for python3.13, python3.12, python3 and python on PATH, pyenv's versions, and uv).
Install one, then run `bash install.sh` again:
  - pyenv:  pyenv install 3.13
  - uv:     uv python install 3.13
  - conda:  conda create -n py313 python=3.13, then conda activate py313
  - or your system's packages (python3.12 / python3.13 and their venv module).
To use an interpreter that is not on PATH: BAYESLMM_PYTHON=/path/to/python3.13 bash install.sh
(bayeslmm 0.1.x is the line for Python 3.11 and PyMC 5.)
MSG
  exit 1
fi
echo "install.sh: using $PYTHON ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))"

# A .venv made by another interpreter (or an older Python) is rebuilt, never reused.
if [ -x "$VENV/bin/python" ] && ! is_recent "$VENV/bin/python"; then
  echo "install.sh: $VENV has Python < 3.12; recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[dev]"
echo "install.sh: installed into $VENV ($("$VENV/bin/python" -c 'import pymc, arviz; print(f"PyMC {pymc.__version__}, ArviZ {arviz.__version__}")'))"

if [ "${1:-}" != "--no-demo" ]; then
  "$VENV/bin/bayeslmm" demo
fi
