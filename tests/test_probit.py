"""The probit LMM: log-density against the dense literal model, tails, input errors, recovery."""

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import special, stats

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import info_of
from bayeslmm.families.probit import log_ndtr
from bayeslmm.families.registry import family_of
from models.probit_lmm import reference as pref
from tests.nuts import sample_counted


def _binary_data(rng, n=30, rank=None):
    """0/1 phenotype with a covariate, and a mean-diagonal-1 K (full rank or of the given rank)."""
    G = rng.binomial(2, 0.4, size=(n, rank or 4 * n)).astype(float)
    W = (G - G.mean(0)) / G.std(0)
    K = W @ W.T / W.shape[1]
    if rank is None:
        K += 0.1 * np.eye(n)
    K /= np.mean(np.diag(K))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = (X @ [0.2, 0.8] + rng.normal(size=n) > 0).astype(float)
    return y, X, K


def _random_points(model, rng, n=4):
    ip = model.initial_point()
    return [{k: v + rng.normal(0, 0.7, size=np.shape(v)) for k, v in ip.items()} for _ in range(n)]


def _dense_point(model, point):
    """The dense model's point for a point of the fast model: u = U diag(√(σg² s)) z."""
    spectral = info_of(model).spectral
    sigma_g2 = special.expit(point["h2_logodds__"]) / (1 - special.expit(point["h2_logodds__"]))
    u = pref.genetic_values(spectral.U, spectral.s, sigma_g2, point["z"])
    dense = {"beta": point["beta"], "h2_logodds__": point["h2_logodds__"], "u": u}
    return dense, sigma_g2


def test_probit_model__logp_equals_dense_reference(rng):
    """Full-rank K: every term equals the literal centred model after the change of variables."""
    y, X, K = _binary_data(rng)
    fast = bl.kinship_model(y, K, X[:, 1:], family="probit")
    dense = pref.dense_probit_model(y, X, K)
    f_fast, f_dense = fast.compile_logp(), dense.compile_logp()
    lik_fast = fast.compile_logp(vars=[fast["y"]])
    lik_dense = dense.compile_logp(vars=[dense["y"]])
    s = info_of(fast).spectral.s
    for point in _random_points(fast, rng):
        dpoint, sigma_g2 = _dense_point(fast, point)
        assert lik_fast(point) == pytest.approx(lik_dense(dpoint), rel=1e-9)
        expected = pref.probit_loglik(y, X, point["beta"], dpoint["u"]).sum()
        assert lik_fast(point) == pytest.approx(expected, rel=1e-9)
        # log N(u; 0, σg²K) = log N(z; 0, I) − ½ Σ log(σg² s_i): the Jacobian of u = A z
        jacobian = 0.5 * np.sum(np.log(sigma_g2 * s))
        assert f_fast(point) == pytest.approx(f_dense(dpoint) + jacobian, rel=1e-9)


def test_probit_model__likelihood_equals_dense_low_rank_kinship(rng):
    y, X, K = _binary_data(rng, n=30, rank=8)
    fast = bl.kinship_model(y, K, X[:, 1:], family="probit")
    assert info_of(fast).spectral.rank == 8 and fast.eval_rv_shapes()["z"] == (8,)
    lik_fast = fast.compile_logp(vars=[fast["y"]])
    for point in _random_points(fast, rng):
        dpoint, _ = _dense_point(fast, point)
        expected = pref.probit_loglik(y, X, point["beta"], dpoint["u"]).sum()
        assert lik_fast(point) == pytest.approx(expected, rel=1e-9)


def test_log_ndtr__stable_in_both_tails():
    x = pt.dvector("x")
    value = log_ndtr(x)
    f = pytensor.function([x], [value, pytensor.grad(value.sum(), x)])
    xs = np.array([-1e3, -40.0, -8.5, -1.0 - 1e-9, -1.0, -0.3, 0.0, 2.0, 8.5, 40.0, 1e3])
    got, grad = f(xs)
    np.testing.assert_allclose(got, special.log_ndtr(xs), rtol=1e-12, atol=1e-300)
    # d/dx log Φ(x) = φ(x)/Φ(x), in logs so that it is exact in the tails
    np.testing.assert_allclose(grad, np.exp(stats.norm.logpdf(xs) - special.log_ndtr(xs)), 1e-9)
    assert np.isfinite(grad).all()


def test_probit_model__logp_finite_at_extreme_linear_predictor(rng):
    """|η| ≫ 8: the Bernoulli terms equal log Φ(±η) and the gradient stays finite."""
    y, X, K = _binary_data(rng)
    model = bl.kinship_model(y, K, X[:, 1:], family="probit")
    point = model.initial_point()
    point["beta"] = np.array([0.0, 30.0])  # η = 30 x: most |η| > 8
    lik = model.compile_logp(vars=[model["y"]])(point)
    eta = X @ point["beta"]  # z = 0 at the initial point, so u = 0
    assert lik == pytest.approx(special.log_ndtr((2 * y - 1) * eta).sum(), rel=1e-10)
    grad = model.compile_dlogp()(point)
    assert np.isfinite(grad).all()


