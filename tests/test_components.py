"""Several variance components: the latent/marginalized model, LOO, u draws and (RE)ML against
the dense references of models/multi_lmm/reference.py."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayeslmm as bl
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.families.base import info_of
from bayeslmm.families.components import draw_components, layout, loo_components, postprocess
from models.multi_lmm import reference as ref
from tests.nuts import sample_counted


def _standardize(G):
    return (G - G.mean(0)) / G.std(0)


def _data(seed, n=50, low_rank=False, h2=(0.4, 0.2)):
    """Two kinships from disjoint SNP sets; low rank: 12 and 20 SNPs, else full rank."""
    rng = np.random.default_rng(seed)
    m1, m2 = (12, 20) if low_rank else (150, 150)
    W1 = _standardize(rng.binomial(2, rng.uniform(0.1, 0.5, m1), (n, m1)).astype(float))
    W2 = _standardize(rng.binomial(2, rng.uniform(0.1, 0.5, m2), (n, m2)).astype(float))
    K1, K2 = W1 @ W1.T / m1, W2 @ W2.T / m2
    if not low_rank:  # full rank (a centred K has the all-ones vector in its null space)
        K1, K2 = K1 + 0.05 * np.eye(n), K2 + 0.05 * np.eye(n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    u1 = W1 @ rng.normal(0, np.sqrt(h2[0] / m1), m1)
    u2 = W2 @ rng.normal(0, np.sqrt(h2[1] / m2), m2)
    y = X @ [1.0, 0.3] + u1 + u2 + rng.normal(0, np.sqrt(1 - sum(h2)), n)
    return y, X, K1, K2


def _likelihood_fn(model):
    """Compiled (log p(y | θ, z) incl. the null-space term, log N(z | 0, I)) at a point."""
    lik = model.logp(vars=[model["y"], *model.potentials])
    prior_z = model.logp(vars=[model["z"]])
    return model.compile_fn(
        [lik, prior_z], inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE"
    )


def _random_point(model, rng, k):
    point = dict(model.initial_point())
    point["beta"] = rng.normal(size=point["beta"].shape)
    point["z"] = rng.normal(size=point["z"].shape)
    if "shares" in model.named_vars:
        shares = rng.dirichlet(np.ones(k + 1))
        transform = model.rvs_to_transforms[model["shares"]]
        point["shares_simplex__"] = transform.forward(shares).eval()
        sigma_p = rng.uniform(0.5, 2.0)
        point["sigma_p_log__"] = np.log(sigma_p)
        return point, shares[:k] * sigma_p**2, shares[k] * sigma_p**2
    sigma_k2 = rng.uniform(0.1, 1.5, k)
    sigma_e2 = rng.uniform(0.1, 1.5)
    point["sigma_g2_component_log__"] = np.log(sigma_k2)
    point["sigma_e2_log__"] = np.log(sigma_e2)
    return point, sigma_k2, sigma_e2


def _latent_effects(info, point, sigma_k2):
    spectra, lay = info.extra["spectra"], info.extra["layout"]
    a = np.sqrt(lay.latent_s * (lay.latent_map @ sigma_k2)) * point["z"]
    B = np.column_stack([spectra[j].U for j in lay.latent])
    return B @ a


@pytest.mark.parametrize("parametrization", ["h2", "variance"])
@pytest.mark.parametrize("low_rank", [False, True])
def test_multi_kinship_model__logp_equals_dense_conditional(low_rank, parametrization):
    """log p(y | θ, z) = log N(y | Xβ + u_latent, σm² Km + σe² I); z's density is N(0, I)."""
    y, X, K1, K2 = _data(1, low_rank=low_rank)
    model = bl.kinship_model(y, [K1, K2], X[:, 1:], parametrization=parametrization)
    info = info_of(model)
    spectra, lay = info.extra["spectra"], info.extra["layout"]
    assert (info.extra["layout"].n_null > 0) == low_rank
    f = _likelihood_fn(model)
    rng = np.random.default_rng(2)
    for _ in range(3):
        point, sigma_k2, sigma_e2 = _random_point(model, rng, 2)
        lik, prior_z = f(point)
        m = lay.marginal
        mean = X @ point["beta"] + _latent_effects(info, point, sigma_k2)
        dense = ref.conditional_loglik(y, mean, spectra[m].matrix(), sigma_k2[m], sigma_e2)
        assert lik == pytest.approx(dense, rel=1e-10, abs=1e-8)
        z = point["z"]
        assert prior_z == pytest.approx(-0.5 * (z @ z + z.size * np.log(2 * np.pi)), abs=1e-9)


