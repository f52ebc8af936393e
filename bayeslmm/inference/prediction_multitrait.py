r"""Posterior predictive of new samples under the multi-trait LMM (issue 12, point 3).

:func:`predict_multitrait` takes a result of :func:`bayeslmm.sample` (or
:func:`bayeslmm.map_estimate`) of the ``"multitrait"`` family (``kinship_model(Y, K, X)`` with
T ≥ 2 traits) and, for samples that were not in the fit, draws per posterior draw their genetic
values G_new [shape: (n_new, T)] from vec(U_new) | Y, θ and their phenotypes
Y_new = X_new B + G_new + E_new, the rows of E_new ~ N(0, Σe) (correlated across traits).

Every draw works in the eigenbasis of K_tt, where the rotated rows of the training data are
independent T-variate normals with covariance sᵢΣg + Σe: O(n_new·r·T + r·T³) per draw, never an
NT×NT system. The dense, literal formulas are in ``models/prediction/multitrait.py``; the tests
compare against them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray import DataTree

from bayeslmm.data.inputs import kinship_array
from bayeslmm.data.samples import positional_ids, sample_ids
from bayeslmm.errors import InputError, KinshipWarning
from bayeslmm.inference.effects import flat_draws
from bayeslmm.linalg.spectral import spectral_from_kinship

#: The family whose results :func:`predict_multitrait` takes.
MULTITRAIT_FAMILY = "multitrait"

#: The posterior variable of the missing training trait values under ``missing="latent"``
#: [dims: (chain, draw, missing)], labelled ``"<sample id>:<trait>"``, in the user's units.
MISSING_VARIABLE = "Y_missing"

#: Relative size of a negative eigenvalue of the new samples' conditional kinship taken as
#: rounding (as ``bayeslmm.inference.prediction.PSD_TOLERANCE``; this module sits below that
#: one, which dispatches to it, so it cannot import it).
PSD_TOLERANCE = 1e-5

#: Draws processed together (bounds the (draws, r, T, T) arrays of one batch).
_BATCH_VALUES = 2_000_000


@dataclass(frozen=True)
class MultitraitParts:
    """What every draw needs: the training data in K_tt's eigenbasis and the blocks of K.

    Attributes
    ----------
    s : ndarray
        Eigenvalues of K_tt (on the fit's scale) [shape: (r,)].
    B : ndarray
        K_nt U, U the eigenvectors of K_tt [shape: (n_new, r)].
    schur : ndarray
        K_nn − B diag(1/s) Bᵀ, the conditional kinship of the new samples given the training
        ones [shape: (n_new, n_new)].
    Y1, X1 : ndarray
        Uᵀ Y (missing entries as 0) [shape: (r, T)] and Uᵀ X [shape: (r, d)].
    null_Y, null_X : ndarray
        K_nt (I − UUᵀ) Y (missing entries as 0) [shape: (n_new, T)] and K_nt (I − UUᵀ) X
        [shape: (n_new, d)]: zero when K over training and new samples is positive
        semidefinite, kept so that the conditional mean is exact for any symmetric K.
    missing_rows, missing_traits : ndarray
        Row (training sample) and column (trait) of each missing training value, in the order
        of the ``Y_missing`` draws [each shape: (m,)] (empty without missing values).
    missing_U, missing_null : ndarray
        U[row] [shape: (m, r)] and K_nt (I − UUᵀ) e_row [shape: (n_new, m)] of each missing
        value: a draw of the missing values y_m adds y_m·U[row] to column ``trait`` of Y1 and
        y_m·missing_null[:, m] to that of null_Y.
    """

    s: np.ndarray
    B: np.ndarray
    schur: np.ndarray
    Y1: np.ndarray
    X1: np.ndarray
    null_Y: np.ndarray
    null_X: np.ndarray
    missing_rows: np.ndarray
    missing_traits: np.ndarray
    missing_U: np.ndarray
    missing_null: np.ndarray


def predict_multitrait(
    idata: DataTree,
    *,
    K: Any = None,
    genotypes: Any = None,
    X: Any = None,
    random_seed: int | None = None,
    hdi_prob: float = 0.95,
) -> tuple[DataTree, pd.DataFrame]:
    r"""Posterior predictive genetic values and phenotypes of new samples, several traits.

    :func:`bayeslmm.predict` calls this for a multi-trait result and wraps the two parts in a
    :class:`~bayeslmm.Prediction`; it takes the same arguments.

    Parameters
    ----------
    idata : xarray.DataTree
        From :func:`bayeslmm.sample` or :func:`bayeslmm.map_estimate` of
        :func:`bayeslmm.kinship_model` with a table of T ≥ 2 traits (family ``"multitrait"``).
        Under ``missing="latent"`` its posterior ``Y_missing`` (the missing training values)
        is used draw by draw; under ``missing="drop"`` the dropped samples are simply not
        training samples.
    K
        Kinship form: a kinship covering the training samples and the new ones
        [shape: (n_train + n_new, n_train + n_new)], a DataFrame indexed both ways by sample
        ID or a :class:`~bayeslmm.Kinship`; a plain array has positional IDs ``"1"``, ``"2"``,
        ... It must be the K of the fit on the training samples, on the same scale (checked on
        its eigenvalues); the new samples are those of K that are not in the fit.
    genotypes
        SNP form, a fit of ``snp_model(Y, W, X)``: allele counts (a DataFrame indexed by
        sample ID with SNP names as columns, or :class:`~bayeslmm.Genotypes`), standardized
        with the training centre and scale (``constant_data`` ``snp_center``, ``snp_scale``).
        With posterior SNP effects ``v`` [dims: (chain, draw, snp, trait)], those of the new
        samples [shape: (n_new, n_snps)] (an array: the fit's SNPs in order). Without them (v
        marginalized, the default), those of the training and the new samples, by ID: the
        kinship form with K = WWᵀ/M over both (exact: that is the model's K).
    X
        Covariates of the new samples, needed when the model has covariates besides the
        intercept: a DataFrame indexed by sample ID with the fit's covariate columns, or an
        array with one row per new sample and those columns (the intercept may be left out).
    random_seed
        Seed of the predictive draws.
    hdi_prob
        Probability mass of the highest-density intervals of the summary.

    Returns
    -------
    draws : xarray.DataTree
        Group ``predictions`` with ``g``, ``y`` and (kinship form) ``g_mean`` [dims: (chain,
        draw, sample, trait)], group ``predictions_constant_data`` with ``X``; the training
        result's ``attrs`` plus ``prediction`` and ``prediction_random_seed``.
    summary : pandas.DataFrame
        One row per new sample and trait (index ``sample``, ``trait``), columns
        ``g_mean``, ``g_sd``, ``g_hdi_lower``, ``g_hdi_upper``, ``y_mean``, ``y_sd``,
        ``y_hdi_lower``, ``y_hdi_upper``. At a MAP point g is the conditional mean and
        y = X_new B + g (no noise is drawn).

    Raises
    ------
    InputError
        Neither or both of ``K`` and ``genotypes``; a result of another family; a K that lacks
        training samples, has no new ones or is not the K of the fit; covariates missing or
        not the fit's; a SNP form without SNP effects; ``Y_missing`` not covering the missing
        training values.

    Notes
    -----
    Kinship form. With R = Y − XB (N × T), V = Σg ⊗ K_tt + Σe ⊗ I and vec stacking columns,

    .. math::

        \operatorname{vec}(U_n) \mid Y, \theta \sim N\big((\Sigma_g \otimes K_{nt})
        V^{-1}\operatorname{vec}(R),\; \Sigma_g \otimes K_{nn} - (\Sigma_g \otimes K_{nt})
        V^{-1}(\Sigma_g \otimes K_{tn})\big).

    With :math:`K_{tt} = U\operatorname{diag}(s)U^\top`, the rotated residual rows
    :math:`r_i = (U^\top R)_{i\cdot}` have covariance :math:`s_i\Sigma_g + \Sigma_e`, so with
    :math:`M_i = (s_i\Sigma_g + \Sigma_e)^{-1}` and :math:`B = K_{nt}U` the mean is

    .. math::

        E[U_n \mid Y, \theta] = B\,[r_i^\top M_i]_i\,\Sigma_g
        + K_{nt}(I - UU^\top) R\,\Sigma_e^{-1}\Sigma_g,

    T×T solves only (the second term vanishes for a positive semidefinite K). The draw is
    pathwise. The rotated genetic values :math:`a_i = U^\top U_t` have prior
    :math:`N(0, s_i\Sigma_g)` and :math:`r_i = a_i + e_i`, :math:`e_i \sim N(0, \Sigma_e)`;
    Matheron's rule draws :math:`a_i \mid r_i` as
    :math:`\hat a_i + \tilde a_i - s_i\Sigma_g M_i(\tilde a_i + \tilde e_i)` from prior draws
    :math:`\tilde a_i, \tilde e_i`, and the new samples add their conditional kinship
    :math:`S = K_{nn} - B\operatorname{diag}(1/s)B^\top = L_SL_S^\top`:

    .. math::

        U_n = E[U_n \mid Y, \theta] + B\operatorname{diag}(1/s)\,[\tilde a_i
        - s_i\Sigma_g M_i(\tilde a_i + \tilde e_i)]_i + L_S Z L_g^\top,

    :math:`\Sigma_g = L_gL_g^\top`, Z standard normal; its covariance is the one above whenever
    K (training and new) is positive semidefinite; otherwise S is clipped at 0 and a
    :class:`~bayeslmm.errors.KinshipWarning` says so. Phenotypes add
    :math:`X_nB + E_n`, the rows of :math:`E_n` ~ N(0, Σe).

    Missing training values (``missing="latent"``). Each draw fills Y with its draw of
    ``Y_missing`` before conditioning: p(U_n | Y_obs, θ) = E[p(U_n | Y_obs, Y_mis, θ)] over
    Y_mis | Y_obs, θ, of which the posterior's joint draws of (θ, Y_mis) are draws. Only
    the m missing entries change per draw: O(m·(r + n_new)) to update Uᵀ Y.

    SNP form. :math:`W = (G - c)/a` with the training centre and scale of each SNP. With
    draws of v [shape: (snp, trait)], :math:`G_{new} = W_n v`. With v marginalized,
    vec(WV) ~ N(0, Σg ⊗ WWᵀ/M) over training and new samples alike, so the kinship form
    with K = WWᵀ/M (training block: the fit's K) is exact.
    """
    if (K is None) == (genotypes is None):
        raise InputError(
            "predict needs exactly one of K= (a kinship covering the training and the new "
            "samples: kinship form) or genotypes= (the new samples' allele counts: SNP form)."
        )
    if not 0 < hdi_prob < 1:
        raise InputError(f"hdi_prob must be in (0, 1), got {hdi_prob!r}.")
    _check_result(idata)
    posterior = idata["posterior"]
    traits = [str(t) for t in posterior["trait"].values]
    beta = flat_draws(posterior, "beta")  # (draws, d, T)
    sigma_g, sigma_e = flat_draws(posterior, "Sigma_g"), flat_draws(posterior, "Sigma_e")
    point = _is_point(idata)
    rng = None if point else np.random.default_rng(random_seed)
    form = "kinship"
    if K is None and "v" not in posterior:  # v marginalized: K = WW'/M over training and new
        K, form = snp_kinship(idata, genotypes), "snp"
    if K is not None:
        new, parts = multitrait_parts(idata, K)
        X_new = new_covariates(idata, X, new)
        y_missing = missing_draws(idata, parts)
        g_mean = conditional_means(parts, beta, sigma_g, sigma_e, y_missing)
        if rng is None:
            g = g_mean
        else:
            n, r, T = beta.shape[0], parts.s.size, len(traits)
            g = g_mean + fluctuations(
                parts,
                sigma_g,
                sigma_e,
                rng.standard_normal((n, r, T)),
                rng.standard_normal((n, r, T)),
                rng.standard_normal((n, len(new), T)),
            )
    else:
        new, W_new = _snp_genotypes(idata, genotypes, [str(s) for s in posterior["snp"].values])
        X_new = new_covariates(idata, X, new)
        g = np.einsum("nm,kmt->knt", W_new, flat_draws(posterior, "v"))
        g_mean = None
        form = "snp"
    mean_y = np.einsum("nc,kct->knt", X_new, beta)
    y_new = mean_y + g
    if rng is not None:
        y_new = y_new + rng.standard_normal(g.shape) @ np.swapaxes(_root(sigma_e), 1, 2)
    centre_g = g if g_mean is None else g_mean
    draws = _as_tree(idata, new, traits, X_new, g, g_mean, y_new, form, random_seed)
    summary = pd.concat(
        [
            summarize_predictions(centre_g, g, "g", hdi_prob),
            summarize_predictions(mean_y + centre_g, y_new, "y", hdi_prob),
        ],
        axis=1,
    )
    summary.index = pd.MultiIndex.from_product([new, traits], names=["sample", "trait"])
    return draws, summary


# --------------------------------------------------------------------------------------------
# Reading the training result
# --------------------------------------------------------------------------------------------


def _check_result(idata: Any) -> None:
    if not isinstance(idata, DataTree) or "posterior" not in idata.children:
        raise InputError(
            "predict takes the result of bayeslmm.sample or bayeslmm.map_estimate (an "
            "xarray.DataTree with a posterior group)."
        )
    family = str(idata.attrs.get("family", ""))
    if family != MULTITRAIT_FAMILY:
        raise InputError(
            f"predict_multitrait takes a result of the multi-trait LMM (family "
            f"{MULTITRAIT_FAMILY!r}: kinship_model(Y, K, X) with a table of T >= 2 traits), "
            f"got family {family!r}; use bayeslmm.predict for one trait."
        )
    for name in ("beta", "Sigma_g", "Sigma_e"):
        if name not in idata["posterior"]:
            raise InputError(f"predict: the result has no posterior variable {name!r}.")
    if "observed_data" not in idata.children or "constant_data" not in idata.children:
        raise InputError(
            "predict: the result lacks its observed_data or constant_data group; pass the "
            "DataTree that bayeslmm.sample returned (or read back with xarray.open_datatree)."
        )


def _is_point(idata: DataTree) -> bool:
    post = idata["posterior"]
    return (
        str(idata.attrs.get("sampler", "")) == "map"
        or post.sizes["chain"] * post.sizes["draw"] == 1
    )


def _training(idata: DataTree) -> tuple[list[str], list[str], np.ndarray, np.ndarray, list[str]]:
    """Training samples, traits, Y [shape: (N, T)] (NaN where missing), X, covariate names."""
    y = idata["observed_data"]["y"]
    X = idata["constant_data"]["X"]
    return (
        [str(s) for s in y["sample"].values],
        [str(t) for t in y["trait"].values],
        y.values.astype(float),
        X.values.astype(float),
        [str(c) for c in X["covariate"].values],
    )


def multitrait_parts(idata: DataTree, K: Any) -> tuple[list[str], MultitraitParts]:
    """The new samples and the per-fit quantities of the kinship form.

    Parameters
    ----------
    idata
        A multi-trait result (see :func:`predict_multitrait`).
    K
        Kinship over training and new samples (see :func:`predict_multitrait`).

    Returns
    -------
    new : list of str
        IDs of the new samples (those of K not in the fit), in K's order.
    parts : MultitraitParts
        Eigenbasis of K_tt and the training data rotated into it (O(N³) once).

    Raises
    ------
    InputError
        K lacks training samples, has no new ones, or its training block is not the fit's K.
    """
    train, traits, Y, X, _ = _training(idata)
    matrix = kinship_array(K)
    ids = sample_ids(K, "K")
    ids = [str(i) for i in (positional_ids(matrix.shape[0]) if ids is None else ids)]
    where = {sample: i for i, sample in enumerate(ids)}
    lacking = [sample for sample in train if sample not in where]
    if lacking:
        raise InputError(
            f"K lacks {len(lacking)} of the {len(train)} training samples (first "
            f"{lacking[:5]}); pass a kinship covering the samples of the fit and the new ones."
        )
    training = set(train)
    new = [sample for sample in ids if sample not in training]
    if not new:
        raise InputError(
            "K has no sample besides those of the fit; pass a kinship that also covers the "
            "samples to predict (their IDs in K's index)."
        )
    t = np.array([where[sample] for sample in train])
    n = np.array([where[sample] for sample in new])
    scale = float(idata.attrs.get("kinship_scale", 1.0))
    matrix = matrix / scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KinshipWarning)  # the fit warned about K_tt already
        spectral = spectral_from_kinship(matrix[np.ix_(t, t)], normalize=False)
    _check_same_kinship(idata, spectral.s, scale)
    U, s = spectral.U, spectral.s
    K_nt = matrix[np.ix_(n, t)]
    B = K_nt @ U
    missing = np.isnan(Y)
    rows, cols = np.nonzero(missing)
    Y0 = np.where(missing, 0.0, Y)
    Y1, X1 = U.T @ Y0, U.T @ X
    schur = matrix[np.ix_(n, n)] - (B / s) @ B.T
    parts = MultitraitParts(
        s=s,
        B=B,
        schur=(schur + schur.T) / 2,
        Y1=Y1,
        X1=X1,
        null_Y=K_nt @ (Y0 - U @ Y1),
        null_X=K_nt @ (X - U @ X1),
        missing_rows=rows,
        missing_traits=cols,
        missing_U=U[rows],
        missing_null=K_nt[:, rows] - B @ U[rows].T,
    )
    return new, parts


def _check_same_kinship(idata: DataTree, s: np.ndarray, scale: float) -> None:
    stored = np.asarray(idata["constant_data"]["kinship_eigenvalues"].values, dtype=float)
    k = min(stored.size, s.size)
    top = max(float(stored[0]) if stored.size else 0.0, float(s[0]))
    same = (
        np.allclose(s[:k], stored[:k], rtol=1e-6, atol=1e-9 * top)
        and np.allclose(s[k:], 0.0, atol=1e-8 * top)
        and np.allclose(stored[k:], 0.0, atol=1e-8 * top)
    )
    if not same:
        raise InputError(
            "K's block of the training samples is not the kinship the model was fitted with "
            f"(its largest eigenvalue is {s[0]:.6g} on the fit's scale {scale:.6g}, the fit's "
            f"is {stored[0]:.6g}); pass the same K, on the same scale, extended to the new "
            "samples."
        )


def missing_draws(idata: DataTree, parts: MultitraitParts) -> np.ndarray | None:
    """Draws of the missing training values in the order of ``parts`` [shape: (draws, m)].

    None when no training value is missing. The posterior variable ``Y_missing`` is labelled
    ``"<sample id>:<trait>"``; every missing entry of the observed Y must have a label.

    Raises
    ------
    InputError
        Missing training values without (all of) their ``Y_missing`` draws.
    """
    m = parts.missing_rows.size
    if m == 0:
        return None
    train, traits, _, _, _ = _training(idata)
    labels = [
        f"{train[i]}:{traits[t]}"
        for i, t in zip(parts.missing_rows, parts.missing_traits, strict=True)
    ]
    posterior = idata["posterior"]
    if MISSING_VARIABLE not in posterior:
        raise InputError(
            f"the training traits have {m} missing values (first {labels[:3]}) but the "
            f"posterior has no {MISSING_VARIABLE!r} draws of them; pass the result of a fit "
            "with missing='latent' (the default) or missing='drop'."
        )
    stored = posterior[MISSING_VARIABLE]
    dim = stored.dims[-1]
    position = {str(label): j for j, label in enumerate(stored[dim].values)}
    absent = [label for label in labels if label not in position]
    if absent:
        raise InputError(
            f"the posterior's {MISSING_VARIABLE!r} lacks {len(absent)} of the {m} missing "
            f"training values (first {absent[:3]}); pass the unmodified result of the fit."
        )
    values = flat_draws(posterior, MISSING_VARIABLE)
    return values[:, [position[label] for label in labels]]


def new_covariates(idata: DataTree, X: Any, new: list[str]) -> np.ndarray:
    """X of the new samples, in the fit's covariate order [shape: (n_new, d)].

    Raises
    ------
    InputError
        X needed and missing, lacking columns or rows, of the wrong shape, or not finite.
    """
    _, _, _, X_train, names = _training(idata)
    return covariates_of_new(X_train, names, X, new)


def covariates_of_new(X_train: np.ndarray, names: list[str], X: Any, new: list[str]) -> np.ndarray:
    """X of the new samples in the fit's covariate order [shape: (n_new, d)].

    Covariates constant in the training data (the intercept) take their training value; the
    others come from ``X`` (a DataFrame by sample ID, or an array in the order of ``new``).
    Used by :func:`new_covariates` and by :func:`bayeslmm.predict`'s one-trait forms.

    Raises
    ------
    InputError
        X needed and missing, lacking columns or rows, of the wrong shape, or not finite.
    """
    constant = np.ptp(X_train, axis=0) == 0 if X_train.shape[0] > 1 else np.ones(len(names), bool)
    needed = [name for name, c in zip(names, constant, strict=True) if not c]
    out = np.tile(X_train[0], (len(new), 1)) if X_train.shape[0] else np.ones((len(new), 0))
    if not needed:
        return out
    if X is None:
        raise InputError(
            f"the model has covariates {needed} besides the intercept; pass X for the "
            f"{len(new)} new samples (a DataFrame indexed by sample ID with these columns, or "
            "an array with one row per new sample in the order of the new samples)."
        )
    index = [names.index(name) for name in needed]
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        frame = X.set_axis([str(c) for c in X.columns], axis=1)
        frame.index = frame.index.astype(str)
        lacking = [name for name in needed if name not in frame.columns]
        absent = [sample for sample in new if sample not in frame.index]
        if lacking or absent:
            what = f"columns {lacking}" if lacking else f"rows for new samples {absent[:5]}"
            raise InputError(
                f"X lacks the {what}; pass the fit's covariates {needed} for every new sample "
                "(a DataFrame indexed by sample ID)."
            )
        values = frame.loc[new, needed].to_numpy(dtype=float, na_value=np.nan)
    else:
        values = np.asarray(X, dtype=float)
        values = values[:, None] if values.ndim == 1 else values
        if values.ndim == 2 and values.shape[1] == len(names) and len(names) > len(needed):
            values = values[:, index]
        if values.ndim != 2 or values.shape != (len(new), len(needed)):
            raise InputError(
                f"X must have shape ({len(new)}, {len(needed)}) (one row per new sample, the "
                f"columns {needed}), got {values.shape}."
            )
    if not np.isfinite(values).all():
        raise InputError("X of the new samples has missing or infinite values; complete it.")
    out[:, index] = values
    return out


def snp_kinship(idata: DataTree, genotypes: Any) -> pd.DataFrame:
    """K = WWᵀ/M over the training and new samples of a multi-trait SNP-form fit.

    Parameters
    ----------
    idata
        A result of ``snp_model(Y, W, X)`` with T ≥ 2 traits (v marginalized).
    genotypes
        Allele counts of the training and the new samples, indexed by sample ID (see
        :func:`predict_multitrait`).

    Returns
    -------
    pandas.DataFrame
        [shape: (n, n)], indexed both ways by sample ID, W standardized with the training
        centre and scale (missing calls: the training mean).

    Raises
    ------
    InputError
        A fit without the training standardization (not a SNP-form fit), or genotypes that
        lack training samples.
    """
    constant = idata["constant_data"]
    if "snp_center" not in constant or "snp_scale" not in constant:
        raise InputError(
            "predict(genotypes=...) takes a SNP-form fit (snp_model(Y, W, X)), which keeps the "
            "training standardization of the genotypes (constant_data snp_center, snp_scale); "
            "this result has none: pass K= (the fit's kinship extended to the new samples)."
        )
    ids, W = _snp_genotypes(idata, genotypes, [str(s) for s in constant["snp"].values])
    train = [str(s) for s in idata["observed_data"]["sample"].values]
    lacking = [sample for sample in train if sample not in set(ids)]
    if lacking:
        raise InputError(
            f"genotypes lack {len(lacking)} of the {len(train)} training samples (first "
            f"{lacking[:5]}); a multi-trait SNP fit integrates the SNP effects out, so its "
            "prediction needs the genotypes of the training samples as well as the new ones "
            "(a DataFrame indexed by sample ID), or K= (the fit's kinship extended to them)."
        )
    return pd.DataFrame(W @ W.T / W.shape[1], index=ids, columns=ids)


def _snp_genotypes(
    idata: DataTree, genotypes: Any, snps: list[str]
) -> tuple[list[str], np.ndarray]:
    """Samples and genotypes standardized as in the fit [shape: (n, M)], SNPs in ``snps``."""
    constant = idata["constant_data"]
    if "snp_center" not in constant or "snp_scale" not in constant:
        raise InputError(
            "predict(genotypes=...) needs the training standardization of the genotypes "
            "(constant_data snp_center, snp_scale), which this result does not have; pass K= "
            "(the fit's kinship extended to the new samples)."
        )
    if hasattr(genotypes, "read") and hasattr(genotypes, "snps") and hasattr(genotypes, "samples"):
        genotypes = pd.DataFrame(
            genotypes.read(), index=genotypes.samples, columns=genotypes.snps["snp"].astype(str)
        )
    if isinstance(genotypes, pd.DataFrame):
        frame = genotypes.set_axis([str(c) for c in genotypes.columns], axis=1)
        lacking = [snp for snp in snps if snp not in frame.columns]
        if lacking:
            raise InputError(
                f"genotypes lack {len(lacking)} of the fit's {len(snps)} SNPs (first "
                f"{lacking[:5]}); pass allele counts of the same SNPs (columns named as in "
                "the fit)."
            )
        ids = [str(i) for i in sample_ids(genotypes, "genotypes")]
        values = frame[snps].to_numpy(dtype=float, na_value=np.nan)
    else:
        values = np.asarray(genotypes, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(snps):
            raise InputError(
                f"genotypes must be an array of shape (n_new, {len(snps)}) (the fit's SNPs in "
                f"order), got shape {values.shape}; or pass a DataFrame with SNP names as columns."
            )
        ids = [str(i) for i in positional_ids(values.shape[0])]
    if np.isinf(values).any():
        raise InputError("genotypes has infinite values; fix them (NaN marks a missing call).")
    centre = constant["snp_center"].values
    mean = constant["snp_mean"].values if "snp_mean" in constant else centre
    values = np.where(np.isnan(values), mean, values)
    return ids, (values - centre) / constant["snp_scale"].values


# --------------------------------------------------------------------------------------------
# The draws
# --------------------------------------------------------------------------------------------


def _batches(n_draws: int, per_draw: int) -> list[slice]:
    size = max(1, _BATCH_VALUES // max(per_draw, 1))
    return [slice(i, min(i + size, n_draws)) for i in range(0, n_draws, size)]


def _root(sigma: np.ndarray) -> np.ndarray:
    """A square root L with LLᵀ = Σ of each PSD T×T matrix, eigenvalues clipped at 0."""
    values, vectors = np.linalg.eigh((sigma + np.swapaxes(sigma, -1, -2)) / 2)
    return vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]


def _filled(
    parts: MultitraitParts, y_missing: np.ndarray | None, batch: slice, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uᵀ Y and K_nt (I − UUᵀ) Y of each draw of a batch, the missing values filled."""
    Y1 = np.broadcast_to(parts.Y1, (n, *parts.Y1.shape)).copy()
    null_Y = np.broadcast_to(parts.null_Y, (n, *parts.null_Y.shape)).copy()
    if y_missing is not None:
        values = y_missing[batch]
        for t in np.unique(parts.missing_traits):
            sel = parts.missing_traits == t
            Y1[:, :, t] += values[:, sel] @ parts.missing_U[sel]
            null_Y[:, :, t] += values[:, sel] @ parts.missing_null[:, sel].T
    return Y1, null_Y


def conditional_means(
    parts: MultitraitParts,
    beta: np.ndarray,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
    y_missing: np.ndarray | None = None,
) -> np.ndarray:
    """E[U_new | Y, θ] of each draw [shape: (draws, n_new, T)] (see predict_multitrait, Notes).

    Parameters
    ----------
    parts
        From :func:`multitrait_parts`.
    beta
        Draws of B [shape: (draws, d, T)].
    sigma_g, sigma_e
        Draws of Σg, Σe [each shape: (draws, T, T)].
    y_missing
        Draws of the missing training values in the order of ``parts`` [shape: (draws, m)],
        or None.
    """
    n_draws, T = beta.shape[0], beta.shape[2]
    out = np.empty((n_draws, parts.B.shape[0], T))
    for batch in _batches(n_draws, parts.s.size * T * T):
        n = batch.stop - batch.start
        Y1, null_Y = _filled(parts, y_missing, batch, n)
        sg, se, b = sigma_g[batch], sigma_e[batch], beta[batch]
        R1 = Y1 - parts.X1 @ b  # (n, r, T)
        V = parts.s[None, :, None, None] * sg[:, None] + se[:, None]  # (n, r, T, T)
        Z1 = np.linalg.solve(V, R1[..., None])[..., 0]  # rows r_i' M_i
        null = null_Y - parts.null_X @ b  # (n, n_new, T)
        null_term = np.swapaxes(np.linalg.solve(se, np.swapaxes(null, 1, 2)), 1, 2)
        out[batch] = (parts.B @ Z1 + null_term) @ sg
    return out


def fluctuations(
    parts: MultitraitParts,
    sigma_g: np.ndarray,
    sigma_e: np.ndarray,
    z_genetic: np.ndarray,
    z_noise: np.ndarray,
    z_new: np.ndarray,
) -> np.ndarray:
    """U_new − E[U_new | Y, θ] of each draw, from standard normals [shape: (draws, n_new, T)].

    Parameters
    ----------
    parts
        From :func:`multitrait_parts`.
    sigma_g, sigma_e
        Draws of Σg, Σe [each shape: (draws, T, T)].
    z_genetic, z_noise
        Standard normals of the prior draws ã_i and ẽ_i of Matheron's rule
        [each shape: (draws, r, T)].
    z_new
        Standard normals of the new samples' conditional part [shape: (draws, n_new, T)].

    Notes
    -----
    Linear in the normals: the covariance of the result is the conditional covariance of
    vec(U_new) (see :func:`predict_multitrait`, Notes) for a positive semidefinite K; a
    negative eigenvalue of S beyond rounding warns (:class:`~bayeslmm.errors.KinshipWarning`).
    """
    values, vectors = np.linalg.eigh(parts.schur)
    floor = PSD_TOLERANCE * max(1.0, float(np.abs(np.diag(parts.schur)).max()))
    if values.size and values.min() < -floor:
        warnings.warn(
            f"K over the training and new samples is not positive semidefinite (the new "
            f"samples' conditional kinship has eigenvalue {values.min():.3g}); it was clipped "
            "at 0 for the predictive draws.",
            KinshipWarning,
            stacklevel=3,
        )
    L_new = vectors * np.sqrt(np.clip(values, 0.0, None))
    s = parts.s
    n_draws, T = sigma_g.shape[0], sigma_g.shape[1]
    out = np.empty((n_draws, parts.B.shape[0], T))
    for batch in _batches(n_draws, s.size * T * T):
        sg, se = sigma_g[batch], sigma_e[batch]
        root_g = np.swapaxes(_root(sg), 1, 2)  # rows z L_g'
        prior_a = np.sqrt(s)[None, :, None] * (z_genetic[batch] @ root_g)  # ã_i ~ N(0, s_i Σg)
        prior_e = z_noise[batch] @ np.swapaxes(_root(se), 1, 2)  # ẽ_i ~ N(0, Σe)
        V = s[None, :, None, None] * sg[:, None] + se[:, None]
        shrink = np.linalg.solve(V, (prior_a + prior_e)[..., None])[..., 0] @ sg  # (M_i(ã+ẽ))'Σg
        a = prior_a - s[None, :, None] * shrink
        out[batch] = (parts.B / s) @ a + L_new @ z_new[batch] @ root_g
    return out


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


def _as_tree(
    idata: DataTree,
    new: list[str],
    traits: list[str],
    X_new: np.ndarray,
    g: np.ndarray,
    g_mean: np.ndarray | None,
    y_new: np.ndarray,
    form: str,
    random_seed: int | None,
) -> DataTree:
    post = idata["posterior"]
    chains, draws = post["chain"].values, post["draw"].values
    coords = {"chain": chains, "draw": draws, "sample": new, "trait": traits}

    def var(values: np.ndarray, what: str) -> xr.DataArray:
        return xr.DataArray(
            values.reshape(len(chains), len(draws), len(new), len(traits)),
            dims=("chain", "draw", "sample", "trait"),
            coords=coords,
            attrs={"description": what},
        )

    data = {
        "g": var(g, "genetic value of each new sample and trait, per posterior draw"),
        "y": var(y_new, "phenotype X B + g + e of each new sample and trait, per draw"),
    }
    if g_mean is not None:
        data["g_mean"] = var(g_mean, "E[g | Y, θ] of each draw (the BLUP at that draw)")
    covariates = [str(c) for c in idata["constant_data"]["X"]["covariate"].values]
    tree = DataTree.from_dict(
        {
            "predictions": xr.Dataset(data),
            "predictions_constant_data": xr.Dataset(
                {
                    "X": xr.DataArray(
                        X_new,
                        dims=("sample", "covariate"),
                        coords={"sample": new, "covariate": covariates},
                    )
                }
            ),
        }
    )
    tree.attrs.update(dict(idata.attrs))
    tree.attrs["prediction"] = form
    tree.attrs["prediction_random_seed"] = "" if random_seed is None else int(random_seed)
    return tree


def hdi(draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ``prob`` of the draws, per column [each shape: (k,)]."""
    n = draws.shape[0]
    ordered = np.sort(draws, axis=0)
    keep = max(1, int(np.ceil(prob * n)))
    widths = ordered[keep - 1 :] - ordered[: n - keep + 1]
    start = np.argmin(widths, axis=0)
    cols = np.arange(draws.shape[1])
    return ordered[start, cols], ordered[start + keep - 1, cols]


def summarize_predictions(
    centre: np.ndarray, draws: np.ndarray, name: str, prob: float
) -> pd.DataFrame:
    """Per (sample, trait), sample-major: mean of ``centre``, SD and HDI of ``draws``."""
    centre = centre.reshape(centre.shape[0], -1)
    draws = draws.reshape(draws.shape[0], -1)
    n = draws.shape[0]
    nan = np.full(draws.shape[1], np.nan)
    lower, upper = hdi(draws, prob) if n > 1 else (nan, nan)
    return pd.DataFrame(
        {
            f"{name}_mean": centre.mean(axis=0),
            f"{name}_sd": draws.std(axis=0, ddof=1) if n > 1 else nan,
            f"{name}_hdi_lower": lower,
            f"{name}_hdi_upper": upper,
        }
    )
