"""Per-SNP association statistics in the eigenbasis of K, vectorized over a chunk of SNPs.

Everything is written with λ = σg²/σe² (on the normalized K) so that H = λK + I has weights
w_i = 1/(λ s_i + 1) on the range of K and 1 on its null space. For a SNP g tested beside the
covariates X, with ⟨a, b⟩ = a'H⁻¹b and ⊥ the H⁻¹-projection off X (GEMMA's P_ab):

    P_yy = ⟨y⊥, y⊥⟩,  P_gg = ⟨g⊥, g⊥⟩,  P_gy = ⟨g⊥, y⊥⟩,  RSS₁ = P_yy − P_gy²/P_gg,
    β̂ = P_gy / P_gg,  se = √(RSS₁ / (df · P_gg)),  df = N − d − 1,
    Wald  F = (P_yy − RSS₁) · df / RSS₁ ~ F(1, df),
    score F = N · P_gy² / (P_yy · P_gg) ~ F(1, df)    (GEMMA's definitions),
    LRT  2Δℓ = 2(ℓ₁ − ℓ₀) with ML log-likelihoods ~ χ²₁.

The module knows nothing of files or PyMC; :mod:`bayeslmm.gwas.scanner` drives it chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline

from bayeslmm.constants import LOG_2PI

#: GEMMA's search range of λ = σg²/σe² for its K; bayeslmm multiplies it by the K scale.
LAMBDA_RANGE = (1e-5, 1e5)
#: Points of the log|H| table (see NullData.logdet_h).
LOGDET_POINTS = 1201
#: Golden-section steps before parabolic interpolation in the λ search.
GOLDEN_STEPS = 8


@dataclass(frozen=True, eq=False)
class NullData:
    """The covariates and phenotype in the eigenbasis, with null-space cross products.

    ``gram`` is the Gram matrix of the null-space parts of [X, y]; ``s`` the eigenvalues.
    """

    X1: np.ndarray
    y1: np.ndarray
    gram: np.ndarray
    s: np.ndarray
    n: int
    _splines: dict = field(default_factory=dict, repr=False)

    @property
    def d(self) -> int:
        """Number of covariates."""
        return self.X1.shape[1]

    def logdet_h(self, lam: np.ndarray) -> np.ndarray:
        r"""log|H| = Σᵢ log(1 + λ sᵢ) for each λ [shape: (len(lam),)].

        Notes
        -----
        The sum depends on λ alone, not on the SNP, and is a smooth function of log λ (a sum of
        softplus curves). It is tabulated once per null fit on :data:`LOGDET_POINTS` points of
        log λ over :data:`LAMBDA_RANGE` × the largest 1/sᵢ span and read off a cubic spline
        (absolute error < 1e-7 at this spacing), which saves one logarithm per SNP and
        eigenvalue at every λ evaluation; λ outside the table is summed exactly.
        """
        lam = np.asarray(lam, dtype=float)
        if "logdet" not in self._splines:
            grid = np.linspace(
                np.log(LAMBDA_RANGE[0]) - 5, np.log(LAMBDA_RANGE[1]) + 5, LOGDET_POINTS
            )
            values = np.log1p(np.multiply.outer(self.s, np.exp(grid))).sum(axis=0)
            self._splines["logdet"] = (grid[0], grid[-1], CubicSpline(grid, values))
        lo, hi, spline = self._splines["logdet"]
        log_lam = np.log(np.maximum(lam, 1e-300))
        inside = (log_lam >= lo) & (log_lam <= hi)
        out = np.empty(lam.shape)
        out[inside] = spline(log_lam[inside])
        if not inside.all():
            out[~inside] = np.log1p(np.multiply.outer(self.s, lam[~inside])).sum(axis=0)
        return out


@dataclass(frozen=True, eq=False)
class SnpBlock:
    """A chunk of SNPs in the eigenbasis: G1 = U'G and their null-space cross products.

    Attributes
    ----------
    G1 : ndarray [shape: (rank, c)]
    cross_X : ndarray [shape: (d, c)] null-space ⟨X_c, g_c⟩
    cross_y : ndarray [shape: (c,)] null-space ⟨y_c, g_c⟩
    cross_g : ndarray [shape: (c,)] null-space ⟨g_c, g_c⟩
    """

    G1: np.ndarray
    cross_X: np.ndarray
    cross_y: np.ndarray
    cross_g: np.ndarray


def eigen_weights(null: NullData, lam: np.ndarray) -> np.ndarray:
    """w_ij = 1/(λ_j s_i + 1) [shape: (rank, len(lam))]."""
    W = np.multiply.outer(null.s, lam)
    W += 1.0
    return np.reciprocal(W, out=W)


def _pair_index(d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(d)


def covariate_terms(null: NullData, W: np.ndarray):
    """X'H⁻¹X [shape: (m, d, d)], X'H⁻¹y (m, d), y'H⁻¹y (m,) for each weight column."""
    d = null.d
    rows, cols = _pair_index(d)
    products = null.X1[:, rows] * null.X1[:, cols]  # (r, npairs)
    packed = products.T @ W  # (npairs, m)
    xtx = np.empty((W.shape[1], d, d))
    xtx[:, rows, cols] = packed.T
    xtx[:, cols, rows] = packed.T
    xtx += null.gram[:-1, :-1]
    xty = (null.X1 * null.y1[:, None]).T @ W + null.gram[:-1, -1][:, None]  # (d, m)
    yty = (null.y1**2) @ W + null.gram[-1, -1]
    return xtx, xty.T, yty


