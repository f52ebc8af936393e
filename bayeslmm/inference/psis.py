r"""Pareto-smoothed importance sampling LOO for many observations at once (numpy only).

:func:`psis_loo` computes, for every column of a draws × observations matrix of pointwise
log-likelihoods, the PSIS-LOO terms that :func:`arviz_stats.loo` computes one observation at
a time (elpd_i, Pareto k, p_loo_i), with the same algorithm and settings, vectorized over the
observations: at N = 100,000 samples × 4,000 draws the per-observation loop costs ~1.5 ms an
observation (2.5 min); this takes a few seconds per 100,000.

Notes
-----
For one observation with log-likelihood draws :math:`\ell_s`, s = 1..S, the raw log weights
are :math:`r_s = -\ell_s - \max_s(-\ell_s)`. The M largest (M = ⌊3√(S/r_eff)⌋ when
S·r_eff > 225, else ⌊S/5⌋, at least 5; r_eff the relative efficiency of the draws) are
replaced by the expected order statistics of a generalized Pareto distribution fitted to
:math:`e^{r} - e^{c}` over the tail (c the largest log weight below it), by the empirical
Bayes estimate of Zhang & Stephens (2009) with ArviZ's weakly informative prior on k
(k ← (M·k + 10·0.5)/(M + 10); Vehtari et al. 2024):

.. math::

    b_j = \frac{1}{x_{(M)}} + \frac{1 - \sqrt{m/(j - 1/2)}}{3\,x^\*},\quad j = 1..m,\ m =
    30 + ⌊\sqrt M⌋, \qquad
    k(b) = \frac1M\sum_i \log(1 - b x_i), \qquad
    w_j \propto \exp\{M(\log(-b_j/k(b_j)) - k(b_j) - 1)\},

:math:`x^\*` the first quartile of the tail, :math:`\hat b = \sum_j w_j b_j` (weights below
10·ε dropped), :math:`\hat k = k(\hat b)`, :math:`\hat\sigma = -\hat k/\hat b`. The smoothed
tail is :math:`\log\{e^c + \hat\sigma((1 - p_i)^{-\hat k} - 1)/\hat k\}`, p_i = (i − ½)/M,
capped at the largest raw log weight; the weights are then normalized, and

.. math::

    \mathrm{elpd}_i = \log\sum_s e^{r_s + \ell_s}, \qquad
    \mathrm{lppd}_i = \log\frac1S\sum_s e^{\ell_s}, \qquad
    p_{\mathrm{loo},i} = \mathrm{lppd}_i - \mathrm{elpd}_i.

A column where the fit is not possible (first quartile of the tail at its minimum) keeps its
raw weights and gets k = NaN, as ArviZ does; one whose estimate is not a number gets k = inf
and keeps its raw weights. The latter differs from ArviZ in one degenerate case: when a single
draw holds all the weight (log weights hundreds of nats apart, so that the tail's exceedances
underflow to zero), ArviZ's fit returns a small k and a NaN elpd_i, this one k = inf (flagged
as unreliable) and the finite elpd_i of the raw weights. Elsewhere the values equal ArviZ's
to ~1e-13 (tests/test_psis.py).
"""

from __future__ import annotations

import math

import numpy as np

#: ArviZ's prior on the Pareto shape k: k ← (M·k + PRIOR_K·0.5)/(M + PRIOR_K).
PRIOR_K = 10
#: ArviZ's grid scale for b: 1/(PRIOR_BS·first quartile).
PRIOR_BS = 3
#: Observations per vectorized batch of the GPD fit (bounds its m × M × batch array).
_BATCH = 256


def tail_length(n_draws: int, r_eff: float) -> int:
    """Draws in the smoothed tail, as ArviZ chooses them (at least 5).

    Parameters
    ----------
    n_draws : int
    r_eff : float
        Relative efficiency of the draws.

    Returns
    -------
    int
    """
    if n_draws * r_eff > 225:
        m = math.floor(3 * math.sqrt(n_draws / r_eff))
    else:
        m = math.floor(n_draws / 5)
    return max(m, 5)


def _logsumexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.sum(np.exp(a - top), axis=axis)) + np.squeeze(top, axis=axis)


