"""The exact BSLMM-style MCMC (``bl.sample(..., sampler="bslmm")``, the mixture's default).

Its marginal likelihood against the dense N×N formula (models/sparse_snp_lmm/reference.py), its
γ moves against the enumerated posterior of γ (M = 8), the result contract, and recovery.
"""

from __future__ import annotations

import math
import warnings

import arviz_stats as azs
import numpy as np
import pytest
from scipy import integrate
from scipy.special import gammaln

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import info_of
from bayeslmm.inference import bslmm_mcmc as bm
from models.sparse_snp_lmm import reference as spref


def _problem(model):
    info = info_of(model)
    rot, spectral = info.rotated, info.spectral
    problem = bm.make_problem(
        spectral.U, spectral.s, rot.y1, rot.X1, rot.gram, rot.n, np.asarray(info.W)
    )
    return info, problem


@pytest.fixture(scope="module")
def small():
    """N = 60, M = 20, one covariate, two planted effects."""
    sim = simulate(60, 20, 0.5, n_covariates=1, seed=7)
    rng = np.random.default_rng(3)
    v = np.zeros(20)
    v[[2, 11]] = (0.8, -0.6)
    y = sim.X @ np.array([0.3]) + sim.W @ v + rng.normal(0, 1.0, 60) + 2.0
    model = bl.snp_model(y, sim.W, sim.X, marginalize=False, prior="mixture")
    return model


@pytest.mark.parametrize("gamma", [(), (2,), (2, 11), (0, 5, 11, 19)])
@pytest.mark.parametrize("theta", [(0.5, 0.3, 0.1), (0.9, 0.8, 0.02), (0.05, 0.1, 0.6)])
def test_log_marginal__equals_dense_mvnormal(small, gamma, theta):
    info, problem = _problem(small)
    fast = bm.log_marginal(problem, list(gamma), *theta)
    dense = spref.bslmm_log_marginal(info.data.y, info.data.X, info.W, gamma, *theta)
    np.testing.assert_allclose(fast, dense, rtol=1e-10, atol=1e-8)


def test_dense_reference__closed_form_integrates_over_sigma_e2(small):
    """The closed form = log ∫ p(y | γ, θ, σe²) dσe²/σe² by quadrature (on t = log σe²)."""
    info, _ = _problem(small)
    y, X, W = info.data.y, info.data.X, info.W
    args = ((2, 11), 0.5, 0.3, 0.1)
    closed = spref.bslmm_log_marginal(y, X, W, *args)

    def f(t):
        return spref.bslmm_log_marginal_given_sigma_e2(y, X, W, *args, math.exp(t))

    top = max(f(t) for t in np.linspace(-4, 4, 81))
    value, _ = integrate.quad(lambda t: math.exp(f(t) - top), -12, 12, epsabs=1e-12, limit=200)
    np.testing.assert_allclose(top + math.log(value), closed, rtol=0, atol=1e-7)


@pytest.fixture(scope="module")
def enumerated():
    """M = 8, (h, ρ, π) fixed: a chain of 6,000 draws and all 2^8 exact posteriors of γ."""
    sim = simulate(50, 8, 0.5, seed=2)
    rng = np.random.default_rng(5)
    y = 1.0 + sim.W @ np.array([0.7, 0, 0, -0.4, 0, 0, 0, 0.2]) + rng.normal(0, 1.0, 50)
    model = bl.snp_model(y, sim.W, marginalize=False, prior="mixture")
    info, problem = _problem(model)
    theta = (0.6, 0.7, 0.3)
    exact = spref.bslmm_gamma_posterior(info.data.y, info.data.X, info.W, *theta)
    run = bm.run_chain(
        problem,
        draws=6000,
        burn=100,
        thin=1,
        rng=np.random.default_rng(11),
        update_hyper=False,
        theta=(theta[0], theta[1], math.log(theta[2])),
    )
    return info, theta, exact, run


