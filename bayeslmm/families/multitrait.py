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

import numba
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.constants import LOG_2PI
from bayeslmm.data.inputs import genotype_inputs, kinship_inputs
from bayeslmm.errors import InputError
from bayeslmm.estimation.multivariate.fit import check_traits, trait_table
from bayeslmm.estimation.multivariate.rotation import rotate_traits
from bayeslmm.families.base import Family, ModelInfo, model_coords, register_model
from bayeslmm.families.marginal import conditional_b, marginal_terms
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
from bayeslmm.families.rowwise import rowwise_gaussian_terms
from bayeslmm.inference.effects import (
    flat_draws,
    log_ratio,
    loo_grid,
    store_effects,
    u_and_loo,
    u_and_loo_gridded,
)
from bayeslmm.linalg.spectral import standardize
from bayeslmm.relatedness.gram import Gram

#: Values (samples × draws × T²) of one block of draws in post-processing (~32 MB of float64).
POSTPROCESS_VALUES = 4_000_000

#: What ``missing=`` takes: ``"latent"`` (the default: missing values latent) or ``"drop"``.
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


def _lkj(prior: PriorLike) -> bool:
    """Whether a correlation prior is PyMC's LKJCorr."""
    return isinstance(prior, Prior) and prior.distribution == "LKJCorr"


def _correlation_2(r: pt.TensorVariable) -> pt.TensorVariable:
    """The 2×2 correlation matrix [[1, r], [r, 1]], without a Cholesky factor's product.

    (Six fewer 2×2 matrix products per gradient, each a BLAS call.)
    """
    one = pt.constant(1.0)
    return pt.stack([pt.stack([one, r]), pt.stack([r, one])])


def _from_cholesky(L: pt.TensorVariable) -> pt.TensorVariable:
    """The correlation matrix LL' of LKJCorr's Cholesky factor."""
    return L @ L.T


