r"""Exact blocked MCMC for the regularized horseshoe SNP model (``prior="horseshoe"``).

The model of ``snp_model(y, W, marginalize=False, prior="horseshoe")``, same priors, in the
eigenbasis of K = WW'/M (B = U'W, y₁ = U'y, X₁ = U'X, D = diag(σb² s + σe²)):

.. math::

    y_1 = X_1\beta + Bv + e_1,\quad e_1 \sim N(0, D), \qquad
    v_j \sim N(0, \phi_j),\quad
    \phi_j = \tau^2\tilde\lambda_j^2 = \frac{\tau^2 c^2\lambda_j^2}{c^2 + \tau^2\lambda_j^2},

λ_j ~ C⁺(0, 1), τ ~ C⁺(0, τ0 σe), c² ~ InvGamma(ν/2, νs²/2), plus the null-space term of
the residual (N − r directions, variance σe²), and the model's priors on β (Gaussian or flat),
σe² and σb². One iteration (Johndrow, Orenstein & Bhattacharya 2020, exact version):

1. β | v, σ's: Gaussian.
2. (τ, λ) | c², σ's, β with v integrated out, along the line (log τ + x, log λ_j − α_j x): a
   slice step on x using the marginal e₁ = y₁ − X₁β ~ N(0, BΦB' + D), then v | τ, λ, rest:
   one Gaussian draw (the M×M precision when M ≤ 1.5 r, Bhattacharya, Chakraborty &
   Mallick 2016's algorithm above) (:func:`tau_step`). α = 0 is τ | λ; α_j is SNP j's
   shrinkage factor φ_j a_j / (1 + φ_j a_j) averaged over the burn-in's second quarter, and
   fixed from its midpoint on (:func:`run_chain`; 0 before).
3. (λ_j, v_j) | v₋ⱼ, rest, one SNP at a time: a slice step on log λ_j with v_j integrated
   out, then v_j (:func:`single_site_sweep`, compiled; :data:`SINGLE_SITE` False: λ | v
   instead, slice steps vectorized over j); then a slice step on the line of step 2 with
   z = v/√φ fixed instead of v integrated out (non-centred; O(rM) an evaluation,
   :func:`scale_step`). Steps 2–3 are repeated :data:`CYCLES` times; then a slice move along
   (τe^x, λe^−x), which leaves every φ_j unchanged (:func:`_rescale`).
4. c² | v, λ, τ: a slice step on log c².
5. σe², σb² | v, β, τ: slice steps on their logs.

Every step leaves the posterior invariant (slice steps need no tuning; α changes only during
the burn-in), so ``tune`` is burn-in. The τ step is what NUTS lacks: with v integrated out, τ
moves in one step from the data's "τ small" region to the prior's tail, instead of against 2M
local coordinates. Its direction α is what a sparse signal needs: the data pin τλ_j of the
large effects (α_j ≈ 1 keeps it) while the small effects' λ_j do not follow τ (α_j ≈ 0); with
λ fixed (α = 0) τ could only move as far as the large effects' φ_j allow (planted recovery data
of tests/test_sparse.py: lag-1 autocorrelation of log τ 0.77 with α = 0, 0.51 with the adapted
α, one cycle).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import xarray as xr
from scipy.linalg import cho_solve, solve_triangular
from scipy.linalg.lapack import dpotrf

from bayeslmm.errors import InputError
from bayeslmm.inference.threads import map_chains

#: Initial bracket width (log scale) of every slice step, and the most step-outs per side.
SLICE_WIDTH = 1.0
MAX_STEP_OUT = 20
#: The M×M form (B'D⁻¹B once per iteration, then M×M factors) up to M = PRIMAL_RATIO·r, else
#: the r×r one (BΦB' + D, O(r²M) per factor): their costs cross near M ≈ 1.9 r.
PRIMAL_RATIO = 1.5
#: Kept draw every THIN iterations unless the model's ``extra["thin"]`` says otherwise.
THIN = 1
#: Scalars each kept draw records, in this order.
SCALARS = ("sigma_e2", "sigma_b2", "tau", "c2", "sigma_g2", "h2", "pve", "pge")


# --------------------------------------------------------------------------------------------
# Priors
# --------------------------------------------------------------------------------------------


def _half_student_t(x: float, nu: float, sigma: float) -> float:
    z = x / sigma
    return (
        math.lgamma((nu + 1) / 2)
        - math.lgamma(nu / 2)
        - 0.5 * math.log(nu * math.pi)
        + math.log(2 / sigma)
        - (nu + 1) / 2 * math.log1p(z * z / nu)
    )


def _inverse_gamma(x: float, alpha: float, beta: float) -> float:
    return alpha * math.log(beta) - math.lgamma(alpha) - (alpha + 1) * math.log(x) - beta / x


def _half_normal(x: float, sigma: float) -> float:
    return 0.5 * math.log(2 / math.pi) - math.log(sigma) - 0.5 * (x / sigma) ** 2


def _half_cauchy(x: float, beta: float) -> float:
    return math.log(2 / (math.pi * beta)) - math.log1p((x / beta) ** 2)


#: Positive priors whose log density is written out here (PyMC's parametrization and
#: defaults): (default parameters, function). Others are compiled from PyMC.
_CLOSED_FORMS: dict[str, tuple[dict[str, float], Callable[..., float]]] = {
    "HalfStudentT": ({"nu": 1.0, "sigma": 1.0}, _half_student_t),
    "InverseGamma": ({"alpha": 1.0, "beta": 1.0}, _inverse_gamma),
    "HalfNormal": ({"sigma": 1.0}, _half_normal),
    "HalfCauchy": ({"beta": 1.0}, _half_cauchy),
}


def scalar_log_prior(prior: Any, name: str) -> Callable[[float], float]:
    """The log density of a positive scalar's prior (``Jeffreys``: −log x), as a Python function.

    Raises
    ------
    InputError
        When the prior is not a :class:`~bayeslmm.families.priors.Prior` (a PyMC variable).
    """
    from bayeslmm.families.priors import Prior

    if not isinstance(prior, Prior):
        raise InputError(
            f"sampler='gibbs' needs the prior of '{name}' as a bayeslmm Prior, got "
            f"{type(prior).__name__}; use sampler='nutpie' for priors given as PyMC variables."
        )
    if prior.distribution == "Jeffreys":
        return lambda x: -math.log(x)
    closed = _CLOSED_FORMS.get(prior.distribution)
    if closed is not None and set(prior.params) <= set(closed[0]):
        params = {**closed[0], **{k: float(v) for k, v in prior.params.items()}}
        return lambda x: closed[1](x, **params)
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    import bayeslmm.families.backend  # noqa: F401

    x = pt.dscalar("x")
    fn = pytensor.function([x], pm.logp(prior.dist(), x), mode="FAST_COMPILE")
    lock = threading.Lock()  # a compiled function keeps its storage: one call at a time

    def log_density(value: float) -> float:
        with lock:
            return float(fn(value))

    return log_density


def beta_prior(prior: Any, p: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, precision) of β's Gaussian prior, or None for ``Flat``.

    Raises
    ------
    InputError
        For any other prior.
    """
    from bayeslmm.families.priors import Prior

    if isinstance(prior, Prior) and prior.distribution == "Flat":
        return None
    if isinstance(prior, Prior) and prior.distribution in ("Normal", "MvNormal"):
        mu = np.broadcast_to(np.asarray(prior.params.get("mu", 0.0), float), (p,)).copy()
        if prior.distribution == "Normal":
            sigma = np.broadcast_to(np.asarray(prior.params.get("sigma", 1.0), float), (p,))
            return mu, np.diag(1.0 / sigma**2)
        return mu, np.linalg.inv(np.asarray(prior.params["cov"], float))
    raise InputError(
        f"sampler='gibbs' takes a Normal, MvNormal or Flat prior on 'beta', got {prior!r}; "
        "use sampler='nutpie' for other priors."
    )


