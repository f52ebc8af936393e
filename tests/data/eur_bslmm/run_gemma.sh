#!/usr/bin/env bash
# Regenerates the frozen GEMMA BSLMM outputs in tests/data/eur_bslmm/ (see README.md there).
#   usage: bash tests/data/eur_bslmm/run_gemma.sh [WORKDIR]
# Needs Debian's gemma (apt-get install -y gemma) and the repository's .venv (numpy, pandas).
# Reads the frozen EUR data in tests/data/eur/; tests never run this. About 4 min per seed.
set -euo pipefail
# one BLAS thread: GEMMA 0.98.5's OpenBLAS threads spin on a busy machine (a seed that takes 4 min
# with one thread had done 2/3 of its iterations after 15 min with two)
export OPENBLAS_NUM_THREADS=1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=${1:-$(mktemp -d)}
seeds="1 2 3 4 5"
mkdir -p "$work"
cd "$work"
cp "$root/tests/data/eur/eurA.bed" eurA_res.bed
cp "$root/tests/data/eur/eurA.bim" eurA_res.bim
# BSLMM takes no -c: the phenotype is PHENO residualized on covA.txt's four columns
"$root/.venv/bin/python" "$here/bslmm_files.py" phenotype "$root/tests/data/eur" eurA_res
for seed in $seeds; do
  # 10,000 burn-in and 100,000 sampling iterations, every 100th written: 1,000 draws a seed
  gemma -bfile eurA_res -bslmm 1 -w 10000 -s 100000 -rpace 100 -maf 0 -seed "$seed" \
    -o "eurA_bslmm_s$seed" > "eurA_bslmm_s$seed.stdout.txt" 2>&1
  cp "output/eurA_bslmm_s$seed.log.txt" "$here/"
done
"$root/.venv/bin/python" "$here/bslmm_files.py" summarize output "$here" $seeds
cp eurA_res.fam "$here/"
gemma -license > license.txt 2>&1 || true
{ head -1 license.txt
  dpkg-query -W -f='debian ${Package} ${Version}\n' gemma 2>/dev/null || true
  "$root/.venv/bin/python" -c "import numpy, pandas; print('numpy', numpy.__version__, 'pandas', pandas.__version__)"
} > "$here/VERSIONS.txt"
echo "frozen outputs written to $here"
