"""Closed-form random effects and sample-space LOO against the dense formulas of models/."""

import numpy as np
import pytest

import bayeslmm as bl
from bayeslmm.inference.effects import draw_u, draw_v, loo_pointwise
from bayeslmm.linalg.spectral import rotate_data
from models.kinship_lmm import reference as kref
from models.snp_lmm import reference as sref


def _setup(rng, n=30, m=None):
    m = m or 3 * n
    G = rng.binomial(2, 0.3, size=(n, m)).astype(float)
    W = sref.standardize(G)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + W @ rng.normal(0, 0.1, m) + rng.normal(size=n)
    return y, X, W


@pytest.mark.parametrize("m", [12, 90])  # low-rank (M < N) and full-rank K
def test_draw_u__mean_and_covariance_equal_dense(rng, m):
    y, X, W = _setup(rng, m=m)
    spec = bl.spectral_from_genotypes(W)
    K = spec.matrix()
    rot = rotate_data(spec, y, X)
    beta, sg2, se2 = np.array([0.9, 0.4]), 0.7, 0.5
    mean, cov = kref.conditional_u(y, X, K, beta, sg2, se2)
    one = lambda a: np.full(1, a)  # noqa: E731
    exact = draw_u(spec, rot.y1, rot.X1, beta[None], one(sg2), one(se2), None)[0]
    np.testing.assert_allclose(exact, mean, atol=1e-10)
    n_draws = 40_000
    draws = draw_u(
        spec,
        rot.y1,
        rot.X1,
        np.tile(beta, (n_draws, 1)),
        np.full(n_draws, sg2),
        np.full(n_draws, se2),
        np.random.default_rng(1),
    )
    np.testing.assert_allclose(
        draws.mean(0), mean, atol=5 * np.sqrt(cov.diagonal().max() / n_draws)
    )
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.03 * np.abs(cov).max())


@pytest.mark.parametrize("m", [12, 90])
def test_draw_v__mean_and_covariance_equal_dense(rng, m):
    y, X, W = _setup(rng, m=m)
    spec = bl.spectral_from_genotypes(W)
    W = W / np.sqrt(spec.scale)
    rot = rotate_data(spec, y, X)
    beta, sg2, se2 = np.array([0.9, 0.4]), 0.7, 0.5
    mean, cov = sref.conditional_v(y, X, W, beta, sg2, se2)
    B = spec.U.T @ W
    one = lambda a: np.full(1, a)  # noqa: E731
    exact = draw_v(spec, B, rot.y1, rot.X1, beta[None], one(sg2), one(se2), None)[0]
    np.testing.assert_allclose(exact, mean, atol=1e-10)
    n_draws = 40_000
    draws = draw_v(
        spec,
        B,
        rot.y1,
        rot.X1,
        np.tile(beta, (n_draws, 1)),
        np.full(n_draws, sg2),
        np.full(n_draws, se2),
        np.random.default_rng(2),
    )
    np.testing.assert_allclose(
        draws.mean(0), mean, atol=5 * np.sqrt(cov.diagonal().max() / n_draws)
    )
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.03 * np.abs(cov).max())


@pytest.mark.parametrize("m", [12, 90])
def test_loo_pointwise__equals_dense_conditioning(rng, m):
    y, X, W = _setup(rng, m=m)
    spec = bl.spectral_from_genotypes(W)
    K = spec.matrix()
    params = [
        (np.array([0.9, 0.4]), 0.7, 0.5),
        (np.array([1.2, -0.1]), 0.05, 1.3),
        (np.array([0.0, 0.0]), 2.0, 0.01),
    ]
    beta = np.array([p[0] for p in params])
    sg2 = np.array([p[1] for p in params])
    se2 = np.array([p[2] for p in params])
    fast = loo_pointwise(spec, y, X, beta, sg2, se2)
    for k, (b, g, e) in enumerate(params):
        np.testing.assert_allclose(fast[k], kref.dense_loo_pointwise(y, X, K, b, g, e), atol=1e-8)


