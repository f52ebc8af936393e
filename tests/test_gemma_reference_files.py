"""The frozen GEMMA outputs parse and hold the numbers of ../shared/data/REFERENCE.md."""

import pytest

from tests.gemma_reference import EUR_DIR, read_gemma_assoc, read_gemma_log

# (set, K): (REML logL, ML logL, pve, se(pve), vg, ve) as printed in REFERENCE.md
REFERENCE = {
    ("eurA", "sXX"): (-516.782, -519.185, 0.532821, 0.166296, 0.554799, 0.48645),
    ("eurA", "cXX"): (-517.51, -520.924, 0.407065, 0.137233, 1.69608, 0.617634),
    ("eurB", "sXX"): (-530.451, -531.297, 0.172156, 0.119231, 0.180978, 0.87027),
    ("eurB", "cXX"): (-530.501, -531.373, 0.129495, 0.0942649, 0.542053, 0.914614),
}


@pytest.mark.parametrize(("name", "kin"), list(REFERENCE))
def test_gemma_log__matches_reference_table(name, kin):
    log = read_gemma_log(EUR_DIR / "gemma" / f"{name}_{kin}_lmm4.log.txt")
    keys = ("logl_reml", "logl_ml", "pve", "pve_se", "vg", "ve")
    assert tuple(log[k] for k in keys) == REFERENCE[(name, kin)]
    assert log["n_analyzed"] == (366 if name == "eurA" else 369)


@pytest.mark.parametrize("name", ["eurA", "eurB"])
def test_gemma_assoc__parses(name):
    table = read_gemma_assoc(EUR_DIR / "gemma" / f"{name}_sXX_lmm4.assoc.txt.gz")
    assert len(table) == (2431 if name == "eurA" else 1331)
    assert {"beta", "se", "p_wald", "p_lrt", "p_score", "l_remle"} <= set(table.columns)
