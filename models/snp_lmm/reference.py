"""Dense, literal reference forms of the SNP-effects LMM (for reading, teaching and the tests).

    y = Xβ + Wv + ε,   v ~ N(0, σv² I_M),   ε ~ N(0, σe² I),   σg² = M·σv²,   K = WW'/M

The package never imports this module. See MODEL.md beside this file.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from models.kinship_lmm.reference import _beta_prior, _variance_components


def standardize(G):
    """Centre each SNP and divide by its SD (ddof = 0): K = WW'/M is then GEMMA's -gk 2."""
    G = np.asarray(G, dtype=float)
    return (G - G.mean(axis=0)) / G.std(axis=0)


def dense_snp_model(y, X, W, priors="default", parametrization="h2"):
    """Explicit, non-centred v: z ~ N(0, I_M), v = σv z, y ~ N(Xβ + Wv, σe² I)."""
    n, m = W.shape
    coords = {
        "sample": np.arange(n),
        "snp": np.arange(m),
        "covariate": ["intercept"] + [f"x{j}" for j in range(1, X.shape[1])],
    }
    with pm.Model(coords=coords) as model:
        beta = _beta_prior(y, X, priors)
        sigma_g2, sigma_e2 = _variance_components(y, priors, parametrization)
        sigma_v = pm.Deterministic("sigma_v", pt.sqrt(sigma_g2 / m))
        z = pm.Normal("z", 0.0, 1.0, dims="snp")
        v = pm.Deterministic("v", sigma_v * z, dims="snp")
        pm.Normal(
            "y",
            mu=pt.as_tensor(X) @ beta + pt.as_tensor(W) @ v,
            sigma=pt.sqrt(sigma_e2),
            observed=y,
            dims="sample",
        )
    return model


def dense_marginal_snp_model(y, X, W, priors="default", parametrization="h2"):
    """v integrated out: y ~ MvNormal(Xβ, σg² WW'/M + σe² I)."""
    n, m = W.shape
    K = W @ W.T / m
    coords = {
        "sample": np.arange(n),
        "covariate": ["intercept"] + [f"x{j}" for j in range(1, X.shape[1])],
    }
    with pm.Model(coords=coords) as model:
        beta = _beta_prior(y, X, priors)
        sigma_g2, sigma_e2 = _variance_components(y, priors, parametrization)
        pm.MvNormal(
            "y",
            mu=pt.as_tensor(X) @ beta,
            cov=sigma_g2 * K + sigma_e2 * np.eye(n),
            observed=y,
            dims="sample",
        )
    return model


def conditional_v(y, X, W, beta, sigma_g2, sigma_e2):
    """v | y, β, σg², σe² ~ N(σv² W'V⁻¹(y − Xβ), σv² I − σv⁴ W'V⁻¹W), V = σv² WW' + σe² I."""
    n, m = W.shape
    sv2 = sigma_g2 / m
    V = sv2 * W @ W.T + sigma_e2 * np.eye(n)
    Vinv = np.linalg.inv(V)
    return sv2 * W.T @ Vinv @ (y - X @ beta), sv2 * np.eye(m) - sv2**2 * W.T @ Vinv @ W