def _unit_correlation(name: str, prior: Prior) -> pt.TensorVariable:
    r"""The Cholesky factor of a 2×2 correlation matrix under LKJCorr(n=2, η), through r's Beta.

    Parameters
    ----------
    name
        The free variable, :math:`(r + 1)/2` (``rg_unit``, ``re_unit``).
    prior
        ``LKJCorr(n=2, eta=η)``.

    Returns
    -------
    TensorVariable
        The correlation matrix [shape: (2, 2)].

    Notes
    -----
    For T = 2 the LKJ(η) density of the correlation r is :math:`\propto(1 - r^2)^{\eta - 1}`,
    i.e. :math:`(r + 1)/2 \sim \mathrm{Beta}(\eta, \eta)`: the same prior, sampled through the
    Beta's log-odds :math:`\log\frac{1 + r}{1 - r} = 2\operatorname{atanh} r`, where PyMC's
    LKJCorr transform samples :math:`r/\sqrt{1 - r^2}`, whose posterior has a heavy right tail
    when r nears 1 (skewness 4.2, excess kurtosis 25 at N = 2,000, rg ≈ 0.8; 2.3 and 8.7 in
    the log-odds). NUTS's leapfrog steps per draw there: 8.0–8.4 → 7.2 (see
    ``models/mv_lmm/MODEL.md``).
    """
    eta = prior.params.get("eta", 1.0)
    unit = pm.Beta(name, alpha=eta, beta=eta)
    return _correlation_2(2.0 * unit - 1.0)


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
        names from its columns) or an array aligned by position with K. NaN marks a missing
        value (see ``missing``).
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
        Samples with some traits missing. ``"latent"`` (default): every sample with at least
        one trait is kept and each missing value is a parameter of the model (``Y_missing``),
        so that the posterior of the other parameters is exactly that of the observed values
        alone (see Notes); samples with no trait are dropped (a DataWarning counts them).
        ``"drop"``: complete cases only (a DataWarning counts those dropped).

    Returns
    -------
    pymc.Model
        Free variables ``h2``, ``sigma_p`` (``trait``), ``rg_cholesky``, ``re_cholesky``
        (``trait``, ``trait2``; for T = 2 ``rg_unit``, ``re_unit``) and, with missing values
        kept, ``Y_missing_std`` (dim ``missing``, standardized units); Deterministics ``rg``,
        ``re`` (correlations) and, in the user's units, ``Sigma_g``, ``Sigma_e`` (``trait``,
        ``trait2``) and ``Y_missing`` (dim ``missing``, labels ``"<sample id>:<trait>"``).
        B is integrated out (see Notes): ``beta_std`` and ``beta`` (``covariate``, ``trait``)
        are drawn after sampling, in the result of :func:`bayeslmm.sample`; under a prior on
        ``beta_std`` other than Normal(0, σ) or Flat they are a free variable and a
        Deterministic of the model. Form ``"multitrait_lmm"``.

    Raises
    ------
    InputError
        A Gram, several kinships, a non-numeric, constant or collinear trait, fewer than two
        traits, a bad ``missing=``.

    Notes
    -----
    Each trait is standardized on X first, on the samples where it is observed
    (:func:`~bayeslmm.linalg.spectral.standardize`:
    :math:`\tilde y_t = (y_t - Xb_t)/c_t`, :math:`\tilde X = XA` over all samples), so the
    priors are free of units; with :math:`C = \operatorname{diag}(c)`,
    :math:`\Sigma_g = C\tilde\Sigma_g C`,
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

    Missing values (``missing="latent"``): with the m missing entries
    :math:`z = (\tilde y_{i_k t_k})_{k=1..m}` as parameters under a flat prior, the
    density is that of the completed data, :math:`p(Y_{obs}, z \mid \theta)`, whose integral
    over z is :math:`p(Y_{obs} \mid \theta)`: the posterior of θ is exactly that of the
    observed values, and z's is the Gaussian conditional of the missing values given the
    observed ones (and θ). Writing :math:`\tilde Y = \tilde Y_0 + \sum_k z_k e_{i_k}
    f_{t_k}^\top` (:math:`\tilde Y_0` with zeros at the missing entries), the rotated data
    are :math:`U_1^\top\tilde Y = U_1^\top\tilde Y_0 + U_1[i_\cdot]^\top Z`, Z [m×T] with z_k
    at (k, t_k): O(r·m·T) per evaluation and no N×N work; the null-space residuals
    take the indicator columns :math:`e_{i_k}` beside X and :math:`\tilde Y_0` in the
    triangular factor, :math:`E = F[-\tilde B; I_T; Z]`. ``Y_missing`` is
    :math:`x_{i_k}^\top b_{t_k} + c_{t_k}z_k`, the missing value in the user's units, and
    the constant :math:`-N\sum_t\log c_t` makes the sum the density of the completed Y in
    those units. The sampler works in z itself: coordinates
    scaled by each value's conditional SD given every other entry,
    :math:`[(\tilde V^{-1})_{kk}]^{-1/2}` (computable in O(r·m·T)), were tried and did worse
    (232 divergent transitions of 4,000 against 19 with z, N = 200–300, a fifth of each trait
    missing): the data fix the missing values' location more than Σe their scale.

    B integrated out: under a ``Normal(0, σ)`` (the default) or ``Flat`` prior on
    ``beta_std``, the density is the Gaussian integral over :math:`\tilde B` of the one above
    (:func:`~bayeslmm.families.marginal.marginal_terms`, over the rotated rows and the rows of
    the null space's triangular factor, which hold the missing values as :math:`G Z`), and
    post-processing draws B from its exact conditional given θ (and the draw's missing
    values). With latent missing values this removed the divergent transitions (N = 200, 80
    missing values, 4 × 1,000 draws: 0 at target_accept 0.8 and 0.95, against 255 and 44 with
    B sampled). Another prior on ``beta_std`` keeps B a free variable.
    """
    _check_options(parametrization, missing, K)
    values, names, index = trait_table(Y)
    prepared, spectral = kinship_inputs(
        _proxy(values, names, index, missing), K, X, normalize=normalize
    )
    return _build(values, names, prepared, spectral, priors, missing, form="multitrait_lmm")


def multitrait_snp_lmm(
    Y: Any,
    W: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    parametrization: str | None = None,
    standardize: bool = True,
    missing: str = "latent",
) -> pm.Model:
    r"""The multi-trait LMM in the SNP form, v marginalized (``snp_model(Y, W, X)``, T ≥ 2).

    Parameters
    ----------
    Y, X, priors, parametrization, missing
        As in :func:`multitrait_lmm`.
    W
        Genotypes [shape: (n_samples, n_snps)]: array, DataFrame indexed by sample ID with SNP
        names as columns, or :class:`~bayeslmm.Genotypes` (missing calls imputed by the SNP
        mean, with a DataWarning), as for :func:`bayeslmm.snp_model`.
    standardize
        Centre each SNP and scale it to unit variance.

    Returns
    -------
    pymc.Model
        As :func:`multitrait_lmm`, plus ``sigma_v2`` (dim ``trait``), the per-SNP effect
        variance :math:`\Sigma_{g,tt}/M` of each trait. Form ``"multitrait_snp_lmm"``.

    Raises
    ------
    InputError
        As :func:`multitrait_lmm`; a Gram (not built for several traits).

    Notes
    -----
    Y = XB + WV + E with the rows of V [M×T] independent N(0, Σg/M), so vec(WV) ~
    N(0, Σg ⊗ WW'/M): the model of :func:`multitrait_lmm` with K = WW'/M, built from the thin
    SVD of W/√M (its left singular vectors and squared singular values are K's eigenbasis;
    no N×N matrix). The training standardization of the SNPs is kept in ``constant_data``
    (``snp_mean``, ``snp_center``, ``snp_scale``), as for the one-trait SNP form.
    """
    if isinstance(W, Gram):
        raise InputError(
            "snp_model(Y, gram) with several traits is not built; pass the genotypes "
            "(snp_model(Y, W, X)) or the kinship (kinship_model(Y, bl.kinship(genotypes), X))."
        )
    _check_options(parametrization, missing, None)
    values, names, index = trait_table(Y)
    prepared, W_used, snps, spectral, transform = genotype_inputs(
        _proxy(values, names, index, missing),
        W,
        X,
        standardize_snps=standardize,
        with_transform=True,
    )
    model = _build(
        values,
        names,
        prepared,
        spectral,
        priors,
        missing,
        form="multitrait_snp_lmm",
        snps=snps,
        W=W_used,
        constant_data={name: (v, "snp", snps) for name, v in transform.items()},
    )
    with model:
        M = float(W_used.shape[1])
        pm.Deterministic("sigma_v2", pt.diagonal(model["Sigma_g"]) / M, dims="trait")
    return model


def _check_options(parametrization: str | None, missing: str, K: Any) -> None:
    """The options and kinship inputs the multi-trait model refuses (InputError)."""
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


def _proxy(values: np.ndarray, names: list[str], index: Any, missing: str) -> Any:
    """A stand-in phenotype for the sample alignment: the row number, NaN for a dropped row.

    Rows with no trait are dropped; with ``missing="drop"`` also those with some trait
    missing (the alignment's DataWarning counts them).
    """
    keep = ~np.isnan(values).all(axis=1) if missing == "latent" else ~np.isnan(values).any(1)
    rows = np.where(keep, np.arange(values.shape[0], dtype=float), np.nan)
    if missing == "latent":
        label = f"value of every trait in {names} (samples with one or more are kept)"
    else:
        label = f"value of a trait in {names} (complete cases only)"
    return rows if index is None else pd.Series(rows, index, name=label)


def _standardized(
    Y: np.ndarray, X: np.ndarray, names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each trait standardized on X over the samples where it is observed.

    Returns
    -------
    Y_std : ndarray
        :math:`(y_t - Xb_t)/c_t` [shape: (N, T)], NaN where Y is.
    X_std : ndarray
        X·A over all samples [shape: (N, d)].
    scale, offset, transform
        c [shape: (T,)], b [shape: (d, T)], A [shape: (d, d)].
    """
    observed = ~np.isnan(Y)
    complete = observed.all(axis=1)
    T, d = Y.shape[1], X.shape[1]
    for t, name in enumerate(names):
        rows = observed[:, t]
        if rows.sum() <= d:
            raise InputError(
                f"trait '{name}' is observed in {int(rows.sum())} samples, not more than the "
                f"{d} covariates; remove it or give it more observed values."
            )
        check_traits(Y[rows][:, [t]], X[rows], [name])
    if complete.sum() > d + T:  # the joint check needs more complete cases than unknowns
        check_traits(Y[complete], X[complete], names)
    stds = [standardize(Y[observed[:, t], t], X[observed[:, t]]) for t in range(T)]
    scale = np.array([s.scale for s in stds])
    offset = np.column_stack([s.offset for s in stds])  # (d, T)
    whole = standardize(np.zeros(X.shape[0]), X)  # X·A over every sample (A from X alone)
    Y_std = (Y - X @ offset) / scale[None, :]
    return Y_std, whole.X, scale, offset, whole.transform


def _build(
    values: np.ndarray,
    names: list[str],
    prepared: Any,
    spectral: Any,
    priors: Mapping[str, PriorLike] | str | None,
    missing: str,
    *,
    form: str,
    snps: list[str] | None = None,
    W: np.ndarray | None = None,
    constant_data: dict[str, Any] | None = None,
) -> pm.Model:
    """The model of :func:`multitrait_lmm` on aligned data (the kinship and SNP forms)."""
    Yp = values[prepared.y.astype(np.int64)]
    T, n = len(names), Yp.shape[0]
    Y_std, X_std, scale, offset, transform = _standardized(Yp, prepared.X, names)
    observed = ~np.isnan(Yp)
    miss_rows, miss_traits = np.nonzero(~observed)  # row-major: by sample, then trait
    n_miss = miss_rows.size
    indicators = np.zeros((n, n_miss))
    indicators[miss_rows, np.arange(n_miss)] = 1.0
    # the missing entries' indicator columns are rotated beside the traits (filled with 0)
    rot_all = rotate_traits(
        spectral, np.column_stack([np.where(observed, Y_std, 0.0), indicators]), X_std
    )
    d = rot_all.X1.shape[1]
    rot = dataclasses.replace(
        rot_all, Y1=rot_all.Y1[:, :T], null_factor=rot_all.null_factor[:, : d + T]
    )
    priors = resolve(priors, multitrait_parameters(T, d), model="the multi-trait LMM")
    coords = {**model_coords(prepared, spectral), "trait": names, "trait2": names}
    labels = [
        f"{prepared.samples[i]}:{names[t]}" for i, t in zip(miss_rows, miss_traits, strict=True)
    ]
    if n_miss:
        coords["missing"] = labels
    # B integrated out (a Normal(0, σ) or flat prior on it): 1/σ², or None
    precision = b_precision(priors["beta_std"])
    rows = None if precision is None else _marginal_rows(rot, d, T)
    # how the rows depend on the missing values: Y_rows + missing_rows @ Z
    missing_rows = None
    if rows is not None and n_miss:
        parts = [rot_all.Y1[:, T:]]
        if rot.n_null > 0:
            parts.append(rot_all.null_factor[:, d + T :])
        missing_rows = np.ascontiguousarray(np.concatenate(parts))
    with pm.Model(coords=coords) as model:
        if rows is None:
            Y_rot = pm.Data("Y_rot", rot.Y1, dims=("eigen", "trait"))
            X_rot = pm.Data("X_rot", rot.X1, dims=("eigen", "covariate"))
            s = pm.Data("s", rot.s, dims="eigen")
            beta_std = add_prior("beta_std", priors["beta_std"], dims=("covariate", "trait"))
        h2 = add_prior("h2", priors["h2"], dims="trait")
        sigma_p = add_prior("sigma_p", priors["sigma_p"], dims="trait")
        corr_g, corr_e = (
            _unit_correlation(f"{which}_unit", priors[f"{which}_cholesky"])
            if T == 2 and _lkj(priors[f"{which}_cholesky"])
            else _from_cholesky(
                _add(f"{which}_cholesky", priors[f"{which}_cholesky"], ("trait", "trait2"))
            )
            for which in ("rg", "re")
        )
        rg = pm.Deterministic("rg", corr_g, dims=("trait", "trait2"))
        re = pm.Deterministic("re", corr_e, dims=("trait", "trait2"))
        sd_g = pt.sqrt(h2) * sigma_p
        sd_e = pt.sqrt(1.0 - h2) * sigma_p
        sg = sd_g[:, None] * rg * sd_g[None, :]
        se = sd_e[:, None] * re * sd_e[None, :]
        # every data-dependent number is a pm.Data: a cached compilation is refitted to new data
        c = pm.Data("trait_scale", scale, dims="trait")
        # (only data the graph uses: nutpie's own compilation refuses others at a refit)
        b0 = (
            pm.Data("trait_offset", offset, dims=("covariate", "trait"))
            if n_miss or rows is None
            else None
        )
        n_samples = pm.Data("n_samples", float(n))
        pm.Deterministic("Sigma_g", c[:, None] * sg * c[None, :], dims=("trait", "trait2"))
        pm.Deterministic("Sigma_e", c[:, None] * se * c[None, :], dims=("trait", "trait2"))
        if rows is None:  # else drawn in post-processing, from B | θ, Y (conditional_b)
            A_cov = pm.Data("covariate_transform", transform)
            pm.Deterministic(
                "beta",
                b0 + (A_cov @ beta_std) * c[None, :],
                dims=("covariate", "trait"),
            )
        if n_miss:
            one_hot = pm.Data("missing_trait", np.eye(T)[miss_traits], dims=("missing", "trait"))
            X_miss = pm.Data("missing_covariates", prepared.X[miss_rows])
            z = pm.Flat("Y_missing_std", dims="missing")  # standardized units
            Z = z[:, None] * one_hot  # z_k at (k, t_k): the missing entries as an (m, T) matrix
            if rows is None:  # (else in missing_rows, below)
                U_miss = pm.Data("missing_rotated", rot_all.Y1[:, T:], dims=("eigen", "missing"))
                Y_rot = Y_rot + U_miss @ Z
            user = pt.sum((X_miss @ b0) * one_hot, axis=1) + (one_hot @ c) * z
            pm.Deterministic("Y_missing", user, dims="missing")
        r = rot.Y1.shape[0]
        jacobian = n_samples * pt.sum(pt.log(c))  # Y = Xb + C·Ỹ, per sample
        if rows is not None:
            value = marginal_terms(
                pm.Data("s_rows", rows[0]),
                pm.Data("logdet_rows", rows[1]),
                sg,
                se,
                pm.Data("Y_rows", rows[2])
                + (0.0 if missing_rows is None else pm.Data("missing_rows", missing_rows) @ Z),
                pm.Data("X_rows", rows[3]),
                pm.Data("beta_precision", precision),
            )
            pm.Potential("Y_loglik", value - 0.5 * r * T * LOG_2PI - jacobian)
            if rot.n_null > 0:  # the null space's log-determinant (its rows are in `rows`)
                n_null = pm.Data("n_null", float(rot.n_null))
                logdet_e = _logdet(se, T)
                pm.Potential("Y_null_space", -0.5 * n_null * (T * LOG_2PI + logdet_e))
        else:
            R = Y_rot - X_rot @ beta_std  # (r, T)
            # one T×T Cholesky factor per rotated row, s_i Σg + Σe = L_i L_i', in one
            # compiled pass over the rows (batched linalg costs ~100× more per gradient)
            logdet, quad_rows = rowwise_gaussian_terms(s, sg, se, R, n_traits=T)
            loglik = -0.5 * (r * T * LOG_2PI + logdet + quad_rows) - jacobian
            pm.Potential("Y_loglik", loglik)
        if rows is None and rot.n_null > 0:
            F = pm.Data("null_factor", rot_all.null_factor)
            n_null = pm.Data("n_null", float(rot.n_null))  # data, not a constant of the graph
            parts = [-beta_std, pt.eye(T)] + ([Z] if n_miss else [])
            coef = pt.concatenate(parts, axis=0)  # (d + T + m, T)
            E = F @ coef
            if T == 2:  # closed form: a LAPACK Cholesky and solves cost ~12 µs per gradient
                det_e = se[0, 0] * se[1, 1] - pt.sqr(se[1, 0])
                logdet_e = pt.log(det_e)
                S = E.T @ E
                quad = (se[1, 1] * S[0, 0] - 2.0 * se[1, 0] * S[1, 0] + se[0, 0] * S[1, 1]) / det_e
            else:
                L = pt.linalg.cholesky(se)
                logdet_e = 2.0 * pt.sum(pt.log(pt.diagonal(L)))
                quad = pt.sum(pt.sqr(pt.linalg.solve_triangular(L, E.T, lower=True)))
            pm.Potential("Y_null_space", -0.5 * (n_null * (T * LOG_2PI + logdet_e) + quad))
    data = dataclasses.replace(prepared, y=Yp, y_name=", ".join(names))
    extra: dict[str, Any] = {
        "traits": names,
        "rotated_traits": rot,
        "missing": missing,
        "missing_entries": (miss_rows, miss_traits, labels),
        # nutpie's diagonal mass matrix. Its low-rank one took fewer leapfrog steps (5.5 against
        # 7.1 per draw at N = 2,000) but gave divergent transitions with B integrated out: 3-7
        # per 4,000 draws on notebook 07's complete cases (N = 615), 0 with the diagonal
        "adaptation": "diag",
        # standardization of the traits and covariates (scale c, offset b, transform A)
        "standardization": (scale, offset, transform),
    }
    if rows is not None:
        extra["marginal_b"] = (precision, rows, missing_rows)
    if constant_data:
        extra["constant_data"] = constant_data
    info = ModelInfo(
        family="multitrait",
        form=form,
        parametrization="h2",
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rot.trait(0),
        W=W,
        snps=list(snps or []),
        extra=extra,
    )
    return register_model(model, info)


def b_precision(prior: PriorLike) -> float | None:
    """1/σ² of a ``Normal(0, σ)`` prior on ``beta_std`` (0 for ``Flat``); None for any other.

    These are the priors under which the multi-trait model integrates B out
    (:func:`~bayeslmm.families.marginal.marginal_terms`); under another, B is sampled.
    """
    if not isinstance(prior, Prior):
        return None
    if prior.distribution == "Flat":
        return 0.0
    params = prior.params
    if prior.distribution != "Normal" or set(params) - {"mu", "sigma"}:
        return None
    mu, sigma = params.get("mu", 0.0), params.get("sigma", 1.0)
    if np.ndim(mu) or np.ndim(sigma) or mu != 0 or not sigma > 0:
        return None
    return 1.0 / float(sigma) ** 2


def _marginal_rows(
    rot: Any, d: int, T: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows of :func:`~bayeslmm.families.marginal.marginal_terms`: (s, w, Y, X).

    The r rotated rows (s_i, w = 1), then the rows of the null space's triangular factor
    (s = 0, w = 0: Σe alone; their log-determinant is counted as (N − r)·log|Σe|).
    """
    s, w, Y, X = [rot.s], [np.ones(rot.s.size)], [rot.Y1], [rot.X1]
    if rot.n_null > 0:
        F = rot.null_factor
        q = F.shape[0]
        s.append(np.zeros(q))
        w.append(np.zeros(q))
        Y.append(F[:, d : d + T])
        X.append(F[:, :d])
    return tuple(np.ascontiguousarray(np.concatenate(v)) for v in (s, w, Y, X))


def _logdet(se: pt.TensorVariable, T: int) -> pt.TensorVariable:
    """log|Σe| (closed form for T = 2: a LAPACK Cholesky costs ~12 µs per gradient)."""
    if T == 2:
        return pt.log(se[0, 0] * se[1, 1] - pt.sqr(se[1, 0]))
    return 2.0 * pt.sum(pt.log(pt.diagonal(pt.linalg.cholesky(se))))


def loo_terms(
    spectral: Any,
    Y: np.ndarray,
    X: np.ndarray,
    B: np.ndarray,
    sg: np.ndarray,
    se: np.ndarray,
    observed: np.ndarray | None = None,
) -> np.ndarray:
    r"""The log-density log p(y_i | Y_−i) of each sample's observed traits, for one (B, Σg, Σe).

    Parameters
    ----------
    spectral
        K's eigenbasis (U [shape: (N, r)], s [shape: (r,)]).
    Y, X
        Traits [shape: (N, T)] (missing values filled in, e.g. by a posterior draw) and
        covariates [shape: (N, d)], user units.
    B, sg, se
        Fixed effects [shape: (d, T)], Σg and Σe [shape: (T, T)].
    observed
        Which entries of Y were observed [shape: (N, T)]; None: all.

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
    A sample with missing traits contributes the marginal of its observed ones (the sub-vector
    of the mean and the sub-block of the covariance), given the others' completed values.
    O(N·r·T²).
    """
    return loo_terms_block(spectral, Y[None], X, B[None], sg[None], se[None], observed)[0]


def loo_terms_block(
    spectral: Any,
    Y: np.ndarray,
    X: np.ndarray,
    B: np.ndarray,
    sg: np.ndarray,
    se: np.ndarray,
    observed: np.ndarray | None = None,
) -> np.ndarray:
    r""":func:`loo_terms` of a block of draws at once, through matrix products.

    Parameters
    ----------
    spectral
        K's eigenbasis (U [shape: (N, r)], s [shape: (r,)]).
    Y
        Traits of each draw (missing values filled in) [shape: (b, N, T)].
    X
        Covariates [shape: (N, d)].
    B, sg, se
        Per draw [shape: (b, d, T)], [shape: (b, T, T)], [shape: (b, T, T)].
    observed
        Which entries of Y were observed [shape: (N, T)]; None: all.

    Returns
    -------
    ndarray
        [shape: (b, N)].

    Notes
    -----
    The sums over the eigenvectors are products with U and U∘U of the block's stacked
    (r, b·T) and (r, b·T²) arrays (GEMMs), not one einsum per draw: O(N·r·b·T²) flops at BLAS
    speed.
    """
    U, s = spectral.U, spectral.s
    n, r = U.shape
    b, _, T = Y.shape
    R = Y - np.matmul(X, B)  # (b, N, T)
    Rm = np.ascontiguousarray(R.transpose(1, 0, 2)).reshape(n, b * T)
    R1 = (U.T @ Rm).reshape(r, b, T)
    M = np.linalg.inv(s[:, None, None, None] * sg[None] + se[None])  # (r, b, T, T)
    se_inv = np.linalg.inv(se)  # (b, T, T)
    U2 = U**2
    P = (U2 @ M.reshape(r, b * T * T)).reshape(n, b, T, T)
    P += (1.0 - U2.sum(1))[:, None, None, None] * se_inv[None]
    MR1 = np.einsum("kbxy,kby->kbx", M, R1).reshape(r, b * T)
    UR1 = (U @ R1.reshape(r, b * T)).reshape(n, b, T)
    rho = (U @ MR1).reshape(n, b, T)
    rho += np.einsum("nbx,bxy->nby", R.transpose(1, 0, 2) - UR1, se_inv)
    cov = np.linalg.inv(P)
    mean_err = np.einsum("nbxy,nby->nbx", cov, rho)  # y_i − E[y_i | Y_−i]
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("nbx,nbx->nb", mean_err, np.einsum("nbxy,nby->nbx", P, mean_err))
    out = -0.5 * (T * LOG_2PI + logdet + quad)  # (N, b)
    if observed is not None and not observed.all():
        patterns, which = np.unique(observed, axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            if pattern.all():
                continue
            rows = np.flatnonzero(which.ravel() == p)
            o = np.flatnonzero(pattern)
            sub = cov[rows][:, :, o][:, :, :, o]
            err = mean_err[rows][:, :, o]
            _, logdet_o = np.linalg.slogdet(sub)
            quad_o = np.einsum("nbx,nbx->nb", err, np.linalg.solve(sub, err[..., None])[..., 0])
            out[rows] = -0.5 * (o.size * LOG_2PI + logdet_o + quad_o)
    return out.T


def u_conditional(
    spectral: Any, R: np.ndarray, sg: np.ndarray, se: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""The conditional of U given Y, B, Σg, Σe, in K's eigenbasis.

    Parameters
    ----------
    spectral
        K's eigenbasis (U₁ [shape: (N, r)], s [shape: (r,)]).
    R
        Residuals Y − XB [shape: (N, T)].
    sg, se
        Σg and Σe [shape: (T, T)].

    Returns
    -------
    mean : ndarray
        E[U | ·] [shape: (N, T)].
    root : ndarray
        Square roots :math:`C_k^{1/2}` of the rows' conditional covariances
        [shape: (r, T, T)]: a draw is :math:`U_1(A + [C_k^{1/2}\epsilon_k]_k)`.

    Notes
    -----
    U = U₁A lies in the range of K, the rows :math:`a_k \sim N(0, G_k)`,
    :math:`G_k = s_k\Sigma_g`, independent, and the rotated residuals are
    :math:`r^*_k = a_k + e_k`, :math:`e_k \sim N(0, \Sigma_e)` (the null space carries no
    U). So, independently for each k,

    .. math::

        a_k \mid \cdot \sim N\big(G_k(G_k + \Sigma_e)^{-1}r^*_k,\;
        C_k = G_k(G_k + \Sigma_e)^{-1}\Sigma_e\big),

    which is the dense conditional :math:`N((\Sigma_g\otimes K)V^{-1}\operatorname{vec}(R),
    \Sigma_g\otimes K - (\Sigma_g\otimes K)V^{-1}(\Sigma_g\otimes K))` in the eigenbasis
    (O(N·r·T) per draw).
    """
    mean, root = u_conditional_block(spectral, R[None], sg[None], se[None])
    return mean[0], root[:, 0]


def u_conditional_block(
    spectral: Any, R: np.ndarray, sg: np.ndarray, se: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`u_conditional` of a block of draws (matrix products over the block).

    Parameters
    ----------
    spectral
        K's eigenbasis.
    R
        Residuals of each draw [shape: (b, N, T)].
    sg, se
        Per draw [shape: (b, T, T)].

    Returns
    -------
    mean : ndarray
        [shape: (b, N, T)].
    root : ndarray
        [shape: (r, b, T, T)].
    """
    U, s = spectral.U, spectral.s
    n, r = U.shape
    b, _, T = R.shape
    Rm = np.ascontiguousarray(R.transpose(1, 0, 2)).reshape(n, b * T)
    R1 = (U.T @ Rm).reshape(r, b, T)
    G = s[:, None, None, None] * sg[None]  # (r, b, T, T)
    gain = G @ np.linalg.inv(G + se[None])
    mean = (U @ np.einsum("kbxy,kby->kbx", gain, R1).reshape(r, b * T)).reshape(n, b, T)
    C = gain @ se[None]
    lam, Q = np.linalg.eigh(0.5 * (C + np.swapaxes(C, -1, -2)))
    root = Q * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]
    return mean.transpose(1, 0, 2), root


def decorrelate(sg: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The joint diagonalization of Σg and Σe, per draw: W'ΣeW = I, W'ΣgW = diag(λ).

    Parameters
    ----------
    sg, se
        Σg and Σe of each draw [shape: (b, T, T)], Σe positive definite.

    Returns
    -------
    lam : ndarray
        λ ≥ 0 [shape: (b, T)].
    W : ndarray
        [shape: (b, T, T)].

    Notes
    -----
    With :math:`\Sigma_e = LL^\top` and
    :math:`L^{-1}\Sigma_gL^{-\top} = Q\operatorname{diag}(\lambda)Q^\top`,
    :math:`W = L^{-\top}Q`. The columns of YW are then independent given (B, Σg, Σe):
    :math:`Yw_t \sim N(XBw_t, \lambda_tK + I)` (the GEMMA mvLMM transformation). O(T³) per
    draw.
    """
    L = np.linalg.cholesky(se)
    eye = np.broadcast_to(np.eye(se.shape[-1]), se.shape)
    L_inv = np.linalg.solve(L, eye)
    M = L_inv @ sg @ np.swapaxes(L_inv, -1, -2)
    lam, Q = np.linalg.eigh(0.5 * (M + np.swapaxes(M, -1, -2)))
    return np.clip(lam, 0.0, None), np.swapaxes(L_inv, -1, -2) @ Q


def u_and_loo_complete(
    spectral: Any,
    Y: np.ndarray,
    X: np.ndarray,
    B: np.ndarray,
    sg: np.ndarray,
    se: np.ndarray,
    rng: np.random.Generator | None,
    *,
    with_u: bool = True,
    out: tuple[np.ndarray | None, np.ndarray] | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    r"""U draws and LOO terms of complete traits, as T·b univariate problems.

    Parameters
    ----------
    spectral
        K's eigenbasis (U [shape: (N, r)], s [shape: (r,)]).
    Y, X
        Traits [shape: (N, T)] with no missing value, covariates [shape: (N, d)], user units.
    B, sg, se
        Per draw [shape: (b, d, T)], [shape: (b, T, T)], [shape: (b, T, T)].
    rng
        For the u draws; None gives their conditional means.
    with_u
        False: the LOO terms only (the first value returned is None).
    out
        Arrays to write u and the LOO terms into (shapes as returned; u's may be None with
        ``with_u=False``), e.g. a block of the caller's result: no new memory for them.

    Returns
    -------
    u : ndarray or None
        Draws of U | Y, B, Σg, Σe [shape: (b, N, T)], as :func:`u_conditional`.
    loglik : ndarray
        log p(y_i | Y_−i, θ) [shape: (b, N)], as :func:`loo_terms_block`.

    Notes
    -----
    With W of :func:`decorrelate`, :math:`W^\top\Sigma_eW = I` and
    :math:`W^\top\Sigma_gW = \operatorname{diag}(\lambda)`, the transformed traits
    :math:`\tilde y_t = Yw_t` are independent univariate LMMs,
    :math:`\tilde y_t \sim N(XBw_t, \lambda_tK + I)`, and so are their random effects
    :math:`\tilde u_t = Uw_t`: U | · is :math:`[\tilde u_t \mid \cdot]_t W^{-1}`.
    With :math:`H_t = (\lambda_tK + I)^{-1}` the precision of the transformed traits, the
    T×T block of sample i of the precision of Y is :math:`P_{ii} = W\operatorname{diag}_t(H_{t,ii})
    W^\top` and :math:`\rho_i = (P\operatorname{vec}R)_i = W g_i`,
    :math:`g_{ti} = (H_t\tilde r_t)_i`. The leave-one-out density
    :math:`N(y_i;\, y_i - P_{ii}^{-1}\rho_i,\, P_{ii}^{-1})` is then

    .. math::

        \log p(y_i \mid Y_{-i}) = \sum_t\Big[-\tfrac12\log 2\pi + \tfrac12\log H_{t,ii}
        - \tfrac12\frac{g_{ti}^2}{H_{t,ii}}\Big] - \tfrac12\log|\Sigma_e|,

    since :math:`\rho_i^\top P_{ii}^{-1}\rho_i = \sum_t g_{ti}^2/H_{t,ii}` and
    :math:`\log|P_{ii}^{-1}| = -\sum_t\log H_{t,ii} - 2\log|W|`,
    :math:`|W|^{-2} = |\Sigma_e|`: the sum of T univariate LOO terms (σg² = λ_t, σe² = 1).
    Each is computed as in :func:`~bayeslmm.inference.effects.u_and_loo` with
    :math:`\tilde y_t - XBw_t = 0 - [Y, X][-w_t; Bw_t]`, its interpolation tables in
    :math:`\log\lambda` shared by every draw and trait: O(N·(d + T)) per draw and trait
    after the tables, instead of O(N·r·T²). The tables are built once for all the draws
    (:func:`~bayeslmm.inference.effects.loo_grid`) and applied to blocks of draws through two
    buffers of :data:`COMPLETE_BUFFER_VALUES` numbers
    (:func:`~bayeslmm.inference.effects.u_and_loo_gridded`), each block then combined into u
    and the LOO terms: beyond the result, memory for the tables and the buffers only.
    """
    b, n, T = B.shape[0], Y.shape[0], Y.shape[1]
    lam, W = decorrelate(sg, se)
    # pseudo-draws (draw, t): coefficients of [Y, X] giving −(Yw_t − XBw_t)
    coef = np.concatenate([-W, B @ W], axis=1)  # (b, T + d, T)
    coef = np.swapaxes(coef, 1, 2).reshape(b * T, -1)
    lam, unit = lam.reshape(-1), np.ones(b * T)
    columns = np.column_stack([Y, X])
    _, logdet_e = np.linalg.slogdet(se)
    W_inv = np.linalg.inv(W)
    u_out, loglik = out if out is not None else (None, np.empty((b, n)))
    u = None if not with_u else (np.empty((b, n, T)) if u_out is None else u_out)
    grid = loo_grid(spectral, columns, log_ratio(spectral, lam, unit))
    if grid is None:  # few draws: the exact formulas, all draws at once
        u_t, loglik_t = u_and_loo(spectral, None, columns, coef, lam, unit, rng, with_u=with_u)
        _combine(u_t, loglik_t, logdet_e, W_inv, u, loglik)
        return u, loglik
    # one grid for every draw, applied block by block with the same two buffers: no
    # (T·draws) × N temporaries (their first writes cost as much as the arithmetic)
    size = max(1, min(b, COMPLETE_BUFFER_VALUES // (n * T)))  # draws per block
    u_buffer = np.empty((size * T, n)) if with_u else None
    loglik_buffer = np.empty((size * T, n))
    for start in range(0, b, size):
        k = slice(start, min(start + size, b))
        p = slice(k.start * T, k.stop * T)
        m = p.stop - p.start
        u_t = None if u_buffer is None else u_buffer[:m]
        u_and_loo_gridded(
            spectral, grid, -coef[p], lam[p], unit[p], rng, u=u_t, loglik=loglik_buffer[:m]
        )
        _combine(
            u_t, loglik_buffer[:m], logdet_e[k], W_inv[k], None if u is None else u[k], loglik[k]
        )
    return u, loglik


def _combine(
    u_t: np.ndarray | None,
    loglik_t: np.ndarray,
    logdet_e: np.ndarray,
    W_inv: np.ndarray,
    u: np.ndarray | None,
    loglik: np.ndarray,
) -> None:
    """The traits' u and LOO terms of b draws from their T·b pseudo-draws, into u and loglik.

    ``u_t``, ``loglik_t`` [shape: (b·T, N)], rows (draw, t); ``logdet_e`` log|Σe| [shape:
    (b,)]; ``W_inv`` [shape: (b, T, T)]; ``u`` [shape: (b, N, T)] (None: no u); ``loglik``
    [shape: (b, N)]. (See :func:`u_and_loo_complete`.)
    """
    b, n = loglik.shape
    T = loglik_t.shape[0] // b
    parts = loglik_t.reshape(b, T, n)
    np.subtract(parts[:, 0], 0.5 * logdet_e[:, None], out=loglik)
    for t in range(1, T):  # (a sum over the middle axis is ~10× slower)
        loglik += parts[:, t]
    if u is not None:
        _untransform(u_t.reshape(b, T, n), W_inv, u)


@numba.njit(cache=True)
def _untransform(u_t: np.ndarray, W_inv: np.ndarray, u: np.ndarray) -> None:
    """U = Ũ W⁻¹ per draw into u [shape: (b, N, T)], from Ũ' [(b, T, N)] and W⁻¹ [(b, T, T)].

    One pass writing U in order (numpy's batched matmul of b (N, T)·(T, T) products, or
    strided column updates, took 3–4× as long at b = 4,000, N = 2,000).
    """
    b, T, n = u_t.shape
    for k in range(b):
        for i in range(n):
            for j in range(T):
                acc = 0.0
                for t in range(T):
                    acc += u_t[k, t, i] * W_inv[k, t, j]
                u[k, i, j] = acc


def _completed(info: ModelInfo, posterior: Any, n_draws: int) -> np.ndarray:
    """The training traits with each draw's missing values [shape: (draws, N, T)]."""
    Y = np.broadcast_to(info.data.y, (n_draws, *info.data.y.shape)).copy()
    rows, traits, _ = info.extra.get("missing_entries", ((), (), ()))
    if len(rows):
        Y[:, rows, traits] = flat_draws(posterior, "Y_missing")
    return Y


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """Draws of U and the exact leave-one-sample-out terms of its observed traits.

    Returns
    -------
    new_vars : dict
        ``u`` (dims ``sample``, ``trait``): a draw from U | Y, B, Σg, Σe for each posterior
        draw (the conditional mean where ``rng`` is None; :func:`u_conditional`), Y completed
        by the draw's ``Y_missing``; absent unless ``random_effects`` and the draws fit in
        memory (:func:`~bayeslmm.inference.effects.store_effects`).
    loglik : ndarray
        log p(y_i,obs | Y_−i, θ) of each sample's observed traits [shape: (draws, n_samples)]
        (:func:`loo_terms`; with missing values, given the draw's values of the others').

    Notes
    -----
    Complete traits go through :func:`u_and_loo_complete` (T univariate problems per draw,
    interpolation tables shared by the draws); with missing values, the T×T blocks of
    :func:`loo_terms_block` and :func:`u_conditional_block` (the completed Y differs per draw).
    """
    sg, se = flat_draws(posterior, "Sigma_g"), flat_draws(posterior, "Sigma_e")
    n_draws = sg.shape[0]
    data = info.data
    n, T, d = data.y.shape[0], data.y.shape[1], data.X.shape[1]
    sg, se = sg.reshape(n_draws, T, T), se.reshape(n_draws, T, T)
    coefficients: dict[str, Any] = {}
    if "marginal_b" in info.extra:  # B was integrated out: drawn here from B | θ, Y
        B, coefficients = _draw_b(info, sg, se, rng, posterior)
    else:
        B = flat_draws(posterior, "beta").reshape(n_draws, d, T)
    observed = ~np.isnan(data.y)
    what = f"{n_draws} draws × {n} samples × {T} traits"
    keep_u = store_effects(random_effects, n_draws * n * T, what, stacklevel=4)
    if observed.all():  # complete traits: T univariate problems per draw (exact)
        new, loglik = _postprocess_complete(info, data.y, B, sg, se, rng, keep_u)
        return {**coefficients, **new}, loglik
    Y = _completed(info, posterior, n_draws)
    u = np.empty((n_draws, n, T)) if keep_u else None
    loglik = np.empty((n_draws, n))
    U = info.spectral.U
    r = U.shape[1]
    size = max(1, POSTPROCESS_VALUES // (max(n, r) * T * T))  # draws per block
    for start in range(0, n_draws, size):
        k = slice(start, min(start + size, n_draws))
        loglik[k] = loo_terms_block(info.spectral, Y[k], data.X, B[k], sg[k], se[k], observed)
        if u is not None:
            R = Y[k] - np.matmul(data.X, B[k])
            mean, root = u_conditional_block(info.spectral, R, sg[k], se[k])
            if rng is not None:
                b = R.shape[0]
                eps = rng.standard_normal((r, b, T))
                noise = np.einsum("kbxy,kby->kbx", root, eps).reshape(r, b * T)
                mean = mean + (U @ noise).reshape(n, b, T).transpose(1, 0, 2)
            u[k] = mean
    new: dict[str, Any] = dict(coefficients)
    if u is not None:
        new["u"] = (u, ("sample", "trait"), (list(data.samples), list(info.extra["traits"])))
    return new, loglik


def _draw_b(
    info: ModelInfo,
    sg: np.ndarray,
    se: np.ndarray,
    rng: np.random.Generator | None,
    posterior: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    r"""B of each draw from B | θ, Y, where the model integrated it out.

    Returns
    -------
    B : ndarray
        In the user's units [shape: (draws, d, T)].
    new_vars : dict
        ``beta_std`` and ``beta`` (dims ``covariate``, ``trait``), as the model with B
        sampled has them.

    Notes
    -----
    Σg and Σe of the posterior are in the user's units, :math:`C\tilde\Sigma C`; the
    conditional (:func:`~bayeslmm.families.marginal.conditional_b`) is in the standardized
    ones, and :math:`B = [b_t] + A\tilde BC` as in :func:`multitrait_lmm`.
    """
    precision, (s, w, Y, X), missing_rows = info.extra["marginal_b"]
    scale, offset, transform = info.extra["standardization"]
    unscale = 1.0 / np.outer(scale, scale)
    if missing_rows is not None:  # each draw's rows hold its missing values: + G·Z
        _, traits, _ = info.extra["missing_entries"]
        z = flat_draws(posterior, "Y_missing_std")  # (draws, m)
        Z = z[:, :, None] * np.eye(Y.shape[1])[traits][None]  # (draws, m, T)
        Y = Y[None] + np.matmul(missing_rows, Z)
    B_std = conditional_b(s, w, sg * unscale, se * unscale, Y, X, precision, rng)
    B = offset[None] + (transform @ B_std) * scale[None, None, :]
    dims = ("covariate", "trait")
    coords = (list(info.data.covariates), list(info.extra["traits"]))
    return B, {"beta_std": (B_std, dims, coords), "beta": (B, dims, coords)}


def _postprocess_complete(
    info: ModelInfo,
    Y: np.ndarray,
    B: np.ndarray,
    sg: np.ndarray,
    se: np.ndarray,
    rng: np.random.Generator | None,
    keep_u: bool,
) -> tuple[dict[str, Any], np.ndarray]:
    """:func:`postprocess` of complete traits by :func:`u_and_loo_complete`."""
    n_draws = B.shape[0]
    n, T = Y.shape
    u = np.empty((n_draws, n, T)) if keep_u else None
    loglik = np.empty((n_draws, n))
    u_and_loo_complete(  # written into u and loglik
        info.spectral, Y, info.data.X, B, sg, se, rng, with_u=keep_u, out=(u, loglik)
    )
    new: dict[str, Any] = {}
    if u is not None:
        new["u"] = (u, ("sample", "trait"), (list(info.data.samples), list(info.extra["traits"])))
    return new, loglik


#: Pseudo-draws × samples of each of the two buffers of :func:`u_and_loo_complete` (blocks of
#: draws share one set of interpolation tables; ~16 MB of float64 per buffer).
COMPLETE_BUFFER_VALUES = 2_000_000

#: The multi-trait LMM: ``kinship_model(Y, K, X)`` with T ≥ 2 trait columns.
MULTITRAIT = Family(
    name="multitrait",
    build=multitrait_lmm,
    postprocess=postprocess,
    summary=("h2", "rg", "re", "Sigma_g", "Sigma_e"),
)
