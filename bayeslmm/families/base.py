"""What the PyMC model builders share: ModelInfo, the variance components, the null-space term.

Every model family (:mod:`bayeslmm.families.gaussian`, :mod:`bayeslmm.families.components`,
:mod:`bayeslmm.families.probit`, :mod:`bayeslmm.families.sparse`,
:mod:`bayeslmm.families.linear`) and :mod:`bayeslmm.inference.sampling` import these from
here, so that the builders that :func:`bayeslmm.kinship_model` dispatches to do not import
:mod:`bayeslmm.families.gaussian` back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.constants import LOG_2PI
from bayeslmm.data.samples import Prepared
from bayeslmm.families.priors import PriorLike, add_prior, describe
from bayeslmm.linalg.spectral import Rotated, Spectral


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """What :func:`bayeslmm.sample` needs besides the PyMC graph (attached as ``model.bayeslmm``).

    Attributes
    ----------
    form : str
        ``"kinship_lmm"`` or ``"snp_lmm"``.
    parametrization : str
        ``"h2"`` or ``"variance"``.
    priors : dict
        Prior of each free parameter, as given to the model.
    data : Prepared
        Aligned sample-space data.
    spectral : Spectral
        Decomposition of the normalized K.
    rotated : Rotated
        y and X in the eigenbasis.
    W : ndarray or None
        Normalized genotypes of the SNP form [shape: (n_samples, n_snps)].
    snps : list of str
        SNP names of the SNP form.
    marginalize : bool
        Whether v was integrated out (SNP form).
    extra : dict
        Form-specific data for ``postprocess`` (component spectra, locus columns, ...).
    postprocess : callable or None
        For forms other than the one-component Gaussian model:
        ``postprocess(posterior, info, rng, random_effects) -> (new_vars, loglik)`` where
        ``posterior`` is the sampler's xarray Dataset, ``new_vars`` maps a name to
        ``(values [shape: (n_draws_total, k)], dim, coords)`` to add to the posterior, and
        ``loglik`` is the sample-space pointwise LOO log-likelihood
        [shape: (n_draws_total, n_samples)]. None: :func:`bayeslmm.sample` uses the closed forms
        of the one-component model (u, v, :func:`~bayeslmm.inference.effects.loo_pointwise`).
    """

    form: str
    parametrization: str
    priors: dict[str, PriorLike]
    data: Prepared
    spectral: Spectral
    rotated: Rotated
    W: np.ndarray | None = None
    snps: list[str] = field(default_factory=list)
    marginalize: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    postprocess: Callable[..., tuple[dict[str, Any], np.ndarray]] | None = None

    def prior_strings(self) -> dict[str, str]:
        """One-line description of each prior."""
        return {name: describe(prior) for name, prior in self.priors.items()}


def variance_components(parametrization: str, priors: Mapping[str, PriorLike]) -> tuple:
    """Create h2, sigma_g2, sigma_e2 in the model on the context stack."""
    if parametrization == "h2":
        h2 = add_prior("h2", priors["h2"])
        sigma_p = add_prior("sigma_p", priors["sigma_p"])
        sigma_p2 = sigma_p**2
        sigma_g2 = pm.Deterministic("sigma_g2", h2 * sigma_p2)
        sigma_e2 = pm.Deterministic("sigma_e2", (1.0 - h2) * sigma_p2)
    else:
        sigma_g2 = add_prior("sigma_g2", priors["sigma_g2"])
        sigma_e2 = add_prior("sigma_e2", priors["sigma_e2"])
        h2 = pm.Deterministic("h2", sigma_g2 / (sigma_g2 + sigma_e2))
    return h2, sigma_g2, sigma_e2


def null_space_term(rot: Rotated, beta: pt.TensorVariable, sigma_e2: pt.TensorVariable) -> None:
    r"""Add the log-density of the residual in the null space of K (skipped when K is full rank).

    Notes
    -----
    With :math:`R = y - X\beta` and :math:`U_2` spanning the null space,
    :math:`\log p = -\tfrac12[(N-r)\log(2\pi\sigma_e^2) + \|U_2^\top R\|^2/\sigma_e^2]`
    and :math:`\|U_2^\top R\|^2 = \|F (-\beta, 1)^\top\|^2` with :math:`F^\top F = G` the
    triangular factor of the null-space residuals of ``[X, y]`` (``rot.null_factor``): a sum of
    squares, so a phenotype of 1e6 + noise loses no digits (the quadratic form in G would
    cancel terms of 1e12·N to leave one of N). Without a factor, the Gram form is used.
    """
    if rot.n_null == 0:
        return
    n_null = pm.Data("n_null", float(rot.n_null))
    coef = pt.concatenate([-beta, pt.ones((1,))])
    if rot.null_factor is not None:
        factor = pm.Data("null_factor", rot.null_factor)
        rss = pt.sum(pt.sqr(factor @ coef))
    else:
        gram = pm.Data("null_gram", rot.gram)
        rss = coef @ gram @ coef
    pm.Potential("y_null_space", -0.5 * (n_null * (LOG_2PI + pt.log(sigma_e2)) + rss / sigma_e2))


def model_coords(data: Prepared, spectral: Spectral) -> dict[str, Any]:
    """The coordinates ``covariate``, ``eigen`` and ``sample`` of a model in the eigenbasis."""
    return {
        "covariate": list(data.covariates),
        "eigen": np.arange(spectral.rank),
        "sample": list(data.samples),
    }
