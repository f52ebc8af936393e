"""Compile a PyMC model for nutpie from PyTensor's disk-cached numba functions.

``nutpie.compile_pymc_model`` wraps PyTensor's numba log-density in a numba ``cfunc`` that
numba cannot cache, so every new process pays 10–20 s of compilation before the first draw
(measured at N = 2,000, where sampling itself takes a second). Here the log-density + gradient
and the "expand" function (all named variables from the unconstrained point) are compiled by
PyTensor's numba backend, whose functions are cached on disk (``~/.pytensor``), and handed to
nutpie as Python callables (``nutpie.compiled_pyfunc.from_pyfunc``). A fresh process then
compiles a model whose structure it has seen before in ~2 s; each gradient costs ~50 µs more
(the call from nutpie into Python), which at our models' few thousand gradients per chain is
far less than the compilation it saves. :func:`bayeslmm.inference.sample` takes this path for
models with few parameters only (see ``inference._compiled_nutpie``).

Every data-dependent number (``pm.Data``) becomes an explicit argument of the compiled
functions, so one compilation serves every model of the same structure: a refit to another
phenotype or a LOCO kinship passes new arrays and compiles nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
from numba.core.errors import NumbaPerformanceWarning
from pytensor.graph.replace import clone_replace

FLOAT = np.dtype("float64")


@contextlib.contextmanager
def quiet_numba() -> Iterator[None]:
    """Compile without numba's NumbaPerformanceWarning.

    numba's hint that PyTensor's generated code calls np.dot on non-contiguous views is
    nothing a user can act on (and fails a test run under ``filterwarnings = error``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        yield


@dataclasses.dataclass(frozen=True)
class Functions:
    """The compiled log-density + gradient and expand functions of one model structure.

    Attributes
    ----------
    n_dim : int
        Length of the unconstrained parameter vector.
    logp, expand : callable
        numba functions: ``logp(x, *data, *shared) -> (log density, gradient)`` and
        ``expand(x, *data, *shared) -> values of names``.
    data_names : tuple of str
        The model's ``pm.Data`` variables, in the order the functions take them.
    logp_shared, expand_shared : tuple
        Values of the remaining shared variables (dimension lengths) of each function.
    names, shapes : tuple
        Names and shapes of the expanded variables (unconstrained values first).
    """

    n_dim: int
    logp: Callable[..., Any]
    expand: Callable[..., Any]
    data_names: tuple[str, ...]
    logp_shared: tuple[Any, ...]
    expand_shared: tuple[Any, ...]
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]


