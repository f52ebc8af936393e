"""bl.sample / bl.map_estimate: the DataTree contract, reproducibility, MAP by brute force."""

import json
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import optimize

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from models.kinship_lmm import reference as kref


@pytest.fixture(scope="module")
def cohort():
    data = simulate(60, 150, 0.5, n_covariates=1, seed=21)
    y = pd.Series(data.y, index=data.samples, name="height")
    K = pd.DataFrame(data.K, index=data.samples, columns=data.samples)
    X = pd.DataFrame(data.X, index=data.samples, columns=["age"])
    return y, K, X


@pytest.fixture(scope="module")
def idata(cohort):
    y, K, X = cohort
    return _short_run(bl.kinship_model(y, K, X))


def _short_run(model):
    # A short run for the contract of the result, not for convergence (test_recovery checks
    # that): a SamplingWarning about an odd divergence or R-hat is possible and not tested here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)
        return bl.sample(
            model, draws=150, chains=2, tune=300, random_seed=3, sampler="pymc", progressbar=False
        )


def test_sample__warns_when_chains_disagree(cohort):
    y, K, X = cohort
    with pytest.warns(bl.SamplingWarning, match="R-hat of h2"):
        bl.sample(
            bl.kinship_model(y, K, X),
            draws=10,
            chains=2,
            tune=3,
            random_seed=1,
            sampler="pymc",
            progressbar=False,
        )


def test_sample__groups_dims_and_attrs(idata, cohort):
    y, _, _ = cohort
    assert isinstance(idata, xr.DataTree)
    assert {"posterior", "log_likelihood", "observed_data", "constant_data", "sample_stats"} <= set(
        idata.children
    )
    post = idata.posterior
    assert post["u"].dims == ("chain", "draw", "sample")
    assert post["beta"].dims == ("chain", "draw", "covariate")
    assert list(post["covariate"].values) == ["intercept", "age"]
    assert not any(str(v).endswith("__") for v in post.data_vars)
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "sample")
    np.testing.assert_array_equal(idata.observed_data["y"].values, y.values)
    assert list(idata.observed_data["sample"].values) == list(y.index)
    assert idata.constant_data["X"].shape == (60, 2)
    attrs = idata.attrs
    assert attrs["bayeslmm_version"] == bl.__version__
    assert attrs["model"] == "kinship_lmm" and attrs["parametrization"] == "h2"
    assert json.loads(attrs["priors"])["h2"] == "Prior('Beta', alpha=1, beta=1)"
    assert attrs["kinship_scale"] == pytest.approx(np.mean(np.diag(cohort[1].values)))
    assert attrs["phenotype"] == "height"
    np.testing.assert_allclose(post["sigma_g2"], post["h2"] * post["sigma_p"] ** 2)


def test_sample__log_likelihood_is_sample_space_loo(idata, cohort):
    """The stored terms equal the dense LOO formula at the stored draws."""
    _, K, X = cohort
    Kn = K.values / idata.attrs["kinship_scale"]
    Xf = np.column_stack([np.ones(60), X.values])
    post = idata.posterior.isel(chain=0, draw=[0, 77])
    for k in range(2):
        beta = post["beta"].values[k]
        expected = kref.dense_loo_pointwise(
            idata.observed_data["y"].values,
            Xf,
            Kn,
            beta,
            post["sigma_g2"][k].item(),
            post["sigma_e2"][k].item(),
        )
        np.testing.assert_allclose(
            idata.log_likelihood["y"].values[0, [0, 77][k]], expected, atol=1e-8
        )
    with warnings.catch_warnings():  # ArviZ's own Pareto-k note on a short run is not tested
        warnings.filterwarnings("ignore", "Estimated shape parameter of Pareto", UserWarning)
        loo = az.loo(idata)  # ArviZ works on the result directly
    assert np.isfinite(loo.elpd) and loo.elpd_i.dims == ("sample",)


def test_sample__same_seed_same_result(idata, cohort):
    y, K, X = cohort
    again = _short_run(bl.kinship_model(y, K, X))
    for name in ("h2", "beta", "u"):
        np.testing.assert_array_equal(again.posterior[name].values, idata.posterior[name].values)


def test_heritability__summary_columns(idata):
    table = bl.heritability(idata)
    assert list(table.index) == ["h2", "sigma_g2", "sigma_e2"]
    assert {"mean", "sd", "hdi_lower", "hdi_upper", "ess_bulk", "ess_tail", "r_hat"} <= set(
        table.columns
    )
    h2 = idata.posterior["h2"].values.ravel()
    assert table.loc["h2", "mean"] == pytest.approx(h2.mean())
    assert table.loc["h2", "hdi_lower"] < table.loc["h2", "mean"] < table.loc["h2", "hdi_upper"]
    text = bl.summary(idata)
    assert "h2" in text and "r_hat" in text


def test_map_estimate__equals_brute_force_on_dense_model(cohort):
    y, K, X = cohort
    model = bl.kinship_model(y, K, X)
    mp = bl.map_estimate(model)
    assert mp.posterior.sizes["chain"] == 1 and mp.posterior.sizes["draw"] == 1
    assert "u" in mp.posterior and "log_likelihood" in mp.children
    Kn = K.values / mp.attrs["kinship_scale"]
    Xf = np.column_stack([np.ones(60), X.values])
    dense = kref.dense_kinship_model(y.values, Xf, Kn)
    logp = dense.compile_logp(jacobian=False)

    def negative(theta):
        h2, sigma_p = 1 / (1 + np.exp(-theta[0])), np.exp(theta[1])
        return -logp(
            {
                "h2_logodds__": np.log(h2 / (1 - h2)),
                "sigma_p_log__": np.log(sigma_p),
                "beta": theta[2:],
            }
        )

    start = np.r_[0.0, np.log(np.std(y)), np.mean(y), 0.0]
    best = optimize.minimize(
        negative,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000},
    )
    h2_ref = 1 / (1 + np.exp(-best.x[0]))
    assert mp.posterior["h2"].item() == pytest.approx(h2_ref, abs=2e-3)
    np.testing.assert_allclose(mp.posterior["beta"].values.ravel(), best.x[2:], atol=2e-3)
    # u at the MAP is the conditional mean (BLUP) of the dense formula
    mean_u, _ = kref.conditional_u(
        y.values,
        Xf,
        Kn,
        mp.posterior["beta"].values.ravel(),
        mp.posterior["sigma_g2"].item(),
        mp.posterior["sigma_e2"].item(),
    )
    np.testing.assert_allclose(mp.posterior["u"].values.ravel(), mean_u, atol=1e-8)


def test_heritability__constant_and_component_rows():
    rng = np.random.default_rng(0)
    post = {
        "h2": rng.uniform(0.2, 0.4, (2, 50)),
        "sigma_e2": np.ones((2, 50)),  # fixed at 1, as in the probit model
        "h2_component": rng.uniform(0, 0.2, (2, 50, 2)),
    }
    idata = az.from_dict(
        {"posterior": post},
        coords={"component": ["K1", "K2"]},
        dims={"h2_component": ["component"]},
    )
    table = bl.heritability(idata)
    assert list(table.index) == ["h2", "sigma_e2", "h2_component[K1]", "h2_component[K2]"]
    assert table.loc["sigma_e2", "mean"] == 1.0 and table.loc["sigma_e2", "sd"] == 0.0
    assert np.isnan(table.loc["sigma_e2", "r_hat"])
    expected = post["h2_component"][:, :, 1].mean()
    assert table.loc["h2_component[K2]", "mean"] == pytest.approx(expected)
    assert np.isfinite(table.loc["h2", "r_hat"])
