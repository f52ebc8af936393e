"""Row-wise T×T Gaussian terms equal numpy's per-matrix slogdet and solve; their gradients."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import bayeslmm.families.backend  # noqa: F401
from bayeslmm.families.rowwise import rowwise_gaussian_terms


def _problem(T, r=300, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 3, r)
    s[:5] = 0.0  # null eigenvalues: A_i = Σe
    a, b = rng.standard_normal((2, T, T))
    sg = a @ a.T + 0.1 * np.eye(T)
    se = b @ b.T + 0.5 * np.eye(T)
    return s, sg, se, rng.standard_normal((r, T))


def _graph(T):
    s, R = pt.vector("s"), pt.matrix("R")
    sg, se = pt.matrix("sg", shape=(T, T)), pt.matrix("se", shape=(T, T))
    logdet, quad = rowwise_gaussian_terms(s, sg, se, R)
    return (s, sg, se, R), logdet, quad


@pytest.mark.parametrize("T", [1, 2, 3, 5, 9])
def test_rowwise__equals_numpy_slogdet_and_solve(T):
    s, sg, se, R = _problem(T)
    inputs, logdet, quad = _graph(T)
    got = pytensor.function(list(inputs), [logdet, quad])(s, sg, se, R)
    A = s[:, None, None] * sg + se
    want_logdet = np.linalg.slogdet(A)[1].sum()
    want_quad = np.einsum("ia,ia->", R, np.linalg.solve(A, R[:, :, None])[:, :, 0])
    np.testing.assert_allclose(got, [want_logdet, want_quad], rtol=1e-11)


@pytest.mark.parametrize("T", [2, 4])
def test_rowwise__gradient_equals_finite_differences(T):
    s, sg, se, R = _problem(T, r=50, seed=1)
    inputs, logdet, quad = _graph(T)
    total = logdet + quad
    grads = pytensor.function(list(inputs), pt.grad(total, [inputs[1], inputs[2], inputs[3]]))
    value = pytensor.function(list(inputs), total)
    got = grads(s, sg, se, R)
    eps = 1e-6
    for which, base in ((1, sg), (2, se), (3, R)):
        fd = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            up, dn = base.copy(), base.copy()
            up[idx] += eps
            dn[idx] -= eps
            args_up = [s, sg, se, R]
            args_dn = [s, sg, se, R]
            args_up[which], args_dn[which] = up, dn
            fd[idx] = (value(*args_up) - value(*args_dn)) / (2 * eps)
        np.testing.assert_allclose(got[which - 1], fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("T", [2, 3])
def test_rowwise__gradient_in_s_equals_finite_differences(T):
    """The derivative in s (its own node) against central differences, in numba mode too."""
    s, sg, se, R = _problem(T, r=40, seed=2)
    inputs, logdet, quad = _graph(T)
    total = 0.7 * logdet - 1.3 * quad
    for mode in (None, "NUMBA"):
        grad_s = pytensor.function(list(inputs), pt.grad(total, inputs[0]), mode=mode)
        value = pytensor.function(list(inputs), total, mode=mode)
        got = grad_s(s, sg, se, R)
        eps = 1e-6
        fd = np.array(
            [
                (value(s + eps * e, sg, se, R) - value(s - eps * e, sg, se, R)) / (2 * eps)
                for e in np.eye(s.size)
            ]
        )
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("T", [2, 3])
def test_rowwise__not_positive_definite_gives_nan_and_extreme_scales_stay_exact(T):
    """A row whose s_iΣg + Σe is not positive definite makes the sums and gradients NaN; rows
    of determinant ~1e±40 (products of 16 of them under- or overflow) keep exact logs."""
    s, sg, se, R = _problem(T, r=64, seed=3)
    inputs, logdet, quad = _graph(T)
    f = pytensor.function(list(inputs), [logdet, quad], mode="NUMBA")
    g = pytensor.function(list(inputs), pt.grad(logdet + quad, inputs[1:]), mode="NUMBA")
    bad = -np.eye(T)  # Σe negative definite: A_i fails where s_i = 0
    assert np.isnan(f(s, sg, bad, R)).all()
    d_sg, d_se, d_R = g(s, sg, bad, R)
    assert np.isnan(d_sg).all() and np.isnan(d_se).all() and np.isnan(d_R[s == 0]).all()
    for scale in (1e-20, 1e20):
        got = f(s, sg * scale, se * scale, R)
        A = s[:, None, None] * sg * scale + se * scale
        want_logdet = np.linalg.slogdet(A)[1].sum()
        want_quad = np.einsum("ia,ia->", R, np.linalg.solve(A, R[:, :, None])[:, :, 0])
        np.testing.assert_allclose(got, [want_logdet, want_quad], rtol=1e-11)
