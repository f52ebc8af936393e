"""Standard errors of Σg, Σe, h², rg and re.

The observed information (delta method) at an interior estimate, profile-likelihood intervals
on the boundary.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from bayeslmm.estimation.likelihood import CHI2_HALF, Z95
from bayeslmm.estimation.multivariate.optimization import absorbed, hessian, ranged
from bayeslmm.estimation.multivariate.parameters import correlation, heritability, lower_triangle
from bayeslmm.estimation.multivariate.rotation import RotatedTraits, evaluate

#: Largest h² a profile may fix (the residual covariance must stay positive definite).
H2_MAX = 1.0 - 1e-9
#: Tolerance on the ends of a profile-likelihood interval (their SE is width / 3.92).
PROFILE_XTOL = 1e-5
SE_INFORMATION = "observed information"
SE_PROFILE = "profile likelihood"


def _quantity_gradients(
    sigma_g: np.ndarray, sigma_e: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Derivatives of h²_t, rg_ab, re_ab with respect to φ = (vech Σg, vech Σe).

    Returns arrays [shape: (T, 2m)], (T, T, 2m) and (T, T, 2m) with m = T(T+1)/2.
    """
    T = sigma_g.shape[0]
    m = T * (T + 1) // 2
    rows, cols = lower_triangle(T)
    index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(rows, cols, strict=True))}
    index.update({(b, a): k for (a, b), k in list(index.items())})
    g, e = np.diag(sigma_g), np.diag(sigma_e)
    dh2 = np.zeros((T, 2 * m))
    for t in range(T):
        p = g[t] + e[t]
        dh2[t, index[t, t]] = e[t] / p**2
        dh2[t, m + index[t, t]] = -g[t] / p**2

    def corr(S: np.ndarray, offset: int) -> np.ndarray:
        v = np.diag(S)
        out = np.zeros((T, T, 2 * m))
        for a in range(T):
            for b in range(T):
                if a == b or v[a] <= 0 or v[b] <= 0:
                    continue
                r = S[a, b] / np.sqrt(v[a] * v[b])
                out[a, b, offset + index[a, b]] += 1.0 / np.sqrt(v[a] * v[b])
                out[a, b, offset + index[a, a]] += -0.5 * r / v[a]
                out[a, b, offset + index[b, b]] += -0.5 * r / v[b]
        return out

    return dh2, corr(sigma_g, 0), corr(sigma_e, m)


@dataclass(frozen=True)
class Uncertainty:
    """Standard errors in standardized units (h², rg, re are unit-free)."""

    phi_cov: np.ndarray
    h2_se: np.ndarray
    rg_se: np.ndarray
    re_se: np.ndarray
    method: str
    h2_ci: np.ndarray | None = None
    rg_ci: np.ndarray | None = None
    re_ci: np.ndarray | None = None


