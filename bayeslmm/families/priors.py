"""Prior specifications: small objects that name a PyMC distribution and its parameters.

A :class:`Prior` is a specification, not a random variable: it is turned into one inside a
model by :meth:`Prior.create`. Users may also pass any PyMC distribution made with
``.dist(...)``. Defaults scale with the data (DESIGN §1) and are merged with the user's.

Every model family describes its free parameters by a table of :class:`Parameter` (default
prior, support, shape, prior under ``priors="flat"``) and gets its priors from one resolver,
:func:`resolve`, which checks names, types, shapes and supports with one message format.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.errors import InputError

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


#: Supports that a parameter's prior is checked against: open intervals (lower, upper), or the
#: simplex (non-negative entries that sum to 1 along the last axis).
REAL = (-np.inf, np.inf)
POSITIVE = (0.0, np.inf)
UNIT = (0.0, 1.0)
SIMPLEX = "simplex"

#: Presets that ``priors=`` may name instead of a dict.
PRESETS = ("default", "flat")


@dataclass(frozen=True, eq=False)
class Parameter:
    """One free parameter of a model family, as the prior resolver sees it.

    A family describes its parameters by a table ``{name: Parameter}`` (in the order its model
    creates them) and hands it, with the user's ``priors=``, to :func:`resolve`.

    Attributes
    ----------
    default : Prior or TensorVariable
        The prior used when the user gives none (usually scaled by the data).
    support : tuple of float, or "simplex"
        :data:`REAL`, :data:`POSITIVE`, :data:`UNIT` or another open interval that every draw
        of a prior must lie in, or :data:`SIMPLEX`.
    shape : tuple of int
        The parameter's shape: ``()`` for a scalar, ``(n_covariates,)`` for ``beta``.
    flat : Prior, TensorVariable or None
        The prior under ``priors="flat"``; None when the preset is not offered for it.
    suggestion : str
        What to use instead, in error messages; empty: a suggestion from the support.
    """

    default: PriorLike
    support: tuple[float, float] | str = REAL
    shape: tuple[int, ...] = ()
    flat: PriorLike | None = None
    suggestion: str = ""

    def where(self) -> str:
        """The support in words: "(0, 1)", "(0, inf)", "the real line", "the simplex of 3 ..."."""
        if self.support == SIMPLEX:
            return f"the simplex of {self.shape[-1]} entries"
        if self.support == REAL:
            return "the real line"
        lower, upper = self.support
        return f"({lower:g}, {upper:g})"

    def use(self) -> str:
        """A prior to use instead, for error messages."""
        if self.suggestion:
            return self.suggestion
        if self.support == SIMPLEX:
            n = self.shape[-1]
            return (
                f"a distribution on the simplex of {n} entries, e.g. "
                f"Prior('Dirichlet', a=np.ones({n}))"
            )
        if self.support == REAL:
            return "a distribution on the real line, e.g. Prior('Normal', mu=0, sigma=10)"
        if self.support == POSITIVE:
            return (
                "a positive distribution (HalfStudentT, InverseGamma, HalfCauchy), or "
                "Prior('Jeffreys') for the improper p(x) ∝ 1/x"
            )
        if self.support == UNIT:
            return "a distribution on (0, 1), e.g. Prior('Beta', alpha=1, beta=1)"
        return f"a distribution on {self.where()}"


def check_prior(name: str, prior: Any, parameter: Parameter) -> None:
    """Check that a prior is one bayeslmm can build for a parameter: type, shape, support.

    Draws a few hundred values from the prior and checks their shape and that every draw lies
    in the parameter's support. The improper priors are checked by their rules instead:
    ``Flat`` only on the real line, ``Jeffreys`` only on (0, inf).

    Parameters
    ----------
    name
        The parameter's name, for messages.
    prior
        What the user gave (or a default): a :class:`Prior` or a PyMC ``.dist()`` variable.
    parameter
        The parameter's row of the family's table.

    Raises
    ------
    InputError
        One message format for every family: ``the prior for '<name>' (<prior>) ...; use ...``.
    """
    variable = _prior_variable(name, prior, parameter)
    if variable is not None:
        _check_draws(name, prior, parameter, _draw_one(name, prior, parameter, variable))


def check_priors(priors: Mapping[str, Any], table: Mapping[str, Parameter]) -> None:
    """:func:`check_prior` for several priors, drawing from all of them in one compiled function.

    Parameters
    ----------
    priors
        Prior of each parameter, by name.
    table
        The family's parameter table (the rows of ``priors``' names).

    Raises
    ------
    InputError
        The first bad prior, with :func:`check_prior`'s message.

    Notes
    -----
    PyTensor compiles one function per call of ``pm.draw`` (≈ 0.3 s); a family with five priors
    paid that five times per model build. Drawing from all of them at once compiles once. When
    the joint draw fails, each prior is checked on its own, so the message names the bad one.
    A :class:`Prior` that passed is remembered with its parameter's shape and support
    (:func:`_checked_key`; the check is deterministic): a later model with the same prior, e.g.
    a refit of the same model to other data or a cross-validation fold, skips the compilation
    (~0.2–0.4 s per model build).
    """
    keys = {name: _checked_key(name, prior, table[name]) for name, prior in priors.items()}
    variables = {}
    for name, prior in priors.items():
        if keys[name] is not None and keys[name] in _CHECKED:
            continue
        variable = _prior_variable(name, prior, table[name])
        if variable is not None:
            variables[name] = variable
    if variables:
        try:
            draws = dict(zip(variables, _draw_many(list(variables.values())), strict=True))
        except Exception:  # noqa: BLE001 - one of them is bad: each alone says which
            draws = {
                name: _draw_one(name, priors[name], table[name], variable)
                for name, variable in variables.items()
            }
        for name in variables:
            _check_draws(name, priors[name], table[name], draws[name])
    for key in keys.values():
        if key is not None:
            _CHECKED[key] = None
            _CHECKED.move_to_end(key)
    while len(_CHECKED) > MAX_CHECKED:
        _CHECKED.popitem(last=False)


#: Priors that passed :func:`check_priors`, by :func:`_checked_key` (least recently used
#: first), and how many are kept.
_CHECKED: OrderedDict[tuple, None] = OrderedDict()
MAX_CHECKED = 1024


def _checked_key(name: str, prior: Any, parameter: Parameter) -> tuple | None:
    """What :func:`check_priors`' verdict on a :class:`Prior` depends on; None: not kept.

    The parameter's name, shape and support, and the prior's distribution and exact parameter
    values (their bytes, dtype and shape). A PyMC variable given as a prior is checked anew
    each time.
    """
    if not isinstance(prior, Prior):
        return None
    try:
        values = tuple(
            (k, np.asarray(v).dtype.str, np.shape(v), np.asarray(v).tobytes())
            for k, v in sorted(prior.params.items())
        )
    except (TypeError, ValueError):  # a parameter numpy cannot serialize: check it each time
        return None
    if any(dtype.startswith("|O") for _, dtype, _, _ in values):
        return None
    return (name, prior.distribution, values, tuple(parameter.shape), parameter.support)


def _draw_many(variables: list[pt.TensorVariable]) -> list[np.ndarray]:
    """Draws from several priors in one compiled function (see :func:`draw_prior`)."""
    out = pm.draw(variables, draws=200, random_seed=0, mode="FAST_COMPILE")
    out = out if isinstance(out, list | tuple) else [out]
    return [np.asarray(x, dtype=float) for x in out]


def _prior_variable(name: str, prior: Any, parameter: Parameter) -> pt.TensorVariable | None:
    """The prior as an unnamed variable of the parameter's shape; None for Flat/Jeffreys."""
    if not isinstance(prior, Prior | pt.TensorVariable):
        raise InputError(
            f"the prior for '{name}' must be a bayeslmm.Prior or a PyMC distribution made with "
            f".dist(...), got {type(prior).__name__}; use {parameter.use()}."
        )
    if isinstance(prior, Prior) and prior.distribution in SPECIAL:
        fits = parameter.support == (REAL if prior.distribution == "Flat" else POSITIVE)
        if not fits:
            scope = "the real line" if prior.distribution == "Flat" else "(0, inf)"
            raise InputError(
                f"the prior for '{name}' ({prior!r}) is improper on {scope}, but '{name}' lies "
                f"in {parameter.where()} and needs a prior there; use {parameter.use()}."
            )
        return None
    if isinstance(prior, Prior):
        try:
            return prior.dist(tuple(parameter.shape))
        except Exception as exc:  # noqa: BLE001 - any failure here is a bad prior specification
            sized = f" with shape {tuple(parameter.shape)}" if parameter.shape else ""
            raise InputError(
                f"the prior for '{name}' ({describe(prior)}) cannot be built{sized}: {exc}; use "
                f"{parameter.use()}."
            ) from None
    return prior


