"""Write the .fam and covariate file of the multi-trait GEMMA check (run by run_gemma.sh).

usage: python simulate_trait.py EUR_DIR OUT_PREFIX

The .fam of eurA (tests/data/eur/eurA.fam, phenotype PHENO in column 6) gets two more
phenotype columns, so that ``gemma -bfile OUT_PREFIX -n 1 2`` analyses PHENO and QCOV2, and
``-n 1 3`` PHENO and SIM:

- column 7, QCOV2: the second quantitative covariate of EUR_subset.pheno2.covars (the EUR
  example has one phenotype; its covariate file's second numeric covariate is the second trait);
- column 8, SIM: a simulated trait with its own genetic part, correlated with PHENO:
  SIM = 0.5·(PHENO − mean) + W v + e, W the eurA genotypes standardized per SNP, v ~ N(0, 1/M),
  e ~ N(0, 1), numpy's default_rng(20261202), printed to 10 significant digits.

The covariate file (no header) has the intercept, CAT_COV == B and QCOV1 (eurA's covA.txt
without QCOV2, now a trait). Needs numpy and bed-reader only.
"""

import sys
from pathlib import Path

import numpy as np
from bed_reader import open_bed

eur, out = Path(sys.argv[1]), Path(sys.argv[2])
fam = [line.split() for line in (eur / "eurA.fam").read_text().splitlines()]
table = [line.split() for line in (eur / "EUR_subset.pheno2.covars").read_text().splitlines()]
header, rows = table[0], {row[1]: row for row in table[1:]}
qcov2 = np.array([float(rows[f[1]][header.index("QCOV2")]) for f in fam])
pheno = np.array([float(f[5]) for f in fam])
with open_bed(eur / "eurA.bed") as bed:
    G = bed.read(dtype="float64")
assert not np.isnan(G).any()
W = (G - G.mean(axis=0)) / G.std(axis=0)
rng = np.random.default_rng(20261202)
v = rng.normal(scale=1 / np.sqrt(W.shape[1]), size=W.shape[1])
e = rng.normal(size=len(fam))
sim = 0.5 * (pheno - pheno.mean()) + W @ v + e
with open(f"{out}.fam", "w") as fh:
    for f, q, s in zip(fam, qcov2, sim, strict=True):
        fh.write(" ".join([*f[:6], f"{q:.10g}", f"{s:.10g}"]) + "\n")
cov = [line.split() for line in (eur / "covA.txt").read_text().splitlines()]
Path(f"{out}.cov.txt").write_text("".join(" ".join(c[:3]) + "\n" for c in cov))
