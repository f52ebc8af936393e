"""Liability-scale h² (Lee et al. 2011): closed form, ascertainment, prevalence priors, REML."""

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.liability import liability_h2


def _closed_form(h2, K, P=None):
    """Lee et al. (2011) eq. 23, written out: threshold t, normal density z at t."""
    P = K if P is None else P
    t = stats.norm.ppf(1 - K)
    z = np.exp(-(t**2) / 2) / np.sqrt(2 * np.pi)
    return h2 * K**2 * (1 - K) ** 2 / (z**2 * P * (1 - P))


@pytest.mark.parametrize("K", [0.001, 0.01, 0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("h2", [0.0, 0.05, 0.3, 1.0])
def test_liability_h2__equals_closed_form(h2, K):
    assert liability_h2(h2, K) == pytest.approx(_closed_form(h2, K), rel=1e-12, abs=1e-15)
    for P in (0.05, 0.5):
        expected = _closed_form(h2, K, P)
        assert liability_h2(h2, K, P) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_liability_h2__dempster_lerner_value():
    # K = 0.5: t = 0, z = 1/√(2π), factor K(1 − K)/z² = 0.25 · 2π = π/2
    assert liability_h2(0.2, 0.5) == pytest.approx(0.2 * np.pi / 2, rel=1e-12)


def test_liability_h2__ascertained_reduces_to_population_when_p_equals_k():
    h2 = np.linspace(0, 1, 11)
    for K in (0.01, 0.2, 0.6):
        np.testing.assert_allclose(liability_h2(h2, K, sample_prevalence=K), liability_h2(h2, K))
    # a case-control sample with half cases of a rare disease: P(1 − P) = 0.25 > K(1 − K)
    assert liability_h2(0.3, 0.01, 0.5) < liability_h2(0.3, 0.01)


def test_liability_h2__array_and_draw_shapes():
    h2 = np.full((2, 5), 0.3)
    k = np.linspace(0.05, 0.5, 10)
    out = liability_h2(h2, k)  # one prevalence per h² draw, flattened
    assert out.shape == (2, 5)
    np.testing.assert_allclose(out.ravel(), _closed_form(0.3, k))
    assert liability_h2(0.3, k).shape == (10,)
    with pytest.raises(bl.InputError, match="do not match the h² draws"):
        liability_h2(h2, np.full(7, 0.1))


def _posterior_h2(rng, chains=2, draws=2000):
    return np.clip(rng.normal(0.3, 0.03, size=(chains, draws)), 0, 1)


def test_liability_h2__prevalence_prior_propagates():
    rng = np.random.default_rng(1)
    h2 = _posterior_h2(rng)
    beta = stats.beta(20, 180)  # K around 0.1, sd 0.02
    fixed = liability_h2(h2, 0.1)
    for prior in (beta, bl.Prior("Beta", alpha=20, beta=180)):
        out = liability_h2(h2, prior, random_seed=3)
        assert out.shape == h2.shape
        np.testing.assert_array_equal(out, liability_h2(h2, prior, random_seed=3))  # seeded
        assert out.std() > 1.5 * fixed.std()
        # mean: E[h²] · E[f(K)] (independent), E[f(K)] by quadrature against the Beta density
        factor = integrate.quad(lambda k: _closed_form(1.0, k) * beta.pdf(k), 0, 1)[0]
        expected = h2.mean() * factor
        se = out.std() / np.sqrt(out.size)
        assert abs(out.mean() - expected) < 4 * se, (out.mean(), expected, se)
    single = liability_h2(0.3, beta, random_seed=0, n_draws=500)
    assert single.shape == (500,)


def test_liability_h2__inference_data_infers_case_proportion():
    rng = np.random.default_rng(2)
    h2 = xr.DataArray(_posterior_h2(rng, draws=300), dims=("chain", "draw"))
    h2 = h2.assign_coords(chain=[0, 1], draw=np.arange(300))
    y = (rng.uniform(size=200) < 0.4).astype(float)
    observed = xr.Dataset({"y": xr.DataArray(y, dims="sample")})
    idata = xr.DataTree.from_dict({"posterior": xr.Dataset({"h2": h2}), "observed_data": observed})
    out = liability_h2(idata, 0.05)
    assert isinstance(out, xr.DataArray)
    assert out.dims == ("chain", "draw") and out.name == "h2_liability"
    np.testing.assert_allclose(out.values, _closed_form(h2.values, 0.05, y.mean()))
    np.testing.assert_allclose(liability_h2(idata, 0.05, 0.05).values, liability_h2(h2, 0.05))
    np.testing.assert_allclose(
        liability_h2(h2, 0.05).values, _closed_form(h2.values, 0.05)
    )  # a DataArray input keeps its coordinates
    idata["observed_data"]["y"] = idata["observed_data"]["y"] + 0.5
    with pytest.raises(bl.InputError, match="not 0/1.*sample_prevalence"):
        liability_h2(idata, 0.05)
    assert liability_h2(idata, 0.05, 0.4).shape == (2, 300)
    idata.attrs["model"] = "probit_lmm"
    with pytest.raises(bl.InputError, match="already on the liability scale"):
        liability_h2(idata, 0.05, 0.4)


@pytest.mark.parametrize(
    ("h2", "prevalence", "sample_prevalence", "match"),
    [
        (0.3, 0.0, None, r"prevalence must lie in \(0, 1\)"),
        (0.3, 1.0, None, r"prevalence must lie in \(0, 1\)"),
        (0.3, -0.2, None, r"prevalence must lie in \(0, 1\)"),
        (0.3, np.nan, None, "NaN"),
        (-0.1, 0.1, None, r"h2_observed must lie in \[0, 1\]"),
        (1.2, 0.1, None, r"h2_observed must lie in \[0, 1\]"),
        ([0.2, np.nan], 0.1, None, "NaN"),
        (0.3, 0.1, 1.0, r"sample_prevalence .* must lie in \(0, 1\)"),
        (0.3, "ten percent", None, "prevalence must be a number"),
        ("high", 0.1, None, "h2_observed must be"),
        (0.3, bl.Prior("Normal", mu=0.1, sigma=0.2), None, r"prevalence must lie in \(0, 1\)"),
        (0.3, bl.Prior("Flat"), None, "cannot be drawn from"),
    ],
)
def test_liability_h2__bad_inputs_raise(h2, prevalence, sample_prevalence, match):
    with pytest.raises(bl.InputError, match=match):
        liability_h2(h2, prevalence, sample_prevalence, random_seed=0)


def test_liability_h2__recovers_simulated_liability_h2_by_reml():
    # Liability = the simulated Gaussian trait (h² = 0.5); the top 30 % are cases (K = P = 0.3).
    data = simulate(2000, 300, 0.5, seed=4)
    cases = (data.y > np.quantile(data.y, 0.7)).astype(float)
    fit = bl.reml(cases, bl.spectral_from_genotypes(data.W))
    h2_l = liability_h2(fit.h2, 0.3)
    se_l = fit.h2_se * h2_l / fit.h2  # ≈ 0.044 on the liability scale
    assert se_l < 0.05
    # seeds 1-8 gave |error| ≤ 0.06 (max 1.4 SE); 0.15 is 3.4 SE
    assert abs(h2_l - 0.5) < 0.15, (fit.h2, h2_l, se_l)
    assert abs(fit.h2 - 0.5) > 0.15  # the observed scale alone is far off
