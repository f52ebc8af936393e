r"""Laplace approximation of the probit LMM's marginal likelihood, genetic values integrated out.

The joint mode of (β, h², z) of the probit model does not exist in the interior: maximizing over
the latent genetic values as if they were parameters drives h² to 1. What GLMM software fits
instead (lme4's ``glmer``, the binary-trait REML approximations of GCTA and LDAK) is the mode
of the marginal likelihood of (β, σg²) with u integrated out by Laplace's method; this module
computes that approximation and its exact gradient, in the non-centred coordinates of the
model (u = U diag(√(σg² s)) z, z ~ N(0, I_r)), so a Newton step costs O(N·r² + r³).

numpy and SciPy only (no PyMC); :func:`bayeslmm.inference.optimize.map_point` drives it for
``kinship_model(..., family="probit")`` and :func:`bayeslmm.predict` uses
:func:`predictive_variance` at such a point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, special

from bayeslmm.errors import ConvergenceError

#: Newton iterations of the inner mode before giving up.
MAX_NEWTON = 200
#: Largest gradient of the inner objective ψ(z) at which its mode is taken as found.
NEWTON_TOL = 1e-10
#: log(1/√(2π)).
_LOG_PHI0 = -0.5 * np.log(2.0 * np.pi)


@dataclass(frozen=True, eq=False)
class LaplaceMode:
    """The Laplace approximation at given (β, log σg²).

    Attributes
    ----------
    z : ndarray
        Mode of log p(y | z, β, σg²) + log N(z; 0, I) [shape: (rank,)].
    log_marginal : float
        Laplace approximation of log p(y | β, σg²) (the normalizing constant included).
    gradient : ndarray
        Its derivative with respect to (β, log σg²) [shape: (n_covariates + 1,)], the
        dependence of the mode on the parameters included.
    """

    z: np.ndarray
    log_marginal: float
    gradient: np.ndarray


def probit_derivatives(
    y: np.ndarray, f: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Compute log Φ((2y − 1)f) and its first three derivatives in f.

    Parameters
    ----------
    y : ndarray
        0/1 phenotype [shape: (n,)].
    f : ndarray
        Liability means Xβ + u [shape: (n,)].

    Returns
    -------
    tuple of ndarray
        ℓ, ℓ′, −ℓ″ (the weights W, positive) and ℓ‴ [each shape: (n,)].

    Notes
    -----
    With :math:`t = 2y - 1`, :math:`x = t f` and the inverse Mills ratio
    :math:`\lambda = \varphi(x)/\Phi(x)` (computed as :math:`\exp(\log\varphi - \log\Phi)`,
    accurate in both tails):

    .. math::

        \ell' = t\lambda,\quad -\ell'' = \lambda(x + \lambda),\quad
        \ell''' = -t\lambda\big(1 - (x + \lambda)(x + 2\lambda)\big).
    """
    sign = 2.0 * y - 1.0
    x = sign * f
    log_cdf = special.log_ndtr(x)
    mills = np.exp(_LOG_PHI0 - 0.5 * x**2 - log_cdf)
    shifted = x + mills
    weight = mills * shifted
    third = -sign * mills * (1.0 - shifted * (x + 2.0 * mills))
    return log_cdf, sign * mills, weight, third