@dataclass(frozen=True, eq=False)
class Projections:
    """GEMMA's P quantities for each SNP (and the null), at given λ per SNP."""

    p_yy: np.ndarray
    p_gg: np.ndarray
    p_gy: np.ndarray
    logdet_h: np.ndarray
    logdet_xtx: np.ndarray


def projections(null: NullData, block: SnpBlock, lam: np.ndarray) -> Projections:
    """P_yy, P_gg, P_gy per SNP at λ_j (one λ per SNP) [each shape: (c,)].

    Notes
    -----
    With A = X'H⁻¹X, b = X'H⁻¹g, the Schur complements give P_gg = g'H⁻¹g − b'A⁻¹b etc.; all
    sums over the r eigen-directions are matrix products (BLAS), O((d² + d)·r·c) per call.
    """
    W = eigen_weights(null, lam)  # (r, c)
    xtx, xty, yty = covariate_terms(null, W)
    WG = W * block.G1
    xtg = (null.X1.T @ WG).T + block.cross_X.T  # (c, d)
    gtg = np.einsum("rc,rc->c", WG, block.G1) + block.cross_g
    gty = null.y1 @ WG + block.cross_y
    chol = np.linalg.cholesky(xtx)
    za = np.linalg.solve(chol, xty[..., None])[..., 0]
    zb = np.linalg.solve(chol, xtg[..., None])[..., 0]
    p_yy = yty - (za**2).sum(axis=1)
    p_gg = gtg - (zb**2).sum(axis=1)
    p_gy = gty - (za * zb).sum(axis=1)
    logdet_h = null.logdet_h(lam)  # the null space has weight 1: log 1 = 0
    logdet_xtx = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return Projections(p_yy, p_gg, p_gy, logdet_h, logdet_xtx)


def loglik(proj: Projections, n: int, d: int, method: str, with_snp: bool) -> np.ndarray:
    """(Restricted) log-likelihood at the λ of ``proj``, profiled over β and σe².

    The REML value omits the constant +½ log|X'X| (irrelevant to the maximization).
    """
    if with_snp:
        rss = proj.p_yy - proj.p_gy**2 / proj.p_gg
        logdet_x = proj.logdet_xtx + np.log(proj.p_gg)
        k = d + 1
    else:
        rss, logdet_x, k = proj.p_yy, proj.logdet_xtx, d
    rss = np.maximum(rss, np.finfo(float).tiny)
    if method == "ml":
        return -0.5 * (n * (LOG_2PI + np.log(rss / n)) + proj.logdet_h + n)
    m = n - k
    return -0.5 * (m * (LOG_2PI + np.log(rss / m)) + proj.logdet_h + logdet_x + m)


