"""The maximum a posteriori point of a model, found in whitened coordinates.

PyMC's ``find_MAP`` runs L-BFGS on the model's own coordinates, so its answer depends on the
units of the data: a phenotype in µL⁻¹ or in mm, a covariate given as a date (a mean of 1e6 with
an SD of 10) make the curvature along β differ by many orders of magnitude from that along
logit h², and the optimizer stops at different points. Here the optimization runs in
coordinates in which the starting curvature is the identity, which makes the point found the
same for data that differ by units and offsets (DESIGN §1, "Units and offsets").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pymc as pm
from pymc.blocking import DictToArrayBijection, RaveledVars
from pymc.util import get_default_varnames
from scipy import linalg, optimize

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.errors import ConvergenceError, InputError
from bayeslmm.families.base import ModelInfo, info_of
from bayeslmm.inference.ep import EPFit, ep_fit

#: Largest number of free coordinates whitened by the starting Hessian (above: no scaling).
MAX_WHITENED = 200
#: Gradient norm (in whitened coordinates) at which the optimization stops.
GTOL = 1e-9
MAX_ITER = 2000
#: Relative step of the finite-difference Hessian.
FD_STEP = 1e-4
#: Bounds on the liability-scale h² of the probit model's EP fit (a marginal likelihood
#: that keeps rising towards h² = 0, common in small samples, stops at the lower one).
PROBIT_H2_MIN, PROBIT_H2_MAX = 1e-8, 1.0 - 1e-6
#: Gradient norm (whitened coordinates) at which the probit fit stops: 1e-7 posterior SDs from
#: the mode is far below anything a prediction sees, and each evaluation is an EP fit.
PROBIT_GTOL = 1e-7


def whitening(hessian: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor L of a positive-definite Hessian (None if it is not one).

    Parameters
    ----------
    hessian : ndarray
        Hessian of the negative log-density [shape: (k, k)].

    Returns
    -------
    ndarray or None
        L with L L' = hessian [shape: (k, k)].
    """
    sym = 0.5 * (hessian + hessian.T)
    if not np.all(np.isfinite(sym)):
        return None
    try:
        return linalg.cholesky(sym, lower=True)
    except linalg.LinAlgError:
        return None


