"""Closed-form conditional posteriors of the random effects and the sample-space LOO terms.

Given (β, σg², σe²), the breeding values u, the SNP effects v and the leave-one-out predictive
densities are Gaussian computations in the eigenbasis of K; this module does them for a batch
of posterior draws at once with matrix products (O(N·r) per draw). It knows nothing of PyMC.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bayeslmm.errors import SamplingWarning
from bayeslmm.spectral import Spectral

LOG_2PI = float(np.log(2 * np.pi))
#: Above this many numbers (draws × samples or SNPs) random effects are not stored.
MAX_EFFECT_VALUES = 100_000_000


def flat_draws(posterior: Any, name: str) -> np.ndarray:
    """A posterior variable with chain and draw merged [shape: (chains·draws, ...)]."""
    values = np.asarray(posterior[name].values, dtype=float)
    return values.reshape((-1, *values.shape[2:]))


def store_effects(random_effects: bool, n_values: int, what: str, stacklevel: int) -> bool:
    """Whether to store random-effect draws: asked for and at most MAX_EFFECT_VALUES numbers.

    When they were asked for but would not fit, one SamplingWarning says so, naming ``what``
    (e.g. "4000 draws × 2000 samples").
    """
    if not random_effects:
        return False
    if n_values <= MAX_EFFECT_VALUES:
        return True
    warnings.warn(
        f"random effects not stored: {what} would exceed memory; pass random_effects=False to "
        "skip them, or fewer draws.",
        SamplingWarning,
        stacklevel=stacklevel + 1,
    )
    return False


def _batches(n_draws: int, width: int, budget: int = 4_000_000) -> list[slice]:
    size = max(1, budget // max(width, 1))
    return [slice(i, min(i + size, n_draws)) for i in range(0, n_draws, size)]


def residual_rotated(y1: np.ndarray, X1: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """r1 = y1 − X1 β for each draw [shape: (draws, rank)]."""
    return y1[None, :] - beta @ X1.T


def draw_u(
    spectral: Spectral,
    y1: np.ndarray,
    X1: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
) -> np.ndarray:
    r"""Draw u | y, β, σg², σe² (or its mean when ``rng`` is None) for each draw.

    Parameters
    ----------
    spectral : Spectral
    y1, X1 : ndarray
        Rotated phenotype [shape: (rank,)] and covariates [shape: (rank, d)].
    beta : ndarray
        [shape: (draws, d)].
    sigma_g2, sigma_e2 : ndarray
        [shape: (draws,)].
    rng : numpy Generator or None

    Returns
    -------
    ndarray
        [shape: (draws, n_samples)].

    Notes
    -----
    u = U1 a lies in the range of K; independently for each i,

    .. math::

        a_i \mid \cdot \sim N\Big(\frac{\sigma_g^2 s_i}{\sigma_g^2 s_i + \sigma_e^2}
        (y_{1i} - X_{1i}\beta),\; \frac{\sigma_g^2 s_i\,\sigma_e^2}
        {\sigma_g^2 s_i + \sigma_e^2}\Big).
    """
    s = spectral.s
    out = np.empty((beta.shape[0], spectral.n))
    for sl in _batches(beta.shape[0], spectral.n + spectral.rank):
        g = sigma_g2[sl, None] * s[None, :]
        v = g + sigma_e2[sl, None]
        a = g / v * residual_rotated(y1, X1, beta[sl])
        if rng is not None:
            a += np.sqrt(g * sigma_e2[sl, None] / v) * rng.standard_normal(a.shape)
        out[sl] = a @ spectral.U.T
    return out


def draw_v(
    spectral: Spectral,
    loadings: np.ndarray,
    y1: np.ndarray,
    X1: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
) -> np.ndarray:
    r"""Draw the SNP effects v | y, β, σg², σe² of the marginalized SNP model.

    Parameters
    ----------
    spectral : Spectral
        Thin decomposition of the normalized K = WW'/M.
    loadings : ndarray
        B = U'W of the normalized genotypes [shape: (rank, n_snps)].
    y1, X1, beta, sigma_g2, sigma_e2, rng
        As in :func:`draw_u`.

    Returns
    -------
    ndarray
        [shape: (draws, n_snps)].

    Notes
    -----
    With :math:`W/\sqrt{M} = U S V^\top`, B = √M S V' and b = V'v, the data inform b only:
    :math:`b_i \mid \cdot \sim N(\sqrt{M} S_i r_{1i}/(\sigma_e^2 P_i),\, 1/P_i)`,
    :math:`P_i = 1/\sigma_v^2 + M s_i/\sigma_e^2`; the part of v orthogonal to the row space of W
    keeps its prior N(0, σv² I).
    """
    n_snps = loadings.shape[1]
    root = np.sqrt(n_snps * spectral.s)  # √M S_i
    V = loadings.T / root[None, :]  # [shape: (n_snps, rank)]
    out = np.empty((beta.shape[0], n_snps))
    for sl in _batches(beta.shape[0], n_snps + spectral.rank):
        sv2 = (sigma_g2[sl] / n_snps)[:, None]
        se2 = sigma_e2[sl, None]
        precision = 1.0 / sv2 + (n_snps * spectral.s)[None, :] / se2
        b = root[None, :] * residual_rotated(y1, X1, beta[sl]) / se2 / precision
        if rng is not None:
            b += rng.standard_normal(b.shape) / np.sqrt(precision)
            w = np.sqrt(sv2) * rng.standard_normal((b.shape[0], n_snps))
            out[sl] = b @ V.T + w - (w @ V) @ V.T
        else:
            out[sl] = b @ V.T
    return out


def loo_pointwise(
    spectral: Spectral,
    y: np.ndarray,
    X: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
) -> np.ndarray:
    r"""Sample-space leave-one-out log predictive densities log p(y_i | y_−i, θ) per draw.

    Parameters
    ----------
    spectral : Spectral
    y : ndarray
        Phenotype [shape: (n_samples,)].
    X : ndarray
        Covariates [shape: (n_samples, d)].
    beta : ndarray
        [shape: (draws, d)].
    sigma_g2, sigma_e2 : ndarray
        [shape: (draws,)].

    Returns
    -------
    ndarray
        [shape: (draws, n_samples)].

    Notes
    -----
    The terms of :func:`loo_pointwise_exact` depend on a draw only through ρ = σg²/σe²,
    linearly through β, and through the scale 1/σe²: with
    :math:`H(\rho) = I + U_1\operatorname{diag}(\phi)U_1^\top`,
    :math:`\phi_i = 1/(\rho s_i + 1) - 1`,

    .. math::

        \operatorname{diag}(C) = \operatorname{diag}(H)/\sigma_e^2, \qquad
        g = (Hy - HX\beta)/\sigma_e^2.

    diag(H) − 1, Hy − y and HX − X, and their first two derivatives in t = log ρ (each φᵢ is
    a logistic function of t + log sᵢ), are tabulated on a grid of step
    :data:`LOO_GRID_STEP` spanning the draws' t (clamped where every φᵢ is within e⁻⁴⁰ of
    its limit) with three matrix products, O(G·N·r·(d+2)), and interpolated per draw by quintic
    Hermite interpolation, O(N·d) per draw. The interpolation error is below 1e-10 on the
    log density (tests/test_effects.py checks against the exact formula). Where the grid would
    cost more than the exact formula (few draws, or draws spanning many orders of magnitude
    of ρ), the exact formula is used.
    """
    t = _log_ratio(spectral, sigma_g2, sigma_e2)
    lo, hi = float(t.min()), float(t.max())
    n_nodes = int(np.ceil((hi - lo) / LOO_GRID_STEP)) + 2
    d = X.shape[1]
    if 3 * n_nodes * (d + 2) > beta.shape[0]:  # columns of the tables vs per-draw products
        return loo_pointwise_exact(spectral, y, X, beta, sigma_g2, sigma_e2)
    nodes = lo + LOO_GRID_STEP * np.arange(n_nodes)
    diag_h, hy, hx = _loo_tables(spectral, y, X, nodes)
    table = np.concatenate([hy[:, None, :], hx], 1).reshape(-1, spectral.n)
    out = np.empty((beta.shape[0], spectral.n))
    for sl in _batches(beta.shape[0], 3 * spectral.n):
        cols, basis = _hermite_weights(t[sl], lo, n_nodes)
        se2 = sigma_e2[sl, None]
        c = _sparse_rows(cols, basis, 3 * n_nodes) @ diag_h
        c += 1.0
        c /= se2
        # Hy − HXβ: the β-weighted rows of the HX tables in the same sparse product
        factor = np.concatenate([np.ones((basis.shape[0], 1)), -beta[sl]], 1)
        coef = basis[:, :, None] * factor[:, None, :]
        wide = (cols[:, :, None] * (d + 1) + np.arange(d + 1)[None, None, :]).reshape(len(cols), -1)
        rhs = _sparse_rows(wide, coef.reshape(len(cols), -1), 3 * n_nodes * (d + 1)) @ table
        rhs += y[None, :]
        rhs -= beta[sl] @ X.T
        rhs /= se2  # g
        np.multiply(rhs, rhs, out=rhs)
        rhs /= c  # g²/c
        np.log(c, out=c)
        c -= rhs
        c *= 0.5
        out[sl] = c - 0.5 * LOG_2PI  # (in place: these arrays are draws × N)
    return out


#: Grid step in log ρ of :func:`loo_pointwise` (quintic Hermite error ~ step⁶/46080 per unit
#: of the tabulated quantities).
LOO_GRID_STEP = 0.05
#: Beyond this distance (in log ρ) from every −log sᵢ, each φᵢ is at its limit to e⁻⁴⁰.
_SATURATION = 40.0


def _log_ratio(spectral: Spectral, sigma_g2: np.ndarray, sigma_e2: np.ndarray) -> np.ndarray:
    """The log ratio t = log(σg²/σe²) per draw, clamped where φ no longer changes.

    [shape: (draws,)]
    """
    positive = spectral.s[spectral.s > 0]
    if positive.size == 0:
        return np.zeros_like(sigma_g2)
    with np.errstate(divide="ignore"):
        t = np.log(sigma_g2) - np.log(sigma_e2)
    return np.clip(t, -np.log(positive.max()) - _SATURATION, -np.log(positive.min()) + _SATURATION)


def _loo_tables(
    spectral: Spectral, y: np.ndarray, X: np.ndarray, nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """diag(H) − 1, Hy − y, HX − X and their t-derivatives (orders 0, 1, 2) at ``nodes``.

    Returns arrays of shapes (G·3, N), (G·3, N) and (G·3, d, N), rows ordered (node, order),
    derivatives scaled by the step (order m by step^m), as :func:`_hermite_weights` expects.
    """
    U, s = spectral.U, spectral.s
    p = 1.0 / (1.0 + np.exp(-(nodes[:, None] + np.log(np.where(s > 0, s, np.inf))[None, :])))
    q = 1.0 - p  # φ = −p; dφ/dt = −p(1−p); d²φ/dt² = −p(1−p)(1−2p)
    h = LOO_GRID_STEP
    phi = np.stack([-p, -p * q * h, -p * q * (q - p) * h**2], axis=1).reshape(-1, s.size)
    y1, X1 = U.T @ y, U.T @ X
    diag_h = phi @ (U**2).T
    rhs = phi[:, :, None] * np.concatenate([y1[:, None], X1], 1)[None, :, :]
    both = (rhs.transpose(0, 2, 1).reshape(-1, s.size) @ U.T).reshape(phi.shape[0], -1, U.shape[0])
    return diag_h, both[:, 0, :], both[:, 1:, :]


def _hermite_weights(t: np.ndarray, lo: float, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Table rows (node, order) and weights that interpolate at ``t`` [shapes: (draws, 6)].

    Quintic Hermite on [t_k, t_k+1] with u = (t − t_k)/step: values, first and second
    derivatives (scaled by step and step²) at both ends.
    """
    x = (t - lo) / LOO_GRID_STEP
    k = np.clip(np.floor(x).astype(int), 0, n_nodes - 2)
    u = x - k
    u3, u4, u5 = u**3, u**4, u**5
    basis = np.stack(
        [
            1 - 10 * u3 + 15 * u4 - 6 * u5,
            u - 6 * u3 + 8 * u4 - 3 * u5,
            (u**2 - 3 * u3 + 3 * u4 - u5) / 2,
            10 * u3 - 15 * u4 + 6 * u5,
            -4 * u3 + 7 * u4 - 3 * u5,
            (u3 - 2 * u4 + u5) / 2,
        ],
        axis=1,
    )
    return 3 * k[:, None] + np.arange(6)[None, :], basis


