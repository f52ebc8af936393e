"""The association scan against GEMMA -lmm 4, ordinary least squares, and calibration."""

import importlib

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import bayeslmm as bl
from bayeslmm.data.simulation import simulate
from tests.gemma_reference import EUR_DIR, gemma_assoc_path, read_gemma_assoc


@pytest.fixture(scope="module")
def eur_scans():
    out = {}
    for name, cov in (("eurA", "covA.txt"), ("eurB", None)):
        g = bl.read_plink(EUR_DIR / name)
        y = g.fam["phenotype"].to_numpy()
        X = np.loadtxt(EUR_DIR / cov)[:, 1:] if cov else None  # covA's column 1 is GEMMA's 1s
        K = bl.kinship(g, "standardized_empirical")  # = GEMMA -gk 2, the K of its -lmm run
        res = bl.scan(g, y, K=K, X=X, exact=True, progress=False, chunk_size=700)
        out[name] = (res, read_gemma_assoc(gemma_assoc_path(name, "sXX")))
    return out


@pytest.mark.parametrize("name", ["eurA", "eurB"])
@pytest.mark.parametrize("column", ["p_wald", "p_lrt", "p_score"])
def test_scan_exact__equals_gemma_lmm4(eur_scans, name, column):
    ours, gemma = eur_scans[name]
    assert list(ours["snp"]) == list(gemma["rs"])
    a, b = -np.log10(ours[column].to_numpy()), -np.log10(gemma[column].to_numpy())
    assert np.corrcoef(a, b)[0, 1] >= 0.9999
    assert np.abs(a - b).max() <= 0.05


@pytest.mark.parametrize("name", ["eurA", "eurB"])
def test_scan_exact__beta_se_af_equal_gemma(eur_scans, name):
    ours, gemma = eur_scans[name]
    # 1e-3 relative, except where β itself is ~0: there (eurB rs112944150, β = -1.13e-5 with
    # the same λ to 7 digits) the last digits come from cancellation in either program, so the
    # difference is also allowed 1e-4 of the SE, statistically nothing.
    excess = np.abs(ours["beta"] - gemma["beta"]) - 1e-3 * np.abs(gemma["beta"])
    assert (excess <= 1e-4 * gemma["se"]).all(), np.max(excess / gemma["se"])
    assert (np.abs(ours["beta"] - gemma["beta"]) <= 1e-3 * np.abs(gemma["beta"])).mean() > 0.999
    np.testing.assert_allclose(ours["se"], gemma["se"], rtol=1e-3)
    np.testing.assert_allclose(ours["af"], gemma["af"], atol=5e-4)  # GEMMA prints 3 decimals
    lam = ours["h2"] / (1 - ours["h2"])  # per-SNP REML λ (K has mean diagonal 1)
    np.testing.assert_allclose(lam, gemma["l_remle"], rtol=1e-4)


def _ols_reference(y, X, G):
    rows = []
    for j in range(G.shape[1]):
        full = sm.OLS(y, np.column_stack([X, G[:, j]])).fit()
        restricted = sm.OLS(y, X).fit()
        lr, p_lr, _ = full.compare_lr_test(restricted)
        lm, _, _ = full.compare_lm_test(restricted)
        rows.append((full.params[-1], full.bse[-1], full.pvalues[-1], p_lr, lm))
    return np.array(rows)


def test_scan__identity_kinship_is_ols(rng):
    data = simulate(120, 40, 0.3, n_covariates=2, seed=3)
    res = bl.scan(data.G, data.y, K=np.eye(120), X=data.X, progress=False, chunk_size=16)
    X = np.column_stack([np.ones(120), data.X])
    ref = _ols_reference(data.y, X, data.G)
    np.testing.assert_allclose(res["beta"], ref[:, 0], rtol=1e-8)
    np.testing.assert_allclose(res["se"], ref[:, 1], rtol=1e-8)
    np.testing.assert_allclose(res["p_wald"], ref[:, 2], rtol=1e-8)
    np.testing.assert_allclose(res["p_lrt"], ref[:, 3], rtol=1e-8)
    df = 120 - 3 - 1  # the score statistic is statsmodels' LM statistic n·R², on F(1, df)
    np.testing.assert_allclose(stats.f.isf(res["p_score"], 1, df), ref[:, 4], rtol=1e-7)


