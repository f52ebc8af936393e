r"""LOCO from one eigendecomposition: the kinship of the other chromosomes as a rank-k update.

With the whole Gram W'W = V diag(Λ) V' (W = U diag(Λ)^{1/2} V', U never formed), leaving out
the k model SNPs of a chromosome (rows c of V) leaves, in the coordinates of U,

.. math::

    W_J W_J^\top = U\,(\Lambda - Y^\top Y)\,U^\top, \qquad Y = V_c \Lambda^{1/2}
    \quad [k \times r],

because the rows of V are orthonormal. With K_c normalized by its mean diagonal
:math:`c_J` (= trace(W_J'W_J)/(N·M_J)) and λ = σg²/σe², H = λK_c + I is, on the range of U,
:math:`D - Z^\top Z` with :math:`D = I + \lambda\tilde s`, :math:`\tilde s = \Lambda/(M_J c_J)`,
:math:`Z = \sqrt{\lambda/(M_J c_J)}\,Y`, and the identity on its complement. Woodbury gives

.. math::

    H^{-1} = D^{-1} + F^\top F,\quad F = L^{-1} Z D^{-1},\quad LL^\top = C = I_k - Z D^{-1}
    Z^\top, \qquad \log|H| = \textstyle\sum_i \log(1 + \lambda\tilde s_i) + \log|C|,

so every quadratic form the LMM needs at one λ costs O(r·k) per vector after an O(r·k² + k³)
factorization, instead of an O(M³) eigendecomposition of each chromosome's submatrix. The null
REML of each LOCO group is maximized on these (:func:`loco_null`), and at its λ̂ the P3D tests
read the update as k more coordinates of weight 1 (eigenvalue 0): U'G extended by F·U'G
(:func:`bayeslmm.gwas.snp_statistics.block_from_products`), so the statistics are those of the
N×N scan's per-chromosome eigenbasis to round-off.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize
from scipy.linalg import blas

from bayeslmm.constants import LOG_2PI
from bayeslmm.data.samples import Prepared
from bayeslmm.gwas.association import LAMBDA_RANGE, NullData
from bayeslmm.gwas.snp_statistics import NullFit
from bayeslmm.linalg.spectral import (
    DEFAULT_RTOL,
    LowRank,
    Rotated,
    Standardized,
    rotate_lowrank,
    spectral_from_gram,
)

#: Points of the grid on h² ∈ [0, 1] before the bounded search (as bl.reml).
GRID_SIZE = 101
#: Half-width of the first bracket of the derivative's root, relative to h² (as bl.reml).
POLISH_WIDTH = 1e-7
#: Tenfold widenings of that bracket at most.
POLISH_STEPS = 5
EPS = float(np.finfo(float).eps)


@dataclass(frozen=True, eq=False)
class WholeGram:
    """The eigenbasis of the whole Gram over the samples analysed, and y, X in it.

    Attributes
    ----------
    basis : LowRank
        Of W'W itself (``normalize=False``: s = Λ/M, scale 1), so that
        ``basis.coordinates(W'a)`` = U'a.
    rot : Rotated
        The standardized y and X in it, with the null-space Gram of [X, y] off the range of U.
    diag : ndarray
        Diagonal of W'W [shape: (M,)] (the mean diagonal of each LOCO kinship).
    """

    basis: LowRank
    rot: Rotated
    diag: np.ndarray

    @property
    def lam(self) -> np.ndarray:
        """Eigenvalues Λ of W'W [shape: (r,)]."""
        return self.basis.s * self.basis.n_snps


def whole_gram(wtw: np.ndarray, n: int, std: Standardized, WtA: np.ndarray) -> WholeGram:
    """Decompose W'W once (O(M³)) and rotate y, X: what every LOCO group starts from.

    Parameters
    ----------
    wtw : ndarray
        W'W over the samples analysed [shape: (M, M)]; not modified.
    n : int
        Samples analysed.
    std : Standardized
        Their standardized phenotype and covariates.
    WtA : ndarray
        W'[X, y] of those [shape: (M, d + 1)].
    """
    return whole_from_basis(whole_basis(wtw, n), std, WtA, np.diag(wtw).copy())


def whole_basis(wtw: np.ndarray, n: int) -> LowRank:
    """The eigenbasis of W'W itself (the O(M³) part of :func:`whole_gram`; a dask task).

    Parameters
    ----------
    wtw : ndarray
        W'W over the samples analysed [shape: (M, M)]; not modified.
    n : int
        Samples analysed.
    """
    return spectral_from_gram(wtw, n, normalize=False, rtol=DEFAULT_RTOL)


def whole_from_basis(
    basis: LowRank, std: Standardized, WtA: np.ndarray, diag: np.ndarray
) -> WholeGram:
    """y, X rotated into the whole Gram's basis (the rest of :func:`whole_gram`; a dask task).

    Parameters
    ----------
    basis : LowRank
        From :func:`whole_basis`.
    std : Standardized
        The standardized phenotype and covariates of the samples analysed.
    WtA : ndarray
        W'[X, y] of those [shape: (M, d + 1)].
    diag : ndarray
        Diagonal of W'W [shape: (M,)].
    """
    return WholeGram(basis, rotate_lowrank(basis, std.y, std.X, WtA), diag)


@dataclass(frozen=True, eq=False)
class LeftOut:
    r"""The kinship of the model SNPs off ``c`` as the whole one minus a rank-k update.

    Attributes
    ----------
    whole : WholeGram
    s : ndarray
        Λ/(M_J c_J): the eigenvalues of the whole W W' on the scale of K_c [shape: (r,)].
    Y : ndarray
        :math:`V_c \Lambda^{1/2}/\sqrt{M_J c_J}` [shape: (k, r)].
    scale : float
        c_J, the mean diagonal of W_J W_J'/M_J (what K_c is divided by).
    n : int
        Samples analysed.
    """

    whole: WholeGram
    s: np.ndarray
    Y: np.ndarray
    scale: float
    n: int

    @classmethod
    def build(cls, whole: WholeGram, out: np.ndarray, n: int) -> LeftOut:
        """The update that leaves the model SNPs at positions ``out`` of W'W out."""
        m = whole.diag.size
        m_j = m - out.size
        scale = float((whole.diag.sum() - whole.diag[out].sum()) / (n * m_j))
        norm = m_j * scale
        Y = whole.basis.V[out] * np.sqrt(whole.lam / norm)
        return cls(whole, whole.lam / norm, Y, scale, n)

    def factor(self, lam: float) -> tuple[np.ndarray, np.ndarray, float]:
        """The weights diag(D)⁻¹, F and log|C| at λ (see the module's Notes)."""
        w = 1.0 / (1.0 + lam * self.s)
        ZW = np.sqrt(lam) * self.Y * w  # Z D^-1 [shape: (k, r)]
        C = np.eye(self.Y.shape[0]) - (np.sqrt(lam) * self.Y) @ ZW.T
        L = linalg.cholesky(C, lower=True)
        F = linalg.solve_triangular(L, ZW, lower=True)
        return w, F, 2.0 * float(np.log(np.diagonal(L)).sum())

    def loglik(self, h2: float, method: str = "reml") -> float:
        """Profiled (RE)ML log-likelihood at h² ∈ [0, 1) (that of :func:`association.loglik`)."""
        return self._profile(h2, method, derivative=False)[0]

    def derivative(self, h2: float, method: str = "reml") -> float:
        """Its derivative in h², analytically (NaN where it is not finite)."""
        return self._profile(h2, method, derivative=True)[1]

    def _profile(self, h2: float, method: str, derivative: bool) -> tuple[float, float]:
        r"""The log-likelihood at h² and, if asked, its derivative.

        Notes
        -----
        With A = U'[X, y], :math:`B = Y D^{-1} Y^\top` (one syrk, O(k²r)), C = I − λB = LL'
        and :math:`T = L^{-1} Y D^{-1} A`: [X, y]'H⁻¹[X, y] = A'D⁻¹A + λT'T + the null-space
        Gram, log|H| = Σ log(1 + λs̃) + log|C|. The derivative needs H⁻² too:
        :math:`H^{-1}A = D^{-1}A + \lambda D^{-1}Y^\top L^{-\top}T` on the range of U, and
        :math:`\operatorname{tr} H^{-1} = \sum_i w_i + \lambda\operatorname{tr}(C^{-1}
        Y D^{-2} Y^\top) + N - r` (a second syrk). With K = (H − I)/λ, the REML
        derivative in λ is

        .. math::

            -\frac{1}{2\lambda}\Big[-n_e\frac{P_{yy} - e^\top H^{-2} e}{P_{yy}}
            + N - \operatorname{tr}H^{-1} - d + \operatorname{tr}\big((X^\top H^{-1}X)^{-1}
            X^\top H^{-2} X\big)\Big],

        e = y − Xβ̂ (ML: without the last two terms, n_e = N), times dλ/dh² = 1/(1 − h²)².
        """
        if not 0.0 <= h2 < 1.0:
            return -np.inf, np.nan
        lam = h2 / (1.0 - h2)
        rot = self.whole.rot
        A1 = np.column_stack([rot.X1, rot.y1])  # U'[X, y] [shape: (r, d + 1)]
        w = 1.0 / (1.0 + lam * self.s)
        k = self.Y.shape[0]
        YW = self.Y * w  # Y D^-1
        B = blas.dsyrk(1.0, self.Y * np.sqrt(w), lower=1)  # Y D^-1 Y' (lower triangle)
        C = np.eye(k) - lam * np.tril(B)
        try:
            L = linalg.cholesky(C, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return -np.inf, np.nan
        T = linalg.solve_triangular(L, YW @ A1, lower=True, check_finite=False)
        Q = A1.T @ (w[:, None] * A1) + lam * (T.T @ T) + rot.gram
        logdet = float(np.log1p(lam * self.s).sum()) + 2.0 * float(np.log(np.diagonal(L)).sum())
        d = Q.shape[0] - 1
        XX, Xy = Q[:d, :d], Q[:d, d]
        try:
            chol = linalg.cholesky(XX, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return -np.inf, np.nan
        beta = linalg.cho_solve((chol, True), Xy, check_finite=False)
        p_yy = float(Q[d, d] - Xy @ beta)
        if not p_yy > 0:
            return -np.inf, np.nan
        n = self.n
        m = n - d if method == "reml" else n
        value = -0.5 * (m * (LOG_2PI + np.log(p_yy / m)) + logdet + m)
        logdet_x = 2.0 * float(np.log(np.diagonal(chol)).sum())
        if method == "reml":
            value -= 0.5 * logdet_x
        if not derivative or lam == 0.0:
            return value, np.nan
        V = linalg.solve_triangular(L, T, lower=True, trans="T", check_finite=False)
        RA = w[:, None] * A1 + lam * (YW.T @ V)  # H^-1 [X, y] on the range of U
        Q2 = RA.T @ RA + rot.gram
        B2 = blas.dsyrk(1.0, YW, lower=1)  # Y D^-2 Y'
        B2 = np.tril(B2) + np.tril(B2, -1).T
        trace = float(w.sum()) + lam * float(np.trace(linalg.cho_solve((L, True), B2)))
        trace += n - self.s.size
        e2 = float(Q2[d, d] - 2 * beta @ Q2[:d, d] + beta @ Q2[:d, :d] @ beta)  # e'H^-2 e
        slope = -m * (p_yy - e2) / p_yy + (n - trace)
        if method == "reml":
            slope -= d - float(np.trace(linalg.cho_solve((chol, True), Q2[:d, :d])))
        return value, -0.5 * slope / lam / (1.0 - h2) ** 2


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS on one thread for a while, where threadpoolctl is installed (else no change).

    The likelihood of a LOCO group is ~150 products of k × r by r × k (k ~ M/22): on two
    cores already busy, OpenBLAS's second thread made each 40 times slower (57 ms instead
    of 1.5 ms, k = 114, r = 2,500, measured), and one thread is never far from two here.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # (a development dependency of bayeslmm, often installed)
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def maximize_h2(left: LeftOut, method: str = "reml") -> float:
    """ĥ² of one LOCO group, found as :func:`bayeslmm.reml` finds it.

    A grid of :data:`GRID_SIZE` points on [0, 1], bounded Brent around the best, both ends
    compared, then the root of the analytic derivative next to an interior answer
    (``brentq`` to a few ε), so that the answer is the maximizer to round-off, the one the
    N×N scan's REML finds. BLAS runs on one thread meanwhile (:func:`one_blas_thread`).
    """
    with one_blas_thread():
        return _maximize_h2(left, method)


def _maximize_h2(left: LeftOut, method: str) -> float:
    grid = np.linspace(0.0, 1.0, GRID_SIZE)
    values = np.array([left.loglik(h, method) for h in grid])
    k = int(np.nanargmax(values))
    best_h, best_l = grid[k], values[k]
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, GRID_SIZE - 1)]

    def negative(h: float) -> float:
        value = left.loglik(h, method)
        return -value if np.isfinite(value) else np.inf

    res = optimize.minimize_scalar(
        negative, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
    )
    if np.isfinite(res.fun) and -res.fun > best_l:
        best_h, best_l = float(res.x), -float(res.fun)
    if left.loglik(0.0, method) >= best_l:
        best_h = 0.0
    return _polish(left, float(best_h), method)


