"""The posterior from a Gram (issue 11, point 3): bl.kinship_model / bl.snp_model(y, gram, X).

The reference is the same model from the N×N kinship ``bl.kinship(G, "standardized_empirical")``
(or ``"centered"``), or the SNP model from the genotype matrix. The Gram path builds the rotated
model from the M×M eigenbasis and one streamed pass over the genotypes, and post-processes (u,
v, the sample-space LOO terms) by streamed blocks of samples.

Tolerances. The two models are the same function: their log-densities agree to ~1e-15 relative
at any point (tested to 1e-8, issue 11's criterion); so do u, v and the LOO terms for the same
posterior draws (conditional means; ~1e-12). The MAP is an optimizer's answer on two equal
functions (~1e-10 measured); NUTS runs on them agree within Monte Carlo error. The large-cohort
switch stores, from the very same draws, their mean and SD (to round-off) and their PSIS-LOO
computed by blocks (equal to ``arviz_stats.loo`` on the whole matrix with the same relative
efficiency).
"""

import warnings

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from xarray import DataTree

import bayeslmm as bl
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.families import lmm
from bayeslmm.families.base import info_of
from bayeslmm.inference import effects
from bayeslmm.inference.comparison import relative_efficiency
from tests.nuts import sample_counted

N, M = 640, 220
EXACT = 1e-8
#: PyTensor mode of the log-densities compared (compiles in 0.5 s instead of 1.5 s; float64 too)
FAST = "FAST_COMPILE"


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def cohort():
    data = bl.simulate(N, M, 0.5, n_covariates=2, n_populations=2, seed=21)
    G = data.G.copy()
    G[np.random.default_rng(21).random(G.shape) < 0.02] = np.nan
    return data, G


@pytest.fixture(scope="module")
def grams(cohort):
    _, G = cohort
    return {
        method: bl.gram(G, method, chunk_size=150)
        for method in ("standardized_empirical", "centered")
    }


@pytest.fixture(scope="module")
def kinships(cohort):
    _, G = cohort
    return {method: bl.kinship(G, method) for method in ("standardized_empirical", "centered")}


@pytest.fixture(scope="module")
def snp_models(cohort):
    # the SNP form from W needs complete genotypes to equal the Gram's (missing calls are
    # imputed with a DataWarning there); the simulated ones are
    data, _ = cohort
    gram = bl.gram(data.G, chunk_size=150)  # several blocks of samples
    return bl.snp_model(data.y, data.G, data.X), bl.snp_model(data.y, gram, data.X)


def _random_points(model, rng, n=5):
    ip = model.initial_point()
    return [{k: v + rng.normal(0, 0.5, size=np.shape(v)) for k, v in ip.items()} for _ in range(n)]


def _with_missing_y(y: np.ndarray, n_missing: int) -> np.ndarray:
    y = y.copy()
    y[np.random.default_rng(3).choice(y.size, n_missing, replace=False)] = np.nan
    return y


# --- the model: equal log-densities ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "n_missing", "parametrization"),
    [
        ("standardized_empirical", 0, "h2"),
        ("standardized_empirical", 70, "h2"),
        ("centered", 0, "h2"),
        ("centered", 70, "variance"),
        ("standardized_empirical", 400, "variance"),
    ],
    ids=["all", "downdate", "centered", "centered-downdate-variance", "recompute-variance"],
)
def test_kinship_model_gram__logp_equals_nxn(
    cohort, grams, kinships, method, n_missing, parametrization
):
    data, _ = cohort
    y = _with_missing_y(data.y, n_missing) if n_missing else data.y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the samples without y (both paths)
        fast = bl.kinship_model(y, grams[method], data.X, parametrization=parametrization)
        ref = bl.kinship_model(y, kinships[method], data.X, parametrization=parametrization)
    assert {v.name for v in fast.free_RVs} == {v.name for v in ref.free_RVs}
    assert fast.coords["sample"] == ref.coords["sample"]
    info, info_ref = info_of(fast), info_of(ref)
    assert info.rotated.n_null == info_ref.rotated.n_null == N - n_missing - M
    assert info.spectral.scale == pytest.approx(info_ref.spectral.scale, rel=1e-13)
    f_fast, f_ref = fast.compile_logp(mode=FAST), ref.compile_logp(mode=FAST)
    for point in _random_points(ref, np.random.default_rng(5)):
        assert f_fast(point) == pytest.approx(f_ref(point), rel=EXACT)