def test_scan__null_at_boundary_is_ols(rng):
    data = simulate(150, 60, 0.0, n_covariates=1, seed=5)
    fit = bl.reml(data.y, data.K, data.X)
    assert fit.h2 == 0.0  # this seed gives a boundary estimate
    res = bl.scan(data.G, data.y, K=data.K, X=data.X, progress=False)
    assert (res["h2"] == 0.0).all()
    ref = _ols_reference(data.y, np.column_stack([np.ones(150), data.X]), data.G)
    np.testing.assert_allclose(res["beta"], ref[:, 0], rtol=1e-8)
    np.testing.assert_allclose(res["p_wald"], ref[:, 2], rtol=1e-8)


def test_scan__monomorphic_and_missing_snps(rng):
    data = simulate(80, 12, 0.4, seed=8)
    G = data.G.copy()
    G[:, 2] = 1.0  # monomorphic
    G[:, 5] = np.nan  # all missing
    G[:10, 7] = np.nan  # some missing: imputed by the mean
    res = bl.scan(G, data.y, K=data.K, progress=False)
    assert res.loc[[2, 5], ["beta", "p_wald", "p_lrt", "p_score"]].isna().all().all()
    assert res.loc[7, "n"] == 70 and np.isfinite(res.loc[7, "p_wald"])
    filled = G[:, [7]].copy()
    filled[:10] = np.nanmean(G[:, 7])
    one = bl.scan(filled, data.y, K=data.K, progress=False)
    assert one.loc[0, "p_wald"] == pytest.approx(res.loc[7, "p_wald"], rel=1e-10)


def _structured(seed, n=600, m=1200, chromosomes=4):
    """Three populations, a phenotype shifted by population, polygenic effects on chromosome 1."""
    data = simulate(
        n,
        m,
        0.0,
        n_populations=3,
        fst=0.1,
        n_chromosomes=chromosomes,
        population_effect=1.0,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    on_one = np.flatnonzero(data.snps["chrom"].to_numpy() == "1")
    y = data.y + data.W[:, on_one] @ rng.normal(0, np.sqrt(0.5 / on_one.size), on_one.size)
    return data, y, {"1"}


def _lambda_gc(p):
    return np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1)


@pytest.mark.slow
def test_scan__calibrated_under_structure_while_ols_is_inflated():
    data, y, causal_chrom = _structured(seed=21)
    geno = _as_genotypes(data)
    res = bl.scan(geno, y, progress=False)  # LOCO kinships built from the genotypes
    null = ~res["chrom"].isin(causal_chrom)
    p = res.loc[null, "p_wald"].to_numpy()
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.95 <= _lambda_gc(p) <= 1.05
    ols = bl.scan(geno, y, K=np.eye(len(y)), progress=False)
    assert _lambda_gc(ols.loc[null, "p_wald"].to_numpy()) > 1.2


def _as_genotypes(data):
    from bayeslmm.relatedness.grm import as_genotypes

    g = as_genotypes(data.G, samples=data.samples)
    g.snps["chrom"] = data.snps["chrom"].to_numpy()
    g.snps["snp"] = data.snps["snp"].to_numpy()
    return g


def test_scan__loco_restores_power_for_a_planted_snp():
    data = simulate(300, 150, 0.3, n_chromosomes=3, seed=4)
    j = 10  # plant a strong effect on a SNP of chromosome 1
    y = data.y + 0.35 * data.W[:, j]
    geno = _as_genotypes(data)
    loco = bl.scan(geno, y, progress=False)
    full = bl.scan(geno, y, loco=False, progress=False)
    assert loco.loc[j, "p_wald"] < full.loc[j, "p_wald"]  # full K absorbs part of the signal
    assert -np.log10(loco.loc[j, "p_wald"]) > -np.log10(full.loc[j, "p_wald"]) + 0.5


