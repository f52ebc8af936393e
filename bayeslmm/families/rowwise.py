r"""Many small T×T Gaussian terms at once, as elementwise PyTensor graphs.

The multi-trait LMM's rotated rows are independent T-variate normals with covariance
:math:`A_i = s_i\Sigma_g + \Sigma_e`, i = 1..r. A batched ``cholesky`` and
``solve_triangular`` on an (r, T, T) tensor evaluate them, but PyTensor runs (and
differentiates) those per matrix, in Python-level loops: ~3 ms for a gradient at r = 2,000,
T = 2, a hundred times the univariate model. Here the Cholesky factorization and the
forward substitution are written out entry by entry for the T known when the model is built:
every entry is a vector over the r rows, so an evaluation and its gradient are O(r·T³)
elementwise operations, fused by PyTensor, with no batched linear algebra.
"""

from __future__ import annotations

import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any graph is built)

#: Largest T written out entry by entry (the graph has ~T³/3 nodes); above it, batched linalg.
MAX_UNROLLED = 8


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
        Σg and Σe [shape: (T, T)].
    R : TensorVariable
        Residual rows [shape: (r, T)].
    n_traits : int, optional
        T, when the graph's static shape does not say it (PyMC's dims are symbolic).

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
    Every symbol is a vector over the rows. For T > :data:`MAX_UNROLLED` the batched
    ``pt.linalg`` route is used (the same numbers).
    """
    T = n_traits if n_traits is not None else sg.type.shape[0]
    if T is None or T > MAX_UNROLLED:
        A = s[:, None, None] * sg[None] + se[None]
        L = pt.linalg.cholesky(A)
        Z = pt.linalg.solve_triangular(L, R[:, :, None], lower=True)
        logdet = 2.0 * pt.sum(pt.log(pt.diagonal(L, axis1=1, axis2=2)))
        return logdet, pt.sum(pt.sqr(Z))
    L: dict[tuple[int, int], pt.TensorVariable] = {}
    z: list[pt.TensorVariable] = []
    logdet = 0.0
    quad = 0.0
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
        logdet = logdet + pt.sum(pt.log(d))  # 2 log L_jj = log d
        quad = quad + pt.sum(pt.sqr(zj))
    return logdet, quad
