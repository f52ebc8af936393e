import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# models/ holds the dense references; the package never imports them, the tests do.
for sub in ("models/kinship_lmm", "models/snp_lmm"):
    pass
sys.path.insert(0, str(ROOT))


def standardized_kinship(G: np.ndarray) -> np.ndarray:
    """K = WW'/M from standardized genotypes (mean diagonal exactly 1)."""
    W = (G - G.mean(0)) / G.std(0)
    return W @ W.T / W.shape[1]


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


@pytest.fixture
def small(rng):
    """N = 40, d = 2, full-rank K from 120 SNPs."""
    from bayeslmm.simulate import simulate

    return simulate(40, 120, 0.5, n_covariates=1, seed=7)
