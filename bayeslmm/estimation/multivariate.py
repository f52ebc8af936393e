"""Multi-trait (RE)ML in the eigenbasis of K (issue 12, point 2; DESIGN §1).

Y = XB + U + E with vec(U) ~ N(0, Σg ⊗ K) and vec(E) ~ N(0, Σe ⊗ I) for T ≥ 2 traits measured
on the same samples. In the eigenbasis of K the rotated rows are independent T-variate normals
with covariance sᵢΣg + Σe (Σe alone on the null space of K); one change of basis of the trait
space that diagonalizes Σg and Σe together (as GEMMA's mvLMM) turns them into T independent
univariate problems, so the (restricted) log-likelihood and its gradient cost O(r·T·d² + T³).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize

from bayeslmm.constants import LOG_2PI
from bayeslmm.data.inputs import kinship_inputs
from bayeslmm.errors import BayeslmmWarning, ConvergenceError, InputError
from bayeslmm.estimation.likelihood import CHI2_HALF, Z95, profile
from bayeslmm.linalg.spectral import Rotated, Spectral, standardize
from bayeslmm.relatedness.gram import Gram

#: h² at or below this (or at or above 1 minus it), or a genetic (residual) correlation matrix
#: whose smallest eigenvalue is at or below it, is a boundary estimate.
BOUNDARY = 1e-6
#: Largest h² a profile may fix (the residual covariance must stay positive definite).
H2_MAX = 1.0 - 1e-9
#: Step of the finite differences of the analytic gradient, in whitened units (Σe = I).
HESSIAN_STEP = 1e-4
#: Largest gradient in the Cholesky coordinates, relative to max(1, |ℓ|), of a converged fit.
GRADIENT_TOLERANCE = 1e-7
#: Tolerance on the ends of a profile-likelihood interval (their SE is width / 3.92).
PROFILE_XTOL = 1e-5
SE_INFORMATION = "observed information"
SE_PROFILE = "profile likelihood"


# --------------------------------------------------------------------------------------------
# Rotated data and the log-likelihood
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Parametrizations
# --------------------------------------------------------------------------------------------


def _tril(T: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(T)


def from_cholesky(theta: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Σg and Σe from the optimizer's parameters.

    Parameters
    ----------
    theta : ndarray
        The T(T+1)/2 entries of a lower-triangular :math:`L_g` (free: any real numbers, so
        that :math:`\Sigma_g = L_gL_g^\top` is any positive semi-definite matrix, rank-deficient
        ones included), then those of :math:`L_e` with its diagonal on the log scale
        (:math:`\Sigma_e = L_eL_e^\top` positive definite) [shape: (T(T+1),)].
    T : int
        Number of traits.

    Returns
    -------
    sigma_g, sigma_e : ndarray
        [shape: (T, T)] each.
    """
    rows, cols = _tril(T)
    m = rows.size
    Lg = np.zeros((T, T))
    Le = np.zeros((T, T))
    Lg[rows, cols] = theta[:m]
    Le[rows, cols] = theta[m:]
    Le[np.diag_indices(T)] = np.exp(np.diag(Le))
    return Lg @ Lg.T, Le @ Le.T


def to_cholesky(sigma_g: np.ndarray, sigma_e: np.ndarray) -> np.ndarray:
    """Parameters of :func:`from_cholesky` for a given Σg (PSD) and Σe (PD)."""
    T = sigma_g.shape[0]
    rows, cols = _tril(T)
    values, vectors = np.linalg.eigh(sigma_g)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    Lg = np.linalg.qr(root.T, mode="r").T  # lower triangular with Lg Lg' = Σg
    Le = np.linalg.cholesky(sigma_e)
    Le_log = Le.copy()
    Le_log[np.diag_indices(T)] = np.log(np.diag(Le))
    return np.concatenate([Lg[rows, cols], Le_log[rows, cols]])


def _cholesky_gradient(
    theta: np.ndarray, T: int, grad_g: np.ndarray, grad_e: np.ndarray
) -> np.ndarray:
    """Chain rule: ∂ℓ/∂L = 2 G L for Σ = LL' (and × L_tt on the log-diagonal)."""
    rows, cols = _tril(T)
    m = rows.size
    Lg = np.zeros((T, T))
    Le = np.zeros((T, T))
    Lg[rows, cols] = theta[:m]
    Le[rows, cols] = theta[m:]
    Le[np.diag_indices(T)] = np.exp(np.diag(Le))
    dLg = 2.0 * grad_g @ Lg
    dLe = 2.0 * grad_e @ Le
    dLe[np.diag_indices(T)] *= np.diag(Le)
    return np.concatenate([dLg[rows, cols], dLe[rows, cols]])


def _vech(S: np.ndarray) -> np.ndarray:
    rows, cols = _tril(S.shape[0])
    return S[rows, cols]


def _unvech(v: np.ndarray, T: int) -> np.ndarray:
    rows, cols = _tril(T)
    S = np.zeros((T, T))
    S[rows, cols] = v
    S[cols, rows] = v
    return S


def _vech_gradient(G: np.ndarray) -> np.ndarray:
    """∂ℓ/∂(vech Σ) from the symmetric gradient G (an off-diagonal entry moves two cells)."""
    return _vech(2.0 * G - np.diag(np.diag(G)))


# --------------------------------------------------------------------------------------------
# The maximization
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimum:
    """Where the optimizer stopped."""

    sigma_g: np.ndarray
    sigma_e: np.ndarray
    at: Evaluation
    converged: bool
    iterations: int
    message: str


def _starts(rot: RotatedTraits, method: str) -> list[np.ndarray]:
    """Starting points: one-trait h² and σp² of each trait, with rg = re = rp or rg = 0."""
    T = rot.n_traits
    grid = np.linspace(0.0, 1.0, 41)
    h2, sp2 = np.empty(T), np.empty(T)
    for t in range(T):
        prof = profile(rot.trait(t), grid, method)
        k = int(np.nanargmax(prof.loglik))
        h2[t], sp2[t] = grid[k], prof.sigma_p2[k]
    h2 = np.clip(h2, 0.05, 0.95)
    total = rot.Y1.T @ rot.Y1 + rot.null_factor[:, -T:].T @ rot.null_factor[:, -T:]
    sd = np.sqrt(np.diag(total))
    rp = np.clip(total / np.outer(sd, sd), -0.95, 0.95)
    rp[np.diag_indices(T)] = 1.0
    rp = _nearest_correlation(rp)
    dg, de = np.sqrt(h2 * sp2), np.sqrt((1 - h2) * sp2)
    starts = []
    for rg in (rp, np.eye(T)):
        starts.append(to_cholesky(np.outer(dg, dg) * rg, np.outer(de, de) * rp))
    return starts


