r"""Major loci: named SNPs as fixed effects beside the polygenic random effect.

``kinship_model(y, K, X, fixed_snps=...)`` adds the allele counts of the named SNPs to X (one
covariate per SNP, named by it; the intercept stays) and three Deterministics that split the
phenotypic variance into the loci, the polygenic background and the residual:

.. math::

    \sigma_L^2 = \operatorname{var}_i(X_{L,i}\beta_L), \quad
    h^2_\text{loci} = \frac{\sigma_L^2}{\sigma_L^2 + \sigma_g^2 + \sigma_e^2}, \quad
    h^2_\text{background} = \frac{\sigma_g^2}{\sigma_L^2 + \sigma_g^2 + \sigma_e^2}, \quad
    h^2_\text{total} = h^2_\text{loci} + h^2_\text{background}.

The model's ``h2`` stays the polygenic σg²/(σg² + σe²), the share of the variance *left after
the loci* (and the other covariates) that the background explains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm

import bayeslmm.families.backend  # noqa: F401  (PyTensor set-up, before any model is built)
from bayeslmm.errors import InputError
from bayeslmm.families.base import Family, info_of, register_model
from bayeslmm.families.lmm import kinship_lmm, postprocess
from bayeslmm.families.priors import PriorLike


def _genotype_table(fixed_snps: Any) -> pd.DataFrame:
    """The loci as a DataFrame of allele counts indexed by sample ID (NaN = missing)."""
    if isinstance(fixed_snps, tuple) and len(fixed_snps) == 2:
        genotypes, names = fixed_snps
        if not (hasattr(genotypes, "read") and hasattr(genotypes, "snps")):
            raise InputError(
                "fixed_snps as a tuple must be (Genotypes, list of SNP names), e.g. "
                "(bl.read_plink(prefix), ['rs123', 'rs456'])."
            )
        names = [names] if isinstance(names, str) else [str(s) for s in names]
        ids = genotypes.snps["snp"].astype(str).to_numpy()
        where = {name: np.flatnonzero(ids == name) for name in names}
        absent = [name for name, hit in where.items() if hit.size == 0]
        if absent:
            raise InputError(
                f"fixed SNP(s) {absent[:5]} are not in the genotype file ({genotypes!r}); "
                "check the names against genotypes.snps['snp']."
            )
        twice = [name for name, hit in where.items() if hit.size > 1]
        if twice:
            raise InputError(
                f"fixed SNP(s) {twice[:5]} occur more than once in the genotype file; pass a "
                "DataFrame of the allele counts you mean instead."
            )
        pos = np.array([where[name][0] for name in names], dtype=np.intp)
        values = genotypes.read(snps=pos)
        table = pd.DataFrame(values, index=np.asarray(genotypes.samples).astype(str), columns=names)
    elif isinstance(fixed_snps, pd.DataFrame):
        table = fixed_snps.copy()
        table.index = table.index.astype(str)
        table.columns = [str(c) for c in table.columns]
        for col in table.columns:
            if not pd.api.types.is_numeric_dtype(table[col].dtype):
                raise InputError(
                    f"fixed SNP '{col}' is not numeric (dtype {table[col].dtype}); give allele "
                    "counts 0/1/2 (or dosages), NaN for a missing call."
                )
        table = table.astype(float)
    else:
        raise InputError(
            "fixed_snps must be a DataFrame of allele counts (samples × named SNPs, indexed by "
            "sample ID) or a tuple (Genotypes, list of SNP names), got "
            f"{type(fixed_snps).__name__}."
        )
    if table.shape[1] == 0:
        raise InputError("fixed_snps names no SNP; pass at least one, or leave it None.")
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise InputError(f"fixed_snps has duplicated sample IDs {dup}; list every sample once.")
    if pd.Index(table.columns).has_duplicates:
        raise InputError("fixed_snps names a SNP twice; list every SNP once.")
    return table


def _impute(table: pd.DataFrame) -> pd.DataFrame:
    """Replace missing calls by the SNP's mean over the samples given; check each SNP varies."""
    values = table.to_numpy(dtype=float)
    if np.isinf(values).any():
        raise InputError("fixed_snps has infinite values; NaN marks a missing call.")
    observed = ~np.isnan(values)
    empty = [c for c, ok in zip(table.columns, observed.any(axis=0), strict=True) if not ok]
    if empty:
        raise InputError(f"fixed SNP(s) {empty[:5]} have no observed genotype; remove them.")
    mean = np.nanmean(values, axis=0)
    values = np.where(observed, values, mean)
    flat = [c for c, sd in zip(table.columns, values.std(axis=0), strict=True) if sd == 0]
    if flat:
        raise InputError(
            f"fixed SNP(s) {flat[:5]} are monomorphic in the samples given; their effect cannot "
            "be separated from the intercept; remove them."
        )
    return pd.DataFrame(values, index=table.index, columns=table.columns)


def _reference_ids(y: Any, K: Any) -> pd.Index | None:
    """The sample IDs that a plain X array is aligned with (K's, else y's), as in prepare()."""
    if isinstance(K, pd.DataFrame):
        return K.index.astype(str)
    if hasattr(K, "samples") and hasattr(K, "matrix"):
        return pd.Index(np.asarray(K.samples).astype(str))
    if isinstance(y, pd.Series | pd.DataFrame):
        return y.index.astype(str)
    return None