def test_kinship_model_gram__logp_equals_nxn_with_offsets_and_units(cohort, grams, kinships):
    # y of 1e6 + noise and a covariate in other units: the null space has no digits to lose
    data, _ = cohort
    y = 1e6 + 30.0 * data.y
    X = data.X * [1.0, 1e4]
    fast = bl.kinship_model(y, grams["standardized_empirical"], X)
    ref = bl.kinship_model(y, kinships["standardized_empirical"], X)
    f_fast, f_ref = fast.compile_logp(mode=FAST), ref.compile_logp(mode=FAST)
    for point in _random_points(ref, np.random.default_rng(6)):
        assert f_fast(point) == pytest.approx(f_ref(point), rel=EXACT)


def test_snp_model_gram__logp_equals_snp_model_from_w(snp_models):
    ref, fast = snp_models
    assert fast.coords["snp"] == ref.coords["snp"] and len(fast.coords["snp"]) == M
    f_fast, f_ref = fast.compile_logp(mode=FAST), ref.compile_logp(mode=FAST)
    for point in _random_points(ref, np.random.default_rng(7)):
        assert f_fast(point) == pytest.approx(f_ref(point), rel=EXACT)


def test_kinship_model_gram__never_holds_n_sized_data(cohort, grams):
    data, _ = cohort
    model = bl.kinship_model(data.y, grams["standardized_empirical"], data.X)
    sizes = {v.name: v.get_value().size for v in model.data_vars}
    assert max(sizes.values()) <= M * data.X.shape[1] + M, sizes  # X_rot: rank × covariates


# --- MAP, and post-processing of the same draws -----------------------------------------------


@pytest.mark.parametrize("form", ["kinship", "snp"])
def test_map_gram__h2_u_v_and_loo_terms_equal_nxn(cohort, grams, kinships, snp_models, form):
    data, _ = cohort
    if form == "kinship":
        ref = bl.kinship_model(data.y, kinships["standardized_empirical"], data.X)
        fast = bl.kinship_model(data.y, grams["standardized_empirical"], data.X)
    else:
        ref, fast = snp_models
    a, b = bl.map_estimate(fast), bl.map_estimate(ref)
    for name in ("h2", "sigma_g2", "sigma_e2", "sigma_v2") if form == "snp" else ("h2",):
        value = float(b["posterior"][name].values.item())
        assert float(a["posterior"][name].values.item()) == pytest.approx(value, rel=EXACT)
    for name in ("u", "v") if form == "snp" else ("u",):
        assert _max_rel(a["posterior"][name].values, b["posterior"][name].values) < 1e-7
    terms, terms_ref = a["log_likelihood"]["y"].values, b["log_likelihood"]["y"].values
    assert _max_rel(terms, terms_ref) < 1e-7


def _posterior(info, chains: int, draws: int, seed: int = 0) -> xr.Dataset:
    """Posterior-like draws around the REML fit (the post-processing takes any draws)."""
    rng = np.random.default_rng(seed)
    d = info.data.X.shape[1]
    shape = (chains, draws)
    beta = rng.normal(0.0, 0.05, size=(*shape, d)) + np.linalg.lstsq(info.data.X, info.data.y)[0]
    sigma_p2 = np.var(info.data.y) * np.exp(rng.normal(0.0, 0.05, size=shape))
    h2 = np.clip(rng.normal(0.5, 0.08, size=shape), 0.05, 0.95)
    return xr.Dataset(
        {
            "beta": (("chain", "draw", "covariate"), beta),
            "h2": (("chain", "draw"), h2),
            "sigma_g2": (("chain", "draw"), h2 * sigma_p2),
            "sigma_e2": (("chain", "draw"), (1 - h2) * sigma_p2),
        },
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )


@pytest.mark.parametrize(("chains", "draws"), [(2, 200), (1, 12)], ids=["tables", "exact"])
@pytest.mark.parametrize("form", ["kinship", "snp"])
def test_postprocess_gram__same_draws_give_equal_u_v_and_loo_terms(
    cohort, grams, kinships, snp_models, chains, draws, form
):
    data, _ = cohort
    if form == "kinship":
        ref = bl.kinship_model(data.y, kinships["centered"], data.X)
        fast = bl.kinship_model(data.y, grams["centered"], data.X)
    else:
        ref, fast = snp_models
    info, info_ref = info_of(fast), info_of(ref)
    post = _posterior(info_ref, chains, draws)
    new, terms = lmm.postprocess(post, info, None, True)  # None: conditional means
    new_ref, terms_ref = lmm.postprocess(post, info_ref, None, True)
    assert set(new) == set(new_ref)
    for name in new:
        assert _max_rel(new[name][0], new_ref[name][0]) < EXACT
        assert new[name][1] == new_ref[name][1]
    assert terms.shape == (chains * draws, N)
    assert _max_rel(terms, terms_ref) < EXACT


