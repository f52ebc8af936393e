"""Layering (issue 10, point 6): the numpy core loads no PyMC, ``import bayeslmm`` loads the PyMC
side lazily, and the package has no import cycles.

What a module loads is checked in a fresh interpreter each time (``sys.modules`` of the test
process has everything loaded already); the import graph is read statically from the sources.
"""

import ast
from pathlib import Path

import pytest

from tests.fresh import run_fresh

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bayeslmm"

#: Heavy dependencies the numpy core must not load.
HEAVY = ("pymc", "pytensor", "arviz", "arviz_base", "arviz_stats", "nutpie", "numba")

#: The numpy core: data, readers, spectral algebra, kinships, REML, scans, simulation, plots,
#: the conditional draws of u and v, liability transforms, errors and the CLI's module level.
CORE = (
    "bayeslmm",
    "bayeslmm._version",
    "bayeslmm.cli",
    "bayeslmm.cli.arguments",
    "bayeslmm.cli.demo",
    "bayeslmm.cli.grm",
    "bayeslmm.cli.h2",
    "bayeslmm.cli.inputs",
    "bayeslmm.cli.main",
    "bayeslmm.cli.reml",
    "bayeslmm.cli.scan",
    "bayeslmm.cli.simulate",
    "bayeslmm.constants",
    "bayeslmm.data",
    "bayeslmm.data.inputs",
    "bayeslmm.data.samples",
    "bayeslmm.data.simulation",
    "bayeslmm.errors",
    "bayeslmm.estimation",
    "bayeslmm.estimation.likelihood",
    "bayeslmm.estimation.multi",
    "bayeslmm.estimation.multivariate",
    "bayeslmm.estimation.multivariate.fit",
    "bayeslmm.estimation.multivariate.optimization",
    "bayeslmm.estimation.multivariate.parameters",
    "bayeslmm.estimation.multivariate.rotation",
    "bayeslmm.estimation.multivariate.uncertainty",
    "bayeslmm.estimation.reml",
    "bayeslmm.families",
    "bayeslmm.families.liability",
    "bayeslmm.gwas",
    "bayeslmm.gwas.association",
    "bayeslmm.gwas.interaction",
    "bayeslmm.gwas.scanner",
    "bayeslmm.inference",
    "bayeslmm.inference.effects",
    "bayeslmm.inference.psis",
    "bayeslmm.inference.threads",
    "bayeslmm.io",
    "bayeslmm.io.outputs",
    "bayeslmm.linalg",
    "bayeslmm.linalg.spectral",
    "bayeslmm.plots",
    "bayeslmm.relatedness",
    "bayeslmm.relatedness.gram",
    "bayeslmm.relatedness.grm",
    "bayeslmm.relatedness.gxe",
    "bayeslmm.relatedness.pca",
    "bayeslmm.relatedness.relationship",
)


def _module_name(path: Path) -> str:
    """Dotted name of the module or package ``path`` under bayeslmm/."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: Every bayeslmm module and package, by dotted name.
MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, name: str | None = None) -> str | None:
    """The bayeslmm module that ``from module import name`` (or ``import module``) loads."""
    if module.split(".")[0] != "bayeslmm":
        return None
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    while module not in MODULES and "." in module:
        module = module.rsplit(".", 1)[0]
    return module


def _loaded_heavy() -> str:
    """Code that prints the heavy modules loaded so far, one line, space-separated."""
    return f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"


def _imports(path: Path, *, module_level: bool) -> set[str]:
    """bayeslmm modules imported by ``path`` (``bayeslmm`` itself for the package).

    ``module_level``: only imports run when the module is imported (at top level, or under a
    top-level ``if``/``try``, not under ``if TYPE_CHECKING``); otherwise every import, those
    inside functions included.
    """
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(n for a in node.names if (n := _resolve(a.name)))
            elif isinstance(node, ast.ImportFrom):
                assert not node.level, f"relative import in {path}"  # (absolute ones only)
                if node.module:
                    found.update(n for a in node.names if (n := _resolve(node.module, a.name)))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            elif isinstance(node, ast.If | ast.Try | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif not module_level and isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                visit(node.body)
            elif not module_level:
                for child in ast.walk(node):
                    if isinstance(child, ast.stmt) and child is not node:
                        visit([child])

    visit(ast.parse(path.read_text()).body)
    return found


def _graph(*, module_level: bool) -> dict[str, set[str]]:
    return {
        name: _imports(path, module_level=module_level) - {name} for name, path in MODULES.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _third_party(path: Path) -> set[str]:
    """Top-level names of the non-bayeslmm packages ``path`` imports at module level."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names - {"bayeslmm"}


@pytest.mark.parametrize("module", CORE)
def test_core_module__imports_without_pymc(module):
    code = f"import sys, importlib\nimportlib.import_module({module!r})\n"
    out = run_fresh(code + _loaded_heavy())
    assert out.strip() == "", f"importing {module} loaded {out.strip()}"