def _subset(block: SnpBlock, cols: np.ndarray) -> SnpBlock:
    return SnpBlock(
        G1=block.G1[:, cols],
        cross_X=block.cross_X[:, cols],
        cross_y=block.cross_y[cols],
        cross_g=block.cross_g[cols],
    )


def grid_projections(null: NullData, block: SnpBlock, lam: np.ndarray) -> Projections:
    """P_yy, P_gg, P_gy of every SNP at every λ of a shared grid [each shape: (c, L)].

    Notes
    -----
    With one grid shared by the chunk, every sum over the r eigen-directions is a matrix
    product with the weight matrix w_il = 1/(λ_l s_i + 1) [shape: (r, L)]: gᵢ², gᵢyᵢ and
    gᵢxᵢₖ against it are d + 2 GEMMs of c × r × L, so a dense grid costs about as much as a few
    elementwise evaluations. The covariate-only terms and log|H| depend on λ alone.
    """
    W = eigen_weights(null, lam)  # (r, L)
    xtx, xty, yty = covariate_terms(null, W)  # (L, d, d), (L, d), (L,)
    G1, d = block.G1, null.d
    c, L = G1.shape[1], lam.size
    # gᵢ², gᵢyᵢ and gᵢxᵢₖ side by side: one GEMM against the weights [shape: ((d + 2)·c, L)]
    products = np.empty((G1.shape[0], d + 2, c))
    np.multiply(G1, G1, out=products[:, 0])
    np.multiply(G1, null.y1[:, None], out=products[:, 1])
    np.multiply(G1[:, None, :], null.X1[:, :, None], out=products[:, 2:])
    sums = (products.reshape(G1.shape[0], -1).T @ W).reshape(d + 2, c, L)
    gtg = sums[0] + block.cross_g[:, None]  # (c, L)
    gty = sums[1] + block.cross_y[:, None]
    xtg = sums[2:] + block.cross_X[:, :, None]  # (d, c, L)
    chol = np.linalg.cholesky(xtx)
    chol_inv = np.linalg.inv(chol)  # (L, d, d), lower triangular
    za = (chol_inv @ xty[:, :, None])[:, :, 0]  # (L, d)
    zb = chol_inv @ xtg.transpose(2, 0, 1)  # (L, d, c)
    p_yy = yty - (za**2).sum(axis=1)  # (L,)
    p_gg = gtg - np.einsum("lic,lic->cl", zb, zb)
    p_gy = gty - (za[:, None, :] @ zb)[:, 0, :].T
    logdet_h = -np.log(W).sum(axis=0)
    logdet_xtx = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return Projections(
        np.broadcast_to(p_yy, p_gg.shape), p_gg, p_gy, logdet_h[None, :], logdet_xtx[None, :]
    )


