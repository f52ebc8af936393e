"""Every notebook in examples/ runs top to bottom (quick mode: small data, short chains)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Quick-mode wall times on the 2-core development machine: notebooks over ~40 s are slow.
NOTEBOOKS = [
    pytest.param("01_heritability_first_principles", marks=pytest.mark.slow),
    pytest.param("02_kinship_constructions", marks=pytest.mark.slow),
    pytest.param("03_pca_vs_lmm", marks=pytest.mark.slow),
    pytest.param("04_major_loci", marks=pytest.mark.slow),
    pytest.param("05_gwas_eur"),
    pytest.param("06_binary_trait", marks=pytest.mark.slow),
    pytest.param("07_genetic_correlation", marks=pytest.mark.slow),
    pytest.param("08_prediction", marks=pytest.mark.slow),
]


def test_examples__every_notebook_is_tested():
    listed = {param.values[0] for param in NOTEBOOKS}
    assert {path.stem for path in EXAMPLES.glob("*.ipynb")} == listed


def test_examples__committed_without_outputs():
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_examples__notebook_runs(name, monkeypatch):
    monkeypatch.setenv("BAYESLMM_QUICK", "1")  # inherited by the kernel process
    # the kernel imports bayeslmm from this checkout, whatever is installed
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    notebook = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
