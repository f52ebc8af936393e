"""Bad input gives an InputError that names the problem and the fix (or a warning + repair)."""

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.errors import InputError, KinshipWarning


@pytest.fixture
def data(small):
    return small.y.copy(), small.K.copy(), small.X.copy()


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_reml__infinite_phenotype(data, bad):
    y, K, X = data
    y[3] = bad
    with pytest.raises(InputError, match="infinite values at positions \\[3\\]"):
        bl.reml(y, K, X)


def test_reml__nan_phenotype_is_missing_and_reported(data):
    y, K, X = data
    y[[1, 5]] = np.nan
    with pytest.warns(bl.DataWarning, match="dropped 2: 2 missing y"):
        fit = bl.reml(y, K, X)
    assert fit.n == len(y) - 2


def test_reml__infinite_covariate_named(data):
    y, K, X = data
    X = pd.DataFrame(X, columns=["age"])
    X.iloc[2, 0] = np.inf
    with pytest.raises(InputError, match="covariate 'age' has infinite values"):
        bl.reml(y, K, X)


def test_reml__constant_phenotype(data):
    _, K, X = data
    with pytest.raises(InputError, match="constant"):
        bl.reml(np.full(K.shape[0], 2.0), K, X)


def test_reml__shape_mismatch(data):
    y, K, X = data
    with pytest.raises(InputError, match="aligned by position"):
        bl.reml(y[:-1], K, X)
    with pytest.raises(InputError, match="X has 39 rows"):
        bl.reml(y, K, X[:-1])


def test_reml__collinear_covariates_named(data):
    y, K, X = data
    Xc = pd.DataFrame({"age": X[:, 0], "age_months": 12 * X[:, 0], "other": np.arange(len(y))})
    with pytest.raises(InputError, match=r"\['age', 'age_months'\] are collinear"):
        bl.reml(y, K, Xc)


def test_reml__covariate_constant_after_alignment(data):
    y, K, X = data
    Xc = pd.DataFrame({"batch": np.ones(len(y))})
    Xc.iloc[0, 0] = np.nan  # the one differing sample is missing
    Xc["sex"] = 1.0
    with (
        pytest.raises(InputError, match=r"\['batch', 'sex'\] are constant"),
        pytest.warns(bl.DataWarning),
    ):
        bl.reml(y, K, Xc)


@pytest.mark.parametrize(
    ("K", "match"),
    [
        (np.ones((40, 39)), "square"),
        (np.ones(40), "square"),
    ],
)
def test_reml__kinship_not_square(data, K, match):
    y, _, X = data
    with pytest.raises(InputError, match=match):
        bl.reml(y, K, X)


def test_reml__kinship_asymmetric(data):
    y, K, X = data
    K[0, 5] += 0.1
    with pytest.raises(InputError, match=r"not symmetric \(\|K\[0,5\]"):
        bl.reml(y, K, X)


def test_reml__kinship_nan(data):
    y, K, X = data
    K[2, 3] = K[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN or infinite entries"):
        bl.reml(y, K, X)


def test_reml__too_few_samples():
    with pytest.raises(InputError, match="only 2 samples"):
        bl.reml(np.array([1.0, 2.0]), np.eye(2))


def test_reml__more_covariates_than_samples(rng):
    n = 5
    with pytest.raises(InputError, match="cannot support"):
        bl.reml(rng.normal(size=n), np.eye(n), rng.normal(size=(n, 4)))


def test_reml__non_numeric_phenotype(data):
    _, K, _ = data
    y = pd.Series(["a"] * K.shape[0], name="height")
    with pytest.raises(InputError, match="phenotype 'height' is not numeric"):
        bl.reml(y, K)


def test_reml__bad_method(data):
    y, K, X = data
    with pytest.raises(InputError, match="'reml' or 'ml'"):
        bl.reml(y, K, X, method="greml")


def test_spectral__not_psd_warns_and_clips(data):
    y, K, X = data
    K = K - 0.3 * np.eye(len(y))  # pushes the smallest eigenvalues below zero
    with pytest.warns(KinshipWarning, match="most negative is -"):
        spec = bl.spectral_from_kinship(K)
    assert (spec.s > 0).all()
    assert spec.min_eigenvalue < 0


@pytest.mark.parametrize(
    ("priors", "match"),
    [
        ({"h2": bl.Prior("Normal", mu=0, sigma=1)}, "outside its support"),
        ({"sigma_p": bl.Prior("Normal", mu=0, sigma=1)}, "outside its support"),
        ({"h2": bl.Prior("Beta", alpha=-1, beta=1)}, "h2"),
        (
            {
                "sigma_g2": bl.Prior("InverseGamma", alpha=2, beta=1),
                "h2": bl.Prior("Beta", alpha=1, beta=1),
            },
            "unknown prior",
        ),
        ({"tau": bl.Prior("HalfNormal", sigma=1)}, "unknown prior"),
        ({"h2": 0.5}, "must be a bayeslmm.Prior"),
        ("uniform", "'default' or 'flat'"),
    ],
)
def test_kinship_model__invalid_prior(data, priors, match):
    y, K, X = data
    with pytest.raises(InputError, match=match):
        bl.kinship_model(y, K, X, priors=priors)


def test_prior__unknown_distribution():
    with pytest.raises(InputError, match="not a PyMC distribution"):
        bl.Prior("NotADistribution")


def test_kinship_model__invalid_parametrization(data):
    y, K, X = data
    with pytest.raises(InputError, match="'h2' or 'variance'"):
        bl.kinship_model(y, K, X, parametrization="sd")


def test_snp_model__missing_genotypes_imputed_with_warning(small):
    G = small.G.copy()
    G[0, 0] = np.nan
    with pytest.warns(bl.DataWarning, match="1 missing genotype calls in 1 SNPs were imputed"):
        model = bl.snp_model(small.y, G)
    filled = G.copy()
    filled[0, 0] = np.nanmean(G[:, 0])
    ref = bl.snp_model(small.y, filled)
    point = ref.initial_point()
    assert model.compile_logp()(point) == pytest.approx(ref.compile_logp()(point))
    G[:, 3] = np.nan
    with pytest.raises(InputError, match="1 SNPs have no observed genotype"):
        bl.snp_model(small.y, G)


def test_snp_model__monomorphic_snp(small):
    G = small.G.copy()
    G[:, 4] = 1.0
    with pytest.raises(InputError, match="monomorphic"):
        bl.snp_model(small.y, G)


def test_sample__rejects_foreign_model():
    import pymc as pm

    with pm.Model() as model:
        pm.Normal("x")
    with pytest.raises(InputError, match="not built by bayeslmm"):
        bl.sample(model)


def test_sample__bad_sampler(data):
    y, K, X = data
    with pytest.raises(InputError, match="sampler must be"):
        bl.sample(bl.kinship_model(y, K, X), sampler="stan")
