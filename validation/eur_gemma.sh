#!/usr/bin/env bash
# Regenerates the frozen peer-tool outputs in tests/data/eur/ from the 1000 Genomes EUR example.
#   usage: bash validation/eur_gemma.sh [WORKDIR]
# Runs from any clone, from any directory. Needs the shared data scripts beside the clone
# (../shared/data/fetch_eur_example.sh, as in the workspace and CI; or SHARED=/path/to/shared) and
# root or sudo for apt-get: that script installs gemma, plink2, bolt-lmm and bolt-lmm-example (the
# source of the EUR data) and builds the data in WORKDIR; nothing needs to be built beforehand.
# WORKDIR (default: a fresh temp dir) receives the EUR example and all full tool outputs; only
# small slices are frozen into tests/data/eur/ (see its README.md). Tests never run this: they
# read the frozen files. Re-run it to refresh them, then commit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
fetch="${SHARED:-$here/../shared}/data/fetch_eur_example.sh"
if [ ! -f "$fetch" ]; then
  echo "eur_gemma.sh: $fetch not found; the EUR data are built by the shared data scripts, kept" \
    "beside the clone (../shared); set SHARED=/path/to/shared to use another copy" >&2
  exit 1
fi
bash "$fetch" "$work" >/dev/null
out="$here/tests/data/eur"
mkdir -p "$out/gemma" "$out/plink2"
cd "$work"
for s in eurA eurB; do
  cp "$s".bed "$s".bim "$s".fam "$out/"
  gemma -bfile "$s" -gk 2 -maf 0 -o "$s" >/dev/null     # standardized K -> output/$s.sXX.txt
  gemma -bfile "$s" -gk 1 -maf 0 -o "$s" >/dev/null     # centered K     -> output/$s.cXX.txt
  cov=""; [ "$s" = eurA ] && cov="-c covA.txt"
  for k in sXX cXX; do
    # shellcheck disable=SC2086
    gemma -bfile "$s" -k "output/$s.$k.txt" $cov -lmm 4 -maf 0 -o "${s}_${k}_lmm4" >/dev/null
    # keep the frozen log when only its date, timing and machine lines (OpenBLAS's CPU kernel
    # and thread count) differ: no churn on re-runs or on another CPU
    log="output/${s}_${k}_lmm4.log.txt"; old="$out/gemma/${s}_${k}_lmm4.log.txt"
    strip() { grep -v -e '^## Date' -e 'time' -e '^## OpenBlas' -e '^##   arch' -e '^##   threads' "$1"; }
    [ -f "$old" ] && cmp -s <(strip "$log") <(strip "$old") || cp "$log" "$out/gemma/"
    # per-SNP table: plain text, gzipped (deterministic: -n) only when over 300 KB
    a="output/${s}_${k}_lmm4.assoc.txt"
    rm -f "$out/gemma/${s}_${k}_lmm4.assoc.txt" "$out/gemma/${s}_${k}_lmm4.assoc.txt.gz"
    if [ "$(stat -c %s "$a")" -gt 300000 ]; then
      gzip -9 -n -c "$a" > "$out/gemma/${s}_${k}_lmm4.assoc.txt.gz"
    else
      cp "$a" "$out/gemma/"
    fi
  done
  plink2 --bfile "$s" --make-rel cov square --out "${s}_cov" >/dev/null
  plink2 --bfile "$s" --make-rel square --out "${s}_std" >/dev/null
  # 20×20 slices of each kinship, values exactly as the tools printed them
  head -20 "output/$s.sXX.txt" | cut -f1-20 > "$out/gemma/$s.sXX.block20.tsv"
  head -20 "output/$s.cXX.txt" | cut -f1-20 > "$out/gemma/$s.cXX.block20.tsv"
  head -20 "${s}_cov.rel" | cut -f1-20 > "$out/plink2/$s.cov.block20.tsv"
  head -20 "${s}_std.rel" | cut -f1-20 > "$out/plink2/$s.std.block20.tsv"
  awk '{print $NR}' "output/$s.sXX.txt" > "$out/gemma/$s.sXX.diag.txt"
  awk '{print $NR}' "output/$s.cXX.txt" > "$out/gemma/$s.cXX.diag.txt"
  awk '{print $NR}' "${s}_cov.rel" > "$out/plink2/$s.cov.diag.txt"
  awk '{print $NR}' "${s}_std.rel" > "$out/plink2/$s.std.diag.txt"
done
cp covA.txt EUR_subset.pheno2.covars "$out/"
{ gemma -license 2>&1 | head -1 || true; plink2 --version
  dpkg-query -W -f='debian ${Package} ${Version}\n' gemma plink2 2>/dev/null || true; } > "$out/VERSIONS.txt"
echo "frozen outputs written to $out"
