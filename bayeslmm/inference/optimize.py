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
from bayeslmm.errors import ConvergenceError

#: Largest number of free coordinates whitened by the starting Hessian (above: no scaling).
MAX_WHITENED = 200
#: Gradient norm (in whitened coordinates) at which the optimization stops.
GTOL = 1e-9
MAX_ITER = 2000
#: Relative step of the finite-difference Hessian.
FD_STEP = 1e-4


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
    """
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
