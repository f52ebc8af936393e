"""Figures: the posterior of h², Manhattan and QQ plots of a scan, genomic control."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from xarray import DataTree

    from bayeslmm.estimation.reml import RemlFit


def plot_h2_posterior(
    idata: DataTree,
    fit: RemlFit | None = None,
    path: str | Path | None = None,
    *,
    truth: float | None = None,
    hdi_prob: float = 0.95,
):
    """Plot the posterior density of h² with its HDI, and the REML estimate ± 1.96 SE.

    Parameters
    ----------
    idata : xarray.DataTree
        Posterior with an ``h2`` variable.
    fit : RemlFit, optional
        REML fit to overlay.
    path : str or Path, optional
        Write the figure there as PNG (whatever the extension) and close it.
    truth : float, optional
        The simulated value, drawn as a vertical line.
    hdi_prob : float
        Mass of the shaded highest-density interval.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from scipy import stats

    draws = np.asarray(idata.posterior["h2"]).ravel()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    grid = np.linspace(0, 1, 501)
    density = stats.gaussian_kde(draws)(grid) if draws.size > 1 and draws.std() > 0 else None
    if density is not None:
        ax.plot(grid, density, color="C0", label="posterior")
        ordered = np.sort(draws)
        width = int(np.floor(hdi_prob * ordered.size))
        k = int(np.argmin(ordered[width:] - ordered[: ordered.size - width]))
        lo, hi = ordered[k], ordered[k + width]
        mask = (grid >= lo) & (grid <= hi)
        ax.fill_between(
            grid[mask],
            density[mask],
            color="C0",
            alpha=0.25,
            label=f"{int(hdi_prob * 100)}% HDI [{lo:.2f}, {hi:.2f}]",
        )
        ax.axvline(draws.mean(), color="C0", lw=1, ls=":", label=f"mean {draws.mean():.3f}")
    if fit is not None:
        ax.axvline(fit.h2, color="C3", lw=1.5, label=f"REML {fit.h2:.3f} ± {1.96 * fit.h2_se:.3f}")
        ax.axvspan(
            max(fit.h2 - 1.96 * fit.h2_se, 0),
            min(fit.h2 + 1.96 * fit.h2_se, 1),
            color="C3",
            alpha=0.08,
        )
    if truth is not None:
        ax.axvline(truth, color="k", lw=1, ls="--", label=f"true {truth:.2f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("h² (SNP-heritability)")
    ax.set_ylabel("posterior density")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)
    return fig


def lambda_gc(p: np.ndarray) -> float:
    r"""Genomic-control inflation factor: median χ²₁ statistic over its null median (0.4549).

    Notes
    -----
    :math:`\lambda_{GC} = \mathrm{median}(F^{-1}_{\chi^2_1}(1 - p)) / F^{-1}_{\chi^2_1}(0.5)`
    over the finite p-values; 1 for a calibrated test without true signals.
    """
    from scipy import stats

    p = np.asarray(p, dtype=float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return float("nan")
    return float(np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1))


def _pyplot(path):
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_manhattan(table, column: str = "p_wald", path=None, *, threshold: float = 5e-8):
    """Manhattan plot of −log10 p by chromosome and position.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`bayeslmm.scan` (columns chrom, pos and ``column``).
    column : str
        The p-value column.
    path : str or Path, optional
        Write a PNG there and close the figure.
    threshold : float
        Genome-wide significance line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot(path)
    data = table[["chrom", "pos", column]].dropna()
    chroms = sorted(data["chrom"].unique(), key=lambda c: (len(str(c)), str(c)))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    offset, ticks = 0.0, []
    for k, chrom in enumerate(chroms):
        part = data[data["chrom"] == chrom]
        x = part["pos"].to_numpy(dtype=float) - part["pos"].min() + offset
        ax.scatter(x, -np.log10(part[column]), s=4, color="C0" if k % 2 == 0 else "C7")
        ticks.append((x.min() + x.max()) / 2 if x.size else offset)
        offset = (x.max() if x.size else offset) + 1e6
    ax.axhline(-np.log10(threshold), color="C3", lw=0.8, ls="--")
    ax.set_xticks(ticks, [str(c) for c in chroms])
    ax.set_xlabel("chromosome")
    ax.set_ylabel(f"−log10 {column}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)
    return fig


def plot_qq(table, column: str = "p_wald", path=None):
    """QQ plot of observed against expected −log10 p, with λGC in the legend.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot(path)
    p = np.sort(table[column].dropna().to_numpy())
    expected = -np.log10((np.arange(1, p.size + 1) - 0.5) / p.size)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(expected, -np.log10(p), s=4, label=f"λGC = {lambda_gc(p):.3f}")
    top = max(expected.max(initial=1), 1)
    ax.plot([0, top], [0, top], color="k", lw=0.8)
    ax.set_xlabel("expected −log10 p")
    ax.set_ylabel(f"observed −log10 {column}")
    ax.legend(frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)
    return fig
