"""``bayeslmm scan``: test every SNP under the LMM (GWAS), LOCO by default."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from bayeslmm.cli.arguments import add_inputs, check_prefix_outputs
from bayeslmm.cli.inputs import covariates_from_args, genotypes_from_args, phenotype_from_args

#: What ``scan --plot PREFIX`` appends to its prefix.
PLOT_SUFFIXES = (".manhattan.png", ".qq.png")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``scan`` subcommand and its options.

    Parameters
    ----------
    subparsers
        The ``bayeslmm`` parser's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; it runs :func:`run`, and :func:`interrupted_message` says what
        an interrupted scan kept.
    """
    sc = subparsers.add_parser(
        "scan",
        help="GWAS: test every SNP under the LMM (EMMAX/GEMMA style, LOCO by default)",
        description="Fit the null model once per leave-one-chromosome-out kinship (or use "
        "--grm), then test each SNP: Wald, LRT and score p-values and a log10 Bayes factor.",
    )
    add_inputs(sc)
    sc.set_defaults(kinship="centered")
    sc.add_argument(
        "--loco",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="leave-one-chromosome-out kinships (default on; --no-loco: one K)",
    )
    sc.add_argument(
        "--exact",
        action="store_true",
        help="re-estimate λ per SNP (GEMMA -lmm 4); default P3D/EMMAX",
    )
    sc.add_argument(
        "--gxe",
        metavar="FILE",
        help="environment table (as --covar): also test each SNP's interaction with it (GEMMA "
        "-gxe); e joins the covariates and the table gains beta_gxe, se_gxe, p_wald_gxe, "
        "p_lrt_gxe, p_score_gxe, h2_gxe",
    )
    sc.add_argument(
        "--gxe-name",
        metavar="COLUMN",
        help="the environment's column of --gxe (needed when it has several)",
    )
    sc.add_argument("--chunk-size", type=int, default=1000, help="SNPs per chunk [1000]")
    sc.add_argument(
        "--out",
        metavar="FILE",
        help="results table: .tsv or .parquet; completed chunks are kept in FILE.parts/ until "
        "the end (a folder bayeslmm marks as its own and deletes only then)",
    )
    sc.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted --out scan (refused if the settings or the input files "
        "changed)",
    )
    sc.add_argument("--plot", metavar="PREFIX", help="write PREFIX.manhattan.png, PREFIX.qq.png")
    sc.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out/--plot file and discard the chunks of an interrupted "
        "scan (default: refuse)",
    )
    sc.add_argument("--quiet", action="store_true", help="no progress report")
    sc.set_defaults(func=run, interrupted_message=interrupted_message)
    return sc


def environment_from_args(args: argparse.Namespace) -> pd.Series | None:
    """The G×E environment of ``--gxe`` (column ``--gxe-name``), or None without it.

    Parameters
    ----------
    args
        Parsed arguments with ``gxe`` and ``gxe_name``.

    Returns
    -------
    pandas.Series or None
        The environment, indexed by sample ID. [shape: (n_samples,)]

    Raises
    ------
    BayeslmmError
        ``--gxe-name`` without ``--gxe``, a table of several columns without ``--gxe-name``,
        or a named column that is missing.
    """
    import bayeslmm as bl
    from bayeslmm.errors import BayeslmmError

    if not args.gxe:
        if args.gxe_name:
            raise BayeslmmError(
                f"--gxe-name {args.gxe_name} names a column of the environment table; give it "
                "with --gxe FILE (it may be the --covar file)."
            )
        return None
    if not args.gxe_name:
        columns = list(bl.read_table(args.gxe).columns)
        if len(columns) != 1:
            raise BayeslmmError(
                f"{args.gxe} has {len(columns)} columns {columns[:5]}; choose the environment "
                "with --gxe-name."
            )
    table = bl.read_table(
        args.gxe, columns=[args.gxe_name] if args.gxe_name else None, numeric=True
    )
    if args.gxe_name and args.gxe_name not in table.columns:
        raise BayeslmmError(f"{args.gxe} has no column '{args.gxe_name}'.")
    return table.iloc[:, 0]


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslmm scan``; return the exit status.

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
    from bayeslmm.plots import lambda_gc, plot_manhattan, plot_qq

    if args.out is not None:
        check_prefix_outputs(args.out, ("",), args.force)
    check_prefix_outputs(args.plot, PLOT_SUFFIXES, args.force)
    genotypes = genotypes_from_args(args)
    y = phenotype_from_args(args)
    X = covariates_from_args(args)
    K = bl.read_grm(args.grm) if args.grm else None
    env = environment_from_args(args)
    table = bl.scan(
        genotypes,
        y,
        K=K,
        X=X,
        gxe=env,
        loco=args.loco,
        exact=args.exact,
        kinship_method=args.kinship,
        chunk_size=args.chunk_size,
        out=args.out,
        resume=args.resume,
        overwrite=args.force,
        progress=not args.quiet,
    )
    print(
        f"Tested {int(table['p_wald'].notna().sum())} SNPs ({len(table)} in all); "
        f"λGC (Wald) = {lambda_gc(table['p_wald'].to_numpy()):.3f}"
    )
    top = table.nsmallest(5, "p_wald")[["chrom", "snp", "pos", "beta", "se", "p_wald"]]
    print(top.to_string(index=False))
    if env is not None:
        print(f"G×E with {env.name}: top SNPs by the interaction's Wald test")
        cols = ["chrom", "snp", "pos", "beta_gxe", "se_gxe", "p_wald_gxe"]
        print(table.nsmallest(5, "p_wald_gxe")[cols].to_string(index=False))
    if args.out:
        print(f"Wrote {args.out}")
    if args.plot:
        plot_manhattan(table, path=f"{args.plot}.manhattan.png")
        plot_qq(table, path=f"{args.plot}.qq.png")
        print(f"Wrote {args.plot}.manhattan.png, {args.plot}.qq.png")
    return 0


def interrupted_message(args: argparse.Namespace) -> str | None:
    """What an interrupted scan kept and how to continue, or None when it kept no chunks.

    Parameters
    ----------
    args
        The parsed options of :func:`add_parser`.

    Returns
    -------
    str or None
        The message when ``FILE.parts/`` of ``--out FILE`` holds completed chunks.
    """
    parts = Path(f"{args.out}.parts") if args.out else None
    if parts is not None and parts.is_dir():
        return (
            f"interrupted; the completed chunks are kept in {parts}. Run the same command with "
            "--resume to continue the scan."
        )
    return None
