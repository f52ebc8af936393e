"""Principal components (bl.pcs) and the linear model without a random effect."""

from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import info_of
from bayeslmm.families.linear import linear_model
from bayeslmm.relatedness.pca import pcs
from models.major_loci import reference as ref
from tests.nuts import sample_counted

DATA = Path(__file__).parent / "data" / "eur"


def _numpy_pcs(G: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors of the standardized genotypes and their variance ratios."""
    G = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    G = G[:, G.std(axis=0) > 0]
    W = (G - G.mean(axis=0)) / G.std(axis=0)
    U, S, _ = np.linalg.svd(W, full_matrices=False)
    return U[:, :n], (S**2 / np.sum(S**2))[:n]


def _assert_same_up_to_sign(A: np.ndarray, B: np.ndarray, atol: float) -> None:
    signs = np.sign(np.sum(A * B, axis=0))
    np.testing.assert_allclose(A, B * signs, atol=atol)


@pytest.fixture(scope="module")
def cohort():
    return simulate(120, 60, 0.5, n_populations=3, fst=0.1, n_covariates=1, seed=11)


def test_pcs__genotype_array_matches_numpy_svd(cohort):
    """M < N: thin SVD path, against numpy's SVD of the standardized matrix (with a NaN)."""
    G = cohort.G.copy()
    G[3, 5] = np.nan
    out = pcs(G, 4, samples=cohort.samples)
    U, ratio = _numpy_pcs(G, 4)
    assert list(out.columns) == ["PC1", "PC2", "PC3", "PC4"]
    assert list(out.index) == list(cohort.samples)
    _assert_same_up_to_sign(out.to_numpy(), U, atol=1e-10)
    np.testing.assert_allclose(out.attrs["explained_variance_ratio"], ratio, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(out.to_numpy(), axis=0), 1.0)


def test_pcs__plink_file_matches_numpy_svd():
    """M ≥ N (eurA: 366 × 2,431): streamed K + eigh, on a subset of samples in a new order."""
    genotypes = bl.read_plink(DATA / "eurA")
    rows = np.random.default_rng(3).permutation(genotypes.n_samples)[:200]
    out = pcs(genotypes, 5, samples=genotypes.samples[rows])
    U, ratio = _numpy_pcs(genotypes.read(samples=rows), 5)
    assert list(out.index) == list(genotypes.samples[rows])
    _assert_same_up_to_sign(out.to_numpy(), U, atol=1e-8)
    np.testing.assert_allclose(out.attrs["explained_variance_ratio"], ratio, rtol=1e-8)


def test_pcs__kinship_sources_agree(cohort):
    """Kinship, DataFrame, array and Spectral give the same PCs, signs included."""
    K = cohort.K
    frame = pd.DataFrame(K, index=cohort.samples, columns=cohort.samples)
    kin = bl.Kinship(matrix=K, samples=cohort.samples)
    results = [
        pcs(kin, 3),
        pcs(frame, 3),
        pcs(K, 3, samples=cohort.samples),
        pcs(bl.spectral_from_kinship(K), 3, samples=cohort.samples),
        pcs(cohort.G, 3, samples=cohort.samples),
    ]
    for other in results[1:]:
        np.testing.assert_allclose(other.to_numpy(), results[0].to_numpy(), atol=1e-10)
        assert list(other.index) == list(results[0].index)
    values, vectors = np.linalg.eigh(K)
    _assert_same_up_to_sign(results[0].to_numpy(), vectors[:, ::-1][:, :3], atol=1e-10)
    np.testing.assert_allclose(results[0].attrs["eigenvalues"], values[::-1][:3], rtol=1e-10)


def test_pcs__sign_convention_largest_loading_positive(cohort):
    out = pcs(cohort.G, 5)
    U = out.to_numpy()
    assert (U[np.argmax(np.abs(U), axis=0), np.arange(5)] > 0).all()
    flipped = pcs(-cohort.G + 2, 5)  # the other allele: every SNP flips, the PCs do not
    np.testing.assert_allclose(flipped.to_numpy(), U, atol=1e-10)


def test_pcs__subset_of_kinship_samples(cohort):
    keep = cohort.samples[::2][::-1]
    frame = pd.DataFrame(cohort.K, index=cohort.samples, columns=cohort.samples)
    out = pcs(frame, 2, samples=keep)
    sub = frame.loc[keep, keep].to_numpy()
    _, vectors = np.linalg.eigh(sub)
    assert list(out.index) == list(keep)
    _assert_same_up_to_sign(out.to_numpy(), vectors[:, ::-1][:, :2], atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "positive integer"),
        ({"n": 2.5}, "positive integer"),
        ({"n": 61}, "rank"),  # 60 SNPs: WW'/M has rank ≤ 60
        ({"n": 2, "samples": ["nobody"]}, "not in"),
    ],
)
def test_pcs__errors(cohort, kwargs, message):
    frame = pd.DataFrame(cohort.G, index=cohort.samples)
    with pytest.raises(bl.InputError, match=message):
        pcs(frame, **kwargs)


