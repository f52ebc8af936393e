"""Sample-space LOO and compare(): against the dense inverse, exact refits, and known rankings.

The pointwise LOO terms are also checked against the Schur-complement brute force
(models/kinship_lmm/reference.py::dense_loo_pointwise, scipy.stats.norm) in test_effects.py.
"""

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import special

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.priors import default_priors
from bayeslmm.inference.comparison import COMPARE_COLUMNS, compare, loo
from bayeslmm.inference.effects import loo_pointwise
from models.kinship_lmm import reference as kref
from tests.nuts import sample_counted

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The dense references do many 100×100 solves: BLAS threads only contend on them (40×
    slower with 2 cores shared by other processes)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - an optional speed-up
        yield
        return
    with threadpool_limits(1):
        yield


def _standardized(G):
    W = (G - G.mean(0)) / G.std(0)
    return W @ W.T / W.shape[1]


def _idata(y, X, K, draws, *, chains=2, samples=None):
    """A DataTree shaped like bl.sample's, from given posterior draws of (β, σg², σe²)."""
    n = len(y)
    samples = [f"id{i}" for i in range(n)] if samples is None else list(samples)
    beta, sg2, se2 = draws["beta"], draws["sigma_g2"], draws["sigma_e2"]
    per_chain = len(sg2) // chains
    spec = bl.spectral_from_kinship(K, normalize=False)
    loglik = loo_pointwise(spec, y, X, beta, sg2, se2)

    def var(values, *dims):
        return values.reshape(chains, per_chain, *values.shape[1:]), ("chain", "draw", *dims)

    posterior = {
        "h2": var(sg2 / (sg2 + se2)),
        "sigma_g2": var(sg2),
        "sigma_e2": var(se2),
        "beta": var(beta, "covariate"),
    }
    return _tree(
        posterior=xr.Dataset({k: xr.DataArray(v, dims=d) for k, (v, d) in posterior.items()}),
        log_likelihood=xr.Dataset(
            {
                "y": xr.DataArray(
                    var(loglik, "sample")[0],
                    dims=var(loglik, "sample")[1],
                    coords={"sample": samples},
                )
            }
        ),
        observed_data=xr.Dataset({"y": xr.DataArray(y, dims="sample", coords={"sample": samples})}),
    )


def _tree(**groups):
    return xr.DataTree.from_dict(
        {name: g.to_dataset() if isinstance(g, xr.DataTree) else g for name, g in groups.items()}
    )


@pytest.fixture(scope="module")
def two_kinships():
    """N = 100, h² = 0.8 from 40 causal SNPs; K from the causal SNPs and from 40 others."""
    data = simulate(100, 200, 0.8, n_causal=40, n_covariates=1, seed=21)
    causal = data.truth["causal"]
    noise = np.setdiff1d(np.arange(200), causal)[:40]
    X = np.column_stack([np.ones(100), data.X])
    return data, X, _standardized(data.G[:, causal]), _standardized(data.G[:, noise])


@pytest.fixture(scope="module")
def exact_fits(two_kinships):
    data, X, K_causal, K_noise = two_kinships
    rng, grid = np.random.default_rng(3), (np.arange(400) + 0.5) / 400
    return {
        name: _idata(data.y, X, K, kref.exact_posterior_draws(data.y, X, K, 2000, rng, grid))
        for name, K in (("causal", K_causal), ("noise", K_noise))
    }


