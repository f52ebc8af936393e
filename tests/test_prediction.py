"""predict (bayeslmm.inference.prediction) against the dense conditional formulas of models/."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayeslmm as bl
from bayeslmm.errors import InputError
from bayeslmm.inference.prediction import predict
from models.prediction import reference as pref

N_TRAIN, N_NEW = 60, 6


@pytest.fixture(scope="module")
def cohort():
    """A simulated cohort split into training and new samples, with IDs."""
    data = bl.simulate(N_TRAIN + N_NEW, 40, 0.6, n_covariates=1, seed=3)
    ids = np.asarray(data.samples).astype(str)
    train, new = np.arange(N_TRAIN), np.arange(N_TRAIN, N_TRAIN + N_NEW)
    return {
        "data": data,
        "ids": ids,
        "train": train,
        "new": new,
        "y": pd.Series(data.y[train], index=ids[train], name="trait"),
        "X": pd.DataFrame(data.X, index=ids, columns=["age"]),
        "K": pd.DataFrame(data.K, index=ids, columns=ids),
        "G": pd.DataFrame(data.G, index=ids, columns=data.snps["snp"].astype(str)),
    }


def _with_draws(idata, beta, sigma_g2, sigma_e2):
    """``idata`` with its posterior replaced by given draws of β, σg², σe² (one chain)."""
    n = len(sigma_g2)
    covariates = idata["posterior"]["covariate"].values
    post = xr.Dataset(
        {
            "beta": (("chain", "draw", "covariate"), beta[None]),
            "sigma_g2": (("chain", "draw"), np.asarray(sigma_g2)[None]),
            "sigma_e2": (("chain", "draw"), np.asarray(sigma_e2)[None]),
        },
        coords={"chain": [0], "draw": np.arange(n), "covariate": covariates},
    )
    out = idata.copy()
    out["posterior"] = xr.DataTree(post)
    out.attrs["sampler"] = "test"
    return out


@pytest.fixture(scope="module")
def kinship_fit(cohort):
    """A MAP fit of the kinship model on the training samples."""
    c = cohort
    t = c["train"]
    model = bl.kinship_model(c["y"], c["K"].iloc[t, t], c["X"].iloc[t])
    return bl.map_estimate(model, random_seed=1)


def _dense(cohort, idata, beta, sigma_g2, sigma_e2):
    c = cohort
    scale = idata.attrs["kinship_scale"]
    X_train = idata["constant_data"]["X"].values
    X_new = np.column_stack([np.ones(N_NEW), c["data"].X[c["new"]]])
    y_train = idata["observed_data"]["y"].values
    K = c["data"].K / scale
    mean, cov = pref.conditional_genetic_values(
        y_train, X_train, K, c["train"], c["new"], beta, sigma_g2, sigma_e2
    )
    y_mean, y_cov = pref.conditional_phenotypes(
        y_train, X_train, X_new, K, c["train"], c["new"], beta, sigma_g2, sigma_e2
    )
    return mean, cov, y_mean, y_cov


def test_predict__kinship_conditional_means_equal_dense(cohort, kinship_fit):
    rng = np.random.default_rng(0)
    n = 5
    beta = rng.normal(size=(n, 2))
    sigma_g2, sigma_e2 = rng.uniform(0.1, 2.0, n), rng.uniform(0.1, 2.0, n)
    idata = _with_draws(kinship_fit, beta, sigma_g2, sigma_e2)
    pred = predict(idata, K=cohort["K"], X=cohort["X"], random_seed=1)
    g_mean = pred.draws["predictions"]["g_mean"].values[0]
    assert pred.samples == list(cohort["ids"][cohort["new"]])
    for i in range(n):
        mean, _, _, _ = _dense(cohort, idata, beta[i], sigma_g2[i], sigma_e2[i])
        np.testing.assert_allclose(g_mean[i], mean, rtol=1e-8, atol=1e-10)


def test_predict__kinship_draws_match_dense_mean_and_covariance(cohort, kinship_fit):
    n = 4000
    beta = np.tile([0.3, -0.2], (n, 1))
    sigma_g2, sigma_e2 = np.full(n, 0.8), np.full(n, 0.5)
    idata = _with_draws(kinship_fit, beta, sigma_g2, sigma_e2)
    pred = predict(idata, K=cohort["K"], X=cohort["X"], random_seed=2)
    g = pred.draws["predictions"]["g"].values[0]
    y = pred.draws["predictions"]["y"].values[0]
    mean, cov, y_mean, y_cov = _dense(cohort, idata, beta[0], 0.8, 0.5)
    for draws, m, C in ((g, mean, cov), (y, y_mean, y_cov)):
        se = np.sqrt(np.diag(C) / n)
        assert np.all(np.abs(draws.mean(axis=0) - m) < 4.5 * se)
        # Monte Carlo error of a covariance estimate: relative ~ sqrt(2/n) = 0.022
        assert np.linalg.norm(np.cov(draws.T) - C) < 0.1 * np.linalg.norm(C)


def test_predict__kinship_rank_deficient_k_equals_dense(cohort):
    """K = WW'/M of 20 SNPs (rank 20 < 60 training samples): the null space of V⁻¹ matters."""
    c = cohort
    rng = np.random.default_rng(4)
    W = rng.normal(size=(N_TRAIN + N_NEW, 20))
    K = W @ W.T / 20
    K_frame = pd.DataFrame(K, index=c["ids"], columns=c["ids"])
    t = c["train"]
    fit = bl.map_estimate(bl.kinship_model(c["y"], K_frame.iloc[t, t], c["X"].iloc[t]))
    assert fit.attrs["kinship_rank"] == 20
    beta = np.array([[0.1, 0.4], [-0.5, 0.2]])
    idata = _with_draws(fit, beta, np.array([0.7, 1.5]), np.array([0.4, 0.9]))
    pred = predict(idata, K=K_frame, X=c["X"])
    scale = fit.attrs["kinship_scale"]
    for i, (sg, se) in enumerate([(0.7, 0.4), (1.5, 0.9)]):
        mean, _ = pref.conditional_genetic_values(
            fit["observed_data"]["y"].values,
            fit["constant_data"]["X"].values,
            K / scale,
            t,
            c["new"],
            beta[i],
            sg,
            se,
        )
        np.testing.assert_allclose(
            pred.draws["predictions"]["g_mean"].values[0, i], mean, rtol=1e-8, atol=1e-10
        )


