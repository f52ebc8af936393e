"""The profiled likelihood of one trait in the eigenbasis of K, shared by the REML fits.

:func:`profile` is the likelihood that :func:`bayeslmm.estimation.reml.reml` maximizes over h²,
and the one-trait starting values of :mod:`bayeslmm.estimation.multivariate`; it lives here so
that ``reml`` can hand several traits to the multi-trait fit without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from bayeslmm.constants import LOG_2PI
from bayeslmm.errors import InputError
from bayeslmm.linalg.spectral import Rotated

# (scipy.special, not scipy.stats, which takes ~0.7 s to import: the same numbers, bit for bit,
# as stats.chi2.ppf(0.95, 1) / 2 and stats.norm.ppf(0.975); tests/test_imports.py)
#: Half the 95 % quantile of chi-square(1): the drop in log-likelihood that bounds the interval.
CHI2_HALF = float(special.gammaincinv(0.5, 0.95))
Z95 = float(special.ndtri(0.975))


@dataclass(frozen=True)
class Profile:
    """The profiled likelihood and its maximizers at one or more values of h²."""

    loglik: np.ndarray
    beta: np.ndarray
    sigma_p2: np.ndarray
    xtwx: np.ndarray


def profile(rot: Rotated, h2: np.ndarray | float, method: str = "reml") -> Profile:
    r"""Evaluate the profiled log-likelihood at given h² (vectorized).

    Parameters
    ----------
    rot : Rotated
        Data in the eigenbasis of K.
    h2 : float or ndarray
        Heritability values [shape: (g,)] in [0, 1].
    method : {"reml", "ml"}

    Returns
    -------
    Profile
        ``loglik`` [shape: (g,)], ``beta`` (g, d), ``sigma_p2`` (g,), ``xtwx`` (g, d, d).

    Notes
    -----
    With :math:`H = h^2 K + (1-h^2) I`, weights :math:`w_i = 1/(h^2 s_i + 1 - h^2)` on the
    range of K and :math:`w_c = 1/(1-h^2)` on its N − r dimensional complement:

    .. math::

        \hat\beta = (X^\top H^{-1} X)^{-1} X^\top H^{-1} y, \quad
        \mathrm{RSS} = y^\top H^{-1} y - \hat\beta^\top X^\top H^{-1} y,

    ML: :math:`\hat\sigma_p^2 = \mathrm{RSS}/N`,
    :math:`\ell = -\tfrac12[N\log(2\pi\hat\sigma_p^2) + \log|H| + N]`;
    REML: :math:`\hat\sigma_p^2 = \mathrm{RSS}/(N-d)`,
    :math:`\ell = -\tfrac12[(N-d)\log(2\pi\hat\sigma_p^2) + \log|H| +
    \log|X^\top H^{-1}X| - \log|X^\top X| + (N-d)]`, the convention of GEMMA and GCTA
    (invariant to a reparametrization of the fixed effects).
    """
    h = np.atleast_1d(np.asarray(h2, dtype=float))
    n, d = rot.n, rot.X1.shape[1]
    diag = h[:, None] * rot.s[None, :] + (1.0 - h[:, None])  # (g, r)
    w = 1.0 / diag
    with np.errstate(divide="ignore"):
        wc = np.where(h < 1.0, 1.0 / (1.0 - h), np.inf) if rot.n_null else np.zeros_like(h)
    gxx, gxy, gyy = rot.gram[:-1, :-1], rot.gram[:-1, -1], rot.gram[-1, -1]
    with np.errstate(invalid="ignore"):
        xtwx = np.einsum("gr,ri,rj->gij", w, rot.X1, rot.X1) + wc[:, None, None] * gxx
        xtwy = np.einsum("gr,ri,r->gi", w, rot.X1, rot.y1) + wc[:, None] * gxy
        ytwy = w @ rot.y1**2 + wc * gyy
    logdet_h = np.log(diag).sum(axis=1)
    if rot.n_null:
        with np.errstate(divide="ignore"):
            logdet_h = logdet_h + rot.n_null * np.log1p(-h)
    finite = np.isfinite(xtwx).all(axis=(1, 2)) & np.isfinite(ytwy)
    beta = np.full((h.size, d), np.nan)
    rss = np.full(h.size, np.nan)
    logdet_x = np.full(h.size, np.nan)
    if finite.any():
        chol = np.linalg.cholesky(xtwx[finite])
        z = np.linalg.solve(chol, xtwy[finite][..., None])[..., 0]
        beta[finite] = np.linalg.solve(np.swapaxes(chol, 1, 2), z[..., None])[..., 0]
        rss[finite] = ytwy[finite] - (z**2).sum(axis=1)
        logdet_x[finite] = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    rss = np.maximum(rss, np.finfo(float).tiny)
    if method == "ml":
        sigma_p2 = rss / n
        loglik = -0.5 * (n * (LOG_2PI + np.log(sigma_p2)) + logdet_h + n)
    elif method == "reml":
        sigma_p2 = rss / (n - d)
        xtx = rot.X1.T @ rot.X1 + rot.gram[:-1, :-1]
        logdet_xtx = np.linalg.slogdet(xtx)[1]
        loglik = -0.5 * (
            (n - d) * (LOG_2PI + np.log(sigma_p2)) + logdet_h + logdet_x - logdet_xtx + (n - d)
        )
    else:
        raise InputError(f"method must be 'reml' or 'ml', got {method!r}.")
    loglik = np.where(finite, loglik, -np.inf)
    return Profile(loglik=loglik, beta=beta, sigma_p2=sigma_p2, xtwx=xtwx)