def _draw_one(name: str, prior: Any, parameter: Parameter, variable: Any) -> np.ndarray:
    """Draws from one prior; a failure is the user's bad specification."""
    try:
        return draw_prior(variable)
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad prior specification
        shape = tuple(parameter.shape)
        sized = f" with shape {shape}" if shape else ""
        raise InputError(
            f"the prior for '{name}' ({describe(prior)}) cannot be built{sized}: {exc}; use "
            f"{parameter.use()}."
        ) from None


def _check_draws(name: str, prior: Any, parameter: Parameter, draws: np.ndarray) -> None:
    """Shape and support of a prior's draws against the parameter's."""
    shape = tuple(parameter.shape)
    if draws.shape[1:] != shape:
        raise InputError(
            f"the prior for '{name}' ({describe(prior)}) has shape {draws.shape[1:]}, but "
            f"'{name}' has shape {shape}; use {parameter.use()} (a PyMC .dist(...) needs "
            f"shape={shape}; a bayeslmm.Prior takes the parameter's shape)."
        )
    if parameter.support == SIMPLEX:
        inside = np.isfinite(draws).all(-1) & (draws >= 0).all(-1)
        inside &= np.isclose(draws.sum(-1), 1.0)
    else:
        lower, upper = parameter.support
        inside = (np.isfinite(draws) & (draws > lower) & (draws < upper)).reshape(len(draws), -1)
        inside = inside.all(-1)
    if not inside.all():
        bad = draws[~inside][0]
        drew = np.array2string(np.asarray(bad), precision=3) if np.ndim(bad) else f"{bad:.3g}"
        raise InputError(
            f"the prior for '{name}' ({describe(prior)}) puts mass outside its support: its "
            f"draws must lie in {parameter.where()}, and it drew {drew}; use {parameter.use()}."
        )


