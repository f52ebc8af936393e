"""Binary traits: heritability on the liability scale from observed-scale estimates.

A 0/1 trait analysed as Gaussian (by :func:`bayeslmm.reml` or a Gaussian
:func:`bayeslmm.kinship_model`) gives h² on the observed scale, which depends on the prevalence.
Lee et al. (2011, AJHG 88:294) transform it to the scale of a normal liability with a threshold;
the population prevalence may be uncertain, and a prior on it propagates to the result.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import xarray as xr

from bayeslmm.errors import InputError

#: Draws of the liability h² when h² is a single number and the prevalence a distribution.
DEFAULT_DRAWS = 4000


def _observed_h2(h2_observed: Any) -> tuple[Any, np.ndarray | None]:
    """(h², phenotype or None) from a number, an array, a DataArray or a DataTree."""
    if isinstance(h2_observed, xr.DataTree) and "posterior" in h2_observed.children:
        model = str(getattr(h2_observed, "attrs", {}).get("model", ""))
        if "probit" in model:
            raise InputError(
                f"this fit is a {model} model, whose h2 is already on the liability scale; "
                "liability_h2 transforms the h² of a 0/1 trait analysed as Gaussian."
            )
        if "h2" not in h2_observed["posterior"]:
            raise InputError("the result has no posterior h2; pass the result of bayeslmm.sample.")
        y = None
        if "observed_data" in h2_observed.children and "y" in h2_observed["observed_data"]:
            y = np.asarray(h2_observed["observed_data"]["y"].values, dtype=float)
        return h2_observed["posterior"]["h2"], y
    if isinstance(h2_observed, xr.DataArray):
        return h2_observed, None
    try:
        return np.asarray(h2_observed, dtype=float), None
    except (TypeError, ValueError) as error:
        raise InputError(
            f"h2_observed must be a number, an array of draws, an xarray DataArray or the "
            f"DataTree of bayeslmm.sample, got {type(h2_observed).__name__}."
        ) from error


def _check_unit(values: np.ndarray, what: str, *, closed: bool) -> None:
    values = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(values)):
        raise InputError(f"{what} has {int(np.sum(~np.isfinite(values)))} values that are NaN.")
    inside = (values >= 0) & (values <= 1) if closed else (values > 0) & (values < 1)
    if not np.all(inside):
        interval = "[0, 1]" if closed else "(0, 1)"
        raise InputError(
            f"{what} must lie in {interval}; {int(np.sum(~inside))} of {values.size} values do "
            f"not (range {values.min():.4g} to {values.max():.4g})."
        )


def _is_pymc_object(value: Any) -> bool:
    """Whether ``value`` is a :class:`~bayeslmm.Prior` or a PyTensor variable (a ``.dist()``).

    Checked without importing PyMC: neither can exist before its module is loaded, so a number,
    an array or a scipy distribution never loads PyMC here.
    """
    priors = sys.modules.get("bayeslmm.families.priors")
    tensor = sys.modules.get("pytensor.tensor")
    return (priors is not None and isinstance(value, priors.Prior)) or (
        tensor is not None and isinstance(value, tensor.TensorVariable)
    )


def _prevalence_draws(
    prevalence: Any, shape: tuple[int, ...], random_seed: int | None, n_draws: int
) -> np.ndarray:
    """Population prevalence as a number or draws broadcastable to ``shape``."""
    size = shape if shape else (n_draws,)
    n = int(np.prod(size))
    if _is_pymc_object(prevalence):
        from bayeslmm.families.priors import Prior, draw_prior

        if isinstance(prevalence, Prior):
            if prevalence.distribution in ("Flat", "Jeffreys"):
                raise InputError(
                    f"a {prevalence.distribution} prior cannot be drawn from; give the prevalence "
                    "a proper prior on (0, 1), e.g. Prior('Beta', alpha=30, beta=970)."
                )
            prevalence = prevalence.dist()
        return draw_prior(prevalence, n, random_seed).reshape(size)
    if hasattr(prevalence, "rvs"):  # a frozen scipy.stats distribution
        rng = np.random.default_rng(random_seed)
        return np.asarray(prevalence.rvs(size=size, random_state=rng), dtype=float)
    try:
        values = np.asarray(prevalence, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(
            "prevalence must be a number, an array of draws, a bayeslmm Prior or a frozen "
            f"scipy.stats distribution, got {type(prevalence).__name__}."
        ) from error
    if values.ndim == 0:
        return values
    if values.ndim == 1 and values.size == int(np.prod(shape)) and shape:
        return values.reshape(shape)
    try:
        np.broadcast_shapes(values.shape, shape)
    except ValueError as error:
        raise InputError(
            f"prevalence draws of shape {values.shape} do not match the h² draws of shape "
            f"{shape}; give one prevalence per h² draw (or a number, or a distribution)."
        ) from error
    return values


def _sample_prevalence(sample_prevalence: Any, y: np.ndarray | None, prevalence: Any) -> Any:
    if sample_prevalence is not None:
        values = np.asarray(sample_prevalence, dtype=float)
        _check_unit(values, "sample_prevalence (the proportion of cases)", closed=False)
        return values
    if y is None:
        return prevalence  # a population sample: P = K
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise InputError(
            "the fit's phenotype is not 0/1, so the proportion of cases cannot be computed from "
            "it; pass sample_prevalence, or analyse the trait coded 0 (control) / 1 (case)."
        )
    return float(np.mean(y))


def liability_h2(
    h2_observed: Any,
    prevalence: Any,
    sample_prevalence: Any = None,
    *,
    random_seed: int | None = None,
    n_draws: int = DEFAULT_DRAWS,
) -> Any:
    r"""Transform observed-scale h² of a 0/1 trait to the liability scale (Lee et al. 2011).

    Parameters
    ----------
    h2_observed
        h² of the 0/1 trait analysed as Gaussian: a number, an array of draws, an xarray
        DataArray (e.g. ``idata.posterior["h2"]``), or the DataTree from
        :func:`bayeslmm.sample` (its posterior h2 is used, and the proportion of cases in the
        sample is taken from its 0/1 ``observed_data.y`` unless ``sample_prevalence`` is given).
    prevalence
        Population prevalence K in (0, 1): a number; draws (one per h² draw, or broadcastable
        to them); or a distribution to draw from, a :class:`~bayeslmm.Prior` (e.g.
        ``Prior("Beta", alpha=50, beta=950)``), a PyMC ``.dist()`` or a frozen
        ``scipy.stats`` distribution, so that its uncertainty propagates.
    sample_prevalence
        Proportion P of cases in the analysed sample (ascertained case-control studies). None:
        from the DataTree's 0/1 phenotype, else P = K (a population sample).
    random_seed
        Seed of the prevalence draws (when ``prevalence`` is a distribution).
    n_draws
        Number of draws when h² is a single number and ``prevalence`` a distribution.

    Returns
    -------
    float, ndarray or xarray.DataArray
        Liability-scale h², shaped like the h² draws (a DataArray with the same chain/draw
        coordinates for a DataArray or DataTree input), or [shape: (n_draws,)] for a
        single h² and a prevalence distribution.

    Raises
    ------
    InputError
        h² outside [0, 1], a prevalence (or P) outside (0, 1), prevalence draws that do not
        match the h² draws, or a phenotype that is not 0/1 when P is to be computed from it.

    Notes
    -----
    With :math:`t = \Phi^{-1}(1 - K)` the liability threshold and :math:`z = \phi(t)` the
    standard normal density there,

    .. math::

        h^2_l = h^2_o \, \frac{K(1-K)}{z^2} \, \frac{K(1-K)}{P(1-P)},

    which is Dempster & Lerner's (1950) transform when P = K. The second factor corrects for
    ascertainment of cases (Lee et al. 2011, AJHG 88:294, eq. 23). The transform assumes the
    liability model (normal liability, threshold) and small effects; h²_l above 1 can occur
    for noisy h²_o and is not truncated.

    Examples
    --------
    >>> round(liability_h2(0.2, 0.5), 4)  # K = 0.5: factor π/2
    0.3142
    >>> draws = liability_h2(idata, Prior("Beta", alpha=50, beta=950), random_seed=1)
    ... # doctest: +SKIP
    """
    h2, y = _observed_h2(h2_observed)
    h2_values = np.asarray(h2.values if isinstance(h2, xr.DataArray) else h2, dtype=float)
    _check_unit(h2_values, "h2_observed", closed=True)
    if int(n_draws) != n_draws or n_draws < 1:
        raise InputError(f"n_draws must be a positive integer, got {n_draws!r}.")
    k = _prevalence_draws(prevalence, h2_values.shape, random_seed, int(n_draws))
    _check_unit(k, "prevalence", closed=False)
    p = _sample_prevalence(sample_prevalence, y, k)
    from scipy import stats  # (here, not at module level: scipy.stats takes ~0.7 s to import)

    z = stats.norm.pdf(stats.norm.isf(k))
    factor = (k * (1 - k)) ** 2 / (z**2 * p * (1 - p))
    result = h2_values * factor
    if isinstance(h2, xr.DataArray) and np.shape(result) == h2.shape:
        out = h2.copy(data=result).rename("h2_liability")
        out.attrs = {"scale": "liability", "transform": "Lee et al. 2011"}
        return out
    return float(result) if np.ndim(result) == 0 else result
