"""Model families (issue 10, point 5): the registry, the record of built models, the one prior
resolver, and the worked example of docs/design.md §6 run as written there."""

import ast
import gc
import re
import types
import warnings
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import special, stats

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import Family, ModelInfo, info_of
from bayeslmm.families.priors import UNIT, Parameter, Prior, resolve
from bayeslmm.families.registry import FAMILIES, family_of, selectable_families
from bayeslmm.inference.sampling import _add_groups
from tests.nuts import sample_counted

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bayeslmm"
DESIGN = ROOT / "docs" / "design.md"


@pytest.fixture(scope="module")
def cohort():
    """N = 30 with sample IDs, one covariate, a full-rank K and a low-rank second K."""
    data = simulate(30, 40, 0.5, n_covariates=1, seed=3)
    ids = [str(s) for s in data.samples]
    W = (data.G[:, :8] - data.G[:, :8].mean(0)) / data.G[:, :8].std(0)
    return {
        "y": pd.Series(data.y, index=ids, name="trait"),
        "X": pd.DataFrame(data.X, index=ids, columns=["age"]),
        "K": pd.DataFrame(data.K, index=ids, columns=ids),
        "K2": pd.DataFrame(W @ W.T / 8, index=ids, columns=ids),
        "G": pd.DataFrame(data.G, index=ids, columns=[f"rs{j}" for j in range(40)]),
    }


#: One public build per registered family, and the rows bl.heritability reports for it.
BUILDS = {
    "gaussian": (
        lambda c: bl.kinship_model(c["y"], c["K"], c["X"]),
        ["h2", "sigma_g2", "sigma_e2"],
    ),
    "snp": (
        lambda c: bl.snp_model(c["y"], c["G"], c["X"]),
        ["h2", "sigma_g2", "sigma_e2", "sigma_v2"],
    ),
    "components": (
        lambda c: bl.kinship_model(c["y"], {"A": c["K"], "B": c["K2"]}, c["X"]),
        ["h2", "sigma_g2", "sigma_e2", "h2_component[A]", "h2_component[B]"],
    ),
    "probit": (
        lambda c: bl.kinship_model(
            (c["y"] > c["y"].median()).astype(float), c["K"], c["X"], family="probit"
        ),
        ["h2", "sigma_g2", "sigma_e2"],
    ),
    "sparse": (
        lambda c: bl.snp_model(c["y"], c["G"], c["X"], marginalize=False, prior="mixture"),
        ["h2", "sigma_g2", "sigma_b2", "sigma_e2", "pve", "pge"],
    ),
    "loci": (
        lambda c: bl.kinship_model(c["y"], c["K"], c["X"], fixed_snps=c["G"][["rs1", "rs2"]]),
        ["h2", "sigma_g2", "sigma_e2", "h2_loci", "h2_background", "h2_total"],
    ),
    "linear": (lambda c: bl.linear_model(c["y"], c["X"]), ["sigma_e2"]),
    "multitrait": (
        lambda c: bl.kinship_model(
            pd.DataFrame({"a": c["y"], "b": c["y"] + c["G"]["rs0"]}), c["K"], c["X"]
        ),
        [
            "h2[a]",
            "h2[b]",
            "rg[a,b]",
            "re[a,b]",
            "Sigma_g[a,a]",
            "Sigma_g[a,b]",
            "Sigma_g[b,b]",
            "Sigma_e[a,a]",
            "Sigma_e[a,b]",
            "Sigma_e[b,b]",
        ],
    ),
}


def _prior_posterior(model: pm.Model, draws: int = 20) -> xr.Dataset:
    """Draws from the prior of every free variable and Deterministic, shaped as a posterior."""
    names = [v.name for v in model.free_RVs + model.deterministics]
    values = pm.draw([model[n] for n in names], draws=draws, random_seed=1, mode="FAST_COMPILE")
    data = {}
    for name, value in zip(names, values, strict=True):
        dims = model.named_vars_to_dims.get(name, ())
        coords = {d: list(model.coords[d]) for d in dims}
        data[name] = xr.DataArray(value[None], dims=("chain", "draw", *dims), coords=coords)
    return xr.Dataset(data)