def gpd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Generalized Pareto fit of each column, as ArviZ's ``_gpdfit`` (see the module Notes).

    Parameters
    ----------
    x : ndarray
        Exceedances over the threshold, sorted ascending in each column
        [shape: (tail, n_columns)].

    Returns
    -------
    k, sigma : ndarray
        Shape and scale [shape: (n_columns,)]; k = NaN where the first quartile is not above
        the minimum, k = inf where the estimate is not a number.
    """
    n, cols = x.shape
    m = 30 + int(n**0.5)
    xstar = x[int(n / 4 + 0.5) - 1]  # [shape: (cols,)]
    ok = xstar > x[0]
    grid = 1 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))  # [shape: (m,)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        b = grid[:, None] / (PRIOR_BS * xstar[None, :]) + 1 / x[-1][None, :]  # (m, cols)
        k_grid = np.mean(np.log1p(-b[:, None, :] * x[None, :, :]), axis=1)  # (m, cols)
        scale = n * (np.log(-b / k_grid) - k_grid - 1)
        w = np.exp(scale - _logsumexp(scale, axis=0)[None, :])
        w = np.where(w >= 10 * np.finfo(float).eps, w, 0.0)
        w /= w.sum(axis=0, keepdims=True)
        b_post = np.sum(b * w, axis=0)
        k = np.mean(np.log1p(-b_post[None, :] * x), axis=0)
        sigma = -k / b_post
    k = (n * k + PRIOR_K * 0.5) / (n + PRIOR_K)
    k = np.where(np.isnan(k), np.inf, k)
    sigma = np.where(np.isinf(k), np.nan, sigma)
    return np.where(ok, k, np.nan), np.where(ok, sigma, np.nan)


def _smoothed_tails(
    raw: np.ndarray, r_eff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Pareto-smoothed tail of each row of raw log weights (max 0 in every row).

    Parameters
    ----------
    raw : ndarray
        Raw log weights, one observation per row [shape: (n_obs, draws)].
    r_eff : float

    Returns
    -------
    tail_idx : ndarray of int
        Positions of each row's tail draws [shape: (n_obs, tail)].
    tail_raw, tail_smooth : ndarray
        Their raw and smoothed log weights [shape: (n_obs, tail)] (equal where a row is not
        smoothed).
    pareto_k : ndarray
        [shape: (n_obs,)].
    """
    n_obs, n_draws = raw.shape
    m = tail_length(n_draws, r_eff)
    if m >= n_draws:
        raise ValueError(f"{n_draws} draws are too few for a Pareto tail of {m}.")
    # the tail and the largest value below it: the m + 1 largest of each row, sorted
    part = np.argpartition(raw, n_draws - m - 1, axis=1)[:, n_draws - m - 1 :]
    values = np.take_along_axis(raw, part, axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    part = np.take_along_axis(part, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    cutoff, tail_idx, tail_raw = values[:, 0], part[:, 1:], values[:, 1:]
    tail_smooth = tail_raw.copy()
    khat = np.full(n_obs, np.nan)
    p = (np.arange(m) + 0.5) / m
    for start in range(0, n_obs, _BATCH):
        sl = slice(start, min(start + _BATCH, n_obs))
        t, exp_c = tail_raw[sl], np.exp(cutoff[sl])
        k, sigma = gpd_fit((np.exp(t) - exp_c[:, None]).T)
        khat[sl] = k
        smooth = np.isfinite(k) & (sigma > 0)
        if not smooth.any():
            continue
        ks, ss = k[smooth, None], sigma[smooth, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(
                ks == 0,
                -ss * np.log1p(-p)[None, :],
                ss * np.expm1(-ks * np.log1p(-p)[None, :]) / ks,
            )
            smoothed = np.log(exp_c[smooth, None] + q)
        block = tail_smooth[sl]
        block[smooth] = np.minimum(smoothed, t[smooth].max(axis=1, keepdims=True))
    return tail_idx, tail_raw, tail_smooth, khat


def psis_loo(loglik: np.ndarray, r_eff: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""PSIS-LOO terms of each observation (the pointwise values of :func:`arviz_stats.loo`).

    Parameters
    ----------
    loglik : ndarray
        Pointwise log-likelihoods [shape: (draws, n_obs)], draws of all chains stacked.
    r_eff : float
        Relative efficiency of the draws (ArviZ: mean ESS / draws of the parameters).

    Returns
    -------
    elpd_i, pareto_k, p_loo_i : ndarray
        [shape: (n_obs,)] each.

    Notes
    -----
    See the module docstring. Outside the tail the raw log weight of draw s is
    :math:`r_s = -\ell_s - c_0`, :math:`c_0 = \max_s(-\ell_s)`, so :math:`r_s + \ell_s =
    -c_0` there, and

    .. math::

        \mathrm{elpd}_i = -c_0 + \log\Big(S - M + \sum_{\text{tail}}
        e^{\tilde r_s - r_s}\Big) - \log\sum_s e^{\tilde r_s},

    :math:`\tilde r` the smoothed weights: two passes of exp over the draws (this and the
    lppd), the rest on the tails. Memory: about three draws × n_obs float64 arrays; callers
    with many observations pass them by blocks (an observation's terms never depend on
    another's).
    """
    loglik = np.asarray(loglik, dtype=float)
    if loglik.ndim != 2:
        raise ValueError(f"loglik must be draws × observations, got shape {loglik.shape}.")
    n_draws, n_obs = loglik.shape
    raw = np.negative(loglik.T)  # [shape: (n_obs, draws)], contiguous per observation
    c0 = raw.max(axis=1)
    raw -= c0[:, None]
    tail_idx, tail_raw, tail_smooth, khat = _smoothed_tails(raw, r_eff)
    rows = np.arange(n_obs)[:, None]
    raw[rows, tail_idx] = tail_smooth
    np.exp(raw, out=raw)
    log_norm = np.log(raw.sum(axis=1))  # the largest weight is 1: no overflow
    m = tail_raw.shape[1]
    with np.errstate(divide="ignore"):
        spread = np.column_stack([np.full(n_obs, math.log(n_draws - m)), tail_smooth - tail_raw])
    elpd = -c0 + _logsumexp(spread, axis=1) - log_norm
    top = loglik.max(axis=0)
    lppd = np.log(np.exp(loglik - top[None, :]).sum(axis=0)) + top - math.log(n_draws)
    return elpd, khat, lppd - elpd
