"""NUTS against exact answers: the 1-D grid posterior of h², the explicit-v build, the truth."""

import warnings

import arviz as az
import numpy as np
import pytest

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from models.kinship_lmm import reference as kref
from tests.nuts import sample_counted

pytestmark = pytest.mark.slow


def _moments(idata):
    h2 = idata.posterior["h2"]
    mcse = float(az.mcse(h2))
    return float(h2.mean()), float(h2.std()), mcse


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_sample__matches_exact_grid_posterior(sampler):
    data = simulate(150, 400, 0.5, n_covariates=1, seed=11)
    K = data.K / np.mean(np.diag(data.K))
    X = np.column_stack([np.ones(150), data.X])
    grid, density = kref.grid_posterior_h2(data.y, X, K)
    exact = kref.grid_posterior_summary(grid, density)
    # Flat β and Jeffreys σp² leave long tails to log σp: a rare divergence (seen in CI: 1 in
    # 8,000) is tolerated and counted here; the posterior itself is checked against the grid.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bl.SamplingWarning)
        idata = bl.sample(
            bl.kinship_model(data.y, K, data.X, priors="flat"),
            draws=2000,
            chains=4,
            random_seed=5,
            sampler=sampler,
            progressbar=False,
            random_effects=False,
            target_accept=0.95,
        )
    assert int(idata.sample_stats["diverging"].sum()) <= 8
    assert float(az.rhat(idata.posterior["h2"]).max()) <= 1.01
    assert all("R-hat" not in str(w.message) for w in caught)
    mean, sd, mcse = _moments(idata)
    assert abs(mean - exact["mean"]) < 4 * mcse + 1e-3, (mean, exact, mcse)
    assert sd == pytest.approx(exact["sd"], rel=0.08)
    draws = idata.posterior["h2"].values.ravel()
    for q, key in ((0.025, "q025"), (0.975, "q975")):
        assert np.quantile(draws, q) == pytest.approx(exact[key], abs=0.03)


def test_snp_model__explicit_v_equals_marginalized():
    data = simulate(150, 60, 0.5, seed=12)
    fits = {}
    for marginalize in (True, False):
        model = bl.snp_model(data.y, data.G, marginalize=marginalize)
        fits[marginalize] = sample_counted(model, draws=2000, chains=4, random_seed=6)
    (m1, s1, e1), (m2, s2, e2) = _moments(fits[True]), _moments(fits[False])
    assert abs(m1 - m2) < 4 * np.hypot(e1, e2) + 1e-3, (m1, m2, e1, e2)
    assert s1 == pytest.approx(s2, rel=0.12)
    # the closed-form v of the marginalized build has the explicit build's posterior mean
    v1 = fits[True].posterior["v"].mean(("chain", "draw")).values
    v2 = fits[False].posterior["v"].mean(("chain", "draw")).values
    assert np.corrcoef(v1, v2)[0, 1] > 0.97


def test_sample__recovers_simulated_h2():
    data = simulate(1500, 3000, 0.6, n_covariates=2, n_populations=2, seed=13)
    idata = sample_counted(bl.kinship_model(data.y, data.K, data.X), random_seed=7)
    post = bl.heritability(idata).loc["h2"]
    assert post["r_hat"] <= 1.01 and post["ess_bulk"] > 1000
    assert post["hdi_lower"] < 0.6 < post["hdi_upper"]
    fit = bl.reml(data.y, data.K, data.X)
    assert post["mean"] == pytest.approx(fit.h2, abs=0.03)  # flat-ish priors: close to REML
    u_mean = idata.posterior["u"].mean(("chain", "draw")).values
    assert np.corrcoef(u_mean, data.truth["u"])[0, 1] > 0.5  # breeding values are predicted


@pytest.mark.filterwarnings("ignore::bayeslmm.SamplingWarning")  # short chains; equality tested
def test_sample__compiled_model_reused_gives_identical_draws():
    """A refit through nutpie's with_data equals a fresh compilation, draw for draw."""
    from bayeslmm.inference import sampling as inference

    first = simulate(200, 300, 0.5, n_covariates=1, seed=31)
    second = simulate(200, 300, 0.2, n_covariates=1, seed=32)
    inference._COMPILED.clear()
    bl.sample(
        bl.kinship_model(first.y * 3 + 10, first.K, first.X),
        draws=200,
        chains=2,
        random_seed=1,
        progressbar=False,
    )
    assert len(inference._COMPILED) == 1
    reused = bl.sample(
        bl.kinship_model(second.y, second.K, second.X),
        draws=200,
        chains=2,
        random_seed=2,
        progressbar=False,
    )
    assert len(inference._COMPILED) == 1  # same structure: no new compilation
    inference._COMPILED.clear()
    fresh = bl.sample(
        bl.kinship_model(second.y, second.K, second.X),
        draws=200,
        chains=2,
        random_seed=2,
        progressbar=False,
    )
    for name in ("h2", "beta", "sigma_p", "u"):
        np.testing.assert_allclose(
            reused.posterior[name].values, fresh.posterior[name].values, rtol=1e-10
        )


_REPRO_SCRIPT = """
import sys, warnings
import numpy as np
import bayeslmm as bl
from bayeslmm.data.simulation import simulate

warnings.simplefilter("ignore", bl.SamplingWarning)  # short chains; equality is what is tested
data = simulate(300, 400, 0.5, n_covariates=1, seed=41)
small = bl.kinship_model(data.y, data.K, data.X)  # few parameters
latent = bl.kinship_model((data.y > np.median(data.y)).astype(float), data.K, family="probit")
cores = None if sys.argv[2] == "default" else int(sys.argv[2])
out = {}
for name, model in (("kinship", small), ("probit", latent)):
    idata = bl.sample(
        model, draws=100, tune=100, chains=2, cores=cores, random_seed=11, progressbar=False
    )
    for var in ("h2", "u"):
        out[f"{name}_{var}"] = idata.posterior[var].values
np.savez(sys.argv[1], **out)
"""


@pytest.mark.slow
def test_sample__same_seed_same_draws_whatever_the_threads(tmp_path):
    """The same seed gives the same draws in fresh processes: bit for bit with the same thread
    settings, and to ~1e-8 between 1 BLAS/OpenMP thread + 1 sampler thread and 2 of each (the
    default on these machines: nutpie runs the chains on all cores).

    Bitwise equality across BLAS thread counts is not to be had: eigh and the rotations sum in a
    thread-dependent order, so U'y differs in its last bits, and the draws by ~1e-8.
    """
    import os
    import subprocess
    import sys

    script = tmp_path / "fit.py"
    script.write_text(_REPRO_SCRIPT)

    def run(threads, cores, name):
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        out = tmp_path / f"{name}.npz"
        subprocess.run(
            [sys.executable, str(script), str(out), cores], check=True, env=env, timeout=600
        )
        return np.load(out)

    default, again, single = run("2", "default", "a"), run("2", "default", "b"), run("1", "1", "c")
    for key in default.files:
        np.testing.assert_array_equal(default[key], again[key], err_msg=key)
        # u is O(1): an absolute 1e-7 covers its elements near 0 (measured: 2.4e-9)
        np.testing.assert_allclose(single[key], default[key], rtol=1e-6, atol=1e-7, err_msg=key)