def _nearest_correlation(R: np.ndarray) -> np.ndarray:
    """A positive definite correlation matrix near R (eigenvalues floored, rescaled)."""
    values, vectors = np.linalg.eigh(R)
    R = (vectors * np.clip(values, 0.05, None)) @ vectors.T
    d = np.sqrt(np.diag(R))
    return R / np.outer(d, d)


def _bfgs(rot: RotatedTraits, method: str, start: np.ndarray) -> optimize.OptimizeResult:
    T = rot.n_traits

    def negative(theta: np.ndarray) -> tuple[float, np.ndarray]:
        sg, se = from_cholesky(theta, T)
        at = evaluate(rot, sg, se, method, gradient=True)
        if not np.isfinite(at.loglik):
            return np.inf, np.zeros_like(theta)
        return -at.loglik, -_cholesky_gradient(theta, T, at.grad_g, at.grad_e)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return optimize.minimize(
            negative, start, jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 2000}
        )


def ranged(rot: RotatedTraits) -> RotatedTraits:
    """The rotated rows on the range of K alone (the null-space rows left out)."""
    return dataclasses.replace(rot, null_factor=np.zeros((1, rot.null_factor.shape[1])), n_null=0)


def absorbed(rot: RotatedTraits) -> bool:
    r"""Whether the null space of K lies in the span of X (its rows are fitted exactly by B).

    Notes
    -----
    Then the ML likelihood has no maximum: at B̂ those N − r rows have residual 0 along any
    direction w in which Σe becomes singular, and :math:`-\tfrac12(N-r)\log|\Sigma_e|` grows
    without bound (a centred kinship, whose null space is the constant, with an intercept).
    REML has no such supremum: its :math:`-d\log|\Sigma_e|` and :math:`\log|P_t|` terms
    remove those rows.
    """
    if rot.n_null == 0:
        return False
    d = rot.X1.shape[1]
    RX = rot.null_factor[:, :d]
    size = np.sqrt((rot.X1**2).sum(axis=0) + (RX**2).sum(axis=0)).max()
    values = np.linalg.svd(RX, compute_uv=False)
    return bool((values > 1e-8 * size).sum() >= rot.n_null)


def maximize(rot: RotatedTraits, method: str = "reml") -> Optimum:
    """Maximize the (restricted) likelihood over the Cholesky factors of Σg and Σe.

    BFGS with the analytic gradient from two starting points (:func:`_starts`), the better
    answer kept, then Newton steps on (Σg, Σe) while the estimate is interior. For ML when
    :func:`absorbed` (no global maximum), BFGS runs first on the likelihood of the rows on the
    range of K (:func:`ranged`), which has one; from there BFGS on the full likelihood finds
    the local maximum next to it (the estimate GEMMA reports too), or, if it runs to a
    singular Σe (the supremum), the answer is the first one, refined by Newton's steps.
    """
    T = rot.n_traits
    degenerate = method == "ml" and absorbed(rot)
    target = ranged(rot) if degenerate else rot
    best = None
    for start in _starts(target, method):
        res = _bfgs(target, method, start)
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise ConvergenceError(
            "the multi-trait likelihood is not finite at any starting point; check the traits "
            "for near-duplicates (a trait that is a combination of the others and the "
            "covariates)."
        )
    if degenerate:  # from there on the full likelihood, unless it runs to a singular Σe
        res = _bfgs(rot, method, best.x)
        sg, se = from_cholesky(res.x, T)
        if np.isfinite(res.fun) and np.linalg.eigvalsh(_correlation(se)).min() > BOUNDARY:
            best = res
    sigma_g, sigma_e = from_cholesky(best.x, T)
    sigma_g, sigma_e = _newton(rot, sigma_g, sigma_e, method, steps=12 if degenerate else 4)
    at = evaluate(rot, sigma_g, sigma_e, method, gradient=True)
    # converged: a stationary point in the Cholesky coordinates (on the boundary of the cone
    # too, where the gradient in (Σg, Σe) need not vanish but the one in L_g does)
    theta = to_cholesky(sigma_g, sigma_e)
    grad = _cholesky_gradient(theta, T, at.grad_g, at.grad_e)
    stationary = bool(np.abs(grad).max() < GRADIENT_TOLERANCE * max(1.0, abs(at.loglik)))
    message = str(best.message)
    if degenerate:
        message = (
            "ML with the null space of K in the span of X (no global maximum): the local "
            f"maximum next to the maximum on the range of K ({message})"
            + (
                ""
                if stationary
                else "; there is none nearby: the likelihood keeps increasing toward a singular Σe"
            )
        )
    return Optimum(
        sigma_g=sigma_g,
        sigma_e=sigma_e,
        at=at,
        converged=stationary,
        iterations=int(best.nit),
        message=message,
    )


def _whitening(sigma_e: np.ndarray) -> np.ndarray:
    r"""The linear map M from whitened to natural coordinates: vech Σ = M vech Σ'.

    Notes
    -----
    With :math:`\Sigma_e = LL^\top`, :math:`\Sigma = L\Sigma'L^\top` for both Σg and Σe, so
    Σe' = I at the estimate: a step of :data:`HESSIAN_STEP` in any whitened coordinate keeps
    Σe positive definite however correlated the traits are.
    """
    T = sigma_e.shape[0]
    L = np.linalg.cholesky(sigma_e)
    m = T * (T + 1) // 2
    block = np.empty((m, m))
    for j in range(m):
        e = np.zeros(m)
        e[j] = 1.0
        block[:, j] = _vech(L @ _unvech(e, T) @ L.T)
    M = np.zeros((2 * m, 2 * m))
    M[:m, :m] = block
    M[m:, m:] = block
    return M


def _gradient_phi(
    rot: RotatedTraits, phi: np.ndarray, method: str
) -> tuple[np.ndarray, float, Evaluation]:
    T = rot.n_traits
    m = T * (T + 1) // 2
    at = evaluate(rot, _unvech(phi[:m], T), _unvech(phi[m:], T), method, gradient=True)
    grad = np.concatenate([_vech_gradient(at.grad_g), _vech_gradient(at.grad_e)])
    return grad, at.loglik, at


