"""Options that several subcommands share, and the check of a prefix's outputs.

The genotype, kinship, phenotype and covariate options are added by :func:`add_inputs`, the
options of the variance-component subcommands (``reml``, ``h2``) by :func:`add_components`.
:func:`check_prefix_outputs` checks every ``PREFIX+suffix`` output before the work starts, and
refuses to replace one unless ``--force`` was given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bayeslmm.errors import InputError
from bayeslmm.io.outputs import check_outputs

#: The kinship constructions ``--kinship`` offers (see :func:`bayeslmm.kinship`).
KINSHIP_METHODS = ("standardized", "standardized_empirical", "centered", "ldak", "ibs")


def check_prefix_outputs(prefix: str | None, suffixes: tuple[str, ...], force: bool) -> list[Path]:
    """Check ``prefix + suffix`` for every output before the work starts.

    Parameters
    ----------
    prefix
        The ``--out`` (or ``--plot``) prefix; a prefix keeps its dots (``runs/cohort.1``).
        ``None``: nothing to check.
    suffixes
        Appended to the prefix, one output each.
    force
        The ``--force`` flag: replace existing files instead of refusing.

    Returns
    -------
    list of Path
        The checked output paths, in the order of ``suffixes`` (empty when ``prefix`` is None).
        Missing folders are created.

    Raises
    ------
    InputError
        When the prefix is empty or names a folder (ends with ``/`` or ``.``), or an output is
        not writable or exists without ``--force``.
    """
    if prefix is None:
        return []
    if not str(prefix).strip() or str(prefix).endswith(("/", ".")):
        raise InputError(
            f"--out {str(prefix)!r} is not a usable prefix; give a file prefix such as "
            "results/run1 (the suffixes are appended)."
        )
    return check_outputs(
        [f"{prefix}{sfx}" for sfx in suffixes],
        overwrite=force,
        option="--force",
        create_folders=True,
    )


def add_components(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``reml`` and ``h2`` only: several GRMs, case-control prevalence.

    Parameters
    ----------
    parser
        The subcommand's parser; gets ``--mgrm`` and ``--prevalence``.
    """
    parser.add_argument(
        "--mgrm",
        metavar="FILE",
        help="several variance components (GCTA --mgrm): FILE lists one GRM prefix per line",
    )
    parser.add_argument(
        "--prevalence",
        type=float,
        metavar="K",
        help="0/1 trait: also report h² on the liability scale for population prevalence K "
        "(GCTA --prevalence; Lee et al. 2011)",
    )


def add_inputs(parser: argparse.ArgumentParser, kinship_only: bool = False) -> None:
    """Add the input options: genotypes or a GRM, kinship construction, phenotype, covariates.

    Parameters
    ----------
    parser
        The subcommand's parser; the options come in three argument groups.
    kinship_only
        Only genotypes and kinship construction (``grm``): no ``--grm``, no phenotype or
        covariates.
    """
    geno = parser.add_argument_group("genotypes or kinship")
    geno.add_argument("--bfile", metavar="PREFIX", help="PLINK 1 binary fileset (.bed/.bim/.fam)")
    geno.add_argument("--bimbam", metavar="FILE", help="BIMBAM mean-genotype file (GEMMA -g)")
    geno.add_argument("--anno", metavar="FILE", help="BIMBAM SNP annotation (GEMMA -a)")
    if not kinship_only:
        geno.add_argument("--grm", metavar="PREFIX", help="GCTA binary GRM instead of genotypes")
    kin = parser.add_argument_group("kinship construction (from genotypes)")
    kin.add_argument(
        "--kinship",
        choices=KINSHIP_METHODS,
        default="standardized",
        help="standardized = GCTA GRM (default); standardized_empirical = GEMMA "
        "-gk 2; centered = GEMMA -gk 1 = plink2 --make-rel cov; ldak; ibs",
    )
    kin.add_argument("--alpha", type=float, default=-1.0, help="LDAK scaling power [-1]")
    kin.add_argument("--maf", type=float, default=0.0, help="drop SNPs with MAF below this [0]")
    kin.add_argument(
        "--max-missing",
        type=float,
        default=1.0,
        help="drop SNPs with a larger share of missing calls [1]",
    )
    if kinship_only:
        return
    phe = parser.add_argument_group("phenotype and covariates")
    phe.add_argument(
        "--pheno",
        metavar="FILE",
        help="phenotype table (FID IID values, or CSV/TSV "
        "with a header); default: the .fam's 6th column",
    )
    phe.add_argument(
        "--pheno-name",
        metavar="COL",
        nargs="+",
        action="extend",
        help="phenotype column to analyse; reml and h2 take several (--pheno-name A B, as "
        "GEMMA's -n 1 2) and fit the multi-trait model",
    )
    phe.add_argument("--covar", metavar="FILE", help="covariate table (an intercept is added)")
    phe.add_argument("--covar-name", metavar="A,B", help="covariate columns to use [all]")
    phe.add_argument(
        "--covar-categorical",
        metavar="A,B",
        help="covariates to encode as indicators even if numeric (text columns always are)",
    )
