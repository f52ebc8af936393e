"""The two-trait model's sampling coordinates: the same posterior as the dense model and priors.

For T = 2 the correlations are sampled as ``rg_unit`` and ``re_unit`` ((r + 1)/2 ~ Beta(η, η),
through its log-odds); the log-density in those coordinates must be the dense likelihood with B
integrated out under its prior (models/mv_lmm) plus the priors on (h², σp, rg, re) plus the
log-Jacobian of the map from the sampler's coordinates, each computed here independently (scipy
densities, PyMC's LKJCorr, finite-difference Jacobians).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

import bayeslmm as bl
from bayeslmm.families.base import info_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.mv_lmm.reference import dense_marginal_loglik  # noqa: E402

ETA_G, ETA_E = 2.0, 3.0


def _data(n=40, rank=None, seed=0, rho=0.7):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(n, rank or 2 * n))
    K = G @ G.T / G.shape[1]
    K /= np.mean(np.diag(K))
    ids = [f"s{i}" for i in range(n)]
    x = rng.normal(size=n)
    e = rng.normal(size=(n, 2)) @ np.linalg.cholesky([[1.0, rho], [rho, 1.0]]).T
    Y = pd.DataFrame({"a": 3.0 + 2 * x + e[:, 0], "b": 100 + 50 * e[:, 1]}, index=ids)
    X = pd.DataFrame({"x": x}, index=ids)
    return Y, pd.DataFrame(K, index=ids, columns=ids), X


@functools.cache
def _lkj() -> Any:
    """PyMC's LKJCorr log-density of a 2×2 Cholesky factor, compiled once: f(L, η)."""
    L, eta = pt.dmatrix("L"), pt.dscalar("eta")
    return pytensor.function([L, eta], pm.logp(pm.LKJCorr.dist(n=2, eta=eta), L))


def _lkj_logpdf(r: float, eta: float) -> float:
    """LKJ(η) density of a 2×2 correlation r, by PyMC's LKJCorr (density in L21 = r)."""
    return float(_lkj()(np.array([[1.0, 0.0], [r, np.sqrt(1.0 - r * r)]]), eta))


def test_lkj_of_two_traits_is_scaled_beta():
    for eta in (1.0, ETA_G, ETA_E):
        for r in (-0.9, 0.0, 0.3, 0.95):
            want = stats.beta.logpdf((r + 1) / 2, eta, eta) - np.log(2.0)
            assert np.isclose(_lkj_logpdf(r, eta), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rank", [None, 15])
def test_two_trait_logp__dense_likelihood_plus_priors_plus_jacobian(rank):
    Y, K, X = _data(rank=rank)
    priors = {
        "rg_cholesky": bl.Prior("LKJCorr", n=2, eta=ETA_G),
        "re_cholesky": bl.Prior("LKJCorr", n=2, eta=ETA_E),
    }
    model = bl.kinship_model(Y, K, X, priors=priors)
    info = info_of(model)
    assert [v.name for v in model.value_vars][2:] == ["rg_unit_logodds__", "re_unit_logodds__"]
    names = ["h2", "sigma_p", "rg", "re", "Sigma_g", "Sigma_e"]
    outs = [model.logp(), *(model[n] for n in names)]
    fn = model.compile_fn(model.replace_rvs_by_values(outs), point_fn=True)
    rng = np.random.default_rng(1)
    start = model.initial_point()
    for _ in range(4):
        point = {k: v + rng.normal(scale=0.7, size=np.shape(v)) for k, v in start.items()}
        got, h2, sigma_p, rg, re, sg, se = fn(point)
        r_g, r_e = rg[1, 0], re[1, 0]
        # Σ from (h², σp, rg, re): the standardized model, back in the traits' units
        sd_g, sd_e = np.sqrt(h2) * sigma_p, np.sqrt(1 - h2) * sigma_p
        scale = np.sqrt(np.diag(sg) / (h2 * sigma_p**2))
        assert np.allclose(sg, np.outer(sd_g * scale, sd_g * scale) * rg)
        assert np.allclose(se, np.outer(sd_e * scale, sd_e * scale) * re)
        # B integrated out under its prior: beta_std ~ N(0, 10²), B = b + A·beta_std·C
        c, offset, transform = info.extra["standardization"]
        B_cov = np.kron(np.diag(c**2), 100.0 * transform @ transform.T)
        K_dense = info.spectral.matrix()
        loglik = dense_marginal_loglik(info.data.y, info.data.X, K_dense, offset, B_cov, sg, se)
        prior = (
            stats.beta.logpdf(h2, 1, 1).sum()
            + (np.log(2.0) + stats.t.logpdf(sigma_p, 3)).sum()
            + _lkj_logpdf(r_g, ETA_G)
            + _lkj_logpdf(r_e, ETA_E)
        )
        # the map (logit h², log σp, w_g, w_e) → (h², σp, rg, re) is diagonal in blocks;
        # the correlations' derivatives by finite differences
        jacobian = np.log(h2 * (1 - h2)).sum() + np.log(sigma_p).sum()
        for free, out in (("rg_unit_logodds__", 2), ("re_unit_logodds__", 3)):
            step = 1e-6
            up = {**point, free: point[free] + step}
            down = {**point, free: point[free] - step}
            derivative = (fn(up)[1 + out][1, 0] - fn(down)[1 + out][1, 0]) / (2 * step)
            jacobian += np.log(abs(derivative))
        assert np.isclose(got, loglik + prior + jacobian, rtol=1e-8, atol=1e-6)


def test_three_traits_keep_the_lkj_cholesky():
    Y, K, X = _data()
    Y = Y.assign(c=np.random.default_rng(5).normal(size=len(Y)))
    model = bl.kinship_model(Y, K, X)
    names = [v.name for v in model.value_vars]
    assert "rg_cholesky_cholesky_corr__" in names and "re_unit_logodds__" not in names