# --------------------------------------------------------------------------------------------
# The problem and its conditional densities
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What a chain needs: the rotated data, B = U'W, the priors.

    Attributes
    ----------
    B : ndarray
        U'W [shape: (rank, n_snps)].
    y1, X1 : ndarray
        U'y [shape: (rank,)], U'X [shape: (rank, p)].
    gram : ndarray
        Gram of [X, y]'s residual off U [shape: (p + 1, p + 1)].
    n_null : int
        N − r.
    s, ones_rot : ndarray
        Eigenvalues of K and U'1 [shape: (rank,)].
    snp_var : ndarray
        var(w_j) (ddof 0) [shape: (n_snps,)].
    tau0 : float
        τ's prior scale per unit σe.
    c2_shape, c2_rate : float
        c² ~ InvGamma(shape, rate).
    beta_prior : tuple or None
        (mean, precision) of β, or None (flat).
    log_prior_e, log_prior_b : callable
        log p(σe²), log p(σb²).
    """

    B: np.ndarray
    y1: np.ndarray
    X1: np.ndarray
    gram: np.ndarray
    n_null: int
    s: np.ndarray
    ones_rot: np.ndarray
    snp_var: np.ndarray
    tau0: float
    c2_shape: float
    c2_rate: float
    beta_prior: tuple[np.ndarray, np.ndarray] | None
    log_prior_e: Callable[[float], float]
    log_prior_b: Callable[[float], float]

    @property
    def n(self) -> int:
        """N."""
        return self.y1.shape[0] + self.n_null

    @property
    def n_snps(self) -> int:
        """M."""
        return self.B.shape[1]

    @functools.cached_property
    def B_t(self) -> np.ndarray:
        """B' as a C-ordered array [shape: (n_snps, rank)] (rows of the compiled sweep)."""
        return np.ascontiguousarray(self.B.T)


def prior_variances(tau: float, lam: np.ndarray, c2: float) -> np.ndarray:
    """φ_j = τ² λ̃_j² = τ² c² λ_j² / (c² + τ² λ_j²), the prior variances of v."""
    t2l2 = tau**2 * lam**2
    return c2 * t2l2 / (c2 + t2l2)


def log_normal0(x: np.ndarray, var: np.ndarray) -> np.ndarray:
    """The log density N(x; 0, var), elementwise."""
    return -0.5 * (np.log(2 * np.pi * var) + x**2 / var)


def log_half_cauchy(x: Any, scale: float) -> Any:
    """The log density C⁺(x; 0, scale)."""
    return math.log(2 / (math.pi * scale)) - np.log1p((x / scale) ** 2)


@dataclass
class Marginal:
    """The factor of y₁ − X₁β ~ N(0, BΦB' + D) at one τ, and what v's draw needs from it.

    Primal (M ≤ 1.5 r): ``chol`` is the Cholesky factor of I + Φ^½ B'D⁻¹B Φ^½ (M×M),
    ``rhs`` Φ^½B'D⁻¹e₁; dual: ``chol`` that of BΦB' + D (r×r). ``logp`` is log N(e₁; 0, BΦB' + D).
    """

    phi: np.ndarray
    chol: np.ndarray
    rhs: np.ndarray
    logp: float
    primal: bool = True


