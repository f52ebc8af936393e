"""Posterior inference: NUTS sampling, MAP, random effects and summaries of h².

This module and :mod:`bayeslmm.inference.comparison` are the only ones that call PyMC's
samplers or ArviZ.
Results are ArviZ 1 objects: an :class:`xarray.DataTree` whose children are the groups
(``posterior``, ``log_likelihood``, ``observed_data``, ``constant_data``, ``sample_stats``) and
whose ``attrs`` hold the provenance. Diagnostics come from :mod:`arviz_stats`, imported on its
own (``import arviz`` would also load its plotting stack).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from xarray import DataTree

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm._version import __version__
from bayeslmm.errors import InputError, SamplingWarning
from bayeslmm.families.base import ModelInfo, info_of, summary_rows
from bayeslmm.families.priors import describe
from bayeslmm.families.registry import FAMILIES, family_named
from bayeslmm.inference.effects import LOO_GROUP, EffectSummary
from bayeslmm.inference.optimize import map_functions, map_point, map_values, structure_key

SAMPLERS = ("nutpie", "pymc", "bslmm", "gibbs")
#: The form that ``sampler="bslmm"`` samples.
BSLMM_FORM = "snp_lmm_mixture"
#: The form that ``sampler="gibbs"`` samples (:mod:`bayeslmm.inference.horseshoe_gibbs`).
GIBBS_FORM = "snp_lmm_horseshoe"
#: Quantiles whose ESS is the tail ESS.
TAIL_PROB = (0.05, 0.95)
#: Rows of :func:`heritability` for a result that names no registered family (one written
#: before the families were recorded in ``attrs["family"]``), where present in the posterior.
SUMMARY_VARIABLES = (
    "h2",
    "sigma_g2",
    "sigma_e2",
    "sigma_v2",
    "h2_component",
    "h2_loci",
    "h2_background",
    "h2_total",
    "pve",
    "pge",
)


def _seeds(random_seed: int | None) -> tuple[int, np.random.Generator]:
    sampler_seq, effects_seq = np.random.SeedSequence(random_seed).spawn(2)
    return int(sampler_seq.generate_state(1)[0] % (2**31 - 1)), np.random.default_rng(effects_seq)


def _add_groups(
    post: xr.Dataset,
    sample_stats: xr.Dataset | None,
    info: ModelInfo,
    rng: np.random.Generator | None,
    random_effects: bool,
) -> DataTree:
    """The result: ``post``, what its family adds, the log-likelihood, data, provenance.

    The family's ``postprocess`` gives the added variables (u, v, ...) and the sample-space
    pointwise log-likelihood. Large cohorts (models from a Gram): an added variable may come
    as an :class:`~bayeslmm.inference.effects.EffectSummary` (posterior mean and SD instead of
    draws: group ``random_effects``), and the log-likelihood as its PSIS-LOO already reduced
    by sample blocks (an xarray Dataset: group ``loo``).
    """
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    chain_draw = {"chain": post["chain"].values, "draw": post["draw"].values}

    def as_var(values: np.ndarray, dim: str | tuple[str, ...], coord: list) -> xr.DataArray:
        # one dim and its labels, or a tuple of dims and a list of their labels (u of traits)
        dims, coords = (dim, coord) if isinstance(dim, tuple) else ((dim,), [coord])
        return xr.DataArray(
            values.reshape(n_chain, n_draw, *(len(c) for c in coords)),
            dims=("chain", "draw", *dims),
            coords={**chain_draw, **{d: list(c) for d, c in zip(dims, coords, strict=True)}},
        )

    added, loglik = family_named(info.family).postprocess(post, info, rng, random_effects)
    summaries = {name: v for name, v in added.items() if isinstance(v, EffectSummary)}
    new = {
        name: as_var(val, dim, list(coord))
        for name, (val, dim, coord) in ((n, v) for n, v in added.items() if n not in summaries)
    }
    out = _assemble(sample_stats, info, post.assign(new) if new else post, loglik, as_var)
    if summaries:
        out["random_effects"] = DataTree(_summary_group(summaries))
    return out


def _summary_group(summaries: dict[str, EffectSummary]) -> xr.Dataset:
    """The ``random_effects`` group: ``<name>_mean`` and ``<name>_sd`` of each summary."""
    data = {}
    for name, summary in summaries.items():
        coords = {summary.dim: list(summary.coords)}
        data[f"{name}_mean"] = xr.DataArray(summary.mean, dims=summary.dim, coords=coords)
        data[f"{name}_sd"] = xr.DataArray(summary.sd, dims=summary.dim, coords=coords)
    n_draws = {summary.n_draws for summary in summaries.values()}
    return xr.Dataset(
        data,
        attrs={
            "n_draws": int(n_draws.pop()),
            "note": "posterior mean and SD (ddof=1) over every draw, stored instead of the "
            "draws (large cohort; see bayeslmm.inference.effects.LARGE_COHORT_VALUES)",
        },
    )


def _observed(data: Any, info: ModelInfo) -> xr.DataArray:
    """The phenotype: dim ``sample``, or (``sample``, ``trait``) for several traits."""
    coords: dict[str, Any] = {"sample": list(data.samples)}
    if np.ndim(data.y) == 1:
        return xr.DataArray(data.y, dims="sample", coords=coords)
    coords["trait"] = list(info.extra["traits"])
    return xr.DataArray(data.y, dims=("sample", "trait"), coords=coords)


def _assemble(
    sample_stats: xr.Dataset | None,
    info: ModelInfo,
    posterior: xr.Dataset,
    loglik: np.ndarray | xr.Dataset,
    as_var: Any,
) -> DataTree:
    """Build the returned DataTree: posterior, sample-space log-likelihood, data, attrs.

    ``loglik`` as an xarray Dataset is the PSIS-LOO of a large cohort (group
    :data:`~bayeslmm.inference.effects.LOO_GROUP`), stored instead of the pointwise terms.
    """
    data, spectral = info.data, info.spectral
    if isinstance(loglik, xr.Dataset):
        likelihood = {LOO_GROUP: loglik}
    else:
        likelihood = {
            "log_likelihood": xr.Dataset({"y": as_var(loglik, "sample", list(data.samples))})
        }
    groups: dict[str, Any] = {
        "posterior": posterior,
        **likelihood,
        "observed_data": xr.Dataset({"y": _observed(data, info)}),
        "constant_data": xr.Dataset(
            {
                "X": xr.DataArray(
                    data.X,
                    dims=("sample", "covariate"),
                    coords={"sample": list(data.samples), "covariate": list(data.covariates)},
                ),
                "kinship_eigenvalues": xr.DataArray(spectral.s, dims="eigen"),
                **{  # family-specific data, e.g. the SNP form's training standardization
                    name: xr.DataArray(values, dims=dim, coords={dim: list(coords)})
                    for name, (values, dim, coords) in info.extra.get("constant_data", {}).items()
                },
            }
        ),
    }
    if sample_stats is not None:
        groups["sample_stats"] = sample_stats
    out = DataTree.from_dict(groups)
    out.attrs.update(provenance(info))
    return out


def provenance(info: ModelInfo) -> dict[str, Any]:
    """The ``attrs`` stamped on every result: version, model and family, priors, K scale."""
    return {
        "bayeslmm_version": __version__,
        "model": info.form,
        "family": info.family,
        "parametrization": info.parametrization,
        "priors": json.dumps(info.prior_strings()),
        "kinship_scale": float(info.spectral.scale),
        "kinship_rank": int(info.spectral.rank),
        "n_samples": int(info.data.n),
        "phenotype": info.data.y_name,
        "marginalize": int(info.marginalize),
        "dropped_samples": json.dumps(info.data.dropped),
        **{
            key: json.dumps(list(info.extra[key]))
            for key in ("fixed_snps", "components")
            if key in info.extra
        },
    }


def _clean_posterior(posterior: xr.Dataset) -> xr.Dataset:
    """Drop the sampler's unconstrained copies (``*_log__``, ``*_logodds__``)."""
    return posterior.drop_vars([v for v in posterior.data_vars if str(v).endswith("__")])