def test_import_bayeslmm__numpy_path_loads_no_pymc_then_kinship_model_does():
    out = run_fresh(
        "import sys\n"
        "import bayeslmm as bl\n"
        "d = bl.simulate(120, 300, 0.5, n_covariates=1, seed=3)\n"
        "fit = bl.reml(d.y, d.K, d.X)\n"
        "assert 0.0 <= fit.h2 <= 1.0 and fit.h2_se > 0\n"
        "K = bl.kinship(d.G, 'standardized_empirical')\n"
        "table = bl.scan(d.G[:, :40], d.y, K=K)\n"
        "assert len(table) == 40\n"
        "assert 0.0 < float(bl.liability_h2(0.2, 0.01, 0.5)) < 1.0\n"
        + _loaded_heavy()
        + "model = bl.kinship_model(d.y, d.K, d.X)\n"
        "print(sorted(v.name for v in model.free_RVs))\n"
        "print('pymc' in sys.modules, 'pytensor' in sys.modules)\n"
    )
    heavy, free, loaded = out.split("\n")[:3]
    assert heavy == "", f"the numpy path loaded {heavy}"
    assert free == "['beta', 'h2', 'sigma_p']"
    assert loaded == "True True"


def test_import_bayeslmm__every_public_name_resolves():
    out = run_fresh(
        "import bayeslmm as bl, importlib\n"
        "missing = [n for n in bl.__all__ if not hasattr(bl, n)]\n"
        "undir = sorted(set(bl.__all__) - set(dir(bl)))\n"
        "lazy_unlisted = sorted(set(bl._LAZY) - set(bl.__all__))\n"
        "wrong = [n for n, m in bl._LAZY.items()\n"
        "         if getattr(bl, n) is not getattr(importlib.import_module(m), n)]\n"
        "modules = [n for n in bl.__all__ if type(getattr(bl, n)).__name__ == 'module']\n"
        "print(missing, undir, lazy_unlisted, wrong, modules)\n"
        "from bayeslmm import *  # noqa: F403\n"
        "from bayeslmm import sample, Prior, kinship_model\n"
        "print(callable(sample), Prior('HalfNormal', sigma=1.0).distribution)\n"
    )
    assert out.split("\n")[:2] == ["[] [] [] [] []", "True HalfNormal"]


def test_import_bayeslmm__compare_stays_the_function_after_its_module_loads():
    out = run_fresh(
        "from bayeslmm.inference.comparison import loo\n"
        "import bayeslmm as bl\n"
        "import bayeslmm.inference.comparison\n"
        "print(type(bl.compare).__name__, bl.compare.__name__, bl.loo is loo)\n"
    )
    assert out.split("\n")[0] == "function compare True"


def test_no_name_shadows_a_module():
    # a public function or class of a package never has the name of one of its submodules
    # (bl.kinship is the function; the kinship code lives in bayeslmm.relatedness.grm)
    import importlib

    clashes = []
    for name in MODULES:
        if not MODULES[name].name == "__init__.py":
            continue
        package = importlib.import_module(name)
        for attr in getattr(package, "__all__", []) + list(getattr(package, "_LAZY", {})):
            if f"{name}.{attr}" in MODULES:
                clashes.append(f"{name}.{attr}")
    assert clashes == []


def test_layout__subpackages_have_one_concern_each():
    # the architecture in the tree (issue 10, point 7): no flat module besides the few shared ones
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "_version.py", "constants.py", "errors.py", "plots.py"]


def test_import_bayeslmm__unknown_name_is_attribute_error():
    import bayeslmm as bl

    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        _ = bl.not_a_name


@pytest.mark.parametrize("module_level", [True, False], ids=["module_level", "all_imports"])
def test_import_graph__no_cycle(module_level):
    # module level: what ``import`` runs. All imports (function-local ones too): the lazy ones
    # (gwas -> inference for null="map", lmm -> components/probit/loci/sparse, inference ->
    # _nutpie, cli -> bayeslmm) point one way only as well.
    graph = _graph(module_level=module_level)
    assert (
        "bayeslmm.families.gaussian" in graph["bayeslmm.gwas.scanner"] or module_level
    )  # (the reader sees them)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_import_graph__core_reaches_no_pymc_module():
    graph = _graph(module_level=True)
    core = {m for m in CORE if m != "bayeslmm"}
    heavy = {name for name in graph if _third_party(MODULES[name]) & set(HEAVY)}
    for module in sorted(core):
        seen, todo = set(), [module]
        while todo:
            for dep in graph[todo.pop()] - seen:
                seen.add(dep)
                todo.append(dep)
        assert not seen & heavy, f"{module} imports {sorted(seen & heavy)} at module level"


def test_pymc_side_modules__set_pytensor_up_first():
    # the BLAS-warning set-up (bayeslmm.families.backend) must run before any model is built: every
    # module that imports PyMC or PyTensor at module level imports it
    for name, path in MODULES.items():
        if name == "bayeslmm.families.backend" or not _third_party(path) & {"pymc", "pytensor"}:
            continue
        assert "bayeslmm.families.backend" in _imports(path, module_level=True), name


def _private_uses(path: Path) -> list[str]:
    """Leading-underscore names that ``path`` takes from another bayeslmm module.

    Both ``from bayeslmm.mod import _name`` (anywhere in the file, function-local imports too)
    and ``mod._name`` on a bayeslmm module bound by ``import bayeslmm.mod [as mod]`` or
    ``from bayeslmm import mod``. A module whose own name has a leading underscore
    (``bayeslmm.data.samples``) is fine; dunders (``__version__``) are too.
    """
    here = _module_name(path)
    tree = ast.parse(path.read_text())
    bound: dict[str, str] = {}  # local name -> bayeslmm module
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "bayeslmm":
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif private(alias.name) and node.module != here:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bayeslmm."):
                    bound[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = bound.get(ast.unparse(node.value))
            if owner is not None and owner != here:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_private_names__not_imported_across_modules():
    # a helper another module needs gets a public name (and a docstring) in its own module
    found = {name: uses for name, path in MODULES.items() if (uses := _private_uses(path))}
    assert found == {}
