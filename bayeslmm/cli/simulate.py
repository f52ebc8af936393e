"""``bayeslmm simulate``: write a simulated cohort as PLINK 1 files and tables."""

from __future__ import annotations

import argparse

from bayeslmm.cli.arguments import check_prefix_outputs
from bayeslmm.data.simulation import COHORT_SUFFIXES

#: What ``simulate`` appends to its ``--out`` prefix, one file each.
SIMULATE_SUFFIXES = COHORT_SUFFIXES

#: Without ``--stream``/``--no-stream``, the cohort is streamed when holding it would take more
#: than this many bytes (:func:`in_memory_bytes`).
STREAM_ABOVE = 2 * 1024**3


def in_memory_bytes(n_samples: int, n_snps: int) -> int:
    """Bytes an in-memory cohort needs at its peak: K (N²) and five N×M float64 arrays.

    Parameters
    ----------
    n_samples, n_snps : int
        N and M.

    Returns
    -------
    int
        ``8 · (N² + 5·N·M)``: K, and G, W, the frequencies and draws behind G, a centred copy.
    """
    return 8 * (int(n_samples) ** 2 + 5 * int(n_samples) * int(n_snps))


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand and its options.

    Parameters
    ----------
    subparsers
        The ``bayeslmm`` parser's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; it runs :func:`run`.
    """
    sim = subparsers.add_parser(
        "simulate",
        help="write a simulated cohort (PLINK bed/bim/fam, phenotype, covariates)",
        description="Balding–Nichols genotypes with population structure and a phenotype of "
        "known heritability, written as PLINK 1 files plus phenotype/covariate tables. "
        "Large cohorts are streamed to the files SNP block by SNP block (no kinship, no "
        "genotype matrix in memory): with --stream, or by default when holding the cohort "
        "would take more than 2 GiB (8·(N² + 5·N·M) bytes, e.g. N > 8,000 at M = 5,000).",
    )
    sim.add_argument(
        "--out",
        required=True,
        help="output prefix, e.g. data/sim or runs/cohort.1 (writes PREFIX.bed/.bim/.fam/"
        ".pheno.tsv/.covar.tsv/.truth.json; the folder must exist)",
    )
    sim.add_argument(
        "--force", action="store_true", help="replace existing PREFIX.* files (default: refuse)"
    )
    sim.add_argument("--n-samples", type=int, default=1000)
    sim.add_argument("--n-snps", type=int, default=5000)
    sim.add_argument("--h2", type=float, default=0.5)
    sim.add_argument("--n-covariates", type=int, default=2)
    sim.add_argument("--n-populations", type=int, default=1)
    sim.add_argument("--fst", type=float, default=0.05)
    sim.add_argument("--n-causal", type=int, default=None, help="causal SNPs [all]")
    sim.add_argument("--n-chromosomes", type=int, default=1)
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stream the cohort to the files in blocks of 64 SNPs, memory O(N) (--no-stream: "
        "hold it, as bl.simulate does); default: stream above 2 GiB. The same seed gives "
        "other genotypes streamed than held (same model; see bl.simulate)",
    )
    sim.set_defaults(func=run)
    return sim


def run(args: argparse.Namespace) -> int:
    """Run ``bayeslmm simulate``; return the exit status.

    Parameters
    ----------
    args
        The parsed options of :func:`add_parser`.

    Returns
    -------
    int
        0 on success.
    """
    from bayeslmm.data.simulation import simulate, write_cohort

    check_prefix_outputs(args.out, SIMULATE_SUFFIXES, args.force)
    stream = args.stream
    if stream is None:
        stream = in_memory_bytes(args.n_samples, args.n_snps) > STREAM_ABOVE
    options = {
        "n_covariates": args.n_covariates,
        "n_populations": args.n_populations,
        "fst": args.fst,
        "n_causal": args.n_causal,
        "n_chromosomes": args.n_chromosomes,
        "seed": args.seed,
    }
    prefix = args.out
    if stream:
        simulate(args.n_samples, args.n_snps, args.h2, out=prefix, overwrite=True, **options)
    else:
        data = simulate(args.n_samples, args.n_snps, args.h2, **options)
        write_cohort(data, prefix, overwrite=True)
    how = "streamed in blocks of 64 SNPs" if stream else "in memory"
    print(
        f"Wrote {prefix}.bed/.bim/.fam (PLINK 1), {prefix}.pheno.tsv, {prefix}.covar.tsv, "
        f"{prefix}.truth.json ({args.n_samples} samples, {args.n_snps} SNPs, h2 = {args.h2}; "
        f"{how})"
    )
    return 0
