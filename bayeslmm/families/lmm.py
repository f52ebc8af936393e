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
from bayeslmm.data.inputs import genotype_inputs, kinship_inputs
from bayeslmm.data.samples import Prepared
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
from bayeslmm.inference.effects import draw_v, flat_draws, loo_pointwise, store_effects, u_and_loo
from bayeslmm.linalg.spectral import Rotated, Spectral, rotate_data


def rotated_model(
    data: Prepared,
    spectral: Spectral,
    parametrization: str,
    priors: Mapping[str, PriorLike],
    coords: dict[str, Any],
) -> tuple[pm.Model, Rotated]:
    r"""The rotated Gaussian likelihood of y given β, σg², σe², with u integrated out.

    Parameters
    ----------
    data
        Aligned data.
    spectral
        Decomposition of the normalized K (or of WW'/M).
    parametrization, priors
        From :func:`~bayeslmm.families.priors.resolve_priors`.
    coords
        Model coordinates (``covariate``, ``eigen``, ``sample``, and ``snp`` for the SNP form).

    Returns
    -------
    model, rotated

    Notes
    -----
    With :math:`K = U_1\operatorname{diag}(s)U_1^\top`, :math:`y_1 = U_1^\top y`,
    :math:`X_1 = U_1^\top X`:

    .. math::

        y_{1i} \sim N(X_{1i}\beta,\; \sigma_g^2 s_i + \sigma_e^2), \quad i = 1..r,

    plus the null-space term of the residual with variance σe² (DESIGN §1). One evaluation of
    the log-density and its gradient costs O(r·d).
    """
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

    Returns
    -------
    pymc.Model
        Variables ``beta`` (dim ``covariate``), ``h2``, ``sigma_g2``, ``sigma_e2`` (and
        ``sigma_p``); observed ``y`` in the eigenbasis (dim ``eigen``). Form ``"kinship_lmm"``.
    """
    data, spectral = kinship_inputs(y, K, X, normalize=normalize)
    parametrization, priors = resolve_priors(priors, parametrization, data.y, data.X)
    model, rot = rotated_model(
        data, spectral, parametrization, priors, model_coords(data, spectral)
    )
    info = ModelInfo(
        family="gaussian",
        form="kinship_lmm",
        parametrization=parametrization,
        priors=priors,
        data=data,
        spectral=spectral,
        rotated=rot,
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
    ``"snp_lmm"`` either way.
    """
    data, W_used, snps, spectral = genotype_inputs(y, W, X, standardize_snps=standardize)
    n_snps = W_used.shape[1]
    coords = {**model_coords(data, spectral), "snp": snps}
    extra: dict[str, Any] = {}
    if marginalize:
        parametrization, priors = resolve_priors(priors, parametrization, data.y, data.X)
        model, rot = rotated_model(data, spectral, parametrization, priors, coords)
        with model:
            pm.Deterministic("sigma_v2", model["sigma_g2"] / n_snps)
    else:
        model, rot, parametrization, priors, extra = explicit_snp_model(
            data, W_used, spectral, coords, "normal", priors, parametrization, prior_options
        )
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


def postprocess(
    posterior: Any, info: ModelInfo, rng: np.random.Generator | None, random_effects: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """The post-processing of both Gaussian families: u (and v) and the sample-space LOO terms.

    Returns
    -------
    new_vars : dict
        ``u`` (dim ``sample``) and, for the marginalized SNP form, ``v`` (dim ``snp``): draws
        from their Gaussian conditional given (β, σg², σe²) (conditional means when ``rng``
        is None); for the explicit SNP form, u = Wv of the sampled v. Empty unless
        ``random_effects`` and the draws fit in memory.
    loglik : ndarray
        log p(y_i | y_−i, θ) of the marginal Gaussian (DESIGN §1, "LOO in sample space")
        [shape: (draws, n_samples)].

    Notes
    -----
    u and the LOO terms come from one set of tables in log(σg²/σe²)
    (:func:`bayeslmm.inference.effects.u_and_loo`); v from
    :func:`bayeslmm.inference.effects.draw_v`, after u (the same random stream as before).
    """
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


#: The kinship-form LMM: ``kinship_model(y, K, X)``.
GAUSSIAN = Family(name="gaussian", build=kinship_lmm, postprocess=postprocess, selectable=True)

#: The SNP-form LMM with normal effects: ``snp_model(y, W, X, marginalize=...)``.
SNP = Family(
    name="snp",
    build=snp_lmm,
    postprocess=postprocess,
    summary=("h2", "sigma_g2", "sigma_e2", "sigma_v2", "pve"),
)