def test_multi_kinship_model__three_components_logp():
    """Two latent components and one marginalized (the one of largest rank)."""
    y, X, K1, K2 = _data(3, low_rank=True)
    rng = np.random.default_rng(3)
    W3 = _standardize(rng.binomial(2, 0.3, (50, 200)).astype(float))
    K3 = W3 @ W3.T / 200
    model = bl.kinship_model(y, [K1, K3, K2], X[:, 1:])
    info = info_of(model)
    spectra, lay = info.extra["spectra"], info.extra["layout"]
    assert lay.marginal == 1 and lay.latent == (0, 2)
    f = _likelihood_fn(model)
    point, sigma_k2, sigma_e2 = _random_point(model, rng, 3)
    lik, _ = f(point)
    mean = X @ point["beta"] + _latent_effects(info, point, sigma_k2)
    dense = ref.conditional_loglik(y, mean, spectra[1].matrix(), sigma_k2[1], sigma_e2)
    assert lik == pytest.approx(dense, rel=1e-10)


def test_multi_kinship_model__marginal_equals_dense_pymc_model():
    """Integrating z out of the package model (exactly: it is Gaussian in z) gives the logp of
    the dense MvNormal model of the reference, priors and Jacobians included."""
    y, X, K1, K2 = _data(4, n=30, low_rank=True)
    model = bl.kinship_model(y, [K1, K2], X[:, 1:])
    spectra = info_of(model).extra["spectra"]
    dense = ref.dense_multi_model(y, X, [sp.matrix() for sp in spectra])
    fast = {"mode": "FAST_COMPILE"}
    logp = model.compile_logp(**fast)
    dlogp = model.compile_dlogp(vars=[model["z"]], **fast)
    dense_logp = dense.compile_logp(**fast)
    rng = np.random.default_rng(5)
    for _ in range(3):
        point, _, _ = _random_point(model, rng, 2)
        # logp is quadratic in z: exact Hessian from differences of the gradient
        g0, r = dlogp(point), point["z"].size
        hess = np.column_stack(
            [dlogp({**point, "z": point["z"] + np.eye(r)[j]}) - g0 for j in range(r)]
        )
        hess = 0.5 * (hess + hess.T)
        point["z"] = point["z"] - np.linalg.solve(hess, g0)  # the mode in z
        r = point["z"].size
        marginal = logp(point) + 0.5 * r * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(-hess)[1]
        theta = {k: v for k, v in point.items() if k != "z"}
        assert marginal == pytest.approx(dense_logp(theta), rel=1e-9)


def test_multi_kinship_model__structure():
    y, X, K1, K2 = _data(2, low_rank=True)
    model = bl.kinship_model(y, {"chr1": K2, "chr2": K1}, X[:, 1:])
    assert [v.name for v in model.free_RVs] == ["beta", "sigma_p", "shares", "z"]
    assert model.coords["component"] == ("chr1", "chr2")
    assert model.coords["share"] == ("chr1", "chr2", "residual")
    assert model.named_vars_to_dims["h2_component"] == ("component",)
    assert model.named_vars_to_dims["sigma_g2_component"] == ("component",)
    assert "h2" not in model.named_vars_to_dims  # dim-less total
    for name in ("h2", "sigma_g2", "sigma_e2", "beta"):
        assert name in model.named_vars
    info = info_of(model)
    assert info.form == "multi_kinship_lmm"
    assert info.extra["marginalized"] == "chr1"  # rank 20 > 12
    assert len(model.coords["latent"]) == 12
    shapes = model.eval_rv_shapes()
    assert shapes["shares_simplex__"] == (2,)
    variance = bl.kinship_model(y, [K1, K2], X[:, 1:], parametrization="variance")
    assert [v.name for v in variance.free_RVs] == ["beta", "sigma_g2_component", "sigma_e2", "z"]


