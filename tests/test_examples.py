"""Every notebook in examples/ runs top to bottom (quick mode: small data, short chains)."""

import importlib.util
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


def _refresh_module():
    """docs/refresh_notebooks.py (the stamp's hash is defined there)."""
    spec = importlib.util.spec_from_file_location("refresh", ROOT / "docs" / "refresh_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples__committed_outputs_are_from_the_current_code():
    """Outputs in a committed notebook come from a full-size run of its current code.

    docs/refresh_notebooks.py stamps each notebook it runs with the hash of its code cells;
    a notebook whose code changed since (or whose outputs came from elsewhere, e.g. a quick run
    saved from an editor) fails here until it is refreshed. (Notebooks not yet refreshed carry
    no outputs at all: issue 13 commits them all with outputs.)
    """
    refresh = _refresh_module()
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        if not any(cell.outputs or cell.execution_count is not None for cell in code):
            continue
        stamp = notebook.metadata.get("bayeslmm", {})
        assert stamp.get("code_sha256") == refresh.code_hash(notebook), (
            f"{path.name}: its code changed since its outputs were produced (or they were not "
            "produced by docs/refresh_notebooks.py): run `.venv/bin/python "
            f"docs/refresh_notebooks.py {path.stem}` and commit the notebook"
        )


def test_examples__stamp_detects_a_code_change():
    refresh = _refresh_module()
    notebook = nbformat.read(EXAMPLES / "05_gwas_eur.ipynb", as_version=4)
    before = refresh.code_hash(notebook)
    code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    code.source += "\n"
    assert refresh.code_hash(notebook) != before
    markdown = next(cell for cell in notebook.cells if cell.cell_type == "markdown")
    markdown.source += " (prose only)"
    code.source = code.source[:-1]
    assert refresh.code_hash(notebook) == before  # prose edits keep the outputs


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
