"""The G×E relationship K ∘ (e eᵀ) (bayeslmm.relatedness.gxe) and its REML component."""

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.errors import InputError
from bayeslmm.relatedness.gxe import gxe_kinship
from bayeslmm.relatedness.relationship import Kinship
from models.gxe import reference as gxe_ref
from models.multi_lmm import reference as ref


def _data(seed, n=60, m=150, h2=0.4, gxe=0.3):
    """y with an additive and a G×E random effect (a random genetic slope on e)."""
    rng = np.random.default_rng(seed)
    G = rng.binomial(2, rng.uniform(0.1, 0.5, m), (n, m)).astype(float)
    G = G[:, G.std(0) > 0]  # (a small n can leave a SNP monomorphic)
    W = (G - G.mean(0)) / G.std(0)
    m = W.shape[1]
    K = W @ W.T / m + 0.05 * np.eye(n)
    env = rng.normal(0.0, 1.0, n)
    X = np.column_stack([np.ones(n), env])  # the main effect of e is a covariate
    u = W @ rng.normal(0, np.sqrt(h2 / m), m)
    a = W @ rng.normal(0, np.sqrt(gxe / m), m)
    y = X @ [0.5, 0.2] + u + env * a + rng.normal(0, np.sqrt(1 - h2 - gxe), n)
    return y, X, K, env


def test_gxe_kinship__elementwise_product():
    _, _, K, env = _data(1)
    out = gxe_kinship(K, env)
    np.testing.assert_allclose(out, gxe_ref.gxe_relationship(K, env), rtol=1e-15, atol=0)
    assert np.allclose(out, out.T) and np.linalg.eigvalsh(out).min() > -1e-12  # Schur product


def test_gxe_kinship__aligned_by_sample_id():
    _, _, K, env = _data(2, n=20)
    ids = np.array([f"s{i}" for i in range(20)])
    kin = Kinship(matrix=K, samples=ids, n_snps=150, method="centered")
    shuffled = pd.Series(env, index=ids, name="smoking").iloc[::-1]
    out = gxe_kinship(kin, shuffled)
    assert isinstance(out, Kinship) and list(out.samples) == list(ids)
    assert out.method == "gxe(centered)" and out.n_snps == 150
    np.testing.assert_array_equal(out.matrix, K * np.outer(env, env))
    frame = gxe_kinship(kin.to_frame(), shuffled)
    pd.testing.assert_frame_equal(frame, out.to_frame())
    # a plain K has the positional IDs "1".."N"
    positional = pd.Series(env, index=[str(i + 1) for i in range(20)]).sample(
        frac=1, random_state=0
    )
    np.testing.assert_array_equal(gxe_kinship(K, positional), out.matrix)


def test_gxe_kinship__errors():
    _, _, K, env = _data(3, n=20)
    ids = [str(i + 1) for i in range(20)]
    with pytest.raises(InputError, match=r"environment 'env' is missing for 1 of K's 20 samples"):
        gxe_kinship(K, np.r_[env[:-1], np.nan])
    with pytest.raises(InputError, match=r"'smoking' is missing for 2 of K's 20.*\['19', '20'\]"):
        gxe_kinship(K, pd.Series(env[:18], index=ids[:18], name="smoking"))
    with pytest.raises(InputError, match=r"environment 'env' is constant \(1\).*varies"):
        gxe_kinship(K, np.ones(20))
    with pytest.raises(InputError, match=r"'diet' is not numeric.*0/1"):
        gxe_kinship(K, pd.Series(["a", "b"] * 10, index=ids, name="diet"))
    with pytest.raises(InputError, match=r"env has 19 values but K has 20 samples"):
        gxe_kinship(K, env[:-1])
    with pytest.raises(InputError, match=r"K must be a square matrix"):
        gxe_kinship(K[:, :5], env)


@pytest.mark.parametrize(("method", "seed"), [("reml", 1), ("ml", 2)])
def test_reml_components__with_gxe_kinship_equals_brute_force(method, seed):
    y, X, K, env = _data(seed)
    Kgxe = gxe_kinship(K, env)
    fit = bl.reml(y, [K, Kgxe], X[:, 1:], method=method)
    Ks = [K / np.mean(np.diag(K)), Kgxe / np.mean(np.diag(Kgxe))]
    brute = ref.brute_force_fit(y, X, Ks, method)  # scipy.optimize on the dense likelihood
    assert fit.loglik >= brute["loglik"] - 1e-7  # never worse than brute force
    assert fit.loglik == pytest.approx(brute["loglik"], abs=1e-6)
    np.testing.assert_allclose(fit.h2_components.values, brute["h2_components"], atol=1e-4)
    np.testing.assert_allclose(fit.sigma_g2_components.values, brute["sigma_k2"], atol=1e-4)
    assert fit.sigma_e2 == pytest.approx(brute["sigma_e2"], abs=1e-4)
    np.testing.assert_allclose(fit.beta.values, brute["beta"], atol=1e-4)
    assert np.all(np.isfinite(fit.h2_components_se))


def test_multi_kinship_model__with_gxe_component():
    y, X, K, env = _data(4)
    model = bl.kinship_model(y, {"additive": K, "gxe": gxe_kinship(K, env)}, X[:, 1:])
    assert model.coords["component"] == ("additive", "gxe")
    assert model.named_vars_to_dims["h2_component"] == ("component",)
    assert np.isfinite(model.compile_logp()(model.initial_point()))