def _numeric_stats(stats: xr.Dataset) -> xr.Dataset:
    """Sampler statistics without text columns (nutpie's divergence messages; not netCDF-able)."""
    return stats.drop_vars([name for name, var in stats.data_vars.items() if var.dtype.kind == "O"])


#: What the warning of :func:`_check_convergence` suggests: NUTS has a step size to tune, the
#: exact samplers ("bslmm", "gibbs") only draws and burn-in.
NUTS_REMEDY = "Run more draws/tune, or raise target_accept (e.g. 0.95)"
EXACT_REMEDY = "Run more draws, or a longer burn-in (tune)"


def _check_convergence(
    idata: DataTree, names: tuple[str, ...] | None = None, remedy: str = NUTS_REMEDY
) -> None:
    """Warn on divergences and on an R-hat above 1.01 (of ``names``; default h2 or sigma_e2).

    With ``names`` (the exact samplers: pve, pge, ...), also on a bulk ESS below 100.
    ``remedy`` is the advice the warning gives.
    """
    problems = []
    if "sample_stats" in idata.children:
        stats = idata["sample_stats"]
        key = "diverging" if "diverging" in stats else None
        n_div = int(stats[key].sum()) if key else 0
        if n_div:
            problems.append(f"{n_div} divergent transitions")
    # h2 where the model has one; the linear model (no random effect) checks sigma_e2
    posterior = idata["posterior"]
    checked = names or ("h2" if "h2" in posterior else "sigma_e2",)
    if posterior.sizes["chain"] > 1:
        import arviz_stats as azs  # (lazy: it loads scipy.stats, ~1 s)

        for name in checked:
            rhat = float(np.max(azs.rhat(posterior[name]).values))
            if rhat > 1.01:
                problems.append(f"R-hat of {name} = {rhat:.3f} > 1.01")
            if names is not None:
                ess = float(np.min(azs.ess(posterior[name], method="bulk").values))
                if ess < 100:
                    problems.append(f"bulk ESS of {name} = {ess:.0f} < 100")
    if problems:
        warnings.warn(
            "sampling problems: " + "; ".join(problems) + f". {remedy}; check the posterior "
            "before using it.",
            SamplingWarning,
            stacklevel=3,
        )


