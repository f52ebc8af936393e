"""Compile a PyMC model for nutpie from PyTensor's disk-cached numba functions.

``nutpie.compile_pymc_model`` wraps PyTensor's numba log-density in a numba ``cfunc`` that
numba cannot cache, so every new process pays 10–20 s of compilation before the first draw
(measured at N = 2,000, where sampling itself takes a second). Here the log-density + gradient
and the "expand" function (all named variables from the unconstrained point) are compiled by
PyTensor's numba backend, whose functions are cached on disk (``~/.pytensor``), and wrapped in
numba C functions (``cfunc(cache=True)``, keyed by PyTensor's own cache key, so they are cached
beside them) that nutpie calls from its sampling threads without Python: a fresh process loads
a model whose structure it has seen before in about a second, and the chains run in parallel.
The data arrays reach the C functions through a table of addresses and shapes.

Every data-dependent number (``pm.Data``) becomes an explicit argument of the compiled
functions, so one compilation serves every model of the same structure: a refit to another
phenotype or a LOCO kinship passes new arrays and compiles nothing.

The C path uses two things that are not public API: PyTensor's numba source cache
(``pytensor.link.numba.cache``; PyMC 6.4 pins PyTensor to 3.3.x) and nutpie's
``CompiledPyMCModel`` fields (bayeslmm pins nutpie to 0.16.x). Where either is missing the
same numba functions are handed to nutpie as Python callables
(``nutpie.compiled_pyfunc.from_pyfunc``): the same draws, ~50 µs of Python per gradient, one
thread at a time. The tests run both paths and compare them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
from numba.core import cgutils, types
from numba.core.errors import NumbaPerformanceWarning
from pytensor.graph.replace import clone_replace

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)

try:  # PyTensor internals of the C path (see the module docstring); the Python path without
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src
except ImportError:  # pragma: no cover - a PyTensor other than 3.3.x
    CACHED_SRC_FUNCTIONS = compile_numba_function_src = None

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


#: C signatures nutpie calls: logp(n_dim, x, gradient out, log-density out, table) and
#: expand(n_dim, n_expanded, x, values out, table) -> status (0 = ok).
LOGP_SIGNATURE = types.int64(
    types.uint64,
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.CPointer(types.int64),
)
EXPAND_SIGNATURE = types.int64(
    types.uint64,
    types.uint64,
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.CPointer(types.int64),
)

#: Part of the cache key of the C functions: raise it when their source template changes.
_CFUNC_VERSION = 2

_LOGP_SOURCE = """
def bayeslmm_logp(dim, x_, out_, logp_, table):
    if dim != {n_dim}:
        return -1
    try:
        x = carray(x_, ({n_dim},))
{unpack}
        value, grad = inner(x, {args})
        logp_[0] = value{item}
        for i in range({n_dim}):
            out_[i] = grad[i]
        for i in range({n_dim}):
            if not np.isfinite(grad[i]):
                return 3
        if not np.isfinite(logp_[0]):
            return 4
    except Exception:  # noqa: BLE001
        return 1
    return 0
"""

_EXPAND_SOURCE = """
def bayeslmm_expand(dim, n_expanded, x_, out_, table):
    if dim != {n_dim} or n_expanded != {n_expanded}:
        return -1
    try:
        x = carray(x_, ({n_dim},))
{unpack}
        values = inner(x, {args})
{store}
    except Exception:  # noqa: BLE001
        return -2
    return 0
"""


@numba.extending.intrinsic
def _as_pointer(typingctx: Any, address: Any) -> Any:
    """The integer ``address`` as a void pointer (to view an array whose address is data)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


def _unpack_lines(args: tuple[np.ndarray, ...], pos: int) -> tuple[list[str], list[str]]:
    """Source lines that view each argument from the table: [address, shape...] per array.

    ``pos`` is where the first argument's entry starts in the table.
    """
    lines, names = [], []
    for k, arg in enumerate(args):
        shape = ", ".join(f"table[{pos + 1 + i}]" for i in range(arg.ndim))
        shape = f"({shape},)" if arg.ndim == 1 else f"({shape})"
        lines.append(
            f"        a{k} = carray(_as_pointer(table[{pos}]), {shape}, np.{arg.dtype.name})"
        )
        names.append(f"a{k}")
        pos += 1 + arg.ndim
    return lines, names


