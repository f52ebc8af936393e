import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so that tests can import models.<name>.reference


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run tests marked slow (NUTS recovery runs); CI does",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
    from bayeslmm.data.simulation import simulate

    return simulate(40, 120, 0.5, n_covariates=1, seed=7)