#: nutpie compilations kept for reuse in this process, by model structure (see _signature).
_COMPILED: OrderedDict[tuple, Any] = OrderedDict()
MAX_COMPILED = 8
#: Models with up to this many free parameters (unconstrained dimensions) are compiled from
#: PyTensor's disk-cached numba functions and sampled through Python, one thread; larger ones
#: (latent vectors of N or M values) by nutpie's own compiler, chains in parallel.
MAX_CACHED_DIM = 100


def _signature(model: pm.Model, info: ModelInfo) -> tuple:
    """What the compiled code depends on: model form, prior families and data shapes."""
    priors = tuple(
        (name, prior.signature() if hasattr(prior, "signature") else describe(prior))
        for name, prior in sorted(info.priors.items())
    )
    shapes = tuple((v.name, v.get_value().shape) for v in model.data_vars)
    return info.form, info.parametrization, info.marginalize, priors, shapes


def _compiled_nutpie(model: pm.Model, info: ModelInfo) -> tuple[Any, int | None]:
    """Compile for nutpie once per model structure; later fits pass in their data.

    Returns
    -------
    compiled
        The object ``nutpie.sample`` takes.
    cores : int or None
        Sampler threads unless the user sets them: 1 where nutpie calls Python per gradient,
        else all.

    Notes
    -----
    Two paths, by the number of free parameters (:data:`MAX_CACHED_DIM`):

    - Small models (the kinship and SNP models, major loci): sampling takes seconds and nutpie's
      own compilation 10–20 s in every new process (its ``cfunc`` wrapper is never cached). The
      log-density comes from PyTensor's disk-cached numba functions instead (~1 s; see
      :mod:`bayeslmm.inference.compiled`), wrapped in C functions cached on disk beside them,
      which nutpie
      calls from its threads without Python, chains in parallel (where an argument is not an
      array, through Python at ~50 µs per gradient, one thread).
    - Models with a latent vector (probit liabilities, explicit SNP effects, sparse priors,
      latent variance components): thousands of costlier gradients per chain make sampling
      the cost, so nutpie compiles its ``cfunc`` and runs the chains in parallel, without Python
      per gradient (3× faster sampling measured for the probit model at N = 400).

    Either way a refit in the same process (another phenotype, another K of the same size, a
    LOCO K) reuses the compilation: every data-dependent number in the graph is a ``pm.Data``.
    """
    # The initial point (support point of each prior, jittered) is taken from this model, so
    # that a reused compilation gives the same draws as a fresh one for the same seed.
    from bayeslmm.inference.compiled import nutpie_model

    initial_point = _initial_point_function(model)
    cached = initial_point(0).size <= MAX_CACHED_DIM
    structure = _structure_key(model, info)
    if structure is None:  # not shareable (e.g. initial values set by hand): this model's own
        compiled_now = _compile_nutpie(model, cached)
    else:
        key = (*structure, cached)
        if key not in _COMPILED:
            _COMPILED[key] = _compile_nutpie(model, cached)
            while len(_COMPILED) > MAX_COMPILED:
                _COMPILED.popitem(last=False)
        _COMPILED.move_to_end(key)
        compiled_now = _COMPILED[key]
    if cached:
        return nutpie_model(compiled_now, model, initial_point), None if compiled_now.cfuncs else 1
    compiled = compiled_now.with_data(**{v.name: v.get_value() for v in model.data_vars})
    return dataclasses.replace(compiled, initial_point_func=initial_point), None


