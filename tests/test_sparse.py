"""Sparse SNP priors of snp_model(marginalize=False): dense references, summaries, recovery."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import stats

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import info_of, null_space_term, variance_components
from bayeslmm.families.priors import add_prior, resolve_priors
from bayeslmm.families.registry import FAMILIES, family_of
from bayeslmm.linalg.spectral import rotate_data
from models.prediction import reference as pref
from models.sparse_snp_lmm import reference as spref

# PyMC builds a few normalizing constants differently in the two graphs (~1e-9 per term):
# compare log densities to 1e-9 relative or 1e-6 absolute.
TOL = {"rel": 1e-9, "abs": 1e-6}


@pytest.fixture
def data(rng):
    n = 36
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [2.0, 0.5] + rng.normal(size=n) * 1.5
    return y, X


def _genotypes(rng, n, m):
    return rng.binomial(2, 0.4, size=(n, m)).astype(float)


def _random_points(model, rng, n=4):
    ip = model.initial_point()
    return [{k: v + rng.normal(0, 0.7, size=np.shape(v)) for k, v in ip.items()} for _ in range(n)]


def _evaluate(model, names, point):
    """Values of (deterministic) variables at a point on the sampler's scale."""
    outs = model.replace_rvs_by_values([model[name] for name in names])
    fn = pytensor.function(model.value_vars, outs, on_unused_input="ignore")
    return dict(zip(names, fn(**{v.name: point[v.name] for v in model.value_vars}), strict=True))


def _previous_explicit_build(y, G, X):
    """snp_model(marginalize=False) as it was before the sparse priors, frozen here."""
    ref = bl.snp_model(y, G, X)  # marginalized: same data, priors and coordinates
    info = info_of(ref)
    parametrization, priors = resolve_priors(None, None, info.data.y, info.data.X)
    rot = rotate_data(info.spectral, info.data.y, info.data.X)
    n_snps = info.W.shape[1]
    coords = {name: list(values) for name, values in ref.coords.items()}
    coords["snp"] = info.snps
    with pm.Model(coords=coords) as model:
        y_rot = pm.Data("y_rot", rot.y1, dims="eigen")
        X_rot = pm.Data("X_rot", rot.X1, dims=("eigen", "covariate"))
        B = pm.Data("snp_loadings", info.spectral.U.T @ info.W, dims=("eigen", "snp"))
        beta = add_prior("beta", priors["beta"], dims="covariate")
        _, sigma_g2, sigma_e2 = variance_components(parametrization, priors)
        sigma_v2 = pm.Deterministic("sigma_v2", sigma_g2 / n_snps)
        z = pm.Normal("z", 0.0, 1.0, dims="snp")
        v = pm.Deterministic("v", pt.sqrt(sigma_v2) * z, dims="snp")
        pm.Normal(
            "y", mu=X_rot @ beta + B @ v, sigma=pt.sqrt(sigma_e2), observed=y_rot, dims="eigen"
        )
        null_space_term(rot, beta, sigma_e2)
    return model


@pytest.mark.parametrize("m", [15, 60])
def test_snp_model__normal_prior_identical_to_previous_build(rng, data, m):
    y, X = data
    G = _genotypes(rng, len(y), m)
    new = bl.snp_model(y, G, X[:, 1:], marginalize=False, prior="normal")
    old = _previous_explicit_build(y, G, X[:, 1:])
    assert [v.name for v in new.free_RVs] == [v.name for v in old.free_RVs]
    f_new, f_old = new.compile_logp(), old.compile_logp()
    for point in _random_points(new, rng):
        assert f_new(point) == pytest.approx(f_old(point), rel=1e-12)
    assert info_of(new).form == "snp_lmm" and family_of(new) is FAMILIES["snp"]


