"""``bayeslmm simulate``: write a simulated cohort as PLINK 1 files and tables."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from bayeslmm.cli.arguments import check_prefix_outputs
from bayeslmm.io.outputs import atomic_path

#: What ``simulate`` appends to its ``--out`` prefix, one file each.
SIMULATE_SUFFIXES = (".bed", ".bim", ".fam", ".pheno.tsv", ".covar.tsv", ".truth.json")


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
        "known heritability, written as PLINK 1 files plus phenotype/covariate tables.",
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
    from bed_reader import to_bed

    from bayeslmm.data.simulation import simulate

    checked = check_prefix_outputs(args.out, SIMULATE_SUFFIXES, args.force)
    paths = dict(zip(SIMULATE_SUFFIXES, checked, strict=True))
    data = simulate(
        args.n_samples,
        args.n_snps,
        args.h2,
        n_covariates=args.n_covariates,
        n_populations=args.n_populations,
        fst=args.fst,
        n_causal=args.n_causal,
        n_chromosomes=args.n_chromosomes,
        seed=args.seed,
    )
    prefix = args.out
    fam = {
        "fid": data.samples,
        "iid": data.samples,
        "father": ["0"] * len(data.samples),
        "mother": ["0"] * len(data.samples),
        "sex": [0] * len(data.samples),
        "pheno": data.y.astype(str),
    }
    bim = {
        "chromosome": data.snps["chrom"].to_numpy(),
        "sid": data.snps["snp"].to_numpy(),
        "cm_position": data.snps["cm"].to_numpy(),
        "bp_position": data.snps["pos"].to_numpy(),
        "allele_1": data.snps["a1"].to_numpy(),
        "allele_2": data.snps["a2"].to_numpy(),
    }
    with atomic_path(paths[".bed"]) as tmp:
        bed_tmp = tmp.with_name(tmp.name + ".bed")  # to_bed writes .bim/.fam beside it
        try:
            to_bed(bed_tmp, data.G, properties={**fam, **bim})
            for ext in (".bim", ".fam"):
                bed_tmp.with_suffix(ext).replace(paths[ext])
            bed_tmp.replace(tmp)
        finally:
            for ext in (".bed", ".bim", ".fam"):
                bed_tmp.with_suffix(ext).unlink(missing_ok=True)
    pheno = pd.DataFrame({"FID": data.samples, "IID": data.samples, "y": data.y})
    with atomic_path(paths[".pheno.tsv"]) as tmp:
        pheno.to_csv(tmp, sep="\t", index=False)
    covar = data.covariates().reset_index(names="IID")
    covar.insert(0, "FID", data.samples)
    with atomic_path(paths[".covar.tsv"]) as tmp:
        covar.to_csv(tmp, sep="\t", index=False)
    truth = {
        k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
        for k, v in data.truth.items()
        if k != "u"
    }
    with atomic_path(paths[".truth.json"]) as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    print(
        f"Wrote {prefix}.bed/.bim/.fam (PLINK 1), {prefix}.pheno.tsv, {prefix}.covar.tsv, "
        f"{prefix}.truth.json ({args.n_samples} samples, {args.n_snps} SNPs, h2 = {args.h2})"
    )
    return 0
