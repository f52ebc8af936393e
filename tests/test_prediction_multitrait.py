"""predict_multitrait against the dense NT × NT conditional formulas of models/prediction."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayeslmm as bl
from bayeslmm.errors import InputError
from bayeslmm.inference import prediction
from bayeslmm.inference.prediction_multitrait import (
    PSD_TOLERANCE,
    fluctuations,
    multitrait_parts,
    predict_multitrait,
)
from models.prediction import multitrait as mref

N_TRAIN, N_NEW, TRAITS = 40, 5, ["height", "weight"]


@pytest.fixture(scope="module")
def cohort():
    """Two correlated traits on a simulated cohort, split into training and new samples."""
    data = bl.simulate(N_TRAIN + N_NEW, 40, 0.6, n_covariates=1, seed=5)
    ids = np.asarray(data.samples).astype(str)
    rng = np.random.default_rng(5)
    second = 0.6 * data.y + 0.3 * data.X[:, 0] + rng.normal(size=data.y.size)
    train, new = np.arange(N_TRAIN), np.arange(N_TRAIN, N_TRAIN + N_NEW)
    Y = pd.DataFrame(np.column_stack([data.y, second]), index=ids, columns=TRAITS)
    return {
        "data": data,
        "ids": ids,
        "train": train,
        "new": new,
        "Y": Y.iloc[train],
        "X": pd.DataFrame(data.X, index=ids, columns=["age"]),
        "K": pd.DataFrame(data.K, index=ids, columns=ids),
    }


@pytest.fixture(scope="module")
def fit(cohort):
    """A MAP fit of the multi-trait model on the training samples."""
    c = cohort
    t = c["train"]
    model = bl.kinship_model(c["Y"], c["K"].iloc[t, t], c["X"].iloc[t])
    return bl.map_estimate(model, random_seed=1)


def _predict(idata, **options):
    """predict_multitrait's two parts as the Prediction that bl.predict returns."""
    return bl.Prediction(*predict_multitrait(idata, **options))


def _covariances(rng, n):
    A = rng.normal(size=(n, 2, 2))
    return A @ np.swapaxes(A, 1, 2) + 0.2 * np.eye(2)


def _with_draws(idata, beta, sigma_g, sigma_e, extra=None):
    """``idata`` with its posterior replaced by given draws of B, Σg, Σe (one chain)."""
    n = beta.shape[0]
    post = xr.Dataset(
        {
            "beta": (("chain", "draw", "covariate", "trait"), beta[None]),
            "Sigma_g": (("chain", "draw", "trait", "trait2"), sigma_g[None]),
            "Sigma_e": (("chain", "draw", "trait", "trait2"), sigma_e[None]),
            **(extra or {}),
        },
        coords={
            "chain": [0],
            "draw": np.arange(n),
            "covariate": idata["posterior"]["covariate"].values,
            "trait": TRAITS,
            "trait2": TRAITS,
        },
    )
    out = idata.copy()
    out["posterior"] = xr.DataTree(post)
    out.attrs["sampler"] = "test"
    return out


def _dense(cohort, idata, Y, new_ids, B, sg, se):
    """Dense mean and covariance of U_new and Y_new, new samples in the order of new_ids."""
    c = cohort
    where = {s: i for i, s in enumerate(c["ids"])}
    new = np.array([where[s] for s in new_ids])
    K = c["data"].K / idata.attrs["kinship_scale"]
    X_train = idata["constant_data"]["X"].values
    X_new = np.column_stack([np.ones(len(new)), c["data"].X[new]])
    g = mref.conditional_genetic_values(Y, X_train, K, c["train"], new, B, sg, se)
    y = mref.conditional_phenotypes(Y, X_train, X_new, K, c["train"], new, B, sg, se)
    return g, y


