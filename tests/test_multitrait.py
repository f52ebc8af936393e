"""The multi-trait LMM (family "multitrait"): dense likelihood, structure, errors, recovery."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.errors import InputError
from bayeslmm.families.base import info_of
from tests.nuts import sample_counted

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


#: A prior on the standardized B under which the model samples B (not Normal(0, σ) or Flat).
SAMPLED_B = {"beta_std": bl.Prior("StudentT", nu=30, mu=0.0, sigma=10.0)}


def _b_prior(info, sigma=10.0):
    """Mean and covariance of vec(B) in the user's units under beta_std ~ N(0, σ²) (B = b +
    A·B̃·C, C the traits' scales)."""
    scale, offset, transform = info.extra["standardization"]
    return offset, np.kron(np.diag(scale**2), sigma**2 * transform @ transform.T)


@pytest.mark.parametrize("rank", [None, 15])
def test_kinship_model__marginal_logp_equals_dense_integral(rank):
    """Default priors: B is integrated out; the model's density is the dense Gaussian of
    vec(Y) with B's prior covariance added, for T = 2 (closed-form kernel) and T = 3."""
    from models.mv_lmm.reference import dense_marginal_loglik

    Y, K, X = _data(rank=rank)
    three = Y.assign(c=Y["a"] - Y["b"] / 50 + np.random.default_rng(3).normal(size=len(Y)))
    for data in (Y, three):
        model = bl.kinship_model(data, K, X)
        info = info_of(model)
        assert "beta_std" not in [rv.name for rv in model.free_RVs]
        assert info.extra["marginal_b"][0] == pytest.approx(0.01)  # 1/σ², σ = 10
        outs = [sum(model.potentials), model["Sigma_g"], model["Sigma_e"]]
        fn = model.compile_fn(model.replace_rvs_by_values(outs), point_fn=True)
        mean, cov = _b_prior(info)
        for point in _random_points(model, 3):
            got, sg, se = fn(point)
            K_dense = info.spectral.matrix()
            want = dense_marginal_loglik(info.data.y, info.data.X, K_dense, mean, cov, sg, se)
            assert np.isclose(got, want, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("rank", [None, 15])
def test_kinship_model__logp_equals_dense_mvnormal(rank):
    """A prior on B other than Normal(0, σ) or Flat: B is sampled, the density is the joint."""
    Y, K, X = _data(rank=rank)
    model = bl.kinship_model(Y, K, X, priors=SAMPLED_B)
    info = info_of(model)
    assert info.family == "multitrait" and "marginal_b" not in info.extra
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
    for priors in (None, SAMPLED_B):  # B integrated out, B sampled
        _check_gradient_at_initial_point(bl.kinship_model(Y, K, X, priors=priors))


def _check_gradient_at_initial_point(model):
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
    assert [rv.name for rv in model.free_RVs] == ["h2", "sigma_p", "rg_unit", "re_unit"]
    sampled = bl.kinship_model(Y, K, X, priors=SAMPLED_B)
    assert [rv.name for rv in sampled.free_RVs] == [
        "beta_std",
        "h2",
        "sigma_p",
        "rg_unit",
        "re_unit",
    ]
    assert sampled.named_vars_to_dims["beta"] == ("covariate", "trait")
    assert model.coords["trait"] == ("a", "b")
    assert model.coords["covariate"] == tuple(info_of(model).data.covariates)
    assert model.named_vars_to_dims["Sigma_g"] == ("trait", "trait2")
    assert model.named_vars_to_dims["h2"] == ("trait",)
    assert model.named_vars_to_dims["rg"] == ("trait", "trait2")
    assert model.named_vars_to_dims["rg"] == ("trait", "trait2")
    three = bl.kinship_model(Y.assign(c=Y["a"] - Y["b"] / 50 + np.arange(len(Y))), K, X)
    assert [rv.name for rv in three.free_RVs][2:] == ["rg_cholesky", "re_cholesky"]
    assert three.eval_rv_shapes()["rg_cholesky"] == (3, 3)


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


def _draws(b, d, T=2, seed=3):
    """b random (B, Σg, Σe) of d covariates and T traits, Σg and Σe positive definite."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(b, d, T)) * 3
    A = rng.normal(size=(b, T, T))
    sg = A @ np.swapaxes(A, 1, 2) * np.exp(rng.normal(size=(b, 1, 1)))
    A = rng.normal(size=(b, T, T))
    return B, sg, A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(T)


@pytest.mark.parametrize("rank", [None, 6])
def test_u_and_loo_complete__equal_dense_conditionals(rank):
    from scipy import stats

    from bayeslmm.families.multitrait import decorrelate, u_and_loo_complete
    from models.mv_lmm.reference import covariance, vec

    Y, K, X = _data(n=12, rank=rank)
    info = info_of(bl.kinship_model(Y, K, X))
    y, Xd, sp = info.data.y, info.data.X, info.spectral
    B, sg, se = _draws(3, Xd.shape[1])
    lam, W = decorrelate(sg, se)
    assert np.allclose(np.swapaxes(W, 1, 2) @ se @ W, np.eye(2), atol=1e-10)
    assert np.allclose(np.swapaxes(W, 1, 2) @ sg @ W, lam[:, :, None] * np.eye(2), atol=1e-10)
    mean, loglik = u_and_loo_complete(sp, y, Xd, B, sg, se, None)
    n = len(y)
    for k in range(3):
        V = covariance(sp.matrix(), sg[k], se[k])
        r = vec(y - Xd @ B[k])
        G = np.kron(sg[k], sp.matrix())
        want_mean = G @ np.linalg.solve(V, r)
        assert np.allclose(vec(mean[k]), want_mean, rtol=1e-8, atol=1e-8)
        for i in range(n):
            idx = np.array([i, n + i])
            rest = np.setdiff1d(np.arange(2 * n), idx)
            A = V[np.ix_(idx, rest)] @ np.linalg.inv(V[np.ix_(rest, rest)])
            cov = V[np.ix_(idx, idx)] - A @ V[np.ix_(rest, idx)]
            want = stats.multivariate_normal.logpdf(r[idx], A @ r[rest], cov)
            assert np.isclose(loglik[k, i], want, rtol=1e-8, atol=1e-8)


def test_u_and_loo_complete__tables_equal_block_formulas():
    import bayeslmm.inference.effects as effects
    from bayeslmm.families.multitrait import (
        loo_terms_block,
        u_and_loo_complete,
        u_conditional_block,
    )

    Y, K, X = _data(n=30)
    info = info_of(bl.kinship_model(Y, K, X))
    y, Xd, sp = info.data.y, info.data.X, info.spectral
    B, _, _ = _draws(2000, Xd.shape[1])
    scale = np.exp(0.3 * np.random.default_rng(4).normal(size=(2, len(B), 1, 1)))
    sg = np.array([[1.0, 0.5], [0.5, 2.0]]) * scale[0]
    se = np.array([[1.5, -0.3], [-0.3, 1.0]]) * scale[1]
    calls = []
    tables = effects._tables
    effects._tables = lambda *a: calls.append(1) or tables(*a)
    try:
        u, loglik = u_and_loo_complete(sp, y, Xd, B, sg, se, np.random.default_rng(1))
    finally:
        effects._tables = tables
    assert calls  # the interpolation path, not the exact fallback
    want = loo_terms_block(sp, np.broadcast_to(y, (len(B), *y.shape)), Xd, B, sg, se)
    assert np.allclose(loglik, want, rtol=1e-10, atol=1e-8)
    # the draws of u: mean and covariance of U | · over many draws of one θ
    k = np.zeros(len(B), dtype=int)
    u, _ = u_and_loo_complete(sp, y, Xd, B[k], sg[k], se[k], np.random.default_rng(2))
    mean, root = u_conditional_block(sp, (y - Xd @ B[0])[None], sg[:1], se[:1])
    assert np.abs(u.mean(0) - mean[0]).max() < 5 * np.sqrt(np.var(u, 0).max() / len(B))
    C = np.einsum("ik,jk,kab->iajb", sp.U, sp.U, root[:, 0] @ np.swapaxes(root[:, 0], 1, 2))
    flat = u.reshape(len(B), -1)
    emp = np.cov(flat.T)
    assert np.abs(emp - C.reshape(emp.shape)).max() < 0.1 * np.abs(C).max()


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
    # divergences counted, not fatal one by one (tests/nuts.py): on these data (N = 300) six
    # sampler seeds gave 0-4 of 4,000 at target_accept 0.8 or 0.9, diagonal or low-rank mass
    # matrix (2026-12-03); one made a CI run fail when a single one was an error
    idata = sample_counted(
        bl.kinship_model(Y, Kd, X),
        draws=1000,
        tune=1000,
        chains=4,
        random_seed=3,
        target_accept=0.9,
    )
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


def _with_missing(Y, fraction=0.2, seed=5):
    """Y with about ``fraction`` of each trait missing (never both traits of one sample)."""
    rng = np.random.default_rng(seed)
    Y = Y.copy()
    n = len(Y)
    rows = rng.permutation(n)[: int(2 * fraction * n)]
    half = len(rows) // 2
    Y.iloc[rows[:half], 0] = np.nan
    Y.iloc[rows[half:], 1] = np.nan
    return Y


def _completed(info, y_missing):
    from bayeslmm.families.multitrait import _completed  # noqa: F401  (the layout it fills)

    Y = info.data.y.copy()
    rows, traits, _ = info.extra["missing_entries"]
    Y[rows, traits] = y_missing
    return Y


def _random_points(model, k, seed=1, scale=0.5):
    rng = np.random.default_rng(seed)
    start = model.initial_point()
    return [
        {key: v + rng.normal(scale=scale, size=np.shape(v)) for key, v in start.items()}
        for _ in range(k)
    ]


@pytest.mark.parametrize("rank", [None, 15])
def test_kinship_model__latent_missing_marginal_logp_equals_dense_completed(rank):
    """B integrated out (default priors): the density of the completed traits, B's Gaussian
    integral included (the rows hold the missing values: Y_rows + G·Z)."""
    from models.mv_lmm.reference import dense_marginal_loglik

    Y, K, X = _data(rank=rank)
    model = bl.kinship_model(_with_missing(Y), K, X)
    info = info_of(model)
    assert "marginal_b" in info.extra and "beta_std" not in model.named_vars
    outs = [sum(model.potentials), model["Sigma_g"], model["Sigma_e"], model["Y_missing"]]
    fn = model.compile_fn(model.replace_rvs_by_values(outs), point_fn=True)
    mean, cov = _b_prior(info)
    K_dense = info.spectral.matrix()
    for point in _random_points(model, 3):
        got, sg, se, ym = fn(point)
        want = dense_marginal_loglik(_completed(info, ym), info.data.X, K_dense, mean, cov, sg, se)
        # (the dense reference adds B's prior covariance, ~1e5 in trait b's units, to V)
        assert np.isclose(got, want, rtol=1e-8, atol=1e-7)
    _check_gradient_at_initial_point(model)


@pytest.mark.parametrize("rank", [None, 15])
def test_kinship_model__latent_missing_logp_equals_dense_completed(rank):
    Y, K, X = _data(rank=rank)
    Y = _with_missing(Y)
    Y.iloc[3] = np.nan  # no trait at all: dropped
    with pytest.warns(bl.DataWarning, match="dropped 1: 1 missing value of every trait"):
        model = bl.kinship_model(Y, K, X, priors=SAMPLED_B)
    info = info_of(model)
    assert info.data.n == len(Y) - 1 and np.isnan(info.data.y).sum() == 16
    labels = list(model.coords["missing"])
    rows, traits, _ = info.extra["missing_entries"]
    assert labels == [
        f"{info.data.samples[i]}:{'ab'[t]}" for i, t in zip(rows, traits, strict=True)
    ]
    names = ["beta", "Sigma_g", "Sigma_e", "Y_missing"]
    outs = [sum(model.potentials), *(model[n] for n in names)]
    fn = model.compile_fn(model.replace_rvs_by_values(outs), point_fn=True)
    for point in _random_points(model, 3):
        got, B, sg, se, ym = fn(point)
        want = dense_loglik(_completed(info, ym), info.data.X, info.spectral.matrix(), B, sg, se)
        assert np.isclose(got, want, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("rank", [None, 15])
@pytest.mark.parametrize("form", ["marginal", "sampled"])
def test_kinship_model__latent_missing_conditional_is_dense_gaussian(rank, form):
    """For fixed θ (and B, where it is sampled) the density is Gaussian in the missing values,
    with the dense conditional of the missing entries given the observed ones as mean and
    covariance (so the integral of the completed-data density over them is the observed-data
    density); with B integrated out, the dense covariance includes B's prior."""
    import pytensor
    import pytensor.tensor as pt

    from models.mv_lmm.reference import covariance, design, vec

    Y, K, X = _data(n=30, rank=rank)
    model = bl.kinship_model(
        _with_missing(Y), K, X, priors=SAMPLED_B if form == "sampled" else None
    )
    info = info_of(model)
    z = model.rvs_to_values[model["Y_missing_std"]]
    outs = [pt.sum(model.potentials), model["Sigma_g"], model["Sigma_e"], model["Y_missing"]]
    if form == "sampled":
        outs.append(model["beta"])
    logp, sg, se, ym, *B = model.replace_rvs_by_values(outs)
    grad = pytensor.grad(logp, z)
    fn = model.compile_fn([grad, sg, se, ym, *B], point_fn=True)
    point = _random_points(model, 1, seed=4)[0]
    m = point["Y_missing_std"].size
    point["Y_missing_std"] = np.zeros(m)
    g, sg, se, at_zero, *B = fn(point)
    H = np.empty((m, m))  # the gradient is linear in z: its differences are the Hessian
    for k in range(m):
        point["Y_missing_std"] = np.eye(m)[k]
        H[:, k] = fn(point)[0] - g
    point["Y_missing_std"] = np.ones(m)
    c = fn(point)[3] - at_zero  # Y_missing = at_zero + c·ξ (c: units of ξ in Y's)
    rows, traits, _ = info.extra["missing_entries"]
    mean = at_zero + c * np.linalg.solve(-H, g)
    cov = c[:, None] * np.linalg.inv(-H) * c[None, :]
    n = info.data.n
    V = covariance(info.spectral.matrix(), sg, se)
    if form == "sampled":
        mu = vec(info.data.X @ B[0])
    else:  # B ~ N(B_mean, B_cov) integrated out: its prior in V
        B_mean, B_cov = _b_prior(info)
        Xbar = design(info.data.X, 2)
        mu = Xbar @ vec(B_mean)
        V = V + Xbar @ B_cov @ Xbar.T
    y = vec(info.data.y)
    miss = traits * n + rows  # vec stacks the traits' columns
    obs = np.flatnonzero(~np.isnan(y))
    W = V[np.ix_(miss, obs)] @ np.linalg.inv(V[np.ix_(obs, obs)])
    want_mean = mu[miss] + W @ (y[obs] - mu[obs])
    want_cov = V[np.ix_(miss, miss)] - W @ V[np.ix_(obs, miss)]
    assert np.allclose(mean, want_mean, rtol=1e-8, atol=1e-8 * np.abs(want_mean).max())
    assert np.allclose(cov, want_cov, rtol=1e-7, atol=1e-9 * np.abs(want_cov).max())


@pytest.mark.parametrize("rank", [None, 6])
def test_u_conditional__equals_dense_conditional(rank):
    from bayeslmm.families.multitrait import u_conditional
    from models.mv_lmm.reference import covariance, vec

    Y, K, X = _data(n=12, rank=rank)
    info = info_of(bl.kinship_model(Y, K, X))
    sp = info.spectral
    Kn = sp.matrix()
    R = info.data.y - info.data.X @ np.array([[1.0, 90.0], [2.0, 1.0]])
    sg, se = np.array([[1.0, 0.5], [0.5, 2.0]]), np.array([[1.5, -0.3], [-0.3, 1.0]])
    mean, root = u_conditional(sp, R, sg, se)
    V = covariance(Kn, sg, se)
    G = np.kron(sg, Kn)
    want_mean = G @ np.linalg.solve(V, vec(R))
    want_cov = G - G @ np.linalg.solve(V, G)
    assert np.allclose(vec(mean), want_mean, rtol=1e-8, atol=1e-8 * np.abs(want_mean).max())
    # vec(U) = (I ⊗ U1) vec(A), the rows a_k independent with covariance root_k root_k'
    C = root @ np.swapaxes(root, 1, 2)
    U1 = sp.U
    cov = np.einsum("ik,jk,kab->aibj", U1, U1, C).reshape(2 * len(R), 2 * len(R))
    assert np.allclose(cov, want_cov, atol=1e-8 * np.abs(want_cov).max())


def _posterior(model, k=4, seed=2):
    """k random points of a model as a one-chain posterior Dataset (free + Deterministics)."""
    import xarray as xr

    names = [v.name for v in model.free_RVs + model.deterministics]
    fn = model.compile_fn(model.replace_rvs_by_values([model[n] for n in names]), point_fn=True)
    draws = [fn(p) for p in _random_points(model, k, seed=seed, scale=0.3)]
    data = {}
    for j, name in enumerate(names):
        dims = model.named_vars_to_dims.get(name, ())
        value = np.stack([d[j] for d in draws])[None]
        coords = {d: list(model.coords[d]) for d in dims}
        data[name] = xr.DataArray(value, dims=("chain", "draw", *dims), coords=coords)
    return xr.Dataset(data, coords={"chain": [0], "draw": np.arange(k)})


def test_sample_groups__u_y_missing_and_loo_of_observed_traits():
    from scipy import stats

    from bayeslmm.families.multitrait import u_conditional
    from bayeslmm.inference.sampling import _add_groups
    from models.mv_lmm.reference import covariance, vec

    Y, K, X = _data(n=14, rank=8)
    model = bl.kinship_model(_with_missing(Y), K, X)
    info = info_of(model)
    post = _posterior(model)
    idata = _add_groups(post, None, info, np.random.default_rng(0), True)
    u = idata["posterior"]["u"]
    assert u.dims == ("chain", "draw", "sample", "trait") and u.shape == (1, 4, 14, 2)
    assert list(idata["posterior"]["Y_missing"].dims) == ["chain", "draw", "missing"]
    y_obs = idata["observed_data"]["y"]
    assert np.isnan(y_obs.values).sum() == len(model.coords["missing"])  # Y with NaNs back
    at_means = _add_groups(post, None, info, None, True)["posterior"]
    means = at_means["u"].values[0]
    n = info.data.n
    for k in range(4):
        # B was integrated out: each result holds its own B (a draw; the conditional mean)
        B, B_mean = idata["posterior"]["beta"].values[0, k], at_means["beta"].values[0, k]
        sg, se = post["Sigma_g"].values[0, k], post["Sigma_e"].values[0, k]
        Yk = _completed(info, post["Y_missing"].values[0, k])
        mean, _ = u_conditional(info.spectral, Yk - info.data.X @ B_mean, sg, se)
        assert np.allclose(means[k], mean, rtol=1e-12, atol=1e-12)
        V = covariance(info.spectral.matrix(), sg, se)
        r = vec(Yk - info.data.X @ B)
        for i in range(n):
            idx = np.array([i, n + i])[~np.isnan(info.data.y[i])]
            rest = np.setdiff1d(np.arange(2 * n), [i, n + i])
            W = V[np.ix_(idx, rest)] @ np.linalg.inv(V[np.ix_(rest, rest)])
            cov = V[np.ix_(idx, idx)] - W @ V[np.ix_(rest, idx)]
            want = stats.multivariate_normal.logpdf(r[idx], W @ r[rest], cov)
            got = idata["log_likelihood"]["y"].values[0, k, i]
            assert np.isclose(got, want, rtol=1e-9, atol=1e-9)
    table = bl.heritability(idata)
    assert list(table.index) == [
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
    ]
    want_rg = post["rg"].sel(trait="a", trait2="b").values.mean()
    assert np.isclose(table.loc["rg[a,b]", "mean"], want_rg)
    assert np.isclose(table.loc["Sigma_g[a,b]", "mean"], post["Sigma_g"].values[0, :, 0, 1].mean())


@pytest.mark.parametrize("missing", [False, True])
def test_snp_model__several_traits_equal_kinship_model(missing):
    rng = np.random.default_rng(3)
    Y, _, X = _data(n=30)
    Y = _with_missing(Y) if missing else Y
    G = pd.DataFrame(rng.binomial(2, 0.3, size=(30, 12)).astype(float), index=Y.index)
    G.columns = [f"rs{j}" for j in range(12)]
    model = bl.snp_model(Y, G, X)
    info = info_of(model)
    assert info.family == "multitrait" and info.form == "multitrait_snp_lmm"
    W = (G - G.mean()) / G.std(ddof=0)
    K = pd.DataFrame(W.to_numpy() @ W.to_numpy().T / 12, Y.index, Y.index)
    reference = bl.kinship_model(Y, K, X)
    logp, ref = model.compile_logp(), reference.compile_logp()
    sv2 = model.compile_fn(
        model.replace_rvs_by_values([model["sigma_v2"], model["Sigma_g"]]),
        inputs=model.value_vars,
        on_unused_input="ignore",
        point_fn=True,
    )
    for point in _random_points(reference, 3):
        assert np.isclose(logp(point), ref(point), rtol=1e-9, atol=1e-9)
        v, sg = sv2(point)
        assert np.allclose(v, np.diag(sg) / 12)
    assert model.named_vars_to_dims["sigma_v2"] == ("trait",)
    with pytest.raises(InputError, match="marginalized SNP form"):
        bl.snp_model(Y, G, X, marginalize=False)
    from bayeslmm.relatedness.gram import Gram

    with pytest.raises(InputError, match="several traits is not built"):
        bl.snp_model(Y, Gram.__new__(Gram), X)


@pytest.mark.slow
@pytest.mark.slow
def test_sample__recovers_genetic_correlation_with_missing_traits():
    """A fifth of each trait missing, kept latent: rg recovered, the missing values' 95 %
    intervals cover the simulated values they hide at about their nominal rate."""
    rng = np.random.default_rng(11)
    n = 200  # 80 missing values: 86 parameters, the disk-cached compilation (≤ 100)
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
    truth = pd.DataFrame(np.array([1.0, 5.0]) + np.outer(x, [0.5, -1.0]) + U + E, ids, ["a", "b"])
    Y = _with_missing(truth, fraction=0.2, seed=12)
    X = pd.DataFrame({"x": x}, index=ids)
    Kd = pd.DataFrame(K, ids, ids)
    model = bl.kinship_model(Y, Kd, X)
    # B integrated out: no divergent transition of 4,000 here at the default target_accept
    # (with B sampled: 255 at 0.8 and 44 at 0.95; see models/mv_lmm/MODEL.md)
    idata = sample_counted(model, draws=1000, tune=1000, chains=4, random_seed=5, progressbar=False)
    post = idata["posterior"]
    from arviz_stats import rhat

    off = {"trait": "a", "trait2": "b"}
    for var in [post["h2"], post["Sigma_g"], post["Sigma_e"], post["rg"].sel(off)]:
        assert float(np.max(rhat(var).values)) <= 1.01, var.name
    rg = post["rg"].sel(off).values.ravel()
    low, high = np.quantile(rg, [0.025, 0.975])
    assert low <= 0.6 <= high
    missing = post["Y_missing"]
    assert missing.sizes["missing"] == 80
    hidden = np.array(
        [truth.loc[m.split(":")[0], m.split(":")[1]] for m in missing["missing"].values]
    )
    draws = missing.values.reshape(-1, 80)
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    coverage = np.mean((lo <= hidden) & (hidden <= hi))
    assert 0.85 <= coverage <= 1.0, coverage
    assert idata["posterior"]["u"].shape == (4, 1000, n, 2)


@pytest.mark.slow
def test_sample__reused_compilation_equals_fresh_for_another_sample_size():
    """Two fits of the same rank but different N share nutpie's compilation only where that
    gives the same draws as a fresh compilation (the null space's size is data, not a
    constant of the graph: a constant made the N = 400 fit reuse the N = 300 log-density)."""
    from bayeslmm.inference import sampling

    def fit(n, seed):
        rng = np.random.default_rng(seed)
        G = rng.binomial(2, 0.3, size=(n, 60)).astype(float)
        W = (G - G.mean(0)) / G.std(0)
        Y = W @ rng.normal(size=(60, 2)) / 8 + rng.normal(size=(n, 2))
        model = bl.kinship_model(pd.DataFrame(Y, columns=["a", "b"]), W @ W.T / 60)
        assert 0 < info_of(model).extra["rotated_traits"].n_null
        return bl.sample(model, draws=30, tune=30, chains=1, random_seed=7, progressbar=False)

    saved = dict(sampling._COMPILED)
    try:
        sampling._COMPILED.clear()
        fit(300, 1)  # compiled here, then offered to the N = 400 fit
        reused = fit(400, 2)["posterior"]["h2"].values
        sampling._COMPILED.clear()
        fresh = fit(400, 2)["posterior"]["h2"].values
    finally:
        sampling._COMPILED.clear()
        sampling._COMPILED.update(saved)
    np.testing.assert_allclose(reused, fresh, rtol=0, atol=1e-10)


@pytest.mark.slow
def test_sample__many_missing_values_through_nutpies_own_compilation():
    """More than 100 free values (105 missing entries): nutpie compiles the model itself and
    is handed every pm.Data of it (one the graph did not use made it fail: KeyError)."""
    from bayeslmm.inference.sampling import MAX_CACHED_DIM

    Y, K, X = _data(n=150, seed=3)
    model = bl.kinship_model(_with_missing(Y, fraction=0.35), K, X)
    assert (
        model.initial_point()
        and sum(np.size(v) for v in model.initial_point().values()) > MAX_CACHED_DIM
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)  # 30 draws: R-hat is not the point
        idata = bl.sample(model, draws=30, tune=30, chains=2, random_seed=1, progressbar=False)
    post = idata["posterior"]
    assert post["Y_missing"].sizes["missing"] == 105
    assert post["beta"].dims == ("chain", "draw", "covariate", "trait")
