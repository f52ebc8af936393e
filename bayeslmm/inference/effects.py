"""Closed-form conditional posteriors of the random effects and the sample-space LOO terms.

Given (β, σg², σe²), the breeding values u, the SNP effects v and the leave-one-out predictive
densities are Gaussian computations in the eigenbasis of K; this module does them for a batch
of posterior draws at once with matrix products (O(N·r) per draw). It knows nothing of PyMC.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayeslmm.constants import LOG_2PI
from bayeslmm.errors import SamplingWarning
from bayeslmm.linalg.spectral import Rotated, Spectral
from bayeslmm.relatedness.gram import GramSubset

#: Above this many numbers (draws × samples or SNPs) random effects are not stored.
MAX_EFFECT_VALUES = 100_000_000
#: Models built from a Gram (large cohorts): above this many numbers (draws × samples, or
#: draws × SNPs for v) the draws of u (v) are not stored but their posterior mean and SD
#: (:class:`EffectSummary`), and above it in draws × samples the pointwise log-likelihood is
#: not stored either but reduced to PSIS-LOO sample block by sample block (160 MB of float64
#: per draws × samples array at this size: N = 5,000 with 4,000 draws).
LARGE_COHORT_VALUES = 20_000_000
#: The group of a result that holds, instead of the pointwise log-likelihood, its PSIS-LOO
#: computed by sample blocks (large cohorts; :class:`bayeslmm.inference.comparison.BlockedLoo`).
LOO_GROUP = "loo"


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
    *,
    noise: np.ndarray | None = None,
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
    noise : ndarray, optional
        The random part of a, drawn beforehand (:func:`u_noise`) [shape: (draws, rank)];
        used instead of ``rng`` (as when the rows of U come in blocks, which must share it).

    Returns
    -------
    ndarray
        [shape: (draws, n_samples)] (the rows of ``spectral.U``).

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
        if noise is not None:
            a += noise[sl]
        elif rng is not None:
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
    The terms of :func:`loo_pointwise_exact`, interpolated in log(σg²/σe²) as described in
    :func:`u_and_loo` (which computes them with the u draws from the same tables).
    """
    return u_and_loo(spectral, y, X, beta, sigma_g2, sigma_e2, None, with_u=False)[1]


