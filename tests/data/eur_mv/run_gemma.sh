#!/usr/bin/env bash
# Regenerates the frozen GEMMA mvLMM outputs in tests/data/eur_mv/ (see README.md there).
#   usage: bash tests/data/eur_mv/run_gemma.sh [WORKDIR]
# Needs Debian's gemma (apt-get install -y gemma) and the repository's .venv (numpy,
# bed-reader). Reads the frozen EUR data in tests/data/eur/; tests never run this.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"
cp "$root/tests/data/eur/eurA.bed" eurA_mv.bed
cp "$root/tests/data/eur/eurA.bim" eurA_mv.bim
"$root/.venv/bin/python" "$here/simulate_trait.py" "$root/tests/data/eur" eurA_mv
gemma -bfile eurA_mv -gk 1 -maf 0 -o eurA_mv >/dev/null             # centred K: output/eurA_mv.cXX.txt
gemma -bfile eurA_mv -k output/eurA_mv.cXX.txt -c eurA_mv.cov.txt -lmm 1 -n 1 2 -maf 0 \
  -o pheno_qcov2 > pheno_qcov2.stdout.txt 2>&1
gemma -bfile eurA_mv -k output/eurA_mv.cXX.txt -c eurA_mv.cov.txt -lmm 1 -n 1 3 -maf 0 \
  -o pheno_sim > pheno_sim.stdout.txt 2>&1
cp eurA_mv.fam eurA_mv.cov.txt "$here/"
for run in pheno_qcov2 pheno_sim; do
  cp "output/$run.log.txt" "$here/$run.log.txt"
  # GEMMA's screen output (4 decimals, and the log-likelihood to 4 decimals) without the
  # progress bar
  grep -v -e '=====' -e '^ *0%' "$run.stdout.txt" > "$here/$run.stdout.txt"
done
gemma -license > license.txt 2>&1 || true
{ head -1 license.txt
  dpkg-query -W -f='debian ${Package} ${Version}\n' gemma 2>/dev/null || true
  "$root/.venv/bin/python" -c "import numpy, importlib.metadata as m; print('numpy', numpy.__version__, 'bed-reader', m.version('bed-reader'))"
} > "$here/VERSIONS.txt"
echo "frozen outputs written to $here"
