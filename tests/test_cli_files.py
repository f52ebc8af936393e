"""The command line on real files: grm, reml and h2 on the EUR example against GEMMA."""

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.cli.main import main
from tests.gemma_reference import EUR_DIR, read_gemma_log

COVARS = str(EUR_DIR / "EUR_subset.pheno2.covars")


@pytest.mark.parametrize(
    ("name", "kin", "gemma_k"),
    [
        ("eurA", "standardized_empirical", "sXX"),
        ("eurA", "centered", "cXX"),
        ("eurB", "standardized_empirical", "sXX"),
        ("eurB", "centered", "cXX"),
    ],
)
def test_cli_reml__reproduces_gemma_pve(tmp_path, capsys, name, kin, gemma_k):
    args = ["reml", "--bfile", str(EUR_DIR / name), "--kinship", kin, "--out", str(tmp_path / "r")]
    if name == "eurA":  # the covariates of GEMMA's covA.txt, from the ID-keyed table
        args += ["--covar", COVARS, "--covar-name", "CAT_COV,QCOV1,QCOV2"]
    assert main(args) == 0
    fit = pd.read_csv(tmp_path / "r.reml.tsv", sep="\t", header=None, index_col=0)[1]
    gemma = read_gemma_log(EUR_DIR / "gemma" / f"{name}_{gemma_k}_lmm4.log.txt")
    assert float(fit["h2"]) == pytest.approx(gemma["pve"], abs=1e-4)
    assert float(fit["h2_se"]) == pytest.approx(gemma["pve_se"], abs=1e-4)
    assert int(fit["n"]) == gemma["n_analyzed"]
    assert "CAT_COV=A" in capsys.readouterr().out or name == "eurB"