def _table(args: tuple[np.ndarray, ...]) -> np.ndarray:
    """The int64 table the C functions read their arguments from (addresses and shapes).

    The arrays must outlive the table: the caller keeps them.
    """
    entries: list[int] = []
    for arg in args:
        entries += [arg.ctypes.data, *arg.shape]
    return np.array(entries or [0], dtype=np.int64)


def _cfunc(source: str, name: str, inner: Any, signature: Any) -> Any:
    """Compile ``source`` as a numba ``cfunc`` calling ``inner``, cached on disk with it."""
    inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func, "")
    key = hashlib.sha256(f"{_CFUNC_VERSION}\n{inner_key}\n{source}".encode()).hexdigest()
    env = {"__name__": __name__, "carray": numba.carray, "np": np, "inner": inner}
    env["_as_pointer"] = _as_pointer  # (__name__: numba rebuilds a cached environment from it)
    function = compile_numba_function_src(
        source, name, env, cache_key=f"bayeslmm_{key}" if inner_key else None
    )
    with quiet_numba():
        return numba.cfunc(signature, cache=bool(inner_key))(function)


def _as_arrays(values: tuple[Any, ...]) -> tuple[np.ndarray, ...] | None:
    """C-contiguous arrays of ``values``, or None where one is not an array (no C path)."""
    if not all(isinstance(v, np.ndarray) for v in values):
        return None
    return tuple(np.asarray(v, order="C") for v in values)  # (ascontiguousarray: 0-d → 1-d)


def _compile_cfuncs(
    n_dim: int,
    logp: Any,
    expand: Any,
    logp_args: tuple[np.ndarray, ...],
    expand_args: tuple[np.ndarray, ...],
    out_values: list[Any],
    logp_value: Any,
) -> tuple[Any, Any] | None:
    """C functions for nutpie around the numba ``logp`` and ``expand``, or None if unsupported.

    The wrappers only move numbers: x and the data (read from a table of addresses and shapes)
    in, the log-density, gradient and expanded values out; they call the same compiled
    functions as the Python path, so values are identical.
    """
    if compile_numba_function_src is None:  # pragma: no cover - see the import
        return None
    unpack, names = _unpack_lines(logp_args, 0)
    item = "[()]" if isinstance(logp_value, np.ndarray) else ""
    logp_src = _LOGP_SOURCE.format(
        n_dim=n_dim, unpack="\n".join(unpack), args=", ".join(names), item=item
    )
    # one table for both (nutpie hands both functions the same pointer): expand's after logp's
    unpack, names = _unpack_lines(expand_args, sum(1 + arg.ndim for arg in logp_args))
    store, offset = [], 0
    for k, value in enumerate(out_values):
        if not isinstance(value, np.ndarray):
            return None
        size = int(value.size)
        if value.ndim == 0:
            store.append(f"        out_[{offset}] = values[{k}][()]")
        else:
            store.append(f"        flat{k} = np.ascontiguousarray(values[{k}]).ravel()")
            store.append(f"        for i in range({size}):")
            store.append(f"            out_[{offset} + i] = flat{k}[i]")
        offset += size
    expand_src = _EXPAND_SOURCE.format(
        n_dim=n_dim,
        n_expanded=offset,
        unpack="\n".join(unpack),
        args=", ".join(names),
        store="\n".join(store),
    )
    return (
        _cfunc(logp_src, "bayeslmm_logp", logp, LOGP_SIGNATURE),
        _cfunc(expand_src, "bayeslmm_expand", expand, EXPAND_SIGNATURE),
    )


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
    cfuncs : tuple or None
        numba C functions (log-density + gradient, expand) around ``logp`` and ``expand``
        that nutpie calls without Python (see :func:`nutpie_model`); None where an argument
        is not an array.
    """

    n_dim: int
    logp: Callable[..., Any]
    expand: Callable[..., Any]
    data_names: tuple[str, ...]
    logp_shared: tuple[Any, ...]
    expand_shared: tuple[Any, ...]
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    cfuncs: tuple[Any, Any] | None = None


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
        logp_value, _ = logp_fn.vm.jit_fn(x0, *data, *shared(logp_fn))
        out_values = list(expand_fn.vm.jit_fn(x0, *data, *shared(expand_fn)))
    logp_args = _as_arrays((*data, *shared(logp_fn)))
    expand_args = _as_arrays((*data, *shared(expand_fn)))
    cfuncs = None
    if logp_args is not None and expand_args is not None:
        cfuncs = _compile_cfuncs(
            sum(sizes),
            logp_fn.vm.jit_fn,
            expand_fn.vm.jit_fn,
            logp_args,
            expand_args,
            out_values,
            logp_value,
        )
    return Functions(
        n_dim=sum(sizes),
        logp=logp_fn.vm.jit_fn,
        expand=expand_fn.vm.jit_fn,
        data_names=tuple(v.name for v in data_vars),
        logp_shared=shared(logp_fn),
        expand_shared=shared(expand_fn),
        names=tuple(free_names + [v.name for v in rest]),
        shapes=tuple(tuple(np.shape(v)) for v in out_values),
        cfuncs=cfuncs,
    )


def nutpie_model(
    functions: Functions,
    model: pm.Model,
    initial_point: Callable[[Any], np.ndarray],
    *,
    python: bool = False,
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
    python : bool
        Call the numba functions through Python (``nutpie.compiled_pyfunc``) even where the
        C functions exist (the reference path of the tests).

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel or nutpie.compiled_pyfunc.PyFuncModel
        To pass to ``nutpie.sample``: the C functions, which nutpie calls from its sampling
        threads without Python, or (``python=True`` or no C functions) Python callables.

    Notes
    -----
    Both call the same compiled log-density, so the draws for a seed are the same.
    """
    data = tuple(np.asarray(model[name].get_value(), order="C") for name in functions.data_names)
    coords = {name: pd.Index(values) for name, values in model.coords.items() if values is not None}
    dims = {
        name: tuple(dim)
        for name, dim in model.named_vars_to_dims.items()
        if name in functions.names and all(d in coords for d in dim)
    }
    if functions.cfuncs is not None and not python:
        return _c_model(functions, data, coords, dims, initial_point)
    return _python_model(functions, data, coords, dims, initial_point)


