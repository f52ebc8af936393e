"""The per-SNP G×E scan (``scan(..., gxe=env)``) against GEMMA -gxe and a dense GLS."""

import gzip

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.data.samples import positional_ids
from bayeslmm.data.simulation import simulate
from bayeslmm.errors import InputError
from models.gxe import reference as gxe_ref
from tests.gemma_reference import EUR_DIR, read_gemma_log

GXE_DIR = EUR_DIR.parent / "eur_gxe"


def _eur_inputs():
    g = bl.read_plink(EUR_DIR / "eurA")
    y = g.fam["phenotype"].to_numpy()
    cov = np.loadtxt(EUR_DIR / "covA.txt")  # 1s, CAT_COV==B, QCOV1, QCOV2
    return g, y, cov[:, 1:3], cov[:, 3]  # covariates CAT_COV, QCOV1; environment QCOV2


@pytest.fixture(scope="module")
def eur_gxe():
    g, y, X, env = _eur_inputs()
    K = bl.kinship(g, "standardized_empirical")  # = GEMMA -gk 2
    res = bl.scan(g, y, K=K, X=X, gxe=env, exact=True, progress=False, chunk_size=700)
    with gzip.open(GXE_DIR / "eurA_sXX_gxe_lmm4.assoc.cut.txt.gz", "rt") as fh:
        gemma = pd.read_csv(fh, sep="\t")
    return res, gemma


def test_scan_gxe__frozen_gemma_run_is_the_documented_one():
    log = read_gemma_log(GXE_DIR / "eurA_sXX_gxe_lmm4.log.txt")
    assert log["version"].startswith("0.98.5")
    assert "-gxe envA.txt -lmm 4" in log["command"]
    assert (log["n_analyzed"], log["n_covariates"], log["n_snps"]) == (366, 3, 2431)


@pytest.mark.parametrize("column", ["p_wald", "p_lrt", "p_score"])
def test_scan_gxe__exact_equals_gemma_gxe_lmm4(eur_gxe, column):
    ours, gemma = eur_gxe
    assert list(ours["snp"]) == list(gemma["rs"])
    # GEMMA gives no Wald/score test where g∘e is in the span of [X, e, g] (rs73302034: one
    # sample carries the other genotype) and p_lrt = 1; bayeslmm gives NaN for all three
    untestable = gemma["p_wald"].isna().to_numpy()
    assert untestable.sum() == 1
    assert ours.loc[untestable, f"{column}_gxe"].isna().all()
    a = -np.log10(ours[f"{column}_gxe"].to_numpy()[~untestable])
    b = -np.log10(gemma[column].to_numpy()[~untestable])
    # GEMMA prints 7 significant digits (5e-7 relative = 2e-7 in log10); the Wald test also
    # carries the per-SNP REML λ's optimization tolerance of either program
    assert np.abs(a - b).max() <= 2e-5
    assert np.median(np.abs(a - b)) <= 1e-6


def test_scan_gxe__beta_se_lambda_equal_gemma(eur_gxe):
    ours, gemma = eur_gxe
    ok = gemma["p_wald"].notna().to_numpy()
    o, g = ours[ok], gemma[ok]
    np.testing.assert_allclose(o["se_gxe"], g["se"], rtol=1e-5)
    # relative 1e-5 except where β is small beside its SE (the λ tolerance moves β by ~1e-6 se)
    excess = np.abs(o["beta_gxe"].to_numpy() - g["beta"]) - 1e-5 * np.abs(g["beta"])
    assert (excess <= 1e-5 * g["se"]).all(), np.max(excess / g["se"])
    lam = o["h2_gxe"] / (1 - o["h2_gxe"])  # per-SNP REML λ (K has mean diagonal 1)
    np.testing.assert_allclose(lam, g["l_remle"], rtol=1e-3)


def test_scan_gxe__main_columns_are_the_scan_with_env_as_covariate():
    g, y, X, env = _eur_inputs()
    K = bl.kinship(g, "standardized_empirical")
    snps = np.arange(0, 2431, 10)
    res = bl.scan(g, y, K=K, X=X, gxe=env, snps=snps, progress=False)
    ref = bl.scan(g, y, K=K, X=np.column_stack([X, env]), snps=snps, progress=False)
    cols = ["beta", "se", "p_wald", "p_lrt", "p_score", "log10_bf", "h2"]
    pd.testing.assert_frame_equal(res[ref.columns[:7]], ref[ref.columns[:7]])
    np.testing.assert_allclose(res[cols], ref[cols], rtol=1e-10)
    assert list(res.columns[-6:]) == [
        "beta_gxe",
        "se_gxe",
        "p_wald_gxe",
        "p_lrt_gxe",
        "p_score_gxe",
        "h2_gxe",
    ]


def _gxe_data(seed=4):
    data = simulate(150, 30, 0.5, n_covariates=1, seed=seed)
    rng = np.random.default_rng(seed)
    env = rng.normal(2.0, 1.5, 150)
    y = data.y + 0.3 * env + 0.4 * data.G[:, 3] * (env - 2.0)
    return data, y, env