def add_loci(y: Any, K: Any, X: Any, fixed_snps: Any) -> tuple[pd.DataFrame, list[str]]:
    """Append the fixed SNPs to the covariates, aligned by sample ID.

    Parameters
    ----------
    y, K, X
        As given to :func:`bayeslmm.kinship_model` (used to find the sample IDs of a plain X).
    fixed_snps
        DataFrame of allele counts [shape: (n_samples, n_loci)] indexed by sample ID with SNP
        names as columns, or a tuple ``(Genotypes, [snp names])``.

    Returns
    -------
    X : DataFrame
        The covariates with one column per locus appended (mean-imputed allele counts),
        indexed by sample ID. Samples of X that ``fixed_snps`` lacks get NaN and are then
        dropped by the model's alignment (with a DataWarning).
    names : list of str
        The locus names, in column order.
    """
    loci = _impute(_genotype_table(fixed_snps))
    names = list(loci.columns)
    if X is None:
        return loci, names
    if isinstance(X, pd.Series):
        X = X.to_frame(name=X.name if X.name is not None else "x1")
    if not isinstance(X, pd.DataFrame):
        values = np.asarray(X, dtype=float)
        values = values[:, None] if values.ndim == 1 else values
        ref = _reference_ids(y, K)
        if ref is None or values.ndim != 2 or values.shape[0] != len(ref):
            raise InputError(
                "fixed_snps are aligned by sample ID, but X is a plain array and neither K nor y "
                "carries sample IDs of its length; pass X as a DataFrame indexed by sample ID."
            )
        X = pd.DataFrame(values, index=ref, columns=[f"x{j + 1}" for j in range(values.shape[1])])
    X = X.copy()
    X.index = X.index.astype(str)
    X.columns = [str(c) for c in X.columns]
    clash = sorted(set(X.columns) & set(names))
    if clash:
        raise InputError(
            f"fixed SNP(s) {clash} have the name of a covariate in X; rename one of them."
        )
    return X.join(loci, how="left"), names


def finish_loci_model(model: pm.Model, names: list[str]) -> None:
    r"""Add ``sigma_loci2``, ``h2_loci``, ``h2_background``, ``h2_total`` to a built model.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayeslmm.kinship_model` with the loci among its covariates.
    names : list of str
        Locus names (covariate names).

    Notes
    -----
    With :math:`C` the covariance (ddof = 0) over the analysed samples of the locus columns,
    embedded in a d×d matrix that is zero elsewhere,
    :math:`\sigma_L^2 = \beta^\top C \beta = \operatorname{var}_i(X_{L,i}\beta_L)`. The
    model's record (:func:`~bayeslmm.families.base.info_of`) becomes the ``"loci"`` family's,
    with ``extra`` holding ``fixed_snps`` (the names) and ``loci_columns`` (their positions in
    β).
    """
    info = info_of(model)
    covariates = list(info.data.covariates)
    columns = [covariates.index(name) for name in names]
    XL = info.data.X[:, columns]
    XL = XL - XL.mean(axis=0)
    cov = np.zeros((len(covariates), len(covariates)))
    cov[np.ix_(columns, columns)] = XL.T @ XL / XL.shape[0]
    with model:
        C = pm.Data("loci_cov", cov)
        beta = model["beta"]
        sigma_l2 = pm.Deterministic("sigma_loci2", beta @ C @ beta)
        total = sigma_l2 + model["sigma_g2"] + model["sigma_e2"]
        h2_loci = pm.Deterministic("h2_loci", sigma_l2 / total)
        h2_bg = pm.Deterministic("h2_background", model["sigma_g2"] / total)
        pm.Deterministic("h2_total", h2_loci + h2_bg)
    extra = {**info.extra, "fixed_snps": list(names), "loci_columns": columns}
    register_model(model, dataclasses.replace(info, family="loci", extra=extra))


def loci_model(
    y: Any,
    K: Any,
    X: Any = None,
    priors: Mapping[str, PriorLike] | str | None = None,
    *,
    fixed_snps: Any,
    parametrization: str | None = None,
    normalize: bool = True,
) -> pm.Model:
    """Build the kinship LMM with major loci as fixed effects (the ``"loci"`` family).

    Reached through ``kinship_model(y, K, X, fixed_snps=...)``; the arguments are those of
    :func:`bayeslmm.kinship_model`. The loci join X (:func:`add_loci`), the Gaussian kinship
    model is built on it, and :func:`finish_loci_model` adds the variance shares. Form
    ``"kinship_lmm"`` (the provenance of the kinship LMM); the u draws and LOO terms are its
    closed forms.
    """
    X, names = add_loci(y, K, X, fixed_snps)
    model = kinship_lmm(y, K, X, priors, parametrization=parametrization, normalize=normalize)
    finish_loci_model(model, names)
    return model


#: Major loci beside the polygenic effect: ``kinship_model(y, K, X, fixed_snps=...)``.
LOCI = Family(
    name="loci",
    build=loci_model,
    postprocess=postprocess,
    summary=("h2", "sigma_g2", "sigma_e2", "h2_loci", "h2_background", "h2_total"),
)
