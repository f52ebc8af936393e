"""``bayeslmm grm``: build a kinship matrix and write it as a GCTA binary GRM."""

from __future__ import annotations

import argparse

from bayeslmm.cli.arguments import add_inputs, check_prefix_outputs
from bayeslmm.cli.inputs import kinship_from_args

#: What ``grm`` appends to its ``--out`` prefix (GCTA's binary GRM).
GRM_SUFFIXES = (".grm.bin", ".grm.id", ".grm.N.bin")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``grm`` subcommand and its options.

    Parameters
    ----------
    subparsers
        The ``bayeslmm`` parser's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; it runs :func:`run`.
    """
    grm = subparsers.add_parser(
        "grm",
        help="build a kinship matrix and write it as a GCTA binary GRM",
        description="Stream the genotypes in SNP chunks and write PREFIX.grm.bin/.grm.id/"
        ".grm.N.bin (GCTA format).",
    )
    add_inputs(grm, kinship_only=True)
    grm.add_argument(
        "--out", required=True, metavar="PREFIX", help="writes PREFIX.grm.bin/.grm.id/.grm.N.bin"
    )
    grm.add_argument(
        "--force", action="store_true", help="replace an existing GRM there (default: refuse)"
    )
    grm.set_defaults(func=run)
    return grm


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslmm grm``; return the exit status.

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

    check_prefix_outputs(args.out, GRM_SUFFIXES, args.force)
    K = kinship_from_args(args)
    bl.write_grm(K, args.out)
    print(f"Wrote {args.out}.grm.bin, {args.out}.grm.id, {args.out}.grm.N.bin (GCTA binary GRM)")
    return 0