def _assert_same_density(pairs):
    """(fast, dense) log densities at several points: equal up to one constant, to 1e-8.

        The priors that bl.Prior builds and those the dense file writes with pm directly differ in
    XX
        HalfStudentT's, 2e-8): the absolute values are compared to 1e-5, and the differences
        between points, where the constants cancel, to 1e-8 relative.
    """
    fast, dense = np.array(pairs).T
    np.testing.assert_allclose(fast, dense, rtol=0, atol=1e-4)
    np.testing.assert_allclose(fast[1:] - fast[0], dense[1:] - dense[0], rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("m", [15, 60])  # M < N and M > N
def test_snp_model__mixture_logp_equals_dense_reference(rng, data, m):
    """The spectral logp (background summed out on U) equals the literal N×N MvNormal."""
    y, X = data
    fast = bl.snp_model(
        y,
        _genotypes(rng, len(y), m),
        X[:, 1:],
        marginalize=False,
        prior="mixture",
        prior_options={"spike_sd": 0.2},
    )
    W = info_of(fast).W
    dense = spref.dense_mixture_snp_model(y, X, W, n_nonzero=min(10, m / 2), spike_sd=0.2)
    f_fast, f_dense = fast.compile_logp(), dense.compile_logp()
    pairs = []
    for point in _random_points(fast, rng):
        values = _evaluate(fast, ["sigma_spike2", "v"], point)
        dpoint = {k: val for k, val in point.items() if k != "z"}
        dpoint["v"] = values["v"]
        # v = σS z: the density on z is the density on v times σS per SNP
        jacobian = 0.5 * m * np.log(values["sigma_spike2"])
        pairs.append((f_fast(point), f_dense(dpoint) + jacobian))
    _assert_same_density(pairs)


@pytest.mark.parametrize("m", [15, 60])
def test_snp_model__horseshoe_logp_equals_dense_reference(rng, data, m):
    y, X = data
    G = _genotypes(rng, len(y), m)
    fast = bl.snp_model(
        y, G, X[:, 1:], marginalize=False, prior="horseshoe", prior_options={"n_nonzero": 3}
    )
    dense = spref.dense_horseshoe_snp_model(y, X, info_of(fast).W, n_nonzero=3)
    f_fast, f_dense = fast.compile_logp(), dense.compile_logp()
    pairs = []
    for point in _random_points(fast, rng):
        values = _evaluate(fast, ["v"], point)
        dpoint = {k: val for k, val in point.items() if k != "z"}
        dpoint["v"] = values["v"]
        # v = z τ λ̃: the density on z is the density on v times τ λ̃_j per SNP
        jacobian = np.sum(np.log(np.abs(values["v"] / point["z"])))
        pairs.append((f_fast(point), f_dense(dpoint) + jacobian))
    _assert_same_density(pairs)


def _genetic_variance(info, val):
    return spref.genetic_variance(
        info.data.y,
        info.data.X,
        info.W,
        val["beta"],
        val["v"],
        val["sigma_b2"],
        val["sigma_e2"],
    )


def test_snp_model__mixture_summaries_equal_reference(rng, data):
    """pve, pip and pge against dense conditionals, SciPy and all 2^10 indicator vectors."""
    y, X = data
    model = bl.snp_model(
        y, _genotypes(rng, len(y), 10), X[:, 1:], marginalize=False, prior="mixture"
    )
    info = info_of(model)
    names = ["beta", "v", "pi", "rho", "sigma_slab2", "sigma_spike2", "sigma_b2", "sigma_g2"]
    names += ["sigma_e2"]
    names += ["pve", "pip", "pge"]
    for point in _random_points(model, rng, n=3):
        val = _evaluate(model, names, point)
        assert val["sigma_b2"] == pytest.approx((1 - val["rho"]) * val["sigma_g2"], rel=1e-12)
        var_g = _genetic_variance(info, val)
        assert val["pve"] == pytest.approx(spref.realized_pve(var_g, val["sigma_e2"]), rel=1e-8)
        assert val["sigma_spike2"] == pytest.approx(0.09 * val["sigma_b2"] / 10, rel=1e-12)
        assert val["sigma_slab2"] >= val["sigma_spike2"]  # ρ ≥ ρ_min orders the components
        pip = spref.mixture_pip(val["v"], val["pi"], val["sigma_slab2"], val["sigma_spike2"])
        np.testing.assert_allclose(val["pip"], pip, rtol=1e-9)
        pge = spref.pge_by_enumeration(info.W, val["v"], pip, var_g)
        assert val["pge"] == pytest.approx(pge, rel=1e-8)


def test_snp_model__horseshoe_summaries_equal_reference(rng, data):
    y, X = data
    model = bl.snp_model(
        y, _genotypes(rng, len(y), 10), X[:, 1:], marginalize=False, prior="horseshoe"
    )
    info = info_of(model)
    W = info.W
    names = ["beta", "v", "lambda", "tau", "c2", "sigma_e2", "sigma_b2", "pve", "h2"]
    names += ["sigma_g2", "pip", "pge"]
    for point in _random_points(model, rng, n=3):
        val = _evaluate(model, names, point)
        var_g = _genetic_variance(info, val)
        assert val["pve"] == pytest.approx(spref.realized_pve(var_g, val["sigma_e2"]), rel=1e-8)
        assert val["h2"] == pytest.approx(val["pve"], rel=1e-12)
        assert val["sigma_g2"] == pytest.approx(var_g, rel=1e-8)
        pip = spref.horseshoe_pip(W, val["tau"], val["lambda"], val["c2"], val["sigma_e2"])
        np.testing.assert_allclose(val["pip"], pip, rtol=1e-9)
        assert val["pge"] == pytest.approx(spref.pge_by_enumeration(W, val["v"], pip, var_g))


def test_snp_model__normal_prior_pve(rng, data):
    y, X = data
    model = bl.snp_model(y, _genotypes(rng, len(y), 12), X[:, 1:], marginalize=False)
    point = _random_points(model, rng, n=1)[0]
    val = _evaluate(model, ["v", "sigma_e2", "pve"], point)
    var_g = np.var(info_of(model).W @ val["v"])  # no background: the realized var(Wv)
    assert val["pve"] == pytest.approx(spref.realized_pve(var_g, val["sigma_e2"]), rel=1e-9)


def test_snp_model__mixture_variance_parametrization_and_user_priors(rng, data):
    y, X = data
    priors = {
        "sigma_g2": bl.Prior("HalfNormal", sigma=2.0),
        "sigma_e2": bl.Prior("HalfNormal", sigma=2.0),
        "pi": bl.Prior("Beta", alpha=1, beta=50),
    }
    model = bl.snp_model(
        y, _genotypes(rng, len(y), 15), X[:, 1:], priors, marginalize=False, prior="mixture"
    )
    assert [v.name for v in model.free_RVs] == [
        "beta",
        "sigma_g2",
        "sigma_e2",
        "pi",
        "rho_excess",
        "z",
    ]
    assert info_of(model).priors["pi"] == bl.Prior("Beta", alpha=1, beta=50)
    assert info_of(model).form == "snp_lmm_mixture"


def _dense_loo(y, mu, V):
    """log p(y_i | y_-i) of y ~ N(mu, V) by conditioning on the others, one sample at a time."""
    out = np.empty(len(y))
    for i in range(len(y)):
        rest = np.delete(np.arange(len(y)), i)
        coef = np.linalg.solve(V[np.ix_(rest, rest)], V[rest, i])
        mean = mu[i] + coef @ (y[rest] - mu[rest])
        var = V[i, i] - coef @ V[rest, i]
        out[i] = stats.norm.logpdf(y[i], mean, np.sqrt(var))
    return out


@pytest.mark.parametrize("m", [12, 60])
def test_sparse_postprocess__u_background_and_loo_equal_dense(rng, data, m):
    y, X = data
    G = _genotypes(rng, len(y), m)
    model = bl.snp_model(y, G, X[:, 1:], marginalize=False, prior="mixture")
    info = info_of(model)
    W = info.W
    v = rng.normal(0, 0.3, size=(2, 3, m))
    beta = rng.normal(size=(2, 3, 2))
    sigma_e2 = rng.uniform(0.5, 2, size=(2, 3))
    sigma_b2 = rng.uniform(0.1, 2, size=(2, 3))
    post = xr.Dataset(
        {
            "v": (("chain", "draw", "snp"), v),
            "beta": (("chain", "draw", "covariate"), beta),
            "sigma_e2": (("chain", "draw"), sigma_e2),
            "sigma_b2": (("chain", "draw"), sigma_b2),
        }
    )
    new, loglik = family_of(model).postprocess(post, info, None, True)
    u, dim, _ = new["u"]
    v_bg, bg_dim, _ = new["v_background"]
    assert (dim, bg_dim) == ("sample", "snp")
    K = W @ W.T / m
    for k, (c, d) in enumerate(np.ndindex(2, 3)):
        args = (y, X, W, beta[c, d], v[c, d], sigma_b2[c, d], sigma_e2[c, d])
        mean, _ = spref.background_conditional(*args)
        np.testing.assert_allclose(u[k], W @ v[c, d] + mean, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(W @ v_bg[k], mean, rtol=1e-8, atol=1e-10)
        V = sigma_b2[c, d] * K + sigma_e2[c, d] * np.eye(len(y))
        expected = _dense_loo(y, X @ beta[c, d] + W @ v[c, d], V)
        np.testing.assert_allclose(loglik[k], expected, rtol=1e-8)
    # drawn u: centred on the conditional mean, spread as its conditional covariance
    new_drawn, _ = family_of(model).postprocess(post, info, np.random.default_rng(1), True)
    assert not np.allclose(new_drawn["u"][0], u)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prior": "mixture"}, "need marginalize=False"),
        ({"prior": "normal", "prior_options": {"n_nonzero": 3}}, "need marginalize=False"),
        ({"prior": "spike", "marginalize": False}, "prior must be one of"),
        (
            {"prior": "normal", "marginalize": False, "prior_options": {"n_nonzero": 3}},
            "it takes none",
        ),
        (
            {"prior": "horseshoe", "marginalize": False, "prior_options": {"n_nonzero": 15}},
            "strictly between 0 and the number of SNPs",
        ),
        (
            {"prior": "horseshoe", "marginalize": False, "prior_options": {"slab_df": 0}},
            "must be positive",
        ),
        (
            {"prior": "horseshoe", "marginalize": False, "prior_options": {"tau0": 1}},
            "unknown prior_options",
        ),
        ({"prior": "horseshoe", "marginalize": False, "parametrization": "h2"}, "realized"),
        (
            {"prior": "mixture", "marginalize": False, "prior_options": {"spike_sd": 1.5}},
            "strictly between 0 and 1",
        ),
        (
            {
                "prior": "horseshoe",
                "marginalize": False,
                "priors": {"h2": bl.Prior("Beta", alpha=1, beta=1)},
            },
            "allowed: \\['beta', 'sigma_b2', 'sigma_e2'\\]",
        ),
        ({"prior": "horseshoe", "marginalize": False, "priors": "flat"}, "not available"),
        (
            {
                "prior": "mixture",
                "marginalize": False,
                "priors": {"pi": bl.Prior("Normal", mu=0, sigma=1)},
            },
            "must lie in \\(0, 1\\)",
        ),
    ],
)
def test_snp_model__sparse_prior_input_errors(rng, data, kwargs, match):
    y, X = data
    G = _genotypes(rng, len(y), 15)
    priors = kwargs.pop("priors", None)
    with pytest.raises(bl.InputError, match=match):
        bl.snp_model(y, G, X[:, 1:], priors, **kwargs)