def test_scan_gxe__p3d_equals_dense_gls():
    data, y, env = _gxe_data()
    res = bl.scan(data.G, y, K=data.K, X=data.X, gxe=env, progress=False, chunk_size=7)
    lam = res["h2_gxe"].iloc[0] / (1 - res["h2_gxe"].iloc[0])
    K = data.K / np.mean(np.diag(data.K))  # λ is on the normalized K
    V = lam * K + np.eye(150)
    for j in range(data.G.shape[1]):
        g = data.G[:, j]
        beta, se, p = gxe_ref.interaction_wald(y, data.X, env, g, V)
        assert res.loc[j, "beta_gxe"] == pytest.approx(beta, rel=1e-8)
        assert res.loc[j, "se_gxe"] == pytest.approx(se, rel=1e-8)
        assert res.loc[j, "p_wald_gxe"] == pytest.approx(p, rel=1e-7)
    assert res.loc[3, "p_wald_gxe"] < 1e-4  # the simulated interaction is found


def test_scan_gxe__env_by_sample_id_and_invariant_to_centring():
    data, y, env = _gxe_data()
    ids = positional_ids(150)  # the IDs of a plain genotype array
    series = pd.Series(env, index=ids, name="smoking")[::-1]  # shuffled order, aligned by ID
    a = bl.scan(data.G, y, K=data.K, X=data.X, gxe=series, progress=False)
    b = bl.scan(data.G, y, K=data.K, X=data.X, gxe=env - 7.0, progress=False)
    np.testing.assert_allclose(a["beta_gxe"], b["beta_gxe"], rtol=1e-9)
    np.testing.assert_allclose(a["p_wald_gxe"], b["p_wald_gxe"], rtol=1e-8)


def test_scan_gxe__bad_environment_is_an_input_error():
    data, y, env = _gxe_data()
    ids = positional_ids(150)
    missing = env.copy()
    missing[[4, 9]] = np.nan
    with pytest.raises(InputError, match=r"environment 'env' is missing for 2 of the 150"):
        bl.scan(data.G, y, K=data.K, gxe=missing, progress=False)
    with pytest.raises(InputError, match=r"'smoking' is missing for 1 of the 150.*\['150'\]"):
        bl.scan(
            data.G,
            y,
            K=data.K,
            gxe=pd.Series(env[:-1], index=ids[:-1], name="smoking"),
            progress=False,
        )
    with pytest.raises(InputError, match=r"environment 'env' is constant \(3\).*varies"):
        bl.scan(data.G, y, K=data.K, gxe=np.full(150, 3.0), progress=False)
    with pytest.raises(InputError, match=r"environment 'diet' is not numeric.*0/1"):
        bl.scan(
            data.G,
            y,
            K=data.K,
            gxe=pd.Series(["a", "b"] * 75, index=ids, name="diet"),
            progress=False,
        )
    with pytest.raises(InputError, match=r"gxe has shape \(149,\).*150 samples"):
        bl.scan(data.G, y, K=data.K, gxe=env[:-1], progress=False)
    with pytest.raises(InputError, match=r"collinear"):
        bl.scan(data.G, y, K=data.K, X=env, gxe=env, progress=False)


def test_cli_scan_gxe__equals_library_call(tmp_path, capsys):
    from bayeslmm.cli.main import main

    covars = str(EUR_DIR / "EUR_subset.pheno2.covars")
    out = tmp_path / "gxe.tsv"
    args = ["scan", "--bfile", str(EUR_DIR / "eurB"), "--pheno", covars, "--pheno-name", "PHENO"]
    code = main([*args, "--gxe", covars, "--gxe-name", "QCOV1", "--out", str(out), "--quiet"])
    assert code == 0
    assert "G×E with QCOV1" in capsys.readouterr().out
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns[-6:]) == [
        "beta_gxe",
        "se_gxe",
        "p_wald_gxe",
        "p_lrt_gxe",
        "p_score_gxe",
        "h2_gxe",
    ]
    g = bl.read_plink(EUR_DIR / "eurB")
    cov = bl.read_table(covars)
    with pytest.warns(bl.DataWarning, match="in y but not in genotypes"):
        direct = bl.scan(g, cov["PHENO"], gxe=cov["QCOV1"], progress=False)
    np.testing.assert_allclose(table["p_wald_gxe"], direct["p_wald_gxe"], rtol=1e-10)
    np.testing.assert_allclose(table["beta_gxe"], direct["beta_gxe"], rtol=1e-10)
    # the environment's column must be named when the table has several
    assert main([*args, "--gxe", covars]) == 2
    assert "choose the environment with --gxe-name" in capsys.readouterr().err
    assert main([*args, "--gxe-name", "QCOV2"]) == 2
    assert "give it with --gxe FILE" in capsys.readouterr().err
    assert main([*args, "--gxe", covars, "--gxe-name", "QCOV2"]) == 2  # NA for HG00108
    assert "environment 'QCOV2' is missing for 1 of the 369" in capsys.readouterr().err
