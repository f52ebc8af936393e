"""bayeslmm: Bayesian linear mixed models for statistical genetics.

Posterior SNP-heritability from PyMC models in the eigenbasis of the kinship matrix, a fast
profiled REML path, and the tools to compare models.
"""

import sys as _sys
import types as _types
from typing import TYPE_CHECKING

from bayeslmm._version import __version__
from bayeslmm.errors import (
    BayeslmmError,
    BayeslmmWarning,
    ConvergenceError,
    DataWarning,
    InputError,
    KinshipWarning,
    SamplingWarning,
)
from bayeslmm.gwas import scan
from bayeslmm.io import Genotypes, read_bimbam, read_grm, read_plink, read_table, write_grm
from bayeslmm.kinship import Kinship, kinship, kinship_from_pcs, loco_kinships
from bayeslmm.pca import pcs
from bayeslmm.reml import RemlFit, reml
from bayeslmm.simulate import simulate  # (DESIGN §4: bl.simulate)
from bayeslmm.spectral import Spectral, spectral_from_genotypes, spectral_from_kinship

#: Public names resolved at first use (PEP 562), so that ``import bayeslmm`` and the numpy core
#: (readers, kinships, REML, scans) load neither PyMC nor PyTensor nor ArviZ: the model builders,
#: the samplers, priors and model comparison (arviz_stats -> scipy.stats, ~1 s), and
#: liability_h2 (xarray). The first PyMC-side module imported sets PyTensor up
#: (:mod:`bayeslmm._backend`).
_LAZY = {
    "Prior": "bayeslmm.priors",
    "compare": "bayeslmm.compare",
    "heritability": "bayeslmm.inference",
    "kinship_model": "bayeslmm.lmm",
    "liability_h2": "bayeslmm.liability",
    "linear_model": "bayeslmm.fixed",
    "loo": "bayeslmm.compare",
    "map_estimate": "bayeslmm.inference",
    "sample": "bayeslmm.inference",
    "snp_model": "bayeslmm.lmm",
    "summary": "bayeslmm.inference",
}

if TYPE_CHECKING:  # (for type checkers and editors; at run time the names load lazily)
    from bayeslmm.compare import compare, loo
    from bayeslmm.fixed import linear_model
    from bayeslmm.inference import heritability, map_estimate, sample, summary
    from bayeslmm.liability import liability_h2
    from bayeslmm.lmm import kinship_model, snp_model
    from bayeslmm.priors import Prior


def __getattr__(name: str) -> object:
    """Resolve the names of :data:`_LAZY` at first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayeslmm' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the lazy public ones included."""
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """bayeslmm's module type: a lazy public function keeps its name when its module loads.

    ``bl.compare`` (a function) and ``bayeslmm.compare`` (its module) share a name, and the
    import system binds a submodule on its package when it first loads it (``from
    bayeslmm.compare import loo``), which would make ``bl.compare`` the module. That binding is
    skipped for the names of :data:`_LAZY`; the module stays in ``sys.modules``.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


__all__ = [
    "BayeslmmError",
    "BayeslmmWarning",
    "ConvergenceError",
    "Genotypes",
    "Kinship",
    "DataWarning",
    "InputError",
    "KinshipWarning",
    "Prior",
    "RemlFit",
    "SamplingWarning",
    "Spectral",
    "__version__",
    "compare",
    "liability_h2",
    "loo",
    "heritability",
    "kinship",
    "kinship_from_pcs",
    "loco_kinships",
    "read_bimbam",
    "read_grm",
    "read_plink",
    "read_table",
    "write_grm",
    "kinship_model",
    "linear_model",
    "pcs",
    "map_estimate",
    "reml",
    "sample",
    "scan",
    "simulate",
    "snp_model",
    "spectral_from_genotypes",
    "spectral_from_kinship",
    "summary",
]
