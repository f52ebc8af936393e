"""bayeslmm: Bayesian linear mixed models for statistical genetics.

Posterior SNP-heritability from PyMC models in the eigenbasis of the kinship matrix, a fast
profiled REML path, and the tools to compare models.
"""

from typing import TYPE_CHECKING

from bayeslmm._version import __version__
from bayeslmm.data.simulation import simulate  # (DESIGN §4: bl.simulate)
from bayeslmm.errors import (
    BayeslmmError,
    BayeslmmWarning,
    ConvergenceError,
    DataWarning,
    InputError,
    KinshipWarning,
    SamplingWarning,
)
from bayeslmm.estimation.multivariate import MultiRemlFit, reml_multivariate
from bayeslmm.estimation.reml import RemlFit, reml
from bayeslmm.gwas.scanner import scan
from bayeslmm.io import Genotypes, read_bimbam, read_grm, read_plink, read_table, write_grm
from bayeslmm.linalg.spectral import Spectral, spectral_from_genotypes, spectral_from_kinship
from bayeslmm.relatedness.gram import Gram, gram
from bayeslmm.relatedness.grm import Kinship, kinship, kinship_from_pcs, loco_kinships
from bayeslmm.relatedness.gxe import gxe_kinship
from bayeslmm.relatedness.pca import pcs

#: Public names resolved at first use (PEP 562), so that ``import bayeslmm`` and the numpy core
#: (readers, kinships, REML, scans) load neither PyMC nor PyTensor nor ArviZ: the model builders,
#: the samplers, priors and model comparison (arviz_stats -> scipy.stats, ~1 s), and
#: liability_h2 (xarray). The first PyMC-side module imported sets PyTensor up
#: (:mod:`bayeslmm.families.backend`).
_LAZY = {
    "CrossValidation": "bayeslmm.inference.cross_validation",
    "Prediction": "bayeslmm.inference.prediction",
    "Prior": "bayeslmm.families.priors",
    "compare": "bayeslmm.inference.comparison",
    "cross_validate": "bayeslmm.inference.cross_validation",
    "heritability": "bayeslmm.inference.sampling",
    "kinship_model": "bayeslmm.families.gaussian",
    "liability_h2": "bayeslmm.families.liability",
    "linear_model": "bayeslmm.families.linear",
    "loo": "bayeslmm.inference.comparison",
    "map_estimate": "bayeslmm.inference.sampling",
    "predict": "bayeslmm.inference.prediction",
    "sample": "bayeslmm.inference.sampling",
    "snp_model": "bayeslmm.families.gaussian",
    "summary": "bayeslmm.inference.sampling",
}

if TYPE_CHECKING:  # (for type checkers and editors; at run time the names load lazily)
    from bayeslmm.families.gaussian import kinship_model, snp_model
    from bayeslmm.families.liability import liability_h2
    from bayeslmm.families.linear import linear_model
    from bayeslmm.families.priors import Prior
    from bayeslmm.inference.comparison import compare, loo
    from bayeslmm.inference.cross_validation import CrossValidation, cross_validate
    from bayeslmm.inference.prediction import Prediction, predict
    from bayeslmm.inference.sampling import heritability, map_estimate, sample, summary


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


__all__ = [
    "BayeslmmError",
    "BayeslmmWarning",
    "ConvergenceError",
    "CrossValidation",
    "Genotypes",
    "Gram",
    "Kinship",
    "DataWarning",
    "InputError",
    "KinshipWarning",
    "MultiRemlFit",
    "Prediction",
    "Prior",
    "RemlFit",
    "SamplingWarning",
    "Spectral",
    "__version__",
    "compare",
    "cross_validate",
    "gram",
    "gxe_kinship",
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
    "predict",
    "reml",
    "reml_multivariate",
    "sample",
    "scan",
    "simulate",
    "snp_model",
    "spectral_from_genotypes",
    "spectral_from_kinship",
    "summary",
]
