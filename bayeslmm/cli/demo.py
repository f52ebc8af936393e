"""``bayeslmm demo``: simulate a cohort, then REML and the posterior of h² side by side."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from bayeslmm.errors import InputError
from bayeslmm.io.outputs import atomic_path, check_outputs

#: The files the demo writes in its ``--out`` folder (a rerun replaces these and nothing else).
DEMO_FILES = ("h2_posterior.png", "posterior.nc", "summary.tsv")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand and its options.

    Parameters
    ----------
    subparsers
        The ``bayeslmm`` parser's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; it runs :func:`run`.
    """
    demo = subparsers.add_parser(
        "demo",
        help="simulate a cohort and estimate h² by REML and by its posterior",
        description="Simulate a structured cohort with known h², then print the REML estimate "
        "and the posterior of h² side by side; write a plot and the posterior to --out.",
    )
    demo.add_argument(
        "--out",
        default="bayeslmm-demo",
        help="output folder, created if missing; a rerun replaces the demo's own three files "
        "there and nothing else [bayeslmm-demo]",
    )
    demo.add_argument("--n-samples", type=int, default=800)
    demo.add_argument("--n-snps", type=int, default=2000)
    demo.add_argument("--n-populations", type=int, default=2)
    demo.add_argument("--h2", type=float, default=0.5, help="true heritability [0.5]")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--draws", type=int, default=1000)
    demo.add_argument("--chains", type=int, default=4)
    demo.add_argument("--sampler", choices=["nutpie", "pymc"], default="nutpie")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=run)
    return demo


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslmm demo``; return the exit status.

    Parameters
    ----------
    args
        The parsed options of :func:`add_parser`.

    Returns
    -------
    int
        0 on success.
    """
    import bayeslmm as bl
    from bayeslmm.data.simulation import simulate
    from bayeslmm.plots import plot_h2_posterior

    out = Path(args.out)
    if not str(args.out).strip() or (out.exists() and not out.is_dir()):
        raise InputError(
            f"--out {args.out!r} must be a folder (created if missing); choose another name."
        )
    if out.is_dir():  # the demo replaces its own files in its folder, nothing else
        check_outputs([out / name for name in DEMO_FILES], overwrite=True)
    else:
        check_outputs([out], overwrite=False)
    print(
        f"Simulating a cohort: {args.n_samples} samples, {args.n_snps} SNPs, "
        f"{args.n_populations} populations (Fst 0.05), 2 covariates, true h² = {args.h2} "
        f"(seed {args.seed})"
    )
    data = simulate(
        args.n_samples,
        args.n_snps,
        args.h2,
        n_covariates=2,
        n_populations=args.n_populations,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    spectral = bl.spectral_from_kinship(data.K)
    t_eig = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = bl.reml(data.y, spectral, data.X)
    t_reml = time.perf_counter() - t0
    print(f"Eigendecomposition of K: {t_eig:.2f} s; REML: {t_reml:.3f} s")
    print(
        f"Sampling the posterior ({args.chains} chains × {args.draws} draws, {args.sampler}; "
        "the first run on a machine compiles the model, ~30 s; later runs load it from disk)..."
    )
    t0 = time.perf_counter()
    model = bl.kinship_model(data.y, spectral, data.X)
    idata = bl.sample(
        model,
        draws=args.draws,
        chains=args.chains,
        random_seed=args.seed,
        sampler=args.sampler,
        progressbar=not args.quiet,
    )
    t_post = time.perf_counter() - t0
    post = bl.heritability(idata)
    h2 = post.loc["h2"]
    print()
    print(f"{'':12}{'REML':>22}{'posterior':>30}")
    print(
        f"{'h2':12}{fit.h2:>10.3f} (SE {fit.h2_se:.3f})"
        f"{h2['mean']:>12.3f} (sd {h2['sd']:.3f}) "
        f"[{h2['hdi_lower']:.3f}, {h2['hdi_upper']:.3f}]"
    )
    for name in ("sigma_g2", "sigma_e2"):
        print(
            f"{name:12}{getattr(fit, name):>10.3f}{'':12}{post.loc[name, 'mean']:>12.3f} "
            f"(sd {post.loc[name, 'sd']:.3f})"
        )
    print(
        f"true h2 = {args.h2}; 95% HDI of the posterior shown in brackets; "
        f"R-hat {h2['r_hat']:.3f}, bulk ESS {h2['ess_bulk']:.0f}; posterior in {t_post:.1f} s"
    )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "h2_posterior.png") as tmp:
        plot_h2_posterior(idata, fit, tmp, truth=args.h2)
    with atomic_path(out / "posterior.nc") as tmp:
        idata.to_netcdf(str(tmp))
    table = pd.concat([fit.to_series().rename("reml"), post.loc["h2"].rename("posterior_h2")])
    with atomic_path(out / "summary.tsv") as tmp:
        table.to_csv(tmp, sep="\t", header=False)
    print(
        f"\nWrote {out}/h2_posterior.png, {out}/posterior.nc (an ArviZ DataTree: "
        f"xarray.open_datatree or arviz.from_netcdf reads it), {out}/summary.tsv"
    )
    return 0
