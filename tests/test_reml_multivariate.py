"""Multi-trait REML/ML (issue 12, point 2): bayeslmm.estimation.multivariate.

Checked against the dense NT×NT likelihood and its brute-force optimizer
(models/mv_lmm/reference.py) and against GEMMA 0.98.5's mvLMM on the EUR example
(tests/data/eur_mv/, frozen by its run_gemma.sh).
"""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

import bayeslmm as bl
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.estimation import multivariate as mv
from bayeslmm.linalg.spectral import spectral_from_kinship
from models.mv_lmm import reference as ref

DATA = Path(__file__).resolve().parent / "data"
EUR_MV = DATA / "eur_mv"


@pytest.fixture(autouse=True)
def one_blas_thread():
    # the dense references are O((NT)³); on a shared machine two BLAS threads are slower
    with threadpool_limits(1):
        yield


def _kinship(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K = WW'/M of standardized simulated genotypes (mean diagonal 1) and its square root."""
    rng = np.random.default_rng(seed)
    G = rng.binomial(2, 0.3, size=(n, m)).astype(float)
    G = G[:, G.std(axis=0) > 0]
    W = (G - G.mean(axis=0)) / G.std(axis=0)
    K = W @ W.T / W.shape[1]
    return K, W / np.sqrt(W.shape[1])


def _traits(n, T, seed, Cg, Ce, m=400, offset=0.0):
    """Y = Z_g Cg + E Ce with Z_g ~ N(0, K) columns: Σg = Cg'Cg, Σe = Ce'Ce."""
    K, root = _kinship(n, m, seed)
    rng = np.random.default_rng(seed + 1000)
    genetic = root @ rng.normal(size=(root.shape[1], T))
    Y = genetic @ np.asarray(Cg) + rng.normal(size=(n, T)) @ np.asarray(Ce) + offset
    return Y, K, rng


def _design(n, rng):
    return np.column_stack([np.ones(n), rng.normal(size=n)])


def _random_covariances(T, rng):
    A = rng.normal(size=(T, T))
    B = rng.normal(size=(T, T))
    return A @ A.T, B @ B.T + 0.2 * np.eye(T)


def _check_finite(fit):
    for name in ("Vg_se", "Ve_se", "h2_se", "rg_se", "re_se"):
        values = np.asarray(getattr(fit, name), dtype=float)
        assert np.isfinite(values).all(), name
    assert np.isfinite(fit.B_se.to_numpy()).all()
    assert np.isfinite(fit.loglik)


# --------------------------------------------------------------------------------------------
# The spectral likelihood equals the dense one
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize(
    ("T", "m", "ridge", "rank"),
    [(2, 400, 0.1, 80), (3, 400, 0.1, 80), (2, 400, 0.0, 79), (3, 60, 0.0, 60)],
    ids=["T2-full", "T3-full", "T2-centred", "T3-lowrank"],
)
def test_evaluate__equals_dense_loglik(method, T, m, ridge, rank):
    n = 80
    Y, K, rng = _traits(n, T, 3, np.eye(T), np.eye(T), m=m)
    K = K + ridge * np.eye(n)  # a centred K has rank N − 1; M < N SNPs at most M
    X = _design(n, rng)
    spectral = spectral_from_kinship(K, normalize=False)
    assert spectral.rank == rank if ridge else spectral.rank <= rank < n
    rot = mv.rotate_traits(spectral, Y, X)
    for _ in range(4):
        sg, se = _random_covariances(T, rng)
        at = mv.evaluate(rot, sg, se, method)
        dense = ref.loglik(Y, X, K, sg, se, method)
        assert at.loglik == pytest.approx(dense, abs=1e-9)
        V = ref.covariance(K, sg, se)
        np.testing.assert_allclose(at.B, ref.gls(Y, X, V), rtol=1e-9, atol=1e-10)
    # the literal scipy multivariate normal at B̂ is the ML value
    at = mv.evaluate(rot, sg, se, "ml")
    assert at.loglik == pytest.approx(ref.dense_loglik(Y, X, K, at.B, sg, se), abs=1e-9)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_evaluate__gradient_equals_finite_differences(method):
    n, T = 60, 3
    Y, K, rng = _traits(n, T, 5, np.eye(T), np.eye(T), m=40)  # with a null space
    X = _design(n, rng)
    rot = mv.rotate_traits(spectral_from_kinship(K), Y, X)
    sg, se = _random_covariances(T, rng)
    at = mv.evaluate(rot, sg, se, method, gradient=True)
    h = 1e-6
    for a, b in [(0, 0), (1, 0), (2, 1), (2, 2)]:
        E = np.zeros((T, T))
        E[a, b] = E[b, a] = h
        scale = 1.0 if a == b else 2.0  # an off-diagonal step moves two entries
        for S, grad, name in ((sg, at.grad_g, "g"), (se, at.grad_e, "e")):
            up = mv.evaluate(rot, *((S + E, se) if name == "g" else (sg, S + E)), method)
            down = mv.evaluate(rot, *((S - E, se) if name == "g" else (sg, S - E)), method)
            numeric = (up.loglik - down.loglik) / (2 * h)
            assert numeric == pytest.approx(scale * grad[a, b], rel=1e-5, abs=1e-5)


def test_evaluate__one_trait_equals_the_univariate_profile():
    # T = 1 reduces to bl.reml's likelihood: at its (h², σp²) the two agree
    n = 70
    Y, K, rng = _traits(n, 1, 9, [[1.0]], [[1.0]])
    X = _design(n, rng)
    fit = bl.reml(Y[:, 0], K, X[:, 1])
    rot = mv.rotate_traits(spectral_from_kinship(K), Y, X)
    at = mv.evaluate(rot, np.array([[fit.sigma_g2]]), np.array([[fit.sigma_e2]]))
    assert at.loglik == pytest.approx(fit.loglik, abs=1e-8)


# --------------------------------------------------------------------------------------------
# The optimum equals the dense brute-force optimizer's
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "ridge"), [("reml", 0.0), ("ml", 0.05)])
def test_reml_multivariate__equals_dense_optimizer(method, ridge):
    # (ML on a K with no null space: see the next test for a centred K)
    n = 150
    Y, K, rng = _traits(n, 2, 25, [[1.0, 0.5], [0.0, 0.8]], [[1.0, -0.3], [0.0, 0.9]])
    K = K + ridge * np.eye(n)
    x = rng.normal(size=n)
    fit = bl.reml_multivariate(Y, K, x, method=method)
    dense = ref.fit(Y, np.column_stack([np.ones(n), x]), K / np.trace(K) * n, method)
    assert fit.at_boundary is False and fit.se_method == "observed information"
    assert fit.converged
    assert fit.loglik >= dense["loglik"] - 1e-9
    assert fit.loglik == pytest.approx(dense["loglik"], abs=1e-7)
    np.testing.assert_allclose(fit.Vg.to_numpy(), dense["sigma_g"], atol=2e-5)
    np.testing.assert_allclose(fit.Ve.to_numpy(), dense["sigma_e"], atol=2e-5)
    np.testing.assert_allclose(fit.B.to_numpy(), dense["B"], atol=2e-5)
    _check_finite(fit)