# --------------------------------------------------------------------------------------------
# NUTS
# --------------------------------------------------------------------------------------------


def _planted(seed=41, n=300, m=200, large=(0.42, -0.38, 0.36), small_h2=0.06):
    """N = 300, M = 200: three large effects (most of h²) and 197 tiny ones; σe² = 0.5."""
    rng = np.random.default_rng(seed)
    W = simulate(n, m, 0.5, seed=seed).W
    causal = np.sort(rng.choice(m, size=len(large), replace=False))
    v = rng.normal(0.0, np.sqrt(small_h2 / m), size=m)
    v[causal] = large
    g = W @ v
    y = 1.0 + g + rng.normal(0.0, np.sqrt(0.5), size=n)
    pve = np.var(g) / (np.var(g) + 0.5)
    pge = np.var(W[:, causal] @ v[causal]) / np.var(g)
    return y, W, causal, pve, pge


#: NUTS target acceptance per prior in the recovery tests (the measured choice: see
#: models/sparse_snp_lmm/MODEL.md, "Parametrization and why").
TARGET_ACCEPT = {"mixture": 0.9, "horseshoe": 0.99}

#: Scalars whose R-hat the recovery tests bound, per prior (the per-SNP variables are
#: reported by the tests' messages but not bounded: see MODEL.md).
SCALARS = {
    "mixture": ("beta", "h2", "sigma_p", "sigma_e2", "sigma_b2", "pi", "rho", "pve", "pge"),
    "horseshoe": ("beta", "sigma_e2", "sigma_b2", "tau", "c2", "h2", "pve", "pge"),
}


