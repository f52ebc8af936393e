"""The maximum of the multi-trait likelihood, and its observed information.

Starting points, BFGS over Cholesky factors, Newton polish, and the Hessian in
(vech Σg, vech Σe).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from bayeslmm.errors import ConvergenceError
from bayeslmm.estimation.likelihood import profile
from bayeslmm.estimation.multivariate.parameters import (
    BOUNDARY,
    cholesky_gradient,
    correlation,
    from_cholesky,
    on_boundary,
    to_cholesky,
    unvech,
    vech,
    vech_gradient,
)
from bayeslmm.estimation.multivariate.rotation import Evaluation, RotatedTraits, evaluate

#: Step of the finite differences of the analytic gradient, in whitened units (Σe = I).
HESSIAN_STEP = 1e-4
#: Largest gradient in the Cholesky coordinates, relative to max(1, |ℓ|), of a converged fit.
GRADIENT_TOLERANCE = 1e-7


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
        return -at.loglik, -cholesky_gradient(theta, T, at.grad_g, at.grad_e)

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
        if np.isfinite(res.fun) and np.linalg.eigvalsh(correlation(se)).min() > BOUNDARY:
            best = res
    sigma_g, sigma_e = from_cholesky(best.x, T)
    sigma_g, sigma_e = _newton(rot, sigma_g, sigma_e, method, steps=12 if degenerate else 4)
    at = evaluate(rot, sigma_g, sigma_e, method, gradient=True)
    # converged: a stationary point in the Cholesky coordinates (on the boundary of the cone
    # too, where the gradient in (Σg, Σe) need not vanish but the one in L_g does)
    theta = to_cholesky(sigma_g, sigma_e)
    grad = cholesky_gradient(theta, T, at.grad_g, at.grad_e)
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
        block[:, j] = vech(L @ unvech(e, T) @ L.T)
    M = np.zeros((2 * m, 2 * m))
    M[:m, :m] = block
    M[m:, m:] = block
    return M


def _gradient_phi(
    rot: RotatedTraits, phi: np.ndarray, method: str
) -> tuple[np.ndarray, float, Evaluation]:
    T = rot.n_traits
    m = T * (T + 1) // 2
    at = evaluate(rot, unvech(phi[:m], T), unvech(phi[m:], T), method, gradient=True)
    grad = np.concatenate([vech_gradient(at.grad_g), vech_gradient(at.grad_e)])
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
    phi0 = np.concatenate([vech(sigma_g), vech(sigma_e)])
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
        if on_boundary(sigma_g, sigma_e):
            break
        phi = np.concatenate([vech(sigma_g), vech(sigma_e)])
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
        sg, se = unvech(new[:m], T), unvech(new[m:], T)
        if np.linalg.eigvalsh(sg).min() < 0 or np.linalg.eigvalsh(se).min() <= 0:
            break
        if not evaluate(rot, sg, se, method).loglik >= value:
            break
        sigma_g, sigma_e = sg, se
        if np.abs(step).max() < 1e-13 * max(1.0, np.abs(phi).max()):
            break
    return sigma_g, sigma_e
