"""``bayeslmm h2``: the posterior of SNP-heritability by NUTS, next to REML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayeslmm.cli.arguments import add_components, add_inputs, check_prefix_outputs
from bayeslmm.cli.inputs import (
    check_binary,
    covariates_from_args,
    kinship_from_args,
    liability_from_args,
    pheno_names,
    phenotype_from_args,
    phenotypes_from_args,
)
from bayeslmm.errors import BayeslmmError
from bayeslmm.io.outputs import atomic_path

#: What ``h2`` appends to its ``--out`` prefix: the posterior, its summary, its plot.
H2_SUFFIXES = (".posterior.nc", ".h2.tsv", ".h2.png")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``h2`` subcommand and its options.

    Parameters
    ----------
    subparsers
        The ``bayeslmm`` parser's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; it runs :func:`run`.
    """
    h2 = subparsers.add_parser(
        "h2",
        help="posterior of SNP-heritability by NUTS, next to REML",
        description="Sample the posterior of h² (default priors: h² ~ Beta(1,1), σp ~ "
        "HalfStudentT(3, sd(y))); write the posterior (netCDF DataTree), a summary and a plot. "
        "Several --pheno-name values fit the multi-trait LMM (one kinship): h² of each trait, "
        "the genetic and residual correlations rg and re (LKJ priors) and Σg, Σe, with "
        "samples missing some traits kept and their missing values latent; no plot then.",
    )
    add_inputs(h2)
    h2.add_argument(
        "--out",
        required=True,
        metavar="PREFIX",
        help="writes PREFIX.posterior.nc, PREFIX.h2.tsv, PREFIX.h2.png (one trait)",
    )
    h2.add_argument(
        "--force", action="store_true", help="replace existing PREFIX.* outputs (default: refuse)"
    )
    add_components(h2)
    h2.add_argument(
        "--probit",
        action="store_true",
        help="binary 0/1 trait: probit LMM, posterior h² directly on the liability scale",
    )
    h2.add_argument("--draws", type=int, default=1000)
    h2.add_argument("--tune", type=int, default=1000)
    h2.add_argument("--chains", type=int, default=4)
    h2.add_argument("--seed", type=int, default=None)
    h2.add_argument("--sampler", choices=["nutpie", "pymc"], default="nutpie")
    h2.add_argument("--quiet", action="store_true", help="no progress bar")
    h2.set_defaults(func=run)
    return h2


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslmm h2``; return the exit status.

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
    from bayeslmm.plots import plot_h2_posterior

    check_prefix_outputs(args.out, H2_SUFFIXES, args.force)
    if len(pheno_names(args)) > 1:
        return _run_traits(args)
    y = phenotype_from_args(args)
    X = covariates_from_args(args)
    K = kinship_from_args(args)
    if args.probit or args.prevalence is not None:
        check_binary(y)
    fit = bl.reml(y, K, X)
    model = bl.kinship_model(y, K, X, family="probit" if args.probit else "gaussian")
    idata = _sample(model, args)
    print(bl.summary(idata))
    scale = " (observed 0/1 scale)" if args.probit or args.prevalence is not None else ""
    print(f"REML: h2 = {fit.h2:.4f} (SE {fit.h2_se:.4f}){scale}")
    if args.probit:
        print("Posterior h2 of the probit model is on the liability scale.")
    elif args.prevalence is not None:
        lia = liability_from_args(args, idata.posterior["h2"].values, y)
        # a DataTree node stores a (dims, values) tuple as one object, not as a variable
        idata["posterior"]["h2_liability"] = idata["posterior"]["h2"].copy(data=lia)
        print(
            f"Liability-scale h2 (prevalence {args.prevalence}, Lee et al. 2011): mean "
            f"{lia.mean():.4f}, sd {lia.std(ddof=1):.4f}"
        )
    out = Path(args.out)
    with atomic_path(f"{out}.posterior.nc") as tmp:
        idata.to_netcdf(str(tmp))
    with atomic_path(f"{out}.h2.tsv") as tmp:
        bl.heritability(idata).to_csv(tmp, sep="\t")
    with atomic_path(f"{out}.h2.png") as tmp:
        plot_h2_posterior(idata, None if args.probit else fit, tmp)
    print(
        f"Wrote {out}.posterior.nc (an ArviZ DataTree: xarray.open_datatree or "
        f"arviz.from_netcdf reads it), {out}.h2.tsv, {out}.h2.png"
    )
    return 0


def _run_traits(args: argparse.Namespace) -> int:
    """The multi-trait posterior of several ``--pheno-name`` columns; return the exit status.

    Writes ``PREFIX.posterior.nc`` and ``PREFIX.h2.tsv`` (:func:`bayeslmm.heritability`: rows
    ``h2[A]``, ``rg[A,B]``, ``re[A,B]``, ``Sigma_g[A,B]``, ``Sigma_e[A,B]``) and prints the
    summary beside the multi-trait REML fit (complete cases).
    """
    import bayeslmm as bl

    names = " ".join(pheno_names(args))
    for flag, given in (
        ("--mgrm", getattr(args, "mgrm", None)),
        ("--probit", args.probit),
        ("--prevalence", args.prevalence is not None),
    ):
        if given:
            raise BayeslmmError(
                f"{flag} with --pheno-name {names}: the multi-trait model takes one kinship and "
                "quantitative traits (h², rg and re on the observed scale); fit a 0/1 trait or "
                "several variance components one trait at a time."
            )
    Y = phenotypes_from_args(args)
    X = covariates_from_args(args)
    K = kinship_from_args(args)
    fit = bl.reml(Y, K, X)
    idata = _sample(bl.kinship_model(Y, K, X), args)
    print(bl.summary(idata))
    n_missing = int(Y.isna().any(axis=1).sum())
    cases = f" on the {fit.n} complete cases" if n_missing else ""
    print(f"\nREML{cases}:")
    print(fit)
    out = Path(args.out)
    with atomic_path(f"{out}.posterior.nc") as tmp:
        idata.to_netcdf(str(tmp))
    with atomic_path(f"{out}.h2.tsv") as tmp:
        bl.heritability(idata).to_csv(tmp, sep="\t")
    print(
        f"Wrote {out}.posterior.nc (an ArviZ DataTree: xarray.open_datatree or "
        f"arviz.from_netcdf reads it), {out}.h2.tsv"
    )
    return 0


def _sample(model: Any, args: argparse.Namespace) -> Any:
    """``bl.sample`` with the sampler options of the command line."""
    import bayeslmm as bl

    return bl.sample(
        model,
        draws=args.draws,
        chains=args.chains,
        tune=args.tune,
        random_seed=args.seed,
        sampler=args.sampler,
        progressbar=not args.quiet,
    )
