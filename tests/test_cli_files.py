"""The command line on real files: grm, reml and h2 on the EUR example against GEMMA."""

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.cli import main
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
