#!/usr/bin/env bash
# Regenerates the frozen GEMMA -gxe outputs in tests/data/eur_gxe/ (see README.md there).
#   usage: bash tests/data/eur_gxe/run_gemma.sh [WORKDIR]
# Needs Debian's gemma (apt-get install -y gemma). Reads the frozen EUR data in tests/data/eur/;
# tests never run this.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"
cp "$root"/tests/data/eur/eurA.{bed,bim,fam} .
# covariates: intercept, CAT_COV==B, QCOV1 (columns 1-3 of covA.txt); environment: QCOV2 (column 4)
awk '{print $1, $2, $3}' "$root/tests/data/eur/covA.txt" > covA3.txt
awk '{print $4}' "$root/tests/data/eur/covA.txt" > envA.txt
gemma -bfile eurA -gk 2 -maf 0 -o eurA >/dev/null                  # output/eurA.sXX.txt
gemma -bfile eurA -k output/eurA.sXX.txt -c covA3.txt -gxe envA.txt -lmm 4 -maf 0 \
  -o eurA_sXX_gxe_lmm4 >/dev/null
cp output/eurA_sXX_gxe_lmm4.log.txt "$here/"
# every SNP, the columns the tests read, text as GEMMA printed it
cut -f2,8,9,11,13,14,15 output/eurA_sXX_gxe_lmm4.assoc.txt | gzip -9 -n \
  > "$here/eurA_sXX_gxe_lmm4.assoc.cut.txt.gz"
gemma -license > license.txt 2>&1 || true
{ head -1 license.txt
  dpkg-query -W -f='debian ${Package} ${Version}\n' gemma 2>/dev/null || true
} > "$here/VERSIONS.txt"
echo "frozen outputs written to $here"