def test_store_effects__bound_and_warning():
    from bayeslmm.inference.effects import MAX_EFFECT_VALUES, store_effects

    assert store_effects(True, MAX_EFFECT_VALUES, "x", stacklevel=1)
    assert not store_effects(False, 10, "x", stacklevel=1)
    with pytest.warns(bl.SamplingWarning, match="not stored: 9 draws × 9 samples would exceed"):
        assert not store_effects(True, MAX_EFFECT_VALUES + 1, "9 draws × 9 samples", stacklevel=1)


@pytest.mark.parametrize(("n", "m"), [(150, 400), (150, 20), (60, 1000)])
def test_loo_pointwise__interpolated_equals_exact_over_orders_of_magnitude(rng, n, m):
    # full-rank (m > n) and low-rank (m < n) K; ρ = σg²/σe² at 0 and from 1e-12 to 1e6
    # (h² up to 1 − 1e-6; beyond, diag(C) of a full-rank K cancels to a few digits in the
    # exact formula itself), and enough draws that the grid path is taken
    from bayeslmm.inference.effects import loo_pointwise_exact

    W = rng.binomial(2, 0.3, size=(n, m)).astype(float)
    spec = bl.spectral_from_genotypes(W)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ np.array([1.0, 0.5]) + rng.normal(size=n)
    n_draws = 20_000
    rho = 10.0 ** rng.uniform(-12, 6, n_draws)
    rho[:2] = (0.0, 1e-300)
    se2 = 10.0 ** rng.uniform(-2, 1, n_draws)
    beta = rng.normal(0, 1, (n_draws, 2))
    fast = loo_pointwise(spec, y, X, beta, rho * se2, se2)
    exact = loo_pointwise_exact(spec, y, X, beta, rho * se2, se2)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-8)


def test_loo_pointwise__few_draws_take_the_exact_formula(rng, monkeypatch):
    from bayeslmm.inference import effects

    y, X, W = _setup(rng, m=30)
    spec = bl.spectral_from_genotypes(W)
    monkeypatch.setattr(effects, "_tables", None)  # would fail if the grid were used
    beta, sg2, se2 = np.array([[0.9, 0.4]]), np.array([0.7]), np.array([0.5])
    out = loo_pointwise(spec, y, X, beta, sg2, se2)
    exact = effects.loo_pointwise_exact(spec, y, X, beta, sg2, se2)
    np.testing.assert_array_equal(out, exact)


def _spread_draws(rng, n_draws, d=2):
    """Draws spread as a posterior: h² sd 0.03 around 0.5, σp² and β jittered."""
    h2 = np.clip(rng.normal(0.5, 0.03, n_draws), 0.01, 0.99)
    sp2 = 1.3 * np.exp(rng.normal(0, 0.03, n_draws))
    beta = np.array([0.9, 0.4])[:d] + rng.normal(0, 0.05, (n_draws, d))
    return beta, h2 * sp2, (1 - h2) * sp2