def test_registry__one_family_per_name():
    assert set(BUILDS) == set(FAMILIES)  # every family is exercised below
    for name, family in FAMILIES.items():
        assert isinstance(family, Family) and family.name == name
        assert callable(family.build) and callable(family.postprocess)
    assert selectable_families() == ["gaussian", "probit"]  # multitrait: routed by Y's columns


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_family__built_recorded_postprocessed_and_summarized(cohort, name):
    """Public builder → info_of/family_of → the family's postprocess → its summary rows."""
    build, rows = BUILDS[name]
    model = build(cohort)
    info = info_of(model)
    assert isinstance(info, ModelInfo) and info.family == name
    assert family_of(model) is FAMILIES[name]
    assert "bayeslmm" not in vars(model)  # nothing is set on the pm.Model
    posterior = _prior_posterior(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # diagnostics of 20 prior draws
        idata = _add_groups(posterior, None, info, np.random.default_rng(0), True)
        table = bl.heritability(idata)
    assert idata.attrs["family"] == name and idata.attrs["model"] == info.form
    loglik = idata["log_likelihood"]["y"]
    assert loglik.dims == ("chain", "draw", "sample") and loglik.shape == (1, 20, info.data.n)
    assert np.isfinite(loglik.values).all()
    if name == "multitrait":  # u of each sample and trait
        assert idata["posterior"]["u"].shape == (1, 20, info.data.n, 2)
    elif name != "linear":
        assert idata["posterior"]["u"].shape == (1, 20, info.data.n)
    assert list(table.index) == rows


def test_heritability__result_without_family_uses_every_known_row(cohort):
    model = BUILDS["loci"][0](cohort)
    idata = _add_groups(_prior_posterior(model), None, info_of(model), None, False)
    del idata.attrs["family"]  # a result written before families were recorded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert list(bl.heritability(idata).index) == BUILDS["loci"][1]


def test_info_of__models_bayeslmm_did_not_build():
    with pm.Model() as foreign:
        pm.Normal("x")
    for thing in (foreign, {"y": 1}, None, "model"):
        with pytest.raises(bl.InputError, match="not built by bayeslmm.kinship_model"):
            info_of(thing)
    with pytest.raises(bl.InputError, match="not built by bayeslmm"):
        family_of(foreign)


def test_info_of__record_goes_with_its_model(cohort):
    model = bl.kinship_model(cohort["y"], cohort["K"])
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None  # the record does not keep the model alive


def test_kinship_model__unknown_family_lists_the_selectable_ones(cohort):
    with pytest.raises(bl.InputError, match=r"family must be 'gaussian' or 'probit', got 'x'"):
        bl.kinship_model(cohort["y"], cohort["K"], family="x")


def test_no_module_sets_attributes_on_a_model():
    """No ``<model>.<attr> = ...`` and no ``setattr(<model>, ...)`` anywhere in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and (
                    target.attr == "bayeslmm" or "model" in ast.unparse(target.value).lower()
                ):
                    found.append(f"{path.name}:{node.lineno}: {ast.unparse(target)}")
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("setattr", "object.__setattr__")
                and "model" in ast.unparse(node.args[0]).lower()
            ):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_prior_resolver__is_the_only_checker():
    # the prior-type message is written once: every family's priors go through resolve()
    sources = [p.read_text() for p in PACKAGE.rglob("*.py")]
    assert sum(s.count("must be a bayeslmm.Prior or a PyMC distribution") for s in sources) == 1


def test_prior_resolver__one_message_format():
    table = {
        "p": Parameter(Prior("Beta", alpha=1, beta=1), UNIT, suggestion="e.g. Beta"),
        "v": Parameter(Prior("Normal", mu=0, sigma=1), shape=(3,)),
    }
    assert resolve(None, table, model="m") == {n: t.default for n, t in table.items()}
    given = Prior("Beta", alpha=2, beta=2)
    assert resolve({"p": given}, table, model="m")["p"] is given
    cases = [
        ({"q": given}, r"unknown prior\(s\) \['q'\] for m; allowed: \['p', 'v'\]; use p\.$"),
        ({"p": 0.5}, r"the prior for 'p' must be a bayeslmm\.Prior .*got float; use e\.g\. Beta"),
        ({"p": Prior("Normal", mu=0, sigma=1)}, r"'p' \(Prior.*outside its support: its draws "),
        ({"p": Prior("Flat")}, r"is improper on the real line, but 'p' lies in \(0, 1\)"),
        ({"v": pm.Normal.dist(0, 1, shape=2)}, r"has shape \(2,\), but 'v' has shape \(3,\)"),
        ("flat", r"priors='flat' is not available for m"),
        ("weakly", r"priors must be a dict, 'default' or 'flat', got 'weakly'"),
    ]
    for priors, match in cases:
        with pytest.raises(bl.InputError, match=match):
            resolve(priors, table, model="m", hints={"q": "use p"})


def test_prior_resolver__remembers_passed_priors_only(monkeypatch):
    import bayeslmm.families.priors as priors_module

    calls = []
    draw_many = priors_module._draw_many
    monkeypatch.setattr(priors_module, "_draw_many", lambda v: calls.append(len(v)) or draw_many(v))
    monkeypatch.setattr(priors_module, "_CHECKED", type(priors_module._CHECKED)())
    table = {"p": Parameter(Prior("Beta", alpha=1, beta=1), UNIT)}
    good = {"p": Prior("Beta", alpha=2.0, beta=3.0)}
    resolve(good, table, model="m")
    resolve({"p": Prior("Beta", alpha=2.0, beta=3.0)}, table, model="m")  # equal: not redrawn
    assert calls == [1]
    resolve({"p": Prior("Beta", alpha=2.0, beta=3.5)}, table, model="m")  # another value
    assert calls == [1, 1]
    bad = {"p": Prior("Normal", mu=0.0, sigma=1.0)}
    for _ in range(2):  # a failed check is not remembered: it fails again
        with pytest.raises(bl.InputError, match="outside its support"):
            resolve(bad, table, model="m")
    # the same prior on a parameter of another support is checked there (and fails)
    real = {"p": Parameter(Prior("Normal", mu=0, sigma=1), shape=())}
    resolve(bad, real, model="m")
    positive = {"p": Parameter(Prior("HalfNormal", sigma=1), (0.0, np.inf))}
    with pytest.raises(bl.InputError, match="outside its support"):
        resolve(bad, positive, model="m")


# ---- the worked example of docs/design.md §6 ---------------------------------------------------


def _doc_family() -> types.ModuleType:
    """The module of the worked example, executed from the first python block of §6."""
    section = DESIGN.read_text().split("## 6. Adding a model family", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("student_t")
    exec(compile(code, f"{DESIGN}:§6", "exec"), module.__dict__)  # noqa: S102 - our own doc
    return module


def test_worked_example__registry_line_is_in_the_doc():
    section = DESIGN.read_text().split("## 6. Adding a model family", 1)[1]
    assert '"student_t": student_t.STUDENT_T,' in section


@pytest.fixture
def student_t(monkeypatch):
    """The doc's family, registered with its one line (undone after the test)."""
    module = _doc_family()
    monkeypatch.setitem(FAMILIES, "student_t", module.STUDENT_T)
    return module


def test_worked_example__logp_equals_scipy(cohort, student_t):
    model = bl.kinship_model(cohort["y"], cohort["K"], cohort["X"], family="student_t")
    assert family_of(model) is student_t.STUDENT_T
    info = info_of(model)
    assert info.form == "student_t_lmm" and "student_t" in selectable_families()
    U, s, X, y = info.spectral.U, info.spectral.s, info.data.X, info.data.y
    f_y = model.compile_logp(vars=[model["y"]])
    f_nu = model.compile_logp(vars=[model["nu"]])
    rng = np.random.default_rng(5)
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in model.initial_point().items()}
        h2 = special.expit(point["h2_logodds__"])
        sigma_p2 = np.exp(2 * point["sigma_p_log__"])
        nu = np.exp(point["nu_log__"])
        u = U @ (np.sqrt(h2 * sigma_p2 * s) * point["z"])
        scale = np.sqrt((1 - h2) * sigma_p2)
        expected = stats.t.logpdf(y, nu, X @ point["beta"] + u, scale).sum()
        assert f_y(point) == pytest.approx(expected, rel=1e-10)
        # Gamma(2, rate 0.1) on ν, sampled as log ν: + log ν (the Jacobian)
        assert f_nu(point) == pytest.approx(stats.gamma(2, scale=10).logpdf(nu) + np.log(nu))