def hessian(
    rot: RotatedTraits, sigma_g: np.ndarray, sigma_e: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    r"""Hessian of ℓ in φ = (vech Σg, vech Σe), by differences of the analytic gradient.

    Returns
    -------
    H : ndarray
        The Hessian in φ [shape: (T(T+1), T(T+1))].
    M : ndarray
        The whitening map of :func:`_whitening` used for the differences.

    Notes
    -----
    Central differences of the gradient in the whitened coordinates (Σe' = I) with steps h and
    h/2, Richardson-extrapolated (error O(h⁴)), with h = :data:`HESSIAN_STEP` (on Σg' also at
    most 0.1/max sᵢ, so that every sᵢΣg + Σe stays positive definite at a boundary estimate),
    then mapped back: :math:`H_\phi = M^{-\top} H_{\phi'} M^{-1}`.
    """
    T = rot.n_traits
    m = T * (T + 1) // 2
    M = _whitening(sigma_e)
    phi0 = np.concatenate([_vech(sigma_g), _vech(sigma_e)])
    steps = np.full(2 * m, HESSIAN_STEP)
    steps[:m] = min(HESSIAN_STEP, 0.1 / max(float(rot.s.max()), 1.0))

    def grad_white(delta: np.ndarray) -> np.ndarray:
        return M.T @ _gradient_phi(rot, phi0 + M @ delta, method)[0]

    def differences(scale: float) -> np.ndarray:
        H = np.empty((2 * m, 2 * m))
        for j in range(2 * m):
            e = np.zeros(2 * m)
            e[j] = steps[j] * scale
            H[:, j] = (grad_white(e) - grad_white(-e)) / (2 * e[j])
        return H

    for _ in range(3):  # smaller steps where a step left the domain (Σe nearly singular)
        Hw = (4 * differences(0.5) - differences(1.0)) / 3
        if np.isfinite(Hw).all():
            break
        steps = steps / 100
    Hw = 0.5 * (Hw + Hw.T)
    M_inv = np.linalg.inv(M)
    return M_inv.T @ Hw @ M_inv, M


def _newton(
    rot: RotatedTraits, sigma_g: np.ndarray, sigma_e: np.ndarray, method: str, steps: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Newton steps on φ from an interior estimate (kept only while ℓ increases)."""
    T = rot.n_traits
    m = T * (T + 1) // 2
    for _ in range(steps):
        if _boundary(sigma_g, sigma_e):
            break
        phi = np.concatenate([_vech(sigma_g), _vech(sigma_e)])
        grad, value, _ = _gradient_phi(rot, phi, method)
        H, _ = hessian(rot, sigma_g, sigma_e, method)
        try:
            values = np.linalg.eigvalsh(-H)
            if values.min() <= 0:
                break
            step = np.linalg.solve(-H, grad)
        except np.linalg.LinAlgError:
            break
        new = phi + step
        sg, se = _unvech(new[:m], T), _unvech(new[m:], T)
        if np.linalg.eigvalsh(sg).min() < 0 or np.linalg.eigvalsh(se).min() <= 0:
            break
        if not evaluate(rot, sg, se, method).loglik >= value:
            break
        sigma_g, sigma_e = sg, se
        if np.abs(step).max() < 1e-13 * max(1.0, np.abs(phi).max()):
            break
    return sigma_g, sigma_e


# --------------------------------------------------------------------------------------------
# Derived quantities, the boundary, and their standard errors
# --------------------------------------------------------------------------------------------


def _correlation(S: np.ndarray) -> np.ndarray:
    """Correlation matrix of a covariance; 0 off the diagonal where a variance is 0."""
    sd = np.sqrt(np.clip(np.diag(S), 0.0, None))
    outer = np.outer(sd, sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        R = np.where(outer > 0, S / np.where(outer > 0, outer, 1.0), 0.0)
    R = np.clip(R, -1.0, 1.0)
    R[np.diag_indices(S.shape[0])] = 1.0
    return R


def _h2(sigma_g: np.ndarray, sigma_e: np.ndarray) -> np.ndarray:
    g, e = np.diag(sigma_g), np.diag(sigma_e)
    return np.clip(g / (g + e), 0.0, 1.0)


def boundary_terms(sigma_g: np.ndarray, sigma_e: np.ndarray, traits: list[str]) -> list[str]:
    """What puts an estimate on the boundary of the parameter space (empty when interior)."""
    h2 = _h2(sigma_g, sigma_e)
    out = [f"h2[{traits[t]}] = 0" for t in np.flatnonzero(h2 <= BOUNDARY)]
    out += [f"h2[{traits[t]}] = 1" for t in np.flatnonzero(h2 >= 1 - BOUNDARY)]
    keep = np.flatnonzero(h2 > BOUNDARY)
    if keep.size >= 2:
        rg = _correlation(sigma_g[np.ix_(keep, keep)])
        if np.linalg.eigvalsh(rg).min() <= BOUNDARY:
            out.append(
                "the genetic correlation matrix is singular"
                + (f" (rg = {rg[0, 1]:+.6f})" if keep.size == 2 else "")
            )
    re = _correlation(sigma_e)
    if np.linalg.eigvalsh(re).min() <= BOUNDARY:
        out.append("the residual correlation matrix is singular")
    return out


def _boundary(sigma_g: np.ndarray, sigma_e: np.ndarray) -> bool:
    return bool(boundary_terms(sigma_g, sigma_e, [str(t) for t in range(sigma_g.shape[0])]))


def _quantity_gradients(
    sigma_g: np.ndarray, sigma_e: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Derivatives of h²_t, rg_ab, re_ab with respect to φ = (vech Σg, vech Σe).

    Returns arrays [shape: (T, 2m)], (T, T, 2m) and (T, T, 2m) with m = T(T+1)/2.
    """
    T = sigma_g.shape[0]
    m = T * (T + 1) // 2
    rows, cols = _tril(T)
    index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(rows, cols, strict=True))}
    index.update({(b, a): k for (a, b), k in list(index.items())})
    g, e = np.diag(sigma_g), np.diag(sigma_e)
    dh2 = np.zeros((T, 2 * m))
    for t in range(T):
        p = g[t] + e[t]
        dh2[t, index[t, t]] = e[t] / p**2
        dh2[t, m + index[t, t]] = -g[t] / p**2

    def corr(S: np.ndarray, offset: int) -> np.ndarray:
        v = np.diag(S)
        out = np.zeros((T, T, 2 * m))
        for a in range(T):
            for b in range(T):
                if a == b or v[a] <= 0 or v[b] <= 0:
                    continue
                r = S[a, b] / np.sqrt(v[a] * v[b])
                out[a, b, offset + index[a, b]] += 1.0 / np.sqrt(v[a] * v[b])
                out[a, b, offset + index[a, a]] += -0.5 * r / v[a]
                out[a, b, offset + index[b, b]] += -0.5 * r / v[b]
        return out

    return dh2, corr(sigma_g, 0), corr(sigma_e, m)


