r"""Per-SNP gene–environment (G×E) interaction tests in the eigenbasis of K.

For a SNP g and an environment e (a covariate of the null model), the model of each SNP is

    y = Xβ + e·b_e + g·b_g + (g∘e)·b_gxe + u + ε,   u ~ N(0, σg² K),  ε ~ N(0, σe² I),

and b_gxe is tested with X, e and g as covariates (GEMMA ``-gxe``). With ⟨a, b⟩ = a'H⁻¹b,
H = λK + I, and ⊥ the H⁻¹-projection off [X, e], GEMMA's P quantities of y, g and h = g∘e give
the interaction's after projecting off g as well:

    Q_yy = P_yy − P_gy²/P_gg,  Q_hh = P_hh − P_gh²/P_gg,  Q_hy = P_hy − P_gh·P_gy/P_gg,

and the statistics are those of a SNP test (:mod:`bayeslmm.gwas.association`) with
(Q_yy, Q_hh, Q_hy) in place of (P_yy, P_gg, P_gy), d + 1 covariates (log|X'H⁻¹X| gains
log P_gg) and df = N − d − 2 (d counts X's columns and e).

The module knows nothing of files or PyMC; :mod:`bayeslmm.gwas.scanner` calls
:func:`gxe_statistics` on each chunk when ``scan(..., gxe=env)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayeslmm.gwas.association import (
    NullData,
    Projections,
    SnpBlock,
    brent_maximize,
    covariate_terms,
    eigen_weights,
    loglik,
    projections,
)

#: Columns a G×E scan adds to the scan's table, in order.
GXE_COLUMNS = ["beta_gxe", "se_gxe", "p_wald_gxe", "p_lrt_gxe", "p_score_gxe", "h2_gxe"]


@dataclass(frozen=True, eq=False)
class GxeBlock:
    """A chunk's SNPs g and interactions h = g∘e in the eigenbasis.

    Attributes
    ----------
    g, h : SnpBlock
        The centred SNPs and interactions rotated
        (:func:`bayeslmm.gwas.snp_statistics.rotate_block`).
    cross_gh : ndarray [shape: (c,)]
        Null-space ⟨g_c, h_c⟩.
    """

    g: SnpBlock
    h: SnpBlock
    cross_gh: np.ndarray


def _subset(block: GxeBlock, cols: np.ndarray) -> GxeBlock:
    def sub(b: SnpBlock) -> SnpBlock:
        return SnpBlock(b.G1[:, cols], b.cross_X[:, cols], b.cross_y[cols], b.cross_g[cols])

    return GxeBlock(sub(block.g), sub(block.h), block.cross_gh[cols])


def gxe_projections(
    null: NullData, block: GxeBlock, lam: np.ndarray
) -> tuple[Projections, Projections]:
    """The main-effect and interaction projections at λ_j (one λ per SNP).

    Parameters
    ----------
    null : NullData
        y and the covariates (X and e) in the eigenbasis.
    block : GxeBlock
    lam : ndarray [shape: (c,)]

    Returns
    -------
    main : Projections
        P_yy, P_gg, P_gy off [X, e] (the model with g and without g∘e).
    interaction : Projections
        Q_yy, Q_hh, Q_hy off [X, e, g] in the fields p_yy, p_gg, p_gy; ``logdet_xtx`` is
        log|[X, e, g]'H⁻¹[X, e, g]|, so :func:`~bayeslmm.gwas.association.loglik` with
        ``d + 1`` covariates and ``with_snp=True`` is the interaction model's.
    """
    W = eigen_weights(null, lam)  # (r, c)
    xtx, xty, yty = covariate_terms(null, W)
    G1, H1 = block.g.G1, block.h.G1
    WG, WH = W * G1, W * H1
    xtg = (null.X1.T @ WG).T + block.g.cross_X.T  # (c, d)
    xth = (null.X1.T @ WH).T + block.h.cross_X.T
    gtg = np.einsum("rc,rc->c", WG, G1) + block.g.cross_g
    hth = np.einsum("rc,rc->c", WH, H1) + block.h.cross_g
    gth = np.einsum("rc,rc->c", WG, H1) + block.cross_gh
    gty = null.y1 @ WG + block.g.cross_y
    hty = null.y1 @ WH + block.h.cross_y
    chol = np.linalg.cholesky(xtx)
    za = np.linalg.solve(chol, xty[..., None])[..., 0]
    zg = np.linalg.solve(chol, xtg[..., None])[..., 0]
    zh = np.linalg.solve(chol, xth[..., None])[..., 0]
    logdet_xtx = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return _schur(yty, gtg, hth, gth, gty, hty, za, zg, zh, null.logdet_h(lam), logdet_xtx)


def _schur(
    yty, gtg, hth, gth, gty, hty, za, zg, zh, logdet_h, logdet_xtx
) -> tuple[Projections, Projections]:
    """The main and interaction projections from the covariate-whitened cross products."""
    p_yy = yty - (za**2).sum(axis=-1)
    p_gg = gtg - (zg**2).sum(axis=-1)
    p_gy = gty - (za * zg).sum(axis=-1)
    p_hh = hth - (zh**2).sum(axis=-1)
    p_hy = hty - (za * zh).sum(axis=-1)
    p_gh = gth - (zg * zh).sum(axis=-1)
    main = Projections(p_yy, p_gg, p_gy, logdet_h, logdet_xtx)
    with np.errstate(divide="ignore", invalid="ignore"):
        inter = Projections(
            p_yy - p_gy**2 / p_gg,
            p_hh - p_gh**2 / p_gg,
            p_hy - p_gh * p_gy / p_gg,
            logdet_h,
            logdet_xtx + np.log(p_gg),
        )
    return main, inter


def gxe_grid(null: NullData, block: GxeBlock, lam: np.ndarray) -> tuple[Projections, Projections]:
    """:func:`gxe_projections` of every SNP at every λ of a shared grid [each: (c, L)].

    Notes
    -----
    As :func:`~bayeslmm.gwas.association.grid_projections`: every sum over the r
    eigen-directions (g², h², gh, gy, hy, gxₖ, hxₖ) is one GEMM against the weights
    w_il = 1/(λ_l s_i + 1) [shape: (r, L)], (2d + 5)·c × r × L flops in all.
    """
    W = eigen_weights(null, lam)  # (r, L)
    xtx, xty, yty = covariate_terms(null, W)  # (L, d, d), (L, d), (L,)
    G1, H1, d = block.g.G1, block.h.G1, null.d
    r, c = G1.shape
    products = np.empty((r, 2 * d + 5, c))
    np.multiply(G1, G1, out=products[:, 0])
    np.multiply(H1, H1, out=products[:, 1])
    np.multiply(G1, H1, out=products[:, 2])
    np.multiply(G1, null.y1[:, None], out=products[:, 3])
    np.multiply(H1, null.y1[:, None], out=products[:, 4])
    np.multiply(G1[:, None, :], null.X1[:, :, None], out=products[:, 5 : 5 + d])
    np.multiply(H1[:, None, :], null.X1[:, :, None], out=products[:, 5 + d :])
    sums = (products.reshape(r, -1).T @ W).reshape(2 * d + 5, c, lam.size)
    gtg = sums[0] + block.g.cross_g[:, None]  # (c, L)
    hth = sums[1] + block.h.cross_g[:, None]
    gth = sums[2] + block.cross_gh[:, None]
    gty = sums[3] + block.g.cross_y[:, None]
    hty = sums[4] + block.h.cross_y[:, None]
    xtg = sums[5 : 5 + d] + block.g.cross_X[:, :, None]  # (d, c, L)
    xth = sums[5 + d :] + block.h.cross_X[:, :, None]
    chol = np.linalg.cholesky(xtx)
    chol_inv = np.linalg.inv(chol)  # (L, d, d)
    za = (chol_inv @ xty[:, :, None])[:, :, 0]  # (L, d)
    zg = (chol_inv @ xtg.transpose(2, 0, 1)).transpose(2, 0, 1)  # (c, L, d)
    zh = (chol_inv @ xth.transpose(2, 0, 1)).transpose(2, 0, 1)
    logdet_h = -np.log(W).sum(axis=0)[None, :]
    logdet_xtx = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)[None, :]
    return _schur(yty[None, :], gtg, hth, gth, gty, hty, za[None], zg, zh, logdet_h, logdet_xtx)


#: The per-SNP fits of exact mode: (model, method), model 0 = without g∘e, 1 = with it.
_EXACT_FITS = ((1, "reml"), (0, "ml"), (1, "ml"))


def _maximize_all(
    null: NullData,
    block: GxeBlock,
    bounds: tuple[float, float],
    grid_size: int = 300,
    iterations: int = 4,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-SNP λ maximizing each likelihood of :data:`_EXACT_FITS`: [(λ, maximum)] (c,) each.

    One shared grid of ``grid_size`` points in log λ over ``bounds`` (ends included,
    :func:`gxe_grid`), then vectorized parabolic refinement around the best point, and around
    the best interior one where they differ, as
    :func:`~bayeslmm.gwas.association.maximize_lambdas`.
    """
    c, d = block.g.G1.shape[1], null.d
    grid = np.linspace(np.log(bounds[0]), np.log(bounds[1]), grid_size)
    on_grid = gxe_grid(null, block, np.exp(grid))
    out = []
    for k, method in _EXACT_FITS:

        def f(log_lam: np.ndarray, sub: GxeBlock, k: int = k, method: str = method):
            proj = gxe_projections(null, sub, np.exp(log_lam))[k]
            return loglik(proj, null.n, d + k, method, True)

        values = loglik(on_grid[k], null.n, d + k, method, True).T  # (L, c)
        values = np.where(np.isnan(values), -np.inf, values)
        best = np.argmax(values, axis=0)
        best_x, best_f = grid[best].copy(), values[best, np.arange(c)].copy()
        interior = 1 + np.argmax(values[1:-1], axis=0)
        for centre, cols in ((best, np.arange(c)), (interior, np.flatnonzero(interior != best))):
            if cols.size == 0:
                continue
            sub = _subset(block, cols)
            j = np.clip(centre[cols], 1, grid_size - 2)
            x, fx = brent_maximize(
                lambda v, sub=sub, f=f: f(v, sub),
                grid[j - 1],
                grid[j],
                grid[j + 1],
                values[j - 1, cols],
                values[j, cols],
                values[j + 1, cols],
                iterations,
                golden_steps=0,
            )
            better = fx > best_f[cols]
            best_x[cols] = np.where(better, x, best_x[cols])
            best_f[cols] = np.where(better, fx, best_f[cols])
        out.append((np.exp(best_x), best_f))
    return out


