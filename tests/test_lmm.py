"""The rotated PyMC models against the dense MvNormal models of models/, point by point."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import bayeslmm as bl
from bayeslmm.families.base import info_of
from models.kinship_lmm import reference as kref
from models.snp_lmm import reference as sref


def _kinships(rng):
    """Full-rank K, low-rank K (M < N), and K with a duplicated sample, all mean-diagonal 1."""
    n = 36
    G = rng.binomial(2, 0.35, size=(n, 150)).astype(float)
    W = sref.standardize(G)
    full = W @ W.T / 150 + 0.05 * np.eye(n)
    low = W[:, :9] @ W[:, :9].T / 9
    dup = W @ W.T / 150
    dup[1], dup[:, 1] = dup[0], dup[0]
    dup[1, 1] = dup[0, 0]
    return {
        name: K / np.mean(np.diag(K))
        for name, K in {"full": full, "low_rank": low, "duplicated": dup}.items()
    }


def _random_points(model, rng, n=4):
    """Random values of the free variables on the transformed (sampler's) scale."""
    ip = model.initial_point()
    return [{k: v + rng.normal(0, 0.7, size=np.shape(v)) for k, v in ip.items()} for _ in range(n)]


@pytest.fixture
def data(rng):
    n = 36
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.uniform(size=n)])
    y = X @ [2.0, 0.5, -1.0] + rng.normal(size=n) * 1.5
    return y, X


