"""Profiled (RE)ML with several variance components, by dense Cholesky (DESIGN §1).

V = σp² H(h) with H = Σ_k h_k K_k + (1 − Σ_k h_k) I has no common eigenbasis, so each
evaluation factorizes H: O(N³), as in GCTA's AI-REML. β and σp² are profiled out in closed
form and the shares h are found by SLSQP on the simplex with the analytic gradient, on every
face of the simplex (each subset of shares held at 0), so a share at 0 is a legal answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, special

from bayeslmm.constants import LOG_2PI
from bayeslmm.errors import ConvergenceError

# (scipy.special, not scipy.stats, which takes ~0.7 s to import: the same numbers, bit for bit,
# as stats.chi2.ppf(0.95, 1) / 2 and stats.norm.ppf(0.975); tests/test_imports.py)
CHI2_HALF = float(special.gammaincinv(0.5, 0.95))
Z95 = float(special.ndtri(0.975))
#: The residual share is kept at least this large (σe² > 0, so H stays positive definite).
MIN_RESIDUAL = 1e-9
#: Shares at or below this are reported at the boundary.
BOUNDARY = 1e-6
#: Faces of the simplex are all searched up to this many components; above, only single drops.
MAX_FACES_K = 4


@dataclass(frozen=True)
class Point:
    """The profiled likelihood at one vector of shares, with the maximizers of β and σp²."""

    loglik: float
    gradient: np.ndarray
    beta: np.ndarray
    sigma_p2: float
    xthx: np.ndarray


class DenseProblem:
    r"""The profiled (restricted) log-likelihood of the shares h, dense.

    Parameters
    ----------
    y : ndarray
        [shape: (n_samples,)].
    X : ndarray
        [shape: (n_samples, d)].
    Ks : list of ndarray
        Normalized kinships [each of shape: (n_samples, n_samples)].
    method : {"reml", "ml"}

    Notes
    -----
    With :math:`H = \sum_k h_k K_k + (1 - \sum_k h_k) I`,
    :math:`P = H^{-1} - H^{-1}X(X^\top H^{-1}X)^{-1}X^\top H^{-1}` and
    :math:`\mathrm{RSS} = y^\top P y`, m = N − d (REML) or N (ML):

    .. math::

        \ell_{ML} = -\tfrac12[N\log(2\pi\,\mathrm{RSS}/N) + \log|H| + N], \quad
        \ell_{REML} = -\tfrac12[m\log(2\pi\,\mathrm{RSS}/m) + \log|H| + \log|X^\top H^{-1}X|
        - \log|X^\top X| + m],

    the one-K convention of :func:`bayeslmm.estimation.reml.profile`. With
    :math:`\partial H/\partial h_k = K_k - I`,

    .. math::

        \frac{\partial\ell}{\partial h_k} = -\tfrac12\Big[\operatorname{tr}(Q (K_k - I))
        - m\,\frac{y^\top P (K_k - I) P y}{\mathrm{RSS}}\Big],

    Q = P for REML and H⁻¹ for ML. One evaluation: a Cholesky of H and H⁻¹ (O(N³)).
    """

    def __init__(self, y: np.ndarray, X: np.ndarray, Ks: Sequence[np.ndarray], method: str):
        self.y, self.X, self.Ks, self.method = y, X, list(Ks), method
        self.n, self.d = X.shape
        self.m = self.n - self.d if method == "reml" else self.n
        self.logdet_xtx = float(np.linalg.slogdet(X.T @ X)[1])
        self.calls = 0

    @property
    def k(self) -> int:
        """Number of components."""
        return len(self.Ks)

    def __call__(self, h: np.ndarray, gradient: bool = True) -> Point:
        """Evaluate at shares h [shape: (k,)]; loglik is −inf where H is not positive definite."""
        self.calls += 1
        h = np.asarray(h, dtype=float)
        H = sum(hk * K for hk, K in zip(h, self.Ks, strict=True)) + (1.0 - h.sum()) * np.eye(self.n)
        nothing = Point(-np.inf, np.full(self.k, np.nan), np.full(self.d, np.nan), np.nan, H)
        try:
            factor = linalg.cho_factor(H, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return nothing
        diag = np.diag(factor[0])
        if not np.all(diag > 0):
            return nothing
        logdet_h = 2.0 * np.log(diag).sum()
        hi_x = linalg.cho_solve(factor, self.X, check_finite=False)
        hi_y = linalg.cho_solve(factor, self.y, check_finite=False)
        xthx = self.X.T @ hi_x
        beta = np.linalg.solve(xthx, self.X.T @ hi_y)
        py = hi_y - hi_x @ beta
        rss = max(float(self.y @ py), np.finfo(float).tiny)
        m = self.m
        if self.method == "ml":
            loglik = -0.5 * (m * (LOG_2PI + np.log(rss / m)) + logdet_h + m)
        else:
            logdet_x = float(np.linalg.slogdet(xthx)[1])
            loglik = -0.5 * (
                m * (LOG_2PI + np.log(rss / m)) + logdet_h + logdet_x - self.logdet_xtx + m
            )
        grad = np.full(self.k, np.nan)
        if gradient:
            h_inv = linalg.cho_solve(factor, np.eye(self.n), check_finite=False)
            if self.method == "reml":
                q = h_inv - hi_x @ np.linalg.solve(xthx, hi_x.T)
            else:
                q = h_inv
            trace_q = np.trace(q)
            grad = np.array(
                [
                    -0.5 * ((np.sum(q * K) - trace_q) - m * (py @ K @ py - py @ py) / rss)
                    for K in self.Ks
                ]
            )
        return Point(float(loglik), grad, beta, rss / m, xthx)


def _optimize_face(problem: DenseProblem, free: Sequence[int], starts: list[np.ndarray]) -> tuple:
    """Maximize over the shares in ``free`` (the others 0) by SLSQP; best (loglik, h)."""
    k = problem.k
    free = list(free)

    def full(x: np.ndarray) -> np.ndarray:
        h = np.zeros(k)
        h[free] = x
        return h

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        point = problem(full(x))
        if not np.isfinite(point.loglik):
            return 1e300, np.zeros(len(free))
        return -point.loglik, -point.gradient[free]

    best = (-np.inf, full(np.zeros(len(free))))
    if not free:
        return problem(best[1], gradient=False).loglik, best[1]
    constraint = {
        "type": "ineq",
        "fun": lambda x: 1.0 - MIN_RESIDUAL - x.sum(),
        "jac": lambda x: -np.ones_like(x),
    }
    for start in starts:
        res = optimize.minimize(
            objective,
            start[free],
            jac=True,
            method="SLSQP",
            bounds=[(0.0, 1.0 - MIN_RESIDUAL)] * len(free),
            constraints=[constraint],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        x = np.clip(res.x, 0.0, 1.0)
        if x.sum() > 1 - MIN_RESIDUAL:
            x *= (1 - MIN_RESIDUAL) / x.sum()
        value = problem(full(x), gradient=False).loglik
        if value > best[0]:
            best = (value, full(x))
    return best


def maximize(problem: DenseProblem) -> tuple[np.ndarray, float]:
    """Maximize over the simplex, searching its faces; return the shares and the log-likelihood.

    Notes
    -----
    The interior search starts from equal shares summing to 0.2, 0.5 and 0.8; every proper
    face (a subset of shares held at 0; all faces when k ≤ 4, else those with one share at 0)
    from equal shares summing to 0.5. The best value over all of them is returned, so the
    answer is never worse than any boundary solution.
    """
    k = problem.k
    results = []
    full_starts = [np.full(k, total / k) for total in (0.2, 0.5, 0.8)]
    results.append(_optimize_face(problem, range(k), full_starts))
    if k <= MAX_FACES_K:
        faces = [c for size in range(k) for c in itertools.combinations(range(k), size)]
    else:
        faces = [tuple(j for j in range(k) if j != drop) for drop in range(k)] + [()]
    for free in faces:
        start = np.zeros(k)
        if free:
            start[list(free)] = 0.5 / len(free)
        results.append(_optimize_face(problem, free, [start]))
    value, h = max(results, key=lambda r: r[0])
    if not np.isfinite(value):
        raise ConvergenceError("the likelihood is not finite anywhere on the simplex of shares.")
    snapped = np.where(h <= BOUNDARY, 0.0, h)  # a share of 1e-15 is a share of 0
    if np.any(snapped != h):
        at_zero = problem(snapped, gradient=False).loglik
        if at_zero >= value - 1e-9:
            h, value = snapped, at_zero
    return h, float(value)


def hessian(problem: DenseProblem, h: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """Second derivatives of the profiled log-likelihood in the shares.

    Differences of the analytic gradient: central where H stays positive definite on both
    sides, else one-sided.
    """
    k = problem.k
    out = np.empty((k, k))
    g0 = problem(h).gradient
    for j in range(k):
        e = np.zeros(k)
        e[j] = step
        plus, minus = problem(h + e), problem(h - e)
        if np.isfinite(plus.loglik) and np.isfinite(minus.loglik):
            out[:, j] = (plus.gradient - minus.gradient) / (2 * step)
        elif np.isfinite(plus.loglik):
            out[:, j] = (plus.gradient - g0) / step
        elif np.isfinite(minus.loglik):
            out[:, j] = (g0 - minus.gradient) / step
        else:
            out[:, j] = np.nan
    return 0.5 * (out + out.T)


def line_interval(
    problem: DenseProblem, path: Callable[[float], np.ndarray], t: float, lo: float, hi: float
) -> tuple[float, float]:
    """Where the log-likelihood along ``path`` drops by χ²₁(0.95)/2 from its value at t."""
    target = problem(path(t), gradient=False).loglik - CHI2_HALF

    def gap(x: float) -> float:
        value = problem(path(x), gradient=False).loglik
        return (value if np.isfinite(value) else -1e300) - target

    lower = lo if t <= lo or gap(lo) >= 0 else optimize.brentq(gap, lo, t, xtol=1e-8)
    upper = hi if t >= hi or gap(hi) >= 0 else optimize.brentq(gap, t, hi, xtol=1e-8)
    return float(lower), float(upper)


@dataclass(frozen=True)
class SharesFit:
    """Estimated shares with their uncertainty."""

    h: np.ndarray
    h_se: np.ndarray
    total_se: float
    total_ci: tuple[float, float]
    cov: np.ndarray
    se_method: str
    point: Point


def fit(problem: DenseProblem) -> SharesFit:
    r"""Maximize and attach standard errors (never NaN).

    Notes
    -----
    Where the observed information :math:`-\partial^2\ell/\partial h\,\partial h^\top` is
    positive definite its inverse is the covariance of the shares (also at a share of 0: the
    profiled likelihood is smooth through h_k = 0 while H stays positive definite), the SE of
    the total is :math:`\sqrt{1^\top\Sigma 1}` and its interval the Wald interval clipped to
    [0, 1]. Otherwise (e.g. two identical kinships: only the sum is identified) each SE is the
    width / (2·1.96) of the 95 % likelihood interval along that share with the others held at
    the estimate, the total's along the ray t·ĥ/Σĥ, and ``se_method`` says so.
    """
    h, _ = maximize(problem)
    point = problem(h)
    k = problem.k
    info = -hessian(problem, h)
    total = float(h.sum())
    chol_ok = bool(np.all(np.isfinite(info)))
    if chol_ok:  # positive definite and not near-singular (e.g. two identical kinships)
        eig = np.linalg.eigvalsh(info)
        chol_ok = bool(eig[0] > 1e-8 * max(eig[-1], 1e-300))
    if chol_ok:
        cov = np.linalg.inv(info)
        se = np.sqrt(np.diag(cov))
        total_se = float(np.sqrt(np.ones(k) @ cov @ np.ones(k)))
        ci = (max(total - Z95 * total_se, 0.0), min(total + Z95 * total_se, 1.0))
        return SharesFit(h, se, total_se, ci, cov, "observed information", point)
    se = np.empty(k)
    for j in range(k):
        others = total - h[j]

        def along(t: float, j: int = j) -> np.ndarray:
            x = h.copy()
            x[j] = t
            return x

        lo, hi = line_interval(problem, along, h[j], 0.0, 1.0 - MIN_RESIDUAL - others)
        se[j] = (hi - lo) / (2 * Z95)
    direction = h / total if total > 0 else np.full(k, 1.0 / k)
    ci = line_interval(problem, lambda t: t * direction, total, 0.0, 1.0 - MIN_RESIDUAL)
    total_se = (ci[1] - ci[0]) / (2 * Z95)
    cov = np.full((k, k), np.nan)
    return SharesFit(h, se, total_se, ci, cov, "likelihood interval", point)
