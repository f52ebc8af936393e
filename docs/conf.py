"""Sphinx configuration of the bayeslmm documentation site.

Build (from the repository root): ``.venv/bin/python -m sphinx -W --keep-going -b html docs
docs/_build/html``. Warnings are errors: a broken cross-reference, a public name without a
docstring, or a notebook that cannot be read fails the build.

The notebooks of ``examples/`` are shown with the outputs committed in them; the site never
executes them (``nb_execution_mode = "off"``; the test suite runs them in quick mode).
They live outside ``docs/``: :func:`_copy_sources` copies them into the source tree
(``docs/_generated/``, not committed) before each build. The model specifications
(``models/*/MODEL.md``), the changelog and the README's validation section are included by the
pages that show them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import bayeslmm  # noqa: E402

project = "bayeslmm"
author = "the bayeslmm developers"
copyright = "2026, the bayeslmm developers"
version = release = bayeslmm.__version__

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
suppress_warnings = ["mystnb.unknown_mime_type"]

# --- MyST / notebooks --------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the committed outputs are shown
nb_merge_streams = True

# the equations render offline: MathJax 3 (TeX in, SVG out, no web fonts) is bundled in _static
mathjax_path = "mathjax/tex-svg.js"

# --- API reference -----------------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters section carries the types
numpydoc_show_class_members = False  # the class template lists them (_templates)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# a public name without a docstring is a warning, hence an error with -W (GL08: no docstring)
numpydoc_validation_checks = {"GL08"}
# a dataclass's generated __init__ has no docstring: the class's own documents its fields
numpydoc_validation_exclude = {r"\.__init__$"}

# --- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"bayeslmm {release}"
html_static_path = ["_static"]
templates_path = ["_templates"]
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
html_favicon = "_static/favicon.svg"
html_context = {"default_mode": "light"}  # (without it the theme logs a console error)

GENERATED = DOCS / "_generated"


def _copy_sources() -> None:
    """Copy the notebooks of ``examples/`` into ``docs/_generated/examples/``."""
    if GENERATED.exists():
        shutil.rmtree(GENERATED)
    (GENERATED / "examples").mkdir(parents=True)
    for notebook in sorted((ROOT / "examples").glob("*.ipynb")):
        shutil.copy2(notebook, GENERATED / "examples" / notebook.name)


_copy_sources()
