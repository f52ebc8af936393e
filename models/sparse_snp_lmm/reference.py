"""Dense, literal reference of the SNP-effects LMM with sparse priors: for reading and the tests.

.. math::

    y = X\\beta + W v + u + \\varepsilon, \\quad u \\sim N(0, \\sigma_b^2 WW'/M), \\quad
    \\varepsilon \\sim N(0, \\sigma_e^2 I)

(GEMMA's BSLMM: sparse effects v plus a polygenic background u) with, per SNP j, either the
spike-and-slab normal mixture (BSLMM's point mass relaxed to a narrow normal)

.. math::

    v_j \\sim \\pi N(0, \\sigma_L^2) + (1 - \\pi) N(0, \\varepsilon^2 \\sigma_b^2 / M)

or the regularized horseshoe (Piironen & Vehtari 2017)

.. math::

    v_j \\sim N(0, \\tau^2 \\tilde\\lambda_j^2), \\quad
    \\tilde\\lambda_j^2 = c^2 \\lambda_j^2 / (c^2 + \\tau^2 \\lambda_j^2).

Everything is in sample space: u is summed out literally, y ~ MvNormal(Xβ + Wv,
σb² WW'/M + σe² I) with the N×N covariance (O(N³) per evaluation), and v is centred (its prior
density is written on v itself). The summaries (PVE, inclusion probabilities, PGE) are written
out with dense conditionals, SciPy and, for PGE, by enumerating every indicator vector. The
package ``bayeslmm`` never imports this module, and this module never imports ``bayeslmm``.
See MODEL.md beside this file.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats

# --------------------------------------------------------------------------------------------
# Priors shared with models/snp_lmm/reference.py (repeated so that the file reads on its own)
# --------------------------------------------------------------------------------------------


def _beta_prior(y: np.ndarray, X: np.ndarray) -> pt.TensorVariable:
    """β with the package's default prior (below); dims ``covariate``.

    The intercept's prior is placed at the covariate means, as rstanarm does: with c the
    constant column and x̄_j the means of the others, α = β_c + Σ_j x̄_j β_j ~ N(mean(y),
    (10 sd(y))²) independently of β_j ~ N(0, (10 sd(y)/sd(x_j))²). β = A (α, β_j) with A the
    identity plus −x̄_j in row c, so β ~ MvNormal(μ, A diag(σ²) A'): moving a covariate by a
    constant (a date, a year of birth) moves the prior with it. Without covariates besides
    the intercept (or without an intercept) this is the independent Normal. SDs with ddof = 1.
    """
    sd_y = np.std(y, ddof=1)
    constant = np.ptp(X, axis=0) == 0
    sd_x = np.where(constant, 1.0, np.std(X, axis=0, ddof=1))
    mu_beta = np.where(constant, np.mean(y), 0.0)
    sigma_beta = np.where(constant, 10 * sd_y, 10 * sd_y / sd_x)
    if constant.sum() != 1 or X.shape[1] == 1:
        return pm.Normal("beta", mu=mu_beta, sigma=sigma_beta, dims="covariate")
    A = np.eye(X.shape[1])
    A[np.flatnonzero(constant)[0], ~constant] = -X[:, ~constant].mean(axis=0)
    cov = A @ np.diag(sigma_beta**2) @ A.T
    return pm.MvNormal("beta", mu=mu_beta, cov=cov, dims="covariate")


def _coords(n: int, d: int, m: int, covariates: Sequence[str] | None) -> dict:
    names = ["intercept"] + [f"x{j}" for j in range(1, d)] if covariates is None else covariates
    return {"sample": np.arange(n), "covariate": list(names), "snp": np.arange(m)}


def _likelihood(y, X, W, beta, v, sigma_b2, sigma_e2) -> None:
    """y ~ MvNormal(Xβ + Wv, σb² WW'/M + σe² I) in sample space: the background u summed out."""
    n, m = W.shape
    K = W @ W.T / m
    pm.MvNormal(
        "y",
        mu=pt.as_tensor(X) @ beta + pt.as_tensor(W) @ v,
        cov=sigma_b2 * pt.as_tensor(K) + sigma_e2 * pt.eye(n),
        observed=y,
        dims="sample",
    )


# --------------------------------------------------------------------------------------------
# The literal PyMC models
# --------------------------------------------------------------------------------------------


def dense_mixture_snp_model(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    n_nonzero: float = 10.0,
    spike_sd: float = 0.3,
    covariates: Sequence[str] | None = None,
) -> pm.Model:
    """Spike-and-slab normal mixture on centred SNP effects plus the background, summed out.

    Priors::

        beta       ~ Normal(mean(y), 10 sd(y)) for the intercept, Normal(0, 10 sd(y)/sd(x_j))
        h2         ~ Beta(1, 1)
        sigma_p    ~ HalfStudentT(nu=3, sigma=sd(y))
        sigma_g2   = h2 sigma_p²,  sigma_e2 = (1 − h2) sigma_p²
        pi         ~ Beta(10, 10 (M − p0)/p0)            probability of a slab effect
        rho_excess ~ Beta(1, 1)
        rho        = rho_min + (1 − rho_min) rho_excess  share of sigma_g2 in the slab effects
        rho_min    = pi spike_sd² / (1 + pi spike_sd²)   (slab at least as wide as the spike)
        sigma_slab2 = rho sigma_g2 / (M pi)
        sigma_b2   = (1 − rho) sigma_g2                  the background's variance
        sigma_spike2 = spike_sd² sigma_b2 / M
        v_j        ~ pi N(0, sigma_slab2) + (1 − pi) N(0, sigma_spike2)    dims snp
        y          ~ MvNormal(X beta + W v, sigma_b2 WW'/M + sigma_e2 I)          dims sample

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)].
    X
        Covariates with the intercept as a column [shape: (n_samples, n_covariates)].
    W
        Genotypes as used (normalized so that WW'/M has mean diagonal 1)
        [shape: (n_samples, n_snps)].
    n_nonzero
        p0, the prior mean of the number of slab effects.
    spike_sd
        The spike's SD as a fraction of the background's per-SNP SD √(σb²/M).
    covariates
        Names of the ``covariate`` dim.

    Returns
    -------
    pymc.Model
    """
    n, m = W.shape
    sd_y = np.std(y, ddof=1)
    with pm.Model(coords=_coords(n, X.shape[1], m, covariates)) as model:
        beta = _beta_prior(y, X)
        h2 = pm.Beta("h2", alpha=1, beta=1)
        sigma_p = pm.HalfStudentT("sigma_p", nu=3, sigma=sd_y)
        sigma_g2 = pm.Deterministic("sigma_g2", h2 * sigma_p**2)
        sigma_e2 = pm.Deterministic("sigma_e2", (1 - h2) * sigma_p**2)
        pi = pm.Beta("pi", alpha=10, beta=10 * (m - n_nonzero) / n_nonzero)
        rho_excess = pm.Beta("rho_excess", alpha=1, beta=1)
        rho_min = pi * spike_sd**2 / (1 + pi * spike_sd**2)
        rho = pm.Deterministic("rho", rho_min + (1 - rho_min) * rho_excess)
        sigma_slab2 = pm.Deterministic("sigma_slab2", rho * sigma_g2 / (m * pi))
        sigma_b2 = pm.Deterministic("sigma_b2", (1 - rho) * sigma_g2)
        sigma_spike2 = pm.Deterministic("sigma_spike2", spike_sd**2 * sigma_b2 / m)
        v = pm.NormalMixture(
            "v",
            w=pt.stack([pi, 1 - pi]),
            mu=pt.zeros(2),
            sigma=pt.sqrt(pt.stack([sigma_slab2, sigma_spike2])),
            dims="snp",
        )
        _likelihood(y, X, W, beta, v, sigma_b2, sigma_e2)
    return model


def horseshoe_global_scale(n_nonzero: float, n_snps: int, n_samples: int) -> float:
    """τ0 = p0 / (M − p0) / √N (Piironen & Vehtari 2017, their eq. 3.12, per unit σe)."""
    return n_nonzero / (n_snps - n_nonzero) / np.sqrt(n_samples)


def dense_horseshoe_snp_model(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    n_nonzero: float = 10.0,
    slab_scale: float | None = None,
    slab_df: float = 4.0,
    covariates: Sequence[str] | None = None,
) -> pm.Model:
    """Regularized horseshoe on centred SNP effects.

    Priors::

        beta     ~ as in dense_mixture_snp_model
        sigma_e2 ~ HalfStudentT(nu=3, sigma=var(y))
        sigma_b2 ~ HalfStudentT(nu=3, sigma=var(y))                the background's variance
        lambda_a_j ~ HalfNormal(1),  lambda_b_j ~ InverseGamma(1/2, 1/2)      dims snp
        lambda_j = lambda_a_j sqrt(lambda_b_j)                    ~ HalfCauchy(1)
        tau_a    ~ HalfNormal(1),    tau_b ~ InverseGamma(1/2, 1/2)
        tau      = tau0 sqrt(sigma_e2) tau_a sqrt(tau_b)          ~ HalfCauchy(tau0 sqrt(sigma_e2))
        tau0     = p0 / (M − p0) / √N
        c2       ~ InverseGamma(nu/2, nu s²/2)                    s = slab_scale (sd(y))
        lambda_tilde_j² = c2 lambda_j² / (c2 + tau² lambda_j²)
        v_j      ~ Normal(0, tau · lambda_tilde_j)                dims snp
        y        ~ MvNormal(X beta + W v, sigma_b2 WW'/M + sigma_e2 I)   dims sample

    Parameters
    ----------
    y, X, W, covariates
        As in :func:`dense_mixture_snp_model`.
    n_nonzero
        p0, the expected number of non-zero effects.
    slab_scale
        s; default sd(y) (ddof = 1).
    slab_df
        ν.

    Returns
    -------
    pymc.Model
    """
    n, m = W.shape
    sd_y = np.std(y, ddof=1)
    s = sd_y if slab_scale is None else slab_scale
    tau0 = horseshoe_global_scale(n_nonzero, m, n)
    with pm.Model(coords=_coords(n, X.shape[1], m, covariates)) as model:
        beta = _beta_prior(y, X)
        sigma_e2 = pm.HalfStudentT("sigma_e2", nu=3, sigma=sd_y**2)
        sigma_b2 = pm.HalfStudentT("sigma_b2", nu=3, sigma=sd_y**2)
        # each half-Cauchy as a·√b (|N(0,1)| / |N(0,1)|), the package's coordinates: the same
        # prior on λ and τ, written so that the joint densities compare point by point
        lam_a = pm.HalfNormal("lambda_a", sigma=1.0, dims="snp")
        lam_b = pm.InverseGamma("lambda_b", alpha=0.5, beta=0.5, dims="snp")
        lam = lam_a * pt.sqrt(lam_b)
        tau_a = pm.HalfNormal("tau_a", sigma=1.0)
        tau_b = pm.InverseGamma("tau_b", alpha=0.5, beta=0.5)
        tau = tau0 * pt.sqrt(sigma_e2) * tau_a * pt.sqrt(tau_b)
        c2 = pm.InverseGamma("c2", alpha=slab_df / 2, beta=slab_df * s**2 / 2)
        lam_tilde = pt.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
        v = pm.Normal("v", mu=0.0, sigma=tau * lam_tilde, dims="snp")
        _likelihood(y, X, W, beta, v, sigma_b2, sigma_e2)
    return model


# --------------------------------------------------------------------------------------------
# Summaries of a draw
# --------------------------------------------------------------------------------------------


def background_conditional(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    beta: np.ndarray,
    v: np.ndarray,
    sigma_b2: float,
    sigma_e2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of u | y, β, v, σb², σe², densely (N×N solves).

    Returns
    -------
    mean : ndarray
        σb² K V⁻¹ (y − Xβ − Wv), V = σb² K + σe² I, K = WW'/M [shape: (n_samples,)].
    cov : ndarray
        σb² K − σb⁴ K V⁻¹ K [shape: (n_samples, n_samples)].
    """
    n, m = W.shape
    K = W @ W.T / m
    V = sigma_b2 * K + sigma_e2 * np.eye(n)
    mean = sigma_b2 * K @ np.linalg.solve(V, y - X @ beta - W @ v)
    cov = sigma_b2 * K - sigma_b2**2 * K @ np.linalg.solve(V, K)
    return mean, cov


def genetic_variance(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    beta: np.ndarray,
    v: np.ndarray,
    sigma_b2: float,
    sigma_e2: float,
) -> float:
    """E[var(Wv + u) | y, θ, v] over the background's conditional, variance over samples ddof 0.

    With ū, C from :func:`background_conditional` and P = I − 11'/N:
    var(Wv + ū) + tr(PC)/N.
    """
    n = len(y)
    mean, cov = background_conditional(y, X, W, beta, v, sigma_b2, sigma_e2)
    P = np.eye(n) - np.ones((n, n)) / n
    return float(np.var(W @ v + mean) + np.trace(P @ cov) / n)


def realized_pve(var_g: float, sigma_e2: float) -> float:
    """PVE = V_g / (V_g + σe²), V_g from :func:`genetic_variance` (GEMMA BSLMM's PVE)."""
    return float(var_g / (var_g + sigma_e2))


def mixture_pip(v: np.ndarray, pi: float, sigma_slab2: float, sigma_spike2: float) -> np.ndarray:
    """P(SNP j in the slab | v_j, π, σL², σS²) by Bayes' rule [shape: (n_snps,)]."""
    slab = pi * stats.norm.pdf(v, 0, np.sqrt(sigma_slab2))
    spike = (1 - pi) * stats.norm.pdf(v, 0, np.sqrt(sigma_spike2))
    return slab / (slab + spike)


def horseshoe_pip(
    W: np.ndarray, tau: float, lam: np.ndarray, c2: float, sigma_e2: float
) -> np.ndarray:
    """1 − κ_j, κ_j = 1 / (1 + τ² λ̃_j² Σ_i (w_ij − w̄_j)² / σe²) [shape: (n_snps,)]."""
    lam_tilde2 = c2 * lam**2 / (c2 + tau**2 * lam**2)
    sumsq = ((W - W.mean(axis=0)) ** 2).sum(axis=0)
    return 1 - 1 / (1 + tau**2 * lam_tilde2 * sumsq / sigma_e2)


def pge_by_enumeration(W: np.ndarray, v: np.ndarray, pip: np.ndarray, var_g: float) -> float:
    """E_γ[var(W(γ∘v))] / V_g over independent γ_j ~ Bernoulli(pip_j), all 2^M γ summed.

    V_g is the genetic variance of :func:`genetic_variance` (background included).

    For small M only (M ≤ 14): the brute-force counterpart of the closed form in the package.
    """
    m = len(v)
    if m > 14:
        raise ValueError(f"enumeration over 2^{m} indicator vectors is too large; use M <= 14")
    total = 0.0
    for gamma in itertools.product((0, 1), repeat=m):
        gamma = np.array(gamma)
        weight = np.prod(np.where(gamma == 1, pip, 1 - pip))
        total += weight * np.var(W @ (gamma * v))
    return float(total / var_g)


# --------------------------------------------------------------------------------------------
# The point-mass model of sampler="bslmm" (GEMMA BSLMM's prior), its marginal likelihood
# --------------------------------------------------------------------------------------------


def bslmm_covariance(
    W: np.ndarray, gamma: Sequence[int], h: float, rho: float, pi: float
) -> np.ndarray:
    """H = I + σb²/σe² WW'/M + σL²/σe² W_γW_γ' (y ~ N(Xβ, σe² H) given γ, h, ρ, π), N×N.

    σg²/σe² = h/(1 − h), σb² = (1 − ρ)σg², σL² = ρσg²/(Mπ).
    """
    n, m = W.shape
    ratio = h / (1 - h)
    Wg = W[:, list(gamma)]
    return np.eye(n) + (1 - rho) * ratio * W @ W.T / m + rho * ratio / (m * pi) * Wg @ Wg.T


def bslmm_log_marginal_given_sigma_e2(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    gamma: Sequence[int],
    h: float,
    rho: float,
    pi: float,
    sigma_e2: float,
) -> float:
    """log ∫ N(y; Xβ, σe² H) dβ (flat β) with SciPy's N×N multivariate normal.

    = log N(y; Xβ̂, σe² H) + (p/2) log(2π σe²) − ½ log|X'H⁻¹X|, β̂ the GLS estimate.
    """
    H = bslmm_covariance(W, gamma, h, rho, pi)
    Hi_X = np.linalg.solve(H, X)
    XtHX = X.T @ Hi_X
    beta = np.linalg.solve(XtHX, Hi_X.T @ y)
    p = X.shape[1]
    return float(
        stats.multivariate_normal(X @ beta, sigma_e2 * H).logpdf(y)
        + 0.5 * p * np.log(2 * np.pi * sigma_e2)
        - 0.5 * np.linalg.slogdet(XtHX)[1]
    )


def bslmm_log_marginal(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    gamma: Sequence[int],
    h: float,
    rho: float,
    pi: float,
) -> float:
    """log p(y | γ, h, ρ, π): flat β and p(σe²) ∝ 1/σe² integrated out, N×N matrices.

    log Γ(m) − m log(π y'Py) − ½ log|H| − ½ log|X'H⁻¹X|, m = (N − p)/2,
    P = H⁻¹ − H⁻¹X(X'H⁻¹X)⁻¹X'H⁻¹ (the closed form of ∫ of
    :func:`bslmm_log_marginal_given_sigma_e2` against dσe²/σe²).
    """
    from scipy.special import gammaln

    H = bslmm_covariance(W, gamma, h, rho, pi)
    Hi = np.linalg.inv(H)
    XtHX = X.T @ Hi @ X
    P = Hi - Hi @ X @ np.linalg.solve(XtHX, X.T @ Hi)
    m = 0.5 * (len(y) - X.shape[1])
    return float(
        gammaln(m)
        - m * np.log(np.pi * (y @ P @ y))
        - 0.5 * np.linalg.slogdet(H)[1]
        - 0.5 * np.linalg.slogdet(XtHX)[1]
    )


def bslmm_gamma_posterior(
    y: np.ndarray, X: np.ndarray, W: np.ndarray, h: float, rho: float, pi: float
) -> dict[tuple[int, ...], float]:
    """p(γ | y, h, ρ, π) for every γ (all 2^M; M ≤ 12), γ_j ~ Bernoulli(π) a priori."""
    m = W.shape[1]
    if m > 12:
        raise ValueError(f"enumeration over 2^{m} models is too large; use M <= 12")
    logs = {}
    for bits in itertools.product((0, 1), repeat=m):
        gamma = tuple(j for j in range(m) if bits[j])
        k = len(gamma)
        logs[gamma] = (
            bslmm_log_marginal(y, X, W, gamma, h, rho, pi)
            + k * np.log(pi)
            + (m - k) * np.log1p(-pi)
        )
    top = max(logs.values())
    total = sum(np.exp(v - top) for v in logs.values())
    return {g: float(np.exp(v - top) / total) for g, v in logs.items()}


def horseshoe_log_joint(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    point: dict,
    tau0: float,
    c2_shape: float,
    c2_rate: float,
    var_scale: float,
) -> float:
    """Dense log p(y, v, λ, τ, c², σe², σb² | β) of the horseshoe model, sample space, N×N.

    λ, τ and c² on their own scales (λ_j ~ C⁺(0, 1), τ ~ C⁺(0, τ0 σe), c² ~ InvGamma), σe², σb²
    ~ HalfStudentT(3, var_scale), y ~ MvNormal(Xβ + Wv, σb² WW'/M + σe² I); β's prior left
    out (``point``: beta, v, lambda, tau, c2, sigma_e2, sigma_b2). For checking the
    sampler's conditionals by differences (independent of bayeslmm's eigenbasis algebra).
    """
    n, m = W.shape
    beta, v, lam = point["beta"], point["v"], point["lambda"]
    tau, c2, se2, sb2 = point["tau"], point["c2"], point["sigma_e2"], point["sigma_b2"]
    V = sb2 * W @ W.T / m + se2 * np.eye(n)
    loglik = stats.multivariate_normal(X @ beta + W @ v, V).logpdf(y)
    phi = c2 * tau**2 * lam**2 / (c2 + tau**2 * lam**2)
    log_v = stats.norm(0.0, np.sqrt(phi)).logpdf(v).sum()
    log_lam = stats.halfcauchy().logpdf(lam).sum()
    log_tau = stats.halfcauchy(scale=tau0 * np.sqrt(se2)).logpdf(tau)
    log_c2 = stats.invgamma(c2_shape, scale=c2_rate).logpdf(c2)
    log_var = sum(np.log(2) + stats.t(3, scale=var_scale).logpdf(x) for x in (se2, sb2))
    return float(loglik + log_v + log_lam + log_tau + log_c2 + log_var)


def horseshoe_log_tau_marginal(
    y: np.ndarray, X: np.ndarray, W: np.ndarray, point: dict, tau0: float
) -> float:
    """Dense log p(y | β, λ, τ, c², σ's) + log p(τ | σe), v integrated out: N×N MvNormal.

    y ~ MvNormal(Xβ, σb² WW'/M + σe² I + W diag(φ) W'), φ_j = τ²λ̃_j².
    """
    n, m = W.shape
    lam, tau, c2 = point["lambda"], point["tau"], point["c2"]
    se2, sb2 = point["sigma_e2"], point["sigma_b2"]
    phi = c2 * tau**2 * lam**2 / (c2 + tau**2 * lam**2)
    V = sb2 * W @ W.T / m + se2 * np.eye(n) + (W * phi) @ W.T
    loglik = stats.multivariate_normal(X @ point["beta"], V).logpdf(y)
    return float(loglik + stats.halfcauchy(scale=tau0 * np.sqrt(se2)).logpdf(tau))


def horseshoe_effects_conditional(
    y: np.ndarray, X: np.ndarray, W: np.ndarray, point: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of v | y, β, λ, τ, c², σ's (dense: Σ = (W'V⁻¹W + Φ⁻¹)⁻¹)."""
    n, m = W.shape
    lam, tau, c2 = point["lambda"], point["tau"], point["c2"]
    phi = c2 * tau**2 * lam**2 / (c2 + tau**2 * lam**2)
    V = point["sigma_b2"] * W @ W.T / m + point["sigma_e2"] * np.eye(n)
    Vi = np.linalg.inv(V)
    cov = np.linalg.inv(W.T @ Vi @ W + np.diag(1.0 / phi))
    return cov @ W.T @ Vi @ (y - X @ point["beta"]), cov


def bslmm_effect_moments(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    gamma: Sequence[int],
    h: float,
    rho: float,
    pi: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (β, v_γ) | y, γ, h, ρ, π, σe² integrated out, N×N matrices.

    Given σe², (β, v_γ) is normal with precision Q/σe², Q = Z'V⁻¹Z + diag(0, I/s_a)
    (Z = [X, W_γ], V = I + s_b WW'/M, flat β) and mean Q⁻¹Z'V⁻¹y; σe² | y ~
    InvGamma((N − p)/2, y'Py/2) with P from :func:`bslmm_covariance`'s H. So the mean is
    Q⁻¹Z'V⁻¹y and the covariance E[σe²] Q⁻¹, E[σe²] = (y'Py/2) / ((N − p)/2 − 1).
    """
    n, m = W.shape
    p, k = X.shape[1], len(gamma)
    ratio = h / (1 - h)
    s_b, s_a = (1 - rho) * ratio, rho * ratio / (m * pi)
    V = np.eye(n) + s_b * W @ W.T / m
    Z = np.column_stack([X, W[:, list(gamma)]])
    Vi_Z = np.linalg.solve(V, Z)
    Q = Z.T @ Vi_Z
    Q[p:, p:] += np.eye(k) / s_a
    mean = np.linalg.solve(Q, Vi_Z.T @ y)
    Hi = np.linalg.inv(bslmm_covariance(W, gamma, h, rho, pi))
    P = Hi - Hi @ X @ np.linalg.solve(X.T @ Hi @ X, X.T @ Hi)
    e_sigma_e2 = 0.5 * (y @ P @ y) / (0.5 * (n - p) - 1)
    return mean, e_sigma_e2 * np.linalg.inv(Q)