def test_pcs__monomorphic_genotypes_error():
    with pytest.raises(bl.InputError, match="no SNP varies"):
        pcs(np.ones((10, 3)), 1)


# --------------------------------------------------------------------------------------------
# Linear model (PCs without the random effect)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regression(cohort):
    P = pcs(cohort.G, 3, samples=cohort.samples)
    X = pd.concat([cohort.covariates(), P], axis=1)
    return cohort.phenotype(), X


def test_linear_model__logp_equals_dense_and_scipy(regression, rng):
    y, X = regression
    model = linear_model(y, X)
    data = info_of(model).data
    dense = ref.dense_linear_model(data.y, data.X, covariates=data.covariates)
    assert info_of(model).form == "linear"
    assert {v.name for v in model.free_RVs} == {"beta", "sigma_e"}
    assert "h2" not in model.named_vars
    f_fast, f_dense = model.compile_logp(), dense.compile_logp()
    f_obs = model.compile_logp(vars=[model["y"]], jacobian=False)
    for _ in range(4):
        point = {
            "beta": rng.normal(0, 1, size=data.X.shape[1]),
            "sigma_e_log__": np.array(rng.normal(0, 0.5)),
        }
        assert f_fast(point) == pytest.approx(f_dense(point), rel=1e-10)
        sigma_e = np.exp(point["sigma_e_log__"])
        expected = ref.linear_loglik_pointwise(data.y, data.X, point["beta"], sigma_e).sum()
        assert f_obs(point) == pytest.approx(expected, rel=1e-10)


def test_linear_model__flat_prior_map_equals_ols(regression):
    y, X = regression
    model = linear_model(y, X, priors="flat")
    idata = bl.map_estimate(model)
    data = info_of(model).data
    ols = sm.OLS(data.y, data.X).fit()
    beta = idata.posterior["beta"].values[0, 0]
    # to the optimizer's tolerance: a thousandth of a standard error
    assert np.all(np.abs(beta - ols.params) < 1e-3 * ols.bse)
    # pointwise log-likelihood of the log_likelihood group = scipy at the MAP
    sigma_e = float(idata.posterior["sigma_e"].values[0, 0])
    expected = ref.linear_loglik_pointwise(data.y, data.X, beta, sigma_e)
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0, 0], expected, rtol=1e-10)
    assert idata.attrs["model"] == "linear"
    assert list(idata.log_likelihood["y"].coords["sample"].values) == list(data.samples)


def test_linear_model__prior_errors(regression):
    y, X = regression
    with pytest.raises(bl.InputError, match="unknown prior"):
        linear_model(y, X, priors={"h2": bl.Prior("Beta", alpha=1, beta=1)})
    with pytest.raises(bl.InputError, match="positive"):
        linear_model(y, X, priors={"sigma_e": bl.Prior("Normal", mu=0, sigma=1)})


def test_kinship_model__pcs_as_covariates(cohort, regression):
    """ "With" the random effect: a PC DataFrame aligns by ID like any X."""
    y, X = regression
    K = pd.DataFrame(cohort.K, index=cohort.samples, columns=cohort.samples)
    shuffled = X.sample(frac=1.0, random_state=1)
    model = bl.kinship_model(y, K, shuffled)
    assert list(model.coords["covariate"]) == ["intercept", "cov1", "PC1", "PC2", "PC3"]
    np.testing.assert_allclose(info_of(model).data.X[:, 1:], X.loc[cohort.samples].to_numpy())


@pytest.mark.slow
def test_linear_model__flat_prior_posterior_equals_conjugate(regression):
    """NUTS under flat β / Jeffreys σe² against the multivariate-t posterior (statsmodels OLS)."""
    y, X = regression
    model = linear_model(y, X, priors="flat")
    idata = sample_counted(model, draws=1000, chains=2, random_seed=5)
    data = info_of(model).data
    exact = ref.conjugate_posterior(data.y, data.X)
    ols = sm.OLS(data.y, data.X).fit()
    np.testing.assert_allclose(exact["beta_mean"], ols.params, rtol=1e-10)
    beta = idata.posterior["beta"]
    mean, sd = beta.mean(("chain", "draw")).values, beta.std(("chain", "draw")).values
    mcse = az.mcse(idata.posterior, var_names=["beta"])["beta"].values
    assert np.all(np.abs(mean - ols.params) < 4 * mcse + 1e-3 * exact["beta_sd"])
    np.testing.assert_allclose(sd, exact["beta_sd"], rtol=0.1)
    s2 = idata.posterior["sigma_e2"].values.mean()
    assert s2 == pytest.approx(float(exact["sigma_e2_mean"]), rel=0.05)
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd)
