"""The probit model's EP fit against exact orthant probabilities, differences and brute force."""

import numpy as np
import pytest
from scipy import optimize, special

import bayeslmm as bl
from bayeslmm.families.base import info_of
from bayeslmm.inference.ep import ep_fit
from models.probit_lmm import reference as pref


def _problem(rng, n, rank=None):
    """y, X and K = GG'/m of rank ``rank`` (full when None), with K's eigenbasis."""
    G = rng.normal(size=(n, rank or 3 * n))
    K = G @ G.T / G.shape[1]
    s, U = np.linalg.eigh(K)
    keep = s > 1e-10 * s.max()
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = (rng.random(n) < 0.4).astype(float)
    y[:2] = [0.0, 1.0]
    return y, X, K, U[:, keep], s[keep]


def test_ep_fit__exact_for_one_sample():
    """One sample: P(y = 1) = Φ(β / √(1 + σg² K)), and EP matches the only tilted moment."""
    U, s, X = np.ones((1, 1)), np.array([1.3]), np.ones((1, 1))
    for y in (0.0, 1.0):
        for log_sigma_g2 in (-4.0, 0.0, 3.0):
            fit = ep_fit(np.array([y]), X, U, s, np.array([0.4]), log_sigma_g2)
            exact = special.log_ndtr((2 * y - 1) * 0.4 / np.sqrt(1 + np.exp(log_sigma_g2) * 1.3))
            assert fit.log_marginal == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize(("rank", "log_sigma_g2s"), [(None, (-1.0, 1.0, 3.0)), (6, (-1.0, 1.0))])
def test_ep_fit__close_to_exact_orthant_probability(rng, rank, log_sigma_g2s):
    """EP is an approximation: within 0.01 nats of the exact marginal at n = 30, h² to 0.95.

    (Rank 6 at h² = 0.95 is left out: there the quasi-Monte Carlo reference itself varies by
    ±0.03 between seeds; EP's -33.745 lies within its estimates -33.715 to -33.771.)
    """
    y, X, K, U, s = _problem(rng, 30, rank)
    beta = np.array([-0.3, 0.5])
    for log_sigma_g2 in log_sigma_g2s:
        fit = ep_fit(y, X, U, s, beta, log_sigma_g2)
        exact = pref.log_marginal_likelihood(y, X, K, beta, np.exp(log_sigma_g2))
        assert fit.log_marginal == pytest.approx(exact, abs=0.01)


@pytest.mark.parametrize("rank", [None, 6])
def test_ep_fit__gradient_equals_finite_differences(rng, rank):
    y, X, _, U, s = _problem(rng, 40, rank)
    x = np.array([-0.3, 0.5, 0.7])
    grad = ep_fit(y, X, U, s, x[:2], x[2]).gradient
    h = 1e-5
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        up = ep_fit(y, X, U, s, (x + e)[:2], (x + e)[2]).log_marginal
        down = ep_fit(y, X, U, s, (x - e)[:2], (x - e)[2]).log_marginal
        assert grad[k] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-7)


def test_ep_fit__posterior_mean_from_b(rng):
    """E_q[u] = σg² K b, and q's moments are those of the dense site formula."""
    y, X, K, U, s = _problem(rng, 25)
    fit = ep_fit(y, X, U, s, np.array([0.1, -0.2]), 0.5)
    sigma_g2 = np.exp(0.5)
    np.testing.assert_allclose(fit.mean, sigma_g2 * K @ fit.b, atol=1e-10)
    cov = np.linalg.inv(np.linalg.inv(sigma_g2 * K) + np.diag(fit.tau))
    np.testing.assert_allclose(fit.mean, cov @ fit.nu, atol=1e-8)
    np.testing.assert_allclose(fit.variance, np.diag(cov), rtol=1e-8)


@pytest.fixture(scope="module")
def small_probit():
    data = bl.simulate(80, 300, 0.6, n_covariates=1, seed=3)
    y01 = (data.y > np.quantile(data.y, 0.6)).astype(float)
    model = bl.kinship_model(y01, data.K, data.X, family="probit")
    return model, bl.map_estimate(model)