def test_predict_multitrait__conditional_means_equal_dense_and_align_by_id(cohort, fit):
    c = cohort
    rng = np.random.default_rng(0)
    n = 4
    beta = rng.normal(size=(n, 2, 2))
    sg, se = _covariances(rng, n), _covariances(rng, n)
    idata = _with_draws(fit, beta, sg, se)
    # K and X in a shuffled order: the new samples come out in K's order, matched by ID
    order = rng.permutation(N_TRAIN + N_NEW)
    K = c["K"].iloc[order, order]
    X = c["X"].iloc[rng.permutation(N_TRAIN + N_NEW)]
    pred = _predict(idata, K=K, X=X, random_seed=1)
    new_ids = [s for s in c["ids"][order] if s not in set(c["ids"][c["train"]])]
    assert pred.samples == new_ids
    g_mean = pred.draws["predictions"]["g_mean"].transpose("chain", "draw", "sample", "trait")
    Y = idata["observed_data"]["y"].values
    for i in range(n):
        (mean, _), _ = _dense(c, idata, Y, new_ids, beta[i], sg[i], se[i])
        np.testing.assert_allclose(g_mean.values[0, i], mean, rtol=1e-8, atol=1e-10)
    assert list(pred.summary.index.names) == ["sample", "trait"]
    assert list(pred.summary.index) == [(s, t) for s in new_ids for t in TRAITS]


def test_fluctuations__covariance_equals_dense_conditional(cohort, fit):
    """The pathwise draw is linear in its normals: its exact covariance is J Jᵀ."""
    c = cohort
    rng = np.random.default_rng(1)
    beta = rng.normal(size=(1, 2, 2))
    sg, se = _covariances(rng, 1), _covariances(rng, 1)
    idata = _with_draws(fit, beta, sg, se)
    new_ids, parts = multitrait_parts(idata, c["K"])
    r, T = parts.s.size, 2
    sizes = (r * T, r * T, N_NEW * T)
    k = sum(sizes)
    basis = np.eye(k)
    z_a = basis[:, : sizes[0]].reshape(k, r, T)
    z_e = basis[:, sizes[0] : sizes[0] + sizes[1]].reshape(k, r, T)
    z_n = basis[:, sizes[0] + sizes[1] :].reshape(k, N_NEW, T)
    many = np.repeat(sg, k, axis=0), np.repeat(se, k, axis=0)
    out = fluctuations(parts, *many, z_a, z_e, z_n)  # (k, n_new, T)
    J = np.stack([mref.vec(o) for o in out])  # row j: vec of the response to normal j
    Y = idata["observed_data"]["y"].values
    (_, cov), _ = _dense(c, idata, Y, new_ids, beta[0], sg[0], se[0])
    np.testing.assert_allclose(J.T @ J, cov, rtol=1e-8, atol=1e-10 * np.abs(cov).max())


def test_predict_multitrait__draws_match_dense_mean_and_covariance(cohort, fit):
    c = cohort
    n = 4000
    rng = np.random.default_rng(2)
    B = rng.normal(size=(2, 2))
    sg, se = _covariances(rng, 1), _covariances(rng, 1)
    idata = _with_draws(fit, np.repeat(B[None], n, 0), np.repeat(sg, n, 0), np.repeat(se, n, 0))
    pred = _predict(idata, K=c["K"], X=c["X"], random_seed=3)
    p = pred.draws["predictions"].to_dataset().transpose("chain", "draw", "sample", "trait")
    Y = idata["observed_data"]["y"].values
    g_dense, y_dense = _dense(c, idata, Y, pred.samples, B, sg[0], se[0])
    for name, (mean, cov) in (("g", g_dense), ("y", y_dense)):
        draws = np.stack([mref.vec(d) for d in p[name].values[0]])
        sd = np.sqrt(np.diag(cov) / n)
        assert np.all(np.abs(draws.mean(axis=0) - mref.vec(mean)) < 4.5 * sd)
        # Monte Carlo error of a covariance estimate: relative ~ sqrt(2/n) = 0.022
        assert np.linalg.norm(np.cov(draws.T) - cov) < 0.1 * np.linalg.norm(cov)
    summary = pred.summary
    np.testing.assert_allclose(
        summary["y_mean"].to_numpy(),
        (p["g_mean"].values[0] + c["X"].loc[pred.samples].assign(i=1)[["i", "age"]].values @ B)
        .mean(axis=0)
        .ravel(),
        rtol=1e-10,
    )
    assert (summary["y_hdi_lower"] < summary["y_mean"]).all()
    assert (summary["y_mean"] < summary["y_hdi_upper"]).all()