def test_multi_kinship_model__aligned_by_id():
    """Shuffled DataFrames (and a plain array aligned with the first) give the same model."""
    y, X, K1, K2 = _data(6, low_rank=True)
    ids = [f"s{i}" for i in range(len(y))]
    p1, p2 = (
        np.random.default_rng(0).permutation(len(y)),
        np.random.default_rng(1).permutation(len(y)),
    )
    frame1 = pd.DataFrame(K1[np.ix_(p1, p1)], index=np.array(ids)[p1], columns=np.array(ids)[p1])
    frame2 = pd.DataFrame(K2[np.ix_(p2, p2)], index=np.array(ids)[p2], columns=np.array(ids)[p2])
    y_series = pd.Series(y, index=ids, name="trait")
    X_frame = pd.DataFrame({"x": X[:, 1]}, index=ids)
    by_id = bl.kinship_model(y_series, [frame1, frame2], X_frame)
    mixed = bl.kinship_model(y_series, [frame1, K2[np.ix_(p1, p1)]], X_frame)
    plain = bl.kinship_model(y, [K1, K2], X[:, 1:])
    order = [ids.index(s) for s in info_of(by_id).data.samples]
    np.testing.assert_array_equal(info_of(by_id).data.y, y[order])
    # z = 0: y, X and the marginalized K are aligned (eigenvector signs are arbitrary, so a
    # z ≠ 0 is not comparable across decompositions); the LOO terms check every K
    theta = (np.array([[1.0, 0.2]]), np.array([[0.4, 0.3]]), np.array([0.5]))
    values, loos = [], []
    for model in (by_id, mixed, plain):
        point = dict(model.initial_point())
        values.append(model.compile_logp(mode="FAST_COMPILE")(point))
        info = info_of(model)
        loo = loo_components(
            info.extra["spectra"], info.extra["layout"], info.data.y, info.data.X, *theta
        )[0]
        samples = info.data.samples
        if model is plain:  # positional: samples are named by position
            samples = [ids[int(i) - 1] for i in samples]  # "1".."N"
        loos.append(pd.Series(loo, index=samples).loc[ids].to_numpy())
    assert values[0] == pytest.approx(values[2], rel=1e-9)
    assert values[1] == pytest.approx(values[2], rel=1e-9)
    np.testing.assert_allclose(loos[0], loos[2], atol=1e-10)
    np.testing.assert_allclose(loos[1], loos[2], atol=1e-10)
    # one K lacks two samples: they are dropped from every input, with a warning
    with pytest.warns(DataWarning, match="not in K2"):
        fewer = bl.kinship_model(y_series, [frame1, frame2.iloc[2:, 2:]], X_frame)
    assert info_of(fewer).data.n == len(y) - 2


def test_multi_kinship_model__errors():
    y, X, K1, K2 = _data(7, low_rank=True)
    with pytest.raises(InputError, match="probit with several|not supported yet"):
        bl.kinship_model((y > 1).astype(float), [K1, K2], family="probit")
    with pytest.raises(InputError, match="different sizes"):
        bl.kinship_model(y, [K1, K2[:-1, :-1]])
    with pytest.raises(InputError, match="'shares'"):
        bl.kinship_model(y, [K1, K2], priors={"h2": bl.Prior("Beta", alpha=1, beta=1)})
    with pytest.raises(InputError, match="sigma_g2_component"):
        bl.kinship_model(y, [K1, K2], priors={"sigma_g2": bl.Prior("HalfNormal", sigma=1)})
    with pytest.raises(InputError, match="simplex|entries"):
        bl.kinship_model(y, [K1, K2], priors={"shares": bl.Prior("Dirichlet", a=np.ones(2))})
    with pytest.raises(InputError, match="empty"):
        bl.kinship_model(y, [])
    K_bad = K1.copy()
    K_bad[0, 1] += 1.0
    with pytest.raises(InputError, match="K2 is not symmetric"):
        bl.kinship_model(y, [K1, K_bad])


