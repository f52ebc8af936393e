"""Fits that do not depend on the units or offsets of y and of the covariates (issue 10, point 2).

A phenotype measured in raw units (platelets per µL, a date, 1e6 + noise) is an ordinary input.
Before the fix, the profile RSS and the null-space sums of squares were formed from uncentred
data: ``bl.reml(y + 1e4, K, X)`` halved the SE of h², +1e5 made it 20× too small, +1e6 gave
h² = 1 (catastrophic cancellation), and the posterior moved too.

Tolerances: the input itself carries the offset's rounding error, |b|·2⁻⁵³ per value, so
y → a·y + b is tested with |b|/|a| ≤ 1e8 (beyond, the float64 phenotype has lost the digits:
a = 1e-3, b = 1e8 leaves about 1e-5 of relative noise, and h² moves by ~4e-6).
"""

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import bayeslmm as bl
from bayeslmm.errors import KinshipWarning
from tests.nuts import sample_counted

N = 150
RTOL = 1e-6


def _data(seed: int = 7, n: int = N, m: int = 300):
    rng = np.random.default_rng(seed)
    G = rng.binomial(2, rng.uniform(0.1, 0.5, m), size=(n, m)).astype(float)
    W = (G - G.mean(0)) / G.std(0)
    K = W @ W.T / m
    X = rng.normal(size=(n, 2))
    y = X @ [0.4, -0.2] + W @ rng.normal(0, np.sqrt(0.6 / m), m) + rng.normal(0, 0.6, n)
    return y, K, X, G


DATA = _data()
FITS = {method: bl.reml(DATA[0], DATA[1], DATA[2], method=method) for method in ("reml", "ml")}


def _assert_same_fit(fit, ref, a: float, n_eff: int) -> None:
    assert fit.h2 == pytest.approx(ref.h2, rel=RTOL)
    assert fit.h2_se == pytest.approx(ref.h2_se, rel=RTOL)
    assert fit.sigma_g2 == pytest.approx(a**2 * ref.sigma_g2, rel=10 * RTOL)
    # the reported log-likelihood is that of the user's y: it moves by the Jacobian alone
    assert fit.loglik + n_eff * np.log(abs(a)) == pytest.approx(ref.loglik, abs=1e-5)
    # slopes back in the user's units, to a millionth of their standard error
    slopes, slopes_ref = fit.beta.values[1:] / a, ref.beta.values[1:]
    np.testing.assert_allclose(slopes, slopes_ref, rtol=0, atol=RTOL * ref.beta_se.values[1:].min())
    np.testing.assert_allclose(fit.beta_se.values / abs(a), ref.beta_se.values, rtol=10 * RTOL)


@pytest.mark.parametrize("method", ["reml", "ml"])
@settings(max_examples=20, deadline=None)
@given(
    log_a=st.floats(-3, 4),
    sign=st.sampled_from([1.0, -1.0]),
    offset=st.floats(-1e8, 1e8),
)
@example(log_a=0.0, sign=1.0, offset=1e4)
@example(log_a=0.0, sign=1.0, offset=1e6)
@example(log_a=0.0, sign=1.0, offset=1e8)
@example(log_a=-3.0, sign=1.0, offset=1e5)
@example(log_a=4.0, sign=-1.0, offset=-1e8)
def test_reml__invariant_to_affine_phenotype(method, log_a, sign, offset):
    a = sign * 10.0**log_a
    b = float(np.clip(offset, -1e8 * abs(a), 1e8 * abs(a)))  # see the module docstring
    y, K, X, _ = DATA
    fit = bl.reml(a * y + b, K, X, method=method)
    n_eff = N - 3 if method == "reml" else N
    _assert_same_fit(fit, FITS[method], a, n_eff)


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("shift, scale", [(1e6, 1.0), (0.0, 1e5), (-1e6, 1e-2)])
def test_reml__invariant_to_covariate_shift_and_scale(method, shift, scale):
    y, K, X, _ = DATA
    Xs = X.copy()
    Xs[:, 0] = Xs[:, 0] * scale + shift
    fit, ref = bl.reml(y, K, Xs, method=method), FITS[method]
    assert fit.h2 == pytest.approx(ref.h2, rel=RTOL)
    assert fit.h2_se == pytest.approx(ref.h2_se, rel=RTOL)
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-6)
    assert fit.beta["x1"] * scale == pytest.approx(ref.beta["x1"], rel=RTOL)
    assert fit.beta_se["x1"] * scale == pytest.approx(ref.beta_se["x1"], rel=RTOL)
    assert fit.beta["x2"] == pytest.approx(ref.beta["x2"], rel=RTOL)
    # the intercept is that of the shifted covariate
    intercept = ref.beta["intercept"] - ref.beta["x1"] * shift / scale
    assert fit.beta["intercept"] == pytest.approx(intercept, rel=RTOL, abs=RTOL * ref.beta_se["x1"])