@dataclass(frozen=True)
class Uncertainty:
    """Standard errors in standardized units (h², rg, re are unit-free)."""

    phi_cov: np.ndarray
    h2_se: np.ndarray
    rg_se: np.ndarray
    re_se: np.ndarray
    method: str
    h2_ci: np.ndarray | None = None
    rg_ci: np.ndarray | None = None
    re_ci: np.ndarray | None = None


def _phi_covariance(H: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(−H)⁻¹, computed in whitened coordinates; directions of no curvature floored.

    Notes
    -----
    In the whitened coordinates the information is well scaled, so its eigenvalues are
    compared with the largest; an eigenvalue at or below 1e-10 of it (a direction the data do
    not inform, only possible at a boundary) is floored there, giving a large but finite SE
    (as is a direction whose differences left the domain even with steps 10⁻⁴ as small).
    """
    info = -(M.T @ np.where(np.isfinite(H), H, 0.0) @ M)
    values, vectors = np.linalg.eigh(0.5 * (info + info.T))
    floor = 1e-10 * max(float(values.max()), 1e-300)
    values = np.maximum(values, floor)
    cov_white = (vectors / values) @ vectors.T
    return M @ cov_white @ M.T


def information_uncertainty(
    rot: RotatedTraits, sigma_g: np.ndarray, sigma_e: np.ndarray, method: str
) -> Uncertainty:
    r"""SEs of Σg, Σe, h², rg and re from the observed information (delta method).

    Notes
    -----
    :math:`\operatorname{cov}(\hat\phi) = (-\partial^2\ell/\partial\phi^2)^{-1}` with
    φ = (vech Σg, vech Σe) (:func:`hessian`), and for a function q(φ) (h², rg, re)
    :math:`\operatorname{se}(q)^2 = \nabla q^\top \operatorname{cov}(\hat\phi)\nabla q`.
    """
    H, M = hessian(rot, sigma_g, sigma_e, method)
    cov = _phi_covariance(H, M)
    dh2, drg, dre = _quantity_gradients(sigma_g, sigma_e)

    def se(grad: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(np.einsum("...i,ij,...j->...", grad, cov, grad), 0.0, None))

    return Uncertainty(cov, se(dh2), se(drg), se(dre), SE_INFORMATION)


class ProfileMap:
    r"""Σg and Σe from per-trait h², σp and the Cholesky factors of the correlation matrices.

    Parameters
    ----------
    T : int
        Number of traits.
    order : sequence of int
        The traits in the order of this parametrization (the pair whose correlation is
        profiled first), as positions in the data.

    Notes
    -----
    θ = (a, τ, v_g, v_e): :math:`h^2_t = a_t^2` with :math:`a_t \in [0, 1)`,
    :math:`\sigma_{p,t} = e^{\tau_t}`, and the rows k ≥ 1 of the lower-triangular Cholesky
    factor of the genetic (residual) correlation matrix :math:`v_k/\lVert v_k\rVert`,
    :math:`v_k \in \mathbb{R}^{k+1}` (row 0 is (1, 0, …)). Then
    :math:`\Sigma_{g,ab} = a_a a_b\sigma_{p,a}\sigma_{p,b}R_{g,ab}` and
    :math:`\Sigma_{e,ab} = \sqrt{(1-a_a^2)(1-a_b^2)}\,\sigma_{p,a}\sigma_{p,b}R_{e,ab}`: every
    h² in [0, 1) and every correlation matrix (singular ones included) is reachable, h²_t is
    one coordinate, and the correlation of the first two traits is the entry
    :math:`v_{1,0}` when :math:`v_1` is held at :math:`(\rho, \sqrt{1-\rho^2})`. The map uses
    only arithmetic, ``exp`` and ``sqrt``, so its Jacobian comes exactly from complex steps.
    """

    def __init__(self, T: int, order: np.ndarray) -> None:
        self.T = T
        self.order = np.asarray(order)
        self.back = np.argsort(self.order)
        self.row_size = T * (T - 1) // 2 + (T - 1)  # entries of v_1..v_{T-1}
        self.size = 2 * T + 2 * self.row_size

    def rows_offset(self, which: str) -> int:
        """Index of v_1 (the first free row) of the genetic or residual factor."""
        return 2 * self.T + (0 if which == "g" else self.row_size)

    def _factor(self, v: np.ndarray) -> np.ndarray:
        """Cholesky factors of correlation matrices from their free rows [batch..., T, T]."""
        T = self.T
        L = np.zeros((*v.shape[:-1], T, T), dtype=v.dtype)
        L[..., 0, 0] = 1.0
        pos = 0
        for k in range(1, T):
            row = v[..., pos : pos + k + 1]
            L[..., k, : k + 1] = row / np.sqrt(np.sum(row * row, axis=-1, keepdims=True))
            pos += k + 1
        return L

    def sigmas(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Σg, Σe) in the data's trait order [shape: (batch..., T, T)] (complex θ allowed)."""
        T = self.T
        a, sp = theta[..., :T], np.exp(theta[..., T : 2 * T])
        b = np.sqrt(1.0 - a * a)
        off = 2 * T
        Lg = self._factor(theta[..., off : off + self.row_size])
        Le = self._factor(theta[..., off + self.row_size :])
        Rg = Lg @ np.swapaxes(Lg, -1, -2)
        Re = Le @ np.swapaxes(Le, -1, -2)
        dg, de = a * sp, b * sp
        Sg = dg[..., :, None] * dg[..., None, :] * Rg
        Se = de[..., :, None] * de[..., None, :] * Re
        back = self.back
        return Sg[..., back[:, None], back[None, :]], Se[..., back[:, None], back[None, :]]

    def jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∂Σg/∂θ and ∂Σe/∂θ by complex steps [shape: (p, T, T)] each, in one batched call."""
        step = 1e-30
        batch = theta[None, :] + 1j * step * np.eye(theta.size)
        Sg, Se = self.sigmas(batch)
        return Sg.imag / step, Se.imag / step

    def start(self, sigma_g: np.ndarray, sigma_e: np.ndarray) -> np.ndarray:
        """θ for a given (Σg, Σe) (h² < 1, a singular correlation matrix nudged to full rank)."""
        T = self.T
        Sg = sigma_g[np.ix_(self.order, self.order)]
        Se = sigma_e[np.ix_(self.order, self.order)]
        sp2 = np.diag(Sg) + np.diag(Se)
        a = np.sqrt(np.clip(np.diag(Sg) / sp2, 0.0, H2_MAX))
        parts = [a, 0.5 * np.log(sp2)]
        for S in (Sg, Se):
            R = _correlation(S)
            L = np.linalg.cholesky((R + 1e-9 * np.eye(T)) / (1 + 1e-9))
            parts.append(np.concatenate([L[k, : k + 1] for k in range(1, T)]))
        return np.concatenate(parts)


@dataclass
class _Profiler:
    """Profile log-likelihoods of h², rg and re by L-BFGS-B over the other parameters."""

    rot: RotatedTraits
    method: str
    sigma_g: np.ndarray
    sigma_e: np.ndarray
    best: float
    cache: dict = field(default_factory=dict)

    def maximize_fixed(self, pm: ProfileMap, fixed: dict[int, float], start: np.ndarray) -> tuple:
        free = np.array([j for j in range(pm.size) if j not in fixed])
        T = self.T

        def full(x: np.ndarray) -> np.ndarray:
            theta = start.copy()
            theta[free] = x
            for j, value in fixed.items():
                theta[j] = value
            return theta

        def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
            theta = full(x)
            sg, se = pm.sigmas(theta)
            at = evaluate(self.rot, sg, se, self.method, gradient=True)
            if not np.isfinite(at.loglik):
                return 1e300, np.zeros_like(x)
            dg, de = pm.jacobian(theta)
            grad = np.einsum("pab,ab->p", dg, at.grad_g) + np.einsum("pab,ab->p", de, at.grad_e)
            return -at.loglik, -grad[free]

        bounds = [(0.0, np.sqrt(H2_MAX)) if j < T else (None, None) for j in free]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = optimize.minimize(
                negative,
                start[free],
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"ftol": 1e-13, "gtol": 1e-8, "maxiter": 1000},
            )
        return -float(res.fun), full(res.x)

    @property
    def T(self) -> int:
        return self.rot.n_traits

    def curve(
        self, pm: ProfileMap, fix: Callable[[float], dict[int, float]], key: tuple
    ) -> Callable[[float], float]:
        """ℓ_p(q): the better of two maximizations, from the estimate and from the nearest q."""
        solved: dict[float, tuple[float, np.ndarray]] = self.cache.setdefault(key, {})
        origin = pm.start(self.sigma_g, self.sigma_e)

        def value(q: float) -> float:
            if q in solved:
                return solved[q][0]
            loglik, theta = self.maximize_fixed(pm, fix(q), origin)
            if solved:  # also from the nearest q solved; the better answer is kept
                near = min(solved, key=lambda x: abs(x - q))
                other, theta_other = self.maximize_fixed(pm, fix(q), solved[near][1])
                if other > loglik:
                    loglik, theta = other, theta_other
            solved[q] = (loglik, theta)
            return loglik

        return value

    def interval(
        self, value: Callable[[float], float], estimate: float, lo: float, hi: float
    ) -> tuple[float, float]:
        """Where the profile drops by χ²₁(0.95)/2 from the maximum, within [lo, hi]."""
        target = self.best - CHI2_HALF

        def gap(q: float) -> float:
            return value(q) - target

        estimate = float(np.clip(estimate, lo, hi))
        lower = lo if estimate <= lo or gap(lo) >= 0 else _root(gap, lo, estimate)
        upper = hi if estimate >= hi or gap(hi) >= 0 else _root(gap, estimate, hi)
        return lower, upper


def _root(gap: Callable[[float], float], lo: float, hi: float) -> float:
    """A root of gap in [lo, hi] (gap(lo) and gap(hi) of opposite signs, or the nearer end)."""
    g_lo, g_hi = gap(lo), gap(hi)
    if g_lo * g_hi > 0:
        return lo if abs(g_lo) < abs(g_hi) else hi
    return float(optimize.brentq(gap, lo, hi, xtol=PROFILE_XTOL))


def profile_uncertainty(
    rot: RotatedTraits, sigma_g: np.ndarray, sigma_e: np.ndarray, method: str, best: float
) -> Uncertainty:
    """SEs of h², rg and re from 95 % profile-likelihood intervals (width / 3.92).

    Notes
    -----
    Used where the estimate is on the boundary (a trait with h² = 0 or 1, |rg| = 1, a singular
    genetic correlation matrix), where the observed information of h² and rg is singular or
    the delta method does not apply. Each interval is found by Brent's method on the profile
    log-likelihood (the others maximized by L-BFGS-B with the analytic gradient, in the
    parametrization of :class:`ProfileMap`), clipped to [0, 1] for h² and [−1, 1] for the
    correlations. A correlation with a trait whose h² is 0 is not identified: its profile is
    flat and its interval is [−1, 1] (SE 0.51). The SEs of Σg and Σe themselves still come
    from the observed information (their log-likelihood is smooth at the boundary of the cone).

    ML has no global maximum when the null space of K lies in the span of X (:func:`absorbed`);
    its estimate is then a local maximum, and the ML profiles are those of the likelihood of
    the r rotated rows on the range of K (:func:`ranged`: bounded; it differs by O((N − r)/N)),
    maximized afresh.
    """
    T = rot.n_traits
    target = rot
    if method == "ml" and absorbed(rot):
        target, best = ranged(rot), -np.inf
    identity = ProfileMap(T, np.arange(T))
    prof = _Profiler(target, method, sigma_g, sigma_e, best)
    top, _ = prof.maximize_fixed(identity, {}, identity.start(sigma_g, sigma_e))
    prof.best = max(best, top)
    h2 = _h2(sigma_g, sigma_e)
    h2_ci = np.empty((T, 2))
    for t in range(T):
        value = prof.curve(identity, lambda q, t=t: {t: np.sqrt(q)}, ("h2", t))
        h2_ci[t] = prof.interval(value, h2[t], 0.0, H2_MAX)
    rg_ci = np.zeros((T, T, 2))
    re_ci = np.zeros((T, T, 2))
    for which, S, ci in (("g", sigma_g, rg_ci), ("e", sigma_e, re_ci)):
        R = _correlation(S)
        for a in range(T):
            for b in range(a + 1, T):
                order = np.array([a, b, *[k for k in range(T) if k not in (a, b)]])
                pm = ProfileMap(T, order)
                j = pm.rows_offset(which)

                def fix(q: float, j: int = j) -> dict[int, float]:
                    return {j: q, j + 1: np.sqrt(max(1.0 - q * q, 0.0))}

                value = prof.curve(pm, fix, (which, a, b))
                ci[a, b] = ci[b, a] = prof.interval(value, R[a, b], -1.0, 1.0)
        ci[np.diag_indices(T)] = 1.0
    width = (h2_ci[:, 1] - h2_ci[:, 0]) / (2 * Z95)
    rg_se = (rg_ci[..., 1] - rg_ci[..., 0]) / (2 * Z95)
    re_se = (re_ci[..., 1] - re_ci[..., 0]) / (2 * Z95)
    H, M = hessian(rot, sigma_g, sigma_e, method)
    return Uncertainty(_phi_covariance(H, M), width, rg_se, re_se, SE_PROFILE, h2_ci, rg_ci, re_ci)


# --------------------------------------------------------------------------------------------
# The result and the public entry point
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiRemlFit:
    """Multi-trait (RE)ML estimate of the genetic and residual covariance matrices.

    Attributes
    ----------
    traits : tuple of str
        Trait names (the columns of Y; ``trait1``, ... for an array).
    Vg, Ve : pandas.DataFrame
        Genetic and residual covariance matrices Σg and Σe (T×T, indexed both ways by trait), in
        the traits' units, Σg on the scale of K normalized to mean diagonal 1 (``kinship_scale``
        is the factor K was divided by).
    Vg_se, Ve_se : pandas.DataFrame
        Standard errors of each entry (observed information; never NaN).
    h2, h2_se : pandas.Series
        Heritability of each trait, Σg_tt/(Σg_tt + Σe_tt), and its standard error.
    rg, re : pandas.DataFrame
        Genetic and residual correlation matrices. A genetic correlation with a trait whose h²
        is 0 is not identified and is reported as 0 (its SE is that of a flat profile).
    rg_se, re_se : pandas.DataFrame
        Their standard errors (0 on the diagonal; never NaN).
    se_method : str
        ``"observed information"`` (interior estimate: delta method on the inverse Hessian in
        (Σg, Σe)) or ``"profile likelihood"`` (estimate on the boundary: SEs of h², rg and re are
        the widths of their 95 % profile-likelihood intervals / 3.92).
    boundary : tuple of str
        What puts the estimate on the boundary (e.g. ``"h2[bmi] = 0"``); empty when interior.
    loglik : float
        Maximized (restricted) log-likelihood of Y in the user's units (GEMMA's convention, as
        :func:`bayeslmm.reml`): y_t → a_t·y_t + b_t shifts it by −N·log|a_t| (ML) or
        −(N − d)·log|a_t| (REML) per trait and changes nothing else.
    B, B_se : pandas.DataFrame
        GLS fixed effects (covariates × traits) at the estimate, and their standard errors.
    method : str
        ``"reml"`` or ``"ml"``.
    n : int
        Samples analysed (complete in every trait and covariate).
    kinship_scale : float
        The factor K was divided by (1 with ``normalize=False``).
    converged : bool
        Whether the optimizer reached its tolerance (or the boundary).
    iterations : int
        BFGS iterations of the best start.
    optimizer_message : str
        The optimizer's message.
    dropped : dict
        Samples dropped, by reason.
    intervals : dict
        With ``se_method == "profile likelihood"``: the 95 % profile intervals, ``"h2"``
        (DataFrame, columns lower/upper), ``"rg"`` and ``"re"`` (dicts (a, b) → (lower, upper)).
    """

    traits: tuple[str, ...]
    Vg: pd.DataFrame
    Ve: pd.DataFrame
    Vg_se: pd.DataFrame
    Ve_se: pd.DataFrame
    h2: pd.Series
    h2_se: pd.Series
    rg: pd.DataFrame
    rg_se: pd.DataFrame
    re: pd.DataFrame
    re_se: pd.DataFrame
    se_method: str
    boundary: tuple[str, ...]
    loglik: float
    B: pd.DataFrame
    B_se: pd.DataFrame
    method: str
    n: int
    kinship_scale: float
    converged: bool
    iterations: int
    optimizer_message: str
    dropped: dict[str, int] = field(default_factory=dict)
    intervals: dict[str, Any] = field(default_factory=dict)

    @property
    def at_boundary(self) -> bool:
        """Whether the estimate is on the boundary of the parameter space."""
        return bool(self.boundary)

    def to_series(self) -> pd.Series:
        """The results as one Series (for tables and TSV output, as ``RemlFit.to_series``).

        Returns
        -------
        pandas.Series
            Per trait ``h2[t]``, ``h2_se[t]`` (and ``h2_lower[t]``, ``h2_upper[t]`` with profile
            intervals); per pair a ≤ b ``Vg[a,b]``, ``Vg_se[a,b]``, ``Ve[a,b]``, ``Ve_se[a,b]``;
            per pair a < b ``rg[a,b]``, ``rg_se[a,b]``, ``re[a,b]``, ``re_se[a,b]`` (and their
            profile bounds); then ``se_method``, ``boundary`` (``"; "``-joined), ``loglik``,
            ``at_boundary``, ``method``, ``n``, ``kinship_scale``, ``converged``,
            ``iterations``, ``optimizer_message``.
        """
        out: dict[str, Any] = {}
        h2_ci = self.intervals.get("h2")
        for t in self.traits:
            out[f"h2[{t}]"] = float(self.h2[t])
            out[f"h2_se[{t}]"] = float(self.h2_se[t])
            if h2_ci is not None:
                out[f"h2_lower[{t}]"] = float(h2_ci.loc[t, "lower"])
                out[f"h2_upper[{t}]"] = float(h2_ci.loc[t, "upper"])
        pairs = [(a, b) for i, a in enumerate(self.traits) for b in self.traits[i:]]
        for name in ("Vg", "Ve"):
            value, se = getattr(self, name), getattr(self, f"{name}_se")
            for a, b in pairs:
                out[f"{name}[{a},{b}]"] = float(value.loc[a, b])
                out[f"{name}_se[{a},{b}]"] = float(se.loc[a, b])
        for name in ("rg", "re"):
            value, se = getattr(self, name), getattr(self, f"{name}_se")
            bounds = self.intervals.get(name)
            for a, b in ((a, b) for a, b in pairs if a != b):
                out[f"{name}[{a},{b}]"] = float(value.loc[a, b])
                out[f"{name}_se[{a},{b}]"] = float(se.loc[a, b])
                if bounds is not None:
                    out[f"{name}_lower[{a},{b}]"], out[f"{name}_upper[{a},{b}]"] = bounds[(a, b)]
        out.update(
            se_method=self.se_method,
            boundary="; ".join(self.boundary),
            loglik=self.loglik,
            at_boundary=self.at_boundary,
            method=self.method,
            n=self.n,
            kinship_scale=self.kinship_scale,
            converged=self.converged,
            iterations=self.iterations,
            optimizer_message=self.optimizer_message,
        )
        return pd.Series(out, dtype=object)

    def __str__(self) -> str:
        T = len(self.traits)
        lines = [
            f"multi-trait {self.method.upper()} fit of {T} traits on {self.n} samples"
            + (f" (boundary: {'; '.join(self.boundary)})" if self.boundary else ""),
            f"  SEs from the {self.se_method}; loglik {self.loglik:.6f}",
        ]
        for t in self.traits:
            lines.append(
                f"  h2[{t}] {self.h2[t]:.4f} (SE {self.h2_se[t]:.4f})  "
                f"Vg {self.Vg.loc[t, t]:.6g}  Ve {self.Ve.loc[t, t]:.6g}"
            )
        for i in range(T):
            for j in range(i + 1, T):
                a, b = self.traits[i], self.traits[j]
                lines.append(
                    f"  rg[{a}, {b}] {self.rg.loc[a, b]:+.4f} (SE {self.rg_se.loc[a, b]:.4f})  "
                    f"re {self.re.loc[a, b]:+.4f} (SE {self.re_se.loc[a, b]:.4f})"
                )
        return "\n".join(lines)


def _traits(Y: Any) -> tuple[np.ndarray, list[str], pd.Index | None]:
    """Values [shape: (N, T)], trait names, and the sample IDs of Y (None for an array)."""
    if isinstance(Y, pd.DataFrame):
        names = [str(c) for c in Y.columns]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"Y has duplicated trait names {dup}; rename the columns.")
        for col in Y.columns:
            if not pd.api.types.is_numeric_dtype(Y[col].dtype) or Y[col].dtype == bool:
                raise InputError(
                    f"trait '{col}' is not numeric (dtype {Y[col].dtype}); convert it to numbers."
                )
        values = Y.to_numpy(dtype=float, na_value=np.nan)
        index: pd.Index | None = Y.index
    elif isinstance(Y, pd.Series):
        raise InputError(
            "Y is one phenotype (a Series); the multi-trait fit needs a table of T ≥ 2 trait "
            "columns (use bl.reml for one trait)."
        )
    else:
        try:
            values = np.asarray(Y, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"Y could not be read as numbers ({exc}).") from None
        if values.ndim != 2:
            raise InputError(
                f"Y must be a table of traits [shape (n_samples, n_traits)], got shape "
                f"{values.shape}."
            )
        names = [f"trait{t + 1}" for t in range(values.shape[1])]
        index = None
    if values.shape[1] < 2:
        raise InputError(
            f"Y has {values.shape[1]} trait column(s); the multi-trait fit needs at least 2 "
            "(use bl.reml for one trait)."
        )
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"Y has duplicated trait names {dup}; rename the columns.")
    if np.isinf(values).any():
        t = int(np.flatnonzero(np.isinf(values).any(axis=0))[0])
        raise InputError(f"trait '{names[t]}' has infinite values; fix them or set them to NaN.")
    return values, names, index


def _check_traits(Y: np.ndarray, X: np.ndarray, names: list[str]) -> None:
    """Constant traits, and traits that are a combination of the others and the covariates."""
    for t, name in enumerate(names):
        if np.ptp(Y[:, t]) == 0:
            raise InputError(
                f"trait '{name}' is constant ({Y[0, t]:g}) over the {Y.shape[0]} samples "
                "analysed; there is no variance to partition (remove it)."
            )
    Q, _ = np.linalg.qr(X)
    R = Y - Q @ (Q.T @ Y)
    norms = np.linalg.norm(R, axis=0)
    for t, name in enumerate(names):
        if norms[t] <= 1e-10 * max(np.linalg.norm(Y[:, t]), 1e-300):
            raise InputError(
                f"trait '{name}' is a combination of the covariates (no residual variance); "
                "remove it or the covariates that explain it."
            )
    sv = np.linalg.svd(R / norms, compute_uv=False)
    if sv[-1] <= 1e-7 * sv[0]:
        raise InputError(
            f"the traits {names} are linearly dependent given the covariates (a trait is a "
            "combination of the others: the residual covariance Σe would be singular); remove "
            "the redundant trait."
        )


def reml_multivariate(
    Y: Any,
    K: Any,
    X: Any = None,
    *,
    method: str = "reml",
    normalize: bool = True,
) -> MultiRemlFit:
    r"""Estimate the genetic and residual covariance matrices of several traits by REML or ML.

    Parameters
    ----------
    Y
        Traits [shape: (n_samples, n_traits)], T ≥ 2: a DataFrame of trait columns indexed by
        sample ID, or an array aligned by position with K. Samples missing any trait are dropped
        (complete cases) with a DataWarning that says how many.
    K
        Kinship [shape: (n_samples, n_samples)]: array, DataFrame indexed by ID, Kinship, or a
        :class:`~bayeslmm.linalg.spectral.Spectral`.
    X
        Covariates [shape: (n_samples, n_covariates)], the same for every trait; an intercept is
        added unless X spans the constant. None: intercept only.
    method : {"reml", "ml"}
    normalize
        Divide K by its mean diagonal first (h² then matches GCTA and GEMMA's PVE).

    Returns
    -------
    MultiRemlFit

    Raises
    ------
    InputError
        Fewer than two traits, a non-numeric or constant trait, traits that are linearly
        dependent given the covariates, no sample shared by Y, K and X, several kinships or a
        Gram.

    Notes
    -----
    The model is :math:`Y = XB + U + E`, :math:`\operatorname{vec}(U) \sim N(0, \Sigma_g\otimes
    K)`, :math:`\operatorname{vec}(E) \sim N(0, \Sigma_e\otimes I)`. Each trait is first
    replaced by its least-squares residual on X in units of its residual SD
    (:func:`~bayeslmm.linalg.spectral.standardize`), so the fit does not depend on units or
    offsets; Σg, Σe, B and the log-likelihood are transformed back exactly. In the eigenbasis
    of K, with Σg and Σe diagonalized together, the (restricted) likelihood and its gradient
    cost O(r·T·d² + T³) per evaluation (see :func:`evaluate`).

    The likelihood is maximized by BFGS with the analytic gradient over the Cholesky factors
    :math:`\Sigma_g = L_gL_g^\top` (any lower-triangular :math:`L_g`: positive semi-definite,
    so h² = 0 and rg = ±1 are legal answers) and :math:`\Sigma_e = L_eL_e^\top` (positive
    diagonal), from two starting points (one-trait fits with rg = re = the phenotypic
    correlation, and with rg = 0), then polished by Newton steps on (Σg, Σe) when interior.

    Standard errors: at an interior estimate, the observed information in
    φ = (vech Σg, vech Σe) from differences of the analytic gradient, and the delta method
    for h², rg and re. On the boundary (h² = 0 or 1, a singular genetic correlation matrix such
    as rg = ±1), where that information is singular for h² and rg, every SE of h², rg and re
    is the width of its 95 % profile-likelihood interval divided by 2·1.96
    (``se_method = "profile likelihood"``; the intervals are in ``intervals``).

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayeslmm as bl
    >>> d = bl.simulate(300, 500, h2=0.5, seed=1)
    >>> Y = np.column_stack([d.y, d.y + np.random.default_rng(0).normal(size=300)])
    >>> fit = bl.reml_multivariate(Y, d.K)
    >>> fit.rg.shape
    (2, 2)
    """
    if method not in ("reml", "ml"):
        raise InputError(f"method must be 'reml' or 'ml', got {method!r}.")
    if isinstance(K, Gram):
        raise InputError(
            "the multi-trait fit takes a kinship (bl.kinship(genotypes, method=gram.method)), "
            "not a Gram, so far."
        )
    if isinstance(K, list | tuple | Mapping):
        raise InputError(
            "the multi-trait fit takes one kinship; several variance components with several "
            "traits are not supported."
        )
    values, names, index = _traits(Y)
    complete = ~np.isnan(values).any(axis=1)
    proxy_values = np.where(complete, np.arange(values.shape[0], dtype=float), np.nan)
    label = f"value of a trait in {names} (complete cases only)"
    proxy: Any = proxy_values if index is None else pd.Series(proxy_values, index, name=label)
    prepared, spectral = kinship_inputs(proxy, K, X, normalize=normalize)
    rows = prepared.y.astype(np.int64)
    Yp = values[rows]
    _check_traits(Yp, prepared.X, names)
    T = len(names)
    stds = [standardize(Yp[:, t], prepared.X) for t in range(T)]
    Ys = np.column_stack([s.y for s in stds])
    Xs = stds[0].X
    rot = rotate_traits(spectral, Ys, Xs)
    opt = maximize(rot, method)
    if not opt.converged:
        warnings.warn(
            f"the multi-trait {method.upper()} fit did not reach a maximum ({opt.message}); "
            + (
                "ML has none here: the null space of K lies in the span of the covariates (a "
                "centred kinship with an intercept), so the ML likelihood grows without bound "
                "as Σe becomes singular and has no local maximum for these data. Use "
                "method='reml' (which has no such problem)."
                if method == "ml" and absorbed(rot)
                else "the estimates are where the optimizer stopped."
            ),
            BayeslmmWarning,
            stacklevel=2,
        )
    sg, se = opt.sigma_g, opt.sigma_e
    h2 = _h2(sg, se)
    zero = h2 <= BOUNDARY
    if zero.any():  # h² = 0: the genetic row of that trait is 0 (to round-off)
        sg = sg.copy()
        sg[zero, :] = 0.0
        sg[:, zero] = 0.0
    at = evaluate(rot, sg, se, method)
    boundary = boundary_terms(sg, se, names)
    if boundary:
        unc = profile_uncertainty(rot, sg, se, method, max(at.loglik, opt.at.loglik))
    else:
        unc = information_uncertainty(rot, sg, se, method)
    scale = np.array([s.scale for s in stds])
    m = T * (T + 1) // 2
    phi_se = np.sqrt(np.clip(np.diag(unc.phi_cov), 0.0, None))
    outer = np.outer(scale, scale)
    Vg_se = _unvech(phi_se[:m], T) * outer
    Ve_se = _unvech(phi_se[m:], T) * outer
    n_eff = prepared.n - (prepared.X.shape[1] if method == "reml" else 0)
    loglik = float(at.loglik - n_eff * np.log(scale).sum())
    B = np.column_stack([stds[t].beta(at.B[:, t]) for t in range(T)])
    B_se = np.column_stack([np.sqrt(np.diag(stds[t].beta_cov(at.B_cov[t]))) for t in range(T)])
    covariates = list(prepared.covariates)

    def square(values: np.ndarray, name: str) -> pd.DataFrame:
        frame = pd.DataFrame(values, index=names, columns=names)
        frame.index.name, frame.columns.name = "trait", "trait2"
        frame.attrs["name"] = name
        return frame

    rg, re = _correlation(sg), _correlation(se)
    intervals: dict[str, Any] = {}
    if unc.h2_ci is not None:
        intervals["h2"] = pd.DataFrame(unc.h2_ci, index=names, columns=["lower", "upper"])
        for key, ci in (("rg", unc.rg_ci), ("re", unc.re_ci)):
            intervals[key] = {
                (names[a], names[b]): (float(ci[a, b, 0]), float(ci[a, b, 1]))
                for a in range(T)
                for b in range(a + 1, T)
            }
    return MultiRemlFit(
        traits=tuple(names),
        Vg=square(sg * outer, "Vg"),
        Ve=square(se * outer, "Ve"),
        Vg_se=square(Vg_se, "Vg_se"),
        Ve_se=square(Ve_se, "Ve_se"),
        h2=pd.Series(_h2(sg, se), index=names, name="h2"),
        h2_se=pd.Series(unc.h2_se, index=names, name="h2_se"),
        rg=square(rg, "rg"),
        rg_se=square(unc.rg_se * (1 - np.eye(T)), "rg_se"),
        re=square(re, "re"),
        re_se=square(unc.re_se * (1 - np.eye(T)), "re_se"),
        se_method=unc.method,
        boundary=tuple(boundary),
        loglik=loglik,
        B=pd.DataFrame(B, index=covariates, columns=names),
        B_se=pd.DataFrame(B_se, index=covariates, columns=names),
        method=method,
        n=prepared.n,
        kinship_scale=spectral.scale,
        converged=opt.converged,
        iterations=opt.iterations,
        optimizer_message=opt.message,
        dropped=prepared.dropped,
        intervals=intervals,
    )