def centred_intercept_prior(
    mu: np.ndarray, sigma: np.ndarray, X: np.ndarray, constant: np.ndarray
) -> Prior:
    r"""β's prior with the intercept's placed at the covariate means.

    Parameters
    ----------
    mu, sigma : ndarray
        Means and SDs of the intercept at the covariate means (at the constant column) and of
        the other coefficients [shape: (n_covariates,)].
    X : ndarray
        Covariates with intercept [shape: (n_samples, n_covariates)].
    constant : ndarray of bool
        Which column is constant [shape: (n_covariates,)].

    Returns
    -------
    Prior
        ``Normal(mu, sigma)`` without an intercept or without other covariates; else
        ``MvNormal(mu, A diag(sigma²) A')``.

    Notes
    -----
    With c the constant column and :math:`\bar x_j` the means of the others,
    :math:`\alpha = \beta_c + \sum_j \bar x_j \beta_j \sim N(\mu_c, \sigma_c^2)`
    independently of :math:`\beta_j \sim N(0, \sigma_j^2)` (rstanarm's centred intercept).
    :math:`\beta = A(\alpha, \beta_j)` with A the identity plus :math:`-\bar x_j` in row c, a
    map of unit Jacobian, so :math:`\beta \sim MvNormal(\mu, A\,\mathrm{diag}(\sigma^2) A^\top)`.
    Moving a covariate by a constant (a date, a year of birth) moves the prior with it, and the
    posterior of everything but the intercept does not change.
    """
    if int(np.sum(constant)) != 1 or X.shape[1] == 1:
        return Prior("Normal", mu=mu, sigma=sigma)
    A = np.eye(X.shape[1])
    A[np.flatnonzero(constant)[0], ~constant] = -X[:, ~constant].mean(axis=0)
    return Prior("MvNormal", mu=mu, cov=A @ np.diag(sigma**2) @ A.T)


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
        ``beta``: Normal(0, 10·sd(y)/sd(x_j)) for the covariates and Normal(mean(y), 10·sd(y))
        for the intercept at the covariate means (:func:`centred_intercept_prior`); for ``"h2"``:
        ``h2`` ~ Beta(1, 1) and ``sigma_p`` ~ HalfStudentT(3, sd(y)); for ``"variance"``:
        ``sigma_g2`` and ``sigma_e2`` ~ HalfStudentT(3, var(y)).
    """
    sd_y = float(np.std(y, ddof=1))
    sd_x = np.std(X, axis=0, ddof=1)
    constant = sd_x == 0
    mu = np.where(constant, float(np.mean(y)), 0.0)
    sigma = np.where(constant, 10 * sd_y, 10 * sd_y / np.where(constant, 1.0, sd_x))
    priors: dict[str, Prior] = {"beta": centred_intercept_prior(mu, sigma, X, constant)}
    if parametrization == "h2":
        priors["h2"] = Prior("Beta", alpha=1, beta=1)
        priors["sigma_p"] = Prior("HalfStudentT", nu=3, sigma=sd_y)
    else:
        priors["sigma_g2"] = Prior("HalfStudentT", nu=3, sigma=sd_y**2)
        priors["sigma_e2"] = Prior("HalfStudentT", nu=3, sigma=sd_y**2)
    return priors


def choose_parametrization(
    priors: Mapping[str, PriorLike] | str | None,
    parametrization: str | None,
    variance_names: tuple[str, ...],
) -> str:
    """The parametrization asked for, or the one that the names in ``priors`` imply.

    Parameters
    ----------
    priors
        The user's ``priors=``.
    parametrization
        ``"h2"``, ``"variance"``, or None: ``"variance"`` when ``priors`` is a dict that names
        one of ``variance_names``, else ``"h2"``.
    variance_names
        The family's names that exist only in its variance parametrization.

    Raises
    ------
    InputError
        If ``parametrization`` is neither ``"h2"`` nor ``"variance"``.
    """
    if parametrization is None:
        named = set(priors) if isinstance(priors, Mapping) else set()
        parametrization = "variance" if named & set(variance_names) else "h2"
    if parametrization not in ("h2", "variance"):
        raise InputError(f"parametrization must be 'h2' or 'variance', got {parametrization!r}.")
    return parametrization


def resolve(
    priors: Mapping[str, PriorLike] | str | None,
    table: Mapping[str, Parameter],
    *,
    model: str,
    hints: Mapping[str, str] | None = None,
) -> dict[str, PriorLike]:
    """Merge the user's priors into a family's defaults and check every one: the one resolver.

    Parameters
    ----------
    priors
        The user's ``priors=``: None or ``"default"`` (the defaults), ``"flat"`` (each
        parameter's ``flat`` prior, where the family offers them all), or a mapping from
        parameter name to a :class:`Prior` or a PyMC ``.dist()`` variable, merged into the
        defaults.
    table
        The family's parameters, ``{name: Parameter}``, in the order its model creates them.
    model
        The model in words, for messages (``"the Gaussian LMM ('h2' parametrization)"``).
    hints
        For names that users plausibly give but that are not parameters of this model, what to
        do instead (``{"sigma_g2": "priors on sigma_g2/sigma_e2 need parametrization=..."}``).

    Returns
    -------
    dict
        The prior of every parameter of ``table``, in its order.

    Raises
    ------
    InputError
        A preset the family does not offer, an unknown name (with its hint), or a prior of the
        wrong type, shape or support (:func:`check_prior`).
    """
    user: dict[Any, Any] = {}
    base = {name: parameter.default for name, parameter in table.items()}
    if isinstance(priors, str):
        if priors not in PRESETS:
            raise InputError(f"priors must be a dict, 'default' or 'flat', got {priors!r}.")
        if priors == "flat":
            if any(parameter.flat is None for parameter in table.values()):
                raise InputError(
                    f"priors='flat' is not available for {model}; pass a dict of priors or "
                    "'default'."
                )
            base = {name: parameter.flat for name, parameter in table.items()}
    elif isinstance(priors, Mapping):
        user = dict(priors)
    elif priors is not None:
        raise InputError(
            f"priors must be a dict, 'default' or 'flat', got {type(priors).__name__}."
        )
    unknown = sorted(set(user) - set(table), key=str)
    if unknown:
        notes = dict.fromkeys((hints or {})[name] for name in unknown if name in (hints or {}))
        raise InputError(
            f"unknown prior(s) {unknown} for {model}; allowed: {sorted(table)}"
            + "".join(f"; {note}" for note in notes)
            + "."
        )
    merged = {name: user.get(name, base[name]) for name in table}
    check_priors(merged, table)
    return merged


def gaussian_parameters(parametrization: str, y: np.ndarray, X: np.ndarray) -> dict[str, Parameter]:
    """The parameter table of the Gaussian LMM (kinship and SNP forms), defaults from the data.

    ``priors="flat"`` is offered for the ``"h2"`` parametrization: flat β, Jeffreys σp and
    h² ~ Beta(1, 1), the priors of the exact 1-D check (DESIGN §1).
    """
    defaults = default_priors(parametrization, y, X)
    if parametrization == "h2":
        return {
            "beta": Parameter(defaults["beta"], REAL, (X.shape[1],), flat=Prior("Flat")),
            "h2": Parameter(defaults["h2"], UNIT, flat=Prior("Beta", alpha=1, beta=1)),
            "sigma_p": Parameter(defaults["sigma_p"], POSITIVE, flat=Prior("Jeffreys")),
        }
    return {
        "beta": Parameter(defaults["beta"], REAL, (X.shape[1],)),
        "sigma_g2": Parameter(defaults["sigma_g2"], POSITIVE),
        "sigma_e2": Parameter(defaults["sigma_e2"], POSITIVE),
    }


#: Hints for the names of the other parametrization of the Gaussian LMM.
PARAMETRIZATION_HINTS = {
    **dict.fromkeys(
        ("sigma_g2", "sigma_e2"), "priors on sigma_g2/sigma_e2 need parametrization='variance'"
    ),
    **dict.fromkeys(("h2", "sigma_p"), "priors on h2/sigma_p need parametrization='h2'"),
}


def resolve_priors(
    priors: Mapping[str, PriorLike] | str | None,
    parametrization: str | None,
    y: np.ndarray,
    X: np.ndarray,
) -> tuple[str, dict[str, PriorLike]]:
    """The priors of the Gaussian LMM: :func:`resolve` on :func:`gaussian_parameters`.

    Parameters
    ----------
    priors
        None, ``"default"``, ``"flat"``, or a mapping from parameter name to a :class:`Prior`
        or a PyMC ``.dist()`` variable.
    parametrization
        ``"h2"``, ``"variance"``, or None to infer it from the keys of ``priors`` (any of
        ``sigma_g2``/``sigma_e2`` selects ``"variance"``).
    y, X
        Phenotype [shape: (n_samples,)] and covariates with intercept
        [shape: (n_samples, n_covariates)]: the defaults scale with them.

    Returns
    -------
    parametrization : str
    priors : dict
    """
    parametrization = choose_parametrization(priors, parametrization, ("sigma_g2", "sigma_e2"))
    table = gaussian_parameters(parametrization, y, X)
    model = f"the Gaussian LMM ('{parametrization}' parametrization)"
    return parametrization, resolve(priors, table, model=model, hints=PARAMETRIZATION_HINTS)


def add_prior(name: str, prior: PriorLike, *, dims: str | None = None) -> pt.TensorVariable:
    """Create the random variable for a prior in the model on the context stack."""
    if isinstance(prior, Prior):
        return prior.create(name, dims=dims)
    model = pm.modelcontext(None)
    return model.register_rv(prior, name, dims=dims)