def test_predict_multitrait__missing_training_values_filled_per_draw(cohort, fit):
    c = cohort
    rng = np.random.default_rng(4)
    n = 3
    beta = rng.normal(size=(n, 2, 2))
    sg, se = _covariances(rng, n), _covariances(rng, n)
    holes = [(2, 0), (7, 1), (11, 0), (11, 1), (30, 1)]  # (training row, trait)
    Y_obs = fit["observed_data"]["y"].values.copy()
    for i, t in holes:
        Y_obs[i, t] = np.nan
    train_ids = [str(s) for s in fit["observed_data"]["sample"].values]
    labels = [f"{train_ids[i]}:{TRAITS[t]}" for i, t in holes]
    values = rng.normal(size=(n, len(holes)))
    order = [4, 0, 3, 1, 2]  # the posterior's order of the labels need not be the data's
    extra = {
        "Y_missing": xr.DataArray(
            values[None][:, :, order],
            dims=("chain", "draw", "missing"),
            coords={"missing": [labels[j] for j in order]},
        )
    }
    idata = _with_draws(fit, beta, sg, se, extra)
    idata["observed_data"] = xr.DataTree(
        fit["observed_data"].to_dataset().assign(y=(("sample", "trait"), Y_obs))
    )
    pred = _predict(idata, K=c["K"], X=c["X"], random_seed=1)
    g_mean = pred.draws["predictions"]["g_mean"].transpose("chain", "draw", "sample", "trait")
    for k in range(n):
        Y = Y_obs.copy()
        for j, (i, t) in enumerate(holes):
            Y[i, t] = values[k, j]
        (mean, _), _ = _dense(c, idata, Y, pred.samples, beta[k], sg[k], se[k])
        np.testing.assert_allclose(g_mean.values[0, k], mean, rtol=1e-8, atol=1e-10)
    # without its draws of the missing values the result cannot be conditioned on
    lacking = _with_draws(fit, beta, sg, se)
    lacking["observed_data"] = idata["observed_data"]
    with pytest.raises(InputError, match="no 'Y_missing' draws"):
        predict_multitrait(lacking, K=c["K"], X=c["X"])


def test_predict_multitrait__map_point_and_summary(cohort, fit):
    pred = _predict(fit, K=cohort["K"], X=cohort["X"])
    p = pred.draws["predictions"]
    np.testing.assert_array_equal(p["g"].values, p["g_mean"].values)
    s = pred.summary
    assert s.shape == (N_NEW * 2, 8)
    assert s["g_sd"].isna().all()
    B = fit["posterior"]["beta"].values[0, 0]
    X_new = np.column_stack([np.ones(N_NEW), cohort["data"].X[cohort["new"]]])
    g = p["g"].transpose("chain", "draw", "sample", "trait").values[0, 0]
    np.testing.assert_allclose(s["y_mean"].to_numpy(), (X_new @ B + g).ravel(), rtol=1e-12)


def test_predict_multitrait__snp_form_uses_v_and_training_standardization(cohort, fit):
    rng = np.random.default_rng(6)
    n, M = 3, 7
    snps = [f"rs{j}" for j in range(M)]
    v = rng.normal(size=(n, M, 2))
    idata = _with_draws(
        fit,
        rng.normal(size=(n, 2, 2)),
        _covariances(rng, n),
        _covariances(rng, n),
        {"v": (("chain", "draw", "snp", "trait"), v[None])},
    )
    idata["posterior"] = xr.DataTree(idata["posterior"].to_dataset().assign_coords(snp=snps))
    centre, scale = rng.uniform(0.2, 1.8, M), rng.uniform(0.5, 1.0, M)
    idata["constant_data"] = xr.DataTree(
        idata["constant_data"]
        .to_dataset()
        .assign(snp_center=("snp", centre), snp_scale=("snp", scale))
    )
    G = rng.integers(0, 3, size=(4, M)).astype(float)
    G[1, 3] = np.nan
    frame = pd.DataFrame(G[:, ::-1], index=["a", "b", "c", "d"], columns=snps[::-1])
    pred = _predict(idata, genotypes=frame, X=np.array([[0.1], [0.2], [0.3], [0.4]]))
    W = (np.where(np.isnan(G), centre, G) - centre) / scale
    g = pred.draws["predictions"]["g"].transpose("chain", "draw", "sample", "trait").values[0]
    np.testing.assert_allclose(g, np.einsum("nm,kmt->knt", W, v), rtol=1e-12)
    assert pred.samples == ["a", "b", "c", "d"]
    with pytest.raises(InputError, match=r"takes a SNP-form fit.*pass K="):
        predict_multitrait(fit, genotypes=frame, X=np.zeros((4, 1)))


