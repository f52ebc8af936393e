"""Figures: the posterior of h² (Manhattan and QQ plots come with the scan)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

    from bayeslmm.reml import RemlFit


def plot_h2_posterior(
    idata: az.InferenceData,
    fit: RemlFit | None = None,
    path: str | Path | None = None,
    *,
    truth: float | None = None,
    hdi_prob: float = 0.95,
):
    """Plot the posterior density of h² with its HDI, and the REML estimate ± 1.96 SE.

    Parameters
    ----------
    idata : arviz.InferenceData
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
