"""What the model families share: Family, ModelInfo, the record of built models, model parts.

A model family is a :class:`Family`: a name, a builder that returns a ``pm.Model``, the
post-processing that :func:`bayeslmm.sample` hands the posterior to (random-effect draws and
the sample-space log-likelihood), and the variables that :func:`bayeslmm.heritability` reports.
The families are listed in :data:`bayeslmm.families.registry.FAMILIES`.

A builder records what it knows about the model it built (:class:`ModelInfo`) with
:func:`register_model`, in a table keyed weakly by the model; :func:`info_of` reads it back.
Nothing is set on the ``pm.Model`` itself.

The family modules (:mod:`~bayeslmm.families.lmm`, :mod:`~bayeslmm.families.components`,
:mod:`~bayeslmm.families.probit`, :mod:`~bayeslmm.families.sparse`,
:mod:`~bayeslmm.families.loci`, :mod:`~bayeslmm.families.linear`) import these from here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.constants import LOG_2PI
from bayeslmm.data.samples import Prepared
from bayeslmm.errors import InputError
from bayeslmm.families.priors import PriorLike, add_prior, describe
from bayeslmm.linalg.spectral import LowRank, Rotated, Spectral


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """What :func:`bayeslmm.sample` needs besides the PyMC graph (see :func:`info_of`).

    Attributes
    ----------
    family : str
        The name of the model's family in :data:`~bayeslmm.families.registry.FAMILIES`.
    form : str
        The model, as recorded in the results' provenance (``attrs["model"]``):
        ``"kinship_lmm"``, ``"snp_lmm"``, ``"probit_lmm"``, ...
    parametrization : str
        ``"h2"`` or ``"variance"`` (a family may name its own, e.g. ``"sigma_e"``).
    priors : dict
        Prior of each free parameter, as given to the model.
    data : Prepared
        Aligned sample-space data.
    spectral : Spectral or LowRank
        Decomposition of the normalized K (a ``LowRank`` for a model built from a Gram, with
        the :class:`~bayeslmm.relatedness.gram.GramSubset` in ``extra["gram"]``).
    rotated : Rotated
        y and X in the eigenbasis.
    W : ndarray or None
        Normalized genotypes of the SNP forms [shape: (n_samples, n_snps)].
    snps : list of str
        SNP names of the SNP forms.
    marginalize : bool
        Whether v was integrated out (SNP forms).
    extra : dict
        Family-specific data for its post-processing (component spectra, locus columns, the
        Gram of a large-cohort model, ...).
    """

    family: str
    form: str
    parametrization: str
    priors: dict[str, PriorLike]
    data: Prepared
    spectral: Spectral | LowRank
    rotated: Rotated
    W: np.ndarray | None = None
    snps: list[str] = field(default_factory=list)
    marginalize: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def prior_strings(self) -> dict[str, str]:
        """One-line description of each prior."""
        return {name: describe(prior) for name, prior in self.priors.items()}


#: ``postprocess(posterior, info, rng, random_effects) -> (new_vars, loglik)``, see :class:`Family`.
Postprocess = Callable[
    [Any, ModelInfo, np.random.Generator | None, bool], tuple[dict[str, Any], np.ndarray]
]


@dataclass(frozen=True, eq=False)
class Family:
    """A model family: how a model is built, post-processed after sampling and summarized.

    Attributes
    ----------
    name : str
        Its key in :data:`~bayeslmm.families.registry.FAMILIES` (and ``ModelInfo.family``).
    build : callable
        The builder: returns a ``pm.Model`` after recording its :class:`ModelInfo` (with this
        ``name``) by :func:`register_model`. The arguments are the family's own.
    postprocess : callable
        ``postprocess(posterior, info, rng, random_effects) -> (new_vars, loglik)``:
        ``posterior`` is the sampler's xarray Dataset (dims ``chain``, ``draw``, ...),
        ``info`` the model's :class:`ModelInfo`, ``rng`` a Generator (None at a MAP point: use
        conditional means), ``random_effects`` whether to return random-effect draws.
        ``new_vars`` maps a name to ``(values [shape: (n_draws_total, k)], dim, coords)``, added
        to the posterior (or ``(values [shape: (n_draws_total, k1, k2)], (dim1, dim2),
        [coords1, coords2])``, e.g. u of the multi-trait LMM, dims ``sample``, ``trait``);
        ``loglik`` is the pointwise log-likelihood of each sample
        [shape: (n_draws_total, n_samples)], the ``log_likelihood`` group that LOO uses.
        Large cohorts (the Gaussian families built from a Gram): a ``new_vars`` value may be an
        :class:`~bayeslmm.inference.effects.EffectSummary` (posterior mean and SD, group
        ``random_effects``) and ``loglik`` an xarray Dataset, the PSIS-LOO already reduced by
        sample blocks (group ``loo``; :class:`bayeslmm.inference.comparison.BlockedLoo`).
    summary : tuple of str
        The posterior variables that :func:`bayeslmm.heritability` reports, in order (those
        the model lacks are skipped; one with a dimension gives one row per coordinate).
    selectable : bool
        Whether ``kinship_model(y, K, X, priors, family=name)`` builds it; its ``build`` then
        takes ``(y, K, X, priors, *, parametrization, normalize)``.
    """

    name: str
    build: Callable[..., pm.Model]
    postprocess: Postprocess
    summary: tuple[str, ...] = ("h2", "sigma_g2", "sigma_e2")
    selectable: bool = False

    def summary_rows(self, idata: Any) -> dict[str, np.ndarray]:
        """The draws of each row of :func:`bayeslmm.heritability`, by row label.

        Parameters
        ----------
        idata : xarray.DataTree
            A result of :func:`bayeslmm.sample` or :func:`bayeslmm.map_estimate`.

        Returns
        -------
        dict
            Label → draws [shape: (chains, draws)]; see :func:`summary_rows`.
        """
        return summary_rows(idata["posterior"], self.summary)


def summary_rows(posterior: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The draws of the variables ``names`` that ``posterior`` has, one row per scalar.

    A variable without extra dimensions is one row named by it; one with a single extra
    dimension gives a row ``name[label]`` per coordinate (``h2_component[K1]``). Variables with
    more dimensions, and those the posterior lacks, give none.

    Parameters
    ----------
    posterior : xarray.Dataset or DataTree node
        With dims ``chain`` and ``draw``.
    names : sequence of str
        The variables, in the order of the rows.

    Returns
    -------
    dict
        Row label → draws [shape: (chains, draws)].
    """
    rows: dict[str, np.ndarray] = {}
    for name in names:
        if name not in posterior:
            continue
        var = posterior[name]
        extra_dims = [d for d in var.dims if d not in ("chain", "draw")]
        if not extra_dims:
            rows[name] = var.values
        elif len(extra_dims) == 1:
            for label in var[extra_dims[0]].values:
                rows[f"{name}[{label}]"] = var.sel({extra_dims[0]: label}).values
    return rows