@pytest.mark.parametrize("low_rank", [False, True])
def test_loo_components__equals_dense(low_rank):
    """Woodbury LOO = the dense formula (inverse of V) at several draws, to 1e-8."""
    y, X, K1, K2 = _data(8, n=40, low_rank=low_rank)
    model = bl.kinship_model(y, [K1, K2], X[:, 1:])
    info = info_of(model)
    spectra, lay = info.extra["spectra"], info.extra["layout"]
    Ks = [sp.matrix() for sp in spectra]
    rng = np.random.default_rng(9)
    beta = rng.normal(size=(5, 2))
    sigma_k2 = rng.uniform(0.05, 1.5, (5, 2))
    sigma_e2 = rng.uniform(0.05, 1.5, 5)
    fast = loo_components(spectra, lay, info.data.y, info.data.X, beta, sigma_k2, sigma_e2)
    for t in range(5):
        dense = ref.loo_dense(y, X, Ks, beta[t], sigma_k2[t], sigma_e2[t])
        np.testing.assert_allclose(fast[t], dense, rtol=0, atol=1e-8)
    brute = ref.loo_brute_force(y, X, Ks, beta[0], sigma_k2[0], sigma_e2[0])
    np.testing.assert_allclose(fast[0], brute, rtol=0, atol=1e-8)


def test_loo_components__three_components():
    y, X, K1, K2 = _data(10, n=40, low_rank=True)
    K3 = 0.5 * (K1 + K2) + 0.1 * np.eye(40)
    model = bl.kinship_model(y, [K1, K2, K3], X[:, 1:])
    info = info_of(model)
    spectra, lay = info.extra["spectra"], info.extra["layout"]
    beta, sigma_k2, sigma_e2 = np.array([[1.0, 0.2]]), np.array([[0.3, 0.5, 0.2]]), np.array([0.4])
    fast = loo_components(spectra, lay, info.data.y, info.data.X, beta, sigma_k2, sigma_e2)
    dense = ref.loo_dense(y, X, [sp.matrix() for sp in spectra], beta[0], sigma_k2[0], 0.4)
    np.testing.assert_allclose(fast[0], dense, atol=1e-8)


def test_draw_components__conditional_gaussian():
    """u_m given the latent draw: mean σm²Km(σm²Km + σe²I)⁻¹(y − Xβ − u_l) (rng None), and the
    Monte-Carlo covariance of the draws matches the dense conditional covariance."""
    y, X, K1, K2 = _data(11, n=30, low_rank=True)
    model = bl.kinship_model(y, [K1, K2], X[:, 1:])
    info = info_of(model)
    spectra, lay = info.extra["spectra"], info.extra["layout"]
    m, (lat,) = lay.marginal, lay.latent
    Km, Kl = spectra[m].matrix(), spectra[lat].matrix()
    beta, sk, se = np.array([[0.9, 0.2]]), np.array([[0.5, 0.7]]), np.array([0.3])
    z = np.random.default_rng(1).normal(size=(1, lay.latent_s.size))
    u = draw_components(spectra, lay, y, X, beta, z, sk, se, None)
    u_l = spectra[lat].U @ (np.sqrt(sk[0, lat] * spectra[lat].s) * z[0])
    np.testing.assert_allclose(u[0, lat], u_l, atol=1e-12)
    mean = ref.conditional_mean_u(y - u_l, X, [Km], beta[0], [sk[0, m]], se[0])[0]
    np.testing.assert_allclose(u[0, m], mean, atol=1e-10)
    assert np.allclose(Kl @ np.linalg.pinv(Kl) @ u_l, u_l)  # u_l lies in the range of K_l
    n_draws = 4000
    rep = lambda a: np.repeat(a, n_draws, axis=0)  # noqa: E731
    draws = draw_components(
        spectra, lay, y, X, rep(beta), rep(z), rep(sk), rep(se), np.random.default_rng(2)
    )[:, m]
    cov = ref.conditional_cov_u([Km], [sk[0, m]], se[0], 0)
    np.testing.assert_allclose(draws.mean(0), mean, atol=5 * np.sqrt(np.diag(cov).max() / 4000))
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.1 * np.abs(cov).max())