def test_probit_model__structure(rng):
    y, X, K = _binary_data(rng)
    model = bl.kinship_model(y, K, X[:, 1:], family="probit")
    assert [v.name for v in model.free_RVs] == ["beta", "h2", "z"]
    assert {"sigma_g2", "sigma_e2"} <= {v.name for v in model.deterministics}
    assert model.named_vars_to_dims["y"] == ("sample",)
    assert model.named_vars_to_dims["z"] == ("eigen",)
    variance = bl.kinship_model(
        y, K, X[:, 1:], family="probit", priors={"sigma_g2": bl.Prior("HalfNormal", sigma=1.0)}
    )
    assert [v.name for v in variance.free_RVs] == ["beta", "sigma_g2", "z"]
    assert variance["h2"].eval({variance["sigma_g2"]: 0.6}) == pytest.approx(0.6 / 1.6)


def test_probit_postprocess__u_and_pointwise_loglik(rng):
    """The hook's u and log-likelihood equal the dense map and SciPy's Bernoulli, per draw."""
    y, X, K = _binary_data(rng, n=25)
    model = bl.kinship_model(y, K, X[:, 1:], family="probit")
    info = info_of(model)
    r = info.spectral.rank
    z = rng.normal(size=(2, 3, r))
    h2 = rng.uniform(0.1, 0.9, size=(2, 3))
    beta = rng.normal(size=(2, 3, 2))
    post = xr.Dataset(
        {
            "z": (("chain", "draw", "eigen"), z),
            "sigma_g2": (("chain", "draw"), h2 / (1 - h2)),
            "beta": (("chain", "draw", "covariate"), beta),
        }
    )
    new, loglik = family_of(model).postprocess(post, info, None, True)
    u, dim, coords = new["u"]
    assert dim == "sample" and list(coords) == list(info.data.samples)
    for k, (c, d) in enumerate(np.ndindex(2, 3)):
        expected_u = pref.genetic_values(
            info.spectral.U, info.spectral.s, h2[c, d] / (1 - h2[c, d]), z[c, d]
        )
        np.testing.assert_allclose(u[k], expected_u, rtol=1e-10, atol=1e-12)
        expected = pref.probit_loglik(y, X, beta[c, d], expected_u)
        np.testing.assert_allclose(loglik[k], expected, rtol=1e-9)
    new, _ = family_of(model).postprocess(post, info, None, False)
    assert new == {}


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.r_[np.zeros(10), np.ones(10), 2.0], r"values \{0, 1, 2\}"),
        (np.r_[-np.ones(10), np.ones(11)], r"values \{-1, 1\}"),
        (np.zeros(21), "both cases and controls"),
        (np.r_[np.ones(20), np.nan], "both cases and controls"),
    ],
)
def test_probit_model__non_binary_phenotype_is_input_error(rng, y, match):
    K = np.eye(len(y))
    with pytest.raises(bl.InputError, match=match):
        bl.kinship_model(y, K, family="probit")


def test_probit_model__classes_lost_in_alignment_is_input_error():
    """Only controls are left once y is aligned with K by sample ID."""
    ids = [f"s{i}" for i in range(8)]
    y = pd.Series([0, 0, 1, 1, 0, 0, 0, 0], index=ids, dtype=float)
    kept = ids[4:] + ["a", "b"]
    K = pd.DataFrame(np.eye(6), index=kept, columns=kept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.DataWarning)
        with pytest.raises(bl.InputError, match="constant"):
            bl.kinship_model(y, K, family="probit")


@pytest.mark.parametrize(
    ("priors", "match"),
    [
        ("flat", "not available for family='probit'"),
        ({"sigma_e2": bl.Prior("HalfNormal", sigma=1.0)}, "fixes the residual liability"),
        ({"sigma_p": bl.Prior("HalfNormal", sigma=1.0)}, "fixes the residual liability"),
        ({"rho": bl.Prior("Beta", alpha=1, beta=1)}, "unknown prior"),
        ({"h2": bl.Prior("Normal", mu=0, sigma=1)}, "outside its support"),
    ],
)
def test_probit_model__bad_priors_are_input_errors(rng, priors, match):
    y, X, K = _binary_data(rng)
    with pytest.raises(bl.InputError, match=match):
        bl.kinship_model(y, K, X[:, 1:], priors, family="probit")


def test_kinship_model__unknown_family_is_input_error(rng):
    y, X, K = _binary_data(rng)
    with pytest.raises(bl.InputError, match="family must be"):
        bl.kinship_model(y, K, family="logit")


@pytest.mark.slow
def test_probit_model__recovers_liability_h2():
    """Liability ℓ = u + ε with h² = 0.5 on the liability scale, prevalence 0.5, N = 800."""
    data = simulate(800, 400, 0.5, seed=21)
    liability = data.y - data.truth["beta"][0]  # u + ε, var(u) ≈ 0.5, var(ε) = 0.5
    y = (liability > 0).astype(float)
    idata = sample_counted(
        bl.kinship_model(y, data.K, family="probit"), draws=500, tune=500, chains=2, random_seed=3
    )
    h2 = idata.posterior["h2"].values.ravel()
    assert abs(h2.mean() - 0.5) < 2.5 * h2.std(), (h2.mean(), h2.std())
    assert idata.log_likelihood["y"].shape == (2, 500, 800)
    u_mean = idata.posterior["u"].mean(("chain", "draw")).values
    assert np.corrcoef(u_mean, data.truth["u"])[0, 1] > 0.3
