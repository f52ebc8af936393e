"""``bayeslmm predict``: a posterior saved by ``bayeslmm h2 --out``, a GRM or new genotypes."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayeslmm as bl
from bayeslmm.cli.main import main

N_TRAIN, N_NEW = 50, 6


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """GRMs (training only; training + new), phenotype and covariate tables, a saved fit."""
    folder = tmp_path_factory.mktemp("predict")
    data = bl.simulate(N_TRAIN + N_NEW, 80, 0.5, n_covariates=1, seed=11)
    ids = [str(s) for s in data.samples]
    K = pd.DataFrame(data.K, index=ids, columns=ids)
    train, new = ids[:N_TRAIN], ids[N_TRAIN:]
    bl.write_grm(K.loc[train, train], folder / "train", n_snps=80)
    bl.write_grm(K, folder / "all", n_snps=80)
    pd.DataFrame({"FID": train, "IID": train, "trait": data.y[:N_TRAIN]}).to_csv(
        folder / "pheno.txt", sep=" ", index=False
    )
    pd.DataFrame({"FID": ids, "IID": ids, "age": np.asarray(data.X)[:, 0]}).to_csv(
        folder / "covar.txt", sep=" ", index=False
    )
    pd.DataFrame(
        {"FID": new[:-1], "IID": new[:-1], "age": np.asarray(data.X)[N_TRAIN:-1, 0]}
    ).to_csv(folder / "covar_short.txt", sep=" ", index=False)
    code = main(
        [
            "h2",
            "--grm",
            str(folder / "train"),
            "--pheno",
            str(folder / "pheno.txt"),
            "--covar",
            str(folder / "covar.txt"),
            "--out",
            str(folder / "fit"),
            "--draws",
            "30",
            "--tune",
            "50",
            "--chains",
            "1",
            "--seed",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    return {"folder": folder, "new": new}


def _predict(files, *extra):
    folder = files["folder"]
    return main(
        [
            "predict",
            "--posterior",
            str(folder / "fit.posterior.nc"),
            "--covar",
            str(folder / "covar.txt"),
            "--seed",
            "5",
            *extra,
        ]
    )


def test_cli_predict__tsv_equals_library_summary(files, capsys):
    folder = files["folder"]
    out = folder / "run"
    assert _predict(files, "--grm", str(folder / "all"), "--out", str(out)) == 0
    assert "wrote" in capsys.readouterr().out
    table = pd.read_csv(f"{out}.predict.tsv", sep="\t", index_col="sample", dtype={"sample": str})
    idata = xr.open_datatree(folder / "fit.posterior.nc")
    X = bl.read_table(str(folder / "covar.txt"))
    expected = bl.predict(idata, K=bl.read_grm(str(folder / "all")), X=X, random_seed=5).summary
    assert list(table.index) == files["new"]
    assert list(table.columns) == list(expected.columns)
    np.testing.assert_allclose(table.to_numpy(), expected.to_numpy(), rtol=1e-7)
    assert not list(folder.glob(".*tmp"))
    # --force conventions: an existing output is refused, then replaced with --force.
    assert _predict(files, "--grm", str(folder / "all"), "--out", str(out)) == 2
    assert "--force" in capsys.readouterr().err
    assert _predict(files, "--grm", str(folder / "all"), "--out", str(out), "--force") == 0


def test_cli_predict__errors(files, capsys, tmp_path):
    folder = files["folder"]
    out = str(tmp_path / "x")
    code = main(
        ["predict", "--posterior", str(tmp_path / "none.nc"), "--grm", str(folder / "all")]
        + ["--out", out]
    )
    assert code == 2
    assert "fit the model first with 'bayeslmm h2" in capsys.readouterr().err
    # K that lacks the training samples
    assert _predict(files, "--grm", str(folder / "train"), "--out", out) == 2
    assert "K has no sample besides those of the fit" in capsys.readouterr().err
    # missing covariates of a new sample
    code = main(
        [
            "predict",
            "--posterior",
            str(folder / "fit.posterior.nc"),
            "--grm",
            str(folder / "all"),
            "--covar",
            str(folder / "covar_short.txt"),
            "--out",
            out,
        ]
    )
    assert code == 2
    assert "X lacks the rows for new samples" in capsys.readouterr().err
    code = main(
        ["predict", "--posterior", str(folder / "fit.posterior.nc"), "--grm", str(folder / "all")]
        + ["--out", out]
    )
    assert code == 2
    assert "pass X for the" in capsys.readouterr().err
    # --bfile with a kinship-form posterior
    assert _predict(files, "--bfile", str(folder / "geno"), "--out", out) == 2
    assert "--bfile needs a posterior with SNP effects" in capsys.readouterr().err
    # neither --grm nor --bfile
    assert _predict(files, "--out", out) == 2
    assert "exactly one of --grm" in capsys.readouterr().err


def test_cli_predict__probit_fit_writes_probabilities(files, tmp_path):
    folder = files["folder"]
    pheno = pd.read_csv(folder / "pheno.txt", sep=" ")
    pheno["trait"] = (pheno["trait"] > pheno["trait"].median()).astype(int)
    pheno.to_csv(tmp_path / "cases.txt", sep=" ", index=False)
    common = ["--covar", str(folder / "covar.txt"), "--seed", "3"]
    fit = [
        "h2",
        "--grm",
        str(folder / "train"),
        "--pheno",
        str(tmp_path / "cases.txt"),
        "--probit",
        "--out",
        str(tmp_path / "probit"),
        "--draws",
        "20",
        "--tune",
        "40",
        "--chains",
        "1",
        "--quiet",
    ]
    assert main(fit + common) == 0
    args = ["predict", "--posterior", str(tmp_path / "probit.posterior.nc")]
    args += ["--grm", str(folder / "all"), "--out", str(tmp_path / "p")]
    assert main(args + common) == 0
    table = pd.read_csv(tmp_path / "p.predict.tsv", sep="\t", index_col="sample")
    assert list(table.columns[4:]) == ["p_mean", "p_sd", "p_hdi_lower", "p_hdi_upper"]
    assert ((table["p_mean"] > 0) & (table["p_mean"] < 1)).all()
