"""The numba functions handed to nutpie against PyMC's own log-density, gradient and values."""

import warnings

import numpy as np
import pymc as pm
import pytest

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import info_of
from bayeslmm.inference.compiled import compile_functions, nutpie_model
from bayeslmm.inference.sampling import _initial_point_function


def _arguments(functions, model):
    data = tuple(np.asarray(model[name].get_value(), order="C") for name in functions.data_names)
    return data + functions.logp_shared, data + functions.expand_shared


def _pymc_logp_grad(model):
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    return fn


def _assert_logp_grad_equal(functions, logp_args, reference, x):
    value, grad = functions.logp(x, *logp_args)
    ref_value, ref_grad = reference(x)
    assert value == pytest.approx(float(ref_value), rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "build",
    [
        lambda d: bl.kinship_model(d.y, d.K, d.X),
        lambda d: bl.kinship_model(d.y, d.K, d.X, priors="flat"),
        lambda d: bl.kinship_model(d.y, d.K, d.X, parametrization="variance"),
        lambda d: bl.snp_model(d.y, d.G, marginalize=False),
    ],
    ids=["h2", "flat", "variance", "explicit_v"],
)
def test_compile_functions__logp_gradient_and_values_equal_pymc(build, rng):
    data = simulate(60, 40, 0.5, n_covariates=2, seed=3)
    model = build(data)
    functions = compile_functions(model)
    logp_args, expand_args = _arguments(functions, model)
    reference = _pymc_logp_grad(model)
    names = [v.name for v in model.value_vars]
    sizes = [int(np.size(model.initial_point()[n])) for n in names]
    # PyMC's graphs of each variable from the unconstrained values, compiled by the C backend
    by_name = {v.name: v for v in model.unobserved_value_vars}
    outputs = [by_name[name] for name in ("h2", "sigma_g2", "sigma_e2")]
    values_fn = pm.pytensorf.compile(model.value_vars, outputs, on_unused_input="ignore")
    for _ in range(4):
        x = rng.normal(0, 0.5, functions.n_dim)
        _assert_logp_grad_equal(functions, logp_args, reference, x)
        expanded = dict(zip(functions.names, functions.expand(x, *expand_args), strict=True))
        parts = np.split(x, np.cumsum(sizes)[:-1])
        shapes = [np.shape(model.initial_point()[n]) for n in names]
        point = [p.reshape(shape) for p, shape in zip(parts, shapes, strict=True)]
        for name, ref in zip(("h2", "sigma_g2", "sigma_e2"), values_fn(*point), strict=True):
            np.testing.assert_allclose(expanded[name], ref, rtol=1e-12)


def test_compile_functions__reused_for_another_phenotype_equals_its_own_model(rng):
    a = simulate(70, 50, 0.3, n_covariates=1, seed=4)
    b = simulate(70, 50, 0.7, n_covariates=1, seed=5)
    model_a = bl.kinship_model(a.y, a.K, a.X)
    model_b = bl.kinship_model(b.y, b.K, b.X)
    functions = compile_functions(model_a)  # compiled once, then given b's data
    logp_args, _ = _arguments(functions, model_b)
    reference = _pymc_logp_grad(model_b)
    for _ in range(3):
        x = rng.normal(0, 0.5, functions.n_dim)
        _assert_logp_grad_equal(functions, logp_args, reference, x)
    compiled = nutpie_model(functions, model_b, _initial_point_function(model_b))
    assert compiled.n_dim == functions.n_dim


def test_sample__compilation_path_by_model_size(monkeypatch):
    from bayeslmm.inference import sampling as inference

    data = simulate(50, 30, 0.5, seed=6)
    small = bl.kinship_model(data.y, data.K)
    large = bl.snp_model(data.y, data.G, marginalize=False)  # 30 SNP effects + 3
    monkeypatch.setattr(inference, "MAX_CACHED_DIM", 10)
    monkeypatch.setattr(inference, "_COMPILED", inference.OrderedDict())
    compiled, cores = inference._compiled_nutpie(small, info_of(small))
    # the disk-cached numba functions behind C functions: nutpie's threads, no Python
    assert cores is None and type(compiled).__name__ == "CompiledPyMCModel"
    assert inference._COMPILED[next(iter(inference._COMPILED))].cfuncs is not None
    compiled, cores = inference._compiled_nutpie(large, info_of(large))
    assert cores is None and type(compiled).__name__ == "CompiledPyMCModel"
    # both paths sample (their posteriors are checked elsewhere: the kinship model against the
    # exact grid posterior in test_recovery, the probit and sparse models, which take nutpie's
    # own path, against the simulated truth in test_probit and test_sparse)
    for limit in (10, 100):
        monkeypatch.setattr(inference, "MAX_CACHED_DIM", limit)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bl.SamplingWarning)  # short chains: R-hat may warn
            fit = bl.sample(large, draws=100, tune=100, chains=2, random_seed=3, progressbar=False)
        h2 = fit.posterior["h2"].values
        assert h2.shape == (2, 100) and np.all((h2 > 0) & (h2 < 1))


def _c_logp(functions, model, x):
    """Call the C log-density function as nutpie does: pointers to x, outputs and the table."""
    import ctypes

    compiled = nutpie_model(functions, model, _initial_point_function(model))
    grad, value = np.empty(functions.n_dim), np.empty(1)
    pointer = ctypes.POINTER(ctypes.c_double)
    status = functions.cfuncs[0].ctypes(
        functions.n_dim,
        x.ctypes.data_as(pointer),
        grad.ctypes.data_as(pointer),
        value.ctypes.data_as(pointer),
        compiled.user_data.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
    )
    return status, float(value[0]), grad


@pytest.mark.parametrize(
    "build",
    [
        lambda d: bl.kinship_model(d.y, d.K, d.X),
        lambda d: bl.kinship_model(d.y, d.K, d.X, parametrization="variance"),
    ],
    ids=["h2", "variance"],
)
def test_c_functions__logp_gradient_equal_pymc_and_reused_for_another_phenotype(build, rng):
    a = simulate(60, 40, 0.4, n_covariates=2, seed=7)
    b = simulate(60, 40, 0.6, n_covariates=2, seed=8)
    model_a, model_b = build(a), build(b)
    functions = compile_functions(model_a)
    assert functions.cfuncs is not None
    for model in (model_a, model_b):  # model_b: the same C functions, b's data in the table
        reference = _pymc_logp_grad(model)
        for _ in range(3):
            x = rng.normal(0, 0.5, functions.n_dim)
            status, value, grad = _c_logp(functions, model, x)
            ref_value, ref_grad = reference(x)
            assert status == 0
            assert value == pytest.approx(float(ref_value), rel=1e-10)
            np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-10)


def test_c_functions__same_draws_as_python_path():
    import nutpie

    data = simulate(80, 60, 0.5, n_covariates=1, seed=9)
    model = bl.kinship_model(data.y, data.K, data.X)
    functions = compile_functions(model)
    draws = []
    for python in (True, False):
        compiled = nutpie_model(functions, model, _initial_point_function(model), python=python)
        raw = nutpie.sample(
            compiled, draws=50, tune=50, chains=2, cores=1, seed=5, progress_bar=False
        )
        draws.append(raw["posterior"].to_dataset())
    for name in ("h2", "sigma_p", "beta", "sigma_g2"):
        np.testing.assert_array_equal(draws[0][name].values, draws[1][name].values)