def u_and_loo(
    spectral: Spectral,
    y: np.ndarray,
    X: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
    *,
    with_u: bool = True,
    rotated: tuple[np.ndarray, np.ndarray] | None = None,
    noise: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    r"""Draws of u | y, β, σg², σe² and the sample-space LOO terms, from one set of tables.

    Parameters
    ----------
    spectral : Spectral
    y : ndarray or None
        Phenotype [shape: (n_samples,)]; None: no phenotype column, the residual is −Xβ
        (the several-trait pseudo-draws of
        :func:`~bayeslmm.families.multitrait.u_and_loo_complete`, whose X holds the traits).
    X : ndarray
        Covariates [shape: (n_samples, d)].
    beta : ndarray
        [shape: (draws, d)].
    sigma_g2, sigma_e2 : ndarray
        [shape: (draws,)].
    rng : numpy Generator or None
        For the u draws; None gives their conditional means, by the exact formula
        (:func:`draw_u`).
    with_u : bool
        False: the LOO terms only (the first value returned is None).
    rotated : tuple of ndarray, optional
        ``(U.T @ y, U.T @ X)`` over all the samples. Given, ``spectral.U`` may hold only some
        rows of U (a block of samples, with y and X of the same rows): every other quantity is
        computed row by row. Default: from ``spectral.U``, y and X.
    noise : ndarray, optional
        The random part of u in the eigenbasis, drawn beforehand by :func:`u_noise`
        [shape: (draws, rank)], used instead of ``rng`` (blocks of rows must share it).

    Returns
    -------
    u : ndarray or None
        As :func:`draw_u` [shape: (draws, n_samples)].
    loglik : ndarray
        As :func:`loo_pointwise_exact` [shape: (draws, n_samples)].

    Notes
    -----
    Both depend on a draw only through ρ = σg²/σe², linearly through β and through the scale
    σe². With :math:`p_i(\rho) = \rho s_i/(\rho s_i + 1)` and
    :math:`A(\rho) = U_1\operatorname{diag}(p)U_1^\top`, the conditional mean of u is
    :math:`A(\rho)(y - X\beta)`, and with :math:`H = I - A` (:math:`V^{-1} = H/\sigma_e^2`)

    .. math::

        \operatorname{diag}(C) = \operatorname{diag}(H)/\sigma_e^2, \qquad
        g = H(y - X\beta)/\sigma_e^2 = (y - X\beta - E[u])/\sigma_e^2.

    diag(A), Ay and AX, and their first two derivatives in t = log ρ (each pᵢ is a logistic
    function of t + log sᵢ), are tabulated on a grid of step :data:`LOO_GRID_STEP` over the
    draws' t (clamped where every pᵢ is within e⁻⁴⁰ of its limit), at the ends of the grid
    cells that hold a draw (several traits' draws of λ leave gaps), with two matrix products,
    O(G·N·r·(d+2)), and interpolated per draw by quintic Hermite interpolation: draws are
    grouped by grid cell, and the six table rows of a cell are applied to its draws with one
    matrix product, O(N·d) per draw. The interpolation error is below 1e-10 on the log density
    and on E[u] (tests/test_effects.py checks both against the exact formulas). Where the grid
    would cost more than the exact formulas (few draws, or draws spanning many orders of
    magnitude of ρ), and for E[u] when ``rng`` is None, the exact formulas are used.

    The random part of u, :math:`U_1(\sqrt{c}\circ z)`,
    :math:`c_i = \sigma_g^2 s_i\sigma_e^2/(\sigma_g^2 s_i + \sigma_e^2)`, z ~ N(0, I), costs one
    N×r product per draw that no tabulation removes; where N·r ≥ :data:`FLOAT32_MIN_SIZE` it is
    computed in float32 (single precision GEMM, half the time of double) and added to the
    float64 mean. Its relative
    rounding, ~1e-7, is far below the Monte Carlo error of a posterior draw (~1e-2 of its sd
    with 4,000 draws), so the draws are statistically those of the exact conditional (the
    mean and covariance of many draws are tested against the dense formula); z is the same
    stream of standard normals as in :func:`draw_u`, so a seed gives the same draws each run.
    """
    n_draws = beta.shape[0]
    no_y = y is None  # no phenotype column: the residual is −Xβ (several traits' pseudo-draws)
    if no_y:
        y = np.zeros(X.shape[0])
        if rotated is not None:
            rotated = (np.zeros(rotated[1].shape[0]), rotated[1])
    y1, X1 = (spectral.U.T @ y, spectral.U.T @ X) if rotated is None else rotated
    if no_y:
        columns, columns1, factor = X, X1, -beta
    else:
        columns, columns1 = np.column_stack([y, X]), np.column_stack([y1, X1])
        factor = np.concatenate([np.ones((n_draws, 1)), -beta], 1)  # y − Xβ = [y, X]·factor
    grid = loo_grid(spectral, columns, log_ratio(spectral, sigma_g2, sigma_e2), columns1)
    if grid is None:  # few draws: the exact formulas cost less than the tables
        u = None
        if with_u:
            u = draw_u(spectral, y1, X1, beta, sigma_g2, sigma_e2, rng, noise=noise)
        loglik = loo_pointwise_exact(spectral, y, X, beta, sigma_g2, sigma_e2, rotated=(y1, X1))
        return u, loglik
    u = np.empty((n_draws, spectral.n)) if with_u else None
    loglik = np.empty((n_draws, spectral.n))
    u_and_loo_gridded(
        spectral, grid, factor, sigma_g2, sigma_e2, rng, u=u, loglik=loglik, noise=noise
    )
    return u, loglik


@dataclass(frozen=True, eq=False)
class LooGrid:
    """The interpolation tables of :func:`u_and_loo` for a set of draws (:func:`loo_grid`).

    Attributes
    ----------
    columns : ndarray
        The data columns c (e.g. [y, X]) [shape: (n_samples, c)], rows those of ``spectral.U``.
    columns1 : ndarray
        U'·columns over all samples [shape: (rank, c)].
    lo : float
        The grid's first node in t = log ρ.
    n_nodes : int
        Nodes from ``lo`` in steps of :data:`LOO_GRID_STEP`.
    slot : ndarray
        Each node's block of rows in the tables [shape: (n_nodes,)] (nodes at the ends of
        cells that hold no draw have none).
    diag_a, table : ndarray
        As :func:`_tables`, at the tabulated nodes.
    """

    columns: np.ndarray
    columns1: np.ndarray
    lo: float
    n_nodes: int
    slot: np.ndarray
    diag_a: np.ndarray
    table: np.ndarray


def loo_grid(
    spectral: Spectral, columns: np.ndarray, t: np.ndarray, columns1: np.ndarray | None = None
) -> LooGrid | None:
    """The tables of :func:`u_and_loo` at the grid cells that hold the draws' t = log ρ.

    Parameters
    ----------
    spectral : Spectral
    columns : ndarray
        Data columns [shape: (n_samples, c)] (rows those of ``spectral.U``).
    t : ndarray
        log(σg²/σe²) of every draw the grid will serve (:func:`log_ratio`) [shape: (draws,)].
    columns1 : ndarray, optional
        U'·columns over all samples, when ``spectral.U`` holds a block of rows.

    Returns
    -------
    LooGrid or None
        None where the tables would cost more than the exact formulas for these draws.
    """
    n_draws = t.size
    lo, hi = (float(t.min()), float(t.max())) if n_draws else (0.0, 0.0)
    n_nodes = int(np.ceil((hi - lo) / LOO_GRID_STEP)) + 2
    cell, _ = _hermite_weights(t, lo, n_nodes)
    # tables at the ends of occupied cells only: the draws of several traits' λ leave gaps
    needed = np.unique(np.concatenate([cell, cell + 1]))
    if 3 * needed.size * (columns.shape[1] + 1) > n_draws:  # table columns vs per-draw products
        return None
    slot = np.zeros(n_nodes, dtype=int)
    slot[needed] = np.arange(needed.size)  # cell k's nodes k, k + 1 are slots j, j + 1
    if columns1 is None:
        columns1 = spectral.U.T @ columns
    diag_a, table = _tables(spectral, columns1, lo + LOO_GRID_STEP * needed)
    return LooGrid(columns, columns1, lo, n_nodes, slot, diag_a, table)


def u_and_loo_gridded(
    spectral: Spectral,
    grid: LooGrid,
    factor: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
    *,
    u: np.ndarray | None,
    loglik: np.ndarray,
    noise: np.ndarray | None = None,
) -> None:
    r""":func:`u_and_loo` of draws served by ``grid``, written into ``u`` and ``loglik``.

    Parameters
    ----------
    spectral, grid
        K's eigenbasis and the tables of :func:`loo_grid` (built for these draws' t or more).
    factor : ndarray
        Each draw's residual as a combination of the grid's columns,
        :math:`y - X\beta = [y, X]\cdot` factor [shape: (draws, c)].
    sigma_g2, sigma_e2, rng, noise
        As in :func:`u_and_loo`.
    u : ndarray or None
        Output for the u draws [shape: (draws, n_samples)]; None: the LOO terms only.
    loglik : ndarray
        Output for the LOO terms [shape: (draws, n_samples)].

    Notes
    -----
    A caller with many draws may build one grid for all of them and call this on blocks of
    draws with the same output buffers (the several-trait post-processing): the tables are
    built once and no draws × samples temporary is allocated per block.
    """
    t = log_ratio(spectral, sigma_g2, sigma_e2)
    exact_u = u is not None and rng is None and noise is None
    _apply_grid(grid, t, factor, sigma_e2, None if exact_u else u, loglik)
    if exact_u:  # the conditional mean by the exact formula
        zero = np.zeros(grid.columns1.shape[0])
        u[...] = draw_u(spectral, zero, grid.columns1, -factor, sigma_g2, sigma_e2, None)
    elif u is not None:
        _add_u_noise(u, spectral, sigma_g2, sigma_e2, rng, noise)


def _apply_grid(
    grid: LooGrid,
    t: np.ndarray,
    factor: np.ndarray,
    sigma_e2: np.ndarray,
    u: np.ndarray | None,
    loglik: np.ndarray,
) -> None:
    """E[u] (into ``u`` unless None) and the LOO terms (into ``loglik``) from the tables.

    Draws are grouped by grid cell; the six table rows of a cell are applied to its draws with
    one matrix product (see :func:`u_and_loo`).
    """
    cell, basis = _hermite_weights(t, grid.lo, grid.n_nodes)
    c = grid.columns.shape[1]
    offset = -0.5 * LOG_2PI - 0.5 * np.log(sigma_e2)
    # −H(y − Xβ) = A(y − Xβ) − (y − Xβ), scaled by 1/√(2σe²): its square is ½ g²/c · diag(H)
    factor_e = np.concatenate([factor, -factor], 1) / np.sqrt(2 * sigma_e2)[:, None]
    data = grid.columns.T  # [shape: (c, N)]
    n = data.shape[1]
    order = np.argsort(cell, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0, True])
    block = max(1, 2**20 // n)  # draws per product: ~8 MB arrays
    for first, stop in zip(starts[:-1], starts[1:], strict=True):
        k = int(grid.slot[cell[order[first]]])
        rows_a = grid.diag_a[3 * k : 3 * k + 6]
        rows_u = grid.table[3 * k * c : (3 * k + 6) * c]
        rows_e = np.concatenate([rows_u, data], 0)
        for a in range(first, stop, block):
            rows = order[a : min(a + block, stop)]
            w = basis[rows]
            if u is not None:
                u[rows] = (w[:, :, None] * factor[rows, None, :]).reshape(len(rows), -1) @ rows_u
            scale = factor_e[rows]
            stencil = (w[:, :, None] * scale[:, None, :c]).reshape(len(rows), -1)
            coef = np.concatenate([stencil, scale[:, c:]], 1)
            e = coef @ rows_e  # −H(y − Xβ)/√(2σe²)
            h = w @ rows_a
            np.subtract(1.0, h, out=h)  # diag(H) = σe² diag(C)
            np.square(e, out=e)
            e /= h  # ½ g²/c
            np.log(h, out=h)
            h *= 0.5
            h -= e
            h += offset[rows, None]
            loglik[rows] = h


def _add_u_noise(
    out: np.ndarray,
    spectral: Spectral,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
    noise: np.ndarray | None = None,
) -> None:
    """Add the random part U1(√c ∘ z) of u to ``out`` in place [shape: (draws, n_samples)].

    The product in float32 where N·r ≥ :data:`FLOAT32_MIN_SIZE` (see :func:`u_and_loo`), in
    float64 below; z drawn batch by batch in draw order, as in :func:`draw_u`, unless the
    random parts √c ∘ z are given (``noise`` [shape: (draws, rank)], from :func:`u_noise`).
    """
    s = spectral.s
    dtype = np.float32 if spectral.n * spectral.rank >= FLOAT32_MIN_SIZE else np.float64
    U_cast = spectral.U.astype(dtype)
    buffer = np.empty(0, dtype=dtype)
    for sl in _batches(out.shape[0], spectral.n + spectral.rank):
        if noise is not None:
            sd = noise[sl]
        else:
            g = sigma_g2[sl, None] * s[None, :]
            sd = np.sqrt(g * sigma_e2[sl, None] / (g + sigma_e2[sl, None]))
            sd *= rng.standard_normal(sd.shape)
        n = sd.shape[0]
        if buffer.size < n * spectral.n:
            buffer = np.empty(n * spectral.n, dtype=dtype)
        part = buffer[: n * spectral.n].reshape(n, spectral.n)
        np.matmul(sd.astype(dtype, copy=False), U_cast.T, out=part)
        out[sl] += part


#: The random part of u is computed in float32 where N·r is at least this (below, the product
#: is cheap, and float64 keeps draws equal to ~1e-9 across BLAS thread counts; float32 rounds
#: the ~1e-16 thread-dependent differences of U to ~1e-7 of the random part).
FLOAT32_MIN_SIZE = 1_000_000
#: Draws × samples of each block of :func:`gram_u_and_loo` (its u, LOO terms and PSIS arrays
#: are this size; at N = 100,000 and 4,000 draws, blocks of 1,000 samples keep the whole
#: post-processing within ~1 GB).
POSTPROCESS_BLOCK_VALUES = 4_000_000
#: Fewest samples per block (the rows of U cost a block × M × r product: tiny blocks lose the
#: GEMM rate).
POSTPROCESS_MIN_BLOCK = 256
#: Grid step in log ρ of :func:`u_and_loo` (quintic Hermite error ~ step⁶/46080 per unit of
#: the tabulated quantities).
LOO_GRID_STEP = 0.05
#: Beyond this distance (in log ρ) from every −log sᵢ, each pᵢ is at its limit to e⁻⁴⁰.
_SATURATION = 40.0


def log_ratio(spectral: Spectral, sigma_g2: np.ndarray, sigma_e2: np.ndarray) -> np.ndarray:
    """The log ratio t = log(σg²/σe²) per draw, clamped where p no longer changes.

    [shape: (draws,)]
    """
    positive = spectral.s[spectral.s > 0]
    if positive.size == 0:
        return np.zeros_like(sigma_g2)
    with np.errstate(divide="ignore"):
        t = np.log(sigma_g2) - np.log(sigma_e2)
    return np.clip(t, -np.log(positive.max()) - _SATURATION, -np.log(positive.min()) + _SATURATION)


def _tables(
    spectral: Spectral, columns1: np.ndarray, nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """diag(A) and A times each data column, with their t-derivatives (0, 1, 2) at ``nodes``.

    ``columns1`` is U'[y, X] (or U'X) [shape: (rank, c)]; the rows of the tables are those of
    ``spectral.U``.

    Returns arrays of shapes (G·3, N) and (G·3·c, N), rows ordered (node, order) and
    (node, order, column), derivatives scaled by the step (order m by step^m), as
    :func:`_hermite_weights` expects.
    """
    U, s = spectral.U, spectral.s
    with np.errstate(divide="ignore"):  # sᵢ = 0: pᵢ = 0
        p = 1.0 / (1.0 + np.exp(-(nodes[:, None] + np.log(s)[None, :])))
    q = 1.0 - p  # dp/dt = p(1−p); d²p/dt² = p(1−p)(1−2p)
    h = LOO_GRID_STEP
    coef = np.stack([p, p * q * h, p * q * (q - p) * h**2], axis=1).reshape(-1, s.size)
    diag_a = coef @ (U**2).T
    both = np.asarray(columns1).reshape(s.size, -1).T  # [shape: (c, rank)]
    table = (coef[:, None, :] * both[None, :, :]).reshape(-1, s.size) @ U.T
    return diag_a, table


def _hermite_weights(t: np.ndarray, lo: float, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell k and weights of table rows 3k … 3k+5 that interpolate at ``t``.

    [shapes: (draws,), (draws, 6)]. Quintic Hermite on [t_k, t_k+1] with u = (t − t_k)/step:
    values, first and second derivatives (scaled by step and step²) at both ends.
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
    return k, basis


def loo_pointwise_exact(
    spectral: Spectral,
    y: np.ndarray,
    X: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    *,
    rotated: tuple[np.ndarray, np.ndarray] | None = None,
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
    rotated : tuple of ndarray, optional
        ``(U.T @ y, U.T @ X)`` over all samples, when ``spectral.U``, y and X hold only a block
        of rows (as in :func:`u_and_loo`).

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
    # U'(y − Xβ) = y1 − X1β: no product with U per draw
    y1, X1 = (U.T @ y, U.T @ X) if rotated is None else rotated
    out = np.empty((beta.shape[0], spectral.n))
    for sl in _batches(beta.shape[0], 3 * spectral.n):
        se2 = sigma_e2[sl, None]
        resid = y[None, :] - beta[sl] @ X.T
        dinv = 1.0 / (sigma_g2[sl, None] * spectral.s[None, :] + se2) - 1.0 / se2
        g = (dinv * residual_rotated(y1, X1, beta[sl])) @ U.T + resid / se2
        c = dinv @ U_sq.T + 1.0 / se2
        out[sl] = -0.5 * LOG_2PI + 0.5 * np.log(c) - 0.5 * g**2 / c
    return out


@dataclass(frozen=True, eq=False)
class EffectSummary:
    """Posterior mean and SD of a random effect, stored instead of its draws (large cohorts).

    Attributes
    ----------
    mean, sd : ndarray
        Mean and standard deviation (ddof = 1) over all draws of every chain
        [shape: (k,)].
    dim : str
        Its dimension (``sample`` for u, ``snp`` for v).
    coords : list of str
        The labels of that dimension.
    n_draws : int
        Number of draws summarized.
    """

    mean: np.ndarray
    sd: np.ndarray
    dim: str
    coords: list[str]
    n_draws: int


def summarize_draws(draws: np.ndarray, dim: str, coords: list[str]) -> EffectSummary:
    """The :class:`EffectSummary` of draws [shape: (draws, k)] (SD 0 for a single draw)."""
    n = draws.shape[0]
    sd = draws.std(axis=0, ddof=1) if n > 1 else np.zeros(draws.shape[1])
    return EffectSummary(draws.mean(axis=0), sd, dim, list(coords), n)


def u_noise(
    s: np.ndarray, sigma_g2: np.ndarray, sigma_e2: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    r"""The random part of u's coordinates in the eigenbasis, :math:`\sqrt{c}\circ z`.

    Parameters
    ----------
    s : ndarray
        Eigenvalues of the normalized K [shape: (rank,)].
    sigma_g2, sigma_e2 : ndarray
        [shape: (draws,)].
    rng : numpy Generator

    Returns
    -------
    ndarray
        [shape: (draws, rank)], with :math:`c_i = \sigma_g^2 s_i\sigma_e^2/(\sigma_g^2 s_i +
        \sigma_e^2)` and z ~ N(0, I) (see :func:`draw_u`). Drawn once, so that every block of
        samples of :func:`gram_u_and_loo` adds the same random vector.
    """
    g = sigma_g2[:, None] * s[None, :]
    sd = np.sqrt(g * sigma_e2[:, None] / (g + sigma_e2[:, None]))
    return sd * rng.standard_normal(sd.shape)


def lowrank_blocks(
    subset: GramSubset, size: int | None = None
) -> Iterator[tuple[np.ndarray, Spectral]]:
    r"""The rows of the eigenvectors U of a Gram's K, one block of samples at a time.

    Parameters
    ----------
    subset : GramSubset
        The Gram of the samples analysed, with its eigenbasis.
    size : int, optional
        Samples per block [default: the Gram's ``chunk_size``].

    Yields
    ------
    rows : ndarray of int
        Positions of the block's samples among the samples analysed (the data's order).
    block : Spectral
        ``U`` holds the rows of U for those samples [shape: (block, rank)]; ``s`` and
        ``scale`` are the whole K's.

    Notes
    -----
    :math:`U = W V \operatorname{diag}(s)^{-1/2}/\sqrt{Mc}` (see
    :class:`~bayeslmm.linalg.spectral.LowRank`), so a block of rows of U is the block
    :math:`W_b` of standardized genotypes read by :meth:`Gram.blocks
    <bayeslmm.relatedness.gram.Gram.blocks>` times an M × r matrix: O(block·M·r) flops and
    memory O(block·(M + r)); U itself (N × r) is never formed. The samples are read in the
    order of the genotype file (the fastest for a .bed), not in the data's.
    """
    basis, gram = subset.basis, subset.gram
    loadings = basis.V / np.sqrt(basis.s * basis.n_snps * basis.scale)  # [shape: (M, rank)]
    order = np.argsort(gram.sample_index[subset.rows], kind="stable")
    for start, W in gram.blocks(subset.rows[order], size):
        yield (
            order[start : start + W.shape[0]],
            Spectral(U=W @ loadings, s=basis.s, scale=basis.scale),
        )


def gram_u_and_loo(
    subset: GramSubset,
    rotated: Rotated,
    y: np.ndarray,
    X: np.ndarray,
    beta: np.ndarray,
    sigma_g2: np.ndarray,
    sigma_e2: np.ndarray,
    rng: np.random.Generator | None,
    *,
    with_u: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    r"""Draws of u and the sample-space LOO terms of a Gram's model, by blocks of samples.

    Parameters
    ----------
    subset : GramSubset
        The Gram of the samples analysed.
    rotated : Rotated
        y and X rotated in its eigenbasis (``y1``, ``X1``).
    y, X : ndarray
        Phenotype and covariates in the order of ``subset.rows`` [shapes: (N,), (N, d)].
    beta, sigma_g2, sigma_e2, rng
        As in :func:`u_and_loo`.
    with_u : bool
        False: the LOO terms only (u is None in every block).

    Yields
    ------
    rows : ndarray of int
        Positions of the block's samples among the samples analysed.
    u : ndarray or None
        Draws of u for the block's samples (conditional means when ``rng`` is None)
        [shape: (draws, block)].
    loglik : ndarray
        log p(y_i | y_−i, θ) for the block's samples [shape: (draws, block)].

    Notes
    -----
    Every quantity of :func:`u_and_loo` is a function of the rows of U alone, given the
    rotated data :math:`U^\top y` and :math:`U^\top X` (one O(r·d) vector each), so each block
    is :func:`u_and_loo` on the rows of U from :func:`lowrank_blocks`, with the same random
    part of u (:func:`u_noise`, drawn once). One pass over the genotypes, in blocks of
    :data:`POSTPROCESS_BLOCK_VALUES`/draws samples (at least :data:`POSTPROCESS_MIN_BLOCK`),
    so that each draws × block array stays ~32 MB; memory O(draws·(block + r)) beyond the
    caller's. The values equal those of the N×N path to
    round-off (for the conditional means and the LOO terms; the random parts differ by the
    eigenvectors' arbitrary signs).
    """
    noise = u_noise(subset.s, sigma_g2, sigma_e2, rng) if with_u and rng is not None else None
    size = max(POSTPROCESS_MIN_BLOCK, POSTPROCESS_BLOCK_VALUES // max(1, beta.shape[0]))
    for rows, block in lowrank_blocks(subset, size):
        u, loglik = u_and_loo(
            block,
            y[rows],
            X[rows],
            beta,
            sigma_g2,
            sigma_e2,
            None,
            with_u=with_u,
            rotated=(rotated.y1, rotated.X1),
            noise=noise,
        )
        yield rows, u, loglik