def marginal(
    problem: Problem, e1: np.ndarray, d: np.ndarray, phi: np.ndarray, A: np.ndarray | None
) -> Marginal | None:
    r"""The log density N(e₁; 0, BΦB' + D) and its factor (None where a factor fails).

    Parameters
    ----------
    problem
        From :func:`make_problem`.
    e1
        y₁ − X₁β [shape: (rank,)].
    d
        σb² s + σe² [shape: (rank,)].
    phi
        The prior variances of v [shape: (n_snps,)].
    A
        B'D⁻¹B [shape: (n_snps, n_snps)] for the M×M form, else None (the r×r one).

    Notes
    -----
    M×M form, by Woodbury with the scaled precision Q = I + Φ^½ A Φ^½ (well conditioned however
    small τ is): log|BΦB' + D| = log|D| + log|Q| and e₁'(BΦB' + D)⁻¹e₁ = e₁'D⁻¹e₁ − b'Q⁻¹b,
    b = Φ^½B'D⁻¹e₁. r×r form: the matrix BΦB' + D directly (O(r²M)).
    """
    base = float(np.log(d).sum()) + len(d) * math.log(2 * math.pi)
    if A is not None:
        root = np.sqrt(phi)
        Q = root[:, None] * A * root[None, :]
        Q.flat[:: len(phi) + 1] += 1.0
        chol, info = dpotrf(Q, lower=1, clean=1)
        if info:
            return None
        rhs = root * (problem.B.T @ (e1 / d))
        t = solve_triangular(chol, rhs, lower=True, check_finite=False)
        quad = float(e1 @ (e1 / d)) - float(t @ t)
        logdet = 2.0 * float(np.log(np.diagonal(chol)).sum())
        return Marginal(phi, chol, rhs, -0.5 * (base + logdet + quad))
    Bs = problem.B * np.sqrt(phi)[None, :]
    S = Bs @ Bs.T
    S.flat[:: len(d) + 1] += d
    chol, info = dpotrf(S, lower=1, clean=1)
    if info:
        return None
    t = solve_triangular(chol, e1, lower=True, check_finite=False)
    logdet = 2.0 * float(np.log(np.diagonal(chol)).sum())
    logp = -0.5 * (len(d) * math.log(2 * math.pi) + logdet + t @ t)
    return Marginal(phi, chol, e1, logp, primal=False)