def gxe_statistics(
    null: NullData,
    block: GxeBlock,
    lam0: float,
    lam_ml: float,
    bounds: tuple[float, float],
    exact: bool,
    y_scale: float,
) -> dict[str, np.ndarray]:
    r"""The interaction test of every SNP of a chunk.

    Parameters
    ----------
    null : NullData
        y and the covariates, e included, in the eigenbasis.
    block : GxeBlock
        The chunk's SNPs and interactions rotated.
    lam0 : float
        The null λ (P3D: every statistic at it).
    lam_ml : float
        The null model's ML λ (exact mode: the score test's, as GEMMA's ``l_mle_null``).
    bounds : tuple of float
        The λ range searched in exact mode.
    exact : bool
        Re-estimate λ per SNP (GEMMA ``-gxe -lmm 4``): REML of the interaction model for the
        Wald test, ML of the models with and without g∘e for the LRT, the score test at the
        null model's ML λ.
    y_scale : float
        Residual SD of the user's y (β and se back in its units).

    Returns
    -------
    dict
        :data:`GXE_COLUMNS` [each shape: (c,)]: β̂ of g∘e per unit of g (a1 count) × unit of
        e, its SE, Wald p on F(1, N − d − 2), LRT p on χ²₁, score p on F(1, N − d − 2), and
        the h² used (the SNP's REML h² of the interaction model in exact mode). NaN where g∘e
        lies in the span of [X, e, g] (e.g. a single sample carries the SNP's other genotype).

    Notes
    -----
    .. math::

        \hat b_{gxe} = Q_{hy}/Q_{hh},\quad
        F_{Wald} = \frac{Q_{hy}^2/Q_{hh}}{(Q_{yy} - Q_{hy}^2/Q_{hh})/df},\quad
        F_{score} = N Q_{hy}^2/(Q_{yy} Q_{hh}),\quad
        2\Delta\ell = N \log\frac{Q_{yy}}{Q_{yy} - Q_{hy}^2/Q_{hh}} \text{ (P3D)}.
    """
    from scipy import stats

    from bayeslmm.gwas.snp_statistics import wald

    n, d = null.n, null.d
    df = n - d - 2
    c = block.g.G1.shape[1]
    # g∘e in the span of [X, e, g] (e.g. a SNP whose minor genotype one sample carries): NaN
    main0, inter0 = gxe_projections(null, block, np.full(c, lam0))
    p_hh = projections(null, block.h, np.full(c, lam0)).p_gg
    testable = (main0.p_gg > 0) & (inter0.p_gg > 1e-9 * p_hh)
    with np.errstate(divide="ignore", invalid="ignore"):
        if exact:
            (lam_reml, _), (_, ll0), (_, ll1) = _maximize_all(null, block, bounds)
            beta, se, p_wald = wald(gxe_projections(null, block, lam_reml)[1], df)
            score_proj = gxe_projections(null, block, np.full(c, lam_ml))[1]
            lrt = np.maximum(2 * (ll1 - ll0), 0.0)
            h2 = lam_reml / (1 + lam_reml)
        else:
            lam = np.full(c, lam0)
            proj = inter0
            beta, se, p_wald = wald(proj, df)
            rss1 = proj.p_yy - proj.p_gy**2 / proj.p_gg
            lrt = n * np.log(proj.p_yy / rss1)
            score_proj = proj
            h2 = lam / (1 + lam)
        score = n * score_proj.p_gy**2 / (score_proj.p_yy * score_proj.p_gg)
    out = {
        "beta_gxe": beta * y_scale,
        "se_gxe": se * y_scale,
        "p_wald_gxe": p_wald,
        "p_lrt_gxe": stats.chi2.sf(lrt, 1),
        "p_score_gxe": stats.f.sf(score, 1, df),
        "h2_gxe": h2,
    }
    for v in out.values():
        v[~testable] = np.nan
    return out