def test_postprocess__returns_effects_and_loglik():
    """The family's postprocess on a hand-made posterior: shapes, names, u = Σ u_k, LOO = dense."""
    y, X, K1, K2 = _data(12, n=30, low_rank=True)
    model = bl.kinship_model(y, {"a": K1, "b": K2}, X[:, 1:])
    info = info_of(model)
    rng = np.random.default_rng(3)
    chains, draws, r = 2, 3, len(model.coords["latent"])
    shares = rng.dirichlet(np.ones(3), (chains, draws))
    sigma_p2 = rng.uniform(0.5, 1.5, (chains, draws))

    def var(values, *dims):
        return (("chain", "draw", *dims), values)

    posterior = xr.Dataset(
        {
            "beta": var(rng.normal(size=(chains, draws, 2)), "covariate"),
            "z": var(rng.normal(size=(chains, draws, r)), "latent"),
            "sigma_g2_component": var(shares[..., :2] * sigma_p2[..., None], "component"),
            "sigma_e2": var(shares[..., 2] * sigma_p2),
        }
    )
    new, loglik = postprocess(posterior, info, np.random.default_rng(0), True)
    assert set(new) == {"u", "u_a", "u_b"}
    assert new["u"][0].shape == (6, 30) and new["u"][1] == "sample"
    np.testing.assert_allclose(new["u"][0], new["u_a"][0] + new["u_b"][0])
    assert loglik.shape == (6, 30)
    Ks = [sp.matrix() for sp in info.extra["spectra"]]
    sk = posterior["sigma_g2_component"].values.reshape(6, 2)
    dense = ref.loo_dense(
        y,
        X,
        Ks,
        posterior["beta"].values.reshape(6, 2)[4],
        sk[4],
        posterior["sigma_e2"].values.ravel()[4],
    )
    np.testing.assert_allclose(loglik[4], dense, atol=1e-8)
    new, _ = postprocess(posterior, info, None, False)
    assert new == {}


def test_layout__null_space_gram():
    """The Gram matrix of the residuals off U_m equals the dense projection."""
    y, X, K1, K2 = _data(13, n=30, low_rank=True)
    spectra = [bl.spectral_from_kinship(K1), bl.spectral_from_kinship(K2)]
    lay = layout(spectra, y, X)
    U = spectra[lay.marginal].U
    A = np.column_stack([X, spectra[lay.latent[0]].U, y])
    P = np.eye(30) - U @ U.T
    np.testing.assert_allclose(lay.gram, A.T @ P @ A, atol=1e-10)


# --------------------------------------------------------------------------------------------
# (RE)ML
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "low_rank", "seed"),
    [("reml", False, 1), ("reml", True, 1), ("ml", True, 2), ("reml", True, 14)],
)
def test_reml_components__equals_brute_force(method, low_rank, seed):
    y, X, K1, K2 = _data(seed, n=50, low_rank=low_rank)
    fit = bl.reml(y, [K1, K2], X[:, 1:], method=method)
    Ks = [K1 / np.mean(np.diag(K1)), K2 / np.mean(np.diag(K2))]
    brute = ref.brute_force_fit(y, X, Ks, method)
    assert fit.loglik >= brute["loglik"] - 1e-7  # never worse than brute force
    assert fit.loglik == pytest.approx(brute["loglik"], abs=1e-6)
    np.testing.assert_allclose(fit.h2_components.values, brute["h2_components"], atol=1e-4)
    assert fit.h2 == pytest.approx(brute["h2"], abs=1e-4)
    np.testing.assert_allclose(fit.sigma_g2_components.values, brute["sigma_k2"], atol=1e-4)
    assert fit.sigma_e2 == pytest.approx(brute["sigma_e2"], abs=1e-4)
    np.testing.assert_allclose(fit.beta.values, brute["beta"], atol=1e-4)
    assert np.all(np.isfinite(fit.h2_components_se)) and np.isfinite(fit.h2_se)
    assert fit.at_boundary == bool((fit.h2_components.values <= 1e-6).any())
    profile = ref.profile_loglik(fit.h2_components.values, y, X, Ks, method)
    assert fit.loglik == pytest.approx(profile, abs=1e-9)


def test_reml_components__se_is_observed_information():
    """SEs against the inverse of a finite-difference Hessian of the dense profile likelihood."""
    y, X, K1, K2 = _data(1, n=50)
    fit = bl.reml(y, [K1, K2], X[:, 1:])
    assert fit.se_method == "observed information" and not fit.at_boundary
    Ks = [K1 / np.mean(np.diag(K1)), K2 / np.mean(np.diag(K2))]
    h, step = fit.h2_components.values, 1e-4
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * step, np.eye(2)[j] * step
            f = [
                ref.profile_loglik(h + si * ei + sj * ej, y, X, Ks)
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1))
            ]
            hess[i, j] = (f[0] - f[1] - f[2] + f[3]) / (4 * step**2)
    cov = np.linalg.inv(-hess)
    np.testing.assert_allclose(fit.h2_components_se.values, np.sqrt(np.diag(cov)), rtol=1e-3)
    assert fit.h2_se == pytest.approx(np.sqrt(cov.sum()), rel=1e-3)


