"""The ``bayeslmm`` command: demo, simulate, grm, reml, h2, scan."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslmm.errors import BayeslmmError, BayeslmmWarning, InputError
from bayeslmm.io.outputs import atomic_path, check_outputs

SIMULATE_SUFFIXES = (".bed", ".bim", ".fam", ".pheno.tsv", ".covar.tsv", ".truth.json")
DEMO_FILES = ("h2_posterior.png", "posterior.nc", "summary.tsv")


def _outputs(prefix: str | None, suffixes: tuple[str, ...], force: bool) -> list[Path]:
    """Check PREFIX+suffix for every output before the work starts (a prefix keeps its dots)."""
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


def _demo(args: argparse.Namespace) -> int:
    import bayeslmm as bl
    from bayeslmm.data.simulation import simulate
    from bayeslmm.plots import plot_h2_posterior

    out = Path(args.out)
    if not str(args.out).strip() or (out.exists() and not out.is_dir()):
        raise InputError(
            f"--out {args.out!r} must be a folder (created if missing); choose another name."
        )
    if out.is_dir():  # the demo replaces its own files in its folder, nothing else
        check_outputs([out / name for name in DEMO_FILES], overwrite=True)
    else:
        check_outputs([out], overwrite=False)
    print(
        f"Simulating a cohort: {args.n_samples} samples, {args.n_snps} SNPs, "
        f"{args.n_populations} populations (Fst 0.05), 2 covariates, true h² = {args.h2} "
        f"(seed {args.seed})"
    )
    data = simulate(
        args.n_samples,
        args.n_snps,
        args.h2,
        n_covariates=2,
        n_populations=args.n_populations,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    spectral = bl.spectral_from_kinship(data.K)
    t_eig = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = bl.reml(data.y, spectral, data.X)
    t_reml = time.perf_counter() - t0
    print(f"Eigendecomposition of K: {t_eig:.2f} s; REML: {t_reml:.3f} s")
    print(
        f"Sampling the posterior ({args.chains} chains × {args.draws} draws, {args.sampler}; "
        "the first run on a machine compiles the model, ~30 s; later runs load it from disk)..."
    )
    t0 = time.perf_counter()
    model = bl.kinship_model(data.y, spectral, data.X)
    idata = bl.sample(
        model,
        draws=args.draws,
        chains=args.chains,
        random_seed=args.seed,
        sampler=args.sampler,
        progressbar=not args.quiet,
    )
    t_post = time.perf_counter() - t0
    post = bl.heritability(idata)
    h2 = post.loc["h2"]
    print()
    print(f"{'':12}{'REML':>22}{'posterior':>30}")
    print(
        f"{'h2':12}{fit.h2:>10.3f} (SE {fit.h2_se:.3f})"
        f"{h2['mean']:>12.3f} (sd {h2['sd']:.3f}) "
        f"[{h2['hdi_lower']:.3f}, {h2['hdi_upper']:.3f}]"
    )
    for name in ("sigma_g2", "sigma_e2"):
        print(
            f"{name:12}{getattr(fit, name):>10.3f}{'':12}{post.loc[name, 'mean']:>12.3f} "
            f"(sd {post.loc[name, 'sd']:.3f})"
        )
    print(
        f"true h2 = {args.h2}; 95% HDI of the posterior shown in brackets; "
        f"R-hat {h2['r_hat']:.3f}, bulk ESS {h2['ess_bulk']:.0f}; posterior in {t_post:.1f} s"
    )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "h2_posterior.png") as tmp:
        plot_h2_posterior(idata, fit, tmp, truth=args.h2)
    with atomic_path(out / "posterior.nc") as tmp:
        idata.to_netcdf(str(tmp))
    table = pd.concat([fit.to_series().rename("reml"), post.loc["h2"].rename("posterior_h2")])
    with atomic_path(out / "summary.tsv") as tmp:
        table.to_csv(tmp, sep="\t", header=False)
    print(
        f"\nWrote {out}/h2_posterior.png, {out}/posterior.nc (an ArviZ DataTree: "
        f"xarray.open_datatree or arviz.from_netcdf reads it), {out}/summary.tsv"
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from bed_reader import to_bed

    from bayeslmm.data.simulation import simulate

    checked = _outputs(args.out, SIMULATE_SUFFIXES, args.force)
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


KINSHIP_METHODS = ("standardized", "standardized_empirical", "centered", "ldak", "ibs")


def _kinship_from_args(args: argparse.Namespace):
    import bayeslmm as bl

    if getattr(args, "mgrm", None):
        return _read_mgrm(args.mgrm)
    if getattr(args, "grm", None):
        return bl.read_grm(args.grm)
    genotypes = _genotypes_from_args(args)
    K = bl.kinship(
        genotypes, args.kinship, alpha=args.alpha, maf=args.maf, max_missing=args.max_missing
    )
    qc = ", ".join(f"{k} {v}" for k, v in K.qc.items() if v)
    print(f"Kinship ({args.kinship}) from {K.n_snps} SNPs × {len(K.samples)} samples [{qc}]")
    return K


def _read_mgrm(path: str) -> dict:
    """GCTA's --mgrm: a text file with one GRM prefix per line → {name: Kinship}."""
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


