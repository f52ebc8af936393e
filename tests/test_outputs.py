"""Outputs never lose data: paths checked first, no clobbering, no foreign deletion, safe resume."""

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
import bayeslmm.gwas.scanner as gwas
from bayeslmm.cli.main import main
from bayeslmm.io.outputs import atomic_path, check_outputs

SIM = ["--n-samples", "60", "--n-snps", "90", "--n-chromosomes", "2", "--seed", "4"]


@pytest.fixture
def cohort(tmp_path):
    prefix = tmp_path / "runs" / "cohort.1"
    prefix.parent.mkdir()
    assert main(["simulate", "--out", str(prefix), *SIM]) == 0
    return str(prefix)


def _scan(prefix, out, *extra):
    return main(
        [
            "scan",
            "--bfile",
            prefix,
            "--pheno",
            f"{prefix}.pheno.tsv",
            "--chunk-size",
            "20",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_atomic_path__file_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "a.tsv") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.tsv").stat().st_mode) == 0o640


def test_check_outputs__each_bad_path_named_with_the_way_out(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("keep")
    with pytest.raises(bl.InputError, match="names no file; give a file name"):
        check_outputs([""])
    with pytest.raises(bl.InputError, match="is an existing directory, not a file"):
        check_outputs([tmp_path / "dir"])
    with pytest.raises(bl.InputError, match=r"folder .*missing does not exist; create the folder"):
        check_outputs([tmp_path / "missing" / "x.tsv"])
    with pytest.raises(bl.InputError, match="exists and would be overwritten.*--force"):
        check_outputs([tmp_path / "file"], option="--force")
    assert check_outputs([tmp_path / "file"], overwrite=True) == [tmp_path / "file"]


def test_check_outputs__read_only_folder(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    real = os.access  # root may write anywhere: answer as for an ordinary user
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and p != folder)
    try:
        with pytest.raises(bl.InputError, match="folder .*ro is not writable; choose a folder"):
            check_outputs([folder / "x.tsv"])
    finally:
        folder.chmod(0o755)


def test_simulate__prefix_keeps_its_dots_and_is_not_overwritten(cohort, capsys):
    folder = os.path.dirname(cohort)
    assert sorted(os.listdir(folder)) == sorted(
        f"cohort.1{ext}"
        for ext in (".bed", ".bim", ".fam", ".pheno.tsv", ".covar.tsv", ".truth.json")
    )
    before = open(f"{cohort}.bed", "rb").read()
    assert main(["simulate", "--out", cohort, *SIM[:-1], "5"]) == 2
    assert "cohort.1.bed exists and would be overwritten" in capsys.readouterr().err
    assert open(f"{cohort}.bed", "rb").read() == before
    assert main(["simulate", "--out", cohort, *SIM[:-1], "5", "--force"]) == 0
    assert open(f"{cohort}.bed", "rb").read() != before


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["reml", "--out", "{tmp}/afile/r"], "afile is a file, not a folder"),
        (["reml", "--out", "{tmp}/adir/"], "is not a usable prefix"),
        (["reml", "--out", ""], "is not a usable prefix"),
        (["h2", "--out", "{tmp}/afile/h"], "afile is a file, not a folder"),
        (["grm", "--out", "{tmp}/afile/g"], "afile is a file, not a folder"),
    ],
)
def test_cli__bad_output_refused_before_the_work(cohort, tmp_path, capsys, command, message):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("keep")  # a missing folder is created; a file is not one
    command = [c.format(tmp=tmp_path) for c in command]
    code = main([command[0], "--bfile", cohort, *command[1:]])
    assert code == 2
    err = capsys.readouterr()
    assert message in err.err
    assert "Kinship" not in err.out  # refused before any kinship was built


def test_cli_reml__existing_output_needs_force(cohort, tmp_path, capsys):
    out = str(tmp_path / "r")
    args = ["reml", "--bfile", cohort, "--pheno", f"{cohort}.pheno.tsv", "--out", out]
    assert main(args) == 0
    assert main(args) == 2
    assert "r.reml.tsv exists and would be overwritten" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_cli_scan__plot_folder_unusable_refused_before_the_scan(cohort, tmp_path, capsys):
    out = tmp_path / "s.tsv"
    (tmp_path / "nope").write_text("keep")
    assert _scan(cohort, out, "--plot", str(tmp_path / "nope" / "p")) == 2
    assert "nope is a file, not a folder" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "s.tsv.parts").exists()
    assert (tmp_path / "nope").read_text() == "keep"


def test_cli_scan__output_is_a_directory(cohort, tmp_path, capsys):
    (tmp_path / "d").mkdir()
    assert _scan(cohort, tmp_path / "d") == 2
    assert "is an existing directory" in capsys.readouterr().err