def _ml_centred(seed):
    n = 150
    Y, K, rng = _traits(n, 2, seed, [[1.0, 0.5], [0.0, 0.8]], [[1.0, -0.3], [0.0, 0.9]])
    x = rng.normal(size=n)
    return Y, K, np.column_stack([np.ones(n), x])


def test_reml_multivariate__ml_with_centred_kinship_is_the_local_maximum():
    # a centred K has the constant as its null space, which the intercept absorbs: the ML
    # likelihood then grows without bound as Σe becomes singular; the estimate is the local
    # maximum (GEMMA's too): a stationary point of the dense likelihood, Σe inside the cone
    Y, K, X = _ml_centred(25)
    n = len(Y)
    rot = mv.rotate_traits(spectral_from_kinship(K), Y, X)
    assert mv.absorbed(rot)
    assert not mv.absorbed(mv.rotate_traits(spectral_from_kinship(K + 0.05 * np.eye(n)), Y, X))
    fit = bl.reml_multivariate(Y, K, X[:, 1], method="ml")
    assert fit.converged and "no global maximum" in fit.optimizer_message
    assert not fit.at_boundary and np.linalg.eigvalsh(fit.re.to_numpy()).min() > 0.1
    Kn = K / np.trace(K) * n
    phi0 = np.concatenate([mv.vech(fit.Vg.to_numpy()), mv.vech(fit.Ve.to_numpy())])

    def dense(phi):
        return ref.loglik(Y, X, Kn, mv.unvech(phi[:3], 2), mv.unvech(phi[3:], 2), "ml")

    h = 1e-5
    for e in np.eye(6) * h:
        assert abs(dense(phi0 + e) - dense(phi0 - e)) / (2 * h) < 1e-4
    assert fit.loglik == pytest.approx(dense(phi0), abs=1e-9)