def _compile_nutpie(model: pm.Model, cached: bool) -> Any:
    """What :func:`_compiled_nutpie` keeps: PyTensor's numba functions or nutpie's model.

    The numba functions for small models (``cached``), nutpie's own ``cfunc`` model for those
    with a latent vector.
    """
    from bayeslmm.inference.compiled import compile_functions, quiet_numba

    if cached:
        return compile_functions(model)
    import nutpie

    with quiet_numba():
        return nutpie.compile_pymc_model(model, freeze_model=False)


def _initial_point_function(model: pm.Model) -> Any:
    """Seed → flat initial point on the unconstrained scale, as nutpie expects it."""
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(
        model=model,
        default_strategy="support_point",
        jitter_rvs=set(model.free_RVs),
        return_transformed=True,
    )
    names = [v.name for v in model.value_vars]
    lock = threading.Lock()  # nutpie calls it from its sampling threads

    def flat(seed: Any = None) -> np.ndarray:
        with lock:
            point = point_fn(seed)
        return np.concatenate([np.ravel(np.asarray(point[n], dtype="float64")) for n in names])

    return flat


def sample(
    model: pm.Model,
    draws: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    sampler: str | None = None,
    progressbar: bool = True,
    *,
    tune: int = 1000,
    cores: int | None = None,
    target_accept: float | None = None,
    random_effects: bool = True,
) -> DataTree:
    """Draw from the posterior of a bayeslmm model by MCMC: NUTS, or a family's exact sampler.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayeslmm.kinship_model`, :func:`bayeslmm.snp_model`,
        :func:`bayeslmm.linear_model`, or the builder of another registered family
        (:data:`bayeslmm.families.registry.FAMILIES`).
    draws, chains, tune : int
        Kept draws per chain, number of chains, warm-up draws per chain.
    random_seed : int, optional
        Makes the whole result (sampler and random-effect draws) reproducible.
    sampler : {"nutpie", "pymc", "bslmm", "gibbs"}, optional
        nutpie (log-density compiled with numba and cached on disk across processes), PyMC's
        own NUTS, or, for ``snp_model(..., marginalize=False, prior="mixture")`` only, the
        exact BSLMM-style MCMC with a point-mass spike (:mod:`bayeslmm.inference.bslmm_mcmc`:
        Metropolis–Hastings over the set of SNPs with an effect and the hyperparameters h, ρ,
        log π, everything else integrated out; ``tune`` is its burn-in in iterations, and each
        kept draw is ``model.extra["thin"]`` iterations apart, default 10); or, for
        ``prior="horseshoe"`` only, ``"gibbs"``: an exact blocked MCMC of the same model and
        priors (:mod:`bayeslmm.inference.horseshoe_gibbs`; ``tune`` is burn-in). Default: the
        family's (``ModelInfo.extra["sampler"]``: ``"bslmm"`` for the mixture prior,
        ``"gibbs"`` for the horseshoe, which passes the recovery gate where NUTS does not;
        nutpie, with a :class:`~bayeslmm.SamplingWarning` that says why, for a horseshoe
        whose priors ``"gibbs"`` does not take: a prior given as a PyMC variable, or one on
        β other than Normal, MvNormal or Flat), else nutpie. ``target_accept`` does not apply
        to ``"bslmm"`` or ``"gibbs"`` (InputError: drop it, or pass ``sampler="nutpie"``).
        ``"bslmm"`` uses BSLMM's priors (h, ρ ~ U(0, 1), log π ~ U(−log M, 0), flat β,
        p(σe²) ∝ 1/σe²), recorded in ``attrs["priors"]``: a model built with ``priors`` or
        ``prior_options`` is refused (InputError; use ``sampler="nutpie"``).
    progressbar : bool
    cores : int, optional
        pymc: chains run in parallel in this many processes (default: all cores). bslmm and
        gibbs: chains run in this many threads (default: all cores; the draws do not depend
        on it).
        nutpie: sampler threads (default: all cores; 1 where the log-density is called through
        Python, so that threads would take turns; see ``_compiled_nutpie``).
    target_accept : float, optional
        NUTS target acceptance (raise toward 0.95–0.99 if there are divergences). Default: the
        family's where it sets one (``ModelInfo.extra["target_accept"]``: the sparse priors
        sampled by NUTS, mixture 0.9 and horseshoe 0.99,
        ``bayeslmm.families.sparse.TARGET_ACCEPT``), else the sampler's.
    random_effects : bool
        Draw u (and v in the SNP form) from their conditional posterior for every draw (for a
        model built from a Gram above the large-cohort size, store their mean and SD instead:
        see Notes).

    Returns
    -------
    xarray.DataTree
        ``posterior`` (h2, sigma_g2, sigma_e2, beta, ..., u [sample], v [snp]),
        ``log_likelihood`` (y [sample]: sample-space LOO terms, so ``az.loo`` works),
        ``observed_data`` (y [sample]), ``constant_data`` (X, kinship eigenvalues),
        ``sample_stats``, and provenance ``attrs``. Large cohorts (see Notes): no u draws
        and no ``log_likelihood``, but ``random_effects`` (u_mean, u_sd [sample]; v_mean,
        v_sd [snp] when v's draws are too many as well) and ``loo`` (elpd_i, pareto_k,
        p_loo_i [sample], which :func:`bayeslmm.loo` and :func:`bayeslmm.compare` read).

    Notes
    -----
    The sampler sees only the rotated likelihood (O(r·d) per gradient); u and v are drawn
    afterwards in closed form (see :mod:`bayeslmm.inference.effects`) by the model's family
    (``Family.postprocess``), which also gives the sample-space log-likelihood.

    Large cohorts: for a model built from a Gram (``kinship_model(y, gram)``,
    ``snp_model(y, gram)``), u and the LOO terms are computed by blocks of samples streamed
    from the genotypes. Up to :data:`~bayeslmm.inference.effects.LARGE_COHORT_VALUES`
    (2·10⁷) draws × samples they are stored as for any model; above, draws × samples arrays
    are never formed: the posterior mean and SD (ddof = 1) of u over the same draws are stored
    (group ``random_effects``; likewise v above that many draws × SNPs), and the PSIS-LOO of
    each block is computed as it goes and stored per sample (group ``loo``), the same numbers
    ``arviz_stats.loo`` would give on the whole matrix with the relative efficiency of the
    model's parameters.
    """
    info = info_of(model)
    chosen = sampler is not None
    if sampler is None:
        sampler = info.extra.get("sampler", "nutpie")
        if "gibbs_unsupported" in info.extra:
            warnings.warn(
                f"This horseshoe model is sampled by NUTS, not by its default exact sampler "
                f"(sampler='gibbs'): {info.extra['gibbs_unsupported']}. NUTS on the horseshoe "
                "often leaves divergences or R-hat above 1.01; for the exact sampler give "
                "bayeslmm Priors (a Normal, MvNormal or Flat one on 'beta'), or pass "
                "sampler='nutpie' to choose NUTS and silence this warning.",
                SamplingWarning,
                stacklevel=2,
            )
    if sampler not in SAMPLERS:
        raise InputError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
    if target_accept is not None and sampler in ("bslmm", "gibbs"):
        default = "" if chosen else " (this model's default)"
        raise InputError(
            f"target_accept is a setting of NUTS; sampler={sampler!r}{default} has no step size "
            "to tune (it is an exact MCMC without divergences): drop target_accept, or pass "
            "sampler='nutpie' to sample this model by NUTS."
        )
    if target_accept is None:  # the family's default, where it has one (the sparse priors)
        target_accept = info.extra.get("target_accept")
    if sampler == "bslmm" and info.form != BSLMM_FORM:
        raise InputError(
            f"sampler='bslmm' samples only snp_model(..., marginalize=False, prior='mixture') "
            f"(model '{BSLMM_FORM}'); this model is '{info.form}': use sampler='nutpie' or "
            "'pymc'."
        )
    if sampler == "gibbs" and info.form != GIBBS_FORM:
        raise InputError(
            f"sampler='gibbs' samples only snp_model(..., marginalize=False, prior='horseshoe') "
            f"(model '{GIBBS_FORM}'); this model is '{info.form}': use sampler='nutpie'."
        )
    counts = (("draws", draws), ("chains", chains), ("tune", tune), ("cores", cores))
    for name, value in counts:
        if name == "cores" and value is None:  # (all cores)
            continue
        if int(value) != value or value < (0 if name == "tune" else 1):
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    seed, rng = _seeds(random_seed)
    if sampler == "bslmm":
        return _sample_bslmm(
            info, draws, chains, tune, seed, rng, random_seed, random_effects, cores
        )
    if sampler == "gibbs":
        return _sample_gibbs(
            info, draws, chains, tune, seed, rng, random_seed, random_effects, cores
        )
    if sampler == "nutpie":
        import nutpie

        compiled, default_cores = _compiled_nutpie(model, info)
        kwargs = {"target_accept": target_accept} if target_accept else {}
        if "adaptation" in info.extra:  # the family's mass-matrix adaptation (several traits)
            kwargs["adaptation"] = info.extra["adaptation"]
        raw = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=default_cores if cores is None else cores,
            seed=seed,
            progress_bar=progressbar,
            save_warmup=False,
            **kwargs,
        )
    else:
        kwargs = {"target_accept": target_accept} if target_accept else {}
        raw = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            progressbar=progressbar,
            model=model,
            nuts_sampler="pymc",
            compute_convergence_checks=False,
            **kwargs,
        )
    posterior = _clean_posterior(raw["posterior"].to_dataset())
    posterior = posterior.assign_coords(
        {dim: list(model.coords[dim]) for dim in posterior.dims if dim in model.coords}
    )
    stats = _numeric_stats(raw["sample_stats"].to_dataset())
    idata = _add_groups(posterior, stats, info, rng, random_effects)
    idata.attrs["sampler"] = sampler
    idata.attrs["random_seed"] = "" if random_seed is None else int(random_seed)
    _check_convergence(idata)
    return idata


