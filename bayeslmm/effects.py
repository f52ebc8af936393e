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
