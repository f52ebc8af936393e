"""The probit model's Laplace fit against a dense reference, quadrature and brute force."""

import numpy as np
import pytest
from scipy import integrate, optimize, special

import bayeslmm as bl
from bayeslmm.families.base import info_of
from bayeslmm.inference.laplace import laplace_mode, probit_derivatives
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


def test_probit_derivatives__equal_finite_differences(rng):
    y = rng.integers(0, 2, 200).astype(float)
    f = rng.normal(0.0, 4.0, 200)
    h = 1e-5
    value, d1, weight, d3 = probit_derivatives(y, f)
    plus, minus = probit_derivatives(y, f + h), probit_derivatives(y, f - h)
    np.testing.assert_allclose(value, special.log_ndtr((2 * y - 1) * f), rtol=1e-14)
    np.testing.assert_allclose((plus[0] - minus[0]) / (2 * h), d1, atol=1e-8)
    np.testing.assert_allclose(-(plus[1] - minus[1]) / (2 * h), weight, atol=1e-8)
    np.testing.assert_allclose(-(plus[2] - minus[2]) / (2 * h), d3, atol=1e-7)


@pytest.mark.parametrize("rank", [None, 6])
def test_laplace_mode__equals_dense_reference(rng, rank):
    y, X, K, U, s = _problem(rng, 40, rank)
    beta = np.array([-0.3, 0.5])
    for log_sigma_g2 in (-3.0, 0.2, 2.0):
        mode = laplace_mode(y, X, U, s, beta, log_sigma_g2)
        log_q, u = pref.laplace_marginal(y, X, K, beta, np.exp(log_sigma_g2))
        assert mode.log_marginal == pytest.approx(log_q, rel=1e-10)
        u_fast = U @ (np.sqrt(np.exp(log_sigma_g2) * s) * mode.z)
        np.testing.assert_allclose(u_fast, u, atol=1e-8)


@pytest.mark.parametrize("rank", [None, 6])
def test_laplace_mode__gradient_equals_finite_differences(rng, rank):
    y, X, _, U, s = _problem(rng, 40, rank)
    x = np.array([-0.3, 0.5, 0.2])
    grad = laplace_mode(y, X, U, s, x[:2], x[2]).gradient
    h = 1e-5
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        up = laplace_mode(y, X, U, s, (x + e)[:2], (x + e)[2]).log_marginal
        down = laplace_mode(y, X, U, s, (x - e)[:2], (x - e)[2]).log_marginal
        assert grad[k] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8)


def test_laplace_mode__close_to_quadrature_for_one_and_two_samples(rng):
    """Laplace is an approximation: near the integral, exact as σg² → 0."""
    for n in (1, 2):
        G = rng.normal(size=(n, 4))
        K = G @ G.T / 4 + 0.1 * np.eye(n)
        s, U = np.linalg.eigh(K)
        X = np.ones((n, 1))
        y = np.array([1.0, 0.0][:n])
        beta = np.array([0.2])
        errors = []
        for log_sigma_g2 in (-6.0, -1.0, 0.0):
            S = np.exp(log_sigma_g2) * K
            if n == 1:  # closed form: P(y = 1) = Φ(β / √(1 + σg² K))
                exact = special.log_ndtr(beta[0] / np.sqrt(1 + S[0, 0]))
            else:
                P, log_det = np.linalg.inv(S), np.linalg.slogdet(2 * np.pi * S)[1]

                def density(u1, u0, P=P, log_det=log_det, beta=beta):
                    u = np.array([u0, u1])
                    lik = special.log_ndtr(beta[0] + u[0]) + special.log_ndtr(-(beta[0] + u[1]))
                    return np.exp(lik - 0.5 * u @ P @ u - 0.5 * log_det)

                w = 10 * np.sqrt(np.diag(S))
                exact = np.log(integrate.dblquad(density, -w[0], w[0], -w[1], w[1])[0])
            approx = laplace_mode(y, X, U, s, beta, log_sigma_g2).log_marginal
            errors.append(abs(approx - exact))
        assert errors[0] < 1e-4
        assert max(errors) < 0.02


@pytest.fixture(scope="module")
def small_probit():
    data = bl.simulate(80, 300, 0.6, n_covariates=1, seed=3)
    y01 = (data.y > np.quantile(data.y, 0.6)).astype(float)
    model = bl.kinship_model(y01, data.K, data.X, family="probit")
    return model, bl.map_estimate(model)


def test_map_estimate__probit_is_the_maximum_of_the_dense_laplace_objective(small_probit):
    """Brute force: Nelder–Mead on the dense Laplace marginal plus the log priors."""
    model, fit = small_probit
    info = info_of(model)
    y, X = info.data.y, info.data.X
    K = info.spectral.U @ np.diag(info.spectral.s) @ info.spectral.U.T
    prior = info.priors["beta"]
    mu, sd = np.asarray(prior.params["mu"]), np.asarray(prior.params["sigma"])

    def negative(x):  # Beta(1, 1) on h²: a flat log-density
        h2 = special.expit(x[2])
        log_q, _ = pref.laplace_marginal(y, X, K, x[:2], h2 / (1 - h2))
        return -(log_q - 0.5 * np.sum(((x[:2] - mu) / sd) ** 2))

    post = fit["posterior"]
    h2 = float(post["h2"].values.item())
    beta = post["beta"].values.ravel()
    assert 0.01 < h2 < 0.99  # an interior maximum on this data (the joint mode has h² → 1)
    best = optimize.minimize(
        negative,
        np.append(beta, special.logit(h2)) + 0.3,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000},
    )
    assert negative(np.append(beta, special.logit(h2))) <= best.fun + 1e-7
    np.testing.assert_allclose(beta, best.x[:2], atol=2e-3)
    assert h2 == pytest.approx(special.expit(best.x[2]), abs=2e-3)
    # u is the mode of u | y, β̂, σ̂g² (the dense Newton iteration)
    _, u = pref.laplace_marginal(y, X, K, beta, h2 / (1 - h2))
    np.testing.assert_allclose(post["u"].values.ravel(), u, atol=1e-6)


def test_map_estimate__probit_boundary_maximum_at_h2_zero():
    """Where the Laplace marginal keeps rising towards h² = 0 the fit stops at the bound."""
    data = bl.simulate(120, 500, 0.6, n_covariates=1, seed=11)
    y01 = (data.y > np.quantile(data.y, 0.6)).astype(float)
    t = slice(0, 100)  # (the profile of log q on these 100: max at h² = 0, -62.5927)
    fit = bl.map_estimate(bl.kinship_model(y01[t], data.K[t, t], data.X[t], family="probit"))
    assert float(fit["posterior"]["h2"].values.item()) < 1e-6
