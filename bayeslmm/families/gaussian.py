"""PyMC model builders: the kinship form and the SNP-effects form of the LMM.

Both build the likelihood in the eigenbasis of K (DESIGN §1): the observed node is the rotated
phenotype ``y1 = U'y``, independent normals with variances σg²·s_i + σe², and the N − r
dimensional null space of K enters through a ``Potential``. No dense multivariate normal is
ever evaluated. The random effects u (and v) are not sampled: :func:`bayeslmm.sample` draws
them afterwards from their Gaussian conditional posterior.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.data.inputs import genotype_inputs, kinship_inputs
from bayeslmm.data.samples import Prepared
from bayeslmm.errors import InputError
from bayeslmm.families.base import ModelInfo, model_coords, null_space_term, variance_components
from bayeslmm.families.priors import PriorLike, add_prior, resolve_priors
from bayeslmm.linalg.spectral import Rotated, Spectral, rotate_data


def _rotated_model(
    data: Prepared,
    spectral: Spectral,
    parametrization: str,
    priors: Mapping[str, PriorLike],
    coords: dict[str, Any],
) -> tuple[pm.Model, Rotated]:
    rot = rotate_data(spectral, data.y, data.X)
    with pm.Model(coords=coords) as model:
        y_rot = pm.Data("y_rot", rot.y1, dims="eigen")
        X_rot = pm.Data("X_rot", rot.X1, dims=("eigen", "covariate"))
        s = pm.Data("s", rot.s, dims="eigen")
        beta = add_prior("beta", priors["beta"], dims="covariate")
        h2, sigma_g2, sigma_e2 = variance_components(parametrization, priors)
        pm.Normal(
            "y",
            mu=X_rot @ beta,
            sigma=pt.sqrt(sigma_g2 * s + sigma_e2),
            observed=y_rot,
            dims="eigen",
        )
        null_space_term(rot, beta, sigma_e2)
    return model, rot


def kinship_model(
    y: Any,
    K: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    parametrization: str | None = None,
    normalize: bool = True,
    family: str = "gaussian",
    fixed_snps: Any = None,
) -> pm.Model:
    r"""Build the kinship-form LMM y = Xβ + u + ε, u ~ N(0, σg² K), ε ~ N(0, σe² I).

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]: array or Series indexed by sample ID.
    K
        Kinship [shape: (n_samples, n_samples)]: array, DataFrame indexed by sample ID,
        Kinship, or a precomputed Spectral.
    X
        Covariates [shape: (n_samples, n_covariates)]; None means intercept only. An intercept
        column is added unless X already spans the constant.
    priors
        Dict of :class:`~bayeslmm.Prior` (or PyMC ``.dist()``) by parameter name, merged into
        the defaults; ``"flat"`` gives flat β and Jeffreys σp² (the exact 1-D check).
    parametrization : {"h2", "variance"}, optional
        ``"h2"`` (default): h² ~ Beta(1, 1), σp ~ HalfStudentT(3, sd(y)); ``"variance"``: priors
        on σg² and σe² directly (inferred when ``priors`` names ``sigma_g2``/``sigma_e2``).
    normalize
        Divide K by its mean diagonal (recorded as ``kinship_scale``).
    family : {"gaussian", "probit"}
        ``"probit"``: a binary (0/1) phenotype through a liability threshold model, see
        :func:`bayeslmm.families.probit.probit_model`.
    fixed_snps
        Major loci as fixed effects beside u: a DataFrame of allele counts (samples × named
        SNPs, indexed by sample ID) or a tuple ``(Genotypes, [snp names])``. Each SNP becomes a
        covariate named by it (missing calls mean-imputed), and the model gets ``sigma_loci2``,
        ``h2_loci``, ``h2_background`` and ``h2_total``; ``h2`` stays the polygenic
        σg²/(σg² + σe²). See :mod:`bayeslmm.families.loci`.

    Returns
    -------
    pymc.Model
        Variables ``beta`` (dim ``covariate``), ``h2``, ``sigma_g2``, ``sigma_e2`` (and
        ``sigma_p``); observed ``y`` in the eigenbasis (dim ``eigen``). ``model.bayeslmm``
        holds the sample-space data for :func:`bayeslmm.sample`.

    Notes
    -----
    With :math:`K = U_1\operatorname{diag}(s)U_1^\top`, :math:`y_1 = U_1^\top y`,
    :math:`X_1 = U_1^\top X`:

    .. math::

        y_{1i} \sim N(X_{1i}\beta,\; \sigma_g^2 s_i + \sigma_e^2), \quad i = 1..r,

    plus the null-space term of the residual with variance σe² (DESIGN §1). One evaluation of
    the log-density and its gradient costs O(r·d).
    """
    if fixed_snps is not None and (isinstance(K, (list, tuple, dict)) or family != "gaussian"):
        raise InputError(
            "fixed_snps works with one kinship matrix and family='gaussian'; for several "
            "components or a binary trait, add the SNP columns to X instead."
        )
    if isinstance(K, (list, tuple, dict)):  # several variance components
        from bayeslmm.families.components import multi_kinship_model

        return multi_kinship_model(
            y, K, X, priors, parametrization=parametrization, normalize=normalize, family=family
        )
    if family == "probit":
        from bayeslmm.families.probit import probit_model

        return probit_model(y, K, X, priors, parametrization=parametrization, normalize=normalize)
    if family != "gaussian":
        raise InputError(f"family must be 'gaussian' or 'probit', got {family!r}.")
    if fixed_snps is not None:  # major loci: their allele counts join X as named covariates
        from bayeslmm.families.loci import add_loci, finish_loci_model

        X, loci = add_loci(y, K, X, fixed_snps)
    data, spectral = kinship_inputs(y, K, X, normalize=normalize)
    parametrization, priors = resolve_priors(priors, parametrization, data.y, data.X)
    model, rot = _rotated_model(
        data, spectral, parametrization, priors, model_coords(data, spectral)
    )
    model.bayeslmm = ModelInfo(
        form="kinship_lmm",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rot,
    )
    if fixed_snps is not None:
        finish_loci_model(model, loci)
    return model


def snp_model(
    y: Any,
    W: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    marginalize: bool = True,
    *,
    parametrization: str | None = None,
    standardize: bool = True,
    prior: str = "normal",
    prior_options: Mapping[str, float] | None = None,
) -> pm.Model:
    r"""Build the SNP-effects LMM y = Xβ + Wv + ε, v ~ N(0, σv² I), σg² = M·σv², or sparse v.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)].
    W
        Genotypes [shape: (n_samples, n_snps)]: array, DataFrame indexed by sample ID with SNP
        names as columns, or :class:`~bayeslmm.Genotypes`. Missing calls (NaN) are imputed by
        the SNP mean, with a DataWarning.
    X
        Covariates; None means intercept only.
    priors
        As in :func:`kinship_model`; ``prior="mixture"`` also takes ``pi`` and ``rho_excess``,
        ``prior="horseshoe"`` only ``beta`` and ``sigma_e2`` (see
        :func:`bayeslmm.families.sparse.resolve_sparse_priors`).
    marginalize
        True (default): v integrated out through the thin SVD of W/√M, identical to
        :func:`kinship_model` with K = WW'/M. False: v an explicit M-vector under ``prior``.
    parametrization
        As in :func:`kinship_model` (not for the horseshoe, whose h² is the realized PVE).
    standardize
        Centre each SNP and scale it to unit variance (then K = WW'/M is GEMMA's ``-gk 2``).
    prior : {"normal", "mixture", "horseshoe"}
        Prior of the explicit v (``marginalize=False`` only): ``"normal"``, non-centred
        v = σv·z, z ~ N(0, I); ``"mixture"``, two normals per SNP, large with probability π
        (BOLT-LMM, BayesC-like; the indicator summed out); ``"horseshoe"``, the regularized
        horseshoe of Piironen & Vehtari (2017). See :mod:`bayeslmm.families.sparse`.
    prior_options
        Horseshoe only: ``n_nonzero`` (expected number of non-zero effects, default 10 or M/2
        when M < 20),
        ``slab_scale`` (default sd(y)), ``slab_df`` (default 4).

    Returns
    -------
    pymc.Model
        As :func:`kinship_model`, plus ``sigma_v2`` and, when ``marginalize=False``, ``z``,
        ``v`` (dim ``snp``) and ``pve`` (the realized var(Wv)/(var(Wv) + σe²)). ``"mixture"``
        adds ``pi``, ``rho`` (share of σg² in the large component), ``sigma_large2``,
        ``sigma_small2``, ``pip`` (dim ``snp``: probability of the large component) and ``pge``
        (share of var(Wv) from large effects); ``"horseshoe"`` has ``sigma_e2``, ``lambda``,
        ``tau``, ``c2``, ``pip`` (1 − shrinkage factor), ``pge``, and ``h2`` = ``pve``,
        ``sigma_g2`` = var(Wv) as Deterministics.

    Raises
    ------
    InputError
        If ``prior`` is not one of the three, or is sparse with ``marginalize=True``.

    Notes
    -----
    With :math:`W/\sqrt{M} = U S V^\top` (W normalized so that K has mean diagonal 1),
    :math:`W v = \sqrt{M}\, U S V^\top v`, so the explicit form's likelihood is
    :math:`y_1 \sim N(X_1\beta + B v, \sigma_e^2 I)` with :math:`B = U^\top W` [r×M], plus the
    null-space term: O(r·M) per evaluation instead of O(N·M). The sparse priors' pointwise
    log-likelihood (for LOO) is conditional on v (see :func:`bayeslmm.families.sparse.postprocess`).
    """
    from bayeslmm.families import sparse

    if prior not in sparse.SPARSE_PRIORS:
        raise InputError(f"prior must be one of {sparse.SPARSE_PRIORS}, got {prior!r}.")
    if marginalize and (prior != "normal" or prior_options):
        raise InputError(
            f"prior={prior!r} (and prior_options) need marginalize=False: only the normal prior "
            "on v has a closed-form marginal; a sparse prior keeps v as an explicit vector."
        )
    data, W_used, snps, spectral = genotype_inputs(y, W, X, standardize_snps=standardize)
    n_snps = W_used.shape[1]
    coords = {**model_coords(data, spectral), "snp": snps}
    extra: dict[str, Any] = {}
    if marginalize:
        parametrization, priors = resolve_priors(priors, parametrization, data.y, data.X)
        model, rot = _rotated_model(data, spectral, parametrization, priors, coords)
        with model:
            pm.Deterministic("sigma_v2", model["sigma_g2"] / n_snps)
    else:
        model, rot, parametrization, priors, extra = sparse.explicit_snp_model(
            data, W_used, spectral, coords, prior, priors, parametrization, prior_options
        )
    model.bayeslmm = ModelInfo(
        form="snp_lmm" if prior == "normal" else f"snp_lmm_{prior}",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rot,
        W=W_used,
        snps=snps,
        marginalize=marginalize,
        extra=extra,
        postprocess=None if prior == "normal" else sparse.postprocess,
    )
    return model
