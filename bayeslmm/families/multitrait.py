r"""The multi-trait LMM: Y = XB + U + E, vec(U) ~ N(0, Σg ⊗ K), vec(E) ~ N(0, Σe ⊗ I).

Built by :func:`bayeslmm.kinship_model` when ``y`` is a table of T ≥ 2 trait columns. In the
eigenbasis of K the rotated rows are independent T-variate normals with covariance
:math:`s_i\Sigma_g + \Sigma_e`, plus the null space of a low-rank K with covariance Σe: one
evaluation costs O(r·T·(d + T) + T³), and no NT×NT matrix is ever formed (DESIGN §1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.constants import LOG_2PI
from bayeslmm.data.inputs import kinship_inputs
from bayeslmm.errors import InputError
from bayeslmm.estimation.multivariate.fit import check_traits, trait_table
from bayeslmm.estimation.multivariate.rotation import rotate_traits
from bayeslmm.families.base import Family, ModelInfo, model_coords, register_model
from bayeslmm.families.priors import (
    POSITIVE,
    REAL,
    UNIT,
    Parameter,
    Prior,
    PriorLike,
    add_prior,
    resolve,
)
from bayeslmm.inference.effects import flat_draws
from bayeslmm.linalg.spectral import standardize
from bayeslmm.relatedness.gram import Gram

#: What ``missing=`` takes: ``"latent"`` (the default; not built yet) or ``"drop"``.
MISSING = ("latent", "drop")


def multitrait_parameters(n_traits: int, n_covariates: int) -> dict[str, Parameter]:
    """The parameter table of the multi-trait LMM, in the units of the standardized traits.

    Parameters
    ----------
    n_traits, n_covariates
        T and d.

    Returns
    -------
    dict
        ``beta_std`` [shape: (d, T)] ~ Normal(0, 10) (standardized traits and covariates);
        ``h2`` [shape: (T,)] ~ Beta(1, 1); ``sigma_p`` [shape: (T,)] ~ HalfStudentT(3, 1), the
        total SD of each standardized trait (the univariate default scaled by sd(y));
        ``rg_cholesky`` and ``re_cholesky`` [shape: (T, T)] ~ LKJCorr(eta=1): PyMC's LKJCorr
        is the lower Cholesky factor of the correlation matrix, so the genetic and residual
        correlations are ``rg`` = L_g L_g' and ``re`` = L_e L_e' (Deterministics).
    """
    T, d = n_traits, n_covariates
    return {
        "beta_std": Parameter(Prior("Normal", mu=0.0, sigma=10.0), REAL, (d, T)),
        "h2": Parameter(Prior("Beta", alpha=1, beta=1), UNIT, (T,)),
        "sigma_p": Parameter(Prior("HalfStudentT", nu=3, sigma=1.0), POSITIVE, (T,)),
        "rg_cholesky": Parameter(
            Prior("LKJCorr", n=T, eta=1.0),
            (-1.0 - 1e-12, 1.0 + 1e-12),
            (T, T),
            suggestion=f"Prior('LKJCorr', n={T}, eta=2)",
        ),
        "re_cholesky": Parameter(
            Prior("LKJCorr", n=T, eta=1.0),
            (-1.0 - 1e-12, 1.0 + 1e-12),
            (T, T),
            suggestion=f"Prior('LKJCorr', n={T}, eta=2)",
        ),
    }


def _add(name: str, prior: PriorLike, dims: tuple[str, ...]) -> pt.TensorVariable:
    """A prior without the shape argument for LKJCorr (its shape follows from ``n``)."""
    if isinstance(prior, Prior) and prior.distribution == "LKJCorr":
        return pm.LKJCorr(name, **prior.params, dims=dims)
    return add_prior(name, prior, dims=dims)


def multitrait_lmm(
    Y: Any,
    K: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    parametrization: str | None = None,
    normalize: bool = True,
    missing: str = "latent",
) -> pm.Model:
    r"""Build the multi-trait LMM (the ``"multitrait"`` family).

    Parameters
    ----------
    Y
        Traits [shape: (n_samples, n_traits)], T ≥ 2: a DataFrame indexed by sample ID (trait
        names from its columns) or an array aligned by position with K.
    K
        One kinship [shape: (n_samples, n_samples)], as for :func:`bayeslmm.kinship_model`.
    X
        Covariates; None means intercept only.
    priors
        Dict of priors by name (``beta_std``, ``h2``, ``sigma_p``, ``rg_cholesky``,
        ``re_cholesky``; see
        :func:`multitrait_parameters`), merged into the defaults.
    parametrization
        None or ``"h2"`` (the only one).
    normalize
        Divide K by its mean diagonal.
    missing : {"latent", "drop"}
        Samples with some traits missing: ``"drop"`` keeps complete cases only (a DataWarning
        counts those dropped); ``"latent"`` (exact marginal of the observed entries) is not
        built yet and raises an InputError when a trait is missing.

    Returns
    -------
    pymc.Model
        Free variables ``beta_std`` (dims ``covariate``, ``trait``), ``h2``, ``sigma_p``
        (``trait``), ``rg_cholesky``, ``re_cholesky`` (``trait``, ``trait2``); Deterministics
        ``rg``, ``re`` (correlations) and, in the user's units, ``Sigma_g``, ``Sigma_e``
        (``trait``, ``trait2``) and ``beta`` (``covariate``, ``trait``). Form ``"multitrait_lmm"``.

    Raises
    ------
    InputError
        A Gram, several kinships, a non-numeric, constant or collinear trait, fewer than two
        traits, a bad ``missing=``, missing traits under ``missing="latent"``.

    Notes
    -----
    Each trait is standardized on X first (:func:`~bayeslmm.linalg.spectral.standardize`:
    :math:`\tilde y_t = (y_t - Xb_t)/c_t`, :math:`\tilde X = XA`), so the priors are free of
    units; with :math:`C = \operatorname{diag}(c)`, :math:`\Sigma_g = C\tilde\Sigma_g C`,
    :math:`\Sigma_e = C\tilde\Sigma_e C` and :math:`B = [b_t] + A\tilde B C`. Per trait,
    :math:`\tilde\Sigma_{g,tt} = h^2_t\sigma_{p,t}^2`,
    :math:`\tilde\Sigma_{e,tt} = (1 - h^2_t)\sigma_{p,t}^2`, and the correlations are
    ``rg`` and ``re`` (|rg| ≤ 1 by construction). With
    :math:`K = U_1\operatorname{diag}(s)U_1^\top` and the rotated rows
    :math:`\tilde y_{1i} \sim N(\tilde B^\top\tilde x_{1i}, s_i\tilde\Sigma_g + \tilde\Sigma_e)`,
    each row's covariance is factored by a batched T×T Cholesky,
    :math:`s_i\tilde\Sigma_g + \tilde\Sigma_e = L_iL_i^\top`, and contributes
    :math:`-\tfrac12[T\log 2\pi + 2\sum_t\log L_{i,tt} + \|L_i^{-1}(\tilde y_{1i} -
    \tilde B^\top\tilde x_{1i})\|^2]`: O(r·T³) per evaluation. (The joint
    diagonalization :math:`L^{-1}\tilde\Sigma_g L^{-\top} = Q\operatorname{diag}(\lambda)Q^\top`
    would cost O(r·T) but ``eigh``'s gradient is NaN where eigenvalues coincide, e.g. at
    the initial point rg = re = I, h² = ½.) With :math:`\tilde\Sigma_e = LL^\top`, the
    null space of a low-rank K adds :math:`-\tfrac12[(N - r)(T\log 2\pi + \log|\tilde\Sigma_e|) +
    \operatorname{tr}(\tilde\Sigma_e^{-1}E^\top E)]`, E the null-space residuals
    (:func:`~bayeslmm.estimation.multivariate.rotation.rotate_traits`). The constant
    :math:`-N\sum_t\log c_t` makes the sum the log-density of Y in the user's units.
    """
    if parametrization not in (None, "h2"):
        raise InputError(
            f"the multi-trait LMM has the 'h2' parametrization only, got {parametrization!r}; "
            "leave parametrization unset."
        )
    if missing not in MISSING:
        raise InputError(f"missing must be 'latent' or 'drop', got {missing!r}.")
    if isinstance(K, Gram):
        raise InputError(
            "the multi-trait model takes a kinship matrix, not a Gram, so far; pass "
            "bl.kinship(genotypes, method=gram.method)."
        )
    if isinstance(K, list | tuple | Mapping):
        raise InputError(
            "the multi-trait model takes one kinship; several variance components with several "
            "traits are not supported: pass one K (or fit each trait with the several kinships)."
        )
    values, names, index = trait_table(Y)
    complete = ~np.isnan(values).any(axis=1)
    if missing == "latent" and not complete.all():
        raise InputError(
            f"{int((~complete).sum())} sample(s) have some of the traits {names} missing; "
            "missing='latent' (keeping them, the missing values latent) is not built yet: pass "
            "missing='drop' to keep the complete cases only."
        )
    proxy_values = np.where(complete, np.arange(values.shape[0], dtype=float), np.nan)
    label = f"value of a trait in {names} (complete cases only)"
    proxy: Any = proxy_values if index is None else pd.Series(proxy_values, index, name=label)
    prepared, spectral = kinship_inputs(proxy, K, X, normalize=normalize)
    Yp = values[prepared.y.astype(np.int64)]
    check_traits(Yp, prepared.X, names)
    T, n = len(names), Yp.shape[0]
    stds = [standardize(Yp[:, t], prepared.X) for t in range(T)]
    scale = np.array([s.scale for s in stds])
    offset = np.column_stack([s.offset for s in stds])  # (d, T)
    transform = stds[0].transform
    rot = rotate_traits(spectral, np.column_stack([s.y for s in stds]), stds[0].X)
    d = rot.X1.shape[1]
    priors = resolve(priors, multitrait_parameters(T, d), model="the multi-trait LMM")
    coords = {**model_coords(prepared, spectral), "trait": names, "trait2": names}
    with pm.Model(coords=coords) as model:
        Y_rot = pm.Data("Y_rot", rot.Y1, dims=("eigen", "trait"))
        X_rot = pm.Data("X_rot", rot.X1, dims=("eigen", "covariate"))
        s = pm.Data("s", rot.s, dims="eigen")
        beta_std = add_prior("beta_std", priors["beta_std"], dims=("covariate", "trait"))
        h2 = add_prior("h2", priors["h2"], dims="trait")
        sigma_p = add_prior("sigma_p", priors["sigma_p"], dims="trait")
        chol_g = _add("rg_cholesky", priors["rg_cholesky"], ("trait", "trait2"))
        chol_e = _add("re_cholesky", priors["re_cholesky"], ("trait", "trait2"))
        rg = pm.Deterministic("rg", chol_g @ chol_g.T, dims=("trait", "trait2"))
        re = pm.Deterministic("re", chol_e @ chol_e.T, dims=("trait", "trait2"))
        sd_g = pt.sqrt(h2) * sigma_p
        sd_e = pt.sqrt(1.0 - h2) * sigma_p
        sg = sd_g[:, None] * rg * sd_g[None, :]
        se = sd_e[:, None] * re * sd_e[None, :]
        # every data-dependent number is a pm.Data: a cached compilation is refitted to new data
        c = pm.Data("trait_scale", scale, dims="trait")
        b0 = pm.Data("trait_offset", offset, dims=("covariate", "trait"))
        A_cov = pm.Data("covariate_transform", transform)
        n_samples = pm.Data("n_samples", float(n))
        pm.Deterministic("Sigma_g", c[:, None] * sg * c[None, :], dims=("trait", "trait2"))
        pm.Deterministic("Sigma_e", c[:, None] * se * c[None, :], dims=("trait", "trait2"))
        pm.Deterministic(
            "beta",
            b0 + (A_cov @ beta_std) * c[None, :],
            dims=("covariate", "trait"),
        )
        L = pt.linalg.cholesky(se)
        logdet_e = 2.0 * pt.sum(pt.log(pt.diagonal(L)))
        R = Y_rot - X_rot @ beta_std  # (r, T)
        # one T×T Cholesky factor per rotated row (batched): s_i Σg + Σe = L_i L_i'
        L_rows = pt.linalg.cholesky(s[:, None, None] * sg[None] + se[None])
        Z = pt.linalg.solve_triangular(L_rows, R[:, :, None], lower=True)
        logdet = 2.0 * pt.sum(pt.log(pt.diagonal(L_rows, axis1=1, axis2=2)))
        r = rot.Y1.shape[0]
        jacobian = n_samples * pt.sum(pt.log(c))  # Y = Xb + C·Ỹ, per sample
        loglik = -0.5 * (r * T * LOG_2PI + logdet + pt.sum(pt.sqr(Z))) - jacobian
        pm.Potential("Y_loglik", loglik)
        if rot.n_null > 0:
            F = pm.Data("null_factor", rot.null_factor)
            coef = pt.concatenate([-beta_std, pt.eye(T)], axis=0)  # (d + T, T)
            E = F @ coef
            quad = pt.sum(pt.sqr(pt.linalg.solve_triangular(L, E.T, lower=True)))
            pm.Potential("Y_null_space", -0.5 * (rot.n_null * (T * LOG_2PI + logdet_e) + quad))
    data = dataclasses.replace(prepared, y=Yp, y_name=", ".join(names))
    info = ModelInfo(
        family="multitrait",
        form="multitrait_lmm",
        parametrization="h2",
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rot.trait(0),
        extra={"traits": names, "rotated_traits": rot, "missing": missing},
    )
    return register_model(model, info)


def loo_terms(
    spectral: Any, Y: np.ndarray, X: np.ndarray, B: np.ndarray, sg: np.ndarray, se: np.ndarray
) -> np.ndarray:
    r"""The log-density log p(y_i | Y_−i) of each sample's T traits, for one (B, Σg, Σe).

    Parameters
    ----------
    spectral
        K's eigenbasis (U [shape: (N, r)], s [shape: (r,)]).
    Y, X
        Traits [shape: (N, T)] and covariates [shape: (N, d)], user units.
    B, sg, se
        Fixed effects [shape: (d, T)], Σg and Σe [shape: (T, T)].

    Returns
    -------
    ndarray
        [shape: (N,)].

    Notes
    -----
    With :math:`P = V^{-1}` and :math:`\rho = P\operatorname{vec}(Y - XB)` taken per sample,
    :math:`y_i \mid Y_{-i} \sim N(y_i - P_{ii}^{-1}\rho_i, P_{ii}^{-1})` (Sundararajan &
    Keerthi). In the eigenbasis :math:`P_{ii} = \sum_k U_{ik}^2 M_k + (1 - \sum_k U_{ik}^2)
    \Sigma_e^{-1}` with :math:`M_k = (s_k\Sigma_g + \Sigma_e)^{-1}`, and
    :math:`\rho_i = \sum_k U_{ik} M_k r^*_k + \Sigma_e^{-1}(r_i - \sum_k U_{ik} r^*_k)`.
    O(N·r·T²).
    """
    U, s = spectral.U, spectral.s
    R = Y - X @ B
    R1 = U.T @ R  # (r, T)
    M = np.linalg.inv(s[:, None, None] * sg[None] + se[None])  # (r, T, T)
    se_inv = np.linalg.inv(se)
    U2 = U**2
    P = np.einsum("ik,kab->iab", U2, M) + (1.0 - U2.sum(1))[:, None, None] * se_inv
    rho = U @ np.einsum("kab,kb->ka", M, R1) + (R - U @ R1) @ se_inv
    cov = np.linalg.inv(P)
    mean_err = np.einsum("iab,ib->ia", cov, rho)  # y_i − E[y_i | Y_−i]
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("ia,ia->i", mean_err, np.einsum("iab,ib->ia", P, mean_err))
    T = Y.shape[1]
    return -0.5 * (T * LOG_2PI + logdet + quad)


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """No random-effect draws yet; the exact leave-one-sample-out terms of all its traits.

    Returns
    -------
    new_vars : dict
        Empty.
    loglik : ndarray
        log p(y_i | Y_−i, θ) of each sample's T traits [shape: (draws, n_samples)]
        (:func:`loo_terms`).
    """
    B = flat_draws(posterior, "beta")
    sg, se = flat_draws(posterior, "Sigma_g"), flat_draws(posterior, "Sigma_e")
    n_draws = B.shape[0]
    data = info.data
    T, d = data.y.shape[1], data.X.shape[1]
    B = B.reshape(n_draws, d, T)
    sg, se = sg.reshape(n_draws, T, T), se.reshape(n_draws, T, T)
    loglik = np.stack(
        [loo_terms(info.spectral, data.y, data.X, B[k], sg[k], se[k]) for k in range(n_draws)]
    )
    return {}, loglik


#: The multi-trait LMM: ``kinship_model(Y, K, X)`` with T ≥ 2 trait columns.
MULTITRAIT = Family(
    name="multitrait",
    build=multitrait_lmm,
    postprocess=postprocess,
    summary=("h2",),
)