def test_cli_grm__round_trip_and_reml_from_grm(tmp_path, capsys):
    prefix = str(tmp_path / "k")
    assert (
        main(
            [
                "grm",
                "--bfile",
                str(EUR_DIR / "eurB"),
                "--kinship",
                "standardized_empirical",
                "--out",
                prefix,
            ]
        )
        == 0
    )
    K = bl.read_grm(prefix)
    direct = bl.kinship(bl.read_plink(EUR_DIR / "eurB"), "standardized_empirical")
    np.testing.assert_allclose(K.matrix, direct.matrix, rtol=1e-6, atol=1e-7)  # float32 file
    assert list(K.samples) == list(direct.samples)
    pheno = tmp_path / "p.txt"  # phenotype rows shuffled and an unknown sample added
    fam = pd.read_csv(EUR_DIR / "eurB.fam", sep=r"\s+", header=None)
    rows = fam.sample(frac=1.0, random_state=3)[[0, 1, 5]].astype(str)
    rows.loc["extra"] = ["X", "stranger", "1.0"]
    rows.to_csv(pheno, sep=" ", header=False, index=False)
    assert main(["reml", "--grm", prefix, "--pheno", str(pheno), "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "1 in y but not in K" in err
    fit = pd.read_csv(tmp_path / "r.reml.tsv", sep="\t", header=None, index_col=0)[1]
    gemma = read_gemma_log(EUR_DIR / "gemma" / "eurB_sXX_lmm4.log.txt")
    assert float(fit["h2"]) == pytest.approx(gemma["pve"], abs=1e-4)  # float32 GRM still agrees


def test_cli_reml__errors_are_messages(tmp_path, capsys):
    assert main(["reml", "--bfile", str(tmp_path / "none")]) == 2
    assert "incomplete" in capsys.readouterr().err
    assert main(["reml", "--bfile", str(EUR_DIR / "eurA"), "--pheno", COVARS]) == 2
    assert "choose one with --pheno-name" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_h2__writes_posterior(tmp_path):
    out = tmp_path / "h"
    assert (
        main(
            [
                "h2",
                "--bfile",
                str(EUR_DIR / "eurB"),
                "--kinship",
                "standardized_empirical",
                "--out",
                str(out),
                "--draws",
                "300",
                "--chains",
                "2",
                "--seed",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    table = pd.read_csv(f"{out}.h2.tsv", sep="\t", index_col=0)
    assert 0.0 < table.loc["h2", "mean"] < 0.5  # GEMMA's REML: 0.172 (SE 0.119)
    assert (tmp_path / "h.h2.png").exists() and (tmp_path / "h.posterior.nc").exists()


def _two_grms(tmp_path):
    """Two GRMs from the two halves of eurB's SNPs, listed in an --mgrm file."""
    g = bl.read_plink(EUR_DIR / "eurB")
    half = g.snps.shape[0] // 2
    grms = []
    for i, snps in enumerate((slice(0, half), slice(half, None))):
        G = pd.DataFrame(g.read(snps=snps), index=g.samples)
        K = bl.kinship(G, "standardized_empirical")
        bl.write_grm(K, str(tmp_path / f"half{i}"))
        grms.append(bl.read_grm(str(tmp_path / f"half{i}")))
    (tmp_path / "mgrm.txt").write_text("half0\nhalf1\n")  # relative to the list's folder
    return g, grms


def test_cli_reml__mgrm_equals_reml_of_a_list(tmp_path):
    g, (K0, K1) = _two_grms(tmp_path)
    out = str(tmp_path / "r")
    assert (
        main(
            [
                "reml",
                "--mgrm",
                str(tmp_path / "mgrm.txt"),
                "--bfile",
                str(EUR_DIR / "eurB"),
                "--out",
                out,
            ]
        )
        == 0
    )
    table = pd.read_csv(f"{out}.reml.tsv", sep="\t", header=None, index_col=0)[1]
    y = pd.Series(g.fam["phenotype"].to_numpy(), index=g.samples)
    fit = bl.reml(y, {"half0": K0, "half1": K1})
    assert float(table["h2"]) == pytest.approx(fit.h2, abs=1e-8)
    assert fit.h2_components is not None and len(fit.h2_components) == 2


def test_cli_reml__mgrm_needs_two(tmp_path, capsys):
    (tmp_path / "one.txt").write_text("only\n")
    assert main(["reml", "--mgrm", str(tmp_path / "one.txt"), "--bfile", str(EUR_DIR / "eurB")])
    assert "at least two" in capsys.readouterr().err


def test_cli_reml__prevalence_reports_liability_scale(tmp_path, capsys):
    g = bl.read_plink(EUR_DIR / "eurB")
    y = g.fam["phenotype"].to_numpy()
    cases = (y > np.median(y)).astype(int)
    pheno = tmp_path / "cc.txt"
    pd.DataFrame({"FID": g.fam["fid"], "IID": g.samples, "cc": cases}).to_csv(
        pheno, sep=" ", index=False
    )
    args = [
        "reml",
        "--bfile",
        str(EUR_DIR / "eurB"),
        "--kinship",
        "standardized_empirical",
        "--pheno",
        str(pheno),
        "--prevalence",
        "0.1",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    K = bl.kinship(g, "standardized_empirical")
    fit = bl.reml(pd.Series(cases, index=g.samples, dtype=float), K)
    expected = bl.liability_h2(np.array([fit.h2]), 0.1, cases.mean())[0]
    assert f"liability scale (prevalence 0.1, Lee et al. 2011): {expected:.4f}" in text
    assert main(["reml", "--bfile", str(EUR_DIR / "eurB"), "--prevalence", "0.1"])
    err = capsys.readouterr().err
    assert "need a 0/1 phenotype" in err and "REML fit" not in err


@pytest.mark.slow
def test_cli_h2__probit_and_prevalence(tmp_path, capsys):
    data = bl.simulate(300, 400, 0.5, seed=8)
    liability = data.y - np.mean(data.y)
    cases = (liability > np.quantile(liability, 0.6)).astype(int)
    ids = [f"s{i}" for i in range(300)]
    pd.DataFrame({"FID": ids, "IID": ids, "cc": cases}).to_csv(
        tmp_path / "cc.txt", sep=" ", index=False
    )
    bl.write_grm(pd.DataFrame(data.K, index=ids, columns=ids), str(tmp_path / "k"))
    common = [
        "--grm",
        str(tmp_path / "k"),
        "--pheno",
        str(tmp_path / "cc.txt"),
        "--draws",
        "300",
        "--tune",
        "500",
        "--chains",
        "2",
        "--seed",
        "1",
        "--sampler",
        "pymc",
        "--quiet",
    ]
    assert main(["h2", *common, "--prevalence", "0.4", "--out", str(tmp_path / "g")]) == 0
    idata = az.from_netcdf(tmp_path / "g.posterior.nc")
    expected = bl.liability_h2(idata.posterior["h2"].values, 0.4, cases.mean())
    assert idata.posterior["h2_liability"].dims == ("chain", "draw")
    np.testing.assert_allclose(idata.posterior["h2_liability"].values, expected)
    assert main(["h2", *common, "--probit", "--out", str(tmp_path / "p")]) == 0
    probit = az.from_netcdf(tmp_path / "p.posterior.nc")
    assert probit.attrs["model"] == "probit_lmm"
    assert "liability scale" in capsys.readouterr().out


def test_cli_reml__stray_token_in_covariate_is_a_message(tmp_path, capsys):
    # before: one '.' turned QCOV1 into hundreds of indicator columns, silently
    table = pd.read_csv(COVARS, sep=r"\s+", dtype=str, keep_default_na=False)
    table.loc[5, "QCOV1"] = "."
    path = tmp_path / "cov.txt"
    table.to_csv(path, sep="\t", index=False)
    args = ["reml", "--bfile", str(EUR_DIR / "eurA"), "--covar", str(path)]
    assert main([*args, "--covar-name", "QCOV1"]) == 2
    assert "column 'QCOV1' is not numeric: line 7 has '.'" in capsys.readouterr().err
    out = tmp_path / "r"
    code = main(
        [*args, "--covar-name", "CAT_COV", "--covar-categorical", "CAT_COV", "--out", str(out)]
    )
    assert code == 0
