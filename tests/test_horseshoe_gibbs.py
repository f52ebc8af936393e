"""The horseshoe's exact blocked MCMC (``sampler="gibbs"``, bayeslmm/inference/horseshoe_gibbs.py).

Its conditional densities against the dense N×N formulas of models/sparse_snp_lmm/reference.py
(by differences between two values of the updated variable, to 1e-8), its Gaussian draw of v
against the dense conditional, and on a small problem its posterior against NUTS's.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import info_of
from bayeslmm.inference import horseshoe_gibbs as hg
from models.sparse_snp_lmm import reference as spref
from tests.nuts import sample_counted


def _model(n, m, seed=2, **options):
    sim = simulate(n, m, 0.6, n_covariates=1, seed=seed)
    model = bl.snp_model(
        sim.y, sim.G, sim.X, marginalize=False, prior="horseshoe", prior_options=options or None
    )
    return model, info_of(model)


def _point(info, rng):
    m = info.W.shape[1]
    beta = np.linalg.lstsq(info.data.X, info.data.y, rcond=None)[0]
    return {
        "beta": beta + rng.normal(0, 0.05, size=beta.shape),
        "v": rng.normal(0, 0.2, size=m),
        "lambda": np.exp(rng.normal(0, 1, size=m)),
        "tau": 0.05,
        "c2": 1.3,
        "sigma_e2": 0.6,
        "sigma_b2": 0.4,
    }


def _dense(info, problem, point):
    var_scale = float(np.var(info.data.y, ddof=1))
    return spref.horseshoe_log_joint(
        info.data.y,
        info.data.X,
        info.W,
        point,
        problem.tau0,
        problem.c2_shape,
        problem.c2_rate,
        var_scale,
    )


#: (N, M): M ≤ r (the M×M precision) and M > r (Bhattacharya et al.'s algorithm).
SHAPES = [(40, 6), (12, 30)]


@pytest.mark.parametrize(("n", "m"), SHAPES)
def test_horseshoe_gibbs__conditionals_equal_dense(rng, n, m):
    """Each conditional's change between two values equals the dense joint's (1e-8)."""
    _, info = _model(n, m)
    problem = hg.make_problem(info)
    p0 = _point(info, rng)
    y1, X1 = problem.y1, problem.X1
    e1 = y1 - X1 @ p0["beta"]
    resid1 = e1 - problem.B @ p0["v"]
    rss0 = hg._null_rss(problem, p0["beta"])

    def variances(pt):
        return hg.log_conditional_variances(
            problem, resid1, rss0, pt["tau"], pt["sigma_e2"], pt["sigma_b2"]
        )

    def lam(pt):
        return float(hg.log_conditional_lambda(pt["v"], pt["lambda"], pt["tau"], pt["c2"]).sum())

    def c2(pt):
        return hg.log_conditional_c2(problem, pt["v"], pt["lambda"], pt["tau"], pt["c2"])

    changes = [
        ({"sigma_e2": 0.9}, variances),
        ({"sigma_b2": 0.2}, variances),
        ({"sigma_e2": 0.3, "sigma_b2": 1.1}, variances),
        ({"lambda": np.exp(rng.normal(0, 1, size=m))}, lam),
        ({"c2": 0.4}, c2),
    ]
    for change, conditional in changes:
        p1 = {**p0, **change}
        expected = _dense(info, problem, p1) - _dense(info, problem, p0)
        np.testing.assert_allclose(conditional(p1) - conditional(p0), expected, rtol=1e-8)
    # τ with v integrated out, through the factor of either size
    A = (problem.B.T / (p0["sigma_b2"] * problem.s + p0["sigma_e2"])) @ problem.B
    d = p0["sigma_b2"] * problem.s + p0["sigma_e2"]

    def tau(pt, use_a):
        phi = hg.prior_variances(pt["tau"], pt["lambda"], pt["c2"])
        fac = hg.marginal(problem, e1, d, phi, A if use_a else None)
        return hg.log_conditional_tau(problem, fac, pt["tau"], pt["sigma_e2"])

    p1 = {**p0, "tau": 0.31}
    expected = spref.horseshoe_log_tau_marginal(
        info.data.y, info.data.X, info.W, p1, problem.tau0
    ) - spref.horseshoe_log_tau_marginal(info.data.y, info.data.X, info.W, p0, problem.tau0)
    uses = (True, False) if m <= len(d) else (False,)
    for use_a in uses:
        np.testing.assert_allclose(tau(p1, use_a) - tau(p0, use_a), expected, rtol=1e-8)


@pytest.mark.parametrize(("n", "m"), SHAPES)
def test_horseshoe_gibbs__effects_draw_is_the_dense_conditional(rng, n, m):
    """v | rest: mean and covariance of 20,000 draws against the dense formula."""
    _, info = _model(n, m)
    problem = hg.make_problem(info)
    pt = {**_point(info, rng), "tau": 0.3}
    d = pt["sigma_b2"] * problem.s + pt["sigma_e2"]
    e1 = problem.y1 - problem.X1 @ pt["beta"]
    phi = hg.prior_variances(pt["tau"], pt["lambda"], pt["c2"])
    A = (problem.B.T / d) @ problem.B if m <= len(d) else None
    fac = hg.marginal(problem, e1, d, phi, A)
    draws = np.array([hg.draw_effects(problem, fac, e1, d, rng) for _ in range(20_000)])
    mean, cov = spref.horseshoe_effects_conditional(info.data.y, info.data.X, info.W, pt)
    se = np.sqrt(np.diag(cov) / len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4.5 * se), (draws.mean(axis=0), mean)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.06 * np.max(np.diag(cov)))


def _gibbs(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)  # short chains
        return bl.sample(model, sampler="gibbs", progressbar=False, **kwargs)


def test_horseshoe_gibbs__reproducible_with_the_nuts_result_layout():
    model, _ = _model(40, 12)
    a = _gibbs(model, draws=20, tune=5, chains=2, random_seed=3)
    b = _gibbs(model, draws=20, tune=5, chains=2, random_seed=3)
    c = _gibbs(model, draws=20, tune=5, chains=2, random_seed=4)
    pa, pb = a["posterior"].to_dataset(), b["posterior"].to_dataset()
    for name in pa.data_vars:
        np.testing.assert_array_equal(pa[name].values, pb[name].values, err_msg=name)
    assert not np.allclose(pa["tau"].values, c["posterior"]["tau"].values)
    expected = {"beta", "sigma_e2", "sigma_b2", "tau", "c2", "lambda", "z", "v", "pip"}
    expected |= {"pve", "pge", "h2", "sigma_g2", "u", "v_background"}
    assert expected <= set(pa.data_vars)
    assert pa["v"].dims == ("chain", "draw", "snp") and pa["u"].dims == ("chain", "draw", "sample")
    assert a["log_likelihood"]["y"].shape == (2, 20, 40)
    assert a.attrs["sampler"] == "gibbs" and a.attrs["model"] == "snp_lmm_horseshoe"
    # z and v are the NUTS path's: v = z τ λ̃
    phi = hg.prior_variances(pa["tau"], pa["lambda"], pa["c2"])
    np.testing.assert_allclose(pa["v"], pa["z"] * np.sqrt(phi), rtol=1e-10)


def test_horseshoe_gibbs__draws_do_not_depend_on_cores():
    """Chains in threads: the same draws, also through a prior compiled from PyMC (a lock)."""
    sim = simulate(40, 12, 0.6, seed=2)
    model = bl.snp_model(
        sim.y,
        sim.G,
        marginalize=False,
        prior="horseshoe",
        priors={"sigma_e2": bl.Prior("Gamma", alpha=2.0, beta=1.0)},  # no closed form here
    )
    one, two = (
        _gibbs(model, draws=30, tune=10, chains=3, random_seed=5, cores=c)["posterior"]
        for c in (1, 2)
    )
    for name in ("tau", "sigma_e2", "v", "lambda"):
        np.testing.assert_array_equal(one[name].values, two[name].values, err_msg=name)


def _student_beta(sim):
    """A horseshoe model with a StudentT prior on β, which the Gibbs sampler cannot take."""
    return bl.snp_model(
        sim.y,
        sim.G,
        marginalize=False,
        prior="horseshoe",
        priors={"beta": bl.Prior("StudentT", nu=3, mu=0, sigma=10)},
    )


def test_horseshoe_gibbs__other_models_and_priors_are_refused():
    sim = simulate(30, 8, 0.5, seed=1)
    mixture = bl.snp_model(sim.y, sim.G, marginalize=False, prior="mixture")
    with pytest.raises(bl.InputError, match="prior='horseshoe'"):
        bl.sample(mixture, sampler="gibbs", draws=5, tune=5)
    student = _student_beta(sim)
    with pytest.raises(bl.InputError, match="sampler='nutpie'"):
        bl.sample(student, sampler="gibbs", draws=5, tune=5)


def test_horseshoe_gibbs__is_the_horseshoe_default_where_it_takes_the_priors():
    """Default sampler: "gibbs"; with a prior it cannot take, NUTS and a warning that says why."""
    sim = simulate(30, 8, 0.5, seed=1)
    model = bl.snp_model(sim.y, sim.G, marginalize=False, prior="horseshoe")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bl.sample(model, draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    assert not [w for w in caught if "This horseshoe model" in str(w.message)]
    assert fit.attrs["sampler"] == "gibbs"
    explicit = _gibbs(model, draws=200, tune=200, chains=2, random_seed=1)
    np.testing.assert_array_equal(fit["posterior"]["tau"], explicit["posterior"]["tau"])
    # target_accept is NUTS's: refused with the default exact sampler, as with sampler="gibbs"
    with pytest.raises(bl.InputError, match="target_accept.*sampler='nutpie'"):
        bl.sample(model, draws=5, tune=5, target_accept=0.95)
    student = _student_beta(sim)
    with pytest.warns(bl.SamplingWarning, match=r"sampled by NUTS.*'beta' is StudentT"):
        fit = bl.sample(student, draws=20, tune=20, chains=1, random_seed=1, progressbar=False)
    assert fit.attrs["sampler"] == "nutpie"
    with warnings.catch_warnings(record=True) as caught:  # choosing NUTS silences it
        warnings.simplefilter("always")
        bl.sample(student, sampler="nutpie", draws=20, tune=20, chains=1, progressbar=False)
    assert not [w for w in caught if "This horseshoe model" in str(w.message)]


@pytest.mark.slow
def test_horseshoe_gibbs__posterior_equals_nuts_on_a_small_problem():
    """M = 4, N = 50, one large effect: posterior means of v, log τ and PVE as NUTS's.

    Both within 4.5 Monte Carlo SEs (from each sampler's ESS) of each other.
    """
    import arviz_stats as azs

    sim = simulate(50, 4, 0.3, seed=7)
    y = sim.y + 0.8 * sim.W[:, 2]
    model = bl.snp_model(y, sim.G, marginalize=False, prior="horseshoe")
    gibbs = _gibbs(model, draws=2000, tune=200, chains=2, random_seed=1)["posterior"]
    nuts = sample_counted(
        model, draws=1000, tune=500, chains=2, random_seed=1, sampler="nutpie", target_accept=0.99
    )["posterior"]
    for name, f in (("v", lambda x: x), ("tau", np.log), ("pve", lambda x: x)):
        a, b = f(gibbs[name]), f(nuts[name])
        se2 = sum(x.var(("chain", "draw")) / azs.ess(x, method="mean") for x in (a, b))
        diff = np.abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw")))
        assert np.all(diff.values < 4.5 * np.sqrt(se2.values)), (name, diff.values)
    assert math.isfinite(float(gibbs["tau"].mean()))


def _quadrature_moments(log_density, grid):
    """Mean and SD of x under exp(log_density(x)) on an even grid (brute force)."""
    logs = np.array([log_density(x) for x in grid])
    w = np.exp(logs - logs.max())
    w /= w.sum()
    mean = float(w @ grid)
    return mean, float(np.sqrt(w @ (grid - mean) ** 2))


@pytest.mark.parametrize(("n", "m"), SHAPES)
def test_horseshoe_gibbs__tau_step_leaves_its_conditional_invariant(rng, n, m):
    """3,000 τ steps (v integrated out) against the 1-D conditional of log τ by quadrature."""
    _, info = _model(n, m)
    problem = hg.make_problem(info)
    pt = _point(info, rng)
    st = hg.State(pt["beta"], pt["v"], pt["lambda"], 0.1, pt["c2"], pt["sigma_e2"], pt["sigma_b2"])
    d = st.sigma_b2 * problem.s + st.sigma_e2
    e1 = problem.y1 - problem.X1 @ st.beta
    A = (problem.B.T / d) @ problem.B if m <= hg.PRIMAL_RATIO * len(d) else None

    def log_density(log_tau):
        tau = math.exp(log_tau)
        fac = hg.marginal(problem, e1, d, hg.prior_variances(tau, st.lam, st.c2), A)
        return hg.log_conditional_tau(problem, fac, tau, st.sigma_e2) + log_tau

    mean, sd = _quadrature_moments(log_density, np.linspace(-25.0, 8.0, 6001))
    draws = []
    for _ in range(3000):
        hg.tau_step(problem, st, d, rng)
        draws.append(math.log(st.tau))
    draws = np.array(draws[100:])
    assert abs(draws.mean() - mean) < 0.15 * sd, (draws.mean(), mean, sd)
    assert abs(draws.std() / sd - 1) < 0.1, (draws.std(), sd)


def test_horseshoe_gibbs__lambda_slice_samples_its_conditional(rng):
    """4,000 independent λ chains, 30 vectorized slice steps each, against quadrature."""
    v, tau, c2 = np.full(4000, 0.05), 0.1, 1.3

    def log_density(x):
        return float(hg.log_conditional_lambda(v[:1], np.exp([x]), tau, c2)[0]) + x

    mean, sd = _quadrature_moments(log_density, np.linspace(-20.0, 25.0, 9001))
    x = np.zeros(4000)
    for _ in range(30):
        x = hg.slice_step_vector(
            lambda z: hg.log_conditional_lambda(v, np.exp(z), tau, c2) + z, x, rng
        )
    se = sd / math.sqrt(len(x))
    assert abs(x.mean() - mean) < 4.5 * se, (x.mean(), mean, sd)
    assert abs(x.std() / sd - 1) < 0.05, (x.std(), sd)


def test_horseshoe_gibbs__single_site_sweep_leaves_its_conditional_invariant(rng):
    """M = 2: 3,000 sweeps of (λ_j, v_j) against p(λ₁, λ₂ | τ, c², β, σ's) on a 2-D grid.

    The reference integrates v out of the sample-space likelihood (N×N V, then 2×2 Woodbury).
    """
    _, info = _model(40, 2, n_nonzero=1)
    problem = hg.make_problem(info)
    pt = {**_point(info, rng), "tau": 0.4}
    st = hg.State(pt["beta"], pt["v"], pt["lambda"], pt["tau"], pt["c2"], 0.6, 0.4)
    d = st.sigma_b2 * problem.s + st.sigma_e2
    draws = []
    for _ in range(3000):
        hg.single_site_sweep(problem, st, d, rng)
        draws.append(np.log(st.lam))
    draws = np.array(draws[100:])
    # dense: log N(y; Xβ, V + WΦW') up to a constant, V = σb² WW'/M + σe² I (N×N)
    y, X, W = info.data.y, info.data.X, info.W
    V = st.sigma_b2 * W @ W.T / 2 + st.sigma_e2 * np.eye(len(y))
    Vi = np.linalg.inv(V)
    A, b = W.T @ Vi @ W, W.T @ Vi @ (y - X @ st.beta)
    grid = np.linspace(-8.0, 8.0, 321)
    x1, x2 = np.meshgrid(grid, grid, indexing="ij")
    t2l2 = st.tau**2 * np.exp(2 * np.stack([x1, x2]))
    p1, p2 = st.c2 * t2l2 / (st.c2 + t2l2)
    # Φ⁻¹ + A: its determinant and b'(Φ⁻¹ + A)⁻¹b, elementwise over the grid
    m11, m22, m12 = 1 / p1 + A[0, 0], 1 / p2 + A[1, 1], A[0, 1]
    det = m11 * m22 - m12**2
    quad = (m22 * b[0] ** 2 - 2 * m12 * b[0] * b[1] + m11 * b[1] ** 2) / det
    logs = -0.5 * (np.log(det) + np.log(p1) + np.log(p2)) + 0.5 * quad
    logs += -np.log1p(np.exp(2 * x1)) - np.log1p(np.exp(2 * x2)) + x1 + x2
    w = np.exp(logs - logs.max())
    w /= w.sum()
    for axis, marginal in enumerate((w.sum(axis=1), w.sum(axis=0))):
        mean = float(marginal @ grid)
        sd = float(np.sqrt(marginal @ (grid - mean) ** 2))
        got = draws[:, axis]
        assert abs(got.mean() - mean) < 0.1 * sd, (axis, got.mean(), mean, sd)
        assert abs(got.std() / sd - 1) < 0.1, (axis, got.std(), sd)


def _line_draws(step, st, alpha, n_steps, rng):
    """x along (log τ + x, log λ − αx) after each of n_steps steps; λ checked on the line."""
    log_tau0, log_lam0 = math.log(st.tau), np.log(st.lam)
    xs = []
    for _ in range(n_steps):
        step(st, rng)
        x = math.log(st.tau) - log_tau0
        np.testing.assert_allclose(np.log(st.lam), log_lam0 - alpha * x, atol=1e-9)
        xs.append(x)
    return np.array(xs[100:])


@pytest.mark.parametrize(("n", "m"), SHAPES)
def test_horseshoe_gibbs__tau_line_step_leaves_its_conditional_invariant(rng, n, m):
    """τ's step along (log τ + x, log λ − αx), v integrated out: 3,000 steps against quadrature.

    The reference: the dense N×N marginal of y (v integrated out) + τ's prior, the λ's
    half-Cauchy priors, and the log-scale Jacobians (1 − Σα)x.
    """
    from scipy import stats

    _, info = _model(n, m)
    problem = hg.make_problem(info)
    pt = _point(info, rng)
    st = hg.State(pt["beta"], pt["v"], pt["lambda"], 0.1, pt["c2"], pt["sigma_e2"], pt["sigma_b2"])
    d = st.sigma_b2 * problem.s + st.sigma_e2
    alpha = rng.uniform(0.0, 1.0, size=m)
    lam0, tau0 = st.lam.copy(), st.tau

    def log_density(x):
        point = {**pt, "tau": tau0 * math.exp(x), "lambda": lam0 * np.exp(-alpha * x)}
        return (
            spref.horseshoe_log_tau_marginal(info.data.y, info.data.X, info.W, point, problem.tau0)
            + stats.halfcauchy.logpdf(point["lambda"]).sum()
            + (1.0 - alpha.sum()) * x
        )

    mean, sd = _quadrature_moments(log_density, np.linspace(-15.0, 10.0, 1251))
    draws = _line_draws(lambda s, g: hg.tau_step(problem, s, d, g, alpha), st, alpha, 3000, rng)
    assert abs(draws.mean() - mean) < 0.15 * sd, (draws.mean(), mean, sd)
    assert abs(draws.std() / sd - 1) < 0.1, (draws.std(), sd)


@pytest.mark.parametrize(("n", "m"), SHAPES)
def test_horseshoe_gibbs__scale_step_leaves_its_conditional_invariant(rng, n, m):
    """The same line with z = v/√φ fixed: 3,000 steps against quadrature of the dense joint.

    The reference: the dense joint of (y, v, λ, τ) at v = z√φ(x), plus the Jacobians of
    (log τ, log λ, z) ↦ (τ, λ, v): (1 − Σα)x + ½ Σ log φ_j(x).
    """
    _, info = _model(n, m)
    problem = hg.make_problem(info)
    pt = {**_point(info, rng), "tau": 0.1}
    st = hg.State(pt["beta"], pt["v"], pt["lambda"], 0.1, pt["c2"], pt["sigma_e2"], pt["sigma_b2"])
    d = st.sigma_b2 * problem.s + st.sigma_e2
    alpha = rng.uniform(0.0, 1.0, size=m)
    z = st.v / np.sqrt(hg.prior_variances(st.tau, st.lam, st.c2))

    def log_density(x):
        tau, lam = pt["tau"] * math.exp(x), pt["lambda"] * np.exp(-alpha * x)
        phi = hg.prior_variances(tau, lam, pt["c2"])
        point = {**pt, "tau": tau, "lambda": lam, "v": z * np.sqrt(phi)}
        jacobian = (1.0 - alpha.sum()) * x + 0.5 * np.log(phi).sum()
        return _dense(info, problem, point) + jacobian

    mean, sd = _quadrature_moments(log_density, np.linspace(-15.0, 10.0, 1251))
    draws = _line_draws(lambda s, g: hg.scale_step(problem, s, d, g, alpha), st, alpha, 3000, rng)
    assert abs(draws.mean() - mean) < 0.15 * sd, (draws.mean(), mean, sd)
    assert abs(draws.std() / sd - 1) < 0.1, (draws.std(), sd)
    # v stays z√φ
    np.testing.assert_allclose(st.v / np.sqrt(hg.prior_variances(st.tau, st.lam, st.c2)), z)