#: The sparse-prior recovery cases: (prior, sampler). The criteria: R-hat ≤ 1.01 on the
#: scalars, no divergences. NUTS on the horseshoe does not meet them reliably: over ten sampler
#: seeds per case (2026-12-03, 2 × 1,000 draws) it failed 5 of 10 polygenic runs (R-hat up to
#: 1.015) and 4 of 10 planted ones (R-hat up to 1.017, 1 divergence in three), the scalars'
#: smallest ESS 186–434 of 2,000 (τ and pge); at 2 × 500 it always fails, so as an xfail it could
#: never fail: skipped (run with -k nuts after removing the mark). The exact blocked sampler
#: (``sampler="gibbs"``, bayeslmm/inference/horseshoe_gibbs.py) passes both: since 1e1f502 (τ
#: moved along the ridge of the large effects' λⱼ, per-SNP sweep compiled) the largest R-hat of
#: the scalars was 1.0008–1.0065 on ten planted seeds and 1.0027–1.0058 on five polygenic ones
#: (before, τ reached 1.011 and 1.038 on the planted case). It is the horseshoe's default
#: sampler (sampler=None here: the fit must say "gibbs"). (The mixture is tested by
#: tests/test_bslmm_mcmc.py with its own sampler.)
RECOVERING = [
    pytest.param("horseshoe", None, id="horseshoe-default-gibbs"),
    pytest.param(
        "horseshoe",
        "nutpie",
        id="horseshoe-nuts",
        marks=pytest.mark.skip(
            reason="NUTS on the horseshoe fails the R-hat ≤ 1.01 / no-divergence gate in 5 of "
            "10 sampler seeds (polygenic) and 4 of 10 (planted) at 2 × 1,000 draws (issue 12): "
            "the default, sampler='gibbs', is the tested route"
        ),
    ),
]