def _sample_bslmm(
    info: ModelInfo,
    draws: int,
    chains: int,
    tune: int,
    seed: int,
    rng: np.random.Generator,
    random_seed: int | None,
    random_effects: bool,
    cores: int | None = None,
) -> DataTree:
    """:func:`sample` with ``sampler="bslmm"``: the chains, then the family's post-processing."""
    from bayeslmm.inference.bslmm_mcmc import THIN, bslmm_priors, sample_bslmm

    unused = info.extra.get("bslmm_unused") or []
    if unused:
        raise InputError(
            "sampler='bslmm' (the mixture prior's default) uses BSLMM's priors (h, rho ~ U(0, 1), "
            "log pi ~ U(-log M, 0), flat beta, p(sigma_e2) ~ 1/sigma_e2) and a point-mass spike, "
            f"not the model's: it would ignore {', '.join(unused)}. Drop them, or sample with "
            "sampler='nutpie' (NUTS on the model as built, relaxed spike), which uses them."
        )
    thin = info.extra.get("thin", THIN)
    if int(thin) != thin or thin < 1:
        raise InputError(f"model.extra['thin'] must be a positive integer, got {thin!r}.")
    posterior, stats = sample_bslmm(
        info, draws=draws, chains=chains, tune=tune, thin=int(thin), seed=seed, cores=cores
    )
    used = dataclasses.replace(info, priors=bslmm_priors(len(info.snps)))
    idata = _add_groups(posterior, stats, used, rng, random_effects)
    idata.attrs["sampler"] = "bslmm"
    idata.attrs["thin"] = int(thin)
    idata.attrs["random_seed"] = "" if random_seed is None else int(random_seed)
    _check_convergence(idata, ("pve", "pge", "sigma_e2"), EXACT_REMEDY)
    return idata