def maximize_lambdas(
    null: NullData,
    block: SnpBlock,
    methods: tuple[str, ...],
    with_snp: bool,
    bounds: tuple[float, float],
    grid_size: int = 300,
    iterations: int = 4,
    return_values: bool = False,
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-SNP λ maximizing each (RE)ML likelihood on [bounds], vectorized over the chunk.

    Notes
    -----
    The likelihoods are evaluated on a dense grid of ``grid_size`` points in log λ (both range
    ends included, as GEMMA checks them) by matrix products (:func:`grid_projections`); around
    the best grid point, and around the best interior one where they differ (a local maximum
    inside the range beside a range end), successive parabolic interpolation with
    golden-section fall-back (Brent's idea, vectorized over SNPs) refines log λ from the grid
    spacing (≈ 0.08) to ~10⁻⁶ in three elementwise evaluations. With ``return_values`` the
    maximized log-likelihoods are returned too (per method, [shape: (c,)]).
    """
    c = block.G1.shape[1]
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    grid = np.linspace(lo, hi, grid_size)
    proj_grid = grid_projections(null, block, np.exp(grid))
    out, maxima = {}, {}
    for method in methods:
        values = loglik(proj_grid, null.n, null.d, method, with_snp).T  # (L, c)
        best = np.argmax(values, axis=0)
        best_x, best_f = grid[best].copy(), values[best, np.arange(c)].copy()
        interior = 1 + np.argmax(values[1:-1], axis=0)
        for centre, cols in ((best, np.arange(c)), (interior, np.flatnonzero(interior != best))):
            if cols.size == 0:
                continue
            sub = _subset(block, cols)

            def f(log_lam: np.ndarray, sub: SnpBlock = sub, method: str = method) -> np.ndarray:
                proj = projections(null, sub, np.exp(log_lam))
                return loglik(proj, null.n, null.d, method, with_snp)

            k = np.clip(centre[cols], 1, grid_size - 2)
            x, fx = brent_maximize(
                f,
                grid[k - 1],
                grid[k],
                grid[k + 1],
                values[k - 1, cols],
                values[k, cols],
                values[k + 1, cols],
                iterations,
                golden_steps=0,
            )
            better = fx > best_f[cols]
            best_x[cols] = np.where(better, x, best_x[cols])
            best_f[cols] = np.where(better, fx, best_f[cols])
        out[method] = np.exp(best_x)
        maxima[method] = best_f
    return (out, maxima) if return_values else out


def maximize_lambda(
    null: NullData,
    block: SnpBlock,
    method: str,
    with_snp: bool,
    bounds: tuple[float, float],
) -> np.ndarray:
    """Per-SNP λ maximizing one (RE)ML likelihood (see :func:`maximize_lambdas`)."""
    return maximize_lambdas(null, block, (method,), with_snp, bounds)[method]


def brent_maximize(
    f, a, m, b, fa, fm, fb, iterations: int, golden_steps: int = GOLDEN_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized parabolic interpolation with golden fall-back, maximizing f.

    Keeps, per element, a triple a < m < b with f(m) ≥ f(a), f(b) when it brackets a maximum
    (and the best point seen otherwise), proposing the vertex of the parabola through it.
    """
    golden = (3 - np.sqrt(5)) / 2
    best_x, best_f = m.copy(), fm.copy()
    for step in range(iterations):
        num = (m - a) ** 2 * (fm - fb) - (m - b) ** 2 * (fm - fa)
        den = (m - a) * (fm - fb) - (m - b) * (fm - fa)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = m - 0.5 * num / den
        tol = 1e-9 * (1 + np.abs(m))
        bad = ~np.isfinite(v) | (v <= a + tol) | (v >= b - tol) | (np.abs(v - m) < tol)
        bad |= step < golden_steps  # shrink a wide bracket first, then interpolate
        wide_right = (b - m) > (m - a)
        fallback = np.where(wide_right, m + golden * (b - m), m - golden * (m - a))
        v = np.where(bad, fallback, v)
        fv = f(v)
        right = v > m
        improved = fv >= fm
        # new triple: the vertex replaces an end or becomes the middle
        a_new = np.where(right, np.where(improved, m, a), np.where(improved, a, v))
        b_new = np.where(right, np.where(improved, b, v), np.where(improved, m, b))
        fa_new = np.where(right, np.where(improved, fm, fa), np.where(improved, fa, fv))
        fb_new = np.where(right, np.where(improved, fb, fv), np.where(improved, fm, fb))
        m_new = np.where(improved, v, m)
        fm_new = np.where(improved, fv, fm)
        a, b, fa, fb, m, fm = a_new, b_new, fa_new, fb_new, m_new, fm_new
        take = fv > best_f
        best_x, best_f = np.where(take, v, best_x), np.where(take, fv, best_f)
    return best_x, best_f
