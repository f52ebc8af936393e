"""The rotated traits in the eigenbasis of K, and their (restricted) log-likelihood and gradient."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from bayeslmm.constants import LOG_2PI
from bayeslmm.errors import InputError
from bayeslmm.linalg.spectral import Rotated, Spectral


@dataclass(frozen=True, eq=False)
class RotatedTraits:
    """Traits and covariates in the eigenbasis of K, with their null-space residual factor.

    Attributes
    ----------
    Y1 : ndarray
        ``U.T @ Y`` [shape: (rank, n_traits)].
    X1 : ndarray
        ``U.T @ X`` [shape: (rank, n_covariates)].
    s : ndarray
        Eigenvalues of K [shape: (rank,)].
    null_factor : ndarray
        Triangular factor R of the null-space residuals of ``[X, Y]``
        [shape: (k, n_covariates + n_traits)]; zeros when K has full rank.
    n_null : int
        Dimension of the null space of K, N − r.
    logdet_xtx : float
        log|X'X| (the REML constant that makes it invariant to a recombination of X).
    """

    Y1: np.ndarray
    X1: np.ndarray
    s: np.ndarray
    null_factor: np.ndarray
    n_null: int
    logdet_xtx: float

    @property
    def n(self) -> int:
        """Number of samples."""
        return self.Y1.shape[0] + self.n_null

    @property
    def n_traits(self) -> int:
        """Number of traits (T)."""
        return self.Y1.shape[1]

    def trait(self, t: int) -> Rotated:
        """Trait ``t`` alone as the one-trait :class:`~bayeslmm.linalg.spectral.Rotated`."""
        d = self.X1.shape[1]
        factor = self.null_factor[:, [*range(d), d + t]]
        return Rotated(
            y1=self.Y1[:, t],
            X1=self.X1,
            gram=factor.T @ factor,
            n_null=self.n_null,
            s=self.s,
            null_factor=factor,
        )


def rotate_traits(spectral: Spectral, Y: np.ndarray, X: np.ndarray) -> RotatedTraits:
    """Rotate the traits and covariates once (O(N·r·(T + d))).

    Parameters
    ----------
    spectral : Spectral
        Eigendecomposition of K restricted to the samples analysed.
    Y : ndarray
        Traits [shape: (n_samples, n_traits)].
    X : ndarray
        Covariates [shape: (n_samples, n_covariates)].

    Returns
    -------
    RotatedTraits
    """
    A = np.column_stack([X, Y])
    A1, residual = spectral.rotate(A)
    n_null = spectral.n - spectral.rank
    d = X.shape[1]
    if n_null > 0:
        factor = np.linalg.qr(residual, mode="r")
    else:
        factor = np.zeros((1, A.shape[1]))
    xtx = A1[:, :d].T @ A1[:, :d] + factor[:, :d].T @ factor[:, :d]
    return RotatedTraits(
        Y1=A1[:, d:],
        X1=A1[:, :d],
        s=spectral.s,
        null_factor=factor,
        n_null=n_null,
        logdet_xtx=float(np.linalg.slogdet(xtx)[1]) if d else 0.0,
    )


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The (restricted) log-likelihood at (Σg, Σe), its maximizer B̂ and its gradient.

    Attributes
    ----------
    loglik : float
        Log-likelihood (−inf where Σe is not positive definite or sᵢΣg + Σe is not).
    B : ndarray
        GLS fixed effects [shape: (n_covariates, n_traits)].
    B_cov : ndarray
        Covariance of each column of B̂ [shape: (n_traits, n_covariates, n_covariates)].
    grad_g, grad_e : ndarray or None
        ∂ℓ/∂Σg and ∂ℓ/∂Σe (symmetric; dℓ = tr(G_g dΣg) + tr(G_e dΣe)) [shape: (T, T)].
    """

    loglik: float
    B: np.ndarray
    B_cov: np.ndarray
    grad_g: np.ndarray | None = None
    grad_e: np.ndarray | None = None


def _invalid(d: int, T: int) -> Evaluation:
    """The evaluation outside the domain: −inf, NaN everything else."""
    nan = np.full((T, T), np.nan)
    return Evaluation(-np.inf, np.full((d, T), np.nan), np.full((T, d, d), np.nan), nan, nan)


