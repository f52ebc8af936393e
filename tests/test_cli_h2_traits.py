"""``bayeslmm h2`` with several ``--pheno-name`` values: the multi-trait posterior (issue 12, 6).

Short chains on the EUR example's PHENO and SIM (the traits of tests/data/eur_mv), a fifth of
SIM set missing: the command's table is ``bl.heritability`` of the posterior it writes, with
the rows of h², rg, re, Σg and Σe, and the missing values are in the posterior.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayeslmm.cli.main import main
from tests.gemma_reference import EUR_DIR
from tests.test_reml_multivariate import EUR_MV


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """PHENO and SIM (SIM missing for every fifth sample) and the covariates, as tables."""
    folder = tmp_path_factory.mktemp("eur_h2_traits")
    fam = pd.read_csv(EUR_MV / "eurA_mv.fam", sep=r"\s+", header=None, dtype={0: str, 1: str})
    cov = np.loadtxt(EUR_MV / "eurA_mv.cov.txt")
    sim = fam[7].to_numpy(dtype=float).copy()
    sim[::5] = np.nan
    pheno = pd.DataFrame({"FID": fam[0], "IID": fam[1], "PHENO": fam[5], "SIM": sim})
    covar = pd.DataFrame({"FID": fam[0], "IID": fam[1], "CAT_COV_B": cov[:, 1], "QCOV1": cov[:, 2]})
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False, na_rep="NA")
    covar.to_csv(folder / "covar.tsv", sep="\t", index=False)
    return folder


def _args(files, out, *extra):
    args = ["h2", "--bfile", str(EUR_DIR / "eurA"), "--kinship", "centered"]
    args += ["--pheno", str(files / "pheno.tsv"), "--pheno-name", "PHENO", "SIM"]
    args += ["--covar", str(files / "covar.tsv"), "--out", str(out), *extra]
    return args


def test_cli_h2__several_traits_write_the_multi_trait_posterior(
    tmp_path, capsys, files, monkeypatch
):
    # nutpie through Python (the same draws as its C path: tests/test_nutpie.py): in a fresh
    # cache the C wrappers' compilation was a quarter of this test's CPU time (111 s → 83 s)
    monkeypatch.setattr("bayeslmm.inference.compiled._compile_cfuncs", lambda *args: None)
    out = tmp_path / "mv"
    short = ["--draws", "60", "--tune", "60", "--chains", "2", "--seed", "1", "--quiet"]
    assert main(_args(files, out, *short)) == 0  # (the CLI shows warnings, never raises them)
    printed = capsys.readouterr().out
    assert "rg[PHENO,SIM]" in printed and "REML on the" in printed and "complete cases" in printed
    idata = xr.open_datatree(f"{out}.posterior.nc")
    post = idata["posterior"]
    assert post["u"].dims == ("chain", "draw", "sample", "trait")
    n_missing = int(np.isnan(idata["observed_data"]["y"].values).sum())
    assert n_missing > 0 and post["Y_missing"].shape == (2, 60, n_missing)
    assert all(str(m).endswith(":SIM") for m in post["missing"].values)
    table = pd.read_csv(f"{out}.h2.tsv", sep="\t", index_col=0)
    assert list(table.index) == [
        "h2[PHENO]",
        "h2[SIM]",
        "rg[PHENO,SIM]",
        "re[PHENO,SIM]",
        "Sigma_g[PHENO,PHENO]",
        "Sigma_g[PHENO,SIM]",
        "Sigma_g[SIM,SIM]",
        "Sigma_e[PHENO,PHENO]",
        "Sigma_e[PHENO,SIM]",
        "Sigma_e[SIM,SIM]",
    ]
    rg = post["rg"].sel(trait="PHENO", trait2="SIM").values
    assert table.loc["rg[PHENO,SIM]", "mean"] == pytest.approx(rg.mean(), rel=1e-12)
    sg = post["Sigma_g"].sel(trait="SIM", trait2="SIM").values
    assert table.loc["Sigma_g[SIM,SIM]", "mean"] == pytest.approx(sg.mean(), rel=1e-12)
    assert not (tmp_path / "mv.h2.png").exists()


@pytest.mark.parametrize("flag", [["--probit"], ["--prevalence", "0.1"]])
def test_cli_h2__several_traits_refuse_binary_options(tmp_path, capsys, files, flag):
    assert main(_args(files, tmp_path / "x", *flag)) == 2
    assert "multi-trait model takes one kinship" in capsys.readouterr().err
