r"""Many small T×T Gaussian terms at once, as one PyTensor Op with a numba kernel.

The multi-trait LMM's rotated rows are independent T-variate normals with covariance
:math:`A_i = s_i\Sigma_g + \Sigma_e`, i = 1..r. A batched ``cholesky`` and
``solve_triangular`` on an (r, T, T) tensor evaluate them, but PyTensor runs (and
differentiates) those per matrix: ~3 ms for a gradient at r = 2,000, T = 2, a hundred times
the univariate model. Written out entry by entry as elementwise graphs over the rows, the
value and gradient took ~50 elementwise nodes and 0.17 ms. Here one Op
(:class:`RowwiseGaussian`) computes both sums in one pass over the rows, and its gradient Op
(:class:`RowwiseGaussianGrad`) every derivative in another: compiled loops (numba, cached on
disk by PyTensor's numba backend), O(r·T³) each, no intermediate arrays. The derivative with
respect to s, never needed where s is data, is a node of its own, which PyTensor prunes there.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import (
    numba_njit,
    register_funcify_default_op_cache_key,
)

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any graph is built)

#: Version of the numba kernels in PyTensor's on-disk cache key: a hash of this file. (Numba's
#: cache of the Ops' wrappers does not see changes of the kernels they call: a fixed version
#: would keep running a stale kernel after an edit.)
KERNEL_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:15], 16)


def rowwise_gaussian_terms(
    s: pt.TensorVariable,
    sg: pt.TensorVariable,
    se: pt.TensorVariable,
    R: pt.TensorVariable,
    n_traits: int | None = None,
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    r"""Sum over rows of log det A_i and of r_i' A_i⁻¹ r_i, with A_i = s_i Σg + Σe.

    Parameters
    ----------
    s : TensorVariable
        Eigenvalues [shape: (r,)].
    sg, se : TensorVariable
        Σg and Σe [shape: (T, T)]; only their lower triangles are read.
    R : TensorVariable
        Residual rows [shape: (r, T)].
    n_traits : int, optional
        T, when the graph's static shape does not say it (PyMC's dims are symbolic); used
        only by second derivatives (the kernels read T from the arrays).

    Returns
    -------
    logdet : TensorVariable
        :math:`\sum_i \log|A_i|` (scalar).
    quad : TensorVariable
        :math:`\sum_i r_i^\top A_i^{-1} r_i` (scalar).

    Notes
    -----
    With :math:`A_i = L_iL_i^\top`,
    :math:`L_{jj} = (a_{jj} - \sum_{k<j} L_{jk}^2)^{1/2}`,
    :math:`L_{mj} = (a_{mj} - \sum_{k<j} L_{mk}L_{jk})/L_{jj}` (m > j), and
    :math:`z_j = (r_j - \sum_{k<j} L_{jk}z_k)/L_{jj}`; then
    :math:`\log|A_i| = 2\sum_j \log L_{jj}` and :math:`r_i^\top A_i^{-1}r_i = \sum_j z_j^2`.
    A row whose :math:`A_i` is not positive definite makes both sums NaN. The gradient
    (:class:`RowwiseGaussianGrad`), with upstream gradients :math:`g_1, g_2` of the two sums
    and :math:`\alpha_i = A_i^{-1}r_i`, is
    :math:`G_i = g_1A_i^{-1} - g_2\alpha_i\alpha_i^\top` per row, with respect to the lower
    triangle (off-diagonal entries counted twice, the upper triangle unused):
    :math:`\partial/\partial\Sigma_g = \sum_i s_iG_i`, :math:`\partial/\partial\Sigma_e =
    \sum_i G_i`, :math:`\partial/\partial s_i = \langle G_i, \Sigma_g\rangle` and
    :math:`\partial/\partial r_i = 2g_2\alpha_i`.
    """
    as_float = [pt.cast(pt.as_tensor_variable(x), "float64") for x in (s, sg, se, R)]
    T = n_traits if n_traits is not None else as_float[1].type.shape[0]
    logdet, quad = RowwiseGaussian(-1 if T is None else int(T))(*as_float)
    return logdet, quad


def _elementwise_terms(
    s: pt.TensorVariable,
    sg: pt.TensorVariable,
    se: pt.TensorVariable,
    R: pt.TensorVariable,
    T: int,
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """The same sums as PyTensor graphs (differentiable twice; for second derivatives).

    The Cholesky recursion of :func:`rowwise_gaussian_terms`' Notes written out entry by entry
    over the rows for T known, else batched ``pt.linalg``.
    """
    if T < 1:
        A = s[:, None, None] * sg[None] + se[None]
        L = pt.linalg.cholesky(A)
        Z = pt.linalg.solve_triangular(L, R[:, :, None], lower=True)
        logdet = 2.0 * pt.sum(pt.log(pt.diagonal(L, axis1=1, axis2=2)))
        return logdet, pt.sum(pt.sqr(Z))
    L: dict[tuple[int, int], pt.TensorVariable] = {}
    z: list[pt.TensorVariable] = []
    logdet = pt.zeros(())
    quad = pt.zeros(())
    for j in range(T):
        d = s * sg[j, j] + se[j, j]
        for k in range(j):
            d = d - pt.sqr(L[j, k])
        ljj = pt.sqrt(d)
        L[j, j] = ljj
        for m in range(j + 1, T):
            off = s * sg[m, j] + se[m, j]
            for k in range(j):
                off = off - L[m, k] * L[j, k]
            L[m, j] = off / ljj
        zj = R[:, j]
        for k in range(j):
            zj = zj - L[j, k] * z[k]
        zj = zj / ljj
        z.append(zj)
        logdet = logdet + pt.sum(pt.log(d))
        quad = quad + pt.sum(pt.sqr(zj))
    return logdet, quad


@numba.njit(cache=True)
def _factor(si: float, sg: np.ndarray, se: np.ndarray, r: np.ndarray, L: np.ndarray, z: np.ndarray):
    """Cholesky factor of s_i Σg + Σe into L's lower triangle, z = L⁻¹r; log|A|, or NaN."""
    T = r.shape[0]
    logdet = 0.0
    quad = 0.0
    for j in range(T):
        d = si * sg[j, j] + se[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 0.0:
            return math.nan, math.nan
        ljj = math.sqrt(d)
        L[j, j] = ljj
        for m in range(j + 1, T):
            off = si * sg[m, j] + se[m, j]
            for k in range(j):
                off -= L[m, k] * L[j, k]
            L[m, j] = off / ljj
        zj = r[j]
        for k in range(j):
            zj -= L[j, k] * z[k]
        z[j] = zj / ljj
        logdet += math.log(d)
        quad += z[j] * z[j]
    return logdet, quad


#: numba's fast-math flags of the T = 2 kernels: reassociation (vectorized sums), fused
#: multiply-add, reciprocals; not "nnan"/"ninf", so the NaN of a matrix that is not positive
#: definite still propagates and the checks below still run.
FAST = {"reassoc", "contract", "arcp", "nsz"}
#: Rows whose determinants are multiplied before one log (a product outside
#: [1e-290, 1e290] falls back to a log per row).
LOG_BLOCK = 16


@numba.njit(inline="always")
def _entries2(si, g00, g11, g10, e00, e11, e10):
    """Row i's A_i = s_iΣg + Σe for T = 2: (a, c, o) = (A₀₀, A₁₁, A₁₀) and |A_i| = ac − o²."""
    a = si * g00 + e00
    c = si * g11 + e11
    o = si * g10 + e10
    return a, c, o, a * c - o * o


@numba.njit(cache=True, fastmath=FAST)
def _forward2(s: np.ndarray, sg: np.ndarray, se: np.ndarray, R: np.ndarray):
    """T = 2 in closed form: |A| = ac − o², r'A⁻¹r = (c r₀² − 2o r₀r₁ + a r₁²)/|A|.

    One log per :data:`LOG_BLOCK` rows, of the product of their determinants (the logs
    were two thirds of the time); NaN unless every A_i is positive definite.
    """
    n = s.shape[0]
    g00, g11, g10 = sg[0, 0], sg[1, 1], sg[1, 0]
    e00, e11, e10 = se[0, 0], se[1, 1], se[1, 0]
    logdet = 0.0
    quad = 0.0
    a_min = math.inf
    det_min = math.inf
    for start in range(0, n, LOG_BLOCK):
        stop = min(start + LOG_BLOCK, n)
        product = 1.0
        for i in range(start, stop):
            a, c, o, det = _entries2(s[i], g00, g11, g10, e00, e11, e10)
            a_min = min(a_min, a)
            det_min = min(det_min, det)
            r0 = R[i, 0]
            r1 = R[i, 1]
            product *= det
            quad += (c * r0 * r0 - 2.0 * o * r0 * r1 + a * r1 * r1) / det
        if 1e-290 < product < 1e290:
            logdet += math.log(product)
        else:  # under- or overflow (or a determinant ≤ 0, caught below): one log per row
            for i in range(start, stop):
                det = _entries2(s[i], g00, g11, g10, e00, e11, e10)[3]
                logdet += math.log(det) if det > 0.0 else math.nan
    if not (a_min > 0.0 and det_min > 0.0):
        return math.nan, math.nan
    return logdet, quad


@numba.njit(cache=True, fastmath=FAST)
def _backward2(s, sg, se, R, g_logdet, g_quad):
    """:func:`rowwise_backward` for T = 2 in closed form (A⁻¹ = [[c, −o], [−o, a]]/|A|)."""
    n = s.shape[0]
    dR = np.empty((n, 2))
    g00, g11, g10 = sg[0, 0], sg[1, 1], sg[1, 0]
    e00, e11, e10 = se[0, 0], se[1, 1], se[1, 0]
    sg00 = sg11 = sg10 = se00 = se11 = se10 = 0.0
    two_q = 2.0 * g_quad
    a_min = math.inf
    det_min = math.inf
    for i in range(n):
        si = s[i]
        a, c, o, det = _entries2(si, g00, g11, g10, e00, e11, e10)
        a_min = min(a_min, a)
        det_min = min(det_min, det)
        inv = 1.0 / det
        a0 = (c * R[i, 0] - o * R[i, 1]) * inv  # α = A⁻¹r
        a1 = (a * R[i, 1] - o * R[i, 0]) * inv
        d00 = g_logdet * c * inv - g_quad * a0 * a0
        d11 = g_logdet * a * inv - g_quad * a1 * a1
        d10 = -2.0 * (g_logdet * o * inv + g_quad * a0 * a1)
        sg00 += si * d00
        sg11 += si * d11
        sg10 += si * d10
        se00 += d00
        se11 += d11
        se10 += d10
        dR[i, 0] = two_q * a0
        dR[i, 1] = two_q * a1
    dsg = np.zeros((2, 2))
    dse = np.zeros((2, 2))
    dsg[0, 0], dsg[1, 1], dsg[1, 0] = sg00, sg11, sg10
    dse[0, 0], dse[1, 1], dse[1, 0] = se00, se11, se10
    if not (a_min > 0.0 and det_min > 0.0):
        dsg[:] = math.nan
        dse[:] = math.nan
        dR[:] = math.nan
    return dsg, dse, dR


@numba.njit(cache=True)
def rowwise_forward(s: np.ndarray, sg: np.ndarray, se: np.ndarray, R: np.ndarray):
    """:func:`rowwise_gaussian_terms` on arrays: (Σ log|A_i|, Σ r_i'A_i⁻¹r_i)."""
    n, T = R.shape
    if T == 2:
        return _forward2(s, sg, se, R)
    L = np.zeros((T, T))
    z = np.empty(T)
    logdet = 0.0
    quad = 0.0
    for i in range(n):
        ld, q = _factor(s[i], sg, se, R[i], L, z)
        logdet += ld
        quad += q
    return logdet, quad


@numba.njit(cache=True)
def rowwise_backward(
    s: np.ndarray,
    sg: np.ndarray,
    se: np.ndarray,
    R: np.ndarray,
    g_logdet: float,
    g_quad: float,
):
    """Gradients (Σg, Σe, R) of g_logdet·Σ log|A_i| + g_quad·Σ r_i'A_i⁻¹r_i.

    (Those of s, rarely needed — s is data in the models — are :func:`rowwise_backward_s`.)
    """
    n, T = R.shape
    if T == 2:
        return _backward2(s, sg, se, R, g_logdet, g_quad)
    ds, dsg, dse, dR = _backward_all(s, sg, se, R, g_logdet, g_quad)
    return dsg, dse, dR


@numba.njit(cache=True)
def rowwise_backward_s(
    s: np.ndarray,
    sg: np.ndarray,
    se: np.ndarray,
    R: np.ndarray,
    g_logdet: float,
    g_quad: float,
):
    """The gradient with respect to s of the sums of :func:`rowwise_backward`."""
    return _backward_all(s, sg, se, R, g_logdet, g_quad)[0]


@numba.njit(cache=True)
def _backward_all(s, sg, se, R, g_logdet, g_quad):
    """Every gradient (s, Σg, Σe, R), by each row's Cholesky factor (any T)."""
    n, T = R.shape
    L = np.zeros((T, T))
    L_inv = np.zeros((T, T))
    z = np.empty(T)
    alpha = np.empty(T)
    ds = np.empty(n)
    dsg = np.zeros((T, T))
    dse = np.zeros((T, T))
    dR = np.empty((n, T))
    for i in range(n):
        ld, _ = _factor(s[i], sg, se, R[i], L, z)
        if math.isnan(ld):
            ds[i] = math.nan
            dR[i] = math.nan
            dsg[:] = math.nan
            dse[:] = math.nan
            continue
        for j in range(T - 1, -1, -1):  # α = L⁻ᵀz = A⁻¹r
            a = z[j]
            for k in range(j + 1, T):
                a -= L[k, j] * alpha[k]
            alpha[j] = a / L[j, j]
        for j in range(T):  # L⁻¹, lower
            L_inv[j, j] = 1.0 / L[j, j]
            for m in range(j + 1, T):
                acc = 0.0
                for k in range(j, m):
                    acc += L[m, k] * L_inv[k, j]
                L_inv[m, j] = -acc / L[m, m]
        dsi = 0.0
        for j in range(T):
            for m in range(j, T):
                a_inv = 0.0  # (A⁻¹)_mj = Σ_k≥m (L⁻¹)_km (L⁻¹)_kj
                for k in range(m, T):
                    a_inv += L_inv[k, m] * L_inv[k, j]
                g = g_logdet * a_inv - g_quad * alpha[m] * alpha[j]
                if m != j:
                    g *= 2.0
                dsg[m, j] += s[i] * g
                dse[m, j] += g
                dsi += g * sg[m, j]
            dR[i, j] = 2.0 * g_quad * alpha[j]
        ds[i] = dsi
    return ds, dsg, dse, dR


class RowwiseGaussian(Op):
    """(s, Σg, Σe, R) ↦ (Σ log|A_i|, Σ r_i'A_i⁻¹r_i), A_i = s_iΣg + Σe (float64).

    ``n_traits`` is T where known when the graph is built (-1 if not), for the second
    derivatives of :class:`RowwiseGaussianGrad`.
    """

    __props__ = ("n_traits",)

    def __init__(self, n_traits: int = -1) -> None:
        self.n_traits = n_traits

    def make_node(self, s, sg, se, R) -> Apply:  # noqa: D102
        inputs = [pt.as_tensor_variable(x) for x in (s, sg, se, R)]
        return Apply(self, inputs, [pt.dscalar(), pt.dscalar()])

    def perform(self, node, inputs, output_storage) -> None:  # noqa: D102
        logdet, quad = rowwise_forward(*(np.asarray(x, dtype=np.float64) for x in inputs))
        output_storage[0][0] = np.asarray(logdet)
        output_storage[1][0] = np.asarray(quad)

    def pullback(self, inputs, outputs, output_grads):  # noqa: D102
        grads = [pt.zeros(()) if _disconnected(g) else g for g in output_grads]
        # two nodes: the one for s (data in the models) is pruned from graphs that do not use it
        ds = RowwiseGaussianGrad(self.n_traits, "s")(*inputs, *grads)
        return [ds, *RowwiseGaussianGrad(self.n_traits, "matrices")(*inputs, *grads)]


class RowwiseGaussianGrad(Op):
    """The gradient of :class:`RowwiseGaussian`, with respect to (Σg, Σe, R) or to s.

    ``wrt="matrices"``: :func:`rowwise_backward`; ``wrt="s"``: :func:`rowwise_backward_s`
    (s is data in the models: that node is pruned from their graphs).

    Its own derivatives (Hessians, e.g. of the missing values' conditional) differentiate the
    elementwise graph of the same sums (:func:`_elementwise_terms`): slow, but exact.
    """

    __props__ = ("n_traits", "wrt")

    def __init__(self, n_traits: int = -1, wrt: str = "matrices") -> None:
        self.n_traits = n_traits
        self.wrt = wrt

    def make_node(self, s, sg, se, R, g_logdet, g_quad) -> Apply:  # noqa: D102
        inputs = [pt.as_tensor_variable(x) for x in (s, sg, se, R, g_logdet, g_quad)]
        return Apply(self, inputs, [inputs[k].type() for k in self._positions()])

    def _positions(self) -> tuple[int, ...]:
        """Positions among (s, Σg, Σe, R) of the inputs this node differentiates."""
        return (0,) if self.wrt == "s" else (1, 2, 3)

    def perform(self, node, inputs, output_storage) -> None:  # noqa: D102
        s, sg, se, R, g_logdet, g_quad = (np.asarray(x, dtype=np.float64) for x in inputs)
        if self.wrt == "s":
            out = (rowwise_backward_s(s, sg, se, R, float(g_logdet), float(g_quad)),)
        else:
            out = rowwise_backward(s, sg, se, R, float(g_logdet), float(g_quad))
        for storage, value in zip(output_storage, out, strict=True):
            storage[0] = value

    def pullback(self, inputs, outputs, output_grads):  # noqa: D102
        s, sg, se, R, g_logdet, g_quad = inputs
        logdet, quad = _elementwise_terms(s, sg, se, R, self.n_traits)
        wrt_first = [[s, sg, se, R][k] for k in self._positions()]
        first = pt.grad(g_logdet * logdet + g_quad * quad, wrt_first)
        total = sum(
            pt.sum(f * g) for f, g in zip(first, output_grads, strict=True) if not _disconnected(g)
        )
        wrt = [s, sg, se, R, g_logdet, g_quad]
        return pt.grad(total, wrt, disconnected_inputs="ignore", return_disconnected="zero")


def _disconnected(g: Any) -> bool:
    return isinstance(g.type, DisconnectedType)


@register_funcify_default_op_cache_key(RowwiseGaussian)
def _numba_rowwise(op, node, **kwargs):
    @numba_njit
    def rowwise(s, sg, se, R):
        logdet, quad = rowwise_forward(s, sg, se, R)
        return np.array(logdet), np.array(quad)

    return rowwise, KERNEL_VERSION


@register_funcify_default_op_cache_key(RowwiseGaussianGrad)
def _numba_rowwise_grad(op, node, **kwargs):
    if op.wrt == "s":

        @numba_njit
        def rowwise_grad_s(s, sg, se, R, g_logdet, g_quad):
            return rowwise_backward_s(s, sg, se, R, g_logdet.item(), g_quad.item())

        return rowwise_grad_s, KERNEL_VERSION

    @numba_njit
    def rowwise_grad(s, sg, se, R, g_logdet, g_quad):
        return rowwise_backward(s, sg, se, R, g_logdet.item(), g_quad.item())

    return rowwise_grad, KERNEL_VERSION