def test_postprocess_gram__samples_out_of_file_order_equal_nxn(cohort):
    # a Gram of the file's samples in another order: its blocks are read in the file's order
    # and written back in the data's (the Gram's); with IDs, shuffled y and X, and missing y
    data, G = cohort
    ids = np.array([f"s{i}" for i in range(N)])
    frame = pd.DataFrame(G, index=ids)
    order = np.random.default_rng(8).permutation(N)
    y = pd.Series(_with_missing_y(data.y, 50), index=ids).iloc[order[::-1]]
    X = pd.DataFrame(data.X, index=ids, columns=["a", "b"]).iloc[order]
    gram = bl.gram(frame, samples=order, chunk_size=97)
    assert list(gram.samples[:3]) == list(ids[order[:3]])
    with pytest.warns(DataWarning):
        fast = bl.kinship_model(y, gram, X)
    with pytest.warns(DataWarning):
        ref = bl.kinship_model(y, bl.kinship(frame.iloc[order], "standardized_empirical"), X)
    info, info_ref = info_of(fast), info_of(ref)
    assert list(info.data.samples) == list(info_ref.data.samples)
    post = _posterior(info_ref, 2, 150)
    (new, terms), (new_ref, terms_ref) = (
        lmm.postprocess(post, i, None, True) for i in (info, info_ref)
    )
    assert _max_rel(new["u"][0], new_ref["u"][0]) < EXACT
    assert _max_rel(terms, terms_ref) < EXACT


# --- NUTS ---------------------------------------------------------------------------------------


def test_sample_gram__posterior_of_h2_equals_nxn_within_monte_carlo_error(cohort, grams, kinships):
    data, _ = cohort
    kwargs = {"draws": 500, "tune": 500, "chains": 2, "random_seed": 11}
    fast = sample_counted(
        bl.kinship_model(data.y, grams["standardized_empirical"], data.X), **kwargs
    )
    ref = sample_counted(
        bl.kinship_model(data.y, kinships["standardized_empirical"], data.X), **kwargs
    )
    a, b = bl.heritability(fast).loc["h2"], bl.heritability(ref).loc["h2"]
    mcse = np.hypot(a["sd"] / np.sqrt(a["ess_bulk"]), b["sd"] / np.sqrt(b["ess_bulk"]))
    assert abs(a["mean"] - b["mean"]) < 4 * mcse
    assert a["sd"] == pytest.approx(b["sd"], rel=0.15)
    assert fast.attrs["model"] == ref.attrs["model"] == "kinship_lmm"
    assert fast["posterior"]["u"].shape == ref["posterior"]["u"].shape
    # u: each draw is its conditional mean plus independent noise; the means agree within the
    # Monte Carlo error of a mean of 1,000 draws
    ua, ub = (f["posterior"]["u"] for f in (fast, ref))
    sd = ub.std(("chain", "draw")).values
    diff = (ua.mean(("chain", "draw")) - ub.mean(("chain", "draw"))).values
    assert np.max(np.abs(diff) / sd) < 5 * np.sqrt(2 / 1000)


# --- large cohorts: means and SDs instead of draws, PSIS-LOO by blocks ---------------------------