def test_predict__map_gives_conditional_means_and_summary(cohort, kinship_fit):
    pred = predict(kinship_fit, K=cohort["K"], X=cohort["X"])
    p = pred.draws["predictions"]
    np.testing.assert_array_equal(p["g"].values, p["g_mean"].values)
    beta = kinship_fit["posterior"]["beta"].values.reshape(-1)
    X_new = pred.draws["predictions_constant_data"]["X"].values
    np.testing.assert_allclose(p["y"].values.reshape(-1), X_new @ beta + p["g"].values.reshape(-1))
    assert list(pred.summary.columns) == [
        "g_mean",
        "g_sd",
        "g_hdi_lower",
        "g_hdi_upper",
        "y_mean",
        "y_sd",
        "y_hdi_lower",
        "y_hdi_upper",
    ]
    assert pred.summary.index.name == "sample"
    assert pred.summary["g_sd"].isna().all()  # one draw: no spread


def test_predict__snp_form_equals_kinship_form_with_ww(cohort):
    """K = WW'/M of the training-standardized genotypes: the SNP and kinship forms agree."""
    c = cohort
    t, new = c["train"], c["new"]
    fit = bl.map_estimate(bl.snp_model(c["y"], c["G"].iloc[t], c["X"].iloc[t]))
    const = fit["constant_data"]
    np.testing.assert_allclose(const["snp_center"].values, c["data"].G[t].mean(axis=0))
    W_all = pref.standardize_new(
        c["data"].G.astype(float), const["snp_center"].values, const["snp_scale"].values
    )
    K = pd.DataFrame(W_all @ W_all.T / W_all.shape[1], index=c["ids"], columns=c["ids"])
    by_snp = predict(fit, genotypes=c["G"].iloc[new], X=c["X"])
    by_kinship = predict(fit, K=K, X=c["X"])
    np.testing.assert_allclose(
        by_snp.draws["predictions"]["g"].values,
        by_kinship.draws["predictions"]["g_mean"].values,
        rtol=1e-8,
        atol=1e-10,
    )
    # and the SNP form equals W_new E[v | y, θ̂] of the dense formula
    beta = fit["posterior"]["beta"].values.reshape(-1)
    sg = float(fit["posterior"]["sigma_g2"].values.reshape(-1)[0])
    se = float(fit["posterior"]["sigma_e2"].values.reshape(-1)[0])
    v = pref.snp_conditional_effects(
        fit["observed_data"]["y"].values, const["X"].values, W_all[t], beta, sg, se
    )
    np.testing.assert_allclose(
        by_snp.draws["predictions"]["g"].values.reshape(-1), W_all[new] @ v, rtol=1e-8, atol=1e-10
    )


