"""The command line: demo (no input) and simulate."""

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from bed_reader import open_bed

from bayeslmm.cli.main import main


@pytest.mark.slow
def test_demo__runs_and_writes_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            "--n-samples",
            "300",
            "--n-snps",
            "600",
            "--draws",
            "300",
            "--chains",
            "2",
            "--quiet",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "REML" in text and "posterior" in text
    idata = az.from_netcdf(out / "posterior.nc")
    assert isinstance(idata, xr.DataTree)
    assert {"posterior", "log_likelihood", "observed_data", "constant_data"} <= set(idata.children)
    assert idata.posterior.sizes["draw"] == 300
    assert xr.open_datatree(out / "posterior.nc").attrs["model"] == "kinship_lmm"
    assert idata.attrs["model"] == "kinship_lmm"
    assert (out / "h2_posterior.png").read_bytes()[:4] == b"\x89PNG"
    summary = pd.read_csv(out / "summary.tsv", sep="\t", header=None, index_col=0)[1]
    assert 0 <= float(summary["h2"]) <= 1
    assert not list(out.glob(".*tmp"))  # no temporary file left behind


def test_simulate__writes_plink_and_tables(tmp_path, capsys):
    prefix = tmp_path / "sim"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(prefix),
                "--n-samples",
                "30",
                "--n-snps",
                "50",
                "--seed",
                "1",
                "--n-chromosomes",
                "2",
            ]
        )
        == 0
    )
    G = open_bed(f"{prefix}.bed").read(dtype="float64")
    assert G.shape == (30, 50)
    assert set(np.unique(G)) <= {0.0, 1.0, 2.0}
    pheno = pd.read_csv(f"{prefix}.pheno.tsv", sep="\t")
    assert list(pheno.columns) == ["FID", "IID", "y"] and len(pheno) == 30
    truth = json.loads((tmp_path / "sim.truth.json").read_text())
    assert truth["h2"] == 0.5 and truth["seed"] == 1
    bim = pd.read_csv(f"{prefix}.bim", sep="\t", header=None)
    assert sorted(bim[0].unique()) == [1, 2]


def test_simulate__same_seed_same_files(tmp_path):
    for name in ("a", "b"):
        main(
            [
                "simulate",
                "--out",
                str(tmp_path / name),
                "--n-samples",
                "20",
                "--n-snps",
                "30",
                "--seed",
                "9",
            ]
        )
    assert (tmp_path / "a.bed").read_bytes() == (tmp_path / "b.bed").read_bytes()
    assert (tmp_path / "a.pheno.tsv").read_text() == (tmp_path / "b.pheno.tsv").read_text()


def test_main__input_error_is_a_message_not_a_traceback(tmp_path, capsys):
    code = main(["simulate", "--out", str(tmp_path / "x"), "--h2", "1.5"])
    assert code == 2
    assert "h2 must lie in [0, 1]" in capsys.readouterr().err