#: What bayeslmm knows of each model it built, keyed weakly by the model (an entry goes with
#: its model). Builders write it through register_model; nothing is set on pm.Model itself.
_BUILT: weakref.WeakKeyDictionary[pm.Model, ModelInfo] = weakref.WeakKeyDictionary()


def register_model(model: pm.Model, info: ModelInfo) -> pm.Model:
    """Record ``info`` as what bayeslmm knows of ``model`` (replacing any earlier record).

    Parameters
    ----------
    model : pymc.Model
        A model a family's builder has just built.
    info : ModelInfo
        Its data, decomposition, priors and family. It must not refer to ``model`` (the record
        would then keep the model alive).

    Returns
    -------
    pymc.Model
        ``model``, so that a builder can end with ``return register_model(model, info)``.
    """
    if not isinstance(model, pm.Model) or not isinstance(info, ModelInfo):
        raise TypeError("register_model takes a pymc.Model and a ModelInfo.")
    _BUILT[model] = info
    return model


def info_of(model: Any) -> ModelInfo:
    """What bayeslmm recorded about a model it built.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayeslmm.kinship_model`, :func:`bayeslmm.snp_model`,
        :func:`bayeslmm.linear_model` or another registered family's builder.

    Returns
    -------
    ModelInfo

    Raises
    ------
    InputError
        If ``model`` was not built by bayeslmm (another PyMC model, a copy or an unpickled
        model, or not a model at all).
    """
    info = _BUILT.get(model) if isinstance(model, pm.Model) else None
    if info is None:
        raise InputError(
            "this model was not built by bayeslmm.kinship_model or bayeslmm.snp_model (or "
            "another bayeslmm model builder); sample other PyMC models with pymc.sample "
            "directly, and rebuild a copied or unpickled model with its builder."
        )
    return info


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


def model_coords(data: Prepared, spectral: Spectral | LowRank) -> dict[str, Any]:
    """The coordinates ``covariate``, ``eigen`` and ``sample`` of a model in the eigenbasis."""
    return {
        "covariate": list(data.covariates),
        "eigen": np.arange(spectral.rank),
        "sample": list(data.samples),
    }