def test_predict__snp_form_positional_array_and_missing_calls(cohort):
    c = cohort
    t, new = c["train"], c["new"]
    fit = bl.map_estimate(bl.snp_model(c["y"], c["G"].iloc[t], c["X"].iloc[t]))
    G_new = c["data"].G[new].astype(float)
    G_new[0, 0] = np.nan
    pred = predict(fit, genotypes=G_new, X=c["data"].X[new])
    assert pred.samples == [str(i + 1) for i in range(N_NEW)]
    const = fit["constant_data"]
    W_new = pref.standardize_new(G_new, const["snp_center"].values, const["snp_scale"].values)
    v = fit["posterior"]["v"].values.reshape(-1)
    np.testing.assert_allclose(pred.draws["predictions"]["g"].values.reshape(-1), W_new @ v)


def test_predict__errors(cohort, kinship_fit):
    c = cohort
    with pytest.raises(InputError, match="exactly one of K="):
        predict(kinship_fit)
    with pytest.raises(InputError, match=r"covariates \['age'\] besides the intercept"):
        predict(kinship_fit, K=c["K"])
    with pytest.raises(InputError, match="K lacks 1 of the 60 training samples"):
        predict(kinship_fit, K=c["K"].iloc[1:, 1:], X=c["X"])
    with pytest.raises(InputError, match="K has no sample besides those of the fit"):
        t = c["train"]
        predict(kinship_fit, K=c["K"].iloc[t, t], X=c["X"])
    with pytest.raises(InputError, match="not the kinship the model was fitted with"):
        predict(kinship_fit, K=2 * c["K"], X=c["X"])
    with pytest.raises(InputError, match=r"X must have shape \(6, 1\)"):
        predict(kinship_fit, K=c["K"], X=np.ones((3, 1)))
    with pytest.raises(InputError, match="needs the posterior SNP effects v"):
        predict(kinship_fit, genotypes=c["G"].iloc[c["new"]], X=c["X"])
    with pytest.raises(InputError, match="hdi_prob must be in"):
        predict(kinship_fit, K=c["K"], X=c["X"], hdi_prob=1.5)


def test_predict__snp_errors(cohort):
    c = cohort
    t, new = c["train"], c["new"]
    fit = bl.map_estimate(bl.snp_model(c["y"], c["G"].iloc[t], c["X"].iloc[t]))
    with pytest.raises(InputError, match="genotypes lack 1 of the fit's 40 SNPs"):
        predict(fit, genotypes=c["G"].iloc[new, 1:], X=c["X"])
    with pytest.raises(InputError, match=r"shape \(n_new, 40\)"):
        predict(fit, genotypes=np.zeros((3, 5)), X=c["X"])


@pytest.mark.slow
def test_predict__nuts_posterior_predictive(cohort):
    """With NUTS draws, the SNP and kinship forms agree within Monte Carlo error."""
    c = cohort
    t, new = c["train"], c["new"]
    fit = bl.sample(
        bl.snp_model(c["y"], c["G"].iloc[t], c["X"].iloc[t]),
        draws=500,
        chains=2,
        tune=500,
        random_seed=5,
        progressbar=False,
    )
    const = fit["constant_data"]
    W_all = pref.standardize_new(
        c["data"].G.astype(float), const["snp_center"].values, const["snp_scale"].values
    )
    K = pd.DataFrame(W_all @ W_all.T / W_all.shape[1], index=c["ids"], columns=c["ids"])
    by_snp = predict(fit, genotypes=c["G"].iloc[new], X=c["X"], random_seed=1)
    by_kinship = predict(fit, K=K, X=c["X"], random_seed=2)
    sd = by_kinship.summary["g_sd"].to_numpy()
    diff = by_snp.summary["g_mean"].to_numpy() - by_kinship.summary["g_mean"].to_numpy()
    assert np.all(np.abs(diff) < 5 * sd / np.sqrt(1000) * 3)  # ESS ≥ ~1/9 of the draws
    np.testing.assert_allclose(by_snp.summary["g_sd"], sd, rtol=0.25)


