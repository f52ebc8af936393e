"""The multi-trait fit: its result, :class:`MultiRemlFit`, and :func:`reml_multivariate`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.inputs import kinship_inputs
from bayeslmm.errors import BayeslmmWarning, InputError
from bayeslmm.estimation.multivariate.optimization import absorbed, maximize
from bayeslmm.estimation.multivariate.parameters import (
    BOUNDARY,
    boundary_terms,
    correlation,
    heritability,
    unvech,
)
from bayeslmm.estimation.multivariate.rotation import evaluate, rotate_traits
from bayeslmm.estimation.multivariate.uncertainty import (
    information_uncertainty,
    profile_uncertainty,
)
from bayeslmm.linalg.spectral import standardize
from bayeslmm.relatedness.gram import Gram


@dataclass(frozen=True)
class MultiRemlFit:
    """Multi-trait (RE)ML estimate of the genetic and residual covariance matrices.

    Attributes
    ----------
    traits : tuple of str
        Trait names (the columns of Y; ``trait1``, ... for an array).
    Vg, Ve : pandas.DataFrame
        Genetic and residual covariance matrices Σg and Σe (T×T, indexed both ways by trait), in
        the traits' units, Σg on the scale of K normalized to mean diagonal 1 (``kinship_scale``
        is the factor K was divided by).
    Vg_se, Ve_se : pandas.DataFrame
        Standard errors of each entry (observed information; never NaN).
    h2, h2_se : pandas.Series
        Heritability of each trait, Σg_tt/(Σg_tt + Σe_tt), and its standard error.
    rg, re : pandas.DataFrame
        Genetic and residual correlation matrices. A genetic correlation with a trait whose h²
        is exactly 0 is not identified and is reported as 0 (its SE is that of a flat profile);
        with an h² near 0 (e.g. 0.001–0.01) the likelihood is nearly flat in rg and the
        estimate may sit anywhere in [−1, 1], often at ±1, with a profile SE of ~0.5 (seen in
        examples/07_genetic_correlation): the posterior of rg says more there.
    rg_se, re_se : pandas.DataFrame
        Their standard errors (0 on the diagonal; never NaN).
    se_method : str
        ``"observed information"`` (interior estimate: delta method on the inverse Hessian in
        (Σg, Σe)) or ``"profile likelihood"`` (estimate on the boundary: SEs of h², rg and re are
        the widths of their 95 % profile-likelihood intervals / 3.92).
    boundary : tuple of str
        What puts the estimate on the boundary (e.g. ``"h2[bmi] = 0"``); empty when interior.
    loglik : float
        Maximized (restricted) log-likelihood of Y in the user's units (GEMMA's convention, as
        :func:`bayeslmm.reml`): y_t → a_t·y_t + b_t shifts it by −N·log|a_t| (ML) or
        −(N − d)·log|a_t| (REML) per trait and changes nothing else.
    B, B_se : pandas.DataFrame
        GLS fixed effects (covariates × traits) at the estimate, and their standard errors.
    method : str
        ``"reml"`` or ``"ml"``.
    n : int
        Samples analysed (complete in every trait and covariate).
    kinship_scale : float
        The factor K was divided by (1 with ``normalize=False``).
    converged : bool
        Whether the optimizer reached its tolerance (or the boundary).
    iterations : int
        BFGS iterations of the best start.
    optimizer_message : str
        The optimizer's message.
    dropped : dict
        Samples dropped, by reason.
    intervals : dict
        With ``se_method == "profile likelihood"``: the 95 % profile intervals, ``"h2"``
        (DataFrame, columns lower/upper), ``"rg"`` and ``"re"`` (dicts (a, b) → (lower, upper)).
    """

    traits: tuple[str, ...]
    Vg: pd.DataFrame
    Ve: pd.DataFrame
    Vg_se: pd.DataFrame
    Ve_se: pd.DataFrame
    h2: pd.Series
    h2_se: pd.Series
    rg: pd.DataFrame
    rg_se: pd.DataFrame
    re: pd.DataFrame
    re_se: pd.DataFrame
    se_method: str
    boundary: tuple[str, ...]
    loglik: float
    B: pd.DataFrame
    B_se: pd.DataFrame
    method: str
    n: int
    kinship_scale: float
    converged: bool
    iterations: int
    optimizer_message: str
    dropped: dict[str, int] = field(default_factory=dict)
    intervals: dict[str, Any] = field(default_factory=dict)

    @property
    def at_boundary(self) -> bool:
        """Whether the estimate is on the boundary of the parameter space."""
        return bool(self.boundary)

    def to_series(self) -> pd.Series:
        """The results as one Series (for tables and TSV output, as ``RemlFit.to_series``).

        Returns
        -------
        pandas.Series
            Per trait ``h2[t]``, ``h2_se[t]`` (and ``h2_lower[t]``, ``h2_upper[t]`` with profile
            intervals); per pair a ≤ b ``Vg[a,b]``, ``Vg_se[a,b]``, ``Ve[a,b]``, ``Ve_se[a,b]``;
            per pair a < b ``rg[a,b]``, ``rg_se[a,b]``, ``re[a,b]``, ``re_se[a,b]`` (and their
            profile bounds); then ``se_method``, ``boundary`` (``"; "``-joined), ``loglik``,
            ``at_boundary``, ``method``, ``n``, ``kinship_scale``, ``converged``,
            ``iterations``, ``optimizer_message``.
        """
        out: dict[str, Any] = {}
        h2_ci = self.intervals.get("h2")
        for t in self.traits:
            out[f"h2[{t}]"] = float(self.h2[t])
            out[f"h2_se[{t}]"] = float(self.h2_se[t])
            if h2_ci is not None:
                out[f"h2_lower[{t}]"] = float(h2_ci.loc[t, "lower"])
                out[f"h2_upper[{t}]"] = float(h2_ci.loc[t, "upper"])
        pairs = [(a, b) for i, a in enumerate(self.traits) for b in self.traits[i:]]
        for name in ("Vg", "Ve"):
            value, se = getattr(self, name), getattr(self, f"{name}_se")
            for a, b in pairs:
                out[f"{name}[{a},{b}]"] = float(value.loc[a, b])
                out[f"{name}_se[{a},{b}]"] = float(se.loc[a, b])
        for name in ("rg", "re"):
            value, se = getattr(self, name), getattr(self, f"{name}_se")
            bounds = self.intervals.get(name)
            for a, b in ((a, b) for a, b in pairs if a != b):
                out[f"{name}[{a},{b}]"] = float(value.loc[a, b])
                out[f"{name}_se[{a},{b}]"] = float(se.loc[a, b])
                if bounds is not None:
                    out[f"{name}_lower[{a},{b}]"], out[f"{name}_upper[{a},{b}]"] = bounds[(a, b)]
        out.update(
            se_method=self.se_method,
            boundary="; ".join(self.boundary),
            loglik=self.loglik,
            at_boundary=self.at_boundary,
            method=self.method,
            n=self.n,
            kinship_scale=self.kinship_scale,
            converged=self.converged,
            iterations=self.iterations,
            optimizer_message=self.optimizer_message,
        )
        return pd.Series(out, dtype=object)

    def __str__(self) -> str:
        T = len(self.traits)
        lines = [
            f"multi-trait {self.method.upper()} fit of {T} traits on {self.n} samples"
            + (f" (boundary: {'; '.join(self.boundary)})" if self.boundary else ""),
            f"  SEs from the {self.se_method}; loglik {self.loglik:.6f}",
        ]
        for t in self.traits:
            lines.append(
                f"  h2[{t}] {self.h2[t]:.4f} (SE {self.h2_se[t]:.4f})  "
                f"Vg {self.Vg.loc[t, t]:.6g}  Ve {self.Ve.loc[t, t]:.6g}"
            )
        for i in range(T):
            for j in range(i + 1, T):
                a, b = self.traits[i], self.traits[j]
                lines.append(
                    f"  rg[{a}, {b}] {self.rg.loc[a, b]:+.4f} (SE {self.rg_se.loc[a, b]:.4f})  "
                    f"re {self.re.loc[a, b]:+.4f} (SE {self.re_se.loc[a, b]:.4f})"
                )
        return "\n".join(lines)


def trait_table(Y: Any) -> tuple[np.ndarray, list[str], pd.Index | None]:
    """Values [shape: (N, T)], trait names, and the sample IDs of Y (None for an array)."""
    if isinstance(Y, pd.DataFrame):
        names = [str(c) for c in Y.columns]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"Y has duplicated trait names {dup}; rename the columns.")
        for col in Y.columns:
            if not pd.api.types.is_numeric_dtype(Y[col].dtype) or Y[col].dtype == bool:
                raise InputError(
                    f"trait '{col}' is not numeric (dtype {Y[col].dtype}); convert it to numbers."
                )
        values = Y.to_numpy(dtype=float, na_value=np.nan)
        index: pd.Index | None = Y.index
    elif isinstance(Y, pd.Series):
        raise InputError(
            "Y is one phenotype (a Series); the multi-trait fit needs a table of T ≥ 2 trait "
            "columns (use bl.reml for one trait)."
        )
    else:
        try:
            values = np.asarray(Y, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"Y could not be read as numbers ({exc}).") from None
        if values.ndim != 2:
            raise InputError(
                f"Y must be a table of traits [shape (n_samples, n_traits)], got shape "
                f"{values.shape}."
            )
        names = [f"trait{t + 1}" for t in range(values.shape[1])]
        index = None
    if values.shape[1] < 2:
        raise InputError(
            f"Y has {values.shape[1]} trait column(s); the multi-trait fit needs at least 2 "
            "(use bl.reml for one trait)."
        )
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"Y has duplicated trait names {dup}; rename the columns.")
    if np.isinf(values).any():
        t = int(np.flatnonzero(np.isinf(values).any(axis=0))[0])
        raise InputError(f"trait '{names[t]}' has infinite values; fix them or set them to NaN.")
    return values, names, index


def check_traits(Y: np.ndarray, X: np.ndarray, names: list[str]) -> None:
    """Constant traits, and traits that are a combination of the others and the covariates."""
    for t, name in enumerate(names):
        if np.ptp(Y[:, t]) == 0:
            raise InputError(
                f"trait '{name}' is constant ({Y[0, t]:g}) over the {Y.shape[0]} samples "
                "analysed; there is no variance to partition (remove it)."
            )
    Q, _ = np.linalg.qr(X)
    R = Y - Q @ (Q.T @ Y)
    norms = np.linalg.norm(R, axis=0)
    for t, name in enumerate(names):
        if norms[t] <= 1e-10 * max(np.linalg.norm(Y[:, t]), 1e-300):
            raise InputError(
                f"trait '{name}' is a combination of the covariates (no residual variance); "
                "remove it or the covariates that explain it."
            )
    sv = np.linalg.svd(R / norms, compute_uv=False)
    if sv[-1] <= 1e-7 * sv[0]:
        raise InputError(
            f"the traits {names} are linearly dependent given the covariates (a trait is a "
            "combination of the others: the residual covariance Σe would be singular); remove "
            "the redundant trait."
        )


def reml_multivariate(
    Y: Any,
    K: Any,
    X: Any = None,
    *,
    method: str = "reml",
    normalize: bool = True,
) -> MultiRemlFit:
    r"""Estimate the genetic and residual covariance matrices of several traits by REML or ML.

    Parameters
    ----------
    Y
        Traits [shape: (n_samples, n_traits)], T ≥ 2: a DataFrame of trait columns indexed by
        sample ID, or an array aligned by position with K. Samples missing any trait are dropped
        (complete cases) with a DataWarning that says how many.
    K
        Kinship [shape: (n_samples, n_samples)]: array, DataFrame indexed by ID, Kinship, or a
        :class:`~bayeslmm.linalg.spectral.Spectral`.
    X
        Covariates [shape: (n_samples, n_covariates)], the same for every trait; an intercept is
        added unless X spans the constant. None: intercept only.
    method : {"reml", "ml"}
    normalize
        Divide K by its mean diagonal first (h² then matches GCTA and GEMMA's PVE).

    Returns
    -------
    MultiRemlFit

    Raises
    ------
    InputError
        Fewer than two traits, a non-numeric or constant trait, traits that are linearly
        dependent given the covariates, no sample shared by Y, K and X, several kinships or a
        Gram.

    Notes
    -----
    The model is :math:`Y = XB + U + E`, :math:`\operatorname{vec}(U) \sim N(0, \Sigma_g\otimes
    K)`, :math:`\operatorname{vec}(E) \sim N(0, \Sigma_e\otimes I)`. Each trait is first
    replaced by its least-squares residual on X in units of its residual SD
    (:func:`~bayeslmm.linalg.spectral.standardize`), so the fit does not depend on units or
    offsets; Σg, Σe, B and the log-likelihood are transformed back exactly. In the eigenbasis
    of K, with Σg and Σe diagonalized together, the (restricted) likelihood and its gradient
    cost O(r·T·d² + T³) per evaluation (see :func:`evaluate`).

    The likelihood is maximized by BFGS with the analytic gradient over the Cholesky factors
    :math:`\Sigma_g = L_gL_g^\top` (any lower-triangular :math:`L_g`: positive semi-definite,
    so h² = 0 and rg = ±1 are legal answers) and :math:`\Sigma_e = L_eL_e^\top` (positive
    diagonal), from two starting points (one-trait fits with rg = re = the phenotypic
    correlation, and with rg = 0), then polished by Newton steps on (Σg, Σe) when interior.

    Standard errors: at an interior estimate, the observed information in
    φ = (vech Σg, vech Σe) from differences of the analytic gradient, and the delta method
    for h², rg and re. On the boundary (h² = 0 or 1, a singular genetic correlation matrix such
    as rg = ±1), where that information is singular for h² and rg, every SE of h², rg and re
    is the width of its 95 % profile-likelihood interval divided by 2·1.96
    (``se_method = "profile likelihood"``; the intervals are in ``intervals``).

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayeslmm as bl
    >>> d = bl.simulate(300, 500, h2=0.5, seed=1)
    >>> Y = np.column_stack([d.y, d.y + np.random.default_rng(0).normal(size=300)])
    >>> fit = bl.reml_multivariate(Y, d.K)
    >>> fit.rg.shape
    (2, 2)
    """
    if method not in ("reml", "ml"):
        raise InputError(f"method must be 'reml' or 'ml', got {method!r}.")
    if isinstance(K, Gram):
        raise InputError(
            "the multi-trait fit takes a kinship (bl.kinship(genotypes, method=gram.method)), "
            "not a Gram, so far."
        )
    if isinstance(K, list | tuple | Mapping):
        raise InputError(
            "the multi-trait fit takes one kinship; several variance components with several "
            "traits are not supported."
        )
    values, names, index = trait_table(Y)
    complete = ~np.isnan(values).any(axis=1)
    proxy_values = np.where(complete, np.arange(values.shape[0], dtype=float), np.nan)
    label = f"value of a trait in {names} (complete cases only)"
    proxy: Any = proxy_values if index is None else pd.Series(proxy_values, index, name=label)
    prepared, spectral = kinship_inputs(proxy, K, X, normalize=normalize)
    rows = prepared.y.astype(np.int64)
    Yp = values[rows]
    check_traits(Yp, prepared.X, names)
    T = len(names)
    stds = [standardize(Yp[:, t], prepared.X) for t in range(T)]
    Ys = np.column_stack([s.y for s in stds])
    Xs = stds[0].X
    rot = rotate_traits(spectral, Ys, Xs)
    opt = maximize(rot, method)
    if not opt.converged:
        warnings.warn(
            f"the multi-trait {method.upper()} fit did not reach a maximum ({opt.message}); "
            + (
                "ML has none here: the null space of K lies in the span of the covariates (a "
                "centred kinship with an intercept), so the ML likelihood grows without bound "
                "as Σe becomes singular and has no local maximum for these data. Use "
                "method='reml' (which has no such problem)."
                if method == "ml" and absorbed(rot)
                else "the estimates are where the optimizer stopped."
            ),
            BayeslmmWarning,
            stacklevel=2,
        )
    sg, se = opt.sigma_g, opt.sigma_e
    h2 = heritability(sg, se)
    zero = h2 <= BOUNDARY
    if zero.any():  # h² = 0: the genetic row of that trait is 0 (to round-off)
        sg = sg.copy()
        sg[zero, :] = 0.0
        sg[:, zero] = 0.0
    at = evaluate(rot, sg, se, method)
    boundary = boundary_terms(sg, se, names)
    if boundary:
        unc = profile_uncertainty(rot, sg, se, method, max(at.loglik, opt.at.loglik))
    else:
        unc = information_uncertainty(rot, sg, se, method)
    scale = np.array([s.scale for s in stds])
    m = T * (T + 1) // 2
    phi_se = np.sqrt(np.clip(np.diag(unc.phi_cov), 0.0, None))
    outer = np.outer(scale, scale)
    Vg_se = unvech(phi_se[:m], T) * outer
    Ve_se = unvech(phi_se[m:], T) * outer
    n_eff = prepared.n - (prepared.X.shape[1] if method == "reml" else 0)
    loglik = float(at.loglik - n_eff * np.log(scale).sum())
    B = np.column_stack([stds[t].beta(at.B[:, t]) for t in range(T)])
    B_se = np.column_stack([np.sqrt(np.diag(stds[t].beta_cov(at.B_cov[t]))) for t in range(T)])
    covariates = list(prepared.covariates)

    def square(values: np.ndarray, name: str) -> pd.DataFrame:
        frame = pd.DataFrame(values, index=names, columns=names)
        frame.index.name, frame.columns.name = "trait", "trait2"
        frame.attrs["name"] = name
        return frame

    rg, re = correlation(sg), correlation(se)
    intervals: dict[str, Any] = {}
    if unc.h2_ci is not None:
        intervals["h2"] = pd.DataFrame(unc.h2_ci, index=names, columns=["lower", "upper"])
        for key, ci in (("rg", unc.rg_ci), ("re", unc.re_ci)):
            intervals[key] = {
                (names[a], names[b]): (float(ci[a, b, 0]), float(ci[a, b, 1]))
                for a in range(T)
                for b in range(a + 1, T)
            }
    return MultiRemlFit(
        traits=tuple(names),
        Vg=square(sg * outer, "Vg"),
        Ve=square(se * outer, "Ve"),
        Vg_se=square(Vg_se, "Vg_se"),
        Ve_se=square(Ve_se, "Ve_se"),
        h2=pd.Series(heritability(sg, se), index=names, name="h2"),
        h2_se=pd.Series(unc.h2_se, index=names, name="h2_se"),
        rg=square(rg, "rg"),
        rg_se=square(unc.rg_se * (1 - np.eye(T)), "rg_se"),
        re=square(re, "re"),
        re_se=square(unc.re_se * (1 - np.eye(T)), "re_se"),
        se_method=unc.method,
        boundary=tuple(boundary),
        loglik=loglik,
        B=pd.DataFrame(B, index=covariates, columns=names),
        B_se=pd.DataFrame(B_se, index=covariates, columns=names),
        method=method,
        n=prepared.n,
        kinship_scale=spectral.scale,
        converged=opt.converged,
        iterations=opt.iterations,
        optimizer_message=opt.message,
        dropped=prepared.dropped,
        intervals=intervals,
    )
