"""Major loci as fixed effects beside the polygenic random effect (kinship_model(fixed_snps=))."""

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from bayeslmm.families.base import info_of
from bayeslmm.relatedness.grm import as_genotypes
from models.major_loci import reference as ref
from tests.nuts import sample_counted

SHARES = ("sigma_loci2", "h2_loci", "h2_background", "h2_total")


def _planted(n_samples, n_snps, seed, effects=(0.8, -0.6), h2=0.4):
    """A cohort whose phenotype gets large effects of two named SNPs; K without those SNPs."""
    ds = simulate(n_samples, n_snps, h2, n_covariates=1, seed=seed)
    loci_idx = [int(np.argmax(ds.G.std(axis=0))), int(np.argsort(ds.G.std(axis=0))[-2])]
    names = [str(ds.snps["snp"].iloc[j]) for j in loci_idx]
    G_loci = pd.DataFrame(ds.G[:, loci_idx], index=ds.samples, columns=names)
    contribution = ds.G[:, loci_idx] @ np.asarray(effects)
    y = pd.Series(ds.y + contribution, index=ds.samples, name="y")
    rest = np.delete(np.arange(n_snps), loci_idx)
    W = ds.W[:, rest]
    K = W @ W.T / W.shape[1]
    return {
        "ds": ds,
        "y": y,
        "X": ds.covariates(),
        "K": pd.DataFrame(K, index=ds.samples, columns=ds.samples),
        "loci": G_loci,
        "names": names,
        "contribution": contribution,
    }


@pytest.fixture(scope="module")
def planted():
    return _planted(60, 150, seed=4)


@pytest.fixture(scope="module")
def planted_map(planted):
    """The loci model of ``planted`` and its MAP (shared: each find_MAP compiles for seconds)."""
    model = bl.kinship_model(planted["y"], planted["K"], planted["X"], fixed_snps=planted["loci"])
    return model, bl.map_estimate(model).posterior


def _points(model, rng, n=4):
    ip = model.initial_point()
    return [{k: v + rng.normal(0, 0.7, size=np.shape(v)) for k, v in ip.items()} for _ in range(n)]


def test_kinship_model__fixed_snps_logp_and_shares_equal_dense(planted, rng):
    """Rotated model with loci = dense MvNormal on [X, G_loci]; shares = np.var formula."""
    model = bl.kinship_model(planted["y"], planted["K"], planted["X"], fixed_snps=planted["loci"])
    info = info_of(model)
    assert list(info.data.covariates) == ["intercept", "cov1", *planted["names"]]
    assert info.extra["fixed_snps"] == planted["names"]
    assert info.extra["loci_columns"] == [2, 3]
    assert info.form == "kinship_lmm"
    K = planted["K"].to_numpy()
    K = K / np.mean(np.diag(K))
    dense = ref.dense_loci_model(
        info.data.y,
        info.data.X[:, :2],
        info.data.X[:, 2:],
        K,
        planted["names"],
        ["intercept", "cov1"],
    )
    f_fast, f_dense = model.compile_logp(), dense.compile_logp()
    shares_fast, shares_dense = (
        m.compile_fn(m.replace_rvs_by_values([m[name] for name in SHARES]), inputs=m.value_vars)
        for m in (model, dense)
    )
    for point in _points(model, rng):
        assert f_fast(point) == pytest.approx(f_dense(point), rel=1e-9)
        np.testing.assert_allclose(shares_fast(point), shares_dense(point), rtol=1e-10)


def test_kinship_model__fixed_snps_map_shares_equal_formula(planted, planted_map):
    """At the MAP, the Deterministics equal the formula applied to the β and σ² draws."""
    model, post = planted_map
    beta = post["beta"].sel(covariate=planted["names"]).values.reshape(1, -1)
    G = planted["loci"].loc[info_of(model).data.samples].to_numpy()
    expected = ref.loci_shares(
        G, beta, post["sigma_g2"].values.ravel(), post["sigma_e2"].values.ravel()
    )
    value = {name: post[name].values.item() for name in ("h2", "sigma_g2", "sigma_e2", *SHARES)}
    for name in SHARES:
        assert value[name] == pytest.approx(float(expected[name][0]), rel=1e-10)
    h2 = value["sigma_g2"] / (value["sigma_g2"] + value["sigma_e2"])
    assert value["h2"] == pytest.approx(h2, rel=1e-10)  # h2 stays polygenic
    assert value["h2_total"] > value["h2_background"]