# --------------------------------------------------------------------------------------------
# pointwise LOO in sample space
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["low_rank", "centred"])
def test_loo_pointwise__equals_inverse_covariance_formula(rng, kind):
    n = 40
    if kind == "low_rank":  # M = 12 < N: rank 12
        K = _standardized(rng.binomial(2, 0.3, size=(n, 12)).astype(float))
    else:  # centred genotypes: rank N − 1, null space ∝ 1 (carried by the intercept)
        K = _standardized(rng.binomial(2, 0.3, size=(n, 3 * n)).astype(float))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + rng.normal(size=n)
    draws = 6
    beta = rng.normal(size=(draws, 2))
    sg2 = rng.uniform(0.01, 2.0, size=draws)
    se2 = rng.uniform(0.05, 1.5, size=draws)
    fast = loo_pointwise(bl.spectral_from_kinship(K, normalize=False), y, X, beta, sg2, se2)
    for s in range(draws):
        C = np.linalg.inv(sg2[s] * K + se2[s] * np.eye(n))  # C = V⁻¹
        g = C @ (y - X @ beta[s])
        c = np.diag(C)
        dense = -0.5 * np.log(2 * np.pi) + 0.5 * np.log(c) - 0.5 * g**2 / c
        np.testing.assert_allclose(fast[s], dense, rtol=0, atol=1e-8)
        for i in (0, 17, 39):  # p(y_i | y_-i, θ) by partitioning V, scipy.stats.norm
            single = kref.dense_conditional_logpdf(
                i, y, X, K, beta[s : s + 1], sg2[s : s + 1], se2[s : s + 1]
            )
            np.testing.assert_allclose(fast[s, i], single[0], rtol=0, atol=1e-8)


def _log_mean_exp(logp):
    """log mean_s exp(logp_s) and its Monte-Carlo SE (delta method, independent draws)."""
    value = special.logsumexp(logp) - np.log(len(logp))
    ratio = np.exp(logp - value)
    return value, float(np.std(ratio) / np.sqrt(len(logp)))


def test_loo__psis_equals_exact_refits_with_independent_draws():
    # Flat β, Jeffreys σp², h² ~ Beta(1, 1): the priors do not depend on the data, so the refit
    # on N − 1 samples is exactly the leave-one-out posterior; draws are exact (no MCMC).
    data = simulate(60, 150, 0.6, n_covariates=1, seed=33)
    X = np.column_stack([np.ones(60), data.X])
    K = data.K / np.mean(np.diag(data.K))
    grid = (np.arange(200) + 0.5) / 200
    rng = np.random.default_rng(4)
    full = kref.exact_posterior_draws(data.y, X, K, 4000, rng, grid)
    fit = _idata(data.y, X, K, full)
    result = loo(fit)
    assert result.elpd_i.sizes["sample"] == 60
    k = np.asarray(result.pareto_k)
    assert k.max() < 0.7  # PSIS is reliable for every sample
    psis_error, naive_error = 0.0, 0.0
    for i in np.argsort(k)[-4:]:  # the most influential samples
        rest = np.delete(np.arange(60), i)
        refit = kref.exact_posterior_draws(
            data.y[rest], X[rest], K[np.ix_(rest, rest)], 4000, rng, grid
        )
        logp = kref.dense_conditional_logpdf(
            i, data.y, X, K, refit["beta"], refit["sigma_g2"], refit["sigma_e2"]
        )
        exact, mcse = _log_mean_exp(logp)
        psis = float(result.elpd_i[i])
        # for k < 0.7 the PSIS error is of the order of the brute force's Monte-Carlo error
        assert abs(psis - exact) < 4 * np.sqrt(2) * mcse + 2e-3, (i, psis, exact, mcse)
        naive = _log_mean_exp(fit.log_likelihood["y"].values.reshape(-1, 60)[:, i])[0]
        psis_error += abs(psis - exact)
        naive_error += abs(naive - exact)
    # the check has teeth: the full-data (not left-out) average is much further off
    assert naive_error > 5 * psis_error, (naive_error, psis_error)


# --------------------------------------------------------------------------------------------
# compare()
# --------------------------------------------------------------------------------------------


def test_compare__ranks_causal_kinship_first(exact_fits):
    table = compare(exact_fits)
    assert list(table.index) == ["causal", "noise"]
    assert table.loc["causal", "elpd_diff"] == 0.0 and table.loc["causal", "rank"] == 0
    assert -table.loc["noise", "elpd_diff"] > 2 * table.loc["noise", "dse"]
    assert table.loc["causal", "weight"] > 0.9
    assert list(table.columns) == list(COMPARE_COLUMNS)
    assert table["n_bad_k"].sum() == 0 and not table["warning"].any()