@pytest.mark.parametrize("kind", ["full", "low_rank", "duplicated"])
@pytest.mark.parametrize("parametrization", ["h2", "variance"])
def test_kinship_model__logp_equals_dense_mvnormal(rng, data, kind, parametrization):
    y, X = data
    K = _kinships(rng)[kind]
    fast = bl.kinship_model(y, K, X[:, 1:], parametrization=parametrization)
    dense = kref.dense_kinship_model(y, X, K, parametrization=parametrization)
    assert {v.name for v in fast.free_RVs} == {v.name for v in dense.free_RVs}
    f_fast, f_dense = fast.compile_logp(), dense.compile_logp()
    for point in _random_points(fast, rng):
        assert f_fast(point) == pytest.approx(f_dense(point), rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("kind", ["full", "low_rank"])
def test_kinship_model__flat_priors_logp_equals_dense(rng, data, kind):
    y, X = data
    K = _kinships(rng)[kind]
    fast = bl.kinship_model(y, K, X[:, 1:], priors="flat")
    dense = kref.dense_kinship_model(y, X, K, priors="flat")
    f_fast, f_dense = fast.compile_logp(), dense.compile_logp()
    for point in _random_points(fast, rng):
        assert f_fast(point) == pytest.approx(f_dense(point), rel=1e-9, abs=1e-8)


def test_kinship_model__user_variance_priors_logp(rng, data):
    """Any positive PyMC distribution on sigma_g2 / sigma_e2: the prior terms are the user's."""
    y, X = data
    K = _kinships(rng)["full"]
    priors = {
        "sigma_g2": pm.InverseGamma.dist(alpha=3.0, beta=2.0),
        "sigma_e2": bl.Prior("HalfCauchy", beta=1.5),
    }
    fast = bl.kinship_model(y, K, X[:, 1:], priors=priors)
    assert info_of(fast).parametrization == "variance"
    point = {
        "sigma_g2_log__": np.log(0.8),
        "sigma_e2_log__": np.log(1.1),
        "beta": np.array([1.9, 0.4, -0.8]),
    }
    from scipy import stats

    mu = X @ point["beta"]
    loglik = stats.multivariate_normal(mu, 0.8 * K + 1.1 * np.eye(len(y))).logpdf(y)
    sd_y = np.std(y, ddof=1)
    sd_x = np.std(X, axis=0, ddof=1)
    # the intercept's prior sits at the covariate means: α = β0 + x̄'β ~ N(mean(y), 10 sd(y)),
    # independent of β_j ~ N(0, 10 sd(y)/sd(x_j)) (a map of unit Jacobian)
    b = point["beta"]
    alpha = b[0] + X[:, 1:].mean(axis=0) @ b[1:]
    prior_beta = stats.norm(np.mean(y), 10 * sd_y).logpdf(alpha) + (
        stats.norm(0, 10 * sd_y / sd_x[1:]).logpdf(b[1:]).sum()
    )
    prior_g = stats.invgamma(3.0, scale=2.0).logpdf(0.8) + np.log(0.8)  # + log-Jacobian
    prior_e = stats.halfcauchy(scale=1.5).logpdf(1.1) + np.log(1.1)
    expected = loglik + prior_beta + prior_g + prior_e
    assert fast.compile_logp()(point) == pytest.approx(expected, rel=1e-9)


def test_kinship_model__structure(rng, data):
    y, X = data
    Xdf = pd.DataFrame(X[:, 1:], columns=["age", "dose"])
    model = bl.kinship_model(y, _kinships(rng)["low_rank"], Xdf)
    assert [v.name for v in model.free_RVs] == ["beta", "h2", "sigma_p"]
    assert {"sigma_g2", "sigma_e2"} <= {v.name for v in model.deterministics}
    assert list(model.coords["covariate"]) == ["intercept", "age", "dose"]
    shapes = model.eval_rv_shapes()
    assert shapes["beta"] == (3,)
    assert model.named_vars_to_dims["y"] == ("eigen",)
    assert len(model.coords["eigen"]) == info_of(model).spectral.rank < len(y)
    assert "y_null_space" in {p.name for p in model.potentials}


def test_snp_model__marginalized_equals_kinship_model(rng, data):
    y, X = data
    G = rng.binomial(2, 0.4, size=(len(y), 20)).astype(float)
    W = sref.standardize(G)
    snp = bl.snp_model(y, G, X[:, 1:])
    kin = bl.kinship_model(y, W @ W.T / W.shape[1], X[:, 1:])
    f_snp, f_kin = snp.compile_logp(), kin.compile_logp()
    for point in _random_points(kin, rng):
        assert f_snp(point) == pytest.approx(f_kin(point), rel=1e-9)
    dense = sref.dense_marginal_snp_model(y, X, W)
    f_dense = dense.compile_logp()
    for point in _random_points(kin, rng):
        assert f_snp(point) == pytest.approx(f_dense(point), rel=1e-9)


@pytest.mark.parametrize("m", [15, 60])  # M < N and M > N
def test_snp_model__explicit_v_logp_equals_dense(rng, data, m):
    y, X = data
    G = rng.binomial(2, 0.4, size=(len(y), m)).astype(float)
    fast = bl.snp_model(y, G, X[:, 1:], marginalize=False)
    dense = sref.dense_snp_model(y, X, sref.standardize(G))
    assert (
        {v.name for v in fast.free_RVs}
        == {v.name for v in dense.free_RVs}
        == {"beta", "h2", "sigma_p", "z"}
    )
    f_fast, f_dense = fast.compile_logp(), dense.compile_logp()
    for point in _random_points(fast, rng):
        assert f_fast(point) == pytest.approx(f_dense(point), rel=1e-9)


def test_snp_model__genotypes_object_equals_kinship_model_by_id():
    """Genotypes read from PLINK, phenotype shuffled by ID: SNP form = kinship form (-gk 2)."""
    from tests.gemma_reference import EUR_DIR

    g = bl.read_plink(EUR_DIR / "eurB")
    y = pd.Series(g.fam["phenotype"].to_numpy(), index=g.samples).sample(frac=1, random_state=2)
    snp = bl.snp_model(y, g)
    kin = bl.kinship_model(y, bl.kinship(g, "standardized_empirical"))
    point = kin.initial_point()
    assert snp.compile_logp()(point) == pytest.approx(kin.compile_logp()(point), rel=1e-9)
    assert list(snp.coords["snp"][:2]) == list(g.snps["snp"][:2])