def draw_effects(
    problem: Problem, fac: Marginal, e1: np.ndarray, d: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    r"""A draw of v | τ, λ, c², β, σ's: N(Σ B'D⁻¹e₁, Σ), Σ = (B'D⁻¹B + Φ⁻¹)⁻¹.

    Notes
    -----
    Primal: v = Φ^½ (Q⁻¹b + L'⁻¹ξ), Q = LL' (:func:`marginal`). Dual (Bhattacharya,
    Chakraborty & Mallick 2016): u ~ N(0, Φ), δ ~ N(0, D), v = u + ΦB'(BΦB' + D)⁻¹(e₁ − Bu − δ),
    O(r·M) given the factor.
    """
    phi = fac.phi
    if fac.primal:
        mean = cho_solve((fac.chol, True), fac.rhs, check_finite=False)
        noise = solve_triangular(
            fac.chol.T, rng.standard_normal(len(phi)), lower=False, check_finite=False
        )
        return np.sqrt(phi) * (mean + noise)
    u = np.sqrt(phi) * rng.standard_normal(len(phi))
    delta = np.sqrt(d) * rng.standard_normal(len(d))
    w = cho_solve((fac.chol, True), e1 - problem.B @ u - delta, check_finite=False)
    return u + phi * (problem.B.T @ w)


def log_conditional_variances(
    problem: Problem,
    resid1: np.ndarray,
    null_rss: float,
    tau: float,
    sigma_e2: float,
    sigma_b2: float,
) -> float:
    """The log density p(σe², σb² | β, v, τ, y) up to a constant (variance scale, no Jacobian).

    ``resid1`` = y₁ − X₁β − Bv, ``null_rss`` the null-space residual sum of squares; τ's
    prior C⁺(0, τ0 σe) holds σe.
    """
    if not (sigma_e2 > 0 and sigma_b2 > 0):
        return -np.inf
    d = sigma_b2 * problem.s + sigma_e2
    loglik = -0.5 * (np.log(d).sum() + resid1 @ (resid1 / d))
    loglik -= 0.5 * (problem.n_null * math.log(sigma_e2) + null_rss / sigma_e2)
    log_tau = float(log_half_cauchy(tau, problem.tau0 * math.sqrt(sigma_e2)))
    return float(loglik) + log_tau + problem.log_prior_e(sigma_e2) + problem.log_prior_b(sigma_b2)


def log_conditional_lambda(v: np.ndarray, lam: np.ndarray, tau: float, c2: float) -> np.ndarray:
    """The log density p(λ_j | v_j, τ, c²) per j, up to a constant (on the λ scale, no Jacobian)."""
    return log_normal0(v, prior_variances(tau, lam, c2)) + log_half_cauchy(lam, 1.0)


def log_conditional_c2(problem: Problem, v: np.ndarray, lam: np.ndarray, tau: float, c2: float):
    """The log density p(c² | v, λ, τ) up to a constant (on the c² scale, no Jacobian)."""
    prior = -(problem.c2_shape + 1.0) * math.log(c2) - problem.c2_rate / c2
    return float(log_normal0(v, prior_variances(tau, lam, c2)).sum()) + prior


def log_conditional_tau(
    problem: Problem, fac: Marginal | None, tau: float, sigma_e2: float
) -> float:
    """The log density p(τ | λ, c², β, σ's, y), v integrated out, up to a constant (τ scale)."""
    if fac is None:
        return -np.inf
    return fac.logp + float(log_half_cauchy(tau, problem.tau0 * math.sqrt(sigma_e2)))


# --------------------------------------------------------------------------------------------
# Slice sampling (Neal 2003): stepping out and shrinkage, on the log scale
# --------------------------------------------------------------------------------------------


def slice_step(
    f: Callable[[float], float], x: float, fx: float, rng: np.random.Generator
) -> tuple[float, float, int]:
    """One univariate slice step from x (f(x) = fx); returns the new point, its f, evaluations."""
    level = fx + math.log(rng.random())
    left = x - SLICE_WIDTH * rng.random()
    right = left + SLICE_WIDTH
    evals = 0
    j = int(rng.integers(MAX_STEP_OUT))
    k = MAX_STEP_OUT - 1 - j
    while j > 0 and f(left) > level:
        left -= SLICE_WIDTH
        j -= 1
        evals += 1
    while k > 0 and f(right) > level:
        right += SLICE_WIDTH
        k -= 1
        evals += 1
    while True:
        new = left + (right - left) * rng.random()
        f_new = f(new)
        evals += 1
        if f_new > level:
            return new, f_new, evals
        if new < x:
            left = new
        else:
            right = new


def slice_step_vector(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Independent slice steps on each coordinate of x, f elementwise and separable."""
    fx = f(x)
    level = fx + np.log(rng.random(x.shape))
    left = x - SLICE_WIDTH * rng.random(x.shape)
    right = left + SLICE_WIDTH
    j = rng.integers(MAX_STEP_OUT, size=x.shape)
    k = MAX_STEP_OUT - 1 - j
    for _ in range(MAX_STEP_OUT):
        out = (j > 0) & (f(left) > level)
        if not out.any():
            break
        left = np.where(out, left - SLICE_WIDTH, left)
        j -= out
    for _ in range(MAX_STEP_OUT):
        out = (k > 0) & (f(right) > level)
        if not out.any():
            break
        right = np.where(out, right + SLICE_WIDTH, right)
        k -= out
    new = x.copy()
    todo = np.ones(x.shape, dtype=bool)
    while todo.any():
        cand = left + (right - left) * rng.random(x.shape)
        ok = todo & (f(cand) > level)
        new = np.where(ok, cand, new)
        todo &= ~ok
        below = todo & (cand < x)
        left = np.where(below, cand, left)
        right = np.where(todo & ~below, cand, right)
    return new


# --------------------------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------------------------


def make_problem(info: Any) -> Problem:
    """The :class:`Problem` of a horseshoe model's :class:`~bayeslmm.families.base.ModelInfo`."""
    from bayeslmm.families.sparse import global_scale

    spectral, rot = info.spectral, info.rotated
    W = np.asarray(info.W, dtype=float)
    n, m = W.shape
    options = info.extra["options"]
    c2 = info.priors["c2"]
    return Problem(
        B=spectral.U.T @ W,
        y1=rot.y1,
        X1=rot.X1,
        gram=np.asarray(rot.gram, float),
        n_null=int(rot.n_null),
        s=np.asarray(spectral.s, float),
        ones_rot=spectral.U.sum(axis=0),
        snp_var=W.var(axis=0),
        tau0=float(global_scale(options["n_nonzero"], m, n)),
        c2_shape=float(c2.params["alpha"]),
        c2_rate=float(c2.params["beta"]),
        beta_prior=beta_prior(info.priors["beta"], rot.X1.shape[1]),
        log_prior_e=scalar_log_prior(info.priors["sigma_e2"], "sigma_e2"),
        log_prior_b=scalar_log_prior(info.priors["sigma_b2"], "sigma_b2"),
    )


@dataclass
class State:
    """One chain's state."""

    beta: np.ndarray
    v: np.ndarray
    lam: np.ndarray
    tau: float
    c2: float
    sigma_e2: float
    sigma_b2: float


def initial_state(problem: Problem, rng: np.random.Generator) -> State:
    """Dispersed start: β by least squares, σe² = σb² ≈ var(y)/2 and τ ≈ τ0σe jittered, v = 0."""
    p = problem.X1.shape[1]
    Z = np.column_stack([problem.X1, problem.y1])
    G = Z.T @ Z + problem.gram
    beta = np.linalg.lstsq(G[:p, :p], G[:p, p], rcond=None)[0]
    rss = float(np.array([*(-beta), 1.0]) @ G @ np.array([*(-beta), 1.0]))
    var_y = max(rss / problem.n, 1e-12)
    jitter = np.exp(rng.uniform(-0.5, 0.5, size=3))
    sigma_e2 = 0.5 * var_y * jitter[0]
    return State(
        beta=beta,
        v=np.zeros(problem.n_snps),
        lam=np.exp(rng.uniform(-1.0, 1.0, size=problem.n_snps)),
        tau=problem.tau0 * math.sqrt(sigma_e2) * jitter[2],
        c2=problem.c2_rate / (problem.c2_shape + 1.0),
        sigma_e2=sigma_e2,
        sigma_b2=0.5 * var_y * jitter[1],
    )


def _null_rss(problem: Problem, beta: np.ndarray) -> float:
    coef = np.append(-beta, 1.0)
    return float(coef @ problem.gram @ coef)


def _draw_beta(problem: Problem, st: State, d: np.ndarray, rng: np.random.Generator) -> None:
    """β | v, σ's: Gaussian, the null-space term included."""
    p = problem.X1.shape[1]
    Xd = problem.X1 / d[:, None]
    P = Xd.T @ problem.X1 + problem.gram[:p, :p] / st.sigma_e2
    rhs = Xd.T @ (problem.y1 - problem.B @ st.v) + problem.gram[:p, p] / st.sigma_e2
    if problem.beta_prior is not None:
        mu, prec = problem.beta_prior
        P = P + prec
        rhs = rhs + prec @ mu
    L = np.linalg.cholesky(P)
    mean = cho_solve((L, True), rhs)
    st.beta = mean + solve_triangular(L.T, rng.standard_normal(p), lower=False)


def _rescale(problem: Problem, st: State, rng: np.random.Generator) -> None:
    r"""A slice step along (log τ + x, log λ_j − x): the prior ridge that λ and τ share.

    φ_j depends on τ and λ_j only through τλ_j, so this translation in (log τ, log λ) changes
    the priors alone: f(x) = log C⁺(τe^x; τ0σe) + Σ_j log C⁺(λ_j e^{−x}) + (1 − M)x, the last
    term the log-scale Jacobians (a translation has unit Jacobian itself), O(M) per
    evaluation.
    """
    scale = problem.tau0 * math.sqrt(st.sigma_e2)
    log_tau, log_lam = math.log(st.tau), np.log(st.lam)

    def f(x: float) -> float:
        lam_term = float(np.sum(-np.log1p(np.exp(2.0 * (log_lam - x)))))
        return (
            float(log_half_cauchy(math.exp(log_tau + x), scale)) + lam_term + (1 - len(log_lam)) * x
        )

    x = slice_step(f, 0.0, f(0.0), rng)[0]
    st.tau = math.exp(log_tau + x)
    st.lam = np.exp(log_lam - x)


def data_precision(problem: Problem, d: np.ndarray) -> np.ndarray | None:
    """B'D⁻¹B [shape: (n_snps, n_snps)] for the M×M form (M ≤ :data:`PRIMAL_RATIO` r), else None."""
    if problem.n_snps > PRIMAL_RATIO * len(d):
        return None
    return (problem.B.T / d) @ problem.B


def tau_step(
    problem: Problem,
    st: State,
    d: np.ndarray,
    rng: np.random.Generator,
    alpha: np.ndarray | None = None,
    A: np.ndarray | None = None,
) -> int:
    r"""(τ, λ, v) | c², β, σ's: a slice step along a line in (log τ, log λ), v integrated out.

    The line is (log τ + x, log λ_j − α_j x), α fixed (None: 0, so τ | λ); then v | τ, λ.
    ``A``: :func:`data_precision` at ``d`` where already formed. Returns the number of
    marginal evaluations.

    Notes
    -----
    A translation has unit Jacobian, so with v integrated out the slice step's target on x is

    .. math::

        f(x) = \log N(e_1; 0, B\Phi(x)B' + D) + \log C^+(\tau e^x; \tau_0\sigma_e)
        + \sum_j \log C^+(\lambda_j e^{-\alpha_j x}) + (1 - \textstyle\sum_j \alpha_j) x,

    the last term the log-scale Jacobians of τ and the λ_j. α_j = 0 leaves λ_j alone, α_j = 1
    keeps τλ_j, so φ_j, fixed: :func:`run_chain` sets α_j to SNP j's shrinkage factor
    φ_j a_j / (1 + φ_j a_j) averaged over the burn-in's second quarter (≈ 1 for the large
    effects, whose τλ_j the data pin, and ≈ 0 for the rest, whose λ_j do not follow τ), so the
    step moves τ along the posterior's ridge instead of across it. Any fixed α leaves the
    posterior invariant; α only changes during the burn-in.
    """
    e1 = problem.y1 - problem.X1 @ st.beta
    A = data_precision(problem, d) if A is None else A
    log_tau0, log_lam0 = math.log(st.tau), np.log(st.lam)
    moves = alpha is not None and bool(np.any(alpha))
    slope = float(np.sum(alpha)) if moves else 0.0
    cache: dict[float, tuple[Marginal | None, np.ndarray]] = {}

    def f(x: float) -> float:
        tau = math.exp(log_tau0 + x)
        lam = np.exp(log_lam0 - alpha * x) if moves else st.lam
        fac = marginal(problem, e1, d, prior_variances(tau, lam, st.c2), A)
        cache[x] = (fac, lam)
        out = log_conditional_tau(problem, fac, tau, st.sigma_e2) + (1.0 - slope) * x
        if moves and fac is not None:
            out += float(np.sum(log_half_cauchy(lam, 1.0)))
        return out

    x, _, evals = slice_step(f, 0.0, f(0.0), rng)
    fac, lam = cache[x]
    st.tau, st.lam = math.exp(log_tau0 + x), lam
    st.v = draw_effects(problem, fac, e1, d, rng)
    return evals + 1


def scale_step(
    problem: Problem, st: State, d: np.ndarray, rng: np.random.Generator, alpha: np.ndarray
) -> None:
    r"""A slice step along (log τ + x, log λ_j − α_j x) with z = v/√φ fixed (non-centred).

    Notes
    -----
    In the coordinates (log τ, log λ, z), v_j = z_j √φ_j, z's prior does not depend on τ or
    λ, so the target on x is

    .. math::

        f(x) = -\tfrac12 e(x)'D^{-1}e(x) + \log C^+(\tau e^x; \tau_0\sigma_e)
        + \sum_j \log C^+(\lambda_j e^{-\alpha_j x}) + (1 - \textstyle\sum_j \alpha_j) x,

    e(x) = y₁ − X₁β − B(z ⊙ √φ(x)): O(rM) an evaluation, against the M×M factor of
    :func:`tau_step`. It moves the small effects' scale with τ (v follows), where
    :func:`tau_step` redraws v. No move where some φ_j underflows to 0 (z undefined).
    """
    e1 = problem.y1 - problem.X1 @ st.beta
    log_tau0, log_lam0 = math.log(st.tau), np.log(st.lam)
    z = st.v / np.sqrt(prior_variances(st.tau, st.lam, st.c2))
    if not np.all(np.isfinite(z)):
        return
    slope = float(np.sum(alpha))
    scale = problem.tau0 * math.sqrt(st.sigma_e2)

    def effects(x: float) -> tuple[float, np.ndarray, np.ndarray]:
        tau, lam = math.exp(log_tau0 + x), np.exp(log_lam0 - alpha * x)
        return tau, lam, z * np.sqrt(prior_variances(tau, lam, st.c2))

    def f(x: float) -> float:
        tau, lam, v = effects(x)
        e = e1 - problem.B @ v
        return (
            -0.5 * float(e @ (e / d))
            + float(log_half_cauchy(tau, scale))
            + float(np.sum(log_half_cauchy(lam, 1.0)))
            + (1.0 - slope) * x
        )

    x = slice_step(f, 0.0, f(0.0), rng)[0]
    st.tau, st.lam, st.v = effects(x)


def shrinkage(problem: Problem, st: State, d: np.ndarray) -> np.ndarray:
    """φ_j a_j / (1 + φ_j a_j), a_j = b_j'D⁻¹b_j: how far the data, not the prior, set v_j."""
    a = np.einsum("ji,i,ji->j", problem.B_t, 1.0 / d, problem.B_t)
    pa = prior_variances(st.tau, st.lam, st.c2) * a
    return pa / (1.0 + pa)


#: Update (λ_j, v_j) one SNP at a time with v_j integrated out, instead of λ | v: on the
#: polygenic recovery data the ESS of pge rose 41 → 107 of 400 draws (2 × 200), and τ's
#: on the planted data 151 → 245 of 2,000, at about twice the cost of an iteration.
SINGLE_SITE = True

#: Steps 2 and 3, this many times an iteration (B'D⁻¹B formed once). Planted recovery data
#: (tests/test_sparse.py), 2 × 1,000 draws, seeds 4 and 102: bulk ESS of τ 622, 663 with one
#: cycle, 938, 1,037 with two (σb²'s 602–624 then the smallest), CPU time 15–17 s a run with
#: two against 19–20 s for the sampler before α, the compiled sweep and :func:`scale_step`
#: (ESS 229, 151).
CYCLES = 2


@numba.njit(cache=True, nogil=True)
def _log_density_site(x, a, h, c2, tau2):  # pragma: no cover - compiled
    """The log density of log λ_j at x given v₋ⱼ and the rest, up to a constant (the sweep's)."""
    l2 = math.exp(2.0 * x)
    t2l2 = tau2 * l2
    phi = c2 * t2l2 / (c2 + t2l2) if t2l2 < 1e300 else c2
    q = 1.0 + phi * a
    return -math.log1p(l2) - 0.5 * math.log(q) + 0.5 * h * h * phi / q + x


@numba.njit(cache=True, nogil=True)
def _slice_site(x, a, h, c2, tau2, width, max_step_out, rng):  # pragma: no cover - compiled
    """:func:`slice_step` on :func:`_log_density_site` (the same stepping out and shrinkage)."""
    level = _log_density_site(x, a, h, c2, tau2) + math.log(rng.random())
    left = x - width * rng.random()
    right = left + width
    j = rng.integers(0, max_step_out)
    k = max_step_out - 1 - j
    while j > 0 and _log_density_site(left, a, h, c2, tau2) > level:
        left -= width
        j -= 1
    while k > 0 and _log_density_site(right, a, h, c2, tau2) > level:
        right += width
        k -= 1
    while True:
        new = left + (right - left) * rng.random()
        if _log_density_site(new, a, h, c2, tau2) > level:
            return new
        if new < x:
            left = new
        else:
            right = new


@numba.njit(cache=True, nogil=True)
def _sweep(Bt, d, resid_w, a_all, lam, v, tau2, c2, order, width, steps, rng):  # pragma: no cover
    """:func:`single_site_sweep`'s loop, in place on λ, v and resid_w = (y₁ − X₁β − Bv)/d."""
    r = d.shape[0]
    for j in order:
        a = a_all[j]
        h = a * v[j]
        for i in range(r):
            h += Bt[j, i] * resid_w[i]
        x = _slice_site(math.log(lam[j]), a, h, c2, tau2, width, steps, rng)
        lam[j] = math.exp(x)
        t2l2 = tau2 * lam[j] * lam[j]
        phi = c2 * t2l2 / (c2 + t2l2) if t2l2 < 1e300 else c2
        q = 1.0 + phi * a
        new = h * phi / q + math.sqrt(phi / q) * rng.standard_normal()
        delta = new - v[j]
        for i in range(r):
            resid_w[i] -= Bt[j, i] * delta / d[i]
        v[j] = new


def single_site_sweep(problem: Problem, st: State, d: np.ndarray, rng: np.random.Generator) -> None:
    r"""(λ_j, v_j) | v_{−j}, rest for each j in turn: λ_j with v_j integrated out, then v_j.

    Notes
    -----
    With r₋ⱼ = y₁ − X₁β − B v + b_j v_j, a_j = b_j'D⁻¹b_j and h_j = b_j'D⁻¹r₋ⱼ, the likelihood
    in v_j is ∝ exp(−a_j v_j²/2 + h_j v_j), so with v_j ~ N(0, φ_j)

    .. math::

        \log p(\lambda_j \mid v_{-j}, \ldots) = \log C^+(\lambda_j)
        - \tfrac12 \log(1 + \phi_j a_j) + \tfrac12 h_j^2 \phi_j / (1 + \phi_j a_j),

    and v_j | λ_j ~ N(h_j φ_j/(1 + φ_j a_j), φ_j/(1 + φ_j a_j)). One slice step on log λ_j
    per SNP, in a random order; the loop is compiled (:func:`_sweep`), O(rM) a sweep.
    """
    Bt = problem.B_t
    resid_w = (problem.y1 - problem.X1 @ st.beta - problem.B @ st.v) / d
    a_all = np.einsum("ji,i,ji->j", Bt, 1.0 / d, Bt)
    lam, v = st.lam.copy(), st.v.copy()
    order = rng.permutation(problem.n_snps)
    _sweep(Bt, d, resid_w, a_all, lam, v, st.tau**2, st.c2, order, SLICE_WIDTH, MAX_STEP_OUT, rng)
    st.lam, st.v = lam, v


def iterate(
    problem: Problem, st: State, rng: np.random.Generator, alpha: np.ndarray | None = None
) -> int:
    """One iteration of the blocked sampler (the module's steps 1–5); returns τ's evaluations.

    ``alpha``: the direction of τ's step in log λ (:func:`tau_step`).
    """
    d = st.sigma_b2 * problem.s + st.sigma_e2
    # 1. β | v, σ's
    _draw_beta(problem, st, d, rng)
    alpha = np.zeros(problem.n_snps) if alpha is None else alpha
    A = data_precision(problem, d)
    evals = 0
    for _ in range(CYCLES):
        # 2. (τ, λ, v) | c², β, σ's: along (log τ + x, log λ − αx), v integrated out, then v
        evals += tau_step(problem, st, d, rng, alpha, A)
        # 3. (λ_j, v_j) | v₋ⱼ, rest, one SNP at a time
        if SINGLE_SITE:
            single_site_sweep(problem, st, d, rng)
        else:
            st.lam = np.exp(
                slice_step_vector(
                    lambda x: log_conditional_lambda(st.v, np.exp(x), st.tau, st.c2) + x,
                    np.log(st.lam),
                    rng,
                )
            )
        # 3. then the line of step 2 with z = v/√φ fixed
        scale_step(problem, st, d, rng, alpha)
    # 3b. the ridge τλ_j = const: φ (so the likelihood and v's prior) is unchanged
    _rescale(problem, st, rng)
    # 4. c² | v, λ, τ
    x0 = math.log(st.c2)

    def f_c2(x: float) -> float:
        return log_conditional_c2(problem, st.v, st.lam, st.tau, math.exp(x)) + x

    st.c2 = math.exp(slice_step(f_c2, x0, f_c2(x0), rng)[0])
    # 5. σe², σb² | β, v, τ
    resid1 = problem.y1 - problem.X1 @ st.beta - problem.B @ st.v
    rss0 = _null_rss(problem, st.beta)
    for which in ("sigma_e2", "sigma_b2"):

        def f_var(x: float, which: str = which) -> float:
            values = {"sigma_e2": st.sigma_e2, "sigma_b2": st.sigma_b2, which: math.exp(x)}
            return (
                log_conditional_variances(
                    problem, resid1, rss0, st.tau, values["sigma_e2"], values["sigma_b2"]
                )
                + x
            )

        x0 = math.log(getattr(st, which))
        setattr(st, which, math.exp(slice_step(f_var, x0, f_var(x0), rng)[0]))
    return evals


def summaries(problem: Problem, st: State) -> tuple[np.ndarray, np.ndarray]:
    """The :data:`SCALARS` of one draw and the per-SNP ``pip`` = 1 − κ_j.

    PVE, PGE and σg² (= V_g) as ``bayeslmm.families.sparse.effect_summaries``, with
    κ_j = 1 / (1 + φ_j N var(w_j) / σe²).
    """
    n, ones = problem.n, problem.ones_rot
    phi = prior_variances(st.tau, st.lam, st.c2)
    pip = 1.0 - 1.0 / (1.0 + phi * n * problem.snp_var / st.sigma_e2)
    bv = problem.B @ st.v
    resid = problem.y1 - problem.X1 @ st.beta - bv
    prior_var = st.sigma_b2 * problem.s
    total = prior_var + st.sigma_e2
    g1 = bv + prior_var / total * resid
    var_b = prior_var * st.sigma_e2 / total

    def sample_var(g: np.ndarray) -> float:
        return float(g @ g / n - (ones @ g / n) ** 2)

    var_g = sample_var(g1) + var_b.sum() / n - (var_b * ones**2).sum() / n**2
    var_large = sample_var(problem.B @ (pip * st.v))
    var_large += float(np.sum(pip * (1.0 - pip) * st.v**2 * problem.snp_var))
    pve = var_g / (var_g + st.sigma_e2)
    scalars = np.array(
        [st.sigma_e2, st.sigma_b2, st.tau, st.c2, var_g, pve, pve, var_large / var_g]
    )
    return scalars, pip


@dataclass
class ChainDraws:
    """One chain's kept draws: scalars [shape: (draws, len(SCALARS))], beta, and per SNP."""

    scalars: np.ndarray
    beta: np.ndarray
    v: np.ndarray
    lam: np.ndarray
    pip: np.ndarray
    tau_evals: np.ndarray


def run_chain(
    problem: Problem, *, draws: int, burn: int, thin: int, rng: np.random.Generator
) -> ChainDraws:
    """``burn`` iterations, then ``draws`` × ``thin``, keeping every thin-th.

    τ's direction α (:func:`tau_step`) is 0 for the first half of the burn-in, then the
    average of :func:`shrinkage` over its second quarter, and fixed from there on.
    """
    st = initial_state(problem, rng)
    m, p = problem.n_snps, problem.X1.shape[1]
    out = ChainDraws(
        scalars=np.empty((draws, len(SCALARS))),
        beta=np.empty((draws, p)),
        v=np.empty((draws, m)),
        lam=np.empty((draws, m)),
        pip=np.empty((draws, m)),
        tau_evals=np.zeros(draws),
    )
    evals = 0
    alpha, window = None, range(burn // 4, burn // 2)
    shrink = np.zeros(m)
    for it in range(burn + draws * thin):
        evals += iterate(problem, st, rng, alpha)
        if it in window:
            shrink += shrinkage(problem, st, st.sigma_b2 * problem.s + st.sigma_e2)
            if it == window[-1]:
                alpha = shrink / len(window)
        if it < burn or (it - burn + 1) % thin:
            continue
        k = (it - burn + 1) // thin - 1
        out.scalars[k], out.pip[k] = summaries(problem, st)
        out.beta[k], out.v[k], out.lam[k] = st.beta, st.v, st.lam
        out.tau_evals[k] = evals
        evals = 0
    return out


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS on one thread while the chains run, where threadpoolctl is installed.

    The chain's products and factors are of r×M and M×M matrices one at a time: on two busy
    cores OpenBLAS's threads made a 300×300 Cholesky take 0.95 s instead of 0.5 ms (measured).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # (a development dependency of bayeslmm, often installed)
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def sample_horseshoe(
    info: Any,
    *,
    draws: int,
    chains: int,
    tune: int,
    thin: int,
    seed: int,
    cores: int | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Run the chains for a horseshoe model; return its posterior and sampler statistics.

    Parameters
    ----------
    info
        The model's :class:`~bayeslmm.families.base.ModelInfo`.
    draws, chains, tune, thin
        Kept draws per chain, chains, burn-in iterations, iterations per kept draw.
    seed
        Each chain's generator from ``SeedSequence(seed).spawn(chains)``.
    cores
        Chains run in this many threads (default: all cores): the factorizations, products
        and the compiled sweep release the GIL. The draws do not depend on it.

    Returns
    -------
    posterior, sample_stats : xarray.Dataset
        The NUTS path's variables but its sampler's auxiliaries: ``beta``, the
        :data:`SCALARS`, ``v``, ``lambda``, ``z`` (v / (τλ̃)) and ``pip`` (dim snp); statistic
        ``tau_evals`` (log-density evaluations of τ's step per kept draw).
    """
    problem = make_problem(info)
    _ = problem.B_t  # (computed once here, not by each thread)

    def one(seq: np.random.SeedSequence) -> ChainDraws:
        return run_chain(problem, draws=draws, burn=tune, thin=thin, rng=np.random.default_rng(seq))

    with one_blas_thread():
        runs = map_chains(one, np.random.SeedSequence(seed).spawn(chains), cores)
    coords = {
        "chain": np.arange(chains),
        "draw": np.arange(draws),
        "covariate": list(info.data.covariates),
        "snp": list(info.snps),
    }
    cd = ("chain", "draw")

    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(r, name) for r in runs])

    scalars = stack("scalars")
    tau = scalars[..., SCALARS.index("tau")]
    c2 = scalars[..., SCALARS.index("c2")]
    lam = stack("lam")
    phi = prior_variances(tau[..., None], lam, c2[..., None])
    posterior = xr.Dataset(
        {
            "beta": ((*cd, "covariate"), stack("beta")),
            **{name: (cd, scalars[..., i]) for i, name in enumerate(SCALARS)},
            "lambda": ((*cd, "snp"), lam),
            "z": ((*cd, "snp"), stack("v") / np.sqrt(phi)),
            "v": ((*cd, "snp"), stack("v")),
            "pip": ((*cd, "snp"), stack("pip")),
        },
        coords=coords,
    )
    stats = xr.Dataset(
        {"tau_evals": (cd, stack("tau_evals"))},
        coords={"chain": coords["chain"], "draw": coords["draw"]},
    )
    return posterior, stats