def test_compare__table_equals_arviz_stats(exact_fits):
    """Our elpd_diff, dse and weights against arviz_stats.compare's own table (same order)."""
    table = compare(exact_fits)
    theirs = az.compare(
        {name: az.loo(fit, pointwise=True) for name, fit in exact_fits.items()}, round_to="none"
    )
    assert list(theirs.index) == list(table.index)
    for ours, col in (("elpd_loo", "elpd"), ("se", "se"), ("p_loo", "p")):
        np.testing.assert_allclose(table[ours], theirs[col], rtol=1e-12)
    for col in ("elpd_diff", "dse", "weight"):
        np.testing.assert_allclose(table[col], theirs[col], rtol=1e-8, atol=1e-12)
    spread = table["elpd_loo"].max() - table["elpd_loo"].min()
    np.testing.assert_allclose(table["elpd_diff"].sum(), -spread)


def test_compare__waic_is_refused_with_the_reason(exact_fits):
    with pytest.raises(bl.InputError, match="ic must be 'loo'.*WAIC was dropped"):
        compare(exact_fits, ic="waic")


def test_compare__aligns_samples_by_id(two_kinships, exact_fits):
    data, X, K_causal, _ = two_kinships
    fit = exact_fits["causal"]
    order = np.random.default_rng(0).permutation(100)
    draws = {
        "beta": fit.posterior["beta"].values.reshape(-1, 2),
        "sigma_g2": fit.posterior["sigma_g2"].values.ravel(),
        "sigma_e2": fit.posterior["sigma_e2"].values.ravel(),
    }
    ids = np.array([f"id{i}" for i in range(100)])
    shuffled = _idata(
        data.y[order], X[order], K_causal[np.ix_(order, order)], draws, samples=ids[order]
    )
    table = compare({"a": fit, "b": shuffled})
    assert table["elpd_diff"].abs().max() < 1e-10
    assert table["dse"].max() < 1e-10


def test_compare__refuses_different_samples(two_kinships, exact_fits):
    data, X, K, _ = two_kinships
    fit = exact_fits["causal"]
    draws = {
        "beta": fit.posterior["beta"].values.reshape(-1, 2),
        "sigma_g2": fit.posterior["sigma_g2"].values.ravel(),
        "sigma_e2": fit.posterior["sigma_e2"].values.ravel(),
    }
    keep = np.arange(3, 100)
    fewer = _idata(
        data.y[keep], X[keep], K[np.ix_(keep, keep)], draws, samples=[f"id{i}" for i in keep]
    )
    with pytest.raises(bl.InputError, match=r"'causal' and 'fewer' \(3 samples are in one"):
        compare({"causal": fit, "noise": exact_fits["noise"], "fewer": fewer})
    y = data.y.copy()
    y[[5, 6]] += 1.0
    changed = _idata(y, X, K, draws)
    with pytest.raises(bl.InputError, match="2 shared samples have different phenotype.*[Rr]efit"):
        compare({"causal": fit, "changed": changed})


def test_compare__refuses_fits_without_sample_space_loglik(exact_fits):
    fit = exact_fits["causal"]
    bare = _tree(posterior=fit.posterior, observed_data=fit.observed_data)
    with pytest.raises(bl.InputError, match="'bare' has no log_likelihood"):
        compare({"causal": fit, "bare": bare})
    rotated = fit["log_likelihood"].to_dataset().rename({"sample": "eigen"})
    eigen = _tree(posterior=fit.posterior, log_likelihood=rotated, observed_data=fit.observed_data)
    with pytest.raises(bl.InputError, match="not in sample space"):
        compare({"causal": fit, "rotated": eigen})
    with pytest.raises(bl.InputError, match="at least two"):
        compare({"causal": fit})
    with pytest.raises(bl.InputError, match="ic must be"):
        compare(exact_fits, ic="aic")
    one_draw = fit.isel(chain=[0], draw=[0], missing_dims="ignore")
    with pytest.raises(bl.InputError, match="single draw"):
        compare({"causal": fit, "map": one_draw})