#: Draws (and tuning draws / burn-in iterations) per chain of the recovery fits.
RECOVERY_DRAWS = 1000


def _fit(y, W, prior, sampler, seed, rhat_max=1.01):
    model = bl.snp_model(y, W, marginalize=False, prior=prior)
    options = {"target_accept": TARGET_ACCEPT[prior]} if sampler == "nutpie" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)
        idata = bl.sample(
            model,
            draws=RECOVERY_DRAWS,
            tune=RECOVERY_DRAWS,
            chains=2,
            random_seed=seed,
            progressbar=False,
            sampler=sampler,
            **options,
        )
    assert idata.attrs["sampler"] == (sampler or "gibbs"), idata.attrs["sampler"]
    post = idata["posterior"].to_dataset()
    stats_ = idata["sample_stats"].to_dataset()
    n_div = int(stats_["diverging"].sum()) if "diverging" in stats_ else 0
    rhat = az.rhat(post[list(SCALARS[prior])])
    worst = {name: float(rhat[name].max()) for name in SCALARS[prior]}
    assert n_div == 0, (n_div, worst)
    assert max(worst.values()) <= rhat_max, worst
    return idata


def _covers(draws, value, prob=0.95):
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
    return lo <= value <= hi


@pytest.mark.slow
@pytest.mark.parametrize(("prior", "sampler"), RECOVERING)
def test_snp_model__sparse_prior_recovers_polygenic_pve(prior, sampler):
    """A polygenic trait (every SNP causal): the background takes it, PVE agrees with REML."""
    sim = simulate(300, 300, 0.5, seed=11)
    reml_h2 = bl.reml(sim.y, K=sim.K).h2
    idata = _fit(sim.y, sim.W, prior, sampler, seed=5)
    pve = idata["posterior"]["pve"].values.ravel()
    assert _covers(pve, reml_h2) and _covers(pve, 0.5), (np.quantile(pve, [0.025, 0.975]), reml_h2)
    assert abs(pve.mean() - reml_h2) < 2 * pve.std(), (pve.mean(), pve.std(), reml_h2)


@pytest.mark.slow
@pytest.mark.parametrize(("prior", "sampler"), RECOVERING)
def test_snp_model__sparse_prior_recovers_planted_large_effects(prior, sampler):
    """Three large effects and 197 tiny ones: high pip on the three, PVE and PGE recovered."""
    y, W, causal, pve_true, pge_true = _planted()
    # issue 12's gate, R-hat ≤ 1.01: with the Gibbs sampler of 1e1f502 the largest R-hat of the
    # scalars was 1.0065 (seed 4), 1.0023, 1.0008, 1.0030, 1.0041 (seeds 101–104), 1.0054,
    # 1.0018, 1.0038, 1.0037, 1.0028 (seeds 105–109); smallest ESS 558–757 (σb²)
    idata = _fit(y, W, prior, sampler, seed=4)
    post = idata["posterior"]
    pip = post["pip"].mean(("chain", "draw")).values
    np.testing.assert_array_equal(np.sort(np.argsort(pip)[-3:]), causal)
    assert (pip[causal] > 0.9).all(), pip[causal]
    assert np.delete(pip, causal).max() < 0.5, np.delete(pip, causal).max()
    pve = post["pve"].values.ravel()
    assert _covers(pve, pve_true), (np.quantile(pve, [0.025, 0.975]), pve_true)
    pge = post["pge"].values.ravel()
    assert _covers(pge, pge_true), (np.quantile(pge, [0.025, 0.975]), pge_true)
    assert idata.log_likelihood["y"].shape == (2, RECOVERY_DRAWS, 300)
    assert idata.attrs["model"] == f"snp_lmm_{prior}"