def test_predict_multitrait__errors(cohort, fit):
    c = cohort
    K, X = c["K"], c["X"]
    with pytest.raises(InputError, match="exactly one of K="):
        predict_multitrait(fit)
    with pytest.raises(InputError, match="exactly one of K="):
        predict_multitrait(fit, K=K, genotypes=np.zeros((1, 1)))
    with pytest.raises(InputError, match=r"K lacks 1 of the 40 training samples.*covering"):
        predict_multitrait(fit, K=K.iloc[1:, 1:], X=X)
    with pytest.raises(InputError, match="K has no sample besides those of the fit"):
        t = c["train"]
        predict_multitrait(fit, K=K.iloc[t, t], X=X)
    with pytest.raises(InputError, match="not the kinship the model was fitted with"):
        predict_multitrait(fit, K=2 * K, X=X)
    with pytest.raises(InputError, match=r"X lacks the columns \['age'\]"):
        predict_multitrait(fit, K=K, X=X.rename(columns={"age": "sex"}))
    with pytest.raises(InputError, match=r"pass X for the 5 new samples"):
        predict_multitrait(fit, K=K)
    with pytest.raises(InputError, match=r"X must have shape \(5, 1\)"):
        predict_multitrait(fit, K=K, X=np.zeros((5, 3)))
    other = fit.copy()
    other.attrs["family"] = "gaussian"
    with pytest.raises(
        InputError, match="multi-trait LMM.*got family 'gaussian'.*bayeslmm.predict"
    ):
        predict_multitrait(other, K=K, X=X)
    with pytest.raises(InputError, match="hdi_prob"):
        predict_multitrait(fit, K=K, X=X, hdi_prob=1.5)


def test_predict_multitrait__psd_tolerance_is_predicts():
    assert PSD_TOLERANCE == prediction.PSD_TOLERANCE


def test_predict__dispatches_a_multitrait_result(cohort, fit):
    pred = bl.predict(fit, K=cohort["K"], X=cohort["X"])
    assert isinstance(pred, bl.Prediction)
    pd.testing.assert_frame_equal(pred.summary, _predict(fit, K=cohort["K"], X=cohort["X"]).summary)


def test_predict_multitrait__latent_missing_fit_conditions_on_its_y_missing(cohort):
    """A real missing='latent' fit: Y filled with the fit's Y_missing, then the dense formula."""
    c = cohort
    t = c["train"]
    Y = c["Y"].copy()
    Y.iloc[[3, 8], 0] = np.nan
    Y.iloc[[12, 21], 1] = np.nan
    fit = bl.map_estimate(bl.kinship_model(Y, c["K"].iloc[t, t], c["X"].iloc[t]), random_seed=2)
    assert fit["posterior"]["Y_missing"].sizes["missing"] == 4
    pred = _predict(fit, K=c["K"], X=c["X"])
    post = fit["posterior"]
    filled = fit["observed_data"]["y"].to_pandas()
    for label, value in zip(post["missing"].values, post["Y_missing"].values[0, 0], strict=True):
        sample, trait = str(label).rsplit(":", 1)
        filled.loc[sample, trait] = value
    assert not filled.isna().any().any()
    B, sg, se = (post[name].values[0, 0] for name in ("beta", "Sigma_g", "Sigma_e"))
    (mean, _), _ = _dense(c, fit, filled.to_numpy(), pred.samples, B, sg, se)
    g_mean = pred.draws["predictions"]["g_mean"].transpose("chain", "draw", "sample", "trait")
    np.testing.assert_allclose(g_mean.values[0, 0], mean, rtol=1e-8, atol=1e-10)


