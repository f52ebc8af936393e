"""Vectorized PSIS-LOO (bayeslmm.inference.psis) against arviz_stats' loop over observations."""

from __future__ import annotations

import arviz_stats  # noqa: F401 (registers the .azstats accessor)
import numpy as np
import pytest
import xarray as xr

from bayeslmm.inference.psis import psis_loo, tail_length


def _arviz(loglik: np.ndarray, r_eff: float, chains: int = 4) -> tuple[np.ndarray, ...]:
    draws, n = loglik.shape
    terms = xr.DataArray(loglik.reshape(chains, draws // chains, n), dims=("chain", "draw", "obs"))
    with np.errstate(all="ignore"):  # (arviz_stats overflows on the "far" terms' grid)
        parts = terms.azstats.loo(sample_dims=["chain", "draw"], r_eff=r_eff)
    return tuple(np.asarray(p.values, dtype=float) for p in parts)


def _terms(kind: str, draws: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "gaussian":  # well-behaved terms: k well below 0.7
        return -0.5 * (0.3 * rng.standard_normal((draws, n)) + rng.standard_normal(n)) ** 2
    if kind == "heavy":  # influential observations: k above 0.7
        return -5.0 * rng.gamma(0.5, 1.0, (draws, n)) - rng.standard_normal((draws, n)) ** 2
    if kind == "far":  # log-likelihoods far below −745 (exp underflows without the shifts)
        return -1e4 - 50.0 * rng.standard_normal((draws, n)) ** 2
    if kind == "repeated":  # MCMC repeats draws: ties in the tail
        base = -0.5 * rng.standard_normal((draws // 4, n)) ** 2
        return np.repeat(base, 4, axis=0)
    raise AssertionError(kind)


@pytest.mark.filterwarnings("ignore:.*[Pp]areto.*:UserWarning")
@pytest.mark.parametrize("kind", ["gaussian", "heavy", "far", "repeated"])
@pytest.mark.parametrize(("draws", "r_eff"), [(4000, 0.85), (400, 1.0), (200, 0.7)])
def test_psis_loo__equals_arviz_stats_pointwise(kind, draws, r_eff):
    seed = ["gaussian", "heavy", "far", "repeated"].index(kind) * 10_000 + draws
    loglik = _terms(kind, draws, 60, np.random.default_rng(seed))
    ours = psis_loo(loglik, r_eff)
    theirs = _arviz(loglik, r_eff)
    # one draw holding all the weight (log weights 700 nats apart): the tail's exceedances
    # underflow, arviz_stats returns k ≈ 0.02 with a NaN elpd, psis_loo a finite elpd with
    # k = inf (flagged as unreliable, as it is)
    degenerate = np.isnan(theirs[0])
    assert not degenerate.any() or kind == "far"
    assert np.all(np.isinf(ours[1][degenerate])) and np.all(np.isfinite(ours[0]))
    for name, a, b in zip(("elpd_i", "pareto_k", "p_loo_i"), ours, theirs, strict=True):
        a, b = a[~degenerate], b[~degenerate]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)
    if kind == "heavy":
        assert (ours[1] > 0.7).any()  # the smoothing was exercised where it matters


def test_psis_loo__a_block_equals_the_whole():
    rng = np.random.default_rng(3)
    loglik = _terms("gaussian", 1000, 700, rng)
    whole = psis_loo(loglik, 0.9)
    part = psis_loo(loglik[:, 300:450], 0.9)
    for a, b in zip(whole, part, strict=True):
        np.testing.assert_array_equal(a[300:450], b)


def test_psis_loo__elpd_of_constant_terms_is_the_term():
    loglik = np.tile(np.linspace(-3.0, -1.0, 5), (500, 1)) + 1e-9 * np.random.default_rng(
        0
    ).standard_normal((500, 5))
    elpd, _, p_loo = psis_loo(loglik)
    np.testing.assert_allclose(elpd, np.linspace(-3.0, -1.0, 5), atol=1e-8)
    np.testing.assert_allclose(p_loo, 0.0, atol=1e-8)


def test_tail_length__follows_arviz_rule():
    assert tail_length(4000, 1.0) == int(np.floor(3 * np.sqrt(4000)))
    assert tail_length(200, 1.0) == 40
    assert tail_length(10, 1.0) == 5


def test_psis_loo__refuses_a_vector():
    with pytest.raises(ValueError, match="draws × observations"):
        psis_loo(np.zeros(10))
