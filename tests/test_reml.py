"""Profiled (RE)ML against brute-force optimisation of the dense likelihood, and against GEMMA."""

import numpy as np
import pytest
from bed_reader import open_bed

import bayeslmm as bl
from bayeslmm.estimation.reml import profile
from bayeslmm.linalg.spectral import rotate_data
from models.kinship_lmm import reference as kref
from models.snp_lmm import reference as sref


def _data(seed, n=60, m=200, h2=0.5, low_rank=False):
    rng = np.random.default_rng(seed)
    G = rng.binomial(2, rng.uniform(0.1, 0.5, m), size=(n, m)).astype(float)
    W = sref.standardize(G)
    if low_rank:
        W = W[:, :15]
    K = W @ W.T / W.shape[1]
    if not low_rank:
        # full rank: a centred K has the all-ones vector as null direction, and with an
        # intercept in X the ML likelihood is then unbounded as h² → 1 (a spike that brute
        # force would chase); REML is not affected, see test_reml__ml_spike_is_documented
        K = K + 0.05 * np.eye(n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    u = W @ rng.normal(0, np.sqrt(h2 / W.shape[1]), W.shape[1])
    y = X @ [1.0, 0.3] + u + rng.normal(0, np.sqrt(1 - h2), n)
    return y, X, K


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("low_rank", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_reml__equals_brute_force(method, low_rank, seed):
    y, X, K = _data(seed, low_rank=low_rank)
    fit = bl.reml(y, K, X[:, 1:], method=method)
    ref = kref.brute_force_fit(y, X, K / np.mean(np.diag(K)), method=method)  # h² on K / mean diag
    assert fit.loglik >= ref["loglik"] - 1e-7  # never worse than brute force
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert fit.h2 == pytest.approx(ref["h2"], abs=2e-4)
    assert fit.sigma_g2 == pytest.approx(ref["sigma_g2"], rel=1e-3, abs=1e-4)
    assert fit.sigma_e2 == pytest.approx(ref["sigma_e2"], rel=1e-3, abs=1e-4)
    np.testing.assert_allclose(fit.beta.values, ref["beta"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_profile__equals_dense_profile_likelihood(method):
    y, X, K = _data(3, low_rank=True)
    spec = bl.spectral_from_kinship(K)
    rot = rotate_data(spec, y, X)
    grid = np.array([0.0, 0.1, 0.5, 0.93])
    fast = profile(rot, grid, method).loglik
    dense = [kref.profile_loglik(h, y, X, spec.matrix(), method=method) for h in grid]
    np.testing.assert_allclose(fast, dense, rtol=1e-10)


def test_reml__se_is_observed_information():
    """Check the SE against a finite difference of the dense profile likelihood."""
    y, X, K = _data(4, n=120, m=400)
    fit = bl.reml(y, K, X[:, 1:])
    assert not fit.at_boundary and fit.se_method == "observed information"
    Kn = K / np.mean(np.diag(K))
    h, step = fit.h2, 1e-3
    vals = [kref.profile_loglik(h + d, y, X, Kn) for d in (-step, 0.0, step)]
    curvature = (vals[0] - 2 * vals[1] + vals[2]) / step**2
    assert fit.h2_se == pytest.approx(1 / np.sqrt(-curvature), rel=1e-3)
    assert fit.h2_ci[0] < fit.h2 < fit.h2_ci[1]


def test_reml__boundary_zero_has_finite_se():
    y, X, K = _data(5)
    spec = bl.spectral_from_kinship(K)
    z = np.random.default_rng(0).normal(size=spec.rank)
    # residual variance that shrinks as the eigenvalue grows: the likelihood prefers h² = 0
    y = X @ [1.0, 0.3] + spec.U @ (z / (1 + spec.s))
    fit = bl.reml(y, K, X[:, 1:])
    assert fit.at_boundary and fit.h2 == 0.0
    assert np.isfinite(fit.h2_se) and fit.h2_se > 0
    assert fit.se_method == "profile likelihood"
    assert fit.h2_ci[0] == 0.0 and 0 < fit.h2_ci[1] < 1
    assert fit.h2_se == pytest.approx(fit.h2_ci[1] / 3.919928, rel=1e-5)
    grid = np.linspace(0, 1, 401)[:-1]
    dense = [kref.profile_loglik(h, y, X, spec.matrix()) for h in grid]
    assert fit.loglik >= max(dense) - 1e-9
    # the interval's end is where the dense likelihood has dropped by chi2(1, 0.95) / 2
    drop = dense[0] - kref.profile_loglik(fit.h2_ci[1], y, X, spec.matrix())
    assert drop == pytest.approx(1.920729, abs=1e-4)


def test_reml__boundary_one_has_finite_se():
    y, X, K = _data(6, n=80, m=400)
    K = K + 0.05 * np.eye(80)
    spec = bl.spectral_from_kinship(K)
    z = np.random.default_rng(1).normal(size=spec.rank)
    # rotated variance growing like s²: steeper than any h² < 1 allows, so h² = 1 is the max
    y = X @ [1.0, 0.3] + spec.U @ (spec.s * z)
    fit = bl.reml(y, K, X[:, 1:])
    assert fit.at_boundary and fit.h2 == 1.0
    assert np.isfinite(fit.h2_se) and fit.h2_se > 0
    assert fit.se_method == "profile likelihood"
    assert fit.h2_ci[1] == 1.0 and 0 < fit.h2_ci[0] < 1
    grid = np.linspace(0, 1, 201)
    dense = [kref.profile_loglik(h, y, X, spec.matrix()) for h in grid]
    assert fit.loglik >= max(dense) - 1e-9
    assert fit.loglik == pytest.approx(dense[-1], abs=1e-8)


# --- GEMMA 0.98.5 on the 1000 Genomes EUR example (tests/data/eur, frozen with its command) ---


@pytest.fixture(scope="module")
def eur():
    from tests.gemma_reference import EUR_DIR, read_gemma_log

    sets = {}
    for name, cov in (("eurA", "covA.txt"), ("eurB", None)):
        G = open_bed(str(EUR_DIR / f"{name}.bed")).read(dtype="float64")
        y = np.loadtxt(EUR_DIR / f"{name}.fam", usecols=5)
        X = np.loadtxt(EUR_DIR / cov) if cov else None
        W = G - G.mean(0)
        kin = {"cXX": W @ W.T / W.shape[1]}  # GEMMA -gk 1: centred genotypes
        W = W / G.std(0)
        kin["sXX"] = W @ W.T / W.shape[1]  # GEMMA -gk 2: standardized genotypes
        sets[name] = (y, X, kin)
    return sets, EUR_DIR, read_gemma_log


@pytest.mark.parametrize("name", ["eurA", "eurB"])
@pytest.mark.parametrize("kin", ["sXX", "cXX"])
def test_reml__equals_gemma_pve_on_eur(eur, name, kin):
    sets, eur_dir, read_log = eur
    y, X, kinships = sets[name]
    gemma = read_log(eur_dir / "gemma" / f"{name}_{kin}_lmm4.log.txt")
    fit = bl.reml(y, kinships[kin], X)
    assert fit.h2 == pytest.approx(gemma["pve"], abs=1e-4)
    assert fit.h2_se == pytest.approx(gemma["pve_se"], abs=1e-4)
    assert fit.loglik == pytest.approx(gemma["logl_reml"], abs=1e-3)
    # GEMMA's vg is on the scale of its K; ours on K / mean diagonal
    assert fit.sigma_g2 / fit.kinship_scale == pytest.approx(gemma["vg"], rel=1e-4)
    assert fit.sigma_e2 == pytest.approx(gemma["ve"], rel=1e-4)
