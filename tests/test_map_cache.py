"""map_estimate reuses its compiled functions across models of one structure.

The reference is a fresh compilation (an empty cache) and PyMC's own compiled functions of
the second model (``compile_logp``, ``compile_dlogp``, ``initial_point``), which read that
model's shared variables: a reused compilation must give the same numbers to 1e-10.
"""

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import bayeslmm as bl
from bayeslmm.inference import optimize, sampling
from bayeslmm.inference.cross_validation import cross_validate

N = 100
TOL = 1e-10


@pytest.fixture(scope="module")
def cohorts():
    """Two simulated data sets of one shape (seeds 1 and 2), with a 0/1 trait of each."""
    out = []
    for seed in (1, 2):
        data = bl.simulate(N, 200, 0.5, n_covariates=1, seed=seed)
        y01 = (data.y > np.quantile(data.y, 0.7)).astype(float)
        out.append((data, y01))
    return out


BUILDERS = {
    "kinship": lambda data, y01: bl.kinship_model(data.y, data.K, data.X),
    "snp": lambda data, y01: bl.snp_model(data.y, data.G, data.X),
    "probit": lambda data, y01: bl.kinship_model(y01, data.K, data.X, family="probit"),
    "probit_variance": lambda data, y01: bl.kinship_model(
        y01, data.K, data.X, family="probit", parametrization="variance"
    ),
}


@pytest.fixture
def cache(monkeypatch):
    """An empty map_estimate cache for the test (the process's own is left as it was)."""
    monkeypatch.setattr(optimize, "_MAP_COMPILED", OrderedDict())
    return lambda: optimize._MAP_COMPILED


def clear() -> None:
    optimize._MAP_COMPILED.clear()


def values(fit) -> dict[str, np.ndarray]:
    """Posterior variables and pointwise log-likelihood of a map_estimate result."""
    out = {name: var.values for name, var in fit["posterior"].data_vars.items()}
    out["log_likelihood"] = fit["log_likelihood"]["y"].values
    return out


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=TOL, atol=TOL, err_msg=name)


@pytest.mark.parametrize("form", list(BUILDERS))
def test_map_estimate__reused_compilation_equals_fresh(cohorts, cache, form):
    """Data sets 1 then 2, 2 then 1, each against its fit in an empty cache."""
    build = BUILDERS[form]
    first = build(*cohorts[0])
    fresh_1 = values(bl.map_estimate(first))
    reused_2 = values(bl.map_estimate(build(*cohorts[1])))
    assert len(cache()) == 1
    # the first model's result does not change after the second is fitted
    assert_same(values(bl.map_estimate(first)), fresh_1)
    clear()
    fresh_2 = values(bl.map_estimate(build(*cohorts[1])))
    reused_1 = values(bl.map_estimate(build(*cohorts[0])))
    assert len(cache()) == 1
    assert_same(reused_2, fresh_2)
    assert_same(reused_1, fresh_1)
    assert not np.allclose(fresh_1["h2"], fresh_2["h2"])  # the data sets differ


@pytest.mark.parametrize("form", ["kinship", "probit"])
def test_map_functions__reused_functions_equal_pymc_compiled(cohorts, cache, form):
    """The second model's values through the first's compilation = PyMC's own functions."""
    build = BUILDERS[form]
    first = build(*cohorts[0])
    reference = optimize.map_functions(first, sampling._map_key(first, bl_info(first)))
    point = reference.initial_point()  # every function compiled from the first model's graph
    reference.logp(point), reference.dlogp(point), reference.values(point)
    model = build(*cohorts[1])
    compiled = optimize.map_functions(model, sampling._map_key(model, bl_info(model)))
    assert len(cache()) == 1 and compiled.structure is next(iter(cache().values()))
    start = model.initial_point()
    assert_same(compiled.initial_point(), start)
    rvs = [model.values_to_rvs[v] for v in model.continuous_value_vars]
    logp = model.compile_logp(jacobian=False)
    dlogp = model.compile_dlogp(vars=rvs, jacobian=False)
    names = pm.util.get_default_varnames(model.unobserved_value_vars, include_transformed=False)
    expand = model.compile_fn(names, inputs=model.value_vars, on_unused_input="ignore")
    rng = np.random.default_rng(3)
    for _ in range(3):
        point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in start.items()}
        assert compiled.logp(point) == pytest.approx(float(logp(point)), rel=TOL, abs=TOL)
        np.testing.assert_allclose(compiled.dlogp(point), dlogp(point), rtol=TOL, atol=TOL)
        reference = dict(zip([v.name for v in names], expand(point), strict=True))
        assert_same(compiled.values(point), reference)


def bl_info(model):
    from bayeslmm.families.base import info_of

    return info_of(model)


