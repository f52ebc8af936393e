"""The multi-trait LMM (family "multitrait"): dense likelihood, structure, errors, recovery."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.errors import InputError
from bayeslmm.families.base import info_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.mv_lmm.reference import dense_loglik  # noqa: E402


def _data(n=40, rank=None, seed=0):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(n, rank or 2 * n))
    K = G @ G.T / G.shape[1]
    K /= np.mean(np.diag(K))
    ids = [f"s{i}" for i in range(n)]
    x = rng.normal(size=n)
    Y = pd.DataFrame(
        {"a": 3.0 + 2 * x + rng.normal(size=n), "b": 100 + 50 * rng.normal(size=n)}, index=ids
    )
    X = pd.DataFrame({"x": x}, index=ids)
    return Y, pd.DataFrame(K, index=ids, columns=ids), X


@pytest.mark.parametrize("rank", [None, 15])
def test_kinship_model__logp_equals_dense_mvnormal(rank):
    Y, K, X = _data(rank=rank)
    model = bl.kinship_model(Y, K, X)
    info = info_of(model)
    assert info.family == "multitrait"
    outs = [sum(model.potentials), model["beta"], model["Sigma_g"], model["Sigma_e"]]
    fn = model.compile_fn(model.replace_rvs_by_values(outs), point_fn=True)
    rng = np.random.default_rng(1)
    start = model.initial_point()
    Xd = info.data.X
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in start.items()}
        got, B, sg, se = fn(point)
        want = dense_loglik(info.data.y, Xd, info.spectral.matrix(), B, sg, se)
        assert np.isclose(got, want, rtol=1e-9, atol=1e-7)


def test_kinship_model__gradient_finite_where_covariances_are_proportional():
    """At the initial point (rg = re = I, h² = ½) Σg ∝ Σe: an eigh-based density has NaN there."""
    Y, K, X = _data(rank=15)
    model = bl.kinship_model(Y, K, X)
    point = model.initial_point()
    grad = model.compile_dlogp()(point)
    assert np.isfinite(grad).all()
    logp = model.compile_logp()
    flat = np.concatenate([np.ravel(v) for v in point.values()])
    h = 1e-6
    for j in range(len(flat)):
        step = flat.copy()
        step[j] += h
        up, at = {}, 0
        for k, v in point.items():
            up[k] = step[at : at + np.size(v)].reshape(np.shape(v))
            at += np.size(v)
        assert np.isclose((logp(up) - logp(point)) / h, grad[j], rtol=1e-3, atol=1e-3)


def test_kinship_model__structure():
    Y, K, X = _data()
    model = bl.kinship_model(Y, K, X)
    assert [rv.name for rv in model.free_RVs] == [
        "beta_std",
        "h2",
        "sigma_p",
        "rg_cholesky",
        "re_cholesky",
    ]
    assert model.coords["trait"] == ("a", "b")
    assert model.coords["covariate"] == tuple(info_of(model).data.covariates)
    assert model.named_vars_to_dims["Sigma_g"] == ("trait", "trait2")
    assert model.named_vars_to_dims["beta"] == ("covariate", "trait")
    assert model.named_vars_to_dims["h2"] == ("trait",)
    assert model.named_vars_to_dims["rg"] == ("trait", "trait2")
    assert model.eval_rv_shapes()["rg_cholesky"] == (2, 2)


def test_kinship_model__one_column_is_univariate():
    Y, K, X = _data()
    model = bl.kinship_model(Y["a"], K, X)
    assert info_of(model).family == "gaussian"


def test_kinship_model__errors():
    Y, K, X = _data()
    with pytest.raises(InputError, match="several variance components"):
        bl.kinship_model(Y, [K, K], X)
    with pytest.raises(InputError, match="not numeric"):
        bl.kinship_model(Y.assign(b=["x"] * len(Y)), K, X)
    gram = bl.gram if hasattr(bl, "gram") else None
    if gram is not None:
        from bayeslmm.relatedness.gram import Gram

        with pytest.raises(InputError, match="not a Gram"):
            bl.kinship_model(Y, Gram.__new__(Gram), X)
    with pytest.raises(InputError, match="missing='drop'"):
        bl.kinship_model(Y.assign(a=[np.nan] + list(Y["a"].iloc[1:])), K, X)
    with pytest.raises(InputError, match="missing must be"):
        bl.kinship_model(Y, K, X, missing="mean")


def test_kinship_model__missing_drop():
    Y, K, X = _data()
    Y = Y.assign(a=[np.nan] + list(Y["a"].iloc[1:]))
    with pytest.warns(bl.DataWarning):
        model = bl.kinship_model(Y, K, X, missing="drop")
    assert info_of(model).data.n == len(Y) - 1


def test_loo_terms__equal_dense_conditionals():
    from scipy import stats

    from bayeslmm.families.multitrait import loo_terms
    from models.mv_lmm.reference import covariance, vec

    Y, K, X = _data(n=12, rank=6)
    info = info_of(bl.kinship_model(Y, K, X))
    y, Xd, sp = info.data.y, info.data.X, info.spectral
    B = np.array([[1.0, 90.0], [2.0, 1.0]])
    sg, se = np.array([[1.0, 0.5], [0.5, 2.0]]), np.array([[1.5, -0.3], [-0.3, 1.0]])
    V = covariance(sp.matrix(), sg, se)
    r = vec(y - Xd @ B)
    n = len(y)
    want = []
    for i in range(n):
        idx = np.array([i, n + i])
        rest = np.setdiff1d(np.arange(2 * n), idx)
        W = V[np.ix_(idx, rest)] @ np.linalg.inv(V[np.ix_(rest, rest)])
        mean = W @ r[rest]
        cov = V[np.ix_(idx, idx)] - W @ V[np.ix_(rest, idx)]
        want.append(stats.multivariate_normal.logpdf(r[idx], mean, cov))
    assert np.allclose(loo_terms(sp, y, Xd, B, sg, se), want)


@pytest.mark.slow
def test_sample__recovers_genetic_correlation():
    rng = np.random.default_rng(7)
    n = 300
    G = rng.binomial(2, 0.3, size=(n, 600)).astype(float)
    G = (G - G.mean(0)) / G.std(0)
    K = G @ G.T / G.shape[1]
    sg = np.array([[0.6, 0.36], [0.36, 0.6]])  # rg = 0.6
    se = np.array([[0.4, -0.1], [-0.1, 0.4]])  # re = -0.25
    w, V = np.linalg.eigh(K)
    root = V * np.sqrt(np.clip(w, 0, None))
    U = root @ rng.normal(size=(n, 2)) @ np.linalg.cholesky(sg).T
    E = rng.normal(size=(n, 2)) @ np.linalg.cholesky(se).T
    ids = [f"s{i}" for i in range(n)]
    x = rng.normal(size=n)
    Y = pd.DataFrame(np.array([1.0, 5.0]) + np.outer(x, [0.5, -1.0]) + U + E, ids, ["a", "b"])
    X = pd.DataFrame({"x": x}, index=ids)
    Kd = pd.DataFrame(K, ids, ids)
    idata = bl.sample(bl.kinship_model(Y, Kd, X), draws=1000, tune=1000, chains=4, random_seed=3)
    post = idata["posterior"]
    from arviz_stats import rhat

    off = {"trait": "a", "trait2": "b"}  # the diagonals of rg and re are constant (1)
    checks = [post["h2"], post["Sigma_g"], post["Sigma_e"], post["rg"].sel(off)]
    for var in [*checks, post["re"].sel(off)]:
        assert float(np.max(rhat(var).values)) <= 1.01, var.name
    rg = post["rg"].sel(trait="a", trait2="b").values.ravel()
    low, high = np.quantile(rg, [0.025, 0.975])
    assert low <= 0.6 <= high
    fit = bl.reml(Y, Kd, X)
    assert abs(rg.mean() - np.asarray(fit.rg)[0, 1]) < 0.1
    assert idata["log_likelihood"]["y"].shape == (4, 1000, n)
    assert idata["observed_data"]["y"].dims == ("sample", "trait")