def _polish(left: LeftOut, h: float, method: str) -> float:
    """The root of the derivative in a widening bracket around h (as ``bl.reml``)."""
    if not 0.0 < h < 1.0:
        return h
    width = POLISH_WIDTH * max(h, 1e-4)
    for _ in range(POLISH_STEPS):
        lo, hi = max(h - width, 0.5 * h), min(h + width, 0.5 * (h + 1.0))
        f_lo, f_hi = left.derivative(lo, method), left.derivative(hi, method)
        if not (np.isfinite(f_lo) and np.isfinite(f_hi)):
            return h
        if f_lo > 0.0 > f_hi:
            break
        width *= 10.0
    else:
        return h
    root = float(
        optimize.brentq(lambda x: left.derivative(x, method), lo, hi, xtol=1e-300, rtol=4 * EPS)
    )
    before, after = left.loglik(h, method), left.loglik(root, method)
    if not after >= before - 1e-12 * (1.0 + abs(before)):
        return h
    return root


def loco_null(whole: WholeGram, out: np.ndarray, std: Standardized, data: Prepared) -> NullFit:
    """The REML null of the group that leaves the model SNPs ``out`` out, for P3D tests.

    Parameters
    ----------
    whole : WholeGram
        The whole Gram's eigenbasis, with y and X in it.
    out : ndarray of int
        Positions in W'W of the model SNPs of the chromosome tested.
    std, data
        The standardized and the aligned data.

    Returns
    -------
    NullFit
        At λ̂ = ĥ²/(1 − ĥ²) (λ capped at the top of GEMMA's range, as the N×N scan does):
        its ``null`` holds U'[X, y] extended by the k rows F·U'[X, y] with eigenvalue 0 and
        ``update`` = F, so that :func:`~bayeslmm.gwas.snp_statistics.snp_statistics` at λ̂
        gives the P3D tests of the kinship without chromosome c. Only that λ is valid (no ML
        null: not for the exact mode, nor a posterior null).
    """
    left = LeftOut.build(whole, out, data.n)
    bounds = (LAMBDA_RANGE[0] * left.scale, LAMBDA_RANGE[1] * left.scale)
    h2 = maximize_h2(left, "reml")
    lam = min(h2 / (1 - h2), bounds[1]) if h2 < 1 else bounds[1]
    _, F, _ = left.factor(lam)
    rot = whole.rot
    null = NullData(
        X1=np.vstack([rot.X1, F @ rot.X1]),
        y1=np.concatenate([rot.y1, F @ rot.y1]),
        gram=rot.gram,
        s=np.concatenate([left.s, np.zeros(F.shape[0])]),
        n=data.n,
    )
    return NullFit(
        U=None,
        null=null,
        lam=np.array([lam]),
        lam_ml=np.nan,
        loglik_ml=np.nan,
        bounds=bounds,
        y=std.y,
        X=std.X,
        sd_y=float(np.std(data.y, ddof=1)) / std.scale,
        y_scale=std.scale,
        basis=whole.basis,
        update=F,
    )
