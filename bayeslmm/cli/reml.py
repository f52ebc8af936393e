"""``bayeslmm reml``: the REML (or ML) estimate of SNP-heritability.

With several ``--pheno-name`` values, the multi-trait fit (:func:`bayeslmm.reml` of a table of
traits): Σg, Σe, h², rg and re with their SEs, written to the same ``PREFIX.reml.tsv``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

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


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``reml`` subcommand and its options.

    Parameters
    ----------
    subparsers
        The ``bayeslmm`` parser's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; it runs :func:`run`.
    """
    reml = subparsers.add_parser(
        "reml",
        help="REML estimate of SNP-heritability (GCTA --reml / GEMMA -lmm style)",
        description="Profiled REML (or ML) of h² = σg²/(σg²+σe²) with K normalized to mean "
        "diagonal 1; samples are matched by IID across files. With several --pheno-name "
        "values, the multi-trait fit (GEMMA -lmm -n 1 2): genetic and residual covariances Vg, "
        "Ve, h², rg and re with SEs, samples complete in every trait.",
    )
    add_inputs(reml)
    add_components(reml)
    reml.add_argument("--method", choices=["reml", "ml"], default="reml")
    reml.add_argument("--out", metavar="PREFIX", help="write PREFIX.reml.tsv")
    reml.add_argument(
        "--force", action="store_true", help="replace an existing PREFIX.reml.tsv (default: refuse)"
    )
    reml.set_defaults(func=run)
    return reml


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslmm reml``; return the exit status.

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

    check_prefix_outputs(args.out, (".reml.tsv",), args.force)
    if len(pheno_names(args)) > 1:
        return _run_traits(args)
    y = phenotype_from_args(args)
    X = covariates_from_args(args)
    K = kinship_from_args(args)
    if args.prevalence is not None:
        check_binary(y)
    fit = bl.reml(y, K, X, method=args.method)
    print(fit)
    if args.prevalence is not None:
        lia = liability_from_args(args, np.array([fit.h2]), y)[0]
        factor = lia / fit.h2 if fit.h2 > 0 else float("nan")
        print(
            f"  h2 on the liability scale (prevalence {args.prevalence}, Lee et al. 2011): "
            f"{lia:.4f} (SE {fit.h2_se * factor:.4f})"
        )
    print("\n" + fit.beta.to_frame().join(fit.beta_se).to_string(float_format=lambda v: f"{v:.5g}"))
    if args.out:
        table = fit.to_series()
        with atomic_path(f"{args.out}.reml.tsv") as tmp:
            table.to_csv(tmp, sep="\t", header=False)
        print(f"Wrote {args.out}.reml.tsv")
    return 0


def _run_traits(args: argparse.Namespace) -> int:
    """The multi-trait fit of several ``--pheno-name`` columns; return the exit status."""
    import bayeslmm as bl

    names = " ".join(pheno_names(args))
    if getattr(args, "mgrm", None):
        raise BayeslmmError(
            f"--mgrm with --pheno-name {names}: several traits are fitted with one kinship "
            "(--grm PREFIX, or genotypes); for several variance components fit each trait "
            "alone."
        )
    if args.prevalence is not None:
        raise BayeslmmError(
            f"--prevalence is for one 0/1 trait, got --pheno-name {names}; the multi-trait fit "
            "reports h², rg and re on the observed scale (fit a 0/1 trait alone for its "
            "liability-scale h²)."
        )
    Y = phenotypes_from_args(args)
    X = covariates_from_args(args)
    K = kinship_from_args(args)
    fit = bl.reml(Y, K, X, method=args.method)
    print(fit)
    print(
        f"  {'converged' if fit.converged else 'NOT converged'} after {fit.iterations} "
        f"iterations ({fit.optimizer_message})"
    )
    effects = pd.DataFrame({"beta": fit.B.stack(), "beta_se": fit.B_se.stack()})
    effects.index.names = ["covariate", "trait"]
    print("\n" + effects.to_string(float_format=lambda v: f"{v:.5g}"))
    if args.out:
        table = fit.to_series()
        with atomic_path(f"{args.out}.reml.tsv") as tmp:
            table.to_csv(tmp, sep="\t", header=False)
        print(f"Wrote {args.out}.reml.tsv")
    return 0