def _sample_gibbs(
    info: ModelInfo,
    draws: int,
    chains: int,
    tune: int,
    seed: int,
    rng: np.random.Generator,
    random_seed: int | None,
    random_effects: bool,
    cores: int | None,
) -> DataTree:
    """:func:`sample` with ``sampler="gibbs"``: the horseshoe's exact blocked MCMC."""
    from bayeslmm.inference.horseshoe_gibbs import sample_horseshoe

    posterior, stats = sample_horseshoe(
        info, draws=draws, chains=chains, tune=tune, thin=1, seed=seed, cores=cores
    )
    idata = _add_groups(posterior, stats, info, rng, random_effects)
    idata.attrs["sampler"] = "gibbs"
    idata.attrs["random_seed"] = "" if random_seed is None else int(random_seed)
    _check_convergence(idata, ("pve", "pge", "tau", "sigma_e2"), EXACT_REMEDY)
    return idata


def map_estimate(model: pm.Model, *, random_seed: int | None = None) -> DataTree:
    """Maximum a posteriori estimate, as a DataTree with one chain and one draw.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayeslmm.kinship_model` or :func:`bayeslmm.snp_model`.
    random_seed : int, optional
        Not used: the optimization is deterministic (accepted for symmetry with
        :func:`sample`).

    Returns
    -------
    xarray.DataTree
        Same groups as :func:`sample`; u (and v) are their conditional posterior means at the
        MAP (the BLUP at these variance components).

    Raises
    ------
    ConvergenceError
        When the optimizer does not reach a point where the gradient vanishes.

    Notes
    -----
    The optimization runs in coordinates whitened by the curvature at the start
    (:func:`bayeslmm.inference.optimize.map_point`), so that with the default priors the
    estimate does not depend on the units or offsets of y and of the covariates.

    The compiled log-density, gradient and initial point are kept for reuse in this process
    (:func:`_map_key`): a model of the same structure (a cross-validation fold, another
    phenotype) passes its ``pm.Data`` values to them and compiles nothing, with the same
    result as a fresh compilation.
    """
    info = info_of(model)
    compiled = map_functions(model, _map_key(model, info))
    values = map_values(model, map_point(model, compiled), compiled)
    dims = {
        name: model.named_vars_to_dims.get(name) or [f"{name}_dim_{k}" for k in range(v.ndim)]
        for name, v in values.items()
    }
    posterior = xr.Dataset(
        {name: (("chain", "draw", *dims[name]), v[None, None, ...]) for name, v in values.items()},
        coords={"chain": [0], "draw": [0]},
    )
    posterior = posterior.assign_coords(
        {dim: list(model.coords[dim]) for dim in posterior.dims if dim in model.coords}
    )
    idata = _add_groups(posterior, None, info, None, True)
    idata.attrs["sampler"] = "map"
    return idata