def _liability(args: argparse.Namespace, h2_draws, y: pd.Series):
    """Liability-scale h² (Lee et al. 2011) when --prevalence is given, else None."""
    import bayeslmm as bl

    if args.prevalence is None:
        return None
    return bl.liability_h2(h2_draws, args.prevalence, float(np.nanmean(y.to_numpy())))


def _genotypes_from_args(args: argparse.Namespace):
    import bayeslmm as bl

    if getattr(args, "bfile", None):
        return bl.read_plink(args.bfile)
    if getattr(args, "bimbam", None):
        return bl.read_bimbam(args.bimbam, anno=args.anno)
    raise BayeslmmError("give genotypes with --bfile PREFIX or --bimbam FILE (or --grm PREFIX).")


def _phenotype_from_args(args: argparse.Namespace) -> pd.Series:
    import bayeslmm as bl

    if args.pheno is None:
        if not getattr(args, "bfile", None):
            raise BayeslmmError(
                "give the phenotype with --pheno FILE (or use the .fam's 6th column with --bfile)."
            )
        genotypes = bl.read_plink(args.bfile)
        return pd.Series(
            genotypes.fam["phenotype"].to_numpy(), index=genotypes.samples, name="fam_phenotype"
        )
    if not args.pheno_name:
        columns = list(bl.read_table(args.pheno).columns)
        if len(columns) != 1:
            raise BayeslmmError(
                f"{args.pheno} has {len(columns)} phenotype columns {columns}; "
                "choose one with --pheno-name."
            )
    table = bl.read_table(
        args.pheno, columns=[args.pheno_name] if args.pheno_name else None, numeric=True
    )
    if args.pheno_name and args.pheno_name not in table.columns:
        raise BayeslmmError(f"{args.pheno} has no column '{args.pheno_name}'.")
    return table.iloc[:, 0]


def _covariates_from_args(args: argparse.Namespace) -> pd.DataFrame | None:
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


def _grm(args: argparse.Namespace) -> int:
    import bayeslmm as bl

    _outputs(args.out, (".grm.bin", ".grm.id", ".grm.N.bin"), args.force)
    K = _kinship_from_args(args)
    bl.write_grm(K, args.out)
    print(f"Wrote {args.out}.grm.bin, {args.out}.grm.id, {args.out}.grm.N.bin (GCTA binary GRM)")
    return 0


def _reml(args: argparse.Namespace) -> int:
    import bayeslmm as bl

    _outputs(args.out, (".reml.tsv",), args.force)
    y = _phenotype_from_args(args)
    X = _covariates_from_args(args)
    K = _kinship_from_args(args)
    if args.prevalence is not None:
        _check_binary(y)
    fit = bl.reml(y, K, X, method=args.method)
    print(fit)
    if args.prevalence is not None:
        lia = _liability(args, np.array([fit.h2]), y)[0]
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