def hessian_fd(gradient: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Hessian by central differences of the gradient (exact where the gradient is linear).

    Parameters
    ----------
    gradient : callable
        x -> gradient of the function [shape: (n,)].
    x : ndarray
        Point [shape: (n,)].

    Returns
    -------
    ndarray
        Symmetrized Hessian [shape: (n, n)]; 2n gradient evaluations (cheaper here than
        compiling the Hessian graph, ~3 s).
    """
    n = x.size
    hessian = np.empty((n, n))
    for i in range(n):
        step = FD_STEP * max(1.0, abs(x[i]))
        e = np.zeros(n)
        e[i] = step
        hessian[:, i] = (gradient(x + e) - gradient(x - e)) / (2 * step)
    return 0.5 * (hessian + hessian.T)


def transform(hessian: np.ndarray, real: np.ndarray) -> np.ndarray:
    """T with x = x0 + T z such that the curvature in z at the start is (close to) the identity.

    Parameters
    ----------
    hessian : ndarray
        Hessian of the negative log-density at the start [shape: (n, n)].
    real : ndarray of int
        Positions of the untransformed (real-line) coordinates.

    Returns
    -------
    ndarray
        [shape: (n, n)]. The inverse transposed Cholesky factor of the whole Hessian where it is
        positive definite; otherwise that of the real-line block (positive definite for β in a
        Gaussian model) and 1/sqrt|H_ii| on the other coordinates (1 where H_ii is 0).
    """
    n = hessian.shape[0]
    L = whitening(hessian)
    if L is not None:
        return linalg.solve_triangular(L.T, np.eye(n))
    diag = np.abs(np.diag(hessian))
    T = np.diag(np.where(np.isfinite(diag) & (diag > 0), 1.0 / np.sqrt(diag), 1.0))
    block = whitening(hessian[np.ix_(real, real)]) if real.size else None
    if block is not None:
        T[np.ix_(real, real)] = linalg.solve_triangular(block.T, np.eye(real.size))
    return T


def map_point(model: pm.Model) -> dict[str, np.ndarray]:
    r"""The MAP point of ``model``: the values of its free variables (transformed space).

    Parameters
    ----------
    model : pymc.Model
        A model with continuous free variables only.

    Returns
    -------
    dict
        Value-variable name -> value at the maximum of the log-density (without Jacobians: the
        mode in the variables' own space, as ``pymc.find_MAP``).

    Raises
    ------
    ConvergenceError
        When the optimizer stops without reaching a point where the gradient vanishes.

    Notes
    -----
    Start at the model's initial point :math:`x_0` (the priors' support points, as
    ``find_MAP``), take the Hessian :math:`H_0` of :math:`-\log p` there (central differences
    of the gradient, :func:`hessian_fd`) and optimize over :math:`z = L^\top (x - x_0)` with
    :math:`L L^\top = H_0` (:func:`transform`; where :math:`H_0` is not positive definite,
    only the block of the real-line variables, β, is whitened — for fixed variance components
    :math:`-\log p` is a positive-definite quadratic in β — and the others are scaled by their
    curvature). An affine change of the data (y → a·y + b, a covariate moved or rescaled) maps
    :math:`x_0` and :math:`H_0` along with the mode when the priors follow the data (the
    defaults do), so the iterates in :math:`z` are the same: the answer does not depend on
    units or offsets. The stopping rule is a gradient norm in :math:`z` (invariant), not a
    relative change of :math:`\log p` (which shifts with the units).

    The probit model (``kinship_model(..., family="probit")``) has no interior joint mode in
    (β, h², z): maximizing over the latent genetic values drives h² to 1. Its point is
    instead an empirical-Bayes fit with z integrated out, :func:`probit_point`.
    """
    info = _bayeslmm_info(model)
    if info is not None and info.family == "probit":
        return probit_point(model, info)
    variables = model.continuous_value_vars
    if len(variables) != len(model.value_vars):
        raise ConvergenceError("map_estimate needs a model whose free variables are continuous.")
    start = model.initial_point()
    x0 = DictToArrayBijection.map({v.name: start[v.name] for v in variables})
    rvs = [model.values_to_rvs[v] for v in variables]
    logp = model.compile_logp(jacobian=False)
    dlogp = model.compile_dlogp(vars=rvs, jacobian=False)

    def point(x: np.ndarray) -> dict[str, np.ndarray]:
        return DictToArrayBijection.rmap(RaveledVars(x, x0.point_map_info))

    # whiten the untransformed block (β and other real-line variables)
    sizes = [int(np.prod(start[v.name].shape, dtype=int)) for v in variables]
    offsets = np.cumsum([0, *sizes])
    real = np.concatenate(
        [
            np.arange(offsets[k], offsets[k + 1])
            for k, v in enumerate(variables)
            if model.rvs_to_transforms.get(model.values_to_rvs[v]) is None
        ]
        or [np.zeros(0, int)]
    ).astype(int)
    n = x0.data.size
    T = np.eye(n)  # x = x0 + T z
    if 0 < n <= MAX_WHITENED:
        T = transform(hessian_fd(lambda x: -np.asarray(dlogp(point(x)), float), x0.data), real)

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        p = point(x0.data + T @ z)
        value = -float(logp(p))
        if not np.isfinite(value):
            return np.inf, np.zeros_like(z)
        return value, -(T.T @ np.asarray(dlogp(p)))

    result = optimize.minimize(
        objective,
        np.zeros(n),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": MAX_ITER, "gtol": GTOL, "ftol": 0.0, "maxcor": 20},
    )
    gradient = np.abs(result.jac).max() if n else 0.0
    if not np.isfinite(result.fun) or gradient > 1e-4:
        raise ConvergenceError(
            f"map_estimate stopped without converging ({result.message}; largest gradient "
            f"{gradient:.2g} in whitened coordinates). Check the priors and the data, or use "
            "bl.sample for the full posterior."
        )
    return point(x0.data + T @ result.x)


def map_values(model: pm.Model, point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every free variable (constrained) and deterministic of ``model`` at ``point``.

    Parameters
    ----------
    model : pymc.Model
    point : dict
        Value-variable name -> value (transformed space), from :func:`map_point`.

    Returns
    -------
    dict
        Variable name -> value, without the transformed copies.
    """
    names = get_default_varnames(model.unobserved_value_vars, include_transformed=False)
    outputs = model.compile_fn(names, inputs=model.value_vars, on_unused_input="ignore")(point)
    return {var.name: np.asarray(value) for var, value in zip(names, outputs, strict=True)}


def _support_end(inside: Callable[[float], bool], start: float, end: float) -> float:
    """The point nearest ``end`` of the interval from ``start`` (inside) where ``inside`` holds.

    ``end`` itself when it is inside; otherwise bisection (60 halvings) to the last inside point.
    """
    if inside(end):
        return end
    good, bad = start, end
    for _ in range(60):
        middle = 0.5 * (good + bad)
        good, bad = (middle, bad) if inside(middle) else (good, middle)
    return good


def _bayeslmm_info(model: pm.Model) -> ModelInfo | None:
    """The ModelInfo of a model built by bayeslmm, None for another PyMC model."""
    try:
        return info_of(model)
    except InputError:
        return None


def probit_point(model: pm.Model, info: ModelInfo) -> dict[str, np.ndarray]:
    r"""The probit model's point: mode of (β, h²) with z integrated out (EP), and E_q[z].

    Parameters
    ----------
    model : pymc.Model
        From ``kinship_model(y01, K, X, family="probit")``.
    info : ModelInfo
        Its :func:`~bayeslmm.families.base.info_of`.

    Returns
    -------
    dict
        Value-variable name -> value (transformed space), as :func:`map_point`: ``beta``, the
        transformed h² (or σg²) and ``z``, the mean of z under the EP posterior at them.

    Raises
    ------
    ConvergenceError
        When the optimizer stops without reaching a point where the gradient vanishes.

    Notes
    -----
    With :math:`\log Z(y \mid \beta, \sigma_g^2)` the expectation-propagation approximation
    of the marginal likelihood (:func:`bayeslmm.inference.ep.ep_fit`), this maximizes

    .. math::

        \log Z(y \mid \beta, \sigma_g^2) + \log p(\beta) + \log p(h^2)
        \quad(\text{or } \log p(\sigma_g^2)),\qquad \sigma_g^2 = h^2 / (1 - h^2),

    the priors' densities of the constrained values without Jacobian (as :func:`map_point`),
    by L-BFGS-B with the exact gradient over β, whitened by its curvature at the start (so
    that the optimizer's path does not depend on the covariates' units), and h² in
    [:data:`PROBIT_H2_MIN`, :data:`PROBIT_H2_MAX`] (narrowed to the support of its prior,
    e.g. a Uniform(0, 0.3)), scaled by its curvature. h² itself is the
    coordinate, not logit h²: the marginal likelihood is often largest at h² = 0 in small
    samples, where the gradient in logit h² vanishes and an optimizer would stop anywhere on
    the way. z is :math:`E_q[z] = A^\top b` (so that u = Az is E_q[u]).

    This is the empirical-Bayes fit of GLMM software (lme4's ``glmer``, the binary-trait REML
    approximations) with EP in place of their Laplace approximation, which overstates the
    marginal likelihood where σg² is large (on a simulated N = 150 cohort, +8.3 nats from
    h² = 0.5 to 0.98 where the exact orthant probability falls by 4.6; its fit ran to
    h² = 0.98 where EP's stays near 0.5).
    """
    import pytensor
    import pytensor.tensor as pt

    data, spectral = info.data, info.spectral
    y, X, U, s = data.y, data.X, spectral.U, spectral.s
    d = X.shape[1]
    scale = "h2" if info.parametrization == "h2" else "sigma_g2"
    beta_rv, scale_rv = model["beta"], model[scale]
    start = map_values(model, model.initial_point())
    b_in, p_in = pt.dvector("beta"), pt.dscalar(scale)
    log_prior = pm.logp(beta_rv, b_in).sum() + pm.logp(scale_rv, p_in)
    prior = pytensor.function(
        [b_in, p_in], [log_prior, *pt.grad(log_prior, [b_in, p_in])], on_unused_input="ignore"
    )
    previous: list[EPFit] = []

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        """−(log q + log prior) and its gradient in (β, h²)."""
        beta, h2 = x[:d], float(x[d])
        sigma_g2 = h2 / (1.0 - h2)
        lp, g_beta, g_value = prior(beta, h2 if scale == "h2" else sigma_g2)
        if not np.isfinite(lp):
            return np.inf, np.zeros_like(x)
        sites = (previous[-1].tau, previous[-1].nu) if previous else None
        mode = ep_fit(y, X, U, s, beta, np.log(sigma_g2), sites)
        previous[:] = [mode]
        d_sigma = 1.0 / (1.0 - h2) ** 2  # dσg²/dh²
        d_h2 = mode.gradient[d] / sigma_g2 * d_sigma  # ∂/∂t = σg² ∂/∂σg²
        d_h2 += float(g_value) * (1.0 if scale == "h2" else d_sigma)
        grad = np.append(mode.gradient[:d] + g_beta, d_h2)
        return -(mode.log_marginal + float(lp)), -grad

    x0 = np.append(np.asarray(start["beta"], float), float(start["h2"]))
    x0[d] = np.clip(x0[d], PROBIT_H2_MIN, PROBIT_H2_MAX)

    def in_support(h2: float) -> bool:
        value = h2 if scale == "h2" else h2 / (1.0 - h2)
        return bool(np.isfinite(prior(x0[:d], value)[0]))

    low, high = (_support_end(in_support, x0[d], end) for end in (PROBIT_H2_MIN, PROBIT_H2_MAX))
    # central differences in coordinates of unit scale: β_j in SDs of x_j (a step of 1e-4 in
    # a covariate's own units can move Xβ by 100 where x_j is a date)
    spread = np.std(X, axis=0)
    scales = np.append(np.where(spread > 0, 1.0 / np.where(spread > 0, spread, 1.0), 1.0), 1.0)
    hessian = hessian_fd(lambda w: scales * negative(x0 + scales * w)[1], np.zeros(d + 1))
    hessian = hessian / np.outer(scales, scales)
    T = np.eye(d + 1)  # x = x0 + T w: β whitened, h² scaled (its box bound stays a box)
    block = whitening(hessian[:d, :d])
    if block is not None:
        T[:d, :d] = linalg.solve_triangular(block.T, np.eye(d))
    if np.isfinite(hessian[d, d]) and hessian[d, d] > 0:
        T[d, d] = 1.0 / np.sqrt(hessian[d, d])
    bounds = [(None, None)] * d + [((low - x0[d]) / T[d, d], (high - x0[d]) / T[d, d])]

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = negative(x0 + T @ w)
        return value, T.T @ grad

    result = optimize.minimize(
        objective,
        np.zeros(d + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": MAX_ITER, "gtol": PROBIT_GTOL, "ftol": 0.0, "maxcor": 20},
    )
    w = result.x
    projected = np.array(result.jac, dtype=float)
    lower, upper = bounds[d]
    if (w[d] <= lower + 1e-12 and projected[d] > 0) or (w[d] >= upper - 1e-12 and projected[d] < 0):
        projected[d] = 0.0  # at a bound, pushing outwards: a boundary maximum
    gradient = np.abs(projected).max()
    if not np.isfinite(result.fun) or gradient > 1e-4:
        raise ConvergenceError(
            f"map_estimate of the probit model (EP fit of beta and h2) stopped without "
            f"converging ({result.message}; largest gradient {gradient:.2g} in whitened "
            "coordinates). Check the priors and the data, or use bl.sample for the full "
            "posterior."
        )
    x = x0 + T @ w
    h2 = float(np.clip(x[d], PROBIT_H2_MIN, PROBIT_H2_MAX))
    sigma_g2 = h2 / (1.0 - h2)
    fit = ep_fit(y, X, U, s, x[:d], np.log(sigma_g2), (previous[-1].tau, previous[-1].nu))
    z = np.sqrt(sigma_g2 * s) * (U.T @ fit.b)  # E_q[z] = A'b
    value = h2 if scale == "h2" else sigma_g2
    transform = model.rvs_to_transforms.get(scale_rv)
    if transform is not None:
        value = transform.forward(pt.constant(value), *scale_rv.owner.inputs).eval()
    point = {}
    for var in model.value_vars:
        rv = model.values_to_rvs[var]
        if rv is beta_rv:
            point[var.name] = np.asarray(x[:d], dtype=float)
        elif rv is scale_rv:
            point[var.name] = np.asarray(value, dtype=float)
        else:
            point[var.name] = z
    return point
