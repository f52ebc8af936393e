"""What ``import bayeslmm`` loads, and the PyTensor BLAS lookup that its PyMC side makes quiet
but defers (``bayeslmm.families.backend``, run by the first PyMC-side module imported; what
the numpy core
and a bare ``import bayeslmm`` leave unloaded is in test_layering.py)."""

import pytest

from tests.fresh import run_fresh


def test_import__no_scipy_stats_and_no_blas_lookup():
    out = run_fresh(
        "import sys, bayeslmm, pytensor\n"
        "bayeslmm.kinship_model, bayeslmm.sample  # the PyMC side\n"
        "param = pytensor.config._config_var_dict['blas__ldflags']\n"
        "print('scipy.stats' in sys.modules, 'arviz_stats' in sys.modules, hasattr(param, 'val'))"
    )
    assert out.split() == ["False", "False", "False"]


def test_import__blas_lookup_at_first_c_compile_is_quiet():
    # PyTensor 3.3 still warns at the first C-backend compilation of a dot product (inside a
    # graph rewrite, under the caller's filters); once bayeslmm's PyMC side is loaded it must not
    out = run_fresh(
        "import bayeslmm, numpy as np, pytensor, pytensor.tensor as pt\n"
        "bayeslmm.kinship_model  # loads the PyMC side, which sets PyTensor up\n"
        "from pytensor.compile.mode import Mode\n"
        "x, v, w = pt.matrix('x'), pt.vector('v'), pt.vector('w')\n"
        "f = pytensor.function([x, v, w], 2 * (x @ v) + w, mode=Mode(linker='cvm'))\n"
        "print(f(np.ones((3, 3)), np.ones(3), np.ones(3)).tolist())\n"
        "print(isinstance(pytensor.config.blas__ldflags, str))"
    )
    assert out.split("\n")[:2] == ["[7.0, 7.0, 7.0]", "True"]


@pytest.mark.parametrize(
    "module",
    ["bayeslmm.families.gaussian", "bayeslmm.families.priors", "bayeslmm.inference.sampling"],
)
def test_import__pymc_submodule_alone_makes_blas_lookup_quiet(module):
    # a PyMC-side module imported directly (not through bayeslmm's lazy names) sets PyTensor up too
    out = run_fresh(
        f"import {module}, numpy as np, pytensor, pytensor.tensor as pt\n"
        "from pytensor.compile.mode import Mode\n"
        "x, v = pt.matrix('x'), pt.vector('v')\n"
        "f = pytensor.function([x, v], x @ v, mode=Mode(linker='cvm'))\n"
        "print(f(np.ones((2, 2)), np.ones(2)).tolist())"
    )
    assert out.split("\n")[0] == "[2.0, 2.0]"


@pytest.mark.parametrize("module", ["bayeslmm.estimation.reml", "bayeslmm.estimation.multi"])
def test_reml_constants__equal_scipy_stats(module):
    import importlib

    from scipy import stats

    mod = importlib.import_module(module)
    assert mod.CHI2_HALF == float(stats.chi2.ppf(0.95, 1) / 2)
    assert mod.Z95 == float(stats.norm.ppf(0.975))