def test_reml_multivariate__ml_without_a_local_maximum_warns():
    # the same design, other data: no local maximum at all (BFGS runs to a singular Σe);
    # the fit says so, and REML on the same data is fine
    Y, K, X = _ml_centred(21)
    with pytest.warns(bl.BayeslmmWarning, match="ML has none here"):
        fit = bl.reml_multivariate(Y, K, X[:, 1], method="ml")
    assert not fit.converged and "none nearby" in fit.optimizer_message
    _check_finite(fit)
    assert bl.reml_multivariate(Y, K, X[:, 1]).converged


def test_reml_multivariate__three_traits_equal_dense_optimizer():
    n = 120
    Cg = 1.5 * np.array([[1.2, 0.6, 0.3], [0.0, 1.0, 0.3], [0.0, 0.0, 0.8]])
    Ce = np.array([[0.7, -0.3, 0.1], [0.0, 0.8, 0.2], [0.0, 0.0, 0.7]])
    K, root = _kinship(n, 400, 2)  # (other seeds of this design end on a singular Σe)
    rng = np.random.default_rng(2)
    Y = root @ rng.normal(size=(root.shape[1], 3)) @ Cg + rng.normal(size=(n, 3)) @ Ce + 5
    X = _design(n, rng)
    fit = bl.reml_multivariate(pd.DataFrame(Y, columns=["a", "b", "c"]), K, X[:, 1])
    assert fit.traits == ("a", "b", "c") and fit.Vg.shape == (3, 3)
    assert not fit.at_boundary
    dense = ref.fit(Y, X, K / np.trace(K) * n, "reml", nelder_mead=False)
    assert fit.loglik >= dense["loglik"] - 1e-9
    np.testing.assert_allclose(fit.Vg.to_numpy(), dense["sigma_g"], atol=5e-5)
    np.testing.assert_allclose(fit.Ve.to_numpy(), dense["sigma_e"], atol=5e-5)
    # derived quantities are those of Vg and Ve
    vg, ve = fit.Vg.to_numpy(), fit.Ve.to_numpy()
    np.testing.assert_allclose(fit.h2.to_numpy(), np.diag(vg) / np.diag(vg + ve))
    sd = np.sqrt(np.diag(vg))
    np.testing.assert_allclose(fit.rg.to_numpy(), vg / np.outer(sd, sd), atol=1e-12)
    assert (fit.rg_se.to_numpy()[~np.eye(3, dtype=bool)] > 0).all()
    _check_finite(fit)


def test_reml_multivariate__observed_information_is_that_of_the_dense_likelihood():
    # SEs of Vg, Ve: the inverse Hessian of the dense REML likelihood in (vech Σg, vech Σe)
    n = 100
    Y, K, rng = _traits(n, 2, 33, [[1.2, 0.6], [0.0, 1.0]], [[0.8, 0.2], [0.0, 0.8]])
    fit = bl.reml_multivariate(Y, K)
    assert fit.se_method == "observed information"
    Kn = K / np.trace(K) * n
    X = np.ones((n, 1))
    phi0 = np.concatenate([mv.vech(fit.Vg.to_numpy()), mv.vech(fit.Ve.to_numpy())])

    def dense(phi):
        return ref.loglik(Y, X, Kn, mv.unvech(phi[:3], 2), mv.unvech(phi[3:], 2))

    h = 1e-3
    H = np.empty((6, 6))
    for i in range(6):
        for j in range(6):
            ei, ej = np.eye(6)[i] * h, np.eye(6)[j] * h
            H[i, j] = (
                dense(phi0 + ei + ej)
                - dense(phi0 + ei - ej)
                - dense(phi0 - ei + ej)
                + dense(phi0 - ei - ej)
            ) / (4 * h * h)
    se = np.sqrt(np.diag(np.linalg.inv(-H)))
    np.testing.assert_allclose(mv.vech(fit.Vg_se.to_numpy()), se[:3], rtol=1e-3)
    np.testing.assert_allclose(mv.vech(fit.Ve_se.to_numpy()), se[3:], rtol=1e-3)


# --------------------------------------------------------------------------------------------
# Boundaries: rg = ±1, h² = 0, uncorrelated traits; SEs finite everywhere
# --------------------------------------------------------------------------------------------


