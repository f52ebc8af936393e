"""The public builders of the LMM: :func:`kinship_model` and :func:`snp_model`.

They route their arguments to a model family of :data:`bayeslmm.families.registry.FAMILIES`
and return what its builder returns: one kinship → ``"gaussian"`` (or the family named by
``family=``, e.g. ``"probit"``), several → ``"components"``, fixed SNPs → ``"loci"``;
genotypes → ``"snp"``, or ``"sparse"`` for a sparse prior on v. The models themselves are in
the family modules (:mod:`bayeslmm.families.lmm` for the Gaussian ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.data.inputs import GRAM_NOT_YET
from bayeslmm.errors import InputError
from bayeslmm.families.multitrait import multitrait_snp_lmm
from bayeslmm.families.priors import PriorLike
from bayeslmm.families.registry import FAMILIES, selectable_families
from bayeslmm.families.sparse import SPARSE_PRIORS
from bayeslmm.relatedness.gram import Gram


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
    missing: str = "latent",
) -> pm.Model:
    r"""Build the kinship-form LMM y = Xβ + u + ε, u ~ N(0, σg² K), ε ~ N(0, σe² I).

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]: array or Series indexed by sample ID; or a table of
        T ≥ 2 traits [shape: (n_samples, n_traits)] (DataFrame of trait columns indexed by
        sample ID, or a 2-D array), the multi-trait model (see Notes).
    K
        Kinship [shape: (n_samples, n_samples)]: array, DataFrame indexed by sample ID,
        Kinship, or a precomputed Spectral; or a :class:`~bayeslmm.relatedness.gram.Gram`
        (:func:`bayeslmm.gram`) for K = WW'/M without an N×N matrix (large cohorts; the
        ``"gaussian"`` family only: see Notes).
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
        :func:`bayeslmm.families.probit.probit_model`. Any family of
        :data:`~bayeslmm.families.registry.FAMILIES` marked ``selectable`` may be named.
    fixed_snps
        Major loci as fixed effects beside u: a DataFrame of allele counts (samples × named
        SNPs, indexed by sample ID) or a tuple ``(Genotypes, [snp names])``. Each SNP becomes a
        covariate named by it (missing calls mean-imputed), and the model gets ``sigma_loci2``,
        ``h2_loci``, ``h2_background`` and ``h2_total``; ``h2`` stays the polygenic
        σg²/(σg² + σe²). See :mod:`bayeslmm.families.loci`.
    missing : {"latent", "drop"}
        Several traits only: samples missing some traits (NaN). ``"latent"`` (default) keeps
        every sample with at least one trait and makes each missing value a parameter
        (posterior variable ``Y_missing``, dim ``missing``, labels ``"<sample id>:<trait>"``,
        in the trait's units): exact, the posterior of the other parameters is that of the
        observed values alone. ``"drop"`` keeps the complete cases (a DataWarning counts those
        dropped). See :func:`bayeslmm.families.multitrait.multitrait_lmm`.

    Returns
    -------
    pymc.Model
        Variables ``beta`` (dim ``covariate``), ``h2``, ``sigma_g2``, ``sigma_e2`` (and
        ``sigma_p``); observed ``y`` in the eigenbasis (dim ``eigen``). Its sample-space data
        (for :func:`bayeslmm.sample`) is recorded beside it:
        :func:`bayeslmm.families.base.info_of`.

    Notes
    -----
    With :math:`K = U_1\operatorname{diag}(s)U_1^\top`, :math:`y_1 = U_1^\top y`,
    :math:`X_1 = U_1^\top X`:

    .. math::

        y_{1i} \sim N(X_{1i}\beta,\; \sigma_g^2 s_i + \sigma_e^2), \quad i = 1..r,

    plus the null-space term of the residual with variance σe² (DESIGN §1). One evaluation of
    the log-density and its gradient costs O(r·d).

    With ``y`` a table of T ≥ 2 trait columns (a DataFrame or a 2-D array) the model is the
    multi-trait LMM Y = XB + U + E, vec(U) ~ N(0, Σg ⊗ K), vec(E) ~ N(0, Σe ⊗ I) (family
    ``"multitrait"``, :func:`bayeslmm.families.multitrait.multitrait_lmm`): rotated rows
    N(B'x₁ᵢ, sᵢΣg + Σe), O(r·T³) per evaluation; posterior ``Sigma_g``, ``Sigma_e``, ``rg``,
    ``re`` (dims ``trait``, ``trait2``), ``h2``, ``sigma_p`` (dim ``trait``), ``beta`` (dims
    ``covariate``, ``trait``), and after :func:`bayeslmm.sample` ``u`` (dims ``sample``,
    ``trait``); :func:`bayeslmm.heritability` reports ``h2[A]``, ``rg[A,B]``, ``re[A,B]``,
    ``Sigma_g[A,B]``, ``Sigma_e[A,B]``. One kinship only, ``family="gaussian"``, no
    ``fixed_snps``, not a Gram. A one-column table is the one-trait model.

    With a Gram of M model SNPs the model is the same, built from the M×M eigenbasis and one
    streamed pass over the genotypes (y and X rotated through W'[X, y]); it equals the model
    of ``bl.kinship(genotypes, method=gram.method)`` to round-off. :func:`bayeslmm.sample`
    then streams the genotypes once more for u and the LOO terms, and above
    :data:`~bayeslmm.inference.effects.LARGE_COHORT_VALUES` draws × samples stores the
    posterior mean and SD of u (group ``random_effects``) and the PSIS-LOO computed by
    sample blocks (group ``loo``) instead of draws × samples arrays. A Gram takes
    ``family="gaussian"`` and no ``fixed_snps`` (an InputError says what to pass instead).
    """
    if _n_traits(y) >= 2:  # several traits: the multi-trait LMM
        if family != "gaussian" or fixed_snps is not None:
            raise InputError(
                "several traits take family='gaussian' and no fixed_snps so far; fit each trait "
                "alone for a binary trait or major loci (or add the SNP columns to X)."
            )
        return FAMILIES["multitrait"].build(
            y, K, X, priors, parametrization=parametrization, normalize=normalize, missing=missing
        )
    several = isinstance(K, (list, tuple, dict))
    if isinstance(K, Gram) and (family != "gaussian" or fixed_snps is not None):
        what = f"family={family!r}" if family != "gaussian" else "fixed_snps"
        raise InputError(f"kinship_model(y, gram, {what}): {GRAM_NOT_YET}")
    if fixed_snps is not None and (several or family != "gaussian"):
        raise InputError(
            "fixed_snps works with one kinship matrix and family='gaussian'; for several "
            "components or a binary trait, add the SNP columns to X instead."
        )
    options = {"parametrization": parametrization, "normalize": normalize}
    if several:  # several variance components (Gaussian only: it says so for another family)
        return FAMILIES["components"].build(y, K, X, priors, family=family, **options)
    if fixed_snps is not None:  # major loci: their allele counts join X as named covariates
        return FAMILIES["loci"].build(y, K, X, priors, fixed_snps=fixed_snps, **options)
    names = selectable_families()
    if family not in names:
        listed = " or ".join(repr(name) for name in names)
        raise InputError(f"family must be {listed}, got {family!r}.")
    return FAMILIES[family].build(y, K, X, priors, **options)


def _n_traits(y: Any) -> int:
    """How many trait columns ``y`` has: 1 for a vector or Series, its columns for a table."""
    if isinstance(y, pd.DataFrame):
        return y.shape[1]
    if isinstance(y, np.ndarray) and y.ndim == 2:
        return y.shape[1]
    return 1


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
    missing: str = "latent",
) -> pm.Model:
    r"""Build the SNP-effects LMM y = Xβ + Wv + ε, v ~ N(0, σv² I), σg² = M·σv², or sparse v.

    Parameters
    ----------
    y
        Phenotype [shape: (n_samples,)]; or a table of T ≥ 2 traits (see Notes).
    W
        Genotypes [shape: (n_samples, n_snps)]: array, DataFrame indexed by sample ID with SNP
        names as columns, or :class:`~bayeslmm.Genotypes`. Missing calls (NaN) are imputed by
        the SNP mean, with a DataWarning. Or a :class:`~bayeslmm.relatedness.gram.Gram`
        (:func:`bayeslmm.gram`, large cohorts): W are its standardized model SNPs, v has
        dimension M, and the model is built without N×N or N×M matrices
        (``marginalize=True`` and ``standardize=True`` only; see
        :func:`bayeslmm.families.lmm.gram_snp_lmm`).
    X
        Covariates; None means intercept only.
    priors
        As in :func:`kinship_model`; ``prior="mixture"`` also takes ``pi`` and ``rho_excess``,
        ``prior="horseshoe"`` only ``beta``, ``sigma_e2`` and ``sigma_b2`` (see
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
        v = σv·z, z ~ N(0, I). The sparse priors are BSLMM-like (GEMMA's BSLMM): sparse
        effects v plus a polygenic background u ~ N(0, σb² K), K = WW'/M, summed out in the
        eigenbasis. ``"mixture"``: a spike-and-slab per SNP, slab N(0, σL²) with probability
        π, spike N(0, ε²σb²/M) (BSLMM's point mass relaxed; the indicator summed out),
        σL² = ρσg²/(Mπ), σb² = (1 − ρ)σg²; ``"horseshoe"``: the regularized horseshoe of
        Piironen & Vehtari (2017), global scale from ``n_nonzero``. See
        :mod:`bayeslmm.families.sparse`. :func:`bayeslmm.sample` samples each by its exact
        MCMC by default (mixture ``sampler="bslmm"``, horseshoe ``"gibbs"``); by NUTS they
        need a higher ``target_accept`` (mixture 0.9, horseshoe 0.99: the default for them
        with ``sampler="nutpie"``). The horseshoe's sampler costs O(r²M) an iteration once
        M > 1.5 r (~1.8 s at r = 750, M = 10,000): at genome-wide M use the mixture.
    prior_options
        Sparse priors only. ``n_nonzero`` (p0, the expected number of non-zero effects,
        default 10 or M/2 when M < 20): the horseshoe's τ0 = p0/(M − p0)/√N, the mixture's
        π ~ Beta(10, 10(M − p0)/p0). Mixture: ``spike_sd`` (ε, the spike's SD as a fraction of
        the background's per-SNP SD √(σb²/M), default 0.3). Horseshoe: ``slab_scale``
        (default sd(y)), ``slab_df`` (default 4).
    missing : {"latent", "drop"}
        Several traits only: as in :func:`kinship_model`.

    Returns
    -------
    pymc.Model
        As :func:`kinship_model`, plus ``sigma_v2`` and, when ``marginalize=False``, ``z``,
        ``v`` (dim ``snp``) and ``pve``. Sparse priors: ``sigma_b2`` (the background's
        variance), ``pve`` (GEMMA BSLMM's PVE: V_g = E_u var(Wv + u), u averaged out given the
        draw, over V_g + σe²), ``pip`` (dim ``snp``) and ``pge`` (BSLMM's PGE: the share of
        V_g from the sparse effects). ``"mixture"`` adds ``pi``, ``rho_excess``, ``rho``
        (share of σg² in the slab), ``sigma_slab2``, ``sigma_spike2``, ``pip`` = P(slab | v_j,
        θ); ``sigma_g2``/``h2`` are the whole genetic variance, slab and background.
        ``"horseshoe"`` has ``sigma_e2``, ``sigma_b2``, ``lambda``, ``tau``, ``c2``, ``pip``
        (1 − shrinkage factor), and ``h2`` = ``pve``, ``sigma_g2`` = V_g as Deterministics.
        After :func:`bayeslmm.sample`: ``u`` (Wv + a background draw) and ``v_background``
        (dim ``snp``: the background's BLUP as SNP effects, which :func:`bayeslmm.predict`
        adds to v).

    Raises
    ------
    InputError
        If ``prior`` is not one of the three, or is sparse with ``marginalize=True``; several
        traits with ``marginalize=False``, a sparse prior or a Gram.

    Notes
    -----
    With :math:`W/\sqrt{M} = U S V^\top` (W normalized so that K has mean diagonal 1),
    :math:`W v = \sqrt{M}\, U S V^\top v`, so the explicit form's likelihood is
    :math:`y_1 \sim N(X_1\beta + B v, \sigma_e^2 I)` with :math:`B = U^\top W` [r×M], plus the
    null-space term: O(r·M) per evaluation instead of O(N·M). The sparse priors' pointwise
    log-likelihood (for LOO) is conditional on v (see :func:`bayeslmm.families.sparse.postprocess`).

    With ``y`` a table of T ≥ 2 trait columns the model is the multi-trait LMM
    Y = XB + WV + E with the rows of V independent N(0, Σg/M), i.e. the model of
    :func:`kinship_model` with K = WW'/M and several traits, built from the thin SVD of
    W/√M (:func:`bayeslmm.families.multitrait.multitrait_snp_lmm`; form
    ``"multitrait_snp_lmm"``), plus ``sigma_v2`` (dim ``trait``, Σg,tt/M) and the training
    standardization of the SNPs in ``constant_data``. The marginalized form only
    (``marginalize=True``, ``prior="normal"``); missing traits as in :func:`kinship_model`.
    """
    if _n_traits(y) >= 2:  # several traits: the multi-trait LMM with K = WW'/M
        if not marginalize or prior != "normal" or prior_options:
            raise InputError(
                "several traits take the marginalized SNP form only (marginalize=True, "
                "prior='normal'); fit each trait alone for explicit or sparse SNP effects."
            )
        return multitrait_snp_lmm(
            y,
            W,
            X,
            priors,
            parametrization=parametrization,
            standardize=standardize,
            missing=missing,
        )
    if prior not in SPARSE_PRIORS:
        raise InputError(f"prior must be one of {SPARSE_PRIORS}, got {prior!r}.")
    if marginalize and (prior != "normal" or prior_options):
        raise InputError(
            f"prior={prior!r} (and prior_options) need marginalize=False: only the normal prior "
            "on v has a closed-form marginal; a sparse prior keeps v as an explicit vector."
        )
    options = {
        "parametrization": parametrization,
        "standardize": standardize,
        "prior_options": prior_options,
    }
    if prior == "normal":
        return FAMILIES["snp"].build(y, W, X, priors, marginalize=marginalize, **options)
    return FAMILIES["sparse"].build(y, W, X, priors, prior=prior, **options)