def test_run_chain__gamma_frequencies_match_enumeration(enumerated):
    """The chain's γ frequencies against the exact posterior of γ."""
    _, _, exact, run = enumerated
    counts: dict[tuple[int, ...], int] = {}
    for g in run.gammas:
        key = tuple(sorted(int(j) for j in g))
        counts[key] = counts.get(key, 0) + 1
    n = len(run.gammas)
    tv = 0.5 * sum(abs(counts.get(g, 0) / n - p) for g, p in exact.items())
    pip_exact = np.array([sum(p for g, p in exact.items() if j in g) for j in range(8)])
    pip_chain = np.array([sum(c for g, c in counts.items() if j in g) / n for j in range(8)])
    assert tv < 0.05, (tv, sorted(exact.items(), key=lambda kv: -kv[1])[:5])
    np.testing.assert_allclose(pip_chain, pip_exact, atol=0.03)


def test_run_chain__effect_draws_match_dense_conditional(enumerated):
    """β, v_γ of the draws at the two commonest γ: mean and SD as the dense N×N conditional's.

    Given γ (and the fixed h, ρ, π) each draw's (β, v_γ) is an independent draw of that
    conditional (σe² integrated out), so the z-scores of the means are standard normal.
    """
    info, theta, _, run = enumerated
    by_gamma: dict[tuple[int, ...], list[np.ndarray]] = {}
    for g, b, v in zip(run.gammas, run.beta, run.effects, strict=True):
        order = np.argsort(g)
        by_gamma.setdefault(tuple(int(j) for j in g[order]), []).append(np.r_[b, v[order]])
    common = sorted(by_gamma, key=lambda g: -len(by_gamma[g]))[:2]
    for gamma in common:
        draws = np.array(by_gamma[gamma])
        assert len(draws) > 500, (gamma, len(draws))
        mean, cov = spref.bslmm_effect_moments(info.data.y, info.data.X, info.W, gamma, *theta)
        sd = np.sqrt(np.diag(cov))
        z = (draws.mean(axis=0) - mean) / (sd / math.sqrt(len(draws)))
        assert np.all(np.abs(z) < 4.5), (gamma, z)
        np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.12)


@pytest.mark.parametrize(("seed", "update_hyper"), [(0, True), (1, True), (2, False), (3, False)])
def test_chain__running_log_posterior_equals_log_marginal(seed, update_hyper):
    """The compiled chain's log posterior, carried through its rank-one extensions, removals
    (Givens updates), swaps and hyperparameter moves, equals :func:`log_marginal` + log p(γ)
    wherever it stops (with the hyperparameters fixed, after every single move on γ, so that
    no refactorization by a move of h or ρ hides an error)."""
    sim = simulate(120, 300, 0.5, n_covariates=2, seed=seed)
    model = bl.snp_model(sim.y, sim.W, sim.X, marginalize=False, prior="mixture")
    info = info_of(model)
    rot, spectral = info.rotated, info.spectral
    problem = bm.make_problem(
        spectral.U, spectral.s, rot.y1, rot.X1, rot.gram, rot.n, np.asarray(info.W), max_size=40
    )
    m, dof = problem.n_snps, 0.5 * (problem.n - problem.n_cov)
    for burn in (3, 60, 300) if update_hyper else range(1, 80):
        start = (0.5, 0.8, math.log(30 / m))
        out, log_post = bm._run_kernel(
            problem,
            start,
            draws=1,
            burn=burn,
            thin=1,
            update_hyper=update_hyper,
            rng=np.random.default_rng(seed),
            gamma_moves=bm.GAMMA_MOVES if update_hyper else 1,
        )
        gamma = out["gamma"][0, : out["size"][0]]
        h, rho, log_pi = out["theta"][0]
        k = len(gamma)
        expected = bm.log_marginal(problem, gamma, h, rho, math.exp(log_pi))
        expected += -gammaln(dof) + dof * math.log(math.pi)
        expected += k * log_pi + (m - k) * math.log1p(-math.exp(log_pi))
        np.testing.assert_allclose(log_post, expected, rtol=1e-12, atol=1e-9)