@pytest.fixture(scope="module")
def large_and_full(snp_models):
    """One posterior, post-processed twice: stored draws, and the large-cohort summaries."""
    _, model = snp_models
    kwargs = {"draws": 150, "tune": 300, "chains": 2, "random_seed": 5}
    full = sample_counted(model, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(effects, "LARGE_COHORT_VALUES", 1000)
        large = sample_counted(model, **kwargs)
    return large, full


def test_sample_gram_large__stores_means_and_sds_of_the_same_draws(large_and_full):
    large, full = large_and_full
    np.testing.assert_array_equal(large["posterior"]["h2"].values, full["posterior"]["h2"].values)
    assert "u" not in large["posterior"] and "v" not in large["posterior"]
    assert "log_likelihood" not in large.children and "loo" in large.children
    group = large["random_effects"]
    assert group.attrs["n_draws"] == 300
    for name, dim in (("u", "sample"), ("v", "snp")):
        draws = full["posterior"][name]
        mean, sd = draws.mean(("chain", "draw")), draws.std(("chain", "draw"), ddof=1)
        assert _max_rel(group[f"{name}_mean"].values, mean.values) < 1e-12
        assert _max_rel(group[f"{name}_sd"].values, sd.values) < 1e-12
        assert list(group[f"{name}_mean"][dim].values) == list(draws[dim].values)


def test_loo_gram_large__equals_psis_loo_of_the_whole_matrix(large_and_full):
    large, full = large_and_full
    posterior = full["posterior"].to_dataset().drop_vars(["u", "v"])
    reff = relative_efficiency(posterior)
    assert large["loo"].attrs["reff"] == pytest.approx(reff, rel=1e-12)
    theirs = azs.loo(full, pointwise=True, reff=reff)
    ours = bl.loo(large)
    assert ours.elpd == pytest.approx(theirs.elpd, rel=1e-12)
    assert ours.se == pytest.approx(theirs.se, rel=1e-10)
    assert ours.p == pytest.approx(theirs.p, rel=1e-10)
    assert ours.good_k == theirs.good_k and ours.n_samples == theirs.n_samples == 300
    np.testing.assert_allclose(ours.elpd_i.values, theirs.elpd_i.values, rtol=1e-12)
    np.testing.assert_allclose(ours.pareto_k.values, theirs.pareto_k.values, rtol=1e-10)


def test_compare_gram_large__ranks_with_other_fits(large_and_full):
    large, full = large_and_full
    table = bl.compare({"large": large, "full": full})
    assert set(table.index) == {"large", "full"}
    # the same draws: elpd differs only by the relative efficiency (u, v among the variables)
    assert abs(table["elpd_diff"].min()) < 0.05 * table["se"].max()
    assert table["weight"].sum() == pytest.approx(1.0)


def test_sample_gram_large__result_survives_netcdf(large_and_full, tmp_path):
    large, _ = large_and_full
    path = tmp_path / "large.nc"
    large.to_netcdf(path, engine="h5netcdf")
    back = xr.open_datatree(path, engine="h5netcdf").load()
    assert isinstance(back, DataTree)
    assert bl.loo(back).elpd == pytest.approx(bl.loo(large).elpd, rel=1e-14)
    np.testing.assert_array_equal(
        back["random_effects"]["u_mean"].values, large["random_effects"]["u_mean"].values
    )


# --- bad inputs: typed errors -------------------------------------------------------------------


def test_gram_models__samples_must_match_y(cohort, grams):
    data, _ = cohort
    g = grams["standardized_empirical"]
    strangers = pd.Series(data.y, index=[f"x{i}" for i in range(N)])
    with pytest.raises(InputError, match="no sample ID is shared"):
        bl.kinship_model(strangers, g, data.X)
    with pytest.raises(InputError, match="no sample ID is shared"):
        bl.snp_model(strangers, g)
    with pytest.raises(InputError, match="aligned by position"):
        bl.kinship_model(data.y[:-1], g)
    with pytest.raises(InputError, match="aligned by position"):
        bl.snp_model(data.y, g, data.X[:-3])


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda y, g: bl.kinship_model(y, g, family="probit"), "family='probit'.*Gaussian LMM"),
        (lambda y, g: bl.kinship_model(y, g, fixed_snps=pd.DataFrame()), "fixed_snps.*Gaussian"),
        (lambda y, g: bl.kinship_model(y, [g, g]), "bl.reml only with one kinship"),
        (lambda y, g: bl.kinship_model(y, g, parametrization="bogus"), "'h2' or 'variance'"),
        (lambda y, g: bl.kinship_model(y, g, priors={"tau": 1.0}), "tau"),
        (lambda y, g: bl.snp_model(y, g, marginalize=False), "needs the N × M genotypes"),
        (lambda y, g: bl.snp_model(y, g, standardize=False), "standardized by its method"),
        (
            lambda y, g: bl.snp_model(y, g, marginalize=False, prior="horseshoe"),
            "Gaussian LMM",
        ),
    ],
    ids=[
        "probit",
        "fixed_snps",
        "components",
        "parametrization",
        "prior",
        "explicit",
        "unstandardized",
        "sparse",
    ],
)
def test_gram_models__options_a_gram_cannot_take_are_refused(cohort, grams, build, match):
    data, _ = cohort
    with pytest.raises(InputError, match=match):
        build(data.y, grams["standardized_empirical"])