def laplace_mode(
    y: np.ndarray,
    X: np.ndarray,
    U: np.ndarray,
    s: np.ndarray,
    beta: np.ndarray,
    log_sigma_g2: float,
    z0: np.ndarray | None = None,
) -> LaplaceMode:
    r"""Laplace approximation of log p(y | β, σg²) of the probit LMM and its gradient.

    Parameters
    ----------
    y : ndarray
        0/1 phenotype [shape: (n,)].
    X : ndarray
        Covariates with the intercept [shape: (n, d)].
    U, s : ndarray
        Eigenvectors [shape: (n, r)] and positive eigenvalues [shape: (r,)] of K.
    beta : ndarray
        [shape: (d,)].
    log_sigma_g2 : float
        log σg² (= logit h² on the liability scale, h² = σg²/(σg² + 1)).
    z0 : ndarray, optional
        Start of the Newton iteration [shape: (r,)] (0 when None).

    Returns
    -------
    LaplaceMode

    Raises
    ------
    ConvergenceError
        When Newton's method does not reach the mode (it always should: ψ is concave).

    Notes
    -----
    With :math:`A = U\operatorname{diag}(\sqrt{\sigma_g^2 s})`, :math:`f = X\beta + Az` and
    :math:`\ell(f) = \sum_i \log\Phi((2y_i - 1)f_i)`,

    .. math::

        \psi(z) = \ell(X\beta + Az) - \tfrac12 z^\top z,\qquad
        H = I_r + A^\top W A,\quad W = \operatorname{diag}(-\ell''),

        \log p(y \mid \beta, \sigma_g^2) \approx \log q = \psi(\hat z) - \tfrac12\log\det H,

    :math:`\hat z` found by Newton's method with step halving (ψ is strictly concave: log Φ
    is log-concave). This equals Rasmussen & Williams (2006) eq. 3.32 with covariance
    :math:`\sigma_g^2 K`. Gradient with :math:`t = \log\sigma_g^2`,
    :math:`c = \operatorname{diag}(AH^{-1}A^\top)` and
    :math:`s_2 = \tfrac12\,\ell'''\odot c` (the derivative of :math:`-\tfrac12\log\det H`
    in :math:`\hat f`), the mode's own dependence included (R&W eq. 5.23, in z):

    .. math::

        \frac{\partial\log q}{\partial\beta} = X^\top(\ell' + s_2)
            - X^\top W A H^{-1} A^\top s_2,\qquad
        \frac{\partial\log q}{\partial t} = \tfrac12\,\ell'^\top A\hat z
            - \tfrac12\,W^\top c + s_2^\top A H^{-1}\hat z

    (:math:`W^\top c = \operatorname{tr}(H^{-1}A^\top W A) = r - \operatorname{tr}H^{-1}`,
    computed without the cancellation of the latter when σg² is small).
    """
    r = s.size
    A = U * np.sqrt(np.exp(log_sigma_g2) * s)
    offset = X @ beta
    z = np.zeros(r) if z0 is None else np.array(z0, dtype=float)

    def psi(z: np.ndarray) -> float:
        return float(np.sum(special.log_ndtr((2.0 * y - 1.0) * (offset + A @ z))) - 0.5 * z @ z)

    value = psi(z)
    for _ in range(MAX_NEWTON):
        _, d1, weight, _ = probit_derivatives(y, offset + A @ z)
        grad = A.T @ d1 - z
        if np.abs(grad).max() < NEWTON_TOL:
            break
        H = np.eye(r) + (A.T * weight) @ A
        step = linalg.solve(H, grad, assume_a="pos")
        for _ in range(60):
            trial = psi(z + step)
            if trial >= value - 1e-12 * abs(value):
                break
            step = step / 2.0
        z, value = z + step, trial
        if np.abs(step).max() < 1e-14 * max(1.0, np.abs(z).max()):
            break
    else:
        raise ConvergenceError(
            f"the Laplace approximation of the probit model did not find the mode of the "
            f"genetic values in {MAX_NEWTON} Newton steps (log sigma_g2 = {log_sigma_g2:.3g}); "
            "use bl.sample for the full posterior."
        )
    f = offset + A @ z
    log_cdf, d1, weight, d3 = probit_derivatives(y, f)
    H = np.eye(r) + (A.T * weight) @ A
    L = linalg.cholesky(H, lower=True)
    log_det = 2.0 * float(np.sum(np.log(np.diag(L))))
    log_marginal = float(np.sum(log_cdf) - 0.5 * z @ z - 0.5 * log_det)
    LiAt = linalg.solve_triangular(L, A.T, lower=True)  # L⁻¹ A'  [shape: (r, n)]
    c = np.sum(LiAt**2, axis=0)
    s2 = 0.5 * d3 * c
    H_inv_At_s2 = linalg.cho_solve((L, True), A.T @ s2)
    grad_beta = X.T @ (d1 + s2) - X.T @ (weight * (A @ H_inv_At_s2))
    # r − tr H⁻¹ = tr(H⁻¹A'WA) = Σ W c: no cancellation when σg² is small
    grad_t = (
        0.5 * float(d1 @ (A @ z))
        - 0.5 * float(weight @ c)
        + float(s2 @ (A @ linalg.cho_solve((L, True), z)))
    )
    return LaplaceMode(z=z, log_marginal=log_marginal, gradient=np.append(grad_beta, grad_t))


def predictive_variance(
    y: np.ndarray,
    X: np.ndarray,
    U: np.ndarray,
    s: np.ndarray,
    beta: np.ndarray,
    sigma_g2: float,
    u: np.ndarray,
    B: np.ndarray,
) -> np.ndarray:
    r"""Variance of the new samples' liability means K_nt K_tt⁺ u under the Laplace posterior of u.

    Parameters
    ----------
    y, X : ndarray
        Training phenotype [shape: (n,)] and covariates [shape: (n, d)].
    U, s : ndarray
        Eigenbasis of the training K [shapes: (n, r), (r,)].
    beta, sigma_g2, u
        The Laplace point: β̂, σ̂g² and the mode û of the training genetic values
        [shape: (n,)].
    B : ndarray
        K_nt U [shape: (n_new, r)].

    Returns
    -------
    ndarray
        diag(G H⁻¹ G') [shape: (n_new,)], with G = B diag(√(σg²/s)) (so that the mean is
        G ẑ) and H = I + A'WA at the mode (see :func:`laplace_mode`).

    Notes
    -----
    Under the Laplace approximation z | y, θ̂ ~ N(ẑ, H⁻¹), so the new samples' liability
    :math:`u_n = G z + \sigma_g\,L\,\epsilon` has variance
    :math:`\operatorname{diag}(G H^{-1} G^\top) + \sigma_g^2 S_{ii}` (S the conditional
    kinship of the new samples given the training ones; the caller adds that part). This
    equals R&W (2006) eq. 3.24, :math:`k_{**} - k_*^\top (K + W^{-1})^{-1} k_*`.
    """
    A = U * np.sqrt(sigma_g2 * s)
    _, _, weight, _ = probit_derivatives(y, X @ beta + u)
    H = np.eye(s.size) + (A.T * weight) @ A
    L = linalg.cholesky(H, lower=True)
    G = B * np.sqrt(sigma_g2 / s)
    LiGt = linalg.solve_triangular(L, G.T, lower=True)
    return np.sum(LiGt**2, axis=0)