def test_worked_example__prior_errors_come_from_the_resolver(cohort, student_t):
    with pytest.raises(bl.InputError, match="the prior for 'nu' .*outside its support"):
        bl.kinship_model(
            cohort["y"],
            cohort["K"],
            priors={"nu": bl.Prior("Normal", mu=0, sigma=1)},
            family="student_t",
        )
    with pytest.raises(bl.InputError, match=r"unknown prior\(s\) \['sigma_g2'\] for the Student"):
        bl.kinship_model(
            cohort["y"],
            cohort["K"],
            priors={"sigma_g2": bl.Prior("HalfNormal")},
            family="student_t",
        )


def test_worked_example__sampled_by_bl_sample(cohort, student_t):
    """NUTS on the doc's model; bl.sample hands the draws to the family's postprocess."""
    model = bl.kinship_model(cohort["y"], cohort["K"], cohort["X"], family="student_t")
    idata = sample_counted(model, draws=60, tune=200, chains=1, random_seed=2, max_divergent=3)
    assert idata.attrs["family"] == "student_t" and idata.attrs["model"] == "student_t_lmm"
    post = idata["posterior"]
    info = info_of(model)
    assert post["u"].dims == ("chain", "draw", "sample")
    k = 17  # one draw: u and the log-likelihood are the doc's formulas of its parameters
    draw = post.isel(chain=0, draw=k)
    u = info.spectral.U @ (np.sqrt(float(draw["sigma_g2"]) * info.spectral.s) * draw["z"].values)
    np.testing.assert_allclose(draw["u"].values, u, rtol=1e-10, atol=1e-12)
    mu = info.data.X @ draw["beta"].values + u
    expected = stats.t.logpdf(info.data.y, float(draw["nu"]), mu, np.sqrt(float(draw["sigma_e2"])))
    np.testing.assert_allclose(idata["log_likelihood"]["y"].values[0, k], expected, rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert list(bl.heritability(idata).index) == ["h2", "sigma_g2", "sigma_e2", "nu"]
