"""``bayeslmm predict``: genetic values and phenotypes (or probabilities) of new samples.

Reads a posterior saved by ``bayeslmm h2 --out PREFIX`` (``PREFIX.posterior.nc``) and writes
the summary of :func:`bayeslmm.predict` for the samples that were not in the fit.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayeslmm.cli.arguments import check_prefix_outputs
from bayeslmm.cli.inputs import covariates_from_args
from bayeslmm.errors import InputError
from bayeslmm.io.outputs import atomic_path

#: What ``predict`` appends to its ``--out`` prefix.
PREDICT_SUFFIXES = (".predict.tsv",)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand and its options.

    Parameters
    ----------
    subparsers
        The ``bayeslmm`` parser's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; it runs :func:`run`.
    """
    predict = subparsers.add_parser(
        "predict",
        help="posterior predictive of new samples from a saved posterior",
        description="Predict the genetic values and phenotypes (probabilities P(y = 1) for a "
        "--probit fit) of samples that were not in the fit, from the posterior that "
        "'bayeslmm h2 --out PREFIX' saved (PREFIX.posterior.nc); write mean, SD and HDI per "
        "sample.",
    )
    predict.add_argument(
        "--posterior",
        required=True,
        metavar="FILE",
        help="posterior saved by 'bayeslmm h2 --out PREFIX' (PREFIX.posterior.nc)",
    )
    new = predict.add_argument_group("the new samples (one of)")
    new.add_argument(
        "--grm",
        metavar="PREFIX",
        help="GCTA binary GRM covering the training samples and the new ones (the fit's K "
        "extended; kinship form)",
    )
    new.add_argument(
        "--bfile",
        metavar="PREFIX",
        help="PLINK 1 genotypes of the new samples (SNP form: a posterior with SNP effects v)",
    )
    phe = predict.add_argument_group("covariates of the new samples")
    phe.add_argument("--covar", metavar="FILE", help="covariate table (an intercept is added)")
    phe.add_argument("--covar-name", metavar="A,B", help="covariate columns to use [all]")
    phe.add_argument(
        "--covar-categorical",
        metavar="A,B",
        help="covariates to encode as indicators even if numeric (as in the fit)",
    )
    predict.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.predict.tsv")
    predict.add_argument(
        "--force", action="store_true", help="replace an existing PREFIX.predict.tsv"
    )
    predict.add_argument(
        "--hdi-prob", type=float, default=0.95, help="mass of the HDI bounds [0.95]"
    )
    predict.add_argument("--seed", type=int, default=None, help="seed of the predictive draws")
    predict.set_defaults(func=run)
    return predict


def read_posterior(path: str) -> Any:
    """Read a posterior saved by ``bayeslmm h2 --out`` (an ArviZ DataTree in netCDF).

    Parameters
    ----------
    path
        The ``PREFIX.posterior.nc`` file.

    Returns
    -------
    xarray.DataTree
        The saved result, loaded into memory.

    Raises
    ------
    InputError
        When the file does not exist, is not netCDF, or has no posterior group.
    """
    import xarray as xr

    file = Path(path)
    if not file.is_file():
        raise InputError(
            f"--posterior {path}: no such file; fit the model first with 'bayeslmm h2 ... "
            "--out PREFIX', which saves PREFIX.posterior.nc, and pass that file."
        )
    try:
        tree = xr.open_datatree(file).load()
    except (OSError, ValueError) as exc:
        raise InputError(
            f"--posterior {path} could not be read as netCDF ({exc}); pass the "
            "PREFIX.posterior.nc that 'bayeslmm h2 --out PREFIX' wrote."
        ) from None
    if "posterior" not in tree.children:
        raise InputError(
            f"--posterior {path} has no posterior group (groups: {sorted(tree.children)}); "
            "pass the PREFIX.posterior.nc that 'bayeslmm h2 --out PREFIX' wrote."
        )
    return tree


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslmm predict``; return the exit status.

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

    if (args.grm is None) == (args.bfile is None):
        raise InputError(
            "predict needs exactly one of --grm PREFIX (a GRM covering the training and the "
            "new samples) or --bfile PREFIX (the new samples' genotypes, for a posterior with "
            "SNP effects)."
        )
    check_prefix_outputs(args.out, PREDICT_SUFFIXES, args.force)
    idata = read_posterior(args.posterior)
    X = covariates_from_args(args)
    if args.grm is not None:
        pred = bl.predict(
            idata, K=bl.read_grm(args.grm), X=X, random_seed=args.seed, hdi_prob=args.hdi_prob
        )
    else:
        if "v" not in idata["posterior"]:
            raise InputError(
                f"--bfile needs a posterior with SNP effects v (SNP form); {args.posterior} is "
                f"of a kinship model (family {idata.attrs.get('family', '?')!r}). Pass --grm "
                "PREFIX with the fit's GRM extended to the new samples (e.g. 'bayeslmm grm' on "
                "the genotypes of both, with the fit's --kinship method)."
            )
        pred = bl.predict(
            idata,
            genotypes=bl.read_plink(args.bfile),
            X=X,
            random_seed=args.seed,
            hdi_prob=args.hdi_prob,
        )
    out = Path(f"{args.out}.predict.tsv")
    with atomic_path(out) as tmp:
        pred.summary.to_csv(tmp, sep="\t", float_format="%.8g")
    kind = "probabilities P(y = 1)" if "p_mean" in pred.summary else "phenotypes"
    print(
        f"Predicted genetic values and {kind} of {len(pred.samples)} new samples "
        f"({pred.draws.attrs['prediction']} form); wrote {out}"
    )
    return 0