def _c_model(
    functions: Functions,
    data: tuple[np.ndarray, ...],
    coords: dict[str, pd.Index],
    dims: dict[str, tuple[str, ...]],
    initial_point: Callable[[Any], np.ndarray],
) -> Any:
    """The nutpie compiled-model object around :attr:`Functions.cfuncs` and ``data``."""
    from nutpie.compile_pymc import CompiledPyMCModel

    logp_args = _as_arrays((*data, *functions.logp_shared))
    expand_args = _as_arrays((*data, *functions.expand_shared))
    assert logp_args is not None and expand_args is not None  # as when the cfuncs were made
    table = _table(logp_args + expand_args)
    names, shapes = list(functions.names), [tuple(shape) for shape in functions.shapes]
    n_expanded = int(sum(np.prod(shape, dtype=int) for shape in shapes))
    logp_cfunc, expand_cfunc = functions.cfuncs
    return CompiledPyMCModel(
        dims=dims,
        compiled_logp_func=logp_cfunc,
        compiled_expand_func=expand_cfunc,
        initial_point_func=initial_point,
        # the arrays whose addresses the tables hold: kept alive with the model object
        shared_data={f"arg{k}": arg for k, arg in enumerate(logp_args + expand_args)},
        shared_var_keys={},
        user_data=table,
        n_expanded=n_expanded,
        shape_info=(names, None, shapes),
        logp_func=None,
        expand_func=None,
        _n_dim=functions.n_dim,
        _shapes=dict(zip(names, shapes, strict=True)),
        _coords=coords,
    )


def _python_model(
    functions: Functions,
    data: tuple[np.ndarray, ...],
    coords: dict[str, pd.Index],
    dims: dict[str, tuple[str, ...]],
    initial_point: Callable[[Any], np.ndarray],
) -> Any:
    """The nutpie Python-callable model around the numba functions (one thread at a time)."""
    from nutpie.compiled_pyfunc import from_pyfunc

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
