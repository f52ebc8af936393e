"""``bayeslmm reml`` with several ``--pheno-name`` values: the multi-trait fit (issue 12, point 6).

The command writes ``bl.reml(Y, K, X).to_series()`` of the same files to ``PREFIX.reml.tsv``,
and its estimates are GEMMA 0.98.5 mvLMM's on the EUR example (tests/data/eur_mv).
"""

import re

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.cli.main import main
from bayeslmm.errors import DataWarning
from tests.gemma_reference import EUR_DIR
from tests.test_reml_multivariate import EUR_MV, _matches_printed, _symmetric, read_mvlmm_log

COVARS = str(EUR_DIR / "EUR_subset.pheno2.covars")


def _read(path) -> pd.Series:
    """A ``PREFIX.reml.tsv`` as written: two columns, no header, values as text."""
    return pd.read_csv(path, sep="\t", header=None, index_col=0, dtype=str, keep_default_na=False)[
        1
    ]


def _same(written: pd.Series, fit) -> None:
    """Every entry of the file equals the fit's ``to_series()`` (floats to the last bit)."""
    expected = fit.to_series()
    assert list(written.index) == list(expected.index)
    for key, value in expected.items():
        if isinstance(value, bool | np.bool_):
            assert written[key] == str(value), key
        elif isinstance(value, float | np.floating | int | np.integer):
            assert float(written[key]) == value, key
        else:
            assert written[key] == str(value), key


@pytest.fixture(scope="module")
def eur_mv_files(tmp_path_factory):
    """PHENO and SIM of the frozen GEMMA mvLMM run as a phenotype table, its covariates."""
    folder = tmp_path_factory.mktemp("eur_mv")
    fam = pd.read_csv(EUR_MV / "eurA_mv.fam", sep=r"\s+", header=None, dtype={0: str, 1: str})
    cov = np.loadtxt(EUR_MV / "eurA_mv.cov.txt")
    pheno = pd.DataFrame({"FID": fam[0], "IID": fam[1], "PHENO": fam[5], "SIM": fam[7]})
    covar = pd.DataFrame({"FID": fam[0], "IID": fam[1], "CAT_COV_B": cov[:, 1], "QCOV1": cov[:, 2]})
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False)
    covar.to_csv(folder / "covar.tsv", sep="\t", index=False)
    return folder


def test_cli_reml__several_traits_write_the_multi_trait_fit(tmp_path, capsys, eur_mv_files):
    out = tmp_path / "runs" / "mv"
    pheno, covar = str(eur_mv_files / "pheno.tsv"), str(eur_mv_files / "covar.tsv")
    args = ["reml", "--bfile", str(EUR_DIR / "eurA"), "--kinship", "centered"]
    args += ["--pheno", pheno, "--pheno-name", "PHENO", "SIM", "--covar", covar, "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "multi-trait REML fit of 2 traits on 366 samples" in printed
    assert "rg[PHENO, SIM]" in printed and "converged after" in printed
    assert f"Wrote {out}.reml.tsv" in printed
    written = _read(f"{out}.reml.tsv")
    Y = bl.read_table(pheno, numeric=True)[["PHENO", "SIM"]]
    K = bl.kinship(bl.read_plink(EUR_DIR / "eurA"), "centered")
    fit = bl.reml(Y, K, bl.read_table(covar))
    _same(written, fit)
    # GEMMA's mvLMM (-gk 1, -n 1 3): its K is not normalized, so Vg is ours / kinship_scale
    gemma = read_mvlmm_log(EUR_MV / "pheno_sim.log.txt")["reml"]
    scale = float(written["kinship_scale"])
    traits = ["PHENO", "SIM"]
    for name, factor in (("Vg", scale), ("Ve", 1.0)):
        expected = _symmetric(gemma[name]).astype(float)
        for i, a in enumerate(traits):
            for j, b in enumerate(traits[: i + 1]):
                key = f"{name}[{b},{a}]"
                assert float(written[key]) / factor == pytest.approx(
                    expected[i, j], rel=1e-5, abs=1e-6
                ), key
    screen = (EUR_MV / "pheno_sim.stdout.txt").read_text()  # 4 decimals (the log has 2)
    assert _matches_printed(
        float(written["loglik"]), re.search(r"^REMLE likelihood = (\S+)", screen, re.M)[1]
    )
    assert written["se_method"] == "observed information" and written["at_boundary"] == "False"
    # repeating the option is the same; an existing output is refused without --force
    again = [a for a in args if a != "SIM"]
    again[again.index("PHENO") + 1 : again.index("PHENO") + 1] = ["--pheno-name", "SIM"]
    assert main(again) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*again, "--force"]) == 0
    assert _read(f"{out}.reml.tsv").equals(written)


def test_cli_reml__several_traits_on_the_boundary_write_profile_bounds(tmp_path):
    # PHENO and QCOV2 of the EUR table: rg at -1, SEs and bounds from the profile likelihood
    out = tmp_path / "b"
    args = ["reml", "--bfile", str(EUR_DIR / "eurA"), "--kinship", "centered", "--pheno", COVARS]
    args += ["--pheno-name", "PHENO", "QCOV2", "--covar", COVARS, "--covar-name", "QCOV1"]
    assert main([*args, "--method", "ml", "--out", str(out)]) == 0
    written = _read(f"{out}.reml.tsv")
    assert written["method"] == "ml" and written["se_method"] == "profile likelihood"
    assert written["at_boundary"] == "True" and written["boundary"].startswith("the genetic")
    lower, upper = float(written["rg_lower[PHENO,QCOV2]"]), float(written["rg_upper[PHENO,QCOV2]"])
    assert lower <= float(written["rg[PHENO,QCOV2]"]) <= upper
    assert np.isfinite([float(v) for k, v in written.items() if re.search(r"_se\[", k)]).all()
    Y = bl.read_table(COVARS, columns=["PHENO", "QCOV2"], numeric=True)
    X = bl.read_table(COVARS, columns=["QCOV1"])
    K = bl.kinship(bl.read_plink(EUR_DIR / "eurA"), "centered")
    with pytest.warns(DataWarning, match="dropped 14"):  # 7 samples without genotypes
        _same(written, bl.reml(Y, K, X, method="ml"))


def test_cli_reml__several_traits_errors_are_messages(tmp_path, capsys):
    base = ["reml", "--bfile", str(EUR_DIR / "eurA"), "--pheno", COVARS]
    cases = [
        (["--pheno-name", "PHENO", "bmi"], r"has no column"),
        (["--pheno-name", "PHENO", "PHENO"], r"names \['PHENO'\] more than once"),
        (["--pheno-name", "PHENO", "QCOV2", "--prevalence", "0.1"], r"--prevalence is for one"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        assert re.search(message, capsys.readouterr().err), extra
    mgrm = tmp_path / "list.txt"
    mgrm.write_text("a\nb\n")
    assert main([*base, "--pheno-name", "PHENO", "QCOV2", "--mgrm", str(mgrm)]) == 2
    assert "several traits are fitted with one kinship" in capsys.readouterr().err
    no_table = ["reml", "--bfile", str(EUR_DIR / "eurA"), "--pheno-name", "PHENO", "QCOV2"]
    assert main(no_table) == 2
    assert "give it with --pheno FILE" in capsys.readouterr().err
    # the one-trait commands say where several traits go
    scan = ["scan", "--bfile", str(EUR_DIR / "eurA"), "--pheno", COVARS]
    assert main([*scan, "--pheno-name", "PHENO", "QCOV2"]) == 2
    assert "bayeslmm scan analyses one phenotype" in capsys.readouterr().err
