"""Parametrizations of (Σg, Σe) and what is derived from them: h², correlations, the boundary."""

from __future__ import annotations

import numpy as np

#: h² at or below this (or at or above 1 minus it), or a genetic (residual) correlation matrix
#: whose smallest eigenvalue is at or below it, is a boundary estimate.
BOUNDARY = 1e-6


def lower_triangle(T: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle of a T×T matrix, row by row (vech order)."""
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
    rows, cols = lower_triangle(T)
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
    rows, cols = lower_triangle(T)
    values, vectors = np.linalg.eigh(sigma_g)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    Lg = np.linalg.qr(root.T, mode="r").T  # lower triangular with Lg Lg' = Σg
    Le = np.linalg.cholesky(sigma_e)
    Le_log = Le.copy()
    Le_log[np.diag_indices(T)] = np.log(np.diag(Le))
    return np.concatenate([Lg[rows, cols], Le_log[rows, cols]])


def cholesky_gradient(
    theta: np.ndarray, T: int, grad_g: np.ndarray, grad_e: np.ndarray
) -> np.ndarray:
    """Chain rule: ∂ℓ/∂L = 2 G L for Σ = LL' (and × L_tt on the log-diagonal)."""
    rows, cols = lower_triangle(T)
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


def vech(S: np.ndarray) -> np.ndarray:
    """The lower triangle of a symmetric S, row by row [shape: (T(T+1)/2,)]."""
    rows, cols = lower_triangle(S.shape[0])
    return S[rows, cols]


def unvech(v: np.ndarray, T: int) -> np.ndarray:
    """The symmetric T×T matrix whose :func:`vech` is v."""
    rows, cols = lower_triangle(T)
    S = np.zeros((T, T))
    S[rows, cols] = v
    S[cols, rows] = v
    return S


def vech_gradient(G: np.ndarray) -> np.ndarray:
    """∂ℓ/∂(vech Σ) from the symmetric gradient G (an off-diagonal entry moves two cells)."""
    return vech(2.0 * G - np.diag(np.diag(G)))


def correlation(S: np.ndarray) -> np.ndarray:
    """Correlation matrix of a covariance; 0 off the diagonal where a variance is 0."""
    sd = np.sqrt(np.clip(np.diag(S), 0.0, None))
    outer = np.outer(sd, sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        R = np.where(outer > 0, S / np.where(outer > 0, outer, 1.0), 0.0)
    R = np.clip(R, -1.0, 1.0)
    R[np.diag_indices(S.shape[0])] = 1.0
    return R


def heritability(sigma_g: np.ndarray, sigma_e: np.ndarray) -> np.ndarray:
    """h² of each trait, Σg_tt/(Σg_tt + Σe_tt), clipped to [0, 1] [shape: (T,)]."""
    g, e = np.diag(sigma_g), np.diag(sigma_e)
    return np.clip(g / (g + e), 0.0, 1.0)


def boundary_terms(sigma_g: np.ndarray, sigma_e: np.ndarray, traits: list[str]) -> list[str]:
    """What puts an estimate on the boundary of the parameter space (empty when interior)."""
    h2 = heritability(sigma_g, sigma_e)
    out = [f"h2[{traits[t]}] = 0" for t in np.flatnonzero(h2 <= BOUNDARY)]
    out += [f"h2[{traits[t]}] = 1" for t in np.flatnonzero(h2 >= 1 - BOUNDARY)]
    keep = np.flatnonzero(h2 > BOUNDARY)
    if keep.size >= 2:
        rg = correlation(sigma_g[np.ix_(keep, keep)])
        if np.linalg.eigvalsh(rg).min() <= BOUNDARY:
            out.append(
                "the genetic correlation matrix is singular"
                + (f" (rg = {rg[0, 1]:+.6f})" if keep.size == 2 else "")
            )
    re = correlation(sigma_e)
    if np.linalg.eigvalsh(re).min() <= BOUNDARY:
        out.append("the residual correlation matrix is singular")
    return out


def on_boundary(sigma_g: np.ndarray, sigma_e: np.ndarray) -> bool:
    """Whether (Σg, Σe) is on the boundary of the parameter space (:func:`boundary_terms`)."""
    return bool(boundary_terms(sigma_g, sigma_e, [str(t) for t in range(sigma_g.shape[0])]))
