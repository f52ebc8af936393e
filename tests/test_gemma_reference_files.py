"""The frozen GEMMA / plink2 outputs parse and hold the numbers of ../shared/data/REFERENCE.md.

These guard the frozen files themselves (tests/data/eur, made by validation/eur_gemma.sh).
"""

import numpy as np
import pytest

from tests.gemma_reference import (
    GEMMA_DIR,
    PLINK2_DIR,
    gemma_assoc_path,
    read_block,
    read_diag,
    read_gemma_assoc,
    read_gemma_log,
)

# (set, K): (REML logL, ML logL, pve, se(pve), vg, ve) as printed in REFERENCE.md
REFERENCE = {
    ("eurA", "sXX"): (-516.782, -519.185, 0.532821, 0.166296, 0.554799, 0.48645),
    ("eurA", "cXX"): (-517.51, -520.924, 0.407065, 0.137233, 1.69608, 0.617634),
    ("eurB", "sXX"): (-530.451, -531.297, 0.172156, 0.119231, 0.180978, 0.87027),
    ("eurB", "cXX"): (-530.501, -531.373, 0.129495, 0.0942649, 0.542053, 0.914614),
}
SIZES = {"eurA": (366, 2431, 4), "eurB": (369, 1331, 1)}  # individuals, SNPs, covariates


def _check_log(name, kin):
    log = read_gemma_log(GEMMA_DIR / f"{name}_{kin}_lmm4.log.txt")
    keys = ("logl_reml", "logl_ml", "pve", "pve_se", "vg", "ve")
    assert tuple(log[k] for k in keys) == REFERENCE[(name, kin)]  # exact: same printed digits
    n, m, c = SIZES[name]
    assert (log["n_analyzed"], log["n_snps"], log["n_covariates"]) == (n, m, c)
    assert len(log["beta"]) == len(log["beta_se"]) == c
    assert log["version"].startswith("0.98.5")
    assert f"-k output/{name}.{kin}.txt" in log["command"] and "-lmm 4" in log["command"]


def test_gemma_log__eurA_sXX():
    _check_log("eurA", "sXX")


def test_gemma_log__eurA_cXX():
    _check_log("eurA", "cXX")


def test_gemma_log__eurB_sXX():
    _check_log("eurB", "sXX")


def test_gemma_log__eurB_cXX():
    _check_log("eurB", "cXX")


@pytest.mark.parametrize("kin", ["sXX", "cXX"])
@pytest.mark.parametrize("name", ["eurA", "eurB"])
def test_gemma_assoc__parses(name, kin):
    table = read_gemma_assoc(gemma_assoc_path(name, kin))
    assert len(table) == SIZES[name][1]
    assert {"rs", "beta", "se", "l_remle", "l_mle", "p_wald", "p_lrt", "p_score"} <= set(table)
    assert table[["p_wald", "p_lrt", "p_score"]].stack().between(0, 1).all()


@pytest.mark.parametrize("name", ["eurA", "eurB"])
def test_kinship_slices__parse_and_agree(name):
    n = SIZES[name][0]
    stems = [
        GEMMA_DIR / f"{name}.sXX",
        GEMMA_DIR / f"{name}.cXX",
        PLINK2_DIR / f"{name}.cov",
        PLINK2_DIR / f"{name}.std",
    ]
    for stem in stems:
        block, diag = read_block(f"{stem}.block20.tsv"), read_diag(f"{stem}.diag.txt")
        assert block.shape == (20, 20) and diag.shape == (n,)
        np.testing.assert_array_equal(block, block.T)
        np.testing.assert_array_equal(np.diag(block), diag[:20])
    # GEMMA -gk 1 is plink2 --make-rel cov (plink2 prints 6 significant digits)
    for part in ("block20.tsv", "diag.txt"):
        read = read_block if part.startswith("block") else read_diag
        np.testing.assert_allclose(
            read(GEMMA_DIR / f"{name}.cXX.{part}"),
            read(PLINK2_DIR / f"{name}.cov.{part}"),
            rtol=1e-5,
            atol=1e-6,
        )