def _phi_covariance(H: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(−H)⁻¹, computed in whitened coordinates; directions of no curvature floored.

    Notes
    -----
    In the whitened coordinates the information is well scaled, so its eigenvalues are
    compared with the largest; an eigenvalue at or below 1e-10 of it (a direction the data do
    not inform, only possible at a boundary) is floored there, giving a large but finite SE
    (as is a direction whose differences left the domain even with steps 10⁻⁴ as small).
    """
    info = -(M.T @ np.where(np.isfinite(H), H, 0.0) @ M)
    values, vectors = np.linalg.eigh(0.5 * (info + info.T))
    floor = 1e-10 * max(float(values.max()), 1e-300)
    values = np.maximum(values, floor)
    cov_white = (vectors / values) @ vectors.T
    return M @ cov_white @ M.T


def information_uncertainty(
    rot: RotatedTraits, sigma_g: np.ndarray, sigma_e: np.ndarray, method: str
) -> Uncertainty:
    r"""SEs of Σg, Σe, h², rg and re from the observed information (delta method).

    Notes
    -----
    :math:`\operatorname{cov}(\hat\phi) = (-\partial^2\ell/\partial\phi^2)^{-1}` with
    φ = (vech Σg, vech Σe) (:func:`hessian`), and for a function q(φ) (h², rg, re)
    :math:`\operatorname{se}(q)^2 = \nabla q^\top \operatorname{cov}(\hat\phi)\nabla q`.
    """
    H, M = hessian(rot, sigma_g, sigma_e, method)
    cov = _phi_covariance(H, M)
    dh2, drg, dre = _quantity_gradients(sigma_g, sigma_e)

    def se(grad: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(np.einsum("...i,ij,...j->...", grad, cov, grad), 0.0, None))

    return Uncertainty(cov, se(dh2), se(drg), se(dre), SE_INFORMATION)


class ProfileMap:
    r"""Σg and Σe from per-trait h², σp and the Cholesky factors of the correlation matrices.

    Parameters
    ----------
    T : int
        Number of traits.
    order : sequence of int
        The traits in the order of this parametrization (the pair whose correlation is
        profiled first), as positions in the data.

    Notes
    -----
    θ = (a, τ, v_g, v_e): :math:`h^2_t = a_t^2` with :math:`a_t \in [0, 1)`,
    :math:`\sigma_{p,t} = e^{\tau_t}`, and the rows k ≥ 1 of the lower-triangular Cholesky
    factor of the genetic (residual) correlation matrix :math:`v_k/\lVert v_k\rVert`,
    :math:`v_k \in \mathbb{R}^{k+1}` (row 0 is (1, 0, …)). Then
    :math:`\Sigma_{g,ab} = a_a a_b\sigma_{p,a}\sigma_{p,b}R_{g,ab}` and
    :math:`\Sigma_{e,ab} = \sqrt{(1-a_a^2)(1-a_b^2)}\,\sigma_{p,a}\sigma_{p,b}R_{e,ab}`: every
    h² in [0, 1) and every correlation matrix (singular ones included) is reachable, h²_t is
    one coordinate, and the correlation of the first two traits is the entry
    :math:`v_{1,0}` when :math:`v_1` is held at :math:`(\rho, \sqrt{1-\rho^2})`. The map uses
    only arithmetic, ``exp`` and ``sqrt``, so its Jacobian comes exactly from complex steps.
    """

    def __init__(self, T: int, order: np.ndarray) -> None:
        self.T = T
        self.order = np.asarray(order)
        self.back = np.argsort(self.order)
        self.row_size = T * (T - 1) // 2 + (T - 1)  # entries of v_1..v_{T-1}
        self.size = 2 * T + 2 * self.row_size

    def rows_offset(self, which: str) -> int:
        """Index of v_1 (the first free row) of the genetic or residual factor."""
        return 2 * self.T + (0 if which == "g" else self.row_size)

    def _factor(self, v: np.ndarray) -> np.ndarray:
        """Cholesky factors of correlation matrices from their free rows [batch..., T, T]."""
        T = self.T
        L = np.zeros((*v.shape[:-1], T, T), dtype=v.dtype)
        L[..., 0, 0] = 1.0
        pos = 0
        for k in range(1, T):
            row = v[..., pos : pos + k + 1]
            L[..., k, : k + 1] = row / np.sqrt(np.sum(row * row, axis=-1, keepdims=True))
            pos += k + 1
        return L

    def sigmas(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Σg, Σe) in the data's trait order [shape: (batch..., T, T)] (complex θ allowed)."""
        T = self.T
        a, sp = theta[..., :T], np.exp(theta[..., T : 2 * T])
        b = np.sqrt(1.0 - a * a)
        off = 2 * T
        Lg = self._factor(theta[..., off : off + self.row_size])
        Le = self._factor(theta[..., off + self.row_size :])
        Rg = Lg @ np.swapaxes(Lg, -1, -2)
        Re = Le @ np.swapaxes(Le, -1, -2)
        dg, de = a * sp, b * sp
        Sg = dg[..., :, None] * dg[..., None, :] * Rg
        Se = de[..., :, None] * de[..., None, :] * Re
        back = self.back
        return Sg[..., back[:, None], back[None, :]], Se[..., back[:, None], back[None, :]]

    def jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∂Σg/∂θ and ∂Σe/∂θ by complex steps [shape: (p, T, T)] each, in one batched call."""
        step = 1e-30
        batch = theta[None, :] + 1j * step * np.eye(theta.size)
        Sg, Se = self.sigmas(batch)
        return Sg.imag / step, Se.imag / step

    def start(self, sigma_g: np.ndarray, sigma_e: np.ndarray) -> np.ndarray:
        """θ for a given (Σg, Σe) (h² < 1, a singular correlation matrix nudged to full rank)."""
        T = self.T
        Sg = sigma_g[np.ix_(self.order, self.order)]
        Se = sigma_e[np.ix_(self.order, self.order)]
        sp2 = np.diag(Sg) + np.diag(Se)
        a = np.sqrt(np.clip(np.diag(Sg) / sp2, 0.0, H2_MAX))
        parts = [a, 0.5 * np.log(sp2)]
        for S in (Sg, Se):
            R = correlation(S)
            L = np.linalg.cholesky((R + 1e-9 * np.eye(T)) / (1 + 1e-9))
            parts.append(np.concatenate([L[k, : k + 1] for k in range(1, T)]))
        return np.concatenate(parts)


@dataclass
class _Profiler:
    """Profile log-likelihoods of h², rg and re by L-BFGS-B over the other parameters."""

    rot: RotatedTraits
    method: str
    sigma_g: np.ndarray
    sigma_e: np.ndarray
    best: float
    cache: dict = field(default_factory=dict)

    def maximize_fixed(self, pm: ProfileMap, fixed: dict[int, float], start: np.ndarray) -> tuple:
        free = np.array([j for j in range(pm.size) if j not in fixed])
        T = self.T

        def full(x: np.ndarray) -> np.ndarray:
            theta = start.copy()
            theta[free] = x
            for j, value in fixed.items():
                theta[j] = value
            return theta

        def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
            theta = full(x)
            sg, se = pm.sigmas(theta)
            at = evaluate(self.rot, sg, se, self.method, gradient=True)
            if not np.isfinite(at.loglik):
                return 1e300, np.zeros_like(x)
            dg, de = pm.jacobian(theta)
            grad = np.einsum("pab,ab->p", dg, at.grad_g) + np.einsum("pab,ab->p", de, at.grad_e)
            return -at.loglik, -grad[free]

        bounds = [(0.0, np.sqrt(H2_MAX)) if j < T else (None, None) for j in free]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = optimize.minimize(
                negative,
                start[free],
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"ftol": 1e-13, "gtol": 1e-8, "maxiter": 1000},
            )
        return -float(res.fun), full(res.x)

    @property
    def T(self) -> int:
        return self.rot.n_traits

    def curve(
        self, pm: ProfileMap, fix: Callable[[float], dict[int, float]], key: tuple
    ) -> Callable[[float], float]:
        """ℓ_p(q): the better of two maximizations, from the estimate and from the nearest q."""
        solved: dict[float, tuple[float, np.ndarray]] = self.cache.setdefault(key, {})
        origin = pm.start(self.sigma_g, self.sigma_e)

        def value(q: float) -> float:
            if q in solved:
                return solved[q][0]
            loglik, theta = self.maximize_fixed(pm, fix(q), origin)
            if solved:  # also from the nearest q solved; the better answer is kept
                near = min(solved, key=lambda x: abs(x - q))
                other, theta_other = self.maximize_fixed(pm, fix(q), solved[near][1])
                if other > loglik:
                    loglik, theta = other, theta_other
            solved[q] = (loglik, theta)
            return loglik

        return value

    def interval(
        self, value: Callable[[float], float], estimate: float, lo: float, hi: float
    ) -> tuple[float, float]:
        """Where the profile drops by χ²₁(0.95)/2 from the maximum, within [lo, hi]."""
        target = self.best - CHI2_HALF

        def gap(q: float) -> float:
            return value(q) - target

        estimate = float(np.clip(estimate, lo, hi))
        lower = lo if estimate <= lo or gap(lo) >= 0 else _root(gap, lo, estimate)
        upper = hi if estimate >= hi or gap(hi) >= 0 else _root(gap, estimate, hi)
        return lower, upper


def _root(gap: Callable[[float], float], lo: float, hi: float) -> float:
    """A root of gap in [lo, hi] (gap(lo) and gap(hi) of opposite signs, or the nearer end)."""
    g_lo, g_hi = gap(lo), gap(hi)
    if g_lo * g_hi > 0:
        return lo if abs(g_lo) < abs(g_hi) else hi
    return float(optimize.brentq(gap, lo, hi, xtol=PROFILE_XTOL))


def profile_uncertainty(
    rot: RotatedTraits, sigma_g: np.ndarray, sigma_e: np.ndarray, method: str, best: float
) -> Uncertainty:
    """SEs of h², rg and re from 95 % profile-likelihood intervals (width / 3.92).

    Notes
    -----
    Used where the estimate is on the boundary (a trait with h² = 0 or 1, |rg| = 1, a singular
    genetic correlation matrix), where the observed information of h² and rg is singular or
    the delta method does not apply. Each interval is found by Brent's method on the profile
    log-likelihood (the others maximized by L-BFGS-B with the analytic gradient, in the
    parametrization of :class:`ProfileMap`), clipped to [0, 1] for h² and [−1, 1] for the
    correlations. A correlation with a trait whose h² is 0 is not identified: its profile is
    flat and its interval is [−1, 1] (SE 0.51). The SEs of Σg and Σe themselves still come
    from the observed information (their log-likelihood is smooth at the boundary of the cone).

    ML has no global maximum when the null space of K lies in the span of X (:func:`absorbed`);
    its estimate is then a local maximum, and the ML profiles are those of the likelihood of
    the r rotated rows on the range of K (:func:`ranged`: bounded; it differs by O((N − r)/N)),
    maximized afresh.
    """
    T = rot.n_traits
    target = rot
    if method == "ml" and absorbed(rot):
        target, best = ranged(rot), -np.inf
    identity = ProfileMap(T, np.arange(T))
    prof = _Profiler(target, method, sigma_g, sigma_e, best)
    top, _ = prof.maximize_fixed(identity, {}, identity.start(sigma_g, sigma_e))
    prof.best = max(best, top)
    h2 = heritability(sigma_g, sigma_e)
    h2_ci = np.empty((T, 2))
    for t in range(T):
        value = prof.curve(identity, lambda q, t=t: {t: np.sqrt(q)}, ("h2", t))
        h2_ci[t] = prof.interval(value, h2[t], 0.0, H2_MAX)
    rg_ci = np.zeros((T, T, 2))
    re_ci = np.zeros((T, T, 2))
    for which, S, ci in (("g", sigma_g, rg_ci), ("e", sigma_e, re_ci)):
        R = correlation(S)
        for a in range(T):
            for b in range(a + 1, T):
                order = np.array([a, b, *[k for k in range(T) if k not in (a, b)]])
                pm = ProfileMap(T, order)
                j = pm.rows_offset(which)

                def fix(q: float, j: int = j) -> dict[int, float]:
                    return {j: q, j + 1: np.sqrt(max(1.0 - q * q, 0.0))}

                value = prof.curve(pm, fix, (which, a, b))
                ci[a, b] = ci[b, a] = prof.interval(value, R[a, b], -1.0, 1.0)
        ci[np.diag_indices(T)] = 1.0
    width = (h2_ci[:, 1] - h2_ci[:, 0]) / (2 * Z95)
    rg_se = (rg_ci[..., 1] - rg_ci[..., 0]) / (2 * Z95)
    re_se = (re_ci[..., 1] - re_ci[..., 0]) / (2 * Z95)
    H, M = hessian(rot, sigma_g, sigma_e, method)
    return Uncertainty(_phi_covariance(H, M), width, rg_se, re_se, SE_PROFILE, h2_ci, rg_ci, re_ci)