def test_reml_multivariate__identical_traits_up_to_noise_give_rg_one():
    n = 150
    Y, K, rng = _traits(n, 1, 43, [[1.0]], [[1.0]])
    Y = np.column_stack([Y[:, 0], Y[:, 0] + 0.05 * rng.normal(size=n)])
    fit = bl.reml_multivariate(Y, K)
    assert fit.rg.iloc[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert fit.at_boundary and "genetic correlation matrix is singular" in fit.boundary[0]
    assert fit.se_method == "profile likelihood"
    lower, upper = fit.intervals["rg"][("trait1", "trait2")]
    assert upper == 1.0 and 0.99 < lower < 1.0
    assert 0 < fit.rg_se.iloc[0, 1] < 0.01
    assert fit.re.iloc[0, 1] > 0.99
    dense = ref.fit(Y, np.ones((n, 1)), K / np.trace(K) * n, "reml", nelder_mead=False)
    assert fit.loglik >= dense["loglik"] - 1e-7
    _check_finite(fit)


def _low_eigen_traits(n, seed, T):
    """Traits on the eigenvectors of K with the smallest eigenvalues: one-trait h² = 0."""
    K, _ = _kinship(n, 400, seed)
    rng = np.random.default_rng(seed)
    low = np.linalg.eigh(K)[1][:, 1 : n // 2]
    mix = np.array([[1.0, 0.5], [0.0, 1.0]])[:T, :T]
    Y = 3 * low @ rng.normal(size=(low.shape[1], T)) @ mix + 0.2 * rng.normal(size=(n, T))
    return Y, K, rng


def test_reml_multivariate__trait_with_h2_zero():
    # trait 2 alone has h² = 0 (bl.reml); jointly with a heritable trait the REML maximum puts
    # a tiny genetic variance on it, perfectly correlated (the boundary is then rg = ±1, as in
    # the GEMMA EUR example): h² interval from 0, SEs finite
    n = 120
    Y, K, rng = _traits(n, 1, 51, [[1.0]], [[1.0]])
    y2, _, _ = _low_eigen_traits(n, 51, 1)
    assert bl.reml(y2[:, 0], K).h2 == 0.0
    ids = [f"s{i}" for i in range(n)]
    Y = pd.DataFrame({"height": Y[:, 0], "noise": y2[:, 0]}, index=ids)
    fit = bl.reml_multivariate(Y, pd.DataFrame(K, index=ids, columns=ids))
    assert fit.h2["noise"] < 0.01
    assert abs(fit.rg.loc["height", "noise"]) == pytest.approx(1.0, abs=1e-6)
    assert fit.se_method == "profile likelihood"
    assert fit.intervals["h2"].loc["noise", "lower"] == 0.0
    assert 0 < fit.h2_se["noise"] < 0.2
    dense = ref.fit(Y.to_numpy(), np.ones((n, 1)), K / np.trace(K) * n, "reml", nelder_mead=False)
    assert fit.loglik >= dense["loglik"] - 1e-7
    assert dense["sigma_g"][1, 1] < 0.01
    _check_finite(fit)


def test_reml_multivariate__two_traits_with_h2_zero():
    # no genetic variance at all: Σg = 0 exactly, h² = 0 for both; rg is not identified
    # (reported 0, profile interval [−1, 1], SE 2/3.92); re is, from the observed traits
    n = 120
    Y, K, _ = _low_eigen_traits(n, 51, 2)
    fit = bl.reml_multivariate(pd.DataFrame(Y, columns=["a", "b"]), K)
    assert (fit.h2 == 0.0).all() and (fit.Vg.to_numpy() == 0.0).all()
    assert fit.boundary == ("h2[a] = 0", "h2[b] = 0")
    assert fit.rg.loc["a", "b"] == 0.0
    assert fit.intervals["rg"][("a", "b")] == (-1.0, 1.0)
    assert fit.rg_se.loc["a", "b"] == pytest.approx(2 / (2 * 1.959963984540054))
    assert 0 < fit.re_se.loc["a", "b"] < 0.2 and 0 < fit.h2_se.min() < 0.1
    dense = ref.fit(Y, np.ones((n, 1)), K / np.trace(K) * n, "reml", nelder_mead=False)
    assert fit.loglik == pytest.approx(dense["loglik"], abs=1e-7)
    _check_finite(fit)


def test_reml_multivariate__uncorrelated_traits():
    n = 200
    Y, K, _ = _traits(n, 2, 61, np.eye(2), np.eye(2))
    fit = bl.reml_multivariate(Y, K)
    assert not fit.at_boundary
    for name in ("rg", "re"):
        value, se = getattr(fit, name).iloc[0, 1], getattr(fit, f"{name}_se").iloc[0, 1]
        assert abs(value) < 3 * se
    # each h² close to its one-trait REML (the joint fit adds two correlations)
    for t in range(2):
        assert fit.h2.iloc[t] == pytest.approx(bl.reml(Y[:, t], K).h2, abs=0.05)
    _check_finite(fit)


# --------------------------------------------------------------------------------------------
# Units and offsets
# --------------------------------------------------------------------------------------------


def test_reml_multivariate__invariant_to_trait_units_and_offsets():
    n = 150
    Y, K, rng = _traits(n, 2, 71, [[1.0, 0.4], [0.0, 0.9]], [[1.0, 0.3], [0.0, 1.0]])
    x = rng.normal(size=n)
    a, b = np.array([1e3, -2e-3]), np.array([1e6, 5.0])
    base = bl.reml_multivariate(Y, K, x)
    moved = bl.reml_multivariate(Y * a + b, K, x)
    D = np.diag(a)
    np.testing.assert_allclose(moved.Vg.to_numpy(), D @ base.Vg.to_numpy() @ D, rtol=1e-7)
    np.testing.assert_allclose(moved.Ve.to_numpy(), D @ base.Ve.to_numpy() @ D, rtol=1e-7)
    np.testing.assert_allclose(moved.h2, base.h2, atol=1e-8)
    sign = np.outer(np.sign(a), np.sign(a))
    np.testing.assert_allclose(moved.rg.to_numpy(), sign * base.rg.to_numpy(), atol=1e-8)
    np.testing.assert_allclose(moved.re.to_numpy(), sign * base.re.to_numpy(), atol=1e-8)
    np.testing.assert_allclose(moved.h2_se, base.h2_se, rtol=1e-5)
    np.testing.assert_allclose(moved.rg_se.to_numpy(), base.rg_se.to_numpy(), rtol=1e-5)
    scale = np.abs(np.outer(a, a))
    np.testing.assert_allclose(moved.Vg_se.to_numpy(), scale * base.Vg_se.to_numpy(), rtol=1e-5)
    n_eff = n - 2
    assert moved.loglik == pytest.approx(base.loglik - n_eff * np.log(np.abs(a)).sum(), abs=1e-7)
    np.testing.assert_allclose(moved.B.loc["x1"], a * base.B.loc["x1"], rtol=1e-7)
    np.testing.assert_allclose(moved.B.loc["intercept"], a * base.B.loc["intercept"] + b)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@pytest.fixture
def frame():
    n = 100
    Y, K, rng = _traits(n, 2, 82, [[1.2, 0.4], [0.0, 1.0]], [[1.0, 0.2], [0.0, 1.0]])
    ids = [f"id{i}" for i in range(n)]
    return (
        pd.DataFrame(Y, index=ids, columns=["a", "b"]),
        pd.DataFrame(K, index=ids, columns=ids),
        rng,
    )


def test_reml_multivariate__drops_samples_missing_any_trait(frame):
    Y, K, _ = frame
    Y = Y.copy()
    Y.iloc[[3, 7], 0] = np.nan
    Y.iloc[[7, 11], 1] = np.nan
    with pytest.warns(DataWarning, match=r"analysing 97 samples; dropped 3: 3 missing value of a"):
        fit = bl.reml_multivariate(Y, K)
    assert fit.n == 97 and sum(fit.dropped.values()) == 3
    complete = Y.dropna()
    with pytest.warns(DataWarning):  # K holds samples complete lacks
        same = bl.reml_multivariate(complete, K)
    np.testing.assert_allclose(fit.Vg.to_numpy(), same.Vg.to_numpy(), rtol=1e-10)


def test_reml_multivariate__aligns_by_id(frame):
    Y, K, _ = frame
    shuffled = Y.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(
        bl.reml_multivariate(shuffled, K).Vg.to_numpy(),
        bl.reml_multivariate(Y, K).Vg.to_numpy(),
        rtol=1e-8,
    )
    # a plain array is aligned by position
    np.testing.assert_allclose(
        bl.reml_multivariate(Y.to_numpy(), K.to_numpy()).Vg.to_numpy(),
        bl.reml_multivariate(Y, K).Vg.to_numpy(),
        rtol=1e-10,
    )


def test_reml_multivariate__bad_inputs(frame):
    Y, K, _ = frame
    with pytest.raises(InputError, match="needs at least 2"):
        bl.reml_multivariate(Y[["a"]], K)
    with pytest.raises(InputError, match="one phenotype"):
        bl.reml_multivariate(Y["a"], K)
    const = Y.assign(b=3.0)
    with pytest.raises(InputError, match="trait 'b' is constant"):
        bl.reml_multivariate(const, K)
    with pytest.raises(InputError, match="linearly dependent"):
        bl.reml_multivariate(Y.assign(c=Y["a"] - 2 * Y["b"] + 1), K)
    with pytest.raises(InputError, match="not numeric"):
        bl.reml_multivariate(Y.assign(b="x"), K)
    with pytest.raises(InputError, match="duplicated trait names"):
        bl.reml_multivariate(Y.set_axis(["a", "a"], axis=1), K)
    other = Y.set_axis([f"other{i}" for i in range(len(Y))])
    with pytest.raises(InputError, match="no sample ID is shared"):
        bl.reml_multivariate(other, K)
    with pytest.raises(InputError, match="plain arrays are aligned by position"):
        bl.reml_multivariate(Y.to_numpy()[:-3], K.to_numpy())
    with pytest.raises(InputError, match="method must be"):
        bl.reml_multivariate(Y, K, method="bayes")
    with pytest.raises(InputError, match="one kinship"):
        bl.reml_multivariate(Y, [K, K])
    with pytest.raises(InputError, match="infinite"):
        bl.reml_multivariate(Y.assign(a=np.inf), K)


def test_reml_multivariate__summary_and_fields(frame):
    Y, K, _ = frame
    fit = bl.reml_multivariate(Y, K)
    text = str(fit)
    assert "multi-trait REML fit of 2 traits on 100 samples" in text and "rg[a, b]" in text
    assert list(fit.Vg.index) == ["a", "b"] and fit.Vg.index.name == "trait"
    assert fit.kinship_scale == pytest.approx(np.trace(K.to_numpy()) / 100)
    assert isinstance(fit, bl.MultiRemlFit)


def test_multiremlfit__to_series(frame):
    Y, K, _ = frame
    fit = bl.reml(Y, K)
    table = fit.to_series()
    assert table["h2[a]"] == fit.h2["a"] and table["h2_se[b]"] == fit.h2_se["b"]
    assert (
        table["Vg[a,b]"] == fit.Vg.loc["a", "b"] and table["Ve_se[b,b]"] == fit.Ve_se.loc["b", "b"]
    )
    assert (
        table["rg[a,b]"] == fit.rg.loc["a", "b"] and table["re_se[a,b]"] == fit.re_se.loc["a", "b"]
    )
    assert "rg[b,a]" not in table and "rg[a,a]" not in table
    assert table["loglik"] == fit.loglik and table["converged"] is True
    assert table["method"] == "reml" and table["n"] == 100 and table["boundary"] == ""
    # on the boundary (here rg = -1 with a noise trait) the profile intervals come too
    noise = np.random.default_rng(1).normal(size=Y.shape)[:, 0]
    edge = bl.reml(Y[["a"]].assign(n1=noise), K).to_series()
    assert edge["se_method"] == "profile likelihood" and edge["boundary"].startswith("the genetic")
    assert edge["h2_lower[n1]"] <= edge["h2[n1]"] <= edge["h2_upper[n1]"]
    assert edge["rg_lower[a,n1]"] <= edge["rg[a,n1]"] <= edge["rg_upper[a,n1]"]


def _assert_same_fit(a, b):
    """Every field of two MultiRemlFits equal, bit for bit."""
    assert type(a) is type(b) is bl.MultiRemlFit
    for name in (f.name for f in dataclasses.fields(a)):
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, pd.DataFrame | pd.Series):
            pd.testing.assert_frame_equal(
                x.to_frame() if isinstance(x, pd.Series) else x,
                y.to_frame() if isinstance(y, pd.Series) else y,
                check_exact=True,
            )
        elif name == "intervals":
            assert x.keys() == y.keys()
        else:
            assert x == y, name


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_reml__several_traits_is_reml_multivariate(frame, method):
    # bl.reml(Y, K, X) is the entry point of the multi-trait fit (issue 12, point 2); K full
    # rank, so that ML has a maximum (a centred K with an intercept has none, see above)
    Y, K, rng = frame
    K = K + 0.1 * np.eye(len(K))
    X = pd.DataFrame({"x": rng.normal(size=len(Y))}, index=Y.index)
    _assert_same_fit(bl.reml(Y, K, X, method=method), bl.reml_multivariate(Y, K, X, method=method))
    # a 2-D array of several columns too, aligned by position
    Ya, Ka = Y.to_numpy(), K.to_numpy()
    _assert_same_fit(bl.reml(Ya, Ka, method=method), bl.reml_multivariate(Ya, Ka, method=method))
    _assert_same_fit(
        bl.reml(Y, K, method=method, normalize=False),
        bl.reml_multivariate(Y, K, method=method, normalize=False),
    )


def test_reml__one_trait_column_is_the_univariate_fit(frame):
    Y, K, _ = frame
    for one in (Y[["a"]], Y["a"], Y[["a"]].to_numpy(), Y["a"].to_numpy()[None, :]):
        fit = bl.reml(one, K.to_numpy() if isinstance(one, np.ndarray) else K)
        assert isinstance(fit, bl.RemlFit)
        assert fit.h2 == bl.reml(Y["a"], K).h2


def test_reml__several_traits_bad_inputs(frame):
    Y, K, _ = frame
    with pytest.raises(InputError, match=r"2 trait columns and K holds 2 kinships: .* one kinship"):
        bl.reml(Y, [K, K])
    with pytest.raises(InputError, match=r"2 trait columns and K holds 2 kinships"):
        bl.reml(Y, {"K1": K, "K2": K})
    G = np.random.default_rng(0).binomial(2, 0.3, size=(len(Y), 30)).astype(float)
    gram = bl.gram(pd.DataFrame(G, index=Y.index))
    with pytest.raises(InputError, match=r"2 trait columns and K is a Gram: .*bl\.kinship"):
        bl.reml(Y, gram)
    with pytest.raises(InputError, match="method must be"):
        bl.reml(Y, K, method="bayes")
    with pytest.raises(InputError, match="trait 'b' is constant"):
        bl.reml(Y.assign(b=3.0), K)


# --------------------------------------------------------------------------------------------
# GEMMA 0.98.5 mvLMM on the EUR example (tests/data/eur_mv)
# --------------------------------------------------------------------------------------------


def read_mvlmm_log(path: Path) -> dict:
    """REML and ML Vg, Ve, their SEs, the log-likelihoods and B of a GEMMA mvLMM log.

    Values stay strings, as printed (the tests compare to the printed digits). GEMMA prints B
    and se(B) once, for the REML fit.
    """
    out: dict = {"reml": {}, "ml": {}}
    method, section = "reml", None
    for line in path.read_text().splitlines():
        if match := re.match(r"## (REMLE|MLE) log-likelihood in the null model = (\S+)", line):
            out["reml" if match[1] == "REMLE" else "ml"]["loglik"] = match[2]
        elif match := re.match(r"## (REMLE|MLE) estimate for (Vg|Ve)", line):
            method, section = ("reml" if match[1] == "REMLE" else "ml"), match[2]
            out[method][section] = []
        elif match := re.match(r"## se\((Vg|Ve|B)\)", line):
            section = "se_" + match[1]
            out[method][section] = []
        elif line.startswith("## estimate for B"):
            method, section = "reml", "B"
            out[method][section] = []
        elif line.startswith("##"):
            section = None
        elif section is not None and line.strip():
            out[method][section].append(line.split())
    return out


def _symmetric(rows: list[list[str]]) -> np.ndarray:
    """A T×T matrix from GEMMA's printed rows (lower triangle or full), as strings."""
    T = len(rows)
    M = np.empty((T, T), dtype=object)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            M[i, j] = M[j, i] = value
    return M


def _matches_printed(value: float, printed: str) -> bool:
    """value rounds to what GEMMA printed (within half a unit of its last digit, + 1e-12)."""
    mantissa = printed.lower().split("e")[0]
    exponent = int(printed.lower().split("e")[1]) if "e" in printed.lower() else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    unit = 10.0 ** (exponent - decimals)
    return abs(value - float(printed)) <= 0.5 * unit * (1 + 1e-9) + 1e-12


def _eur_mv_inputs(second: str):
    fam = pd.read_csv(EUR_MV / "eurA_mv.fam", sep=r"\s+", header=None, dtype={1: str})
    ids = fam[1].to_numpy()
    Y = pd.DataFrame({"PHENO": fam[5].to_numpy(), second: fam[{"QCOV2": 6, "SIM": 7}[second]]})
    Y.index = ids
    cov = np.loadtxt(EUR_MV / "eurA_mv.cov.txt")
    X = pd.DataFrame(cov[:, 1:], index=ids, columns=["CAT_COV_B", "QCOV1"])
    genotypes = bl.read_plink(DATA / "eur" / "eurA")
    assert list(genotypes.samples.astype(str)) == list(ids)
    K = bl.kinship(genotypes, method="centered")  # GEMMA -gk 1 (checked in test_kinship)
    return Y, K, X


@pytest.fixture(scope="module")
def sim_inputs():
    return _eur_mv_inputs("SIM")


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_gemma_mvlmm__interior_estimate_to_the_printed_digits(method, sim_inputs):
    # PHENO and a simulated heritable trait correlated with it (rg ≈ 0.6): GEMMA's Vg, Ve
    # (6 significant digits in its log) and log-likelihood (4 decimals on screen) exactly
    Y, K, X = sim_inputs
    gemma = read_mvlmm_log(EUR_MV / "pheno_sim.log.txt")[method]
    fit = bl.reml_multivariate(Y, K, X, method=method, normalize=False)
    assert not fit.at_boundary and fit.n == 366
    for name in ("Vg", "Ve"):
        printed = _symmetric(gemma[name])
        ours = getattr(fit, name).to_numpy()
        for i in range(2):
            for j in range(i + 1):
                assert _matches_printed(ours[i, j], printed[i, j]), (name, i, j, ours[i, j])
        # GEMMA's SEs (its own Hessian) agree to ~1e-4
        se = _symmetric(gemma["se_" + name]).astype(float)
        np.testing.assert_allclose(getattr(fit, name + "_se").to_numpy(), se, rtol=5e-4)
    stdout = (EUR_MV / "pheno_sim.stdout.txt").read_text()
    label = "REMLE" if method == "reml" else "MLE"
    printed_loglik = re.search(rf"^{label} likelihood = (\S+)", stdout, re.M)[1]
    assert _matches_printed(fit.loglik, printed_loglik)
    assert _matches_printed(fit.loglik, gemma["loglik"])
    if method == "reml":
        B = gemma["B"]  # rows = traits, columns = covariates (intercept, CAT_COV_B, QCOV1)
        for t, trait in enumerate(fit.traits):
            for c, cov in enumerate(fit.B.index):
                assert _matches_printed(fit.B.loc[cov, trait], B[t][c]), (trait, cov)


def test_gemma_mvlmm__boundary_estimate_beyond_gemmas():
    # PHENO and QCOV2 (a covariate without genetic variance): GEMMA stops at Vg[QCOV2] ≈ 8e-7
    # with Vg[PHENO, QCOV2] ≈ 0; the REML maximum is on the boundary (rank-one Σg, rg = −1,
    # Vg[QCOV2] = 2.4e-5) and 0.0023 log-likelihood units higher. Our likelihood at GEMMA's
    # printed estimate is GEMMA's printed log-likelihood, so the two differ only in the optimizer.
    Y, K, X = _eur_mv_inputs("QCOV2")
    gemma = read_mvlmm_log(EUR_MV / "pheno_qcov2.log.txt")
    stdout = (EUR_MV / "pheno_qcov2.stdout.txt").read_text()
    prepared_rot = mv.rotate_traits(
        spectral_from_kinship(K.matrix, normalize=False),
        Y.to_numpy(),
        np.column_stack([np.ones(len(Y)), X.to_numpy()]),
    )
    for method, label in (("reml", "REMLE"), ("ml", "MLE")):
        vg = _symmetric(gemma[method]["Vg"]).astype(float)
        ve = _symmetric(gemma[method]["Ve"]).astype(float)
        at_gemma = mv.evaluate(prepared_rot, vg, ve, method).loglik
        printed = re.search(rf"^{label} likelihood = (\S+)", stdout, re.M)[1]
        assert _matches_printed(at_gemma, printed)
        fit = bl.reml_multivariate(Y, K, X, method=method, normalize=False)
        assert fit.loglik > at_gemma + 1e-3
        assert fit.rg.loc["PHENO", "QCOV2"] == pytest.approx(-1.0, abs=1e-6)
        assert fit.se_method == "profile likelihood"
        assert fit.Vg.loc["QCOV2", "QCOV2"] < 1e-4
        np.testing.assert_allclose(fit.Vg.loc["PHENO", "PHENO"], vg[0, 0], rtol=0.05)
        np.testing.assert_allclose(fit.Ve.to_numpy(), ve, rtol=0.02, atol=0.005)
        _check_finite(fit)


def test_gemma_mvlmm__frozen_files_describe_their_command():
    for run, n in (("pheno_qcov2", "-n 1 2"), ("pheno_sim", "-n 1 3")):
        log = (EUR_MV / f"{run}.log.txt").read_text()
        assert "GEMMA Version    = 0.98.5" in log
        assert f"-k output/eurA_mv.cXX.txt -c eurA_mv.cov.txt -lmm 1 {n} -maf 0" in log
        assert "number of analyzed individuals = 366" in log
        assert "number of phenotypes = 2" in log
