"""The null model of a scan and the statistics of a chunk of SNPs rotated into its eigenbasis.

Shared by the scan from an N×N kinship (:mod:`bayeslmm.gwas.scanner`, which rotates a chunk with
U) and the scan from a Gram (:mod:`bayeslmm.gwas.lowrank`, which rotates it through W'G): both
hand :func:`snp_statistics` a :class:`~bayeslmm.gwas.association.SnpBlock` and get the same
columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from bayeslmm.data.samples import Prepared
from bayeslmm.estimation.reml import fit_rotated
from bayeslmm.gwas.association import (
    LAMBDA_RANGE,
    NullData,
    SnpBlock,
    loglik,
    maximize_lambda,
    maximize_lambdas,
    projections,
)
from bayeslmm.linalg.spectral import LowRank, Rotated, Standardized

#: Columns of a scan's table, in order.
COLUMNS = [
    "chrom",
    "snp",
    "pos",
    "a1",
    "a2",
    "af",
    "n",
    "beta",
    "se",
    "p_wald",
    "p_lrt",
    "p_score",
    "log10_bf",
    "h2",
]
#: How the null λ may be estimated.
NULLS = ("reml", "map", "posterior")
#: Posterior draws of h² used at most by ``null="posterior"``.
MAX_POSTERIOR_DRAWS = 50


@dataclass(frozen=True, eq=False)
class NullFit:
    """What every chunk of one kinship group needs: the eigenbasis and the null model.

    Attributes
    ----------
    U : ndarray or None
        Eigenvectors of K [shape: (n_samples, rank)] (the N×N path), or None.
    null : NullData
        y and X in the eigenbasis.
    lam : ndarray
        Null λ (REML/MAP: one value; posterior: the draws used).
    lam_ml : float
        Null maximum-likelihood λ (the score test of the exact mode).
    loglik_ml : float
        Its log-likelihood (the LRT of the exact mode).
    bounds : tuple of float
        The λ range searched.
    y : ndarray
        Standardized phenotype (``spectral.standardize``): statistics are unit-free.
    X : ndarray
        Standardized covariates spanning the user's X.
    sd_y : float
        sd(y) in standardized units (the Bayes factor prior).
    y_scale : float
        Residual sd of the user's y on X: beta and se back in user units.
    basis : LowRank or None
        The eigenbasis known through W'W (the Gram path): chunks are rotated from W'G.
    update : ndarray or None
        LOCO from the whole Gram (:mod:`bayeslmm.gwas.loco`): F [shape: (k, r)], whose rows
        extend the coordinates U'G by F·U'G (weight 1 at ``lam``, the only λ valid).
    env : ndarray or None
        The centred environment of a G×E scan [shape: (n_samples,)] (also a column of X),
        or None.
    """

    U: np.ndarray | None
    null: NullData
    lam: np.ndarray
    lam_ml: float
    loglik_ml: float
    bounds: tuple[float, float]
    y: np.ndarray
    X: np.ndarray
    sd_y: float
    y_scale: float = 1.0
    basis: LowRank | None = None
    update: np.ndarray | None = None
    env: np.ndarray | None = None


def null_block(null: NullData) -> SnpBlock:
    """A placeholder SNP (zero in the eigenbasis) for evaluating the null likelihood."""
    r = null.s.size
    return SnpBlock(
        G1=np.zeros((r, 1)), cross_X=np.zeros((null.d, 1)), cross_y=np.zeros(1), cross_g=np.ones(1)
    )


def fit_null(
    rot: Rotated,
    std: Standardized,
    data: Prepared,
    null: str,
    posterior: Any,
    exact: bool,
    *,
    scale: float,
    U: np.ndarray | None = None,
    basis: LowRank | None = None,
    map_h2: float | None = None,
) -> NullFit:
    """The null model of one kinship group from the rotated standardized data.

    Parameters
    ----------
    rot : Rotated
        ``std.y`` and ``std.X`` in the eigenbasis of the group's K.
    std : Standardized
        The standardized phenotype and covariates.
    data : Prepared
        The aligned data (covariate names, the user's y).
    null : {"reml", "map", "posterior"}
        How λ is estimated (see :func:`bayeslmm.scan`).
    posterior : DataTree or None
        The h² draws for ``null="posterior"``.
    exact : bool
        Whether λ is re-estimated per SNP (the REML null then uses GEMMA's λ range).
    scale : float
        Mean diagonal of K (λ is searched on GEMMA's range times it).
    U, basis
        The eigenbasis: eigenvectors (N×N path) or a :class:`LowRank` (Gram path).
    map_h2 : float, optional
        The MAP h² for ``null="map"`` (found by the caller, which has the model).

    Returns
    -------
    NullFit
    """
    nd = NullData(X1=rot.X1, y1=rot.y1, gram=rot.gram, s=rot.s, n=data.n)
    bounds = (LAMBDA_RANGE[0] * scale, LAMBDA_RANGE[1] * scale)
    dummy = null_block(nd)
    lam_ml = float(maximize_lambda(nd, dummy, "ml", False, bounds)[0])
    ll_ml = float(loglik(projections(nd, dummy, np.array([lam_ml])), nd.n, nd.d, "ml", False)[0])
    if null == "reml" and exact:  # GEMMA's λ range, for agreement with -lmm 4
        lam = maximize_lambda(nd, dummy, "reml", False, bounds)
    elif null == "reml":  # profiled REML on h² ∈ [0, 1]: h² = 0 is exact, the test is OLS
        h2 = fit_rotated(rot, data.covariates, "reml")[0]
        lam = np.array([min(h2 / (1 - h2), bounds[1]) if h2 < 1 else bounds[1]])
    elif null == "map":
        lam = np.array([min(map_h2 / max(1 - map_h2, 1e-300), bounds[1])])
    else:
        draws = np.asarray(posterior["posterior"]["h2"]).ravel()
        keep = np.linspace(0, draws.size - 1, min(MAX_POSTERIOR_DRAWS, draws.size)).astype(int)
        h2 = draws[keep]
        lam = np.minimum(h2 / np.maximum(1 - h2, 1e-300), bounds[1])
    return NullFit(
        U=U,
        null=nd,
        lam=np.atleast_1d(lam),
        lam_ml=lam_ml,
        loglik_ml=ll_ml,
        bounds=bounds,
        y=std.y,
        X=std.X,
        sd_y=float(np.std(data.y, ddof=1)) / std.scale,
        y_scale=std.scale,
        basis=basis,
    )


def rotate_block(fit: NullFit, G: np.ndarray) -> SnpBlock:
    """U'G and the null-space cross products of a centred chunk (one BLAS product).

    Parameters
    ----------
    fit : NullFit
        With eigenvectors ``U``.
    G : ndarray
        Centred, imputed genotypes [shape: (n_samples, c)].
    """
    G1 = fit.U.T @ G
    cross_X = fit.X.T @ G - fit.null.X1.T @ G1
    cross_y = fit.y @ G - fit.null.y1 @ G1
    cross_g = np.einsum("ij,ij->j", G, G) - np.einsum("ij,ij->j", G1, G1)
    return SnpBlock(G1=G1, cross_X=cross_X, cross_y=cross_y, cross_g=np.maximum(cross_g, 0.0))


def block_from_products(
    fit: NullFit, WtG: np.ndarray, AtG: np.ndarray, gtg: np.ndarray
) -> SnpBlock:
    r"""A chunk in the eigenbasis of a :class:`LowRank` K from its products with W and [X, y].

    Parameters
    ----------
    fit : NullFit
        With ``basis``.
    WtG : ndarray
        W'G over the samples analysed, the SNPs of the basis [shape: (n_snps, c)].
    AtG : ndarray
        [X, y]'G with the standardized X and y [shape: (d + 1, c)].
    gtg : ndarray
        Squared norms of the centred chunk [shape: (c,)].

    Returns
    -------
    SnpBlock
        What :func:`rotate_block` gives from U and G.

    Notes
    -----
    :math:`U^\top G = \operatorname{diag}(s)^{-1/2}V^\top(W^\top G)/\sqrt{Mc}`
    (:meth:`~bayeslmm.linalg.spectral.LowRank.coordinates`); the null-space cross products
    are :math:`a^\top g - (U^\top a)^\top(U^\top g)`, as in :func:`rotate_block`. With
    ``fit.update`` (LOCO from the whole Gram) U is the whole Gram's and the coordinates are
    extended by :math:`F U^\top G` (:mod:`bayeslmm.gwas.loco`).
    """
    G1 = fit.basis.coordinates(WtG)
    r = G1.shape[0]
    cross_X = AtG[:-1] - fit.null.X1[:r].T @ G1
    cross_y = AtG[-1] - fit.null.y1[:r] @ G1
    cross_g = gtg - np.einsum("ij,ij->j", G1, G1)
    if fit.update is not None:  # LOCO as an update of the whole Gram: k more coordinates
        G1 = np.vstack([G1, fit.update @ G1])
    return SnpBlock(G1=G1, cross_X=cross_X, cross_y=cross_y, cross_g=np.maximum(cross_g, 0.0))


def wald(proj: Any, df: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """β̂, its SE and the Wald p-value on F(1, df) from GEMMA's projected quantities."""
    from scipy import stats  # (here, not at module level: scipy.stats takes ~0.7 s to import)

    rss1 = proj.p_yy - proj.p_gy**2 / proj.p_gg
    beta = proj.p_gy / proj.p_gg
    se = np.sqrt(rss1 / (df * proj.p_gg))
    f = (proj.p_yy - rss1) * df / rss1
    return beta, se, stats.f.sf(f, 1, df)


def log10_bf(beta: np.ndarray, se: np.ndarray, prior_sd: np.ndarray) -> np.ndarray:
    """Wakefield's approximate Bayes factor (alternative vs null), log10."""
    V, W = se**2, prior_sd**2
    z2 = (beta / se) ** 2
    return (0.5 * np.log(V / (V + W)) + 0.5 * z2 * W / (V + W)) / np.log(10)


def snp_statistics(
    fit: NullFit, block: SnpBlock, sd_g: np.ndarray, exact: bool, bf_prior_sd: float
) -> dict[str, np.ndarray]:
    """Every statistic of a chunk of testable SNPs in the eigenbasis.

    Parameters
    ----------
    fit : NullFit
    block : SnpBlock
        The chunk rotated (:func:`rotate_block` or :func:`block_from_products`).
    sd_g : ndarray
        SD of each SNP (ddof 1) over the samples analysed [shape: (c,)].
    exact, bf_prior_sd
        As in :func:`bayeslmm.scan`.

    Returns
    -------
    dict
        beta, se (user units), p_wald, p_lrt, p_score, log10_bf, h2 [each shape: (c,)].
    """
    from scipy import stats  # (here, not at module level: scipy.stats takes ~0.7 s to import)

    n, d = fit.null.n, fit.null.d
    df = n - d - 1
    c = block.G1.shape[1]
    lam0 = np.full(c, fit.lam.mean() if fit.lam.size > 1 else fit.lam[0])
    if fit.lam.size > 1:  # posterior null: p-values at the mean λ of the draws used
        lam0 = np.full(c, float(np.mean(fit.lam)))
    # P3D evaluates every statistic at the null λ; exact mode needs the null fit only for the
    # score test, whose nuisance λ is the null maximum likelihood one (as GEMMA -lmm 3/4)
    proj0 = None if exact else projections(fit.null, block, lam0)
    n_f = float(n)
    proj_s = projections(fit.null, block, np.full(c, fit.lam_ml)) if exact else proj0
    score = n_f * proj_s.p_gy**2 / (proj_s.p_yy * proj_s.p_gg)
    p_score = stats.f.sf(score, 1, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        prior_sd = bf_prior_sd * fit.sd_y / sd_g
    if exact:
        lams, best = maximize_lambdas(
            fit.null, block, ("reml", "ml"), True, fit.bounds, return_values=True
        )
        lam_reml = lams["reml"]
        beta, se, p_wald = wald(projections(fit.null, block, lam_reml), df)
        ll1 = best["ml"]  # the maximized ML log-likelihood with the SNP
        lrt = np.maximum(2 * (ll1 - fit.loglik_ml), 0.0)
        h2 = lam_reml / (1 + lam_reml)
    else:
        beta, se, p_wald = wald(proj0, df)
        rss1 = proj0.p_yy - proj0.p_gy**2 / proj0.p_gg
        lrt = n_f * np.log(proj0.p_yy / rss1)
        h2 = lam0 / (1 + lam0)
    bf = log10_bf(beta, se, prior_sd)
    if fit.lam.size > 1:  # average the Bayes factor over the posterior draws of h²
        terms = []
        for lam in fit.lam:
            b_k, se_k, _ = wald(projections(fit.null, block, np.full(c, lam)), df)
            terms.append(log10_bf(b_k, se_k, prior_sd) * np.log(10))
        bf = (special.logsumexp(np.stack(terms), axis=0) - np.log(len(terms))) / np.log(10)
    return {
        "beta": beta * fit.y_scale,
        "se": se * fit.y_scale,
        "p_wald": p_wald,
        "p_lrt": stats.chi2.sf(lrt, 1),
        "p_score": p_score,
        "log10_bf": bf,
        "h2": h2,
    }


def chunk_frame(
    snp_table: pd.DataFrame,
    af: np.ndarray,
    count: np.ndarray,
    ok: np.ndarray,
    results: dict[str, np.ndarray] | None,
    extra: tuple[str, ...] | list[str] = (),
) -> pd.DataFrame:
    """The table of one chunk: SNP columns, af, n and the statistics of the testable SNPs.

    Parameters
    ----------
    snp_table : DataFrame
        The chunk's rows of ``Genotypes.snps``.
    af, count : ndarray
        Frequency of a1 and calls [shape: (c,)].
    ok : ndarray of bool
        The SNPs tested (polymorphic, with calls) [shape: (c,)].
    results : dict or None
        :func:`snp_statistics` of ``ok`` SNPs (None when there is none); the others are NaN.
    extra : sequence of str
        Further statistics columns after the usual ones (a G×E scan's).
    """
    names = [*COLUMNS[7:], *extra]
    out = {k: np.full(ok.size, np.nan) for k in names}
    if results is not None:
        for k, v in results.items():
            out[k][ok] = v
    table = snp_table[["chrom", "snp", "pos", "a1", "a2"]].reset_index(drop=True).copy()
    table["af"] = af
    table["n"] = count
    for k in names:
        table[k] = out[k]
    return table