def _map_key(model: pm.Model, info: ModelInfo) -> tuple | None:
    """What :func:`map_estimate`'s compiled functions depend on; None: compile for this model.

    :func:`_structure_key`, marked as the MAP's.
    """
    structure = _structure_key(model, info)
    return None if structure is None else ("map", *structure)


def _structure_key(model: pm.Model, info: ModelInfo) -> tuple | None:
    """What a compilation of ``model`` depends on besides its data; None: not shareable.

    The structure of :func:`_signature` (form, priors, data shapes) and the model's graph with
    its constants (:func:`~bayeslmm.inference.optimize.structure_key`), so that a number
    baked into the graph instead of held in a ``pm.Data`` gives another key, not a compilation
    reused with a wrong log-density. Keys both compilation caches (nutpie's and the MAP's).
    """
    graph = structure_key(model)
    return None if graph is None else (*_signature(model, info), graph)


def heritability(idata: DataTree, hdi_prob: float = 0.95) -> pd.DataFrame:
    """Posterior summary of h² and the variance components.

    Parameters
    ----------
    idata : xarray.DataTree
        From :func:`sample` (or :func:`map_estimate`: one draw, no spread).
    hdi_prob : float
        Probability mass of the highest-density interval.

    Returns
    -------
    pandas.DataFrame
        The rows of the model's family (``Family.summary``, by ``attrs["family"]``): h2,
        sigma_g2, sigma_e2 and, where the model has them, sigma_v2, the per-component
        ``h2_component[name]``, ``h2_loci``, ``h2_background``, ``h2_total``, ``pve``, ``pge``
        (the linear model: sigma_e2); columns mean, sd, hdi_lower, hdi_upper, ess_bulk,
        ess_tail, r_hat (NaN for a constant).
    """
    import arviz_stats as azs  # (lazy: it loads scipy.stats, ~1 s)

    columns = _summary_rows(idata)
    rows = {}
    for name, draws in columns.items():
        values = draws.ravel()
        # more than one draw and not a constant (σe² = 1 of the probit model): full summary
        spread = values.size > 1 and np.ptp(values) > 0
        row = {"mean": values.mean(), "sd": values.std(ddof=1) if values.size > 1 else np.nan}
        if spread:
            lo, hi = azs.hdi(values, prob=hdi_prob)
            row.update(
                hdi_lower=float(lo),
                hdi_upper=float(hi),
                ess_bulk=float(azs.ess(draws, method="bulk")),
                # the smaller ESS of the 5 % and 95 % quantiles (ArviZ 0.x's default)
                ess_tail=float(azs.ess(draws, method="tail", prob=TAIL_PROB)),
                r_hat=float(azs.rhat(draws)) if draws.shape[0] > 1 else np.nan,
            )
        else:
            row.update(
                hdi_lower=np.nan, hdi_upper=np.nan, ess_bulk=np.nan, ess_tail=np.nan, r_hat=np.nan
            )
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _summary_rows(idata: DataTree) -> dict[str, np.ndarray]:
    """Label → draws of the rows of :func:`heritability`: those of the result's family."""
    family = FAMILIES.get(str(idata.attrs.get("family", "")))
    if family is None:  # written before attrs["family"], or by a family not registered here
        return summary_rows(idata["posterior"], SUMMARY_VARIABLES)
    rows = family.summary_rows(idata)
    posterior = idata["posterior"]
    if not any(_is_trait_matrix(posterior, name) for name in family.summary):
        return rows
    out: dict[str, np.ndarray] = {}
    for name in family.summary:  # in the family's order, trait × trait matrices included
        if _is_trait_matrix(posterior, name):
            out.update(_matrix_rows(posterior[name], name))
        else:
            out.update({k: v for k, v in rows.items() if k == name or k.startswith(f"{name}[")})
    return out