def _sparse_rows(cols: np.ndarray, values: np.ndarray, width: int) -> Any:
    """CSR matrix with row i holding ``values[i]`` at columns ``cols[i]``."""
    from scipy import sparse

    n_rows, per_row = cols.shape
    indptr = np.arange(0, n_rows * per_row + 1, per_row)
    return sparse.csr_matrix((values.ravel(), cols.ravel(), indptr), shape=(n_rows, width))


def loo_pointwise_exact(
    spectral: Spectral,
    y: np.ndarray,
    X: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
) -> np.ndarray:
    r"""Sample-space leave-one-out log predictive densities log p(y_i | y_−i, θ) per draw.

    The exact computation, O(N·r) per draw; :func:`loo_pointwise` interpolates it.

    Parameters
    ----------
    spectral : Spectral
    y : ndarray
        Phenotype [shape: (n_samples,)].
    X : ndarray
        Covariates [shape: (n_samples, d)].
    beta : ndarray
        [shape: (draws, d)].
    sigma_g2, sigma_e2 : ndarray
        [shape: (draws,)].

    Returns
    -------
    ndarray
        [shape: (draws, n_samples)].

    Notes
    -----
    For y ~ N(μ, V), C = V⁻¹ and g = C(y − μ), the non-factorized Gaussian LOO is

    .. math::

        \log p(y_i \mid y_{-i}, \theta) = -\tfrac12\log 2\pi + \tfrac12\log c_{ii}
        - \tfrac12 g_i^2 / c_{ii}.

    With :math:`V^{-1} = U_1\operatorname{diag}(1/v - 1/\sigma_e^2)U_1^\top + I/\sigma_e^2`,
    both g and diag(C) cost O(N·r) per draw: two matrix products over a batch of draws, as
    :math:`U_1^\top(y - X\beta) = y_1 - X_1\beta` is rotated once.
    """
    U = spectral.U
    U_sq = U**2
    y1, X1 = U.T @ y, U.T @ X  # U'(y − Xβ) = y1 − X1β: no product with U per draw
    out = np.empty((beta.shape[0], spectral.n))
    for sl in _batches(beta.shape[0], 3 * spectral.n):
        se2 = sigma_e2[sl, None]
        resid = y[None, :] - beta[sl] @ X.T
        dinv = 1.0 / (sigma_g2[sl, None] * spectral.s[None, :] + se2) - 1.0 / se2
        g = (dinv * residual_rotated(y1, X1, beta[sl])) @ U.T + resid / se2
        c = dinv @ U_sq.T + 1.0 / se2
        out[sl] = -0.5 * LOG_2PI + 0.5 * np.log(c) - 0.5 * g**2 / c
    return out