def test_map_estimate__cache_hit_compiles_nothing(cohorts, cache, monkeypatch):
    calls = []
    compile_function = pm.pytensorf.compile

    def counting(*args, **kwargs):
        calls.append(1)
        return compile_function(*args, **kwargs)

    monkeypatch.setattr(pm.pytensorf, "compile", counting)
    bl.map_estimate(BUILDERS["kinship"](*cohorts[0]))
    assert len(calls) == 4  # initial point, log-density, gradient, values
    assert len(next(iter(cache().values()))) == 4
    calls.clear()
    bl.map_estimate(BUILDERS["kinship"](*cohorts[1]))
    assert calls == [] and len(cache()) == 1


def test_map_estimate__other_structure_gets_its_own_entry(cohorts, cache):
    """Another shape, prior family, parametrization or covariate count: a new compilation."""
    data, _ = cohorts[0]
    bl.map_estimate(bl.kinship_model(data.y, data.K, data.X))
    variants = {
        "shape": lambda: bl.kinship_model(data.y[:80], data.K[:80, :80], data.X[:80]),
        "prior": lambda: bl.kinship_model(
            data.y, data.K, data.X, priors={"h2": bl.Prior("Uniform", lower=0.0, upper=1.0)}
        ),
        "parametrization": lambda: bl.kinship_model(
            data.y, data.K, data.X, parametrization="variance"
        ),
        "covariates": lambda: bl.kinship_model(data.y, data.K),
    }
    reused = {}
    for k, (name, build) in enumerate(variants.items()):
        reused[name] = values(bl.map_estimate(build()))
        assert len(cache()) == k + 2, name
    for name, build in variants.items():
        clear()
        assert_same(reused[name], values(bl.map_estimate(build())))


def test_structure_key__constants_count_data_values_do_not():
    """Models differing in a pm.Data value share a key; in a constant or a shape, do not."""

    def model(y, scale, data_scale):
        with pm.Model() as m:
            s = pm.Data("s", np.asarray(data_scale))
            mu = pm.Normal("mu", 0.0, scale * s)
            pm.Normal("y", mu, 1.0, observed=pm.Data("y_obs", np.asarray(y)))
        return m

    base = optimize.structure_key(model([1.0, 2.0], 10.0, 1.0))
    assert base is not None
    assert optimize.structure_key(model([3.0, -1.0], 10.0, 5.0)) == base
    assert optimize.structure_key(model([1.0, 2.0], 11.0, 1.0)) != base
    assert optimize.structure_key(model([1.0, 2.0, 3.0], 10.0, 1.0)) != base
    with pm.Model() as user_initval:
        pm.Normal("mu", 0.0, 1.0, initval=0.5)
    assert optimize.structure_key(user_initval) is None


def test_map_point__model_not_built_by_bayeslmm_is_not_kept(cache):
    """A plain PyMC model: its own compilation, the closed-form mode, nothing cached."""
    y = np.array([0.5, 1.5, 2.0, -0.3])
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("y", mu, 1.0, observed=pm.Data("y_obs", y))
    point = optimize.map_point(model)
    assert point["mu"] == pytest.approx(y.sum() / (y.size + 1 / 100), rel=1e-8)
    assert len(cache()) == 0


def test_map_estimate__threads_share_one_compilation(cohorts, cache):
    """Fits of one structure in parallel threads equal the fits one at a time."""
    build = BUILDERS["kinship"]
    serial = [values(bl.map_estimate(build(*cohorts[k]))) for k in (0, 1)]
    models = [build(*cohorts[k % 2]) for k in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        fits = list(pool.map(lambda m: values(bl.map_estimate(m)), models))
    for k, fit in enumerate(fits):
        assert_same(fit, serial[k % 2])
    assert len(cache()) == 1


@pytest.mark.parametrize("family", ["gaussian", "probit"])
def test_cross_validate__map_table_equals_fresh_fit_per_fold(cohorts, cache, monkeypatch, family):
    """The folds reuse one compilation; the table equals folds compiled one by one."""
    data, y01 = cohorts[0]
    ids = [str(k) for k in range(N)]
    y = pd.Series(data.y if family == "gaussian" else y01, index=ids)
    K = pd.DataFrame(data.K, index=ids, columns=ids)
    X = pd.DataFrame(data.X, index=ids)
    reused = cross_validate(y, K=K, X=X, family=family, n_folds=4, random_seed=4)
    assert len(cache()) == 1  # equal fold sizes: one structure
    monkeypatch.setattr(sampling, "_map_key", lambda model, info: None)  # compile every fold
    fresh = cross_validate(y, K=K, X=X, family=family, n_folds=4, random_seed=4)
    assert len(cache()) == 1
    pd.testing.assert_frame_equal(reused.predictions, fresh.predictions, rtol=TOL, atol=TOL)
    pd.testing.assert_frame_equal(reused.metrics, fresh.metrics, rtol=TOL, atol=TOL)