def test_reml_components__one_kinship_equals_reml():
    y, X, K1, _ = _data(15, n=50)
    single = bl.reml(y, K1, X[:, 1:])
    listed = bl.reml(y, [K1], X[:, 1:])
    assert listed.loglik == pytest.approx(single.loglik, abs=1e-6)
    assert listed.h2 == pytest.approx(single.h2, abs=1e-4)
    assert listed.h2_se == pytest.approx(single.h2_se, rel=1e-3)
    assert listed.h2_components.index.tolist() == ["K1"]


def test_reml_components__duplicated_kinship():
    """K and K again: only the total is identified; it equals the one-K fit, SEs are finite."""
    y, X, K1, _ = _data(16, n=50)
    single = bl.reml(y, K1, X[:, 1:])
    fit = bl.reml(y, [K1, K1], X[:, 1:])
    assert fit.loglik == pytest.approx(single.loglik, abs=1e-6)
    assert fit.h2 == pytest.approx(single.h2, abs=1e-4)
    assert fit.se_method == "likelihood interval"
    assert np.all(np.isfinite(fit.h2_components_se)) and np.isfinite(fit.h2_se)
    assert fit.h2_se == pytest.approx(single.h2_se, rel=0.1)  # ray interval vs profile interval


def test_reml_components__zero_share_equals_one_kinship():
    """When the second share is 0 at the optimum the fit is the one-K fit on K1."""
    y, X, K1, K2 = _data(20, n=50, low_rank=True, h2=(0.5, 0.0))
    fit = bl.reml(y, {"signal": K1, "noise": K2}, X[:, 1:])
    assert fit.h2_components["noise"] == 0.0 and fit.at_boundary
    single = bl.reml(y, K1, X[:, 1:])
    assert fit.loglik == pytest.approx(single.loglik, abs=1e-6)
    assert fit.h2_components["signal"] == pytest.approx(single.h2, abs=1e-4)
    assert np.isfinite(fit.h2_components_se).all()
    table = fit.to_series()
    assert table["h2_noise"] == 0.0 and "h2_signal_se" in table
    assert "h2[signal]" in str(fit)


# --------------------------------------------------------------------------------------------
# NUTS recovery
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_multi_kinship_model__recovers_per_component_h2():
    """Two chromosomes with h² 0.5 and 0.15 (N = 400, 100 SNPs each, all causal): the posterior
    means are within 3 posterior SDs of the truth and close to REML; LOO works on the result."""
    import arviz as az

    rng = np.random.default_rng(2026)
    n, m = 400, 100
    h2 = (0.5, 0.15)
    W = [_standardize(rng.binomial(2, rng.uniform(0.1, 0.5, m), (n, m)).astype(float)) for _ in h2]
    Ks = {"chr1": W[0] @ W[0].T / m, "chr2": W[1] @ W[1].T / m}
    g = [w @ rng.normal(0, 1, m) for w in W]
    g = [gi / gi.std() * np.sqrt(h) for gi, h in zip(g, h2, strict=True)]  # exact shares
    e = rng.normal(size=n)
    y = 2.0 + g[0] + g[1] + e / e.std() * np.sqrt(1 - sum(h2))
    fit = bl.reml(y, Ks)
    model = bl.kinship_model(y, Ks)
    # 2 × 500 draws: R-hat 1.010 in one CI run (Monte Carlo error), so the bound is 1.02
    idata = sample_counted(model, draws=500, chains=2, tune=500, random_seed=1, max_rhat=1.02)
    post = idata.posterior["h2_component"]
    mean = post.mean(("chain", "draw")).values
    sd = post.std(("chain", "draw")).values
    assert np.all(np.abs(mean - np.array(h2)) < 3 * sd), (mean, sd)
    np.testing.assert_allclose(mean, fit.h2_components.values, atol=0.05)
    assert idata.log_likelihood["y"].shape == (2, 500, n)
    assert "u_chr1" in idata.posterior and "u" in idata.posterior
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd)