def test_sample__bslmm_is_the_mixture_default_and_keeps_the_contract():
    sim = simulate(80, 40, 0.5, seed=3)
    model = bl.snp_model(sim.y, sim.W, marginalize=False, prior="mixture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)  # a short run: only the contract
        fit = bl.sample(model, draws=60, tune=60, chains=2, random_seed=4, progressbar=False)
        again = bl.sample(model, draws=60, tune=60, chains=2, random_seed=4, progressbar=False)
    assert fit.attrs["sampler"] == "bslmm"
    assert fit.attrs["model"] == "snp_lmm_mixture"
    post = fit["posterior"]
    for name in ("beta", "h2", "rho", "pi", "sigma_e2", "sigma_g2", "sigma_b2", "pve", "pge"):
        assert post[name].dims[:2] == ("chain", "draw"), name
    for name in ("v", "pip", "v_background"):
        assert post[name].dims == ("chain", "draw", "snp"), name
    assert post["u"].dims == ("chain", "draw", "sample")
    assert fit["log_likelihood"]["y"].shape == (2, 60, 80)
    pip = post["pip"].values
    assert set(np.unique(pip)) <= {0.0, 1.0}
    np.testing.assert_array_equal(post["v"].values == 0, pip == 0)
    np.testing.assert_array_equal(post["pve"].values, again["posterior"]["pve"].values)
    assert {"pve", "pge", "sigma_e2"} <= set(bl.heritability(fit).index)
    pred = bl.predict(fit, genotypes=sim.G[:10])
    assert pred.draws["predictions"]["g"].shape[-1] == 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings of a short run
        assert np.isfinite(bl.loo(fit).elpd)


def test_sample__bslmm_refuses_other_models():
    sim = simulate(40, 20, 0.5, seed=3)
    model = bl.snp_model(sim.y, sim.W, marginalize=False, prior="horseshoe")
    with pytest.raises(bl.InputError, match=r"sampler='bslmm' samples only .*'nutpie'"):
        bl.sample(model, sampler="bslmm", draws=10, tune=10, chains=1)


def test_sample__bslmm_draws_do_not_depend_on_cores():
    sim = simulate(60, 30, 0.5, seed=5)
    model = bl.snp_model(sim.y, sim.W, marginalize=False, prior="mixture")
    fits = []
    for cores in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bl.SamplingWarning)
            fits.append(
                bl.sample(
                    model,
                    draws=30,
                    tune=30,
                    chains=3,
                    random_seed=8,
                    cores=cores,
                    progressbar=False,
                )
            )
    for name in ("pve", "h2", "beta", "v", "sigma_e2", "u"):
        np.testing.assert_array_equal(
            fits[0]["posterior"][name].values, fits[1]["posterior"][name].values, err_msg=name
        )


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"priors": {"pi": bl.Prior("Beta", alpha=1, beta=50)}}, r"priors\['pi'\]"),
        ({"prior_options": {"n_nonzero": 5}}, r"prior_options\['n_nonzero'\]"),
    ],
)
def test_sample__bslmm_refuses_priors_it_does_not_use(kwargs, named):
    sim = simulate(40, 20, 0.5, seed=3)
    model = bl.snp_model(sim.y, sim.W, marginalize=False, prior="mixture", **kwargs)
    with pytest.raises(bl.InputError, match=rf"ignore {named}.*sampler='nutpie'"):
        bl.sample(model, draws=10, tune=10, chains=1)
    default = bl.snp_model(sim.y, sim.W, marginalize=False, prior="mixture", priors="default")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)
        bl.sample(default, draws=10, tune=10, chains=1, progressbar=False)


def _rhat(post, name):
    return float(azs.rhat(post[name].values))


