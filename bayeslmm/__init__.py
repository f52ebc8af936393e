"""bayeslmm: Bayesian linear mixed models for statistical genetics.

Posterior SNP-heritability from PyMC models in the eigenbasis of the kinship matrix, a fast
profiled REML path, and the tools to compare models.
"""

import warnings as _warnings
from collections.abc import Callable as _Callable

import pytensor as _pytensor

# PyTensor warns at first use that it "could not link to a BLAS installation" when installed
# with pip (PyTensor 3.3 still does, at the first C-backend compilation of a graph with a dot
# product). bayeslmm's models are elementwise in the eigenbasis (BLAS-free) or sampled by
# nutpie (numba, its own BLAS calls); linking Debian's OpenBLAS was measured to change our
# gradient times by -5 % to +25 % (benchmarks/blas.py), so it is not linked and the warning,
# which would suggest otherwise, is not shown. A filter alone is not enough: the lookup happens
# inside graph rewrites, under whatever warning filters the caller has (pytest's "error" turned
# it into failed rewrites). The lookup itself (compiler and library probes, ~0.25 s) is left to
# PyTensor's first use, as PyTensor does; only the warning is suppressed, by wrapping the
# setting's default. A value set in PYTENSOR_FLAGS=blas__ldflags=... or .pytensorrc is read
# and honoured as usual (the default is then never called).
_BLAS_WARNING = "PyTensor could not link to a BLAS installation"


def _quiet(lookup: _Callable[[], object]) -> _Callable[[], object]:
    def quiet_lookup() -> object:
        with _warnings.catch_warnings():
            _warnings.filterwarnings("ignore", message=_BLAS_WARNING, category=UserWarning)
            return lookup()

    return quiet_lookup


def _quiet_blas_lookup() -> None:
    """Make PyTensor's BLAS lookup silent, deferred to its first use where PyTensor allows."""
    try:  # (PyTensor's config internals: ConfigParam keeps the callable default in _default)
        param = _pytensor.config._config_var_dict["blas__ldflags"]
        lookup = param._default
    except (AttributeError, KeyError):
        param, lookup = None, None
    if param is not None and callable(lookup) and not hasattr(param, "val"):
        param._default = _quiet(lookup)
    else:  # another PyTensor layout: resolve (and cache) the setting now, quietly
        _quiet(lambda: _pytensor.config.blas__ldflags)()


_quiet_blas_lookup()

from bayeslmm._version import __version__  # noqa: E402
from bayeslmm.errors import (  # noqa: E402
    BayeslmmError,
    BayeslmmWarning,
    ConvergenceError,
    DataWarning,
    InputError,
    KinshipWarning,
    SamplingWarning,
)
from bayeslmm.fixed import linear_model  # noqa: E402
from bayeslmm.gwas import scan  # noqa: E402
from bayeslmm.inference import heritability, map_estimate, sample, summary  # noqa: E402
from bayeslmm.io import Genotypes, read_bimbam, read_grm, read_plink, read_table, write_grm  # noqa: E402
from bayeslmm.kinship import Kinship, kinship, kinship_from_pcs, loco_kinships  # noqa: E402
from bayeslmm.liability import liability_h2  # noqa: E402
from bayeslmm.lmm import kinship_model, snp_model  # noqa: E402
from bayeslmm.pca import pcs  # noqa: E402
from bayeslmm.priors import Prior  # noqa: E402
from bayeslmm.reml import RemlFit, reml  # noqa: E402
from bayeslmm.simulate import simulate  # noqa: E402  (DESIGN §4: bl.simulate)
from bayeslmm.spectral import Spectral, spectral_from_genotypes, spectral_from_kinship  # noqa: E402

#: Public names whose modules load heavy dependencies (arviz_stats -> scipy.stats, ~1 s),
#: imported at first use (PEP 562) so that ``import bayeslmm`` adds little to ``import pymc``.
_LAZY = {"compare": "bayeslmm.compare", "loo": "bayeslmm.compare"}


def __getattr__(name: str) -> object:
    """Resolve the names of :data:`_LAZY` at first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayeslmm' has no attribute {name!r}")


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