def evaluate(
    rot: RotatedTraits,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
    method: str = "reml",
    *,
    gradient: bool = False,
) -> Evaluation:
    r"""Log-likelihood of the rotated traits at (Σg, Σe), B profiled out by GLS.

    Parameters
    ----------
    rot : RotatedTraits
        Data in the eigenbasis of K.
    sigma_g, sigma_e : ndarray
        Genetic and residual covariances [shape: (T, T)]; Σe positive definite. Σg need not be
        positive semi-definite as long as every sᵢΣg + Σe is positive definite (the
        finite differences for the information step just outside the cone).
    method : {"reml", "ml"}
    gradient : bool
        Also return ∂ℓ/∂Σg and ∂ℓ/∂Σe.

    Returns
    -------
    Evaluation

    Notes
    -----
    With :math:`\Sigma_e = L L^\top`, :math:`L^{-1}\Sigma_g L^{-\top} = Q\Lambda Q^\top` and
    :math:`A = Q^\top L^{-1}`, :math:`A\Sigma_e A^\top = I` and :math:`A\Sigma_g A^\top =
    \Lambda`, so the transformed rows :math:`z_i = A y_i` have the diagonal covariance
    :math:`D_i = s_i\Lambda + I` (I on the null space). With :math:`C = BA^\top`, the columns
    of :math:`Z = YA^\top` are independent univariate GLS problems with weights
    :math:`w_{it} = 1/(s_i\lambda_t + 1)`: :math:`P_t = X^\top W_t X`, :math:`\hat c_t =
    P_t^{-1}X^\top W_t z_t`, :math:`\hat B = \hat C A^{-\top}`. Then

    .. math::

        -2\ell_{ML} = NT\log 2\pi + \sum_{it}\log d_{it} + N\log|\Sigma_e|
                      + \sum_{it} \hat e_{it}^2/d_{it},

    and REML replaces NT by (N − d)T and adds :math:`\log|\bar X^\top V^{-1}\bar X| -
    T\log|X^\top X| = \sum_t\log|P_t| - d\log|\Sigma_e| - T\log|X^\top X|` for the T·d fixed
    effects (:math:`\bar X = I_T\otimes X`; the convention of GEMMA and of :func:`bayeslmm.reml`).
    By the envelope theorem, with :math:`f_i = \hat e_i/d_i` and, for REML,
    :math:`q_{it} = x_i^\top P_t^{-1}x_i`,

    .. math::

        \partial\ell/\partial\Sigma_g = -\tfrac12 A^\top\Big[\mathrm{diag}\sum_i s_i
            (w_{it} - q_{it}w_{it}^2) - \sum_i s_i f_i f_i^\top\Big] A,

    and :math:`\partial\ell/\partial\Sigma_e` likewise with :math:`s_i` replaced by 1, plus the
    null space: N − r on the diagonal, minus its residual Gram and, for REML,
    :math:`\operatorname{tr}(P_t^{-1}X_c^\top X_c)`. Cost O(r·T·d² + T³).
    """
    T, d = rot.n_traits, rot.X1.shape[1]
    n, n_null = rot.n, rot.n_null
    if not (np.isfinite(sigma_g).all() and np.isfinite(sigma_e).all()):
        return _invalid(d, T)
    try:
        Le = np.linalg.cholesky(sigma_e)
    except np.linalg.LinAlgError:
        return _invalid(d, T)
    Le_inv = linalg.solve_triangular(Le, np.eye(T), lower=True)
    inner = Le_inv @ sigma_g @ Le_inv.T
    lam, Q = np.linalg.eigh(0.5 * (inner + inner.T))
    A = Q.T @ Le_inv
    D = rot.s[:, None] * lam[None, :] + 1.0
    if not (D > 0).all() or not np.isfinite(D).all():
        return _invalid(d, T)
    W = 1.0 / D
    Z = rot.Y1 @ A.T
    RX = rot.null_factor[:, :d]
    RZ = rot.null_factor[:, d:] @ A.T
    xx_null = RX.T @ RX
    P = np.einsum("rt,ri,rj->tij", W, rot.X1, rot.X1) + xx_null
    rhs = np.einsum("rt,ri,rt->ti", W, rot.X1, Z) + (RX.T @ RZ).T
    try:
        cholP = np.linalg.cholesky(P)
    except np.linalg.LinAlgError:
        return _invalid(d, T)
    C = np.linalg.solve(np.swapaxes(cholP, 1, 2), np.linalg.solve(cholP, rhs[..., None]))[..., 0]
    resid = Z - rot.X1 @ C.T
    null_resid = RZ - RX @ C.T
    quad = float(np.sum(resid**2 * W) + np.sum(null_resid**2))
    logdet_e = 2.0 * float(np.log(np.diag(Le)).sum())
    logdet = float(np.log(D).sum()) + n * logdet_e
    A_inv = Le @ Q
    B = C.T @ A_inv.T
    eye = np.broadcast_to(np.eye(d), (T, d, d))
    P_inv = np.linalg.solve(P, eye)
    B_cov = np.einsum("tu,uij->tij", A_inv**2, P_inv)
    if method == "ml":
        value = -0.5 * (n * T * LOG_2PI + logdet + quad)
    elif method == "reml":
        logdet_p = 2.0 * float(np.log(np.diagonal(cholP, axis1=1, axis2=2)).sum())
        value = -0.5 * (
            (n - d) * T * LOG_2PI + logdet + logdet_p - d * logdet_e - T * rot.logdet_xtx + quad
        )
    else:
        raise InputError(f"method must be 'reml' or 'ml', got {method!r}.")
    if not gradient:
        return Evaluation(float(value), B, B_cov)
    F = resid * W
    sF = F * rot.s[:, None]
    diag_g = (rot.s[:, None] * W).sum(axis=0)
    diag_e = W.sum(axis=0) + n_null
    if method == "reml":
        q = np.einsum("ri,tij,rj->rt", rot.X1, P_inv, rot.X1) * W**2
        diag_g = diag_g - (rot.s[:, None] * q).sum(axis=0)
        diag_e = diag_e - q.sum(axis=0) - np.einsum("tij,ji->t", P_inv, xx_null)
    inner_g = np.diag(diag_g) - sF.T @ F
    inner_e = np.diag(diag_e) - F.T @ F - null_resid.T @ null_resid
    grad_g = -0.5 * A.T @ inner_g @ A
    grad_e = -0.5 * A.T @ inner_e @ A
    return Evaluation(float(value), B, B_cov, 0.5 * (grad_g + grad_g.T), 0.5 * (grad_e + grad_e.T))