def test_scan__foreign_parts_folder_is_never_deleted(tmp_path):
    data = bl.simulate(40, 30, 0.3, seed=2)
    out = tmp_path / "res.tsv"
    parts = tmp_path / "res.tsv.parts"
    parts.mkdir()
    (parts / "precious.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(bl.InputError, match="was not made by a bayeslmm scan.*move it away"):
            bl.scan(data.G, data.y, loco=False, out=out, overwrite=overwrite, progress=False)
    assert (parts / "precious.txt").read_text() == "mine"


def test_scan__interrupted_chunks_kept_unless_resume_or_overwrite(tmp_path, monkeypatch):
    data = bl.simulate(40, 30, 0.3, seed=2)
    out = tmp_path / "res.tsv"
    reference = bl.scan(data.G, data.y, loco=False, chunk_size=7, progress=False)
    original, calls = gwas._chunk_table, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(gwas, "_chunk_table", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        bl.scan(data.G, data.y, loco=False, out=out, chunk_size=7, progress=False)
    assert any("resume=True" in note for note in info.value.__notes__)
    parts = tmp_path / "res.tsv.parts"
    manifest = json.loads((parts / "manifest.json").read_text())
    assert manifest["created_by"] == "bayeslmm.scan" and manifest["settings"]
    assert len(list(parts.glob("0*.tsv"))) == 2
    monkeypatch.setattr(gwas, "_chunk_table", original)
    with pytest.raises(bl.InputError, match="holds 2 completed chunks.*resume=True.*--force"):
        bl.scan(data.G, data.y, loco=False, out=out, chunk_size=7, progress=False)
    changed = data.G.copy()
    changed[0, 0] = 2 - changed[0, 0]
    with pytest.raises(bl.InputError, match=r"inputs changed.*\['genotype values'\]"):
        bl.scan(changed, data.y, loco=False, out=out, chunk_size=7, resume=True, progress=False)
    with pytest.raises(bl.InputError, match="other settings"):
        bl.scan(data.G, data.y, loco=False, out=out, chunk_size=8, resume=True, progress=False)
    table = bl.scan(data.G, data.y, loco=False, out=out, chunk_size=7, resume=True, progress=False)
    pd.testing.assert_frame_equal(table, pd.read_csv(out, sep="\t", dtype={"chrom": str}))
    np.testing.assert_allclose(table["p_wald"], reference["p_wald"], rtol=1e-12)
    assert not parts.exists()
    with pytest.raises(bl.InputError, match="res.tsv exists and would be overwritten"):
        bl.scan(data.G, data.y, loco=False, out=out, chunk_size=7, progress=False)
    bl.scan(data.G, data.y, loco=False, out=out, chunk_size=7, overwrite=True, progress=False)


def test_cli_scan__changed_genotype_file_refuses_resume(cohort, tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.tsv"
    original, calls = gwas._chunk_table, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(gwas, "_chunk_table", interrupted)
    assert _scan(cohort, out, "--no-loco") == 130
    assert "Run the same command with --resume" in capsys.readouterr().err
    monkeypatch.setattr(gwas, "_chunk_table", original)
    # the same path, shape and phenotype, other genotypes: a new simulation over the old files
    pheno = open(f"{cohort}.pheno.tsv").read()
    assert main(["simulate", "--out", cohort, *SIM[:-1], "99", "--force"]) == 0
    with open(f"{cohort}.pheno.tsv", "w") as handle:
        handle.write(pheno)
    assert _scan(cohort, out, "--no-loco", "--resume") == 2
    err = capsys.readouterr().err
    assert "inputs changed since the interrupted scan" in err and "cohort.1.bed" in err
    assert _scan(cohort, out, "--no-loco", "--force") == 0
    assert not (tmp_path / "s.tsv.parts").exists()


def test_check_outputs__creates_missing_folders_only_when_asked(tmp_path):
    target = tmp_path / "new" / "deeper" / "x.tsv"
    assert check_outputs([target], create_folders=True) == [target]
    assert target.parent.is_dir() and not target.exists()
    (tmp_path / "plain").write_text("keep")
    with pytest.raises(bl.InputError, match="plain is a file, not a folder"):
        check_outputs([tmp_path / "plain" / "x.tsv"], create_folders=True)
    assert (tmp_path / "plain").read_text() == "keep"


def test_cli_simulate__creates_the_output_folder(tmp_path):
    prefix = tmp_path / "data" / "sim"  # as in the README, in a fresh checkout
    assert main(["simulate", "--out", str(prefix), *SIM]) == 0
    assert (tmp_path / "data" / "sim.bed").is_file()