def test_scan__output_file_and_resume_settings(tmp_path):
    data = simulate(60, 30, 0.3, seed=9)
    out = tmp_path / "res.tsv"
    res = bl.scan(data.G, data.y, K=data.K, out=out, chunk_size=7, progress=False)
    back = pd.read_csv(out, sep="\t")
    np.testing.assert_allclose(back["p_wald"], res["p_wald"], rtol=1e-15)
    assert not (tmp_path / "res.tsv.parts").exists()
    pq = tmp_path / "res.parquet"
    bl.scan(data.G, data.y, K=data.K, out=pq, chunk_size=7, progress=False)
    np.testing.assert_allclose(pd.read_parquet(pq)["beta"], res["beta"], rtol=1e-15)


def test_scan__posterior_null_averages_bayes_factors():
    data = simulate(100, 20, 0.5, seed=12)
    model = bl.kinship_model(data.y, data.K)
    idata = bl.map_estimate(model)
    by_map = bl.scan(data.G, data.y, K=data.K, null="map", progress=False)
    by_post = bl.scan(data.G, data.y, K=data.K, null="posterior", posterior=idata, progress=False)
    # one "draw" at the MAP: the posterior-averaged scan equals the MAP scan
    np.testing.assert_allclose(by_post["log10_bf"], by_map["log10_bf"], rtol=1e-8)
    np.testing.assert_allclose(by_post["p_wald"], by_map["p_wald"], rtol=1e-8)
    with pytest.raises(bl.InputError, match="posterior="):
        bl.scan(data.G, data.y, K=data.K, null="posterior")


def test_log10_bf__wakefield_closed_form():
    from bayeslmm.gwas.scanner import _log10_bf

    beta, se, w = np.array([0.3]), np.array([0.1]), np.array([0.2])
    z = beta / se
    r = w**2 / (w**2 + se**2)
    expected = np.log10(np.sqrt(1 - r) * np.exp(z**2 * r / 2))
    np.testing.assert_allclose(_log10_bf(beta, se, w), expected, rtol=1e-12)


def test_lambda_gc__median_chi2():
    from bayeslmm.plots import lambda_gc

    p = np.array([0.5, 0.5, 0.5, np.nan])
    assert lambda_gc(p) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    chi2 = 1.3 * rng.chisquare(1, 20000)
    assert lambda_gc(stats.chi2.sf(chi2, 1)) == pytest.approx(1.3, rel=0.05)


