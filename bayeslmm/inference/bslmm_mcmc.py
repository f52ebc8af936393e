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
O(r·|γ| + |γ|²) per move of γ (rank-one updates of the system's Cholesky factor), O(r·|γ|²)
per move of h or ρ, never an N×N matrix. The chains run compiled
(:mod:`bayeslmm.inference.bslmm_kernel`, numba, cached on disk), in threads (``cores``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from scipy import sparse
from scipy.linalg.lapack import dpotrf, dtrtrs
from scipy.special import gammaln

from bayeslmm.families.priors import Prior
from bayeslmm.inference.threads import map_chains

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
#: Largest adapted step sizes of h, ρ, log π.
STEP_CAPS = (2.0, 2.0, 5.0)
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
        null_gram=np.ascontiguousarray(null_gram, dtype=float),
        s=np.ascontiguousarray(s, dtype=float),
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
    problem: Problem, theta: np.ndarray, sigma_e2: np.ndarray, beta: np.ndarray, bv: np.ndarray
) -> np.ndarray:
    """The :data:`SCALARS` of each draw [shape: (draws, len(SCALARS))].

    ``theta`` (h, ρ, log π) [shape: (draws, 3)], ``sigma_e2`` [shape: (draws,)], ``beta``
    [shape: (draws, p)], ``bv`` = B_γ'v_γ per draw [shape: (draws, rank)]. PVE and PGE as
    ``sparse.effect_summaries``: the background u given (β, v, σ²) summed out.
    """
    h, rho, log_pi = theta.T
    pi = np.exp(log_pi)
    ratio = h / (1.0 - h)
    s_b, s_a = (1.0 - rho) * ratio, rho * ratio / (problem.n_snps * pi)
    n, ones = problem.n, problem.ones_rot
    sigma_b2 = s_b * sigma_e2
    resid = problem.Z1[:, -1] - beta @ problem.Z1[:, :-1].T - bv
    prior_var = sigma_b2[:, None] * problem.s
    total = prior_var + sigma_e2[:, None]
    g1 = bv + prior_var / total * resid
    var_b = prior_var * sigma_e2[:, None] / total
    var_g = (
        (g1**2).sum(axis=1) / n
        - (g1 @ ones / n) ** 2
        + var_b.sum(axis=1) / n
        - (var_b * ones**2).sum(axis=1) / n**2
    )
    var_sparse = (bv**2).sum(axis=1) / n - (bv @ ones / n) ** 2
    return np.column_stack(
        [
            h,
            rho,
            pi,
            sigma_e2,
            ratio * sigma_e2,
            sigma_b2,
            s_a * sigma_e2,
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


def _run_kernel(
    problem: Problem,
    theta: tuple[float, float, float],
    *,
    draws: int,
    burn: int,
    thin: int,
    update_hyper: bool,
    rng: np.random.Generator,
    gamma_moves: int = GAMMA_MOVES,
) -> tuple[dict[str, np.ndarray], float]:
    """The compiled chain's kept draws and its final log posterior.

    The draws: ``theta`` (h, ρ, log π), ``gamma`` (padded with −1) and ``v`` (padded with 0)
    [each shape: (draws, max_size)], ``size`` (|γ|), ``accept`` (γ, hyperparameters),
    ``beta``, ``sigma_e2``. The log posterior is :func:`_core` plus the log prior of γ.
    """
    from bayeslmm.inference.bslmm_kernel import chain

    out_theta = np.empty((draws, 3))
    out_gamma = np.full((draws, problem.max_size), -1, dtype=np.int64)
    out_size = np.zeros(draws, dtype=np.int64)
    out_accept = np.empty((draws, 2))
    out_beta = np.empty((draws, problem.n_cov))
    out_v = np.zeros((draws, problem.max_size))
    out_sigma_e2 = np.empty(draws)
    log_post = chain(
        problem.Bt,
        problem.Z1,
        problem.null_gram,
        problem.s,
        problem.weights,
        problem.cumulative,
        int(problem.n),
        int(problem.max_size),
        np.array(theta, dtype=float),
        np.array(STEP_SIZES, dtype=float),
        np.array(STEP_CAPS, dtype=float),
        int(draws),
        int(burn),
        int(thin),
        bool(update_hyper),
        int(gamma_moves),
        float(TARGET_ACCEPT),
        rng,
        out_theta,
        out_gamma,
        out_size,
        out_accept,
        out_beta,
        out_v,
        out_sigma_e2,
    )
    draws_out = {
        "theta": out_theta,
        "gamma": out_gamma,
        "size": out_size,
        "accept": out_accept,
        "beta": out_beta,
        "v": out_v,
        "sigma_e2": out_sigma_e2,
    }
    return draws_out, float(log_post)


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

    Notes
    -----
    The moves and the draws of σe², β and v_γ given (γ, h, ρ, π) run compiled
    (:func:`bayeslmm.inference.bslmm_kernel.chain`); the scalars (PVE, PGE, ...) are computed
    afterwards from those, for all draws at once.
    """
    m = problem.n_snps
    if theta is None:
        k0 = rng.uniform(1.0, min(20.0, m / 2))
        theta = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), math.log(k0 / m))
    out, _ = _run_kernel(
        problem, theta, draws=draws, burn=burn, thin=thin, update_hyper=update_hyper, rng=rng
    )
    size = out["size"]
    gammas = [out["gamma"][d, : size[d]].copy() for d in range(draws)]
    effects = [out["v"][d, : size[d]].copy() for d in range(draws)]
    rows = np.repeat(np.arange(draws), size)
    cols = np.concatenate([*gammas, np.empty(0, dtype=int)])
    values = np.concatenate([*effects, np.empty(0)])
    V = sparse.csr_array((values, (rows, cols)), shape=(draws, m))
    bv = np.asarray(V @ problem.Bt)
    scalars = _summaries(problem, out["theta"], out["sigma_e2"], out["beta"], bv)
    stats = {
        "model_size": size.astype(float),
        "accept_gamma": out["accept"][:, 0].copy(),
        "accept_hyper": out["accept"][:, 1].copy(),
    }
    return ChainDraws(scalars, out["beta"], gammas, effects, stats)


def sample_bslmm(
    info: Any,
    *,
    draws: int,
    chains: int,
    tune: int,
    thin: int,
    seed: int,
    cores: int | None = None,
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
    cores
        Chains run at once, in threads (the compiled chain releases the GIL); default: all
        cores. The draws do not depend on it.

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
    seeds = np.random.SeedSequence(seed).spawn(chains)

    def one(seq: np.random.SeedSequence) -> ChainDraws:
        return run_chain(problem, draws=draws, burn=tune, thin=thin, rng=np.random.default_rng(seq))

    runs = map_chains(one, seeds, cores)
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
