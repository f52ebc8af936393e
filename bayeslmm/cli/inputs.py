"""The data a subcommand's options name: genotypes, kinship, phenotype, covariates.

Each reader takes the parsed arguments of :func:`bayeslmm.cli.arguments.add_inputs` and
returns what the library functions take; errors the user can fix are
:class:`~bayeslmm.errors.BayeslmmError` messages. The readers of :mod:`bayeslmm` are imported
when called, so that ``bayeslmm --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayeslmm.errors import BayeslmmError

if TYPE_CHECKING:
    from bayeslmm.io import Genotypes
    from bayeslmm.relatedness.relationship import Kinship


def genotypes_from_args(args: argparse.Namespace) -> Genotypes:
    """Read the genotypes of ``--bfile`` or ``--bimbam`` (with ``--anno``).

    Parameters
    ----------
    args
        Parsed arguments with ``bfile``, ``bimbam`` and ``anno``.

    Returns
    -------
    Genotypes
        The lazily read genotypes.

    Raises
    ------
    BayeslmmError
        When neither option is given.
    """
    import bayeslmm as bl

    if getattr(args, "bfile", None):
        return bl.read_plink(args.bfile)
    if getattr(args, "bimbam", None):
        return bl.read_bimbam(args.bimbam, anno=args.anno)
    raise BayeslmmError("give genotypes with --bfile PREFIX or --bimbam FILE (or --grm PREFIX).")


def kinship_from_args(args: argparse.Namespace) -> Kinship | dict[str, Kinship]:
    """The kinship of ``--mgrm``, ``--grm``, or one built from the genotypes.

    A kinship built from genotypes (``--kinship``, ``--alpha``, ``--maf``, ``--max-missing``)
    is reported on stdout with its SNP and sample counts and QC.

    Parameters
    ----------
    args
        Parsed arguments of :func:`bayeslmm.cli.arguments.add_inputs` (and ``mgrm`` where the
        subcommand has it).

    Returns
    -------
    Kinship or dict of str to Kinship
        One kinship, or one per variance component for ``--mgrm``.
    """
    import bayeslmm as bl

    if getattr(args, "mgrm", None):
        return read_mgrm(args.mgrm)
    if getattr(args, "grm", None):
        return bl.read_grm(args.grm)
    genotypes = genotypes_from_args(args)
    K = bl.kinship(
        genotypes, args.kinship, alpha=args.alpha, maf=args.maf, max_missing=args.max_missing
    )
    qc = ", ".join(f"{k} {v}" for k, v in K.qc.items() if v)
    print(f"Kinship ({args.kinship}) from {K.n_snps} SNPs × {len(K.samples)} samples [{qc}]")
    return K


def read_mgrm(path: str) -> dict[str, Kinship]:
    """Read GCTA's ``--mgrm`` list: a text file with one GRM prefix per line.

    Relative prefixes are taken from the current folder when the GRM is there, else from the
    list's folder; lines starting with ``#`` are skipped.

    Parameters
    ----------
    path
        The list file.

    Returns
    -------
    dict of str to Kinship
        One kinship per line, named by the prefix's file name (``K1``, ``K2``, ... when two
        names are the same).

    Raises
    ------
    BayeslmmError
        When the list cannot be read or names fewer than two GRMs.
    """
    import bayeslmm as bl

    try:
        lines = Path(path).read_text().split("\n")
    except OSError as err:
        raise BayeslmmError(f"cannot read the --mgrm list {path}: {err.strerror}.") from None
    prefixes = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if len(prefixes) < 2:
        raise BayeslmmError(
            f"{path} lists {len(prefixes)} GRM prefix(es); --mgrm needs at least two, one per "
            "line (use --grm for one)."
        )
    base = Path(path).parent
    names = [Path(p).name for p in prefixes]
    if len(set(names)) < len(names):
        names = [f"K{i + 1}" for i in range(len(prefixes))]
    out = {}
    for name, prefix in zip(names, prefixes, strict=True):
        full = (
            prefix
            if Path(prefix).is_absolute() or Path(f"{prefix}.grm.id").exists()
            else str(base / prefix)
        )
        out[name] = bl.read_grm(full)
    print(f"{len(out)} variance components: {', '.join(out)}")
    return out


def pheno_names(args: argparse.Namespace) -> list[str]:
    """The columns named by ``--pheno-name`` (none, one, or several), in order.

    Parameters
    ----------
    args
        Parsed arguments with ``pheno_name`` (a list, a string, or None).

    Returns
    -------
    list of str
        The names; empty when the option was not given.

    Raises
    ------
    BayeslmmError
        When a name is given twice.
    """
    names = getattr(args, "pheno_name", None) or []
    names = [names] if isinstance(names, str) else list(names)
    if len(set(names)) < len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise BayeslmmError(f"--pheno-name names {dup} more than once; name each trait once.")
    return names


def phenotype_from_args(args: argparse.Namespace) -> pd.Series:
    """The phenotype of ``--pheno`` (column ``--pheno-name``), or the ``.fam``'s 6th column.

    Parameters
    ----------
    args
        Parsed arguments with ``pheno``, ``pheno_name`` and ``bfile``.

    Returns
    -------
    pandas.Series
        The phenotype, indexed by sample ID. [shape: (n_samples,)]

    Raises
    ------
    BayeslmmError
        When no phenotype is given, the table has several columns and no ``--pheno-name``,
        several are named, or the named column is missing.
    """
    import bayeslmm as bl

    names = pheno_names(args)
    if len(names) > 1:
        raise BayeslmmError(
            f"bayeslmm {getattr(args, 'command', '')} analyses one phenotype, got "
            f"--pheno-name {' '.join(names)}; name one (several traits: bayeslmm reml)."
        )
    if args.pheno is None:
        if not getattr(args, "bfile", None):
            raise BayeslmmError(
                "give the phenotype with --pheno FILE (or use the .fam's 6th column with --bfile)."
            )
        genotypes = bl.read_plink(args.bfile)
        return pd.Series(
            genotypes.fam["phenotype"].to_numpy(), index=genotypes.samples, name="fam_phenotype"
        )
    if not names:
        columns = list(bl.read_table(args.pheno).columns)
        if len(columns) != 1:
            raise BayeslmmError(
                f"{args.pheno} has {len(columns)} phenotype columns {columns}; "
                "choose one with --pheno-name."
            )
    table = bl.read_table(args.pheno, columns=names or None, numeric=True)
    if names and names[0] not in table.columns:
        raise BayeslmmError(f"{args.pheno} has no column '{names[0]}'.")
    return table.iloc[:, 0]


def phenotypes_from_args(args: argparse.Namespace) -> pd.DataFrame:
    """The traits of ``--pheno`` named by several ``--pheno-name`` values, as one table.

    Parameters
    ----------
    args
        Parsed arguments with ``pheno`` and ``pheno_name`` (two names or more).

    Returns
    -------
    pandas.DataFrame
        One column per trait, in the order named, indexed by sample ID.
        [shape: (n_samples, n_traits)]

    Raises
    ------
    BayeslmmError
        Without ``--pheno``, or when a named column is missing.
    """
    import bayeslmm as bl

    names = pheno_names(args)
    if args.pheno is None:
        raise BayeslmmError(
            f"--pheno-name {' '.join(names)} names columns of a phenotype table; give it with "
            "--pheno FILE."
        )
    table = bl.read_table(args.pheno, columns=names, numeric=True)
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise BayeslmmError(f"{args.pheno} has no column(s) {missing}.")
    return table[names]


def covariates_from_args(args: argparse.Namespace) -> pd.DataFrame | None:
    """The covariates of ``--covar`` (columns ``--covar-name``), or None without it.

    Columns named by ``--covar-categorical`` (and text columns) become indicators; their
    baselines are reported on stdout.

    Parameters
    ----------
    args
        Parsed arguments with ``covar``, ``covar_name`` and ``covar_categorical``.

    Returns
    -------
    pandas.DataFrame or None
        The covariates, indexed by sample ID, without an intercept.
        [shape: (n_samples, n_covariates)]
    """
    import bayeslmm as bl

    if not args.covar:
        return None
    table = bl.read_table(
        args.covar,
        columns=args.covar_name.split(",") if args.covar_name else None,
        categorical=args.covar_categorical.split(",") if args.covar_categorical else None,
    )
    if table.attrs.get("baselines"):
        base = ", ".join(f"{k}={v}" for k, v in table.attrs["baselines"].items())
        print(f"Categorical covariates as indicators (baseline: {base})")
    return table


def check_binary(y: pd.Series) -> None:
    """Check that the phenotype is 0/1, as ``--prevalence`` and ``--probit`` need.

    Parameters
    ----------
    y
        The phenotype; missing values are ignored. [shape: (n_samples,)]

    Raises
    ------
    BayeslmmError
        When it has values other than 0 and 1, or only one of them.
    """
    values = set(np.unique(y.dropna().to_numpy()))
    if not values <= {0.0, 1.0} or len(values) < 2:
        raise BayeslmmError(
            f"--prevalence and --probit need a 0/1 phenotype (controls 0, cases 1); "
            f"{y.name or 'the phenotype'} has values "
            f"{', '.join(f'{v:g}' for v in sorted(values)[:5])}{'...' if len(values) > 5 else ''}. "
            "Recode it "
            "(PLINK's 1/2 coding: subtract 1)."
        )


def liability_from_args(
    args: argparse.Namespace, h2_draws: np.ndarray, y: pd.Series
) -> np.ndarray | None:
    """Liability-scale h² (Lee et al. 2011) when ``--prevalence`` is given, else None.

    Parameters
    ----------
    args
        Parsed arguments with ``prevalence``.
    h2_draws
        Observed-scale h² (an estimate or posterior draws).
    y
        The 0/1 phenotype; its mean is the sample's case fraction. [shape: (n_samples,)]

    Returns
    -------
    numpy.ndarray or None
        The liability-scale h², shaped as ``h2_draws``.
    """
    import bayeslmm as bl

    if args.prevalence is None:
        return None
    return bl.liability_h2(h2_draws, args.prevalence, float(np.nanmean(y.to_numpy())))