@pytest.mark.parametrize("m", [12, 90])
def test_u_and_loo__interpolated_mean_equals_exact(rng, m, monkeypatch):
    # the grid path (enough draws); the mean part is u minus the random part drawn from the
    # same seed, and equals the exact conditional mean of draw_u to 1e-8
    from bayeslmm.inference import effects
    from bayeslmm.inference.effects import _add_u_noise, u_and_loo

    calls = []
    tables = effects._tables
    monkeypatch.setattr(effects, "_tables", lambda *a: calls.append(1) or tables(*a))
    y, X, W = _setup(rng, n=60, m=m)
    spec = bl.spectral_from_genotypes(W)
    rot = rotate_data(spec, y, X)
    beta, sg2, se2 = _spread_draws(rng, 3000)
    u, loglik = u_and_loo(spec, y, X, beta, sg2, se2, np.random.default_rng(3))
    noise = np.zeros_like(u)
    _add_u_noise(noise, spec, sg2, se2, np.random.default_rng(3))
    exact = draw_u(spec, rot.y1, rot.X1, beta, sg2, se2, None)
    assert calls and np.abs(exact).max() > 0.1
    np.testing.assert_allclose(u - noise, exact, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(loglik, loo_pointwise(spec, y, X, beta, sg2, se2))
    # rng=None (the MAP's BLUP): the exact formula, not the tables
    mean, _ = u_and_loo(spec, y, X, beta, sg2, se2, None)
    np.testing.assert_allclose(mean, exact, rtol=0, atol=1e-13)


@pytest.mark.parametrize("m", [12, 90])
def test_u_and_loo__float32_random_part_has_the_dense_mean_and_covariance(rng, m, monkeypatch):
    # at fixed parameters (the grid path: 40,000 draws on a one-cell grid) the draws have the
    # conditional mean and covariance of models/kinship_lmm/reference.py; the seed is fixed,
    # so the check cannot flake; float32 forced at this small N
    from bayeslmm.inference import effects
    from bayeslmm.inference.effects import u_and_loo

    monkeypatch.setattr(effects, "FLOAT32_MIN_SIZE", 0)

    y, X, W = _setup(rng, m=m)
    spec = bl.spectral_from_genotypes(W)
    K = spec.matrix()
    beta, sg2, se2 = np.array([0.9, 0.4]), 0.7, 0.5
    mean, cov = kref.conditional_u(y, X, K, beta, sg2, se2)
    n_draws = 40_000
    args = (np.tile(beta, (n_draws, 1)), np.full(n_draws, sg2), np.full(n_draws, se2))
    draws, _ = u_and_loo(spec, y, X, *args, np.random.default_rng(1))
    assert draws.dtype == np.float64
    np.testing.assert_allclose(
        draws.mean(0), mean, atol=5 * np.sqrt(cov.diagonal().max() / n_draws)
    )
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.03 * np.abs(cov).max())
    # the same standard normals as draw_u: equal to float32 rounding of the random part
    rot = rotate_data(spec, y, X)
    reference = draw_u(spec, rot.y1, rot.X1, *args, np.random.default_rng(1))
    np.testing.assert_allclose(draws, reference, rtol=0, atol=1e-5 * np.abs(reference).max())
    assert not np.array_equal(draws, reference)  # (float32 was used)


def test_u_and_loo__same_seed_same_draws(rng):
    from bayeslmm.inference.effects import u_and_loo

    y, X, W = _setup(rng, n=60)
    spec = bl.spectral_from_genotypes(W)
    beta, sg2, se2 = _spread_draws(rng, 2000)
    first = u_and_loo(spec, y, X, beta, sg2, se2, np.random.default_rng(11))
    second = u_and_loo(spec, y, X, beta, sg2, se2, np.random.default_rng(11))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    third = u_and_loo(spec, y, X, beta, sg2, se2, np.random.default_rng(12))
    assert not np.allclose(first[0], third[0])


def test_u_and_loo__few_draws_take_the_exact_formulas(rng, monkeypatch):
    from bayeslmm.inference import effects

    y, X, W = _setup(rng, m=30)
    spec = bl.spectral_from_genotypes(W)
    rot = rotate_data(spec, y, X)
    monkeypatch.setattr(effects, "_tables", None)  # would fail if the grid were used
    beta, sg2, se2 = np.array([[0.9, 0.4]]), np.array([0.7]), np.array([0.5])
    u, loglik = effects.u_and_loo(spec, y, X, beta, sg2, se2, np.random.default_rng(4))
    np.testing.assert_allclose(
        u, draw_u(spec, rot.y1, rot.X1, beta, sg2, se2, np.random.default_rng(4)), atol=1e-12
    )
    np.testing.assert_array_equal(loglik, effects.loo_pointwise_exact(spec, y, X, beta, sg2, se2))
