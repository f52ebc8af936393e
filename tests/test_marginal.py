"""The multi-trait model with B integrated out (bayeslmm.families.marginal): its kernel against
dense Gaussian integrals and finite differences, and the B draws against the dense conditional."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import bayeslmm as bl
from bayeslmm.families.base import info_of
from bayeslmm.families.marginal import (
    _value_and_gradient_any,
    conditional_b,
    marginal_value_and_gradient,
)
from bayeslmm.families.multitrait import _draw_b, b_precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.mv_lmm.reference import conditional_b as dense_conditional_b  # noqa: E402
from tests.test_multitrait import _b_prior, _data  # noqa: E402


def _rows(T, d, n=14, n_null=3, seed=0):
    """Rows (s, w, Y, X) with the last ``n_null`` rows of the null space (s = 0, w = 0)."""
    rng = np.random.default_rng(seed)
    s = rng.gamma(1.0, 1.0, n)
    s[n - n_null :] = 0.0
    w = np.ones(n)
    w[n - n_null :] = 0.0
    A, C = rng.normal(size=(2, T, T))
    sg = A @ A.T + 0.1 * np.eye(T)
    se = C @ C.T + 0.3 * np.eye(T)
    return s, w, sg, se, rng.normal(size=(n, T)), rng.normal(size=(n, d))


def _dense(s, w, sg, se, Y, X, precision):
    """The integral by SciPy: rows stacked, V = blockdiag(s_iΣg + Σe) + Z Z'/precision; the
    rows with w = 0 have their log-determinant added back (the kernel leaves it out)."""
    n, T = Y.shape
    d = X.shape[1]
    V = np.zeros((n * T, n * T))
    Z = np.zeros((n * T, d * T))
    for i in range(n):
        V[i * T : (i + 1) * T, i * T : (i + 1) * T] = s[i] * sg + se
        for t in range(T):
            Z[i * T + t, t * d : (t + 1) * d] = X[i]
    excluded = sum(np.linalg.slogdet(s[i] * sg + se)[1] for i in range(n) if w[i] == 0)
    base = 0.5 * n * T * np.log(2 * np.pi) + 0.5 * excluded
    if precision > 0:
        cov = V + Z @ Z.T / precision
        return stats.multivariate_normal.logpdf(Y.ravel(), np.zeros(n * T), cov) + base
    V_inv = np.linalg.inv(V)
    P = Z.T @ V_inv @ Z
    h = Z.T @ V_inv @ Y.ravel()
    y = Y.ravel()
    quad = y @ V_inv @ y - h @ np.linalg.solve(P, h)
    logdet = np.linalg.slogdet(V)[1] - excluded + np.linalg.slogdet(P)[1]
    return -0.5 * (logdet + quad) + 0.5 * d * T * np.log(2 * np.pi)


@pytest.mark.parametrize(("T", "d"), [(2, 1), (2, 3), (3, 2)])
@pytest.mark.parametrize("precision", [0.01, 0.0])
def test_kernel__value_is_dense_integral_and_gradient_is_finite_difference(T, d, precision):
    s, w, sg, se, Y, X = _rows(T, d)
    value, dsg, dse, dY = marginal_value_and_gradient(s, w, sg, se, Y, X, precision)
    assert np.isclose(value, _dense(s, w, sg, se, Y, X, precision), rtol=1e-11, atol=1e-10)
    step = 1e-6
    for i in (0, len(s) - 1):  # a rotated row and a null-space row: ∂/∂y_i (missing values)
        for t in range(T):
            moved = []
            for sign in (1.0, -1.0):
                Y_moved = Y.copy()
                Y_moved[i, t] += sign * step
                moved.append(marginal_value_and_gradient(s, w, sg, se, Y_moved, X, precision)[0])
            assert np.isclose(dY[i, t], (moved[0] - moved[1]) / (2 * step), rtol=1e-6, atol=1e-6)
    for which, grad in ((0, dsg), (1, dse)):
        for a in range(T):
            for b in range(T):
                moved = []
                for sign in (1.0, -1.0):
                    mats = [sg.copy(), se.copy()]
                    mats[which][a, b] += sign * step  # the kernel reads the lower triangle
                    moved.append(marginal_value_and_gradient(s, w, *mats, Y, X, precision)[0])
                fd = (moved[0] - moved[1]) / (2 * step)
                assert np.isclose(grad[a, b], fd, rtol=1e-6, atol=1e-6), (which, a, b)


def test_kernel__two_trait_closed_form_equals_general():
    s, w, sg, se, Y, X = _rows(2, 2, n=200, n_null=5)
    fast = marginal_value_and_gradient(s, w, sg, se, Y, X, 0.01)
    general = _value_and_gradient_any(s, w, sg, se, Y, X, 0.01)
    for a, b in zip(fast, general, strict=True):
        assert np.allclose(a, b, rtol=1e-11, atol=1e-10)


def test_kernel__not_positive_definite_is_nan():
    s, w, sg, se, Y, X = _rows(2, 1)
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])
    for T_fn in (marginal_value_and_gradient, _value_and_gradient_any):
        value, dsg, dse, dY = T_fn(s, w, sg, bad, Y, X, 0.01)
        assert np.isnan(value) and np.isnan(dsg).all() and np.isnan(dse).all()
        assert np.isnan(dY).all()


def test_conditional_b__draws_have_the_dense_conditional_mean_and_covariance():
    s, w, sg, se, Y, X = _rows(2, 2)
    n, T = Y.shape
    # the same rows as one dense regression: vec(B) ~ N(0, 100 I), rows of covariance V_i
    Z = np.zeros((n * T, 2 * T))
    V = np.zeros((n * T, n * T))
    for i in range(n):
        V[i * T : (i + 1) * T, i * T : (i + 1) * T] = s[i] * sg + se
        for t in range(T):
            Z[i * T + t, t * 2 : (t + 1) * 2] = X[i]
    P = Z.T @ np.linalg.solve(V, Z) + 0.01 * np.eye(2 * T)
    mean = np.linalg.solve(P, Z.T @ np.linalg.solve(V, Y.ravel()))
    at_mean = conditional_b(s, w, sg[None], se[None], Y, X, 0.01, None)[0]
    assert np.allclose(at_mean.T.ravel(), mean, rtol=1e-12, atol=1e-12)  # vec(B): by trait
    k = 20_000
    draws = conditional_b(
        s,
        w,
        np.repeat(sg[None], k, 0),
        np.repeat(se[None], k, 0),
        Y,
        X,
        0.01,
        np.random.default_rng(1),
    )
    flat = np.swapaxes(draws, 1, 2).reshape(k, -1)
    cov = np.linalg.inv(P)
    sd = np.sqrt(np.diag(cov))
    assert np.abs(flat.mean(0) - mean).max() < 5 * sd.max() / np.sqrt(k)
    assert np.abs(np.cov(flat.T) - cov).max() < 0.05 * np.abs(cov).max()


def test_b_precision__which_priors_integrate_b_out():
    assert b_precision(bl.Prior("Normal", mu=0, sigma=4.0)) == pytest.approx(1 / 16)
    assert b_precision(bl.Prior("Normal", sigma=2.0)) == pytest.approx(0.25)
    assert b_precision(bl.Prior("Flat")) == 0.0
    for other in (
        bl.Prior("Normal", mu=1.0, sigma=4.0),
        bl.Prior("Normal", mu=0.0, sigma=[1.0, 2.0]),
        bl.Prior("StudentT", nu=3, mu=0, sigma=1),
    ):
        assert b_precision(other) is None


@pytest.mark.parametrize("rank", [None, 15])
def test_draw_b__user_units_equal_dense_conditional(rank):
    """Post-processing's B | θ, Y (user units) is the dense conditional of vec(B) under the
    prior beta_std ~ N(0, 10²) mapped to the traits' units (B = b + A·beta_std·C)."""
    Y, K, X = _data(rank=rank)
    model = bl.kinship_model(Y, K, X)
    info = info_of(model)
    sg = np.array([[2.0, 0.8], [0.8, 900.0]])
    se = np.array([[1.5, -3.0], [-3.0, 1500.0]])
    B_mean, B_cov = _b_prior(info)
    mean, cov = dense_conditional_b(
        info.data.y, info.data.X, info.spectral.matrix(), B_mean, B_cov, sg, se
    )
    B, new = _draw_b(info, sg[None], se[None], None)
    assert np.allclose(B[0].T.ravel(), mean, rtol=1e-8, atol=1e-8 * np.abs(mean).max())
    assert set(new) == {"beta", "beta_std"} and new["beta"][1] == ("covariate", "trait")
    k = 20_000
    B, _ = _draw_b(
        info, np.repeat(sg[None], k, 0), np.repeat(se[None], k, 0), np.random.default_rng(2)
    )
    flat = np.swapaxes(B, 1, 2).reshape(k, -1)
    sd = np.sqrt(np.diag(cov))
    assert (np.abs(flat.mean(0) - mean) < 5 * sd / np.sqrt(k)).all()
    corr = np.cov(flat.T) / np.outer(sd, sd)
    assert np.abs(corr - cov / np.outer(sd, sd)).max() < 0.05