def test_map_estimate__probit_is_the_maximum_of_the_ep_objective(small_probit):
    """Brute force: Nelder–Mead over (β, logit h²) on the EP marginal plus the log priors."""
    model, fit = small_probit
    info = info_of(model)
    y, X, U, s = info.data.y, info.data.X, info.spectral.U, info.spectral.s
    prior = info.priors["beta"]
    mu, sd = np.asarray(prior.params["mu"]), np.asarray(prior.params["sigma"])

    def negative(x):  # Beta(1, 1) on h²: a flat log-density; log σg² = logit h²
        log_z = ep_fit(y, X, U, s, x[:2], x[2]).log_marginal
        return -(log_z - 0.5 * np.sum(((x[:2] - mu) / sd) ** 2))

    post = fit["posterior"]
    h2 = float(post["h2"].values.item())
    beta = post["beta"].values.ravel()
    assert 0.05 < h2 < 0.95  # an interior maximum on this data (the joint mode has h² → 1)
    best = optimize.minimize(
        negative,
        np.append(beta, special.logit(h2)) + 0.3,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000},
    )
    assert negative(np.append(beta, special.logit(h2))) <= best.fun + 1e-7
    np.testing.assert_allclose(beta, best.x[:2], atol=2e-3)
    assert h2 == pytest.approx(special.expit(best.x[2]), abs=2e-3)
    # u is E_q[u] at the point
    ep = ep_fit(y, X, U, s, beta, special.logit(h2))
    np.testing.assert_allclose(post["u"].values.ravel(), ep.mean, atol=1e-6)


def test_map_estimate__probit_boundary_maximum_at_h2_zero():
    """Where the marginal keeps rising towards h² = 0 the fit stops at the bound."""
    data = bl.simulate(120, 500, 0.6, n_covariates=1, seed=11)
    y01 = (data.y > np.quantile(data.y, 0.6)).astype(float)
    t = slice(0, 100)
    fit = bl.map_estimate(bl.kinship_model(y01[t], data.K[t, t], data.X[t], family="probit"))
    assert float(fit["posterior"]["h2"].values.item()) < 1e-6


def test_map_estimate__probit_same_point_for_covariates_in_other_units(small_probit):
    """β of a covariate given in other units scales inversely; h² and the intercept stay."""
    model, fit = small_probit
    info = info_of(model)
    X = info.data.X[:, 1:]
    scaled = bl.map_estimate(
        bl.kinship_model(
            info.data.y,
            info.spectral.U @ np.diag(info.spectral.s) @ info.spectral.U.T,
            1000.0 * X,
            family="probit",
            normalize=False,
        )
    )
    h2 = float(fit["posterior"]["h2"].values.item())
    assert float(scaled["posterior"]["h2"].values.item()) == pytest.approx(h2, rel=1e-4)
    beta, beta_scaled = (
        fit["posterior"]["beta"].values.ravel(),
        scaled["posterior"]["beta"].values.ravel(),
    )
    np.testing.assert_allclose(beta_scaled * [1.0, 1000.0], beta, rtol=1e-4)


def test_map_estimate__probit_h2_within_a_bounded_prior(small_probit):
    """A Uniform(0, 0.2) prior on h² bounds the fit (the unbounded one is above 0.2)."""
    model, fit = small_probit
    info = info_of(model)
    assert float(fit["posterior"]["h2"].values.item()) > 0.2
    bounded = bl.map_estimate(
        bl.kinship_model(
            info.data.y,
            info.spectral.U @ np.diag(info.spectral.s) @ info.spectral.U.T,
            info.data.X[:, 1:],
            family="probit",
            priors={"h2": bl.Prior("Uniform", lower=0.0, upper=0.2)},
            normalize=False,
        )
    )
    assert float(bounded["posterior"]["h2"].values.item()) == pytest.approx(0.2, abs=1e-6)
