r"""The multi-trait LMM with its fixed effects integrated out: one PyTensor Op, numba kernels.

With complete traits, the rotated rows of the multi-trait LMM are independent T-variate
normals :math:`y_i \sim N(B^\top x_i, V_i)`, :math:`V_i = s_i\Sigma_g + \Sigma_e`, and a
Gaussian prior on B makes its integral a closed form: the sampler then sees the d·T
coefficients no more, only the variance parameters (NUTS's leapfrog steps per draw fall and
each costs no more), and the coefficients are drawn afterwards from their exact conditional,
B | θ, Y (:func:`conditional_b`). :class:`MarginalGaussian` evaluates the integral and its
gradient in two passes over the rows, O(r·(d²T² + T³)) each, no r×T intermediate.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import (
    numba_njit,
    register_funcify_default_op_cache_key,
)

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any graph is built)

#: Version of the numba kernels in PyTensor's on-disk cache key: a hash of this file (as in
#: :mod:`bayeslmm.families.rowwise`).
KERNEL_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:15], 16)


def marginal_terms(
    s: pt.TensorVariable,
    w: pt.TensorVariable,
    sg: pt.TensorVariable,
    se: pt.TensorVariable,
    Y: pt.TensorVariable,
    X: pt.TensorVariable,
    precision: pt.TensorVariable,
) -> pt.TensorVariable:
    r"""The log-density of the rows with B integrated out, up to :math:`-\tfrac{rT}{2}\log 2\pi`.

    Parameters
    ----------
    s : TensorVariable
        Each row's eigenvalue [shape: (n,)] (0 for the rows of the null space's factor).
    w : TensorVariable
        1 for a row whose :math:`\log|V_i|` counts, 0 for the null-space factor's rows (the
        caller adds :math:`(N - r)\log|\Sigma_e|` for them) [shape: (n,)].
    sg, se : TensorVariable
        Σg, Σe [shape: (T, T)]; only their lower triangles are read.
    Y, X : TensorVariable
        Rows of traits [shape: (n, T)] (data, or a function of the latent missing values: the
        gradient in Y is an output of the Op too) and covariates [shape: (n, d)] (data).
    precision : TensorVariable
        :math:`1/\sigma_B^2` of the prior :math:`\operatorname{vec}(B) \sim N(0, \sigma_B^2 I)`;
        0 for a flat prior on B.

    Returns
    -------
    TensorVariable
        :math:`-\tfrac12\big[\sum_i w_i\log|V_i| + \sum_i y_i^\top A_iy_i - h^\top P^{-1}h +
        \log|P| + dT\log\sigma_B^2\big]` for a proper prior; with a flat one, the last term
        is :math:`-dT\log 2\pi` (the integral of the likelihood over b).

    Notes
    -----
    With :math:`A_i = V_i^{-1}`, :math:`b = \operatorname{vec}(B)` and
    :math:`Q(b) = \sum_i(y_i - B^\top x_i)^\top A_i(y_i - B^\top x_i) + b^\top b/\sigma_B^2`,
    :math:`Q` is minimal at :math:`\hat b = P^{-1}h`,
    :math:`P = \sum_i A_i\otimes x_ix_i^\top + I/\sigma_B^2`,
    :math:`h = \sum_i \operatorname{vec}(x_i(A_iy_i)^\top)`, where
    :math:`Q(\hat b) = \sum_i y_i^\top A_iy_i - h^\top P^{-1}h`; the Gaussian integral over b
    of :math:`(2\pi\sigma_B^2)^{-dT/2}e^{-Q/2}` is :math:`\sigma_B^{-dT}|P|^{-1/2}e^{-Q(\hat b)/2}`.
    Gradient (envelope theorem for the minimum, :math:`\partial\log|P|/\partial A_i =
    C_i`, :math:`C_{i,tt'} = x_i^\top(P^{-1})_{tt'}x_i` with :math:`(P^{-1})_{tt'}` its d×d
    block): with the residual :math:`r_i = y_i - \hat B^\top x_i`,

    .. math::

        \frac{\partial f}{\partial V_i} = -\tfrac12 w_iA_i + \tfrac12A_i(r_ir_i^\top + C_i)A_i,

    :math:`\partial f/\partial\Sigma_g = \sum_i s_i\,\partial f/\partial V_i`,
    :math:`\partial f/\partial\Sigma_e = \sum_i\partial f/\partial V_i` (lower triangles,
    off-diagonal entries counted twice), and :math:`\partial f/\partial y_i = -A_ir_i`. Not
    differentiable twice (Hessians are taken by finite differences of this gradient where
    needed).
    """
    inputs = [pt.cast(pt.as_tensor_variable(x), "float64") for x in (s, w, sg, se, Y, X)]
    value, _, _, _ = MarginalGaussian()(
        *inputs, pt.cast(pt.as_tensor_variable(precision), "float64")
    )
    return value


@numba.njit(cache=True)
def _inverse(
    si: float, sg: np.ndarray, se: np.ndarray, A: np.ndarray, L: np.ndarray, L_inv: np.ndarray
) -> float:
    """A = (s_iΣg + Σe)⁻¹ (full), log|s_iΣg + Σe|; NaN unless positive definite.

    L and L_inv [shape: (T, T)] are workspaces (the Cholesky factor and its inverse). The
    factor's loops are those of :func:`bayeslmm.families.rowwise._factor`, repeated on purpose:
    numba's on-disk cache of a function does not see changes of the functions it calls from
    another file.
    """
    T = A.shape[0]
    if T == 2:
        a = si * sg[0, 0] + se[0, 0]
        c = si * sg[1, 1] + se[1, 1]
        o = si * sg[1, 0] + se[1, 0]
        det = a * c - o * o
        if not (a > 0.0 and det > 0.0):
            return math.nan
        A[0, 0] = c / det
        A[1, 1] = a / det
        A[0, 1] = A[1, 0] = -o / det
        return math.log(det)
    logdet = 0.0
    for j in range(T):  # Cholesky factor L of V_i
        dj = si * sg[j, j] + se[j, j]
        for k in range(j):
            dj -= L[j, k] * L[j, k]
        if not dj > 0.0:
            return math.nan
        L[j, j] = math.sqrt(dj)
        logdet += math.log(dj)
        for m in range(j + 1, T):
            off = si * sg[m, j] + se[m, j]
            for k in range(j):
                off -= L[m, k] * L[j, k]
            L[m, j] = off / L[j, j]
    for j in range(T):  # L⁻¹, lower
        L_inv[j, j] = 1.0 / L[j, j]
        for m in range(j + 1, T):
            acc = 0.0
            for k in range(j, m):
                acc += L[m, k] * L_inv[k, j]
            L_inv[m, j] = -acc / L[m, m]
    for m in range(T):  # A = L⁻ᵀL⁻¹
        for j in range(m + 1):
            acc = 0.0
            for k in range(m, T):
                acc += L_inv[k, m] * L_inv[k, j]
            A[m, j] = acc
            A[j, m] = acc
    return logdet


@numba.njit(cache=True)
def _normal_equations(s, w, sg, se, Y, X, precision):
    """Pass 1: Σ w_i log|V_i|, Σ y_i'A_iy_i, P [shape: (dT, dT)] and h [shape: (dT,)].

    P's index of coefficient B[j, t] is t·d + j (vec(B), B of shape (d, T)). NaN values
    where some V_i is not positive definite.
    """
    n, T = Y.shape
    d = X.shape[1]
    m = d * T
    P = np.zeros((m, m))
    h = np.zeros(m)
    A = np.empty((T, T))
    L = np.zeros((T, T))
    L_inv = np.zeros((T, T))
    Ay = np.empty(T)
    logdet = 0.0
    quad = 0.0
    for i in range(n):
        ld = _inverse(s[i], sg, se, A, L, L_inv)
        if math.isnan(ld):
            return math.nan, math.nan, P * math.nan, h * math.nan
        logdet += w[i] * ld
        for t in range(T):
            acc = 0.0
            for u in range(T):
                acc += A[t, u] * Y[i, u]
            Ay[t] = acc
            quad += Y[i, t] * acc
            for j in range(d):
                h[t * d + j] += X[i, j] * acc
        for t in range(T):
            for u in range(t + 1):
                a = A[t, u]
                for j in range(d):
                    xa = X[i, j] * a
                    for k in range(d):
                        P[t * d + j, u * d + k] += xa * X[i, k]
    for t in range(T):
        for u in range(t):
            for j in range(d):
                for k in range(d):
                    P[u * d + k, t * d + j] = P[t * d + j, u * d + k]
    for j in range(m):
        P[j, j] += precision
    return logdet, quad, P, h


@numba.njit(cache=True)
def marginal_value_and_gradient(s, w, sg, se, Y, X, precision):
    """The value of :func:`marginal_terms`, its gradients in Σg, Σe (lower triangles) and Y."""
    if Y.shape[1] == 2:
        return _value_and_gradient2(s, w, sg, se, Y, X, precision)
    return _value_and_gradient_any(s, w, sg, se, Y, X, precision)


@numba.njit(cache=True)
def _value_and_gradient_any(s, w, sg, se, Y, X, precision):
    """:func:`marginal_value_and_gradient` for any T, row by row (T×T inverses by Cholesky)."""
    n, T = Y.shape
    d = X.shape[1]
    m = d * T
    dsg = np.zeros((T, T))
    dse = np.zeros((T, T))
    dY = np.empty((n, T))
    logdet, quad, P, h = _normal_equations(s, w, sg, se, Y, X, precision)
    if math.isnan(logdet):
        return math.nan, dsg * math.nan, dse * math.nan, dY * math.nan
    Lp = np.linalg.cholesky(P)
    P_inv = np.linalg.inv(P)
    b = P_inv @ h
    logdet_p = 0.0
    for j in range(m):
        logdet_p += 2.0 * math.log(Lp[j, j])
    value = -0.5 * (logdet + quad - np.dot(h, b) + logdet_p)
    if precision > 0.0:  # the prior's normalization, σ_B^(−dT)
        value += 0.5 * m * math.log(precision)
    else:  # a flat prior: ∫ e^(−Q/2) db = (2π)^(dT/2) |P|^(−1/2) e^(−Q(b̂)/2)
        value += 0.5 * m * math.log(2.0 * math.pi)
    A = np.empty((T, T))
    L = np.zeros((T, T))
    L_inv = np.zeros((T, T))
    r = np.empty(T)
    M = np.empty((T, T))
    AM = np.empty((T, T))
    for i in range(n):
        _inverse(s[i], sg, se, A, L, L_inv)
        for t in range(T):
            acc = Y[i, t]
            for j in range(d):
                acc -= X[i, j] * b[t * d + j]
            r[t] = acc
        for t in range(T):  # ∂f/∂y_i = −A_i r_i
            acc = 0.0
            for u in range(T):
                acc -= A[t, u] * r[u]
            dY[i, t] = acc
        for t in range(T):
            for u in range(t + 1):
                c = 0.0
                for j in range(d):
                    xj = X[i, j]
                    for k in range(d):
                        c += xj * P_inv[t * d + j, u * d + k] * X[i, k]
                M[t, u] = r[t] * r[u] + c
                M[u, t] = M[t, u]
        for t in range(T):  # A·M
            for u in range(T):
                acc = 0.0
                for k in range(T):
                    acc += A[t, k] * M[k, u]
                AM[t, u] = acc
        for t in range(T):  # G = −½wA + ½ A M A, lower triangle, off-diagonal doubled
            for u in range(t + 1):
                acc = 0.0
                for k in range(T):
                    acc += AM[t, k] * A[k, u]
                g = 0.5 * acc - 0.5 * w[i] * A[t, u]
                if u != t:
                    g *= 2.0
                dsg[t, u] += s[i] * g
                dse[t, u] += g
    return value, dsg, dse, dY


#: numba's fast-math flags of the T = 2 kernel (as :data:`bayeslmm.families.rowwise.FAST`:
#: no "nnan"/"ninf", so a matrix that is not positive definite still gives NaN).
FAST = {"reassoc", "contract", "arcp", "nsz"}
#: Rows whose determinants are multiplied before one log (as in the rowwise kernels).
LOG_BLOCK = 16


@numba.njit(cache=True, fastmath=FAST)
def _normal2(s, w, sg, se, y0, y1, Xt, precision):
    """:func:`_normal_equations` for T = 2, from the traits' and covariates' columns.

    Returns (Σ w_i log|V_i|, Σ y_i'A_iy_i, P, h, A₀₀, A₁₁, A₁₀), the last three the entries
    of each row's A_i [shape: (n,)]; a NaN log-determinant where some V_i is not positive
    definite. Each pass is a loop over the rows that the compiler vectorizes (closed-form 2×2
    inverses, one log per :data:`LOG_BLOCK` rows); the d×d blocks of P are weighted inner
    products of X's columns (``Xt`` [shape: (d, n)], contiguous).
    """
    d, n = Xt.shape
    m = 2 * d
    g00, g11, g10 = sg[0, 0], sg[1, 1], sg[1, 0]
    e00, e11, e10 = se[0, 0], se[1, 1], se[1, 0]
    a00 = np.empty(n)
    a11 = np.empty(n)
    a10 = np.empty(n)
    ay0 = np.empty(n)
    ay1 = np.empty(n)
    logdet = 0.0
    quad = 0.0
    low = math.inf
    for start in range(0, n, LOG_BLOCK):
        stop = min(start + LOG_BLOCK, n)
        product = 1.0
        for i in range(start, stop):
            a = s[i] * g00 + e00
            c = s[i] * g11 + e11
            o = s[i] * g10 + e10
            det = a * c - o * o
            low = min(low, min(a, det))
            inv = 1.0 / det
            a00[i] = c * inv
            a11[i] = a * inv
            a10[i] = -o * inv
            product *= 1.0 + w[i] * (det - 1.0)  # det where w = 1, else 1
        if 1e-290 < product < 1e290:
            logdet += math.log(product)
        else:
            for i in range(start, stop):
                if w[i] > 0.0:
                    logdet += math.log(
                        (s[i] * g00 + e00) * (s[i] * g11 + e11) - (s[i] * g10 + e10) ** 2
                    )
    if not low > 0.0:
        logdet = math.nan
    for i in range(n):
        ay0[i] = a00[i] * y0[i] + a10[i] * y1[i]
        ay1[i] = a10[i] * y0[i] + a11[i] * y1[i]
        quad += y0[i] * ay0[i] + y1[i] * ay1[i]
    P = np.zeros((m, m))
    h = np.zeros(m)
    for j in range(d):
        h0 = 0.0
        h1 = 0.0
        for i in range(n):
            h0 += Xt[j, i] * ay0[i]
            h1 += Xt[j, i] * ay1[i]
        h[j] = h0
        h[d + j] = h1
        for k in range(j + 1):
            p00 = 0.0
            p11 = 0.0
            p10 = 0.0
            for i in range(n):
                x = Xt[j, i] * Xt[k, i]
                p00 += a00[i] * x
                p11 += a11[i] * x
                p10 += a10[i] * x
            P[j, k] = P[k, j] = p00
            P[d + j, d + k] = P[d + k, d + j] = p11
            P[d + j, k] = P[k, d + j] = p10
            P[d + k, j] = P[j, d + k] = p10
    for j in range(m):
        P[j, j] += precision
    return logdet, quad, P, h, a00, a11, a10


@numba.njit(cache=True, fastmath=FAST)
def _value_and_gradient2(s, w, sg, se, Y, X, precision):
    """:func:`marginal_value_and_gradient` for T = 2, loops over the rows innermost."""
    n, d = X.shape
    m = 2 * d
    Xt = np.ascontiguousarray(X.T)
    y0 = np.ascontiguousarray(Y[:, 0])
    y1 = np.ascontiguousarray(Y[:, 1])
    logdet, quad, P, h, a00, a11, a10 = _normal2(s, w, sg, se, y0, y1, Xt, precision)
    if math.isnan(logdet):
        nan = np.full((2, 2), math.nan)
        return math.nan, nan, nan.copy(), np.full((n, 2), math.nan)
    Lp = np.linalg.cholesky(P)
    P_inv = np.linalg.inv(P)
    b = P_inv @ h
    logdet_p = 0.0
    hb = 0.0
    for j in range(m):
        logdet_p += 2.0 * math.log(Lp[j, j])
        hb += h[j] * b[j]
    value = -0.5 * (logdet + quad - hb + logdet_p)
    if precision > 0.0:
        value += 0.5 * m * math.log(precision)
    else:
        value += 0.5 * m * math.log(2.0 * math.pi)
    # pass 2: residuals r_i = y_i − B̂'x_i and C_i = [x_i'(P⁻¹)_tu x_i], by columns of X
    r0 = y0.copy()
    r1 = y1.copy()
    c00 = np.zeros(n)
    c11 = np.zeros(n)
    c10 = np.zeros(n)
    for j in range(d):
        bj0 = b[j]
        bj1 = b[d + j]
        for i in range(n):
            r0[i] -= Xt[j, i] * bj0
            r1[i] -= Xt[j, i] * bj1
        for k in range(d):
            q00 = P_inv[j, k]
            q11 = P_inv[d + j, d + k]
            q10 = P_inv[d + j, k]
            for i in range(n):
                x = Xt[j, i] * Xt[k, i]
                c00[i] += x * q00
                c11[i] += x * q11
                c10[i] += x * q10
    sg00 = sg11 = sg10 = se00 = se11 = se10 = 0.0
    dY = np.empty((n, 2))
    for i in range(n):
        dY[i, 0] = -(a00[i] * r0[i] + a10[i] * r1[i])  # ∂f/∂y_i = −A_i r_i
        dY[i, 1] = -(a10[i] * r0[i] + a11[i] * r1[i])
        m00 = r0[i] * r0[i] + c00[i]
        m11 = r1[i] * r1[i] + c11[i]
        m10 = r0[i] * r1[i] + c10[i]
        p, q, o = a00[i], a11[i], a10[i]
        # A·M, then (A·M)·A for the symmetric A = [[p, o], [o, q]], M = [[m00, m10], [m10, m11]]
        t00 = p * m00 + o * m10
        t01 = p * m10 + o * m11
        t10 = o * m00 + q * m10
        t11 = o * m10 + q * m11
        G00 = 0.5 * (t00 * p + t01 * o - w[i] * p)
        G11 = 0.5 * (t10 * o + t11 * q - w[i] * q)
        G10 = t10 * p + t11 * o - w[i] * o  # off-diagonal: counted twice
        sg00 += s[i] * G00
        sg11 += s[i] * G11
        sg10 += s[i] * G10
        se00 += G00
        se11 += G11
        se10 += G10
    dsg = np.zeros((2, 2))
    dse = np.zeros((2, 2))
    dsg[0, 0], dsg[1, 1], dsg[1, 0] = sg00, sg11, sg10
    dse[0, 0], dse[1, 1], dse[1, 0] = se00, se11, se10
    return value, dsg, dse, dY


@numba.njit(cache=True)
def _conditional_each(s, w, sg, se, Y, X, precision):
    """P and h of :func:`_normal_equations` for each draw's (Σg, Σe) [shapes: (b, T, T)].

    Y [shape: (1 or b, n, T)]: the same rows for every draw, or each draw's own.
    """
    n_draws = sg.shape[0]
    m = X.shape[1] * Y.shape[2]
    P = np.empty((n_draws, m, m))
    h = np.empty((n_draws, m))
    last = Y.shape[0] - 1
    if Y.shape[2] == 2:
        Xt = np.ascontiguousarray(X.T)
        # each row set's trait columns, contiguous, once (not once per draw)
        Y0 = np.ascontiguousarray(Y[:, :, 0])
        Y1 = np.ascontiguousarray(Y[:, :, 1])
        for k in range(n_draws):
            j = min(k, last)
            _, _, P_k, h_k, _, _, _ = _normal2(s, w, sg[k], se[k], Y0[j], Y1[j], Xt, precision)
            P[k] = P_k
            h[k] = h_k
        return P, h
    for k in range(n_draws):
        _, _, P_k, h_k = _normal_equations(s, w, sg[k], se[k], Y[min(k, last)], X, precision)
        P[k] = P_k
        h[k] = h_k
    return P, h


def conditional_b(
    s: np.ndarray,
    w: np.ndarray,
    sg: np.ndarray,
    se: np.ndarray,
    Y: np.ndarray,
    X: np.ndarray,
    precision: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    r"""Draws of B | θ, Y for each draw's (Σg, Σe): the coefficients :func:`marginal_terms` removed.

    Parameters
    ----------
    s, w, X, precision
        As in :func:`marginal_terms` (the model's data).
    Y
        The rows of traits [shape: (n, T)], or each draw's [shape: (b, n, T)] (with latent
        missing values, the rows hold each draw's values).
    sg, se
        Σg and Σe of each draw [shape: (b, T, T)].
    rng
        None: the conditional means :math:`\hat B` (e.g. at a MAP estimate).

    Returns
    -------
    ndarray
        B [shape: (b, d, T)].

    Notes
    -----
    :math:`\operatorname{vec}(B) \mid \theta, Y \sim N(P^{-1}h, P^{-1})` with P and h of
    :func:`marginal_terms`; a draw is :math:`P^{-1}h + L^{-\top}z`, :math:`P = LL^\top`,
    z ~ N(0, I): O(r·d²T²) per draw.
    """
    n_draws, T = sg.shape[0], Y.shape[-1]
    d = X.shape[1]
    rows = np.ascontiguousarray(Y if Y.ndim == 3 else Y[None])
    P, h = _conditional_each(s, w, sg, se, rows, X, float(precision))
    L = np.linalg.cholesky(P)
    b = np.linalg.solve(P, h[..., None])[..., 0]
    if rng is not None:
        z = rng.standard_normal((n_draws, d * T))
        b += np.linalg.solve(np.swapaxes(L, 1, 2), z[..., None])[..., 0]
    return np.swapaxes(b.reshape(n_draws, T, d), 1, 2)


class MarginalGaussian(Op):
    """(s, w, Σg, Σe, Y, X, 1/σ_B²) ↦ (value, ∂/∂Σg, ∂/∂Σe, ∂/∂Y) of :func:`marginal_terms`.

    The gradients are outputs of the same node (both passes share the normal equations); the
    pullback of the value returns them times its upstream gradient. s, w, X and the precision
    are data (no gradient).
    """

    __props__ = ()

    def make_node(self, s, w, sg, se, Y, X, precision) -> Apply:  # noqa: D102
        inputs = [pt.as_tensor_variable(x) for x in (s, w, sg, se, Y, X, precision)]
        outputs = [pt.dscalar(), inputs[2].type(), inputs[3].type(), inputs[4].type()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage) -> None:  # noqa: D102
        s, w, sg, se, Y, X, precision = (np.asarray(x, dtype=np.float64) for x in inputs)
        value, dsg, dse, dY = marginal_value_and_gradient(s, w, sg, se, Y, X, float(precision))
        output_storage[0][0] = np.asarray(value)
        output_storage[1][0] = dsg
        output_storage[2][0] = dse
        output_storage[3][0] = dY

    def pullback(self, inputs, outputs, output_grads):  # noqa: D102
        if any(not isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError(
                "the gradient outputs of MarginalGaussian are not differentiable; take "
                "second derivatives by finite differences of the gradient."
            )
        g = output_grads[0]
        data = [grad_undefined(self, k, inputs[k], "data of the model") for k in range(7)]
        return [data[0], data[1], g * outputs[1], g * outputs[2], g * outputs[3], data[5], data[6]]

    def connection_pattern(self, node: Any) -> list[list[bool]]:  # noqa: D102
        return [[True] * 4 for _ in node.inputs]


@register_funcify_default_op_cache_key(MarginalGaussian)
def _numba_marginal(op, node, **kwargs):
    @numba_njit
    def marginal(s, w, sg, se, Y, X, precision):
        value, dsg, dse, dY = marginal_value_and_gradient(s, w, sg, se, Y, X, precision.item())
        return np.array(value), dsg, dse, dY

    return marginal, KERNEL_VERSION
