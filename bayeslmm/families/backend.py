"""PyTensor set-up, run once when the first PyMC-side module of bayeslmm is imported.

Every module that imports PyMC or PyTensor at module level imports this one first
(``tests/test_layering.py`` checks it), so the set-up is in place before any model is built,
while ``import bayeslmm`` and the numpy core (REML, scans, kinships, readers) never load PyTensor.

PyTensor warns at first use that it "could not link to a BLAS installation" when installed
with pip (PyTensor 3.3 still does, at the first C-backend compilation of a graph with a dot
product). bayeslmm's models are elementwise in the eigenbasis (BLAS-free) or sampled by
nutpie (numba, its own BLAS calls); linking Debian's OpenBLAS was measured to change our
gradient times by -5 % to +25 % (benchmarks/blas.py), so it is not linked and the warning,
which would suggest otherwise, is not shown. A filter alone is not enough: the lookup happens
inside graph rewrites, under whatever warning filters the caller has (pytest's "error" turned
it into failed rewrites). The lookup itself (compiler and library probes, ~0.25 s) is left to
PyTensor's first use, as PyTensor does; only the warning is suppressed, by wrapping the
setting's default. A value set in PYTENSOR_FLAGS=blas__ldflags=... or .pytensorrc is read
and honoured as usual (the default is then never called).
"""

import warnings
from collections.abc import Callable

import pytensor

BLAS_WARNING = "PyTensor could not link to a BLAS installation"


def _quiet(lookup: Callable[[], object]) -> Callable[[], object]:
    def quiet_lookup() -> object:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=BLAS_WARNING, category=UserWarning)
            return lookup()

    return quiet_lookup


def quiet_blas_lookup() -> None:
    """Make PyTensor's BLAS lookup silent, deferred to its first use where PyTensor allows."""
    try:  # (PyTensor's config internals: ConfigParam keeps the callable default in _default)
        param = pytensor.config._config_var_dict["blas__ldflags"]
        lookup = param._default
    except (AttributeError, KeyError):
        param, lookup = None, None
    if param is not None and callable(lookup) and not hasattr(param, "val"):
        param._default = _quiet(lookup)
    else:  # another PyTensor layout: resolve (and cache) the setting now, quietly
        _quiet(lambda: pytensor.config.blas__ldflags)()


quiet_blas_lookup()