def compile_functions(model: pm.Model) -> Functions:
    """Compile ``model``'s log-density, its gradient and the expand function with numba.

    Parameters
    ----------
    model : pymc.Model
        Continuous free variables only (as NUTS needs).

    Returns
    -------
    Functions

    Notes
    -----
    The free variables' values are slices of one vector x on the unconstrained scale (the
    layout nutpie samples); the log-density is PyMC's joint log-density of that scale
    (Jacobians and potentials included), rewritten as nutpie does (canonicalize, stabilize)
    before differentiation.
    """
    value_vars = list(model.value_vars)
    point = model.initial_point()
    shapes = [tuple(np.shape(point[v.name])) for v in value_vars]
    sizes = [int(np.prod(shape, dtype=int)) for shape in shapes]
    joined = pt.vector("unconstrained_point", dtype="float64")
    parts, start = [], 0
    for var, shape, size in zip(value_vars, shapes, sizes, strict=True):
        parts.append(joined[start : start + size].reshape(shape).astype(var.dtype))
        start += size

    logp = model.logp()
    logp = pytensor.graph.rewrite_graph(logp, include=["canonicalize", "stabilize"])
    grads = pytensor.gradient.grad(logp, value_vars)
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in grads])

    data_vars = list(model.data_vars)
    data_inputs = [pt.tensor(name=v.name, dtype=v.dtype, shape=(None,) * v.ndim) for v in data_vars]
    free_names = [v.name for v in value_vars]
    rest = [v for v in model.unobserved_value_vars if v.name not in free_names]
    replace = dict(zip([*value_vars, *data_vars], [*parts, *data_inputs], strict=True))
    logp, grad, *rest_out = clone_replace([logp, grad, *rest], replace)

    inputs = [joined, *data_inputs]

    def shared(fn: Any) -> tuple[Any, ...]:
        return tuple(cell.data for cell in fn.input_storage[len(inputs) :])

    x0 = np.concatenate([np.ravel(np.asarray(point[v.name], dtype=FLOAT)) for v in value_vars])
    data = [np.asarray(v.get_value(), order="C") for v in data_vars]
    with quiet_numba():
        with model:
            logp_fn = pm.pytensorf.compile(
                inputs, [logp, grad], mode="NUMBA", on_unused_input="ignore"
            )
            expand_fn = pm.pytensorf.compile(
                inputs, [*parts, *rest_out], mode="NUMBA", on_unused_input="ignore"
            )
        # numba compiles (or loads from its cache) at the first call: do it here, not in
        # nutpie's sampling threads; the expand values give the shapes of the variables
        logp_fn.vm.jit_fn(x0, *data, *shared(logp_fn))
        out_shapes = [np.shape(v) for v in expand_fn.vm.jit_fn(x0, *data, *shared(expand_fn))]
    return Functions(
        n_dim=sum(sizes),
        logp=logp_fn.vm.jit_fn,
        expand=expand_fn.vm.jit_fn,
        data_names=tuple(v.name for v in data_vars),
        logp_shared=shared(logp_fn),
        expand_shared=shared(expand_fn),
        names=tuple(free_names + [v.name for v in rest]),
        shapes=tuple(tuple(shape) for shape in out_shapes),
    )


def nutpie_model(
    functions: Functions, model: pm.Model, initial_point: Callable[[Any], np.ndarray]
) -> Any:
    """A nutpie model object that samples ``model`` with ``functions`` and ``model``'s data.

    Parameters
    ----------
    functions : Functions
        From :func:`compile_functions` of ``model`` or of a model of the same structure.
    model : pymc.Model
        Supplies the data values, dims and coords.
    initial_point : callable
        Seed → flat unconstrained initial point.

    Returns
    -------
    nutpie.compiled_pyfunc.PyFuncModel
        To pass to ``nutpie.sample``.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    data = tuple(np.asarray(model[name].get_value(), order="C") for name in functions.data_names)
    logp_args = data + functions.logp_shared
    expand_args = data + functions.expand_shared
    names, shapes = functions.names, functions.shapes

    def make_logp() -> Callable[..., tuple[float, np.ndarray]]:
        def logp(x: np.ndarray, **_: Any) -> tuple[float, np.ndarray]:
            value, grad = functions.logp(x, *logp_args)
            return float(value), grad

        return logp

    def make_expand(seed1: int, seed2: int, chain: int) -> Callable[..., dict[str, np.ndarray]]:
        def expand(x: np.ndarray, **_: Any) -> dict[str, np.ndarray]:
            values = functions.expand(x, *expand_args)
            return {
                name: np.asarray(value, dtype=FLOAT).reshape(shape)
                for name, value, shape in zip(names, values, shapes, strict=True)
            }

        return expand

    coords = {name: pd.Index(values) for name, values in model.coords.items() if values is not None}
    dims = {
        name: tuple(dim)
        for name, dim in model.named_vars_to_dims.items()
        if name in names and all(d in coords for d in dim)
    }
    return from_pyfunc(
        ndim=functions.n_dim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        expanded_dtypes=[FLOAT] * len(names),
        expanded_shapes=list(shapes),
        expanded_names=list(names),
        coords=coords,
        dims=dims,
        make_initial_point_fn=initial_point,
    )