def test_loo__warns_with_count_of_high_pareto_k(exact_fits):
    fit = exact_fits["causal"]
    loglik = fit.log_likelihood["y"].copy()
    heavy = np.random.default_rng(5).standard_normal(loglik.shape[:2])
    for i in (3, 50, 77):  # importance ratios exp(exp(3 z)): an extremely heavy right tail
        loglik[:, :, i] = -np.exp(3 * heavy)
    spoiled = _tree(
        posterior=fit.posterior,
        log_likelihood=xr.Dataset({"y": loglik}),
        observed_data=fit.observed_data,
    )
    with pytest.warns(bl.SamplingWarning, match=r"'noisy': 3 of 100 samples have a Pareto k"):
        table = compare({"causal": fit, "noisy": spoiled})
    assert bool(table.loc["noisy", "warning"])
    with pytest.warns(bl.SamplingWarning, match="3 of 100 samples"):
        loo(spoiled)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loo(fit)  # well-behaved: no warning


# --------------------------------------------------------------------------------------------
# NUTS: PSIS-LOO against brute-force refits, and compare() on sampled models
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sampled():
    """N = 60 cohort and a fitter for subsets of its samples; the fit to all samples.

    K is normalized once and the default priors (scaled by sd(y)) are fixed from the full data,
    so that a fit to N − 1 samples is the exact leave-one-out posterior of the full model.
    """
    data = simulate(60, 150, 0.6, n_covariates=1, seed=33)
    K = data.K / np.mean(np.diag(data.K))
    X = np.column_stack([np.ones(60), data.X])
    priors = default_priors("h2", data.y, X)

    def fit(rows):
        model = bl.kinship_model(
            data.y[rows], K[np.ix_(rows, rows)], data.X[rows], priors, normalize=False
        )
        with warnings.catch_warnings():
            # h² near 0 at N = 60 gives a few divergences; counted below, not fatal for LOO
            warnings.filterwarnings(
                "ignore", r"sampling problems: \d+ divergent transitions\. ", bl.SamplingWarning
            )
            idata = bl.sample(
                model,
                draws=2000,
                chains=2,
                random_seed=8,
                progressbar=False,
                target_accept=0.99,
                random_effects=False,
            )
        assert int(idata.sample_stats["diverging"].sum()) <= 20
        return idata

    return data, X, K, fit, fit(np.arange(60))


@pytest.mark.slow
def test_loo__psis_equals_nuts_refits(sampled):
    data, X, K, fit, full = sampled
    result = loo(full)
    assert float(np.max(result.pareto_k)) < 0.7
    psis_error, naive_error = 0.0, 0.0
    for i in np.argsort(np.asarray(result.pareto_k))[-3:]:  # the most influential samples
        rest = np.delete(np.arange(60), i)
        post = fit(rest).posterior
        logp = kref.dense_conditional_logpdf(
            i,
            data.y,
            X,
            K,
            post["beta"].values.reshape(-1, 2),
            post["sigma_g2"].values.ravel(),
            post["sigma_e2"].values.ravel(),
        )
        exact, mcse = _log_mean_exp(logp)
        psis = float(result.elpd_i[i])
        # NUTS draws are autocorrelated: allow ESS ≈ draws / 4 on both sides
        assert abs(psis - exact) < 4 * np.sqrt(2) * 2 * mcse + 5e-3, (i, psis, exact, mcse)
        naive = _log_mean_exp(full.log_likelihood["y"].values.reshape(-1, 60)[:, i])[0]
        psis_error += abs(psis - exact)
        naive_error += abs(naive - exact)
    assert naive_error > 5 * psis_error, (naive_error, psis_error)


@pytest.mark.slow
def test_compare__ranks_sampled_models(two_kinships, exact_fits):
    data, X, K_causal, K_noise = two_kinships
    fits = {}
    for name, K in (("noise", K_noise), ("causal", K_causal)):
        model = bl.kinship_model(data.y, K, data.X)
        fits[name] = sample_counted(
            model, draws=1000, chains=2, random_seed=9, random_effects=False
        )
    table = compare(fits)
    assert list(table.index) == ["causal", "noise"]
    assert -table.loc["noise", "elpd_diff"] > 4 * table.loc["noise", "dse"]
    # NUTS with default priors agrees with the exact draws under flat priors
    exact = compare(exact_fits)
    for name in fits:
        assert table.loc[name, "elpd_loo"] == pytest.approx(exact.loc[name, "elpd_loo"], abs=1.0)