@pytest.mark.slow
def test_sample__bslmm_recovers_polygenic_pve():
    """simulate(300, 600, h² = 0.5): PVE as REML's, R-hat of PVE ≤ 1.01."""
    sim = simulate(300, 600, 0.5, seed=0)
    reml_h2 = bl.reml(sim.y, K=sim.K).h2
    model = bl.snp_model(sim.y, sim.W, marginalize=False, prior="mixture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)  # PGE's R-hat is reported below
        fit = bl.sample(model, draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
    post = fit["posterior"]
    pve = post["pve"].values.ravel()
    lo, hi = np.quantile(pve, [0.025, 0.975])
    assert lo <= reml_h2 <= hi and lo <= 0.5 <= hi, (lo, hi, reml_h2)
    assert abs(pve.mean() - reml_h2) < 2 * pve.std(), (pve.mean(), reml_h2)
    assert _rhat(post, "pve") <= 1.01, _rhat(post, "pve")
    assert _rhat(post, "sigma_e2") <= 1.01, _rhat(post, "sigma_e2")


@pytest.mark.slow
def test_sample__bslmm_recovers_planted_large_effects():
    """tests/test_sparse.py's planted simulation: pip, PVE and PGE, R-hat ≤ 1.01 on both."""
    from tests.test_sparse import _planted

    y, W, causal, pve_true, pge_true = _planted()
    model = bl.snp_model(y, W, marginalize=False, prior="mixture")
    fit = bl.sample(model, draws=500, tune=500, chains=2, random_seed=4, progressbar=False)
    post = fit["posterior"]
    pip = post["pip"].mean(("chain", "draw")).values
    np.testing.assert_array_equal(np.sort(np.argsort(pip)[-3:]), causal)
    assert (pip[causal] > 0.9).all(), pip[causal]
    for name, true in (("pve", pve_true), ("pge", pge_true)):
        draws = post[name].values.ravel()
        lo, hi = np.quantile(draws, [0.025, 0.975])
        assert lo <= true <= hi, (name, lo, hi, true)
        assert _rhat(post, name) <= 1.01, (name, _rhat(post, name))


def test_postprocess__sparse_draws_of_v_as_dense(monkeypatch):
    """Point-mass draws of v go through a sparse product: u, v_background and the LOO terms are
    those of the dense path (checked against the N×N reference in tests/test_sparse.py)."""
    import xarray as xr

    from bayeslmm.families import sparse as sparse_family

    sim = simulate(50, 200, 0.5, n_covariates=1, seed=4)
    model = bl.snp_model(sim.y, sim.W, sim.X, marginalize=False, prior="mixture")
    info = info_of(model)
    rng = np.random.default_rng(0)
    v = np.zeros((2, 3, 200))
    for c in range(2):
        for d in range(3):
            v[c, d, rng.choice(200, size=3, replace=False)] = rng.normal(0, 0.3, 3)
    post = xr.Dataset(
        {
            "v": (("chain", "draw", "snp"), v),
            "beta": (("chain", "draw", "covariate"), rng.normal(size=(2, 3, 2))),
            "sigma_e2": (("chain", "draw"), rng.uniform(0.5, 2, size=(2, 3))),
            "sigma_b2": (("chain", "draw"), rng.uniform(0.1, 2, size=(2, 3))),
        }
    )
    new, loglik = sparse_family.postprocess(post, info, np.random.default_rng(1), True)
    monkeypatch.setattr(sparse_family, "SPARSE_SHARE", 0.0)
    new_dense, loglik_dense = sparse_family.postprocess(post, info, np.random.default_rng(1), True)
    np.testing.assert_allclose(loglik, loglik_dense, rtol=1e-10, atol=1e-12)
    for name in ("u", "v_background"):
        np.testing.assert_allclose(new[name][0], new_dense[name][0], rtol=1e-10, atol=1e-12)