def _h2(args: argparse.Namespace) -> int:
    import bayeslmm as bl
    from bayeslmm.plots import plot_h2_posterior

    _outputs(args.out, (".posterior.nc", ".h2.tsv", ".h2.png"), args.force)
    y = _phenotype_from_args(args)
    X = _covariates_from_args(args)
    K = _kinship_from_args(args)
    if args.probit or args.prevalence is not None:
        _check_binary(y)
    fit = bl.reml(y, K, X)
    model = bl.kinship_model(y, K, X, family="probit" if args.probit else "gaussian")
    idata = bl.sample(
        model,
        draws=args.draws,
        chains=args.chains,
        tune=args.tune,
        random_seed=args.seed,
        sampler=args.sampler,
        progressbar=not args.quiet,
    )
    print(bl.summary(idata))
    scale = " (observed 0/1 scale)" if args.probit or args.prevalence is not None else ""
    print(f"REML: h2 = {fit.h2:.4f} (SE {fit.h2_se:.4f}){scale}")
    if args.probit:
        print("Posterior h2 of the probit model is on the liability scale.")
    elif args.prevalence is not None:
        lia = _liability(args, idata.posterior["h2"].values, y)
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


def _check_binary(y: pd.Series) -> None:
    values = set(np.unique(y.dropna().to_numpy()))
    if not values <= {0.0, 1.0} or len(values) < 2:
        raise BayeslmmError(
            f"--prevalence and --probit need a 0/1 phenotype (controls 0, cases 1); "
            f"{y.name or 'the phenotype'} has values "
            f"{', '.join(f'{v:g}' for v in sorted(values)[:5])}{'...' if len(values) > 5 else ''}. "
            "Recode it "
            "(PLINK's 1/2 coding: subtract 1)."
        )


