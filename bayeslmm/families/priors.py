"""Prior specifications: small objects that name a PyMC distribution and its parameters.

A :class:`Prior` is a specification, not a random variable: it is turned into one inside a
model by :meth:`Prior.create`. Users may also pass any PyMC distribution made with
``.dist(...)``. Defaults scale with the data (DESIGN §1) and are merged with the user's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.errors import InputError

#: Free parameters of each parametrization, besides ``beta``.
PARAMETERS = {"h2": ("h2", "sigma_p"), "variance": ("sigma_g2", "sigma_e2")}

#: Support that each parameter's prior must respect: (lower, upper), open.
SUPPORT = {
    "h2": (0.0, 1.0),
    "sigma_p": (0.0, np.inf),
    "sigma_g2": (0.0, np.inf),
    "sigma_e2": (0.0, np.inf),
    "beta": (-np.inf, np.inf),
}

#: Pseudo-distributions that are not PyMC classes.
SPECIAL = ("Flat", "Jeffreys")


class Prior:
    """A prior distribution given by the name of a PyMC distribution and its parameters.

    Parameters
    ----------
    distribution : str
        Name of a ``pymc`` distribution (``"Beta"``, ``"HalfStudentT"``, ``"InverseGamma"``,
        ...), or ``"Flat"`` (improper uniform) or ``"Jeffreys"`` (p(x) ∝ 1/x on x > 0).
    **params
        The distribution's parameters (scalars, or arrays matching the dimension).

    Examples
    --------
    >>> Prior("Beta", alpha=2, beta=2)
    Prior('Beta', alpha=2, beta=2)
    """

    __slots__ = ("distribution", "params")

    def __init__(self, distribution: str, **params: Any) -> None:
        if not isinstance(distribution, str):
            raise InputError(f"a Prior is named by a string, got {distribution!r}.")
        if distribution not in SPECIAL:
            cls = getattr(pm, distribution, None)
            if not (isinstance(cls, type) and issubclass(cls, pm.Distribution)):
                raise InputError(
                    f"'{distribution}' is not a PyMC distribution; use a name such as 'Beta', "
                    "'HalfStudentT', 'InverseGamma', 'HalfCauchy', 'Flat' or 'Jeffreys'."
                )
        elif params:
            raise InputError(f"the {distribution} prior takes no parameters, got {list(params)}.")
        self.distribution = distribution
        self.params = dict(params)

    def __repr__(self) -> str:
        def fmt(v: Any) -> str:
            if np.ndim(v) == 0:
                return f"{float(v):.6g}" if not isinstance(v, int) else str(v)
            return "[" + ", ".join(f"{x:.4g}" for x in np.ravel(v)) + "]"

        args = [f"{k}={fmt(v)}" for k, v in self.params.items()]
        inner = ", ".join([repr(self.distribution), *args])
        return f"Prior({inner})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Prior)
            and other.distribution == self.distribution
            and other.params.keys() == self.params.keys()
            and all(np.array_equal(other.params[k], v) for k, v in self.params.items())
        )

    def __hash__(self) -> int:
        return hash((self.distribution, tuple(self.params)))

    def dist(self, shape: tuple[int, ...] = ()) -> pt.TensorVariable:
        """Return an unnamed PyMC distribution (for checks and prior draws)."""
        if self.distribution == "Flat":
            return pm.Flat.dist(shape=shape)
        if self.distribution == "Jeffreys":
            return pm.Flat.dist(shape=shape)
        return getattr(pm, self.distribution).dist(**self.params, shape=shape)

    def create(self, name: str, *, dims: str | tuple[str, ...] | None = None) -> pt.TensorVariable:
        """Add the prior as a named random variable to the model on the context stack.

        Notes
        -----
        ``Jeffreys`` is built as ``log_<name> ~ Flat`` with ``name = exp(log_<name>)``: a flat
        density on log x is the density ∝ 1/x on x. Numeric parameters become ``pm.Data``
        containers named ``<name>_<parameter>``, so that a compiled model can be refitted to
        another phenotype (whose data-scaled default priors differ) without recompiling.
        """
        if self.distribution == "Jeffreys":
            log_x = pm.Flat(f"log_{name}", dims=dims)
            return pm.Deterministic(name, pt.exp(log_x), dims=dims)
        params = {
            key: pm.Data(f"{name}_{key}", np.asarray(value, dtype=float))
            if isinstance(value, int | float | np.ndarray | np.number)
            else value
            for key, value in self.params.items()
        }
        return getattr(pm, self.distribution)(name, **params, dims=dims)

    def signature(self) -> tuple:
        """The structure of the prior (family and parameter names), not its values."""
        return (self.distribution, tuple(sorted(self.params)))


PriorLike = Prior | pt.TensorVariable


def describe(prior: PriorLike) -> str:
    """A one-line description of a prior for provenance records."""
    if isinstance(prior, Prior):
        return repr(prior)
    op = prior.owner.op if prior.owner is not None else None
    name = type(op).__name__ if op is not None else "unknown"
    params = []
    for inp in prior.owner.inputs[2:] if op is not None else []:
        try:
            params.append(np.array2string(np.asarray(inp.eval()), precision=4))
        except Exception:  # noqa: BLE001 - symbolic inputs are described by name only
            params.append(str(inp))
    return f"{name}({', '.join(params)})"


def draw_prior(rv: pt.TensorVariable, draws: int = 200, random_seed: int = 0) -> np.ndarray:
    """Draws from a prior distribution for checking it, as floats.

    Drawn through PyTensor's Python implementations (NumPy's generators), not its default numba
    backend: a distribution with invalid parameters raises there, while numba's sampler can
    loop forever on them (PyTensor 3). Checks draw a few hundred values, so speed is moot.
    """
    return np.asarray(
        pm.draw(rv, draws=draws, random_seed=random_seed, mode="FAST_COMPILE"), dtype=float
    )


def check_support(name: str, prior: PriorLike, shape: tuple[int, ...]) -> None:
    """Check that a prior is a proper distribution on its parameter's support.

    Draws from the prior (a few hundred values) and checks every draw lies inside
    ``SUPPORT[name]``; the special priors (``SPECIAL``) are checked by their rules instead.

    Parameters
    ----------
    name
        The parameter (a key of ``SUPPORT``: ``"h2"``, ``"sigma_p"``, ``"beta"``, ...).
    prior
        A :class:`Prior` or a PyMC ``.dist()`` variable.
    shape
        The parameter's shape (``(n_covariates,)`` for ``beta``, ``()`` for a scalar).

    Raises
    ------
    InputError
        If the prior cannot be built, or puts mass outside the support, or is a special prior
        that the parameter cannot take (Jeffreys on a signed parameter, anything improper on h2).
    """
    lower, upper = SUPPORT[name]
    if isinstance(prior, Prior) and prior.distribution in SPECIAL:
        if prior.distribution == "Jeffreys" and lower < 0:
            raise InputError(f"a Jeffreys prior is for a positive scale, not for '{name}'.")
        if name == "h2":
            raise InputError(
                "h2 needs a proper prior on (0, 1), e.g. Prior('Beta', alpha=1, beta=1)."
            )
        return
    try:
        rv = prior.dist(shape) if isinstance(prior, Prior) else prior
        draws = draw_prior(rv)
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad prior specification
        raise InputError(
            f"the prior for '{name}' ({describe(prior)}) cannot be built: {exc}"
        ) from None
    if not np.isfinite(draws).all() or (draws <= lower).any() or (draws >= upper).any():
        bad = draws[~((draws > lower) & (draws < upper))]
        example = f"{bad.flat[0]:.3g}" if bad.size else "non-finite values"
        raise InputError(
            f"the prior for '{name}' puts mass outside its support ({lower:g}, {upper:g}); it drew "
            f"{example}. Use e.g. Beta for h2 and a positive distribution (HalfStudentT, "
            "InverseGamma, HalfCauchy) for the variance components."
        )


def default_priors(parametrization: str, y: np.ndarray, X: np.ndarray) -> dict[str, Prior]:
    """Weakly informative defaults scaled by the data (DESIGN §1).

    Parameters
    ----------
    parametrization : {"h2", "variance"}
    y : ndarray
        Phenotype [shape: (n_samples,)].
    X : ndarray
        Covariates with intercept [shape: (n_samples, n_covariates)].

    Returns
    -------
    dict
        ``beta`` ~ Normal(mean(y) for the intercept else 0, 10·sd(y)/sd(x_j)); for ``"h2"``:
        ``h2`` ~ Beta(1, 1) and ``sigma_p`` ~ HalfStudentT(3, sd(y)); for ``"variance"``:
        ``sigma_g2`` and ``sigma_e2`` ~ HalfStudentT(3, var(y)).
    """
    sd_y = float(np.std(y, ddof=1))
    sd_x = np.std(X, axis=0, ddof=1)
    constant = sd_x == 0
    mu = np.where(constant, float(np.mean(y)), 0.0)
    sigma = np.where(constant, 10 * sd_y, 10 * sd_y / np.where(constant, 1.0, sd_x))
    priors: dict[str, Prior] = {"beta": Prior("Normal", mu=mu, sigma=sigma)}
    if parametrization == "h2":
        priors["h2"] = Prior("Beta", alpha=1, beta=1)
        priors["sigma_p"] = Prior("HalfStudentT", nu=3, sigma=sd_y)
    else:
        priors["sigma_g2"] = Prior("HalfStudentT", nu=3, sigma=sd_y**2)
        priors["sigma_e2"] = Prior("HalfStudentT", nu=3, sigma=sd_y**2)
    return priors


def flat_priors(parametrization: str = "h2") -> dict[str, Prior]:
    """Flat β and Jeffreys σp² with h² ~ Beta(1, 1): the priors of the exact 1-D check."""
    if parametrization != "h2":
        raise InputError("priors='flat' is defined for the h2 parametrization only.")
    return {
        "beta": Prior("Flat"),
        "h2": Prior("Beta", alpha=1, beta=1),
        "sigma_p": Prior("Jeffreys"),
    }


def resolve_priors(
    priors: Mapping[str, PriorLike] | str | None,
    parametrization: str | None,
    y: np.ndarray,
    X: np.ndarray,
) -> tuple[str, dict[str, PriorLike]]:
    """Merge the user's priors into the defaults and check them.

    Parameters
    ----------
    priors
        None, ``"default"``, ``"flat"``, or a mapping from parameter name to a :class:`Prior`
        or a PyMC ``.dist()`` variable.
    parametrization
        ``"h2"``, ``"variance"``, or None to infer it from the keys of ``priors`` (any of
        ``sigma_g2``/``sigma_e2`` selects ``"variance"``).

    Returns
    -------
    parametrization : str
    priors : dict
    """
    if isinstance(priors, str):
        if priors == "flat":
            return "h2", flat_priors(parametrization or "h2")
        if priors != "default":
            raise InputError(f"priors must be a dict, 'default' or 'flat', got {priors!r}.")
        priors = None
    user = dict(priors or {})
    if parametrization is None:
        parametrization = "variance" if {"sigma_g2", "sigma_e2"} & user.keys() else "h2"
    if parametrization not in PARAMETERS:
        raise InputError(f"parametrization must be 'h2' or 'variance', got {parametrization!r}.")
    allowed = {"beta", *PARAMETERS[parametrization]}
    unknown = set(user) - allowed
    if unknown:
        raise InputError(
            f"unknown prior(s) {sorted(unknown)} for the '{parametrization}' parametrization; "
            f"allowed: {sorted(allowed)} (priors on sigma_g2/sigma_e2 need "
            "parametrization='variance', on h2/sigma_p parametrization='h2')."
        )
    merged: dict[str, PriorLike] = {**default_priors(parametrization, y, X), **user}
    for name, prior in merged.items():
        if not isinstance(prior, Prior | pt.TensorVariable):
            raise InputError(
                f"the prior for '{name}' must be a bayeslmm.Prior or a PyMC distribution made "
                f"with .dist(...), got {type(prior).__name__}."
            )
        check_support(name, prior, (X.shape[1],) if name == "beta" else ())
    return parametrization, merged


def add_prior(name: str, prior: PriorLike, *, dims: str | None = None) -> pt.TensorVariable:
    """Create the random variable for a prior in the model on the context stack."""
    if isinstance(prior, Prior):
        return prior.create(name, dims=dims)
    model = pm.modelcontext(None)
    return model.register_rv(prior, name, dims=dims)