def test_cli_scan__writes_table_and_plots(tmp_path, capsys):
    from bayeslmm.cli.main import main

    covars = str(EUR_DIR / "EUR_subset.pheno2.covars")
    out = tmp_path / "scan.tsv"
    code = main(
        [
            "scan",
            "--bfile",
            str(EUR_DIR / "eurB"),
            "--out",
            str(out),
            "--plot",
            str(tmp_path / "s"),
            "--quiet",
            "--pheno",
            covars,
            "--pheno-name",
            "PHENO",
        ]
    )
    assert code == 0
    table = pd.read_csv(out, sep="\t")
    assert len(table) == 1331 and {"p_wald", "p_lrt", "p_score", "log10_bf"} <= set(table)
    assert (tmp_path / "s.manhattan.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "s.qq.png").read_bytes()[:4] == b"\x89PNG"
    assert "λGC" in capsys.readouterr().out
    # the CLI run equals the library call with the same settings (LOCO centred kinships)
    g = bl.read_plink(EUR_DIR / "eurB")
    y = bl.read_table(covars)["PHENO"]
    with pytest.warns(bl.DataWarning, match="4 in y but not in genotypes"):
        direct = bl.scan(g, y, progress=False)
    np.testing.assert_allclose(table["p_wald"], direct["p_wald"], rtol=1e-12)


def test_scan__genotype_dataframe_aligns_by_id():
    data = simulate(80, 30, 0.3, seed=4)
    ids = [f"s{i}" for i in range(80)]
    G = pd.DataFrame(data.G, index=ids, columns=[f"rs{j}" for j in range(30)])
    y = pd.Series(data.y, index=ids)
    K = pd.DataFrame(data.K, index=ids, columns=ids)
    shuffled = y.sample(frac=1.0, random_state=1)
    by_id = bl.scan(G, shuffled, K=K, progress=False)
    by_position = bl.scan(data.G, data.y, K=data.K, progress=False)
    assert list(by_id["snp"]) == list(G.columns)
    np.testing.assert_allclose(by_id["p_wald"], by_position["p_wald"], rtol=1e-10)


def test_scan__kinship_object_decomposed_once_across_scans(monkeypatch):
    data = simulate(120, 80, 0.4, seed=31)
    geno = _as_genotypes(data)
    K = bl.kinship(geno, "centered")
    reference = bl.scan(geno, data.y, K=K.matrix, progress=False)  # plain array: decomposed here
    calls = []
    original = bl.spectral_from_kinship

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    module = importlib.import_module(
        "bayeslmm.relatedness.relationship"
    )  # where Kinship.spectral finds it
    monkeypatch.setattr(module, "spectral_from_kinship", counted)
    first = bl.scan(geno, data.y, K=K, progress=False)
    second = bl.scan(geno, data.y + 1.0, K=K, progress=False)
    assert len(calls) == 1  # the second scan reused K's cached decomposition
    pd.testing.assert_frame_equal(first, reference)
    np.testing.assert_allclose(second["p_wald"], first["p_wald"], rtol=1e-6)  # shift: same tests
    # a phenotype missing for some samples: K is subset, decomposed afresh, results still right
    y = pd.Series(data.y, index=data.samples)
    y.iloc[:5] = np.nan
    with pytest.warns(bl.DataWarning):
        sub = bl.scan(geno, y, K=K, progress=False)
    kept = np.arange(5, 120)
    ref_sub = bl.scan(data.G[kept], data.y[kept], K=K.matrix[np.ix_(kept, kept)], progress=False)
    np.testing.assert_allclose(sub["p_wald"], ref_sub["p_wald"], rtol=1e-8)


@pytest.mark.parametrize(
    ("chrom", "reason"),
    [(["chr1"] * 20 + ["1"] * 20, "all on chromosome 1"), (["0"] * 40, "chromosome unknown")],
)
def test_scan__warns_when_loco_cannot_apply(chrom, reason):
    data = simulate(60, 40, 0.3, seed=12)
    geno = _as_genotypes(data)
    geno.snps["chrom"] = chrom
    with pytest.warns(bl.DataWarning, match=f"LOCO cannot apply: {reason}.*loco=False"):
        res = bl.scan(geno, data.y, progress=False)
    K = bl.kinship(geno, "centered")
    np.testing.assert_allclose(
        res["p_wald"], bl.scan(geno, data.y, K=K, progress=False)["p_wald"], rtol=1e-10
    )


def test_scan__loco_groups_are_autosomes():
    data = simulate(80, 60, 0.3, n_chromosomes=3, seed=13)
    geno = _as_genotypes(data)
    chrom = data.snps["chrom"].to_numpy().astype(object)
    chrom[chrom == "1"] = "chr1"  # the same chromosome as "1"
    chrom[-6:] = ["X", "X", "Y", "MT", "chrUn_1", "chrUn_1"]
    geno.snps["chrom"] = chrom
    res = bl.scan(geno, data.y, progress=False)
    loco = bl.loco_kinships(geno, "centered")
    assert set(loco) == {"1", "2", "3", "23", "24", "26", "chrUn_1"}
    for c, rows in (("1", slice(0, 20)), ("3", slice(40, 54)), ("23", slice(54, 60))):
        ref = bl.scan(geno, data.y, K=loco[c], snps=np.arange(60)[rows], progress=False)
        np.testing.assert_allclose(res["p_wald"][rows], ref["p_wald"], rtol=1e-6)
    autosomal = bl.kinship(geno, "centered")  # X/Y/MT/contigs: against the all-autosome K
    ref = bl.scan(geno, data.y, K=autosomal, snps=np.arange(54, 60), progress=False)
    np.testing.assert_allclose(res["p_wald"][54:], ref["p_wald"], rtol=1e-6)  # REML tolerance
    other = bl.scan(
        geno, data.y, K=bl.kinship(geno, "centered", autosomes_only=False), progress=False
    )
    assert np.abs(np.log(other["p_wald"][54:] / res["p_wald"][54:])).max() > 1e-4
