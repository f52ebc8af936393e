"""Exception and warning types raised by bayeslmm.

Every error a user can cause is an :class:`InputError` whose message says what was wrong,
where, and what to do; numerical failures that are not the user's fault are
:class:`ConvergenceError`.
"""

from __future__ import annotations


class BayeslmmError(Exception):
    """Base class of every error raised on purpose by bayeslmm."""


class InputError(BayeslmmError, ValueError):
    """The data or the arguments cannot be used as given (the message says how to fix them)."""


class ConvergenceError(BayeslmmError, RuntimeError):
    """A numerical procedure did not reach a usable answer."""


class BayeslmmWarning(UserWarning):
    """Base class of the warnings bayeslmm emits."""


class KinshipWarning(BayeslmmWarning):
    """The kinship matrix needed a repair (negative eigenvalues clipped at zero)."""


class DataWarning(BayeslmmWarning):
    """Samples or columns were dropped from the analysis (the message says how many and why)."""


class SamplingWarning(BayeslmmWarning):
    """The sampler reported a problem (divergences, R-hat above 1.01, low ESS)."""