def test_draw_b__missing_values_enter_each_draws_rows():
    """With latent missing values each draw's B is conditional on that draw's completed Y."""
    import xarray as xr

    from models.mv_lmm.reference import conditional_b as dense
    from tests.test_multitrait import _completed, _with_missing

    Y, K, X = _data(rank=15)
    model = bl.kinship_model(_with_missing(Y), K, X)
    info = info_of(model)
    m = model.coords["missing"]
    rng = np.random.default_rng(3)
    z = rng.normal(size=(1, 2, len(m)))  # two draws of the standardized missing values
    posterior = xr.Dataset({"Y_missing_std": (("chain", "draw", "missing"), z)})
    sg = np.array([[[2.0, 0.8], [0.8, 900.0]], [[1.0, 0.1], [0.1, 500.0]]])
    se = np.array([[[1.5, -3.0], [-3.0, 1500.0]], [[2.5, 1.0], [1.0, 800.0]]])
    B, _ = _draw_b(info, sg, se, None, posterior)
    scale, offset, transform = info.extra["standardization"]
    rows, traits, _ = info.extra["missing_entries"]
    B_mean, B_cov = _b_prior(info)
    for k in range(2):
        # the missing values in the user's units: x'b_t + c_t·z (as the model's Y_missing)
        user = np.sum((info.data.X[rows] @ offset) * np.eye(2)[traits], 1) + scale[traits] * z[0, k]
        Yk = _completed(info, user)
        mean, _ = dense(Yk, info.data.X, info.spectral.matrix(), B_mean, B_cov, sg[k], se[k])
        assert np.allclose(B[k].T.ravel(), mean, rtol=1e-8, atol=1e-8 * np.abs(mean).max())