@pytest.mark.slow  # three MAP fits of the latent-missing model (~45 s of CPU)
def test_cross_validate__several_traits_by_group(cohort):
    c = cohort
    ids = c["ids"]
    Y = pd.DataFrame(
        np.vstack([c["Y"].to_numpy(), np.random.default_rng(7).normal(size=(N_NEW, 2))]),
        index=ids,
        columns=TRAITS,
    )
    Y.iloc[4, 1] = np.nan  # scored on its observed trait only; the fits keep it (latent)
    groups = pd.Series([f"fam{i // 3}" for i in range(len(ids))], index=ids)
    cv = bl.cross_validate(Y, K=c["K"], X=c["X"], groups=groups, n_folds=2, random_seed=11)
    p = cv.predictions
    assert list(p.index.names) == ["sample", "trait"]
    assert len(p) == 2 * len(ids) - 1 and (ids[4], "weight") not in p.index
    assert p.groupby("group")["fold"].nunique().max() == 1  # families stay in one fold
    for trait in TRAITS:
        part = p.xs(trait, level="trait")
        for fold in ("0", "1", "all"):
            rows = part if fold == "all" else part[part["fold"] == int(fold)]
            row = cv.metrics.loc[(fold, trait)]
            assert row["n"] == len(rows)
            np.testing.assert_allclose(row["r"], np.corrcoef(rows["y"], rows["y_pred"])[0, 1])
            np.testing.assert_allclose(row["mse"], np.mean((rows["y"] - rows["y_pred"]) ** 2))
    # fold 0 again by hand: the fit without it, then predict_multitrait
    test = [s for s in ids if p.loc[s, "fold"].iloc[0] == 0]
    train = [s for s in ids if s not in set(test)]
    seeds = np.random.SeedSequence(11).generate_state(4)
    fit = bl.map_estimate(
        bl.kinship_model(Y.loc[train], c["K"].loc[train, train], c["X"].loc[train]),
        random_seed=int(seeds[0]),
    )
    both = train + test
    _, summary = predict_multitrait(fit, K=c["K"].loc[both, both], X=c["X"].loc[test])
    expected = summary["y_mean"].reindex(p[p["fold"] == 0].index)
    np.testing.assert_allclose(p.loc[expected.index, "y_pred"], expected, rtol=1e-10)
    with pytest.raises(InputError, match="several traits takes K="):
        bl.cross_validate(Y, genotypes=np.zeros((len(ids), 3)), n_folds=2)
    with pytest.raises(InputError, match="several traits takes family='gaussian'"):
        bl.cross_validate(Y, K=c["K"], family="probit", n_folds=2)


def test_predict_multitrait__snp_fit_with_v_marginalized_is_kinship_form_with_ww(cohort):
    """snp_model(Y, W, X): genotypes of training and new samples give K = WW'/M (training
    centre and scale), the model's K; new samples only: an InputError with the way out."""
    c = cohort
    ids, t = c["ids"], c["train"]
    G = pd.DataFrame(c["data"].G, index=ids, columns=c["data"].snps["snp"].astype(str))
    G.iloc[N_TRAIN + 1, 2] = np.nan  # a missing call of a new sample: the training mean
    fit = bl.map_estimate(bl.snp_model(c["Y"], G.iloc[t], c["X"].iloc[t]), random_seed=3)
    order = np.random.default_rng(8).permutation(len(ids))
    pred = _predict(fit, genotypes=G.iloc[order], X=c["X"])
    assert pred.draws.attrs["prediction"] == "snp"
    const = fit["constant_data"]
    values = np.where(np.isnan(G.to_numpy()), const["snp_mean"].values, G.to_numpy())
    W = (values - const["snp_center"].values) / const["snp_scale"].values
    K = W @ W.T / W.shape[1] / fit.attrs["kinship_scale"]
    where = {s: i for i, s in enumerate(ids)}
    new = np.array([where[s] for s in pred.samples])
    assert sorted(pred.samples) == sorted(ids[c["new"]])
    post = fit["posterior"]
    B, sg, se = (post[name].values[0, 0] for name in ("beta", "Sigma_g", "Sigma_e"))
    mean, _ = mref.conditional_genetic_values(
        fit["observed_data"]["y"].values, const["X"].values, K, t, new, B, sg, se
    )
    g_mean = pred.draws["predictions"]["g_mean"].transpose("chain", "draw", "sample", "trait")
    np.testing.assert_allclose(g_mean.values[0, 0], mean, rtol=1e-8, atol=1e-10)
    with pytest.raises(InputError, match=r"genotypes lack 40 of the 40 training samples.*or K="):
        predict_multitrait(fit, genotypes=G.iloc[c["new"]], X=c["X"])


