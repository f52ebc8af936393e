r"""Exact MCMC for the point-mass spike-and-slab SNP model (GEMMA BSLMM's prior).

The model of ``snp_model(y, W, marginalize=False, prior="mixture")`` with BSLMM's point mass
instead of the relaxed spike (Zhou, Carbonetto & Stephens 2013):

.. math::

    y = X\beta + W_\gamma v_\gamma + u + \varepsilon, \quad
    u \sim N(0, \sigma_b^2 K), \quad v_j \sim N(0, \sigma_L^2)\ (j \in \gamma), \quad
    \varepsilon \sim N(0, \sigma_e^2 I),

K = WW'/M, γ_j ~ Bernoulli(π) independently, σL² = ρσg²/(Mπ), σb² = (1 − ρ)σg² (the
family's definitions, so σg² is the whole genetic variance), h = σg²/(σg² + σe²). Priors as
BSLMM's: h ~ U(0, 1), ρ ~ U(0, 1), log π ~ U(−log M, 0), β flat, p(σe²) ∝ 1/σe². Given γ and
(h, ρ, π), β, v_γ, u and σe² are integrated out in closed form (:func:`log_marginal`), so the
chain moves only over γ (add / remove / swap, additions proposed by marginal association rank)
and the three hyperparameters (random-walk Metropolis). Each draw then takes σe², β and v_γ
from their conditionals, which are exact given (γ, h, ρ, π).

Everything is in K's eigenbasis: with H = I + (σb²/σe²) K + (σL²/σe²) W_γW_γ', rotated,
H = D + B_γ B_γ' σL²/σe² with D = diag(1 + σb² s/σe²) (and the identity on K's null space), so
by Woodbury every quantity is a |γ|×|γ| system on the columns of B = U'W (computed once):
O(r·|γ|) per move of γ, O(r·|γ|²) per move of the hyperparameters, never an N×N matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dpotrf, dtrtrs
from scipy.special import gammaln

from bayeslmm.families.priors import Prior

#: Proposals on γ per iteration (GEMMA's ``-mh`` default), each followed by none on the
#: hyperparameters; then one random-walk move on each of h, ρ and log π.
GAMMA_MOVES = 10
#: Largest model (GEMMA's ``-smax`` default, capped at M).
MAX_SIZE = 300
#: Share of the add proposals drawn by marginal association rank (the rest uniform) and the
#: mean rank of the geometric distribution over ranks (GEMMA proposes by rank as well).
RANK_SHARE, RANK_MEAN = 0.7, 100.0
#: Initial random-walk step sizes of h, ρ, log π; adapted during burn-in toward
#: :data:`TARGET_ACCEPT`, then fixed (so the kept draws come from a fixed, exact kernel).
STEP_SIZES = (0.1, 0.1, 0.5)
TARGET_ACCEPT = 0.35
#: Iterations between kept draws unless the model's ``extra["thin"]`` says otherwise.
THIN = 10


@dataclass(frozen=True)
class Problem:
    """What the chains need: rotated data, B = U'W by SNP, the proposal weights.

    Attributes
    ----------
    Bt : ndarray
        B' = (U'W)' [shape: (n_snps, rank)], rows contiguous.
    Z1 : ndarray
        [X₁, y₁] = U'[X, y] [shape: (rank, p + 1)].
    null_gram : ndarray
        Gram of [X, y]'s residual off U [shape: (p + 1, p + 1)].
    s : ndarray
        Eigenvalues of K [shape: (rank,)].
    ones_rot : ndarray
        U'1 [shape: (rank,)].
    n : int
        Samples N.
    weights : ndarray
        Add-proposal probability of each SNP [shape: (n_snps,)], summing to 1.
    max_size : int
        Largest |γ|.
    """

    Bt: np.ndarray
    Z1: np.ndarray
    null_gram: np.ndarray
    s: np.ndarray
    ones_rot: np.ndarray
    n: int
    weights: np.ndarray
    max_size: int
    cumulative: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cumulative", np.cumsum(self.weights))

    @property
    def n_snps(self) -> int:
        """M."""
        return self.Bt.shape[0]

    @property
    def n_cov(self) -> int:
        """Covariates p."""
        return self.Z1.shape[1] - 1


def make_problem(
    U: np.ndarray,
    s: np.ndarray,
    y1: np.ndarray,
    X1: np.ndarray,
    null_gram: np.ndarray,
    n: int,
    W: np.ndarray,
    *,
    max_size: int = MAX_SIZE,
) -> Problem:
    """Rotate W once (B = U'W) and rank the SNPs by marginal association.

    Parameters
    ----------
    U, s
        Eigenvectors [shape: (n_samples, rank)] and eigenvalues of K = WW'/M.
    y1, X1, null_gram, n
        The rotated data (:class:`~bayeslmm.linalg.spectral.Rotated`: ``y1``, ``X1``,
        ``gram``, ``n``).
    W
        Genotypes as the model uses them [shape: (n_samples, n_snps)].
    max_size
        Largest number of SNPs in γ (capped at M).

    Notes
    -----
    The rank of SNP j is that of its score (w_j'r)²/‖w_j‖² with r the residual of y on X;
    W lies in the span of U, so w_j'r = b_j'r₁ with r₁ = y₁ − X₁β̂ (β̂ by least squares on
    all of [X, y], null space included). Add proposals mix a geometric distribution over ranks
    (share :data:`RANK_SHARE`, mean rank :data:`RANK_MEAN`) with the uniform one; the MH ratio
    accounts for the weights, so the ranking only changes how fast the chain mixes.
    """
    Bt = np.ascontiguousarray((U.T @ W).T)
    Z1 = np.column_stack([X1, y1])
    gram = Z1.T @ Z1 + null_gram
    p = X1.shape[1]
    beta_hat = np.linalg.lstsq(gram[:p, :p], gram[:p, p], rcond=None)[0]
    r1 = y1 - X1 @ beta_hat
    norms = np.maximum(np.einsum("ij,ij->i", Bt, Bt), 1e-300)
    score = (Bt @ r1) ** 2 / norms
    m = Bt.shape[0]
    ranks = np.empty(m)
    ranks[np.argsort(-score, kind="stable")] = np.arange(m)
    q = 1.0 / RANK_MEAN
    geometric = q * (1.0 - q) ** ranks
    weights = RANK_SHARE * geometric / geometric.sum() + (1.0 - RANK_SHARE) / m
    return Problem(
        Bt=Bt,
        Z1=Z1,
        null_gram=np.asarray(null_gram, dtype=float),
        s=np.asarray(s, dtype=float),
        ones_rot=U.sum(axis=0),
        n=int(n),
        weights=weights / weights.sum(),
        max_size=int(min(max_size, m)),
    )


def variance_ratios(h: float, rho: float, pi: float, n_snps: int) -> tuple[float, float]:
    """σb²/σe² and σL²/σe² of (h, ρ, π): σg²/σe² = h/(1 − h), σb² = (1 − ρ)σg², σL² = ρσg²/(Mπ)."""
    ratio = h / (1.0 - h)
    return (1.0 - rho) * ratio, rho * ratio / (n_snps * pi)


def _dof(problem: Problem) -> float:
    return 0.5 * (problem.n - problem.n_cov)


def _terms(
    A: np.ndarray, F: np.ndarray, G0: np.ndarray, s_a: float
) -> tuple[float, float, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """log|I/s_a + A| + k log s_a, log|X'H⁻¹X|, and the factors (L, T, L_G) behind them."""
    k = A.shape[0]
    if k:
        C = A.copy()
        C.flat[:: k + 1] += 1.0 / s_a
        L, info = dpotrf(C, lower=1, clean=1)
        if info:
            raise np.linalg.LinAlgError("C is not positive definite")
        T, _ = dtrtrs(L, F, lower=1)
        G = G0 - T.T @ T
        logdet_c = 2.0 * float(np.log(np.diagonal(L)).sum()) + k * math.log(s_a)
    else:
        L = T = None
        G = G0
        logdet_c = 0.0
    Lg, info = dpotrf(G, lower=1, clean=1)
    if info:
        raise np.linalg.LinAlgError("X'H⁻¹X is not positive definite")
    diag = np.diagonal(Lg)
    return logdet_c, 2.0 * float(np.log(diag[:-1]).sum()), L, T, Lg


def _core(problem: Problem, logdet_d: float, A: np.ndarray, F: np.ndarray, G0, s_a) -> float:
    """The log marginal p(y | γ, h, ρ, π) without its constant log Γ(m) − m log π, m = (N − p)/2."""
    try:
        logdet_c, logdet_x, _, _, Lg = _terms(A, F, G0, s_a)
    except np.linalg.LinAlgError:
        return -np.inf
    quad = Lg[-1, -1] ** 2
    return -0.5 * (logdet_d + logdet_c + logdet_x) - _dof(problem) * math.log(quad)


def log_marginal(problem: Problem, gamma: Any, h: float, rho: float, pi: float) -> float:
    r"""The log marginal p(y | γ, h, ρ, π) with β (flat), v_γ, u and σe² (p ∝ 1/σe²) integrated out.

    Parameters
    ----------
    problem
        From :func:`make_problem`.
    gamma
        Indices of the SNPs with an effect.
    h, rho, pi
        The hyperparameters.

    Returns
    -------
    float

    Notes
    -----
    With H = I + σb²/σe² K + σL²/σe² W_γW_γ' (y ~ N(Xβ, σe² H) given γ and the
    hyperparameters), P = H⁻¹ − H⁻¹X(X'H⁻¹X)⁻¹X'H⁻¹ and m = (N − p)/2,

    .. math::

        \log p(y \mid \gamma, h, \rho, \pi) = \log\Gamma(m) - m \log(\pi\, y'Py)
            - \tfrac12 \log|H| - \tfrac12 \log|X'H^{-1}X|.

    In the eigenbasis H = D + s_a B_γB_γ' (D = diag(1 + s_b s), identity off U), so with
    A = B_γ'D⁻¹B_γ, F = B_γ'D⁻¹[X₁, y₁] and C = I/s_a + A (Woodbury),
    log|H| = Σ log d + |γ| log s_a + log|C| and
    [X, y]'H⁻¹[X, y] = [X₁, y₁]'D⁻¹[X₁, y₁] + (null-space Gram) − F'C⁻¹F, whose Cholesky
    factor gives log|X'H⁻¹X| and y'Py (its last pivot squared).
    """
    gamma = np.asarray(gamma, dtype=int).reshape(-1)
    s_b, s_a = variance_ratios(h, rho, pi, problem.n_snps)
    cache = _hyper_cache(problem, s_b)
    Bg = problem.Bt[gamma]
    Bw = Bg * cache.dinv
    A = Bw @ Bg.T
    F = Bw @ problem.Z1
    m = _dof(problem)
    core = _core(problem, cache.logdet_d, A, F, cache.G0, s_a)
    return core + float(gammaln(m)) - m * math.log(math.pi)


@dataclass
class _HyperCache:
    dinv: np.ndarray
    logdet_d: float
    G0: np.ndarray


def _hyper_cache(problem: Problem, s_b: float) -> _HyperCache:
    d = 1.0 + s_b * problem.s
    dinv = 1.0 / d
    G0 = (problem.Z1.T * dinv) @ problem.Z1 + problem.null_gram
    return _HyperCache(dinv=dinv, logdet_d=float(np.log(d).sum()), G0=G0)


def _reflect(x: float, low: float, high: float) -> float:
    """The point x reflected into (low, high) (a symmetric proposal on the interval)."""
    width = high - low
    x = (x - low) % (2.0 * width)
    return low + (x if x < width else 2.0 * width - x)


@dataclass
class _State:
    """The chain's state and the caches of its log posterior."""

    gamma: list[int]
    theta: np.ndarray  # h, rho, log pi
    Bg: np.ndarray  # B_γ' rows [shape: (k, rank)]
    A: np.ndarray
    F: np.ndarray
    hyper: _HyperCache
    s_a: float
    s_b: float
    log_post: float = 0.0


def _log_prior_gamma(k: int, log_pi: float, m: int) -> float:
    return k * log_pi + (m - k) * math.log1p(-math.exp(log_pi)) if log_pi < 0 else -np.inf


def _state(problem: Problem, gamma: list[int], theta: np.ndarray) -> _State:
    h, rho, log_pi = theta
    s_b, s_a = variance_ratios(h, rho, math.exp(log_pi), problem.n_snps)
    hyper = _hyper_cache(problem, s_b)
    Bg = problem.Bt[np.asarray(gamma, dtype=int)].reshape(len(gamma), problem.Bt.shape[1])
    Bw = Bg * hyper.dinv
    A, F = Bw @ Bg.T, Bw @ problem.Z1
    state = _State(list(gamma), np.array(theta, float), Bg, A, F, hyper, s_a, s_b)
    state.log_post = _core(problem, hyper.logdet_d, A, F, hyper.G0, s_a) + _log_prior_gamma(
        len(gamma), log_pi, problem.n_snps
    )
    return state


def _move_probs(k: int, kmax: int, m: int) -> tuple[float, float, float]:
    """Probabilities of add, remove, swap at |γ| = k (kmax ≤ M = m)."""
    if k == 0:
        return 1.0, 0.0, 0.0
    if k >= kmax:  # no add; no swap either when every SNP is in γ
        return (0.0, 1.0, 0.0) if k >= m else (0.0, 0.5, 0.5)
    return 1 / 3, 1 / 3, 1 / 3


def _draw_outside(problem: Problem, members: set[int], rng: np.random.Generator) -> int:
    """A SNP not in γ, with probability ∝ its weight (by rejection: exact)."""
    while True:
        j = int(np.searchsorted(problem.cumulative, rng.random() * problem.cumulative[-1]))
        j = min(j, problem.n_snps - 1)
        if j not in members:
            return j


def _gamma_move(
    problem: Problem, st: _State, rng: np.random.Generator, members: set[int], w_out: list[float]
) -> bool:
    """One Metropolis–Hastings move on γ (add, remove or swap); returns whether accepted.

    ``w_out[0]`` is the summed add weight of the SNPs outside γ, kept up to date.
    """
    m, kmax, k = problem.n_snps, problem.max_size, len(st.gamma)
    p_add, p_rem, _ = _move_probs(k, kmax, m)
    u = rng.random()
    weights, Bt, dinv = problem.weights, problem.Bt, st.hyper.dinv
    log_pi = st.theta[2]
    if u < p_add:
        j = _draw_outside(problem, members, rng)
        bw = Bt[j] * dinv
        col = st.Bg @ bw
        A = np.empty((k + 1, k + 1))
        A[:k, :k] = st.A
        A[:k, k] = A[k, :k] = col
        A[k, k] = Bt[j] @ bw
        F = np.vstack([st.F, bw @ problem.Z1])
        new_k = k + 1
        log_q = math.log(_move_probs(new_k, kmax, m)[1] / new_k) - math.log(
            p_add * weights[j] / w_out[0]
        )
        kind = ("add", j)
    elif u < p_add + p_rem:
        t = int(rng.integers(k))
        j = st.gamma[t]
        keep = np.arange(k) != t
        A = st.A[np.ix_(keep, keep)]
        F = st.F[keep]
        new_k = k - 1
        log_q = math.log(_move_probs(new_k, kmax, m)[0] * weights[j] / (w_out[0] + weights[j]))
        log_q -= math.log(p_rem / k)
        kind = ("remove", t)
    else:
        t = int(rng.integers(k))
        i = st.gamma[t]
        j = _draw_outside(problem, members, rng)
        bw = Bt[j] * dinv
        col = st.Bg @ bw
        col[t] = Bt[j] @ bw
        A = st.A.copy()
        A[t, :] = col
        A[:, t] = col
        F = st.F.copy()
        F[t] = bw @ problem.Z1
        new_k = k
        w_new = w_out[0] - weights[j] + weights[i]
        log_q = math.log(weights[i] * w_out[0] / (weights[j] * w_new))
        kind = ("swap", t, j)
    log_post = _core(problem, st.hyper.logdet_d, A, F, st.hyper.G0, st.s_a)
    log_post += _log_prior_gamma(new_k, log_pi, m)
    if not math.log(rng.random() + 1e-300) < log_post - st.log_post + log_q:
        return False
    if kind[0] == "add":
        j = kind[1]
        st.gamma.append(j)
        members.add(j)
        st.Bg = np.vstack([st.Bg, Bt[j][None, :]])
        w_out[0] -= weights[j]
    elif kind[0] == "remove":
        t = kind[1]
        j = st.gamma.pop(t)
        members.discard(j)
        st.Bg = np.delete(st.Bg, t, axis=0)
        w_out[0] += weights[j]
    else:
        t, j = kind[1], kind[2]
        i = st.gamma[t]
        st.gamma[t] = j
        members.discard(i)
        members.add(j)
        st.Bg = st.Bg.copy()
        st.Bg[t] = Bt[j]
        w_out[0] += weights[i] - weights[j]
    st.A, st.F, st.log_post = A, F, log_post
    return True


def _hyper_move(
    problem: Problem, st: _State, which: int, step: float, rng: np.random.Generator
) -> bool:
    """Random-walk Metropolis on one of h, ρ, log π (reflected at its bounds)."""
    m = problem.n_snps
    bounds = ((0.0, 1.0), (0.0, 1.0), (-math.log(m), 0.0))[which]
    theta = st.theta.copy()
    theta[which] = _reflect(theta[which] + step * rng.standard_normal(), *bounds)
    if not (0.0 < theta[0] < 1.0 and 0.0 < theta[1] < 1.0 and theta[2] < 0.0):
        return False
    h, rho, log_pi = theta
    s_b, s_a = variance_ratios(h, rho, math.exp(log_pi), m)
    if which == 2:  # π changes σL only: D and its products stay
        hyper, A, F = st.hyper, st.A, st.F
    else:
        hyper = _hyper_cache(problem, s_b)
        Bw = st.Bg * hyper.dinv
        A, F = Bw @ st.Bg.T, Bw @ problem.Z1
    log_post = _core(problem, hyper.logdet_d, A, F, hyper.G0, s_a)
    log_post += _log_prior_gamma(len(st.gamma), log_pi, m)
    if not math.log(rng.random() + 1e-300) < log_post - st.log_post:
        return False
    st.theta, st.hyper, st.A, st.F, st.s_a, st.s_b, st.log_post = (
        theta,
        hyper,
        A,
        F,
        s_a,
        s_b,
        log_post,
    )
    return True


def _draw_effects(
    problem: Problem, st: _State, rng: np.random.Generator
) -> tuple[float, np.ndarray, np.ndarray]:
    r"""σe², β and v_γ from their conditionals given (γ, h, ρ, π).

    Notes
    -----
    σe² | y, γ, θ ~ InvGamma((N − p)/2, y'Py/2) (β, v_γ, u integrated out), then (β, v_γ) |
    σe² is normal with precision [[X'D⁻¹X, X₁'D⁻¹B_γ], [B_γ'D⁻¹X₁, A + I/s_a]]/σe² and mean
    that matrix's inverse times [X'D⁻¹y; B_γ'D⁻¹y₁] (σe² cancels).
    """
    p, k = problem.n_cov, len(st.gamma)
    _, _, _, _, Lg = _terms(st.A, st.F, st.hyper.G0, st.s_a)
    quad = Lg[-1, -1] ** 2
    sigma_e2 = 0.5 * quad / rng.gamma(_dof(problem))
    G0 = st.hyper.G0
    P = np.empty((p + k, p + k))
    P[:p, :p] = G0[:p, :p]
    P[:p, p:] = st.F[:, :p].T
    P[p:, :p] = st.F[:, :p]
    P[p:, p:] = st.A + np.diag(np.full(k, 1.0 / st.s_a))
    rhs = np.concatenate([G0[:p, p], st.F[:, p]])
    L = np.linalg.cholesky(P)
    mean = solve_triangular(L.T, solve_triangular(L, rhs, lower=True), lower=False)
    noise = solve_triangular(L.T, rng.standard_normal(p + k), lower=False)
    coef = mean + math.sqrt(sigma_e2) * noise
    return sigma_e2, coef[:p], coef[p:]


def bslmm_priors(n_snps: int) -> dict[str, Prior]:
    """The priors this sampler uses (BSLMM's), for the result's provenance."""
    return {
        "beta": Prior("Flat"),
        "sigma_e2": Prior("Jeffreys"),
        "h2": Prior("Uniform", lower=0.0, upper=1.0),
        "rho": Prior("Uniform", lower=0.0, upper=1.0),
        "log_pi": Prior("Uniform", lower=-math.log(n_snps), upper=0.0),
    }


#: Scalars each kept draw records, in this order.
SCALARS = ("h2", "rho", "pi", "sigma_e2", "sigma_g2", "sigma_b2", "sigma_slab2", "pve", "pge")


def _summaries(
    problem: Problem, st: _State, sigma_e2: float, beta: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """The :data:`SCALARS` of one draw (PVE and PGE as ``sparse.effect_summaries``)."""
    h, rho, log_pi = st.theta
    n, ones = problem.n, problem.ones_rot
    sigma_b2 = st.s_b * sigma_e2
    bv = v @ st.Bg if len(v) else np.zeros(problem.s.shape[0])
    resid = problem.Z1[:, -1] - problem.Z1[:, :-1] @ beta - bv
    prior_var = sigma_b2 * problem.s
    total = prior_var + sigma_e2
    g1 = bv + prior_var / total * resid
    var_b = prior_var * sigma_e2 / total
    var_g = g1 @ g1 / n - (ones @ g1 / n) ** 2 + var_b.sum() / n - (var_b * ones**2).sum() / n**2
    var_sparse = bv @ bv / n - (ones @ bv / n) ** 2
    return np.array(
        [
            h,
            rho,
            math.exp(log_pi),
            sigma_e2,
            h / (1.0 - h) * sigma_e2,
            sigma_b2,
            st.s_a * sigma_e2,
            var_g / (var_g + sigma_e2),
            var_sparse / var_g,
        ]
    )


@dataclass
class ChainDraws:
    """One chain's kept draws.

    Attributes
    ----------
    scalars : ndarray
        :data:`SCALARS` per draw [shape: (draws, len(SCALARS))].
    beta : ndarray
        [shape: (draws, p)].
    gammas, effects : list of ndarray
        γ and v_γ of each draw.
    stats : dict
        ``model_size`` (|γ|), ``accept_gamma`` (share of the draw's γ moves accepted since the
        last draw), ``accept_hyper`` [each shape: (draws,)].
    """

    scalars: np.ndarray
    beta: np.ndarray
    gammas: list[np.ndarray]
    effects: list[np.ndarray]
    stats: dict[str, np.ndarray]


def run_chain(
    problem: Problem,
    *,
    draws: int,
    burn: int,
    thin: int,
    rng: np.random.Generator,
    update_hyper: bool = True,
    theta: tuple[float, float, float] | None = None,
) -> ChainDraws:
    """Run one chain: ``burn`` iterations, then ``draws`` × ``thin``, keeping every thin-th.

    Parameters
    ----------
    problem
        From :func:`make_problem`.
    draws, burn, thin
        Kept draws, burn-in iterations, iterations per kept draw. One iteration is
        :data:`GAMMA_MOVES` moves on γ and one move on each hyperparameter.
    rng
        The chain's generator.
    update_hyper
        False: keep (h, ρ, π) at ``theta`` (for the tests against enumeration).
    theta
        Start (h, ρ, log π); default random: h, ρ ~ U(0.2, 0.8), π from 1–20 expected SNPs.

    Returns
    -------
    ChainDraws
    """
    m = problem.n_snps
    if theta is None:
        k0 = rng.uniform(1.0, min(20.0, m / 2))
        theta = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), math.log(k0 / m))
    st = _state(problem, [], np.array(theta, dtype=float))
    members: set[int] = set()
    w_out = [1.0]
    steps = np.array(STEP_SIZES, dtype=float)
    p = problem.n_cov
    scalars = np.empty((draws, len(SCALARS)))
    beta = np.empty((draws, p))
    gammas: list[np.ndarray] = []
    effects: list[np.ndarray] = []
    stats = {name: np.empty(draws) for name in ("model_size", "accept_gamma", "accept_hyper")}
    acc_g = acc_h = tried_g = tried_h = 0
    total = burn + draws * thin
    for it in range(total):
        for _ in range(GAMMA_MOVES):
            acc_g += _gamma_move(problem, st, rng, members, w_out)
        tried_g += GAMMA_MOVES
        if update_hyper:
            for which in range(3):
                ok = _hyper_move(problem, st, which, steps[which], rng)
                acc_h += ok
                if it < burn:  # Robbins–Monro toward TARGET_ACCEPT, burn-in only
                    steps[which] *= math.exp((ok - TARGET_ACCEPT) / math.sqrt(it + 1.0))
                    steps[which] = min(steps[which], 2.0 if which < 2 else 5.0)
            tried_h += 3
        if it < burn or (it - burn + 1) % thin:
            continue
        d = (it - burn + 1) // thin - 1
        sigma_e2, b, v = _draw_effects(problem, st, rng)
        scalars[d] = _summaries(problem, st, sigma_e2, b, v)
        beta[d] = b
        gammas.append(np.array(st.gamma, dtype=int))
        effects.append(v)
        stats["model_size"][d] = len(st.gamma)
        stats["accept_gamma"][d] = acc_g / max(tried_g, 1)
        stats["accept_hyper"][d] = acc_h / max(tried_h, 1) if update_hyper else np.nan
        acc_g = acc_h = tried_g = tried_h = 0
    return ChainDraws(scalars, beta, gammas, effects, stats)


def sample_bslmm(
    info: Any, *, draws: int, chains: int, tune: int, thin: int, seed: int
) -> tuple[xr.Dataset, xr.Dataset]:
    """Run the chains for a mixture model; return its posterior and sampler statistics.

    Parameters
    ----------
    info
        The model's :class:`~bayeslmm.families.base.ModelInfo` (``spectral``, ``rotated``,
        ``W``, ``snps``, ``data``).
    draws, chains, tune, thin
        Kept draws per chain, chains, burn-in iterations, iterations per kept draw.
    seed
        Each chain's generator from ``SeedSequence(seed).spawn(chains)``.

    Returns
    -------
    posterior, sample_stats : xarray.Dataset
        Dims (chain, draw[, covariate | snp]): ``beta``, the :data:`SCALARS` (``h2`` is h,
        σg²/(σg² + σe²)), ``v`` (zero off γ) and ``pip`` (the indicator γ_j, so that its
        posterior mean is the PIP); statistics ``model_size``, ``accept_gamma``,
        ``accept_hyper``.
    """
    spectral, rot, data = info.spectral, info.rotated, info.data
    problem = make_problem(
        spectral.U, spectral.s, rot.y1, rot.X1, rot.gram, rot.n, np.asarray(info.W, dtype=float)
    )
    m = problem.n_snps
    runs = [
        run_chain(problem, draws=draws, burn=tune, thin=thin, rng=np.random.default_rng(seq))
        for seq in np.random.SeedSequence(seed).spawn(chains)
    ]
    v = np.zeros((chains, draws, m))
    pip = np.zeros((chains, draws, m))
    for c, run in enumerate(runs):
        for d, (g, eff) in enumerate(zip(run.gammas, run.effects, strict=True)):
            v[c, d, g] = eff
            pip[c, d, g] = 1.0
    coords = {
        "chain": np.arange(chains),
        "draw": np.arange(draws),
        "covariate": list(data.covariates),
        "snp": list(info.snps),
    }
    cd = ("chain", "draw")
    posterior = xr.Dataset(
        {
            "beta": (
                (*cd, "covariate"),
                np.stack([r.beta for r in runs]),
            ),
            **{
                name: (cd, np.stack([r.scalars[:, i] for r in runs]))
                for i, name in enumerate(SCALARS)
            },
            "v": ((*cd, "snp"), v),
            "pip": ((*cd, "snp"), pip),
        },
        coords=coords,
    )
    stats = xr.Dataset(
        {name: (cd, np.stack([r.stats[name] for r in runs])) for name in runs[0].stats},
        coords={"chain": coords["chain"], "draw": coords["draw"]},
    )
    return posterior, stats
