"""The ``bayeslmm`` command: the parser, error and warning display, interruption.

Each subcommand is a module of :mod:`bayeslmm.cli` with ``add_parser(subparsers)`` (its options;
it sets ``func=run``) and ``run(args) -> int``; adding one is a module and a line in
:data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings

from bayeslmm.cli import demo, grm, h2, predict, reml, scan, simulate
from bayeslmm.errors import BayeslmmError, BayeslmmWarning

#: The subcommand modules, in the order ``bayeslmm --help`` lists them.
SUBCOMMANDS = (demo, simulate, grm, reml, h2, predict, scan)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayeslmm`` command.

    Returns
    -------
    argparse.ArgumentParser
        The parser, with one subparser per module of :data:`SUBCOMMANDS`.
    """
    parser = argparse.ArgumentParser(
        prog="bayeslmm",
        description="Bayesian linear mixed models for statistical genetics: posterior "
        "SNP-heritability with honest uncertainty, next to the REML estimate.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"bayeslmm: {category.__name__}: {message}", file=sys.stderr)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupted command left behind and how to continue."""
    specific = getattr(args, "interrupted_message", None)
    message = specific(args) if specific is not None else None
    if message is not None:
        return message
    return (
        "interrupted; any output file present is complete (files are written whole or not at all)."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors the user can fix are printed without a traceback.

    Outputs are checked before the work starts (folder exists and is writable, not a directory,
    not an existing file unless ``--force``); an interrupted run (Ctrl-C, SIGTERM) says what it
    kept and how to continue, and exits with status 130.

    Parameters
    ----------
    argv
        The arguments after ``bayeslmm``; default: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for an error the user can fix (the message is printed
        on stderr), 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    previous = None
    try:
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            previous = signal.signal(signal.SIGTERM, _terminate)
        with warnings.catch_warnings():
            warnings.simplefilter("always", BayeslmmWarning)  # shown, never raised
            warnings.showwarning = _show_warning
            return args.func(args)
    except BayeslmmError as exc:
        print(f"bayeslmm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nbayeslmm {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