# --------------------------------------------------------------------------------------------
# cross_validate
# --------------------------------------------------------------------------------------------


def test_cross_validate__folds_keep_groups_and_metrics_match(cohort):
    from bayeslmm.inference.cross_validation import cross_validate

    c = cohort
    ids = c["ids"]
    y = pd.Series(c["data"].y, index=ids, name="trait")
    families = pd.Series(np.arange(ids.size) // 3, index=ids)  # 22 "families" of 3
    cv = cross_validate(y, K=c["K"], X=c["X"], groups=families, n_folds=3, random_seed=1)
    p = cv.predictions
    assert list(p.index) == list(ids)
    assert (p.groupby("group")["fold"].nunique() == 1).all()
    assert set(p["fold"]) == {0, 1, 2}
    assert list(cv.metrics.index) == ["0", "1", "2", "all"]
    np.testing.assert_allclose(cv.metrics.loc["all", "mse"], np.mean((p["y"] - p["y_pred"]) ** 2))
    np.testing.assert_allclose(cv.metrics.loc["all", "r"], np.corrcoef(p["y"], p["y_pred"])[0, 1])
    assert "auc" not in cv.metrics.columns


def test_cross_validate__binary_auc_and_brier(cohort):
    from scipy import stats

    from bayeslmm.inference.cross_validation import cross_validate

    c = cohort
    binary = (c["data"].y > np.median(c["data"].y)).astype(float)
    cv = cross_validate(binary, genotypes=c["data"].G, n_folds=2, random_seed=2)
    p = cv.predictions
    cases, controls = p["y_pred"][p["y"] == 1], p["y_pred"][p["y"] == 0]
    u = stats.mannwhitneyu(cases, controls).statistic
    np.testing.assert_allclose(cv.metrics.loc["all", "auc"], u / (cases.size * controls.size))
    brier = np.mean((np.clip(p["y_pred"], 0, 1) - p["y"]) ** 2)
    np.testing.assert_allclose(cv.metrics.loc["all", "brier"], brier)


def test_cross_validate__errors(cohort):
    from bayeslmm.inference.cross_validation import cross_validate

    c = cohort
    y = pd.Series(c["data"].y, index=c["ids"])
    with pytest.raises(InputError, match="exactly one of K="):
        cross_validate(y)
    with pytest.raises(InputError, match="n_folds must be an integer from 2"):
        cross_validate(y, K=c["K"], groups=np.zeros(y.size), n_folds=2)
    with pytest.raises(InputError, match="method must be 'map' or 'sample'"):
        cross_validate(y, K=c["K"], method="reml")


@pytest.mark.slow
def test_predict__sparse_prior_snp_form(cohort):
    """A sparse-prior fit keeps its standardization too: g = W_new (v + v_background) per draw."""
    c = cohort
    t, new = c["train"], c["new"]
    model = bl.snp_model(c["y"], c["G"].iloc[t], c["X"].iloc[t], marginalize=False, prior="mixture")
    fit = bl.sample(model, draws=100, chains=1, tune=100, random_seed=3, progressbar=False)
    pred = predict(fit, genotypes=c["G"].iloc[new], X=c["X"], random_seed=1)
    const = fit["constant_data"]
    W_new = pref.standardize_new(
        c["data"].G[new].astype(float), const["snp_center"].values, const["snp_scale"].values
    )
    v = fit["posterior"]["v"].values.reshape(-1, W_new.shape[1])
    b = fit["posterior"]["v_background"].values.reshape(-1, W_new.shape[1])
    np.testing.assert_allclose(
        pred.draws["predictions"]["g"].values.reshape(-1, N_NEW), (v + b) @ W_new.T
    )