def _is_trait_matrix(posterior: Any, name: str) -> bool:
    """Whether ``name`` is a trait × trait matrix of the posterior (Sigma_g, rg, ...)."""
    return name in posterior and posterior[name].dims[2:] == ("trait", "trait2")


def _matrix_rows(var: xr.DataArray, name: str) -> dict[str, np.ndarray]:
    """Rows ``name[A,B]`` of a symmetric trait × trait matrix, its upper triangle by rows.

    A correlation matrix (every diagonal draw 1 to round-off: rg, re) gives its off-diagonal rows
    only; a covariance (Sigma_g) its diagonal too.
    """
    labels = [str(t) for t in var["trait"].values]
    values = var.values  # (chains, draws, T, T)
    T = len(labels)
    diagonal = np.diagonal(values, axis1=-2, axis2=-1)
    correlation = bool(np.all(np.abs(diagonal - 1.0) <= 1e-10))  # 1 to round-off
    first = 1 if correlation else 0
    return {
        f"{name}[{labels[a]},{labels[b]}]": values[..., a, b]
        for a in range(T)
        for b in range(a + first, T)
    }


def summary(idata: DataTree, hdi_prob: float = 0.95) -> str:
    """A printable summary of the posterior of h² (mean, sd, HDI, ESS, R-hat)."""
    table = heritability(idata, hdi_prob)
    pct = int(round(hdi_prob * 100))
    table = table.rename(columns={"hdi_lower": f"hdi{pct}_lo", "hdi_upper": f"hdi{pct}_hi"})
    head = (
        f"{idata.attrs.get('model', 'model')} ({idata.attrs.get('parametrization', '')}), "
        f"{idata.attrs.get('n_samples', '?')} samples, sampler {idata.attrs.get('sampler', '?')}"
    )
    return head + "\n" + table.to_string(float_format=lambda x: f"{x:.4g}")
