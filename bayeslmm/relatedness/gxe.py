r"""The gene–environment (G×E) relationship matrix K ∘ (e eᵀ), a variance component.

A random genetic slope on an environment e, u_gxe,i = e_i a_i with a ~ N(0, σ²_gxe K), has
covariance σ²_gxe K ∘ (e eᵀ); given as one kinship of a list to :func:`bayeslmm.reml`
(``bl.reml(y, [K, bl.gxe_kinship(K, e)], X)``) or to the several-components model, it gives the
share of the phenotypic variance due to G×E beside the additive h².
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.samples import positional_ids, sample_ids
from bayeslmm.errors import InputError
from bayeslmm.relatedness.relationship import Kinship


def environment_values(env: Any, label: str = "env") -> tuple[np.ndarray, pd.Index | None, str]:
    """An environment's values [shape: (n,)], its sample IDs (None for a plain array), name.

    Parameters
    ----------
    env
        A Series (by sample ID), a one-column DataFrame, or an array of one value per sample.
    label : str
        The argument's name, for the messages.

    Raises
    ------
    InputError
        For a table of several columns, values that are not numbers, or not one per sample.
    """
    name = "env"
    if isinstance(env, pd.DataFrame):
        if env.shape[1] != 1:
            raise InputError(
                f"{label} is a table with {env.shape[1]} columns {list(env.columns)[:5]}; pass one "
                "environment column, e.g. covariates['smoking']."
            )
        env = env.iloc[:, 0]
    if isinstance(env, pd.Series):
        name = str(env.name) if env.name is not None else name
        if not (pd.api.types.is_numeric_dtype(env.dtype) or env.dtype == bool):
            raise InputError(
                f"environment '{name}' is not numeric (dtype {env.dtype}); give numbers (a "
                "two-level factor as 0/1; test a factor of more levels one indicator at a time)."
            )
        return env.to_numpy(dtype=float, na_value=np.nan), sample_ids(env, label), name
    try:
        values = np.asarray(env, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"environment {label} could not be read as numbers ({exc}); give numbers (a "
            "two-level factor as 0/1)."
        ) from None
    values = np.squeeze(values) if values.ndim == 2 and 1 in values.shape else values
    if values.ndim != 1:
        raise InputError(f"{label} must be one value per sample [shape (n,)], got {values.shape}.")
    return values, None, name


def gxe_kinship(K: Any, env: Any) -> Any:
    r"""The G×E relationship matrix K ∘ (e eᵀ), aligned by sample ID.

    Parameters
    ----------
    K
        Kinship [shape: (n_samples, n_samples)]: a :class:`Kinship`, a DataFrame indexed both
        ways by sample ID, or an array (its samples named "1".."N", the package's positional
        convention).
    env
        Environment: Series indexed by sample ID, or an array aligned with K's rows
        [shape: (n_samples,)]; numeric, known for every sample of K.

    Returns
    -------
    Kinship, DataFrame or ndarray
        :math:`K_{ij} e_i e_j` [shape: (n_samples, n_samples)], of K's type and in K's sample
        order (a Kinship keeps its IDs, SNP count and family IDs; ``method`` becomes
        ``"gxe(<method>)"``).

    Raises
    ------
    InputError
        env not numeric, missing (NaN, or no value for a sample of K), infinite or constant;
        a plain-array env whose length is not K's; K not square.

    Notes
    -----
    .. math::

        K_{GxE} = K \circ (e e^\top), \qquad
        \operatorname{Cov}(u_{GxE}) = \sigma^2_{GxE} K_{GxE}
        \text{ for } u_{GxE,i} = e_i a_i,\ a \sim N(0, \sigma^2_{GxE} K).

    e is used as given. Its scale does not matter to a fit that normalizes each kinship to
    mean diagonal 1 (``bl.reml``'s default), but its origin does: with e uncentred,
    K ∘ (e eᵀ) also carries part of the main genetic effect (for e ≡ 1 it is K), so centre e
    (or standardize it) for a component that is the interaction alone. A constant e is refused
    for that reason. The product is elementwise, O(N²), and keeps K's symmetry and
    positive semi-definiteness (Schur product theorem).
    """
    if isinstance(K, Kinship):
        matrix, ids = np.asarray(K.matrix, dtype=float), pd.Index(K.samples.astype(str))
    elif isinstance(K, pd.DataFrame):
        matrix, ids = K.to_numpy(dtype=float), sample_ids(K, "K")
    else:
        try:
            matrix = np.asarray(K, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"K could not be read as numbers ({exc}).") from None
        ids = None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"K must be a square matrix, got shape {matrix.shape}.")
    n = matrix.shape[0]
    values, env_ids, name = environment_values(env)
    if env_ids is None:
        if values.shape[0] != n:
            raise InputError(
                f"env has {values.shape[0]} values but K has {n} samples; a plain array is "
                "aligned by position with K (pass a Series indexed by sample ID to align by ID)."
            )
        aligned = values
    else:
        k_ids = ids if ids is not None else pd.Index(positional_ids(n))
        pos = env_ids.get_indexer(k_ids)
        aligned = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
    missing = np.isnan(aligned)
    if missing.any():
        k_ids = ids if ids is not None else pd.Index(positional_ids(n))
        shown = [str(i) for i in k_ids[missing][:5]]
        raise InputError(
            f"environment '{name}' is missing for {int(missing.sum())} of K's {n} samples "
            f"(e.g. {shown}); give it for every sample, or restrict K to the samples that have "
            "it."
        )
    if np.isinf(aligned).any():
        raise InputError(f"environment '{name}' has infinite values; fix them.")
    if np.ptp(aligned) == 0:
        raise InputError(
            f"environment '{name}' is constant ({aligned[0]:g}), so K ∘ (e eᵀ) is a multiple of "
            "K and no G×E component can be told from the genetic one; give an environment that "
            "varies."
        )
    product = matrix * np.multiply.outer(aligned, aligned)
    if isinstance(K, Kinship):
        return Kinship(
            matrix=product,
            samples=K.samples,
            n_snps=K.n_snps,
            method=f"gxe({K.method})",
            qc=dict(K.qc),
            fid=K.fid,
        )
    if isinstance(K, pd.DataFrame):
        return pd.DataFrame(product, index=K.index, columns=K.columns)
    return product