@pytest.mark.slow
def test_predict_multitrait__nuts_predicts_simulated_genetic_values():
    """NUTS on 150 samples with K of 60 SNPs; the 50 new samples' true genetic values and
    phenotypes fall in the 95% HDIs at about the nominal rate, and g correlates with them."""
    rng = np.random.default_rng(11)
    n, n_train = 200, 150
    G = rng.binomial(2, 0.3, size=(n, 60)).astype(float)
    G = (G - G.mean(0)) / G.std(0)
    K = G @ G.T / G.shape[1]
    sg = np.array([[0.6, 0.36], [0.36, 0.6]])
    se = np.array([[0.4, -0.1], [-0.1, 0.4]])
    w, V = np.linalg.eigh(K)
    U = (V * np.sqrt(np.clip(w, 0, None))) @ rng.normal(size=(n, 2)) @ np.linalg.cholesky(sg).T
    E = rng.normal(size=(n, 2)) @ np.linalg.cholesky(se).T
    ids = [f"s{i}" for i in range(n)]
    x = rng.normal(size=n)
    Y = pd.DataFrame(np.array([1.0, 5.0]) + np.outer(x, [0.5, -1.0]) + U + E, ids, TRAITS)
    X = pd.DataFrame({"x": x}, index=ids)
    Kd = pd.DataFrame(K, ids, ids)
    train = ids[:n_train]
    model = bl.kinship_model(Y.loc[train], Kd.loc[train, train], X.loc[train])
    idata = bl.sample(model, draws=500, tune=500, chains=4, random_seed=4, progressbar=False)
    pred = _predict(idata, K=Kd, X=X, random_seed=5)
    new = ids[n_train:]
    assert pred.samples == new
    s = pred.summary
    truth_g = pd.DataFrame(U, ids, TRAITS).loc[new].stack()
    truth_y = Y.loc[new].stack()
    inside_g = (s["g_hdi_lower"] <= truth_g) & (truth_g <= s["g_hdi_upper"])
    inside_y = (s["y_hdi_lower"] <= truth_y) & (truth_y <= s["y_hdi_upper"])
    assert inside_g.mean() >= 0.8 and inside_y.mean() >= 0.8
    for trait in TRAITS:
        r = np.corrcoef(s["g_mean"].xs(trait, level="trait"), truth_g.xs(trait, level=1))[0, 1]
        assert r > 0.4


def test_predict_multitrait__kinship_not_psd_warns_and_clips(cohort, fit):
    c = cohort
    rng = np.random.default_rng(9)
    idata = _with_draws(fit, rng.normal(size=(2, 2, 2)), _covariances(rng, 2), _covariances(rng, 2))
    K = c["K"].copy()
    new = c["new"]
    K.iloc[new, new] = K.iloc[new, new].to_numpy() - 2.0 * np.eye(N_NEW)  # S has eigenvalues < 0
    with pytest.warns(bl.errors.KinshipWarning, match="not positive semidefinite"):
        pred = _predict(idata, K=K, X=c["X"], random_seed=1)
    assert np.isfinite(pred.draws["predictions"]["g"].values).all()