def test_kinship_model__fixed_snps_aligned_by_id(planted, planted_map):
    """Shuffled rows of the loci table and of X give the same model data and the same MAP."""
    y, K, X, loci = planted["y"], planted["K"], planted["X"], planted["loci"]
    a, map_a = planted_map
    b = bl.kinship_model(
        y, K, X.sample(frac=1, random_state=2), fixed_snps=loci.sample(frac=1, random_state=3)
    )
    np.testing.assert_array_equal(info_of(a).data.X, info_of(b).data.X)
    np.testing.assert_array_equal(info_of(a).data.samples, info_of(b).data.samples)
    map_b = bl.map_estimate(b).posterior
    for name in ("beta", "h2", *SHARES):
        np.testing.assert_allclose(map_a[name].values, map_b[name].values, rtol=1e-8)


def test_add_loci__genotypes_tuple_equals_table_and_imputes(planted):
    """(Genotypes, names) reads the same columns as the table; a missing call gets the mean."""
    ds = planted["ds"]
    G = ds.G.copy()
    j = list(ds.snps["snp"]).index(planted["names"][0])
    G[5, j] = np.nan
    genotypes = as_genotypes(G, ds.samples)
    table = pd.DataFrame(G, index=ds.samples, columns=[f"snp{k + 1}" for k in range(G.shape[1])])
    names = [f"snp{j + 1}", "snp1"]
    with_tuple = bl.kinship_model(planted["y"], planted["K"], fixed_snps=(genotypes, names))
    with_table = bl.kinship_model(planted["y"], planted["K"], fixed_snps=table[names])
    np.testing.assert_array_equal(info_of(with_tuple).data.X, info_of(with_table).data.X)
    X = info_of(with_tuple).data.X
    assert list(info_of(with_tuple).data.covariates) == ["intercept", *names]
    assert X[5, 1] == pytest.approx(np.nanmean(G[:, j]))


def test_add_loci__plain_x_uses_kinship_ids(planted):
    y, K, X, loci = planted["y"], planted["K"], planted["X"], planted["loci"]
    by_frame = bl.kinship_model(y, K, X, fixed_snps=loci.iloc[::-1])
    by_array = bl.kinship_model(y.to_numpy(), K, X.to_numpy(), fixed_snps=loci.iloc[::-1])
    np.testing.assert_array_equal(info_of(by_frame).data.X, info_of(by_array).data.X)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_snp", "not in the genotype file"),
        ("clash", "name of a covariate"),
        ("monomorphic", "monomorphic"),
        ("several_k", "one kinship matrix"),
        ("not_a_table", "must be a DataFrame"),
        ("plain_everything", "plain array"),
    ],
)
def test_kinship_model__fixed_snps_errors(planted, case, message):
    ds, y, K, X, loci = (planted[k] for k in ("ds", "y", "K", "X", "loci"))
    kwargs = {"y": y, "K": K, "X": X, "fixed_snps": loci}
    if case == "unknown_snp":
        kwargs["fixed_snps"] = (as_genotypes(ds.G, ds.samples), ["rs_nowhere"])
    elif case == "clash":
        kwargs["fixed_snps"] = loci.rename(columns={planted["names"][0]: "cov1"})
    elif case == "monomorphic":
        kwargs["fixed_snps"] = loci.assign(flat=1.0)
    elif case == "several_k":
        kwargs["K"] = [K, K]
    elif case == "not_a_table":
        kwargs["fixed_snps"] = loci.to_numpy()
    elif case == "plain_everything":
        kwargs.update(y=y.to_numpy(), K=K.to_numpy(), X=X.to_numpy())
    with pytest.raises(bl.InputError, match=message):
        bl.kinship_model(kwargs.pop("y"), kwargs.pop("K"), **kwargs)


@pytest.mark.slow
def test_kinship_model__fixed_snps_recovers_loci_share():
    """NUTS, N = 300: posterior h2_loci covers the realized share of the two planted loci."""
    sim = _planted(300, 400, seed=21, effects=(0.7, -0.6), h2=0.4)
    model = bl.kinship_model(sim["y"], sim["K"], sim["X"], fixed_snps=sim["loci"])
    idata = sample_counted(model, draws=600, chains=2, random_seed=3)
    post = idata.posterior
    # the loci's share of the variance not explained by the covariate (the model's denominator)
    ds = sim["ds"]
    adjusted = sim["y"].to_numpy() - ds.X @ ds.truth["beta"][1:]
    realized = np.var(sim["contribution"]) / np.var(adjusted)
    h2_loci = post["h2_loci"].values.ravel()
    assert abs(h2_loci.mean() - realized) < max(3 * h2_loci.std(), 0.03)
    G = sim["loci"].to_numpy()
    beta = post["beta"].sel(covariate=sim["names"]).values.reshape(-1, 2)
    shares = ref.loci_shares(
        G, beta, post["sigma_g2"].values.ravel(), post["sigma_e2"].values.ravel()
    )
    np.testing.assert_allclose(h2_loci, shares["h2_loci"], rtol=1e-10)
    np.testing.assert_allclose(beta.mean(axis=0), [0.7, -0.6], atol=0.15)
    total = post["h2_total"].values.ravel()
    assert (total >= h2_loci).all()