def test_reml__several_components_invariant_to_affine_phenotype():
    y, K, X, _ = DATA
    K2 = np.random.default_rng(3).normal(size=(N, 40))
    K2 = K2 @ K2.T / 40
    ref = bl.reml(y, [K, K2], X)
    fit = bl.reml(3.0 * y + 1e6, [K, K2], X)
    assert fit.h2 == pytest.approx(ref.h2, rel=RTOL)
    assert fit.h2_se == pytest.approx(ref.h2_se, rel=RTOL)
    np.testing.assert_allclose(fit.h2_components, ref.h2_components, rtol=RTOL, atol=1e-9)
    assert fit.loglik + (N - 3) * np.log(3.0) == pytest.approx(ref.loglik, abs=1e-5)
    np.testing.assert_allclose(fit.beta.values[1:] / 3, ref.beta.values[1:], rtol=RTOL)


def _scan(y, X):
    G = DATA[3][:, :60]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.DataWarning)
        return bl.scan(G, y, K=DATA[1], X=X, loco=False, progress=False)


SCAN_REF = None


@pytest.mark.parametrize(
    "a, b, shift, scale",
    [(1.0, 1e6, 0.0, 1.0), (1e-3, 1e4, 0.0, 1.0), (1e4, -1e8, 0.0, 1.0), (1.0, 0.0, 1e6, 1e5)],
)
def test_scan__invariant_to_affine_phenotype_and_covariates(a, b, shift, scale):
    global SCAN_REF
    y, _, X, _ = DATA
    if SCAN_REF is None:
        SCAN_REF = _scan(y, X)
    Xs = X.copy()
    Xs[:, 0] = Xs[:, 0] * scale + shift
    table = _scan(a * y + b, Xs)
    for column in ("p_wald", "p_lrt", "p_score"):
        np.testing.assert_allclose(table[column], SCAN_REF[column], rtol=RTOL)
    np.testing.assert_allclose(table["log10_bf"], SCAN_REF["log10_bf"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(table["se"] / a, SCAN_REF["se"], rtol=RTOL)
    np.testing.assert_allclose(
        table["beta"] / a, SCAN_REF["beta"], atol=RTOL * SCAN_REF["se"].min()
    )


def _map_h2(y, X):
    idata = bl.map_estimate(bl.kinship_model(y, DATA[1], X))
    return float(idata["posterior"]["h2"].values.ravel()[0])


@pytest.fixture(scope="module")
def map_ref():
    return _map_h2(DATA[0], DATA[2])


@pytest.mark.parametrize("b", [1e4, 1e6, 1e8])
def test_map_estimate__h2_invariant_to_phenotype_offset(map_ref, b):
    assert _map_h2(DATA[0] + b, DATA[2]) == pytest.approx(map_ref, rel=RTOL)


@pytest.mark.parametrize("a, shift", [(1e-3, 0.0), (1.0, 1e6), (1e4, -3e5)])
def test_map_estimate__h2_invariant_to_phenotype_scale_and_covariate_shift(map_ref, a, shift):
    X = DATA[2].copy()
    X[:, 0] += shift
    assert _map_h2(a * DATA[0], X) == pytest.approx(map_ref, rel=RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("b", [1e6, 1e8])  # 1e6 passed before the fix too (centred K, N = 150)
def test_sample__h2_posterior_invariant_to_phenotype_offset(b):
    y, K, X, _ = DATA
    kwargs = {"draws": 500, "tune": 500, "chains": 2, "random_seed": 11, "sampler": "pymc"}
    ref = sample_counted(bl.kinship_model(y, K, X), **kwargs)
    moved = sample_counted(bl.kinship_model(y + b, K, X), **kwargs)
    h_ref = ref["posterior"]["h2"].values.ravel()
    h_moved = moved["posterior"]["h2"].values.ravel()
    # Monte Carlo error of a difference of two means, with a margin for autocorrelation
    mcse = np.sqrt(h_ref.var() / h_ref.size + h_moved.var() / h_moved.size) * 2
    assert abs(h_moved.mean() - h_ref.mean()) < 4 * mcse
    assert h_moved.std() == pytest.approx(h_ref.std(), rel=0.15)
    beta_ref = ref["posterior"]["beta"].values.reshape(-1, 3).mean(0)
    beta_moved = moved["posterior"]["beta"].values.reshape(-1, 3).mean(0)
    assert beta_moved[0] - b == pytest.approx(beta_ref[0], abs=0.1)


def test_reml__kinship_near_identity_is_not_identifiable():
    y, _, X, _ = DATA
    noise = np.random.default_rng(1).normal(0, 1e-6, size=(N, N))
    K = np.eye(N) + (noise + noise.T) / 2
    with pytest.warns(KinshipWarning, match=r"h² is not identifiable.*multiple of the identity"):
        fit = bl.reml(y, K, X)
    assert fit.identifiable is False
    assert FITS["reml"].identifiable is True


def test_reml__identical_components_are_not_identifiable():
    y, K, X, _ = DATA
    fit = bl.reml(y, [K, K], X)  # no warning: the total is identified (test_components)
    assert fit.identifiable is False
    assert "only their total is estimable" in str(fit)
    assert bl.reml(y, [K, K + np.eye(N)], X).identifiable is False  # K2 = K1 + I: dependent
    assert fit.h2 == pytest.approx(FITS["reml"].h2, abs=1e-4)  # the total still is
