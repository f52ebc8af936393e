"""The Gaussian families with one variance component: the kinship form and the SNP form.

Both build the likelihood in the eigenbasis of K (DESIGN §1): the observed node is the rotated
phenotype ``y1 = U'y``, independent normals with variances σg²·s_i + σe², and the N − r
dimensional null space of K enters through a ``Potential``. No dense multivariate normal is
ever evaluated. The random effects u (and v) are not sampled: :func:`postprocess` draws them
afterwards from their Gaussian conditional posterior, with the sample-space LOO terms.

The public builders are :func:`bayeslmm.kinship_model` and :func:`bayeslmm.snp_model`
(:mod:`bayeslmm.families.gaussian`), which dispatch here through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.data.inputs import genotype_inputs, gram_inputs, kinship_inputs, rotate_gram
from bayeslmm.errors import InputError
from bayeslmm.families.base import (
    Family,
    ModelInfo,
    model_coords,
    null_space_term,
    register_model,
    variance_components,
)
from bayeslmm.families.priors import PriorLike, add_prior, resolve_priors
from bayeslmm.families.sparse import explicit_snp_model
from bayeslmm.inference import effects
from bayeslmm.inference.effects import (
    EffectSummary,
    draw_v,
    flat_draws,
    gram_u_and_loo,
    loo_pointwise,
    store_effects,
    summarize_draws,
    u_and_loo,
)
from bayeslmm.linalg.spectral import Rotated, rotate_data
from bayeslmm.relatedness.gram import Gram


def rotated_model(
    rot: Rotated,
    parametrization: str,
    priors: Mapping[str, PriorLike],
    coords: dict[str, Any],
) -> pm.Model:
    r"""The rotated Gaussian likelihood of y given β, σg², σe², with u integrated out.

    Parameters
    ----------
    rot
        y and X in the eigenbasis of the normalized K (or of WW'/M), from
        :func:`~bayeslmm.linalg.spectral.rotate_data` or, for a Gram,
        :func:`~bayeslmm.data.inputs.rotate_gram`: the model is the same either way.
    parametrization, priors
        From :func:`~bayeslmm.families.priors.resolve_priors`.
    coords
        Model coordinates (``covariate``, ``eigen``, ``sample``, and ``snp`` for the SNP form).

    Returns
    -------
    pymc.Model

    Notes
    -----
    With :math:`K = U_1\operatorname{diag}(s)U_1^\top`, :math:`y_1 = U_1^\top y`,
    :math:`X_1 = U_1^\top X`:

    .. math::

        y_{1i} \sim N(X_{1i}\beta,\; \sigma_g^2 s_i + \sigma_e^2), \quad i = 1..r,

    plus the null-space term of the residual with variance σe² (DESIGN §1). One evaluation of
    the log-density and its gradient costs O(r·d), and the model holds O(r·d) numbers: with a
    Gram, nothing of size N.
    """
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
    return model


def kinship_lmm(
    y: Any,
    K: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    parametrization: str | None = None,
    normalize: bool = True,
) -> pm.Model:
    """Build the kinship-form LMM (the ``"gaussian"`` family; see :func:`bayeslmm.kinship_model`).

    ``K`` may be a :class:`~bayeslmm.relatedness.gram.Gram` (:func:`bayeslmm.gram`): the model
    of K = WW'/M is then built from its M×M eigenbasis and one streamed pass over the
    genotypes (:func:`~bayeslmm.data.inputs.rotate_gram`), never from an N×N matrix.

    Returns
    -------
    pymc.Model
        Variables ``beta`` (dim ``covariate``), ``h2``, ``sigma_g2``, ``sigma_e2`` (and
        ``sigma_p``); observed ``y`` in the eigenbasis (dim ``eigen``). Form ``"kinship_lmm"``.
    """
    extra: dict[str, Any] = {}
    if isinstance(K, Gram):
        data, subset = gram_inputs(y, K, X, normalize=normalize)
        spectral, rot = subset.basis, rotate_gram(subset, data.y, data.X)
        extra["gram"] = subset
    else:
        data, spectral = kinship_inputs(y, K, X, normalize=normalize)
        rot = rotate_data(spectral, data.y, data.X)
    parametrization, priors = resolve_priors(priors, parametrization, data.y, data.X)
    model = rotated_model(rot, parametrization, priors, model_coords(data, spectral))
    info = ModelInfo(
        family="gaussian",
        form="kinship_lmm",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rot,
        extra=extra,
    )
    return register_model(model, info)


def snp_lmm(
    y: Any,
    W: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    marginalize: bool = True,
    parametrization: str | None = None,
    standardize: bool = True,
    prior_options: Mapping[str, float] | None = None,
) -> pm.Model:
    """Build the SNP-form LMM with normal v (the ``"snp"`` family; see :func:`bayeslmm.snp_model`).

    ``marginalize=True``: v integrated out through the thin SVD of W/√M (the rotated model of
    K = WW'/M, plus ``sigma_v2``); False: v explicit and non-centred
    (:func:`bayeslmm.families.sparse.explicit_snp_model` with the normal prior). Form
    ``"snp_lmm"`` either way. ``W`` may be a :class:`~bayeslmm.relatedness.gram.Gram`
    (``marginalize=True`` only): see :func:`gram_snp_lmm`.
    """
    if isinstance(W, Gram):
        return gram_snp_lmm(
            y,
            W,
            X,
            priors,
            marginalize=marginalize,
            parametrization=parametrization,
            standardize=standardize,
        )
    data, W_used, snps, spectral, transform = genotype_inputs(
        y, W, X, standardize_snps=standardize, with_transform=True
    )
    n_snps = W_used.shape[1]
    coords = {**model_coords(data, spectral), "snp": snps}
    extra: dict[str, Any] = {}
    if marginalize:
        parametrization, priors = resolve_priors(priors, parametrization, data.y, data.X)
        rot = rotate_data(spectral, data.y, data.X)
        model = rotated_model(rot, parametrization, priors, coords)
        with model:
            pm.Deterministic("sigma_v2", model["sigma_g2"] / n_snps)
    else:
        model, rot, parametrization, priors, extra = explicit_snp_model(
            data, W_used, spectral, coords, "normal", priors, parametrization, prior_options
        )
    # the training standardization, kept in constant_data for predicting new samples
    extra = {**extra, "constant_data": {name: (v, "snp", snps) for name, v in transform.items()}}
    info = ModelInfo(
        family="snp",
        form="snp_lmm",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rot,
        W=W_used,
        snps=snps,
        marginalize=marginalize,
        extra=extra,
    )
    return register_model(model, info)


def gram_snp_lmm(
    y: Any,
    gram: Gram,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    marginalize: bool = True,
    parametrization: str | None = None,
    standardize: bool = True,
) -> pm.Model:
    r"""The SNP-form LMM y = Xβ + Wv + ε from a Gram: v of dimension M, integrated out.

    Parameters
    ----------
    y, X, priors, parametrization
        As in :func:`bayeslmm.snp_model`.
    gram : Gram
        From :func:`bayeslmm.gram`; W are its standardized model SNPs (``gram.method``:
        centred and scaled for ``"standardized_empirical"``, centred only for
        ``"centered"``), divided by √c so that K = WW'/M has mean diagonal 1 over the samples
        analysed, as :func:`bayeslmm.snp_model` does with a genotype matrix.
    marginalize, standardize
        Must be True: the explicit v is sampled through U'W (the N × M genotypes), and the
        Gram has fixed how W is standardized.

    Returns
    -------
    pymc.Model
        As :func:`snp_lmm` with ``marginalize=True``: ``sigma_v2`` = σg²/M, dim ``snp`` of the
        Gram's SNP names; form ``"snp_lmm"``.

    Raises
    ------
    InputError
        ``marginalize=False`` or ``standardize=False``.

    Notes
    -----
    The likelihood is that of :func:`kinship_lmm` with K = WW'/M (the same rotated model). v
    is drawn afterwards in closed form from the Gram's eigenvectors V
    (:func:`~bayeslmm.inference.effects.draw_v` with B = U'W = √M diag(√s) V'); u = Wv
    from streamed blocks of W (:func:`postprocess`).
    """
    if not marginalize:
        raise InputError(
            "snp_model(y, gram, marginalize=False): the explicit SNP effects are sampled "
            "through U'W, which needs the N × M genotypes; pass the genotypes "
            "(snp_model(y, genotypes, marginalize=False)), or keep marginalize=True (v is then "
            "drawn in closed form from the Gram)."
        )
    if not standardize:
        raise InputError(
            f"snp_model(y, gram, standardize=False): the Gram's genotypes are standardized by "
            f"its method ({gram.method!r}) when it is built; build the Gram with "
            "method='centered' for centred genotypes, or pass the genotypes."
        )
    data, subset = gram_inputs(y, gram, X)
    rot = rotate_gram(subset, data.y, data.X)
    snps = [str(name) for name in gram.snps["snp"]]
    coords = {**model_coords(data, subset.basis), "snp": snps}
    parametrization, priors = resolve_priors(priors, parametrization, data.y, data.X)
    model = rotated_model(rot, parametrization, priors, coords)
    with model:
        pm.Deterministic("sigma_v2", model["sigma_g2"] / gram.n_snps)
    info = ModelInfo(
        family="snp",
        form="snp_lmm",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=subset.basis,
        rotated=rot,
        snps=snps,
        extra={"gram": subset},
    )
    return register_model(model, info)


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray | Any]:
    """The post-processing of both Gaussian families: u (and v) and the sample-space LOO terms.

    Returns
    -------
    new_vars : dict
        ``u`` (dim ``sample``) and, for the marginalized SNP form, ``v`` (dim ``snp``): draws
        from their Gaussian conditional given (β, σg², σe²) (conditional means when ``rng``
        is None); for the explicit SNP form, u = Wv of the sampled v. Empty unless
        ``random_effects`` and the draws fit in memory. Models built from a Gram:
        :func:`gram_postprocess`.
    loglik : ndarray
        log p(y_i | y_−i, θ) of the marginal Gaussian (DESIGN §1, "LOO in sample space")
        [shape: (draws, n_samples)].

    Notes
    -----
    u and the LOO terms come from one set of tables in log(σg²/σe²)
    (:func:`bayeslmm.inference.effects.u_and_loo`); v from
    :func:`bayeslmm.inference.effects.draw_v`, after u (the same random stream as before).
    """
    if "gram" in info.extra:
        return gram_postprocess(posterior, info, rng, random_effects)
    beta = flat_draws(posterior, "beta")
    sigma_g2, sigma_e2 = flat_draws(posterior, "sigma_g2"), flat_draws(posterior, "sigma_e2")
    rot, spectral, data = info.rotated, info.spectral, info.data
    n_draws = beta.shape[0]
    width = max(data.n, len(info.snps))
    snp_form = info.W is not None
    new: dict[str, Any] = {}
    loglik = None
    what = f"{n_draws} draws × {width} values"
    if store_effects(random_effects, n_draws * width, what, stacklevel=4):
        if snp_form and not info.marginalize:  # v was sampled: u = Wv
            loadings = spectral.U.T @ info.W
            u = (flat_draws(posterior, "v") @ loadings.T) @ spectral.U.T
        else:
            u, loglik = u_and_loo(spectral, data.y, data.X, beta, sigma_g2, sigma_e2, rng)
        new["u"] = (u, "sample", list(data.samples))
        if snp_form and info.marginalize:
            loadings = spectral.U.T @ info.W
            v = draw_v(spectral, loadings, rot.y1, rot.X1, beta, sigma_g2, sigma_e2, rng)
            new["v"] = (v, "snp", info.snps)
    if loglik is None:
        loglik = loo_pointwise(spectral, data.y, data.X, beta, sigma_g2, sigma_e2)
    return new, loglik


def gram_postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray | Any]:
    r"""u, v and the LOO terms of a Gaussian model built from a Gram, streamed by sample blocks.

    Parameters
    ----------
    posterior, info, rng, random_effects
        As for any family's post-processing (:class:`~bayeslmm.families.base.Family`).

    Returns
    -------
    new_vars : dict
        ``u`` (dim ``sample``) and, for the SNP form, ``v`` (dim ``snp``), as
        ``(draws, dim, coords)`` while draws × width stays within
        :data:`~bayeslmm.inference.effects.LARGE_COHORT_VALUES`; above, an
        :class:`~bayeslmm.inference.effects.EffectSummary` (posterior mean and SD; the
        ``random_effects`` group of the result). Empty unless ``random_effects``.
    loglik : ndarray or xarray.Dataset
        The LOO terms [shape: (draws, n_samples)] within that size; above it their PSIS-LOO,
        computed block by block (:class:`bayeslmm.inference.comparison.BlockedLoo`) and
        stored as the result's ``loo`` group.

    Notes
    -----
    One pass over the genotypes: each block of samples gives its rows of U (from W and the
    Gram's eigenvectors), then its u and LOO terms exactly as the N×N path computes them
    (:func:`~bayeslmm.inference.effects.gram_u_and_loo`); memory O(draws·(block + M)) on top
    of what is stored. v is drawn from B = U'W = √M diag(√s) V' (no pass over W): with
    :math:`W^\top W/(Mc) = V\operatorname{diag}(s)V^\top` and
    :math:`U = WV\operatorname{diag}(s)^{-1/2}/\sqrt{Mc}`, :math:`U^\top W/\sqrt c =
    \sqrt M\,\operatorname{diag}(\sqrt s)\,V^\top`.
    """
    beta = flat_draws(posterior, "beta")
    sigma_g2, sigma_e2 = flat_draws(posterior, "sigma_g2"), flat_draws(posterior, "sigma_e2")
    subset, rot, data = info.extra["gram"], info.rotated, info.data
    n_draws, n = beta.shape[0], data.n
    samples = list(data.samples)
    large = n_draws > 1 and n_draws * n > effects.LARGE_COHORT_VALUES
    u = np.empty((n_draws, n)) if random_effects and not large else None
    u_mean, u_sd = (np.empty(n), np.empty(n)) if random_effects and large else (None, None)
    if large:
        from bayeslmm.inference.comparison import BlockedLoo  # (loads arviz_stats)

        reduced = BlockedLoo(posterior, samples)
    else:
        loglik = np.empty((n_draws, n))
    blocks = gram_u_and_loo(
        subset, rot, data.y, data.X, beta, sigma_g2, sigma_e2, rng, with_u=random_effects
    )
    for rows, u_block, terms in blocks:
        if large:
            reduced.add(rows, terms)
            if random_effects:
                u_mean[rows], u_sd[rows] = u_block.mean(axis=0), u_block.std(axis=0, ddof=1)
        else:
            loglik[:, rows] = terms
            if u is not None:
                u[:, rows] = u_block
    new: dict[str, Any] = {}
    if random_effects:
        new["u"] = (
            EffectSummary(u_mean, u_sd, "sample", samples, n_draws)
            if large
            else (u, "sample", samples)
        )
        if info.family == "snp":
            basis = subset.basis
            loadings = np.sqrt(basis.n_snps * basis.s)[:, None] * basis.V.T
            v = draw_v(basis, loadings, rot.y1, rot.X1, beta, sigma_g2, sigma_e2, rng)
            summarize = n_draws > 1 and n_draws * v.shape[1] > effects.LARGE_COHORT_VALUES
            new["v"] = summarize_draws(v, "snp", info.snps) if summarize else (v, "snp", info.snps)
    return new, reduced.result() if large else loglik


#: The kinship-form LMM: ``kinship_model(y, K, X)``.
GAUSSIAN = Family(name="gaussian", build=kinship_lmm, postprocess=postprocess, selectable=True)

#: The SNP-form LMM with normal effects: ``snp_model(y, W, X, marginalize=...)``.
SNP = Family(
    name="snp",
    build=snp_lmm,
    postprocess=postprocess,
    summary=("h2", "sigma_g2", "sigma_e2", "sigma_v2", "pve"),
)