def _scan(args: argparse.Namespace) -> int:
    import bayeslmm as bl
    from bayeslmm.plots import lambda_gc, plot_manhattan, plot_qq

    if args.out is not None:
        _outputs(args.out, ("",), args.force)
    _outputs(args.plot, (".manhattan.png", ".qq.png"), args.force)
    genotypes = _genotypes_from_args(args)
    y = _phenotype_from_args(args)
    X = _covariates_from_args(args)
    K = bl.read_grm(args.grm) if args.grm else None
    table = bl.scan(
        genotypes,
        y,
        K=K,
        X=X,
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
    if args.out:
        print(f"Wrote {args.out}")
    if args.plot:
        plot_manhattan(table, path=f"{args.plot}.manhattan.png")
        plot_qq(table, path=f"{args.plot}.qq.png")
        print(f"Wrote {args.plot}.manhattan.png, {args.plot}.qq.png")
    return 0


def _add_components(parser: argparse.ArgumentParser) -> None:
    """Options of reml and h2 only: several GRMs, case-control prevalence."""
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


def _add_inputs(parser: argparse.ArgumentParser, kinship_only: bool = False) -> None:
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
    phe.add_argument("--pheno-name", metavar="COL", help="phenotype column to analyse")
    phe.add_argument("--covar", metavar="FILE", help="covariate table (an intercept is added)")
    phe.add_argument("--covar-name", metavar="A,B", help="covariate columns to use [all]")
    phe.add_argument(
        "--covar-categorical",
        metavar="A,B",
        help="covariates to encode as indicators even if numeric (text columns always are)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayeslmm`` command."""
    parser = argparse.ArgumentParser(
        prog="bayeslmm",
        description="Bayesian linear mixed models for statistical genetics: posterior "
        "SNP-heritability with honest uncertainty, next to the REML estimate.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="simulate a cohort and estimate h² by REML and by its posterior",
        description="Simulate a structured cohort with known h², then print the REML estimate "
        "and the posterior of h² side by side; write a plot and the posterior to --out.",
    )
    demo.add_argument(
        "--out",
        default="bayeslmm-demo",
        help="output folder, created if missing; a rerun replaces the demo's own three files "
        "there and nothing else [bayeslmm-demo]",
    )
    demo.add_argument("--n-samples", type=int, default=800)
    demo.add_argument("--n-snps", type=int, default=2000)
    demo.add_argument("--n-populations", type=int, default=2)
    demo.add_argument("--h2", type=float, default=0.5, help="true heritability [0.5]")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--draws", type=int, default=1000)
    demo.add_argument("--chains", type=int, default=4)
    demo.add_argument("--sampler", choices=["nutpie", "pymc"], default="nutpie")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    sim = sub.add_parser(
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
    sim.set_defaults(func=_simulate)
    grm = sub.add_parser(
        "grm",
        help="build a kinship matrix and write it as a GCTA binary GRM",
        description="Stream the genotypes in SNP chunks and write PREFIX.grm.bin/.grm.id/"
        ".grm.N.bin (GCTA format).",
    )
    _add_inputs(grm, kinship_only=True)
    grm.add_argument(
        "--out", required=True, metavar="PREFIX", help="writes PREFIX.grm.bin/.grm.id/.grm.N.bin"
    )
    grm.add_argument(
        "--force", action="store_true", help="replace an existing GRM there (default: refuse)"
    )
    grm.set_defaults(func=_grm)
    reml = sub.add_parser(
        "reml",
        help="REML estimate of SNP-heritability (GCTA --reml / GEMMA -lmm style)",
        description="Profiled REML (or ML) of h² = σg²/(σg²+σe²) with K normalized to mean "
        "diagonal 1; samples are matched by IID across files.",
    )
    _add_inputs(reml)
    _add_components(reml)
    reml.add_argument("--method", choices=["reml", "ml"], default="reml")
    reml.add_argument("--out", metavar="PREFIX", help="write PREFIX.reml.tsv")
    reml.add_argument(
        "--force", action="store_true", help="replace an existing PREFIX.reml.tsv (default: refuse)"
    )
    reml.set_defaults(func=_reml)
    h2 = sub.add_parser(
        "h2",
        help="posterior of SNP-heritability by NUTS, next to REML",
        description="Sample the posterior of h² (default priors: h² ~ Beta(1,1), σp ~ "
        "HalfStudentT(3, sd(y))); write the posterior (netCDF DataTree), a summary and a plot.",
    )
    _add_inputs(h2)
    h2.add_argument(
        "--out",
        required=True,
        metavar="PREFIX",
        help="writes PREFIX.posterior.nc, PREFIX.h2.tsv, PREFIX.h2.png",
    )
    h2.add_argument(
        "--force", action="store_true", help="replace existing PREFIX.* outputs (default: refuse)"
    )
    _add_components(h2)
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
    h2.set_defaults(func=_h2)
    sc = sub.add_parser(
        "scan",
        help="GWAS: test every SNP under the LMM (EMMAX/GEMMA style, LOCO by default)",
        description="Fit the null model once per leave-one-chromosome-out kinship (or use "
        "--grm), then test each SNP: Wald, LRT and score p-values and a log10 Bayes factor.",
    )
    _add_inputs(sc)
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
    sc.set_defaults(func=_scan)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"bayeslmm: {category.__name__}: {message}", file=sys.stderr)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupted command left behind and how to continue."""
    parts = Path(f"{args.out}.parts") if args.command == "scan" and args.out else None
    if parts is not None and parts.is_dir():
        return (
            f"interrupted; the completed chunks are kept in {parts}. Run the same command with "
            "--resume to continue the scan."
        )
    return (
        "interrupted; any output file present is complete (files are written whole or not at all)."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors the user can fix are printed without a traceback.

    Outputs are checked before the work starts (folder exists and is writable, not a directory,
    not an existing file unless ``--force``); an interrupted run (Ctrl-C, SIGTERM) says what it
    kept and how to continue, and exits with status 130.
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