# --------------------------------------------------------------------------------------------
# Prediction: the background's BLUP for new samples
# --------------------------------------------------------------------------------------------


def test_predict__sparse_fit_adds_background_blup(rng):
    """g_new = W_new v + σb² K_nt V⁻¹(y − Xβ − Wv) per draw, against the dense N×N formula.

    A MAP fit gives the result's frame (data, standardization); its posterior is replaced by
    random draws, and their v_background by the family's postprocess (the same for both
    sparse priors, so one of them is enough).
    """
    n_train, n_new, m = 55, 15, 40
    sim = simulate(n_train + n_new, m, 0.6, n_covariates=1, seed=3)
    ids = np.asarray(sim.samples).astype(str)
    G = pd.DataFrame(sim.G, index=ids, columns=sim.snps["snp"].astype(str))
    X = pd.DataFrame(sim.X, index=ids, columns=["age"])
    y = pd.Series(sim.y[:n_train], index=ids[:n_train])
    model = bl.snp_model(
        y, G.iloc[:n_train], X.iloc[:n_train], marginalize=False, prior="horseshoe"
    )
    info = info_of(model)
    fit = bl.map_estimate(model, random_seed=1)
    n_draws = 3
    post = xr.Dataset(
        {
            "v": (("chain", "draw", "snp"), rng.normal(0, 0.2, size=(1, n_draws, m))),
            "beta": (("chain", "draw", "covariate"), rng.normal(size=(1, n_draws, 2))),
            "sigma_e2": (("chain", "draw"), rng.uniform(0.3, 1.5, size=(1, n_draws))),
            "sigma_b2": (("chain", "draw"), rng.uniform(0.2, 1.5, size=(1, n_draws))),
            "sigma_g2": (("chain", "draw"), np.ones((1, n_draws))),
        },
        coords={
            "chain": [0],
            "draw": np.arange(n_draws),
            "snp": fit["posterior"]["snp"].values,
            "covariate": fit["posterior"]["covariate"].values,
        },
    )
    new_vars, _ = family_of(model).postprocess(post, info, None, True)
    post["v_background"] = (("chain", "draw", "snp"), new_vars["v_background"][0][None])
    fake = fit.copy()
    fake["posterior"] = xr.DataTree(post)
    pred = bl.predict(fake, genotypes=G.iloc[n_train:], X=X)
    const = fit["constant_data"]
    center, scale = const["snp_center"].values, const["snp_scale"].values
    # the training standardization, applied to the training genotypes, gives the fit's W
    np.testing.assert_allclose(pref.standardize_new(sim.G[:n_train], center, scale), info.W)
    W_new = pref.standardize_new(sim.G[n_train:].astype(float), center, scale)
    g = pred.draws["predictions"]["g"].values.reshape(n_draws, n_new)
    for k in range(n_draws):
        draw = post.isel(chain=0, draw=k)
        expected = pref.sparse_genetic_values(
            info.data.y,
            info.data.X,
            info.W,
            W_new,
            draw["beta"].values,
            draw["v"].values,
            float(draw["sigma_b2"]),
            float(draw["sigma_e2"]),
        )
        np.testing.assert_allclose(g[k], expected, rtol=1e-8, atol=1e-10)
        # the background moves the prediction: W_new v alone would be wrong
        assert not np.allclose(g[k], W_new @ draw["v"].values, atol=1e-3)


def test_predict__sparse_fit_without_background_effects_is_refused(rng):
    sim = simulate(40, 20, 0.6, seed=5)
    model = bl.snp_model(sim.y, sim.G, marginalize=False, prior="horseshoe")
    fit = bl.map_estimate(model, random_seed=1)
    fake = fit.copy()
    fake["posterior"] = xr.DataTree(fit["posterior"].to_dataset().drop_vars("v_background"))
    with pytest.raises(bl.InputError, match="v_background"):
        bl.predict(fake, genotypes=sim.G[:5])
