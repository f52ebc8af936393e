"""Genome-wide association scan under the LMM: variance components once, then every SNP.

The null model is fitted once per kinship (REML by default; one per chromosome with LOCO),
then SNPs are read from disk in chunks, rotated into the eigenbasis of K with one matrix
product per chunk, and tested in closed form (:mod:`bayeslmm.gwas.association`). ``exact=True``
re-estimates λ = σg²/σe² for every SNP (GEMMA ``-lmm 4``), vectorized across the chunk.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from bayeslmm.data.inputs import kinship_array
from bayeslmm.data.samples import Prepared, prepare
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.estimation.reml import fit_rotated
from bayeslmm.gwas.association import (
    LAMBDA_RANGE,
    NullData,
    SnpBlock,
    loglik,
    maximize_lambda,
    maximize_lambdas,
    projections,
)
from bayeslmm.io.chromosomes import normalize_chromosomes
from bayeslmm.io.genotypes import Genotypes
from bayeslmm.io.outputs import atomic_path, check_outputs
from bayeslmm.linalg.spectral import Spectral, rotate_data, spectral_from_kinship, standardize
from bayeslmm.relatedness.grm import Kinship, as_genotypes, in_kinship, kinship, loco_kinships

COLUMNS = [
    "chrom",
    "snp",
    "pos",
    "a1",
    "a2",
    "af",
    "n",
    "beta",
    "se",
    "p_wald",
    "p_lrt",
    "p_score",
    "log10_bf",
    "h2",
]
NULLS = ("reml", "map", "posterior")
MAX_POSTERIOR_DRAWS = 50


@dataclass(frozen=True, eq=False)
class NullFit:
    """What every chunk of one kinship group needs: the eigenbasis and the null model."""

    U: np.ndarray
    null: NullData
    lam: np.ndarray  # null λ (REML/MAP: one value; posterior: the draws used)
    lam_ml: float  # null ML λ (for the LRT of the exact mode)
    loglik_ml: float
    bounds: tuple[float, float]
    y: np.ndarray  # standardized phenotype (spectral.standardize): statistics are unit-free
    X: np.ndarray  # standardized covariates spanning the user's X
    sd_y: float  # sd(y) in standardized units (the Bayes factor prior)
    y_scale: float = 1.0  # residual sd of the user's y on X: beta and se back in user units


def _null_block(null: NullData) -> SnpBlock:
    r = null.s.size
    return SnpBlock(
        G1=np.zeros((r, 1)), cross_X=np.zeros((null.d, 1)), cross_y=np.zeros(1), cross_g=np.ones(1)
    )


def _fit_null(
    spectral: Spectral, data: Prepared, null: str, posterior: Any, exact: bool
) -> NullFit:
    std = standardize(data.y, data.X)  # no cancellation from the units or offsets of y and X
    rot = rotate_data(spectral, std.y, std.X)
    nd = NullData(X1=rot.X1, y1=rot.y1, gram=rot.gram, s=rot.s, n=data.n)
    bounds = (LAMBDA_RANGE[0] * spectral.scale, LAMBDA_RANGE[1] * spectral.scale)
    dummy = _null_block(nd)
    lam_ml = float(maximize_lambda(nd, dummy, "ml", False, bounds)[0])
    ll_ml = float(loglik(projections(nd, dummy, np.array([lam_ml])), nd.n, nd.d, "ml", False)[0])
    if null == "reml" and exact:  # GEMMA's λ range, for agreement with -lmm 4
        lam = maximize_lambda(nd, dummy, "reml", False, bounds)
    elif null == "reml":  # profiled REML on h² ∈ [0, 1]: h² = 0 is exact, the test is OLS
        h2 = fit_rotated(rot, data.covariates, "reml")[0]
        lam = np.array([min(h2 / (1 - h2), bounds[1]) if h2 < 1 else bounds[1]])
    elif null == "map":
        from bayeslmm.families.gaussian import kinship_model
        from bayeslmm.inference.sampling import map_estimate

        model = kinship_model(data.y, spectral, data.X[:, 1:] if _has_intercept(data) else data.X)
        h2 = float(map_estimate(model)["posterior"]["h2"].values.ravel()[0])
        lam = np.array([min(h2 / max(1 - h2, 1e-300), bounds[1])])
    else:
        draws = np.asarray(posterior["posterior"]["h2"]).ravel()
        keep = np.linspace(0, draws.size - 1, min(MAX_POSTERIOR_DRAWS, draws.size)).astype(int)
        h2 = draws[keep]
        lam = np.minimum(h2 / np.maximum(1 - h2, 1e-300), bounds[1])
    return NullFit(
        U=spectral.U,
        null=nd,
        lam=np.atleast_1d(lam),
        lam_ml=lam_ml,
        loglik_ml=ll_ml,
        bounds=bounds,
        y=std.y,
        X=std.X,
        sd_y=float(np.std(data.y, ddof=1)) / std.scale,
        y_scale=std.scale,
    )


def _has_intercept(data: Prepared) -> bool:
    return "intercept" in data.covariates


def _rotate_block(fit: NullFit, G: np.ndarray) -> SnpBlock:
    """U'G and the null-space cross products of a centred chunk (one BLAS product)."""
    G1 = fit.U.T @ G
    cross_X = fit.X.T @ G - fit.null.X1.T @ G1
    cross_y = fit.y @ G - fit.null.y1 @ G1
    cross_g = np.einsum("ij,ij->j", G, G) - np.einsum("ij,ij->j", G1, G1)
    return SnpBlock(G1=G1, cross_X=cross_X, cross_y=cross_y, cross_g=np.maximum(cross_g, 0.0))


def _wald(proj, df: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy import stats  # (here, not at module level: scipy.stats takes ~0.7 s to import)

    rss1 = proj.p_yy - proj.p_gy**2 / proj.p_gg
    beta = proj.p_gy / proj.p_gg
    se = np.sqrt(rss1 / (df * proj.p_gg))
    f = (proj.p_yy - rss1) * df / rss1
    return beta, se, stats.f.sf(f, 1, df)


def _log10_bf(beta: np.ndarray, se: np.ndarray, prior_sd: np.ndarray) -> np.ndarray:
    """Wakefield's approximate Bayes factor (alternative vs null), log10."""
    V, W = se**2, prior_sd**2
    z2 = (beta / se) ** 2
    return (0.5 * np.log(V / (V + W)) + 0.5 * z2 * W / (V + W)) / np.log(10)


def _test_chunk(fit: NullFit, G: np.ndarray, exact: bool, bf_prior_sd: float) -> dict:
    """All statistics of one chunk [G: (n_samples, c), imputed]."""
    from scipy import stats  # (here, not at module level: scipy.stats takes ~0.7 s to import)

    n, d = fit.null.n, fit.null.d
    df = n - d - 1
    c = G.shape[1]
    sd_g = G.std(axis=0, ddof=1)
    G = G - G.mean(axis=0)
    block = _rotate_block(fit, G)
    lam0 = np.full(c, fit.lam.mean() if fit.lam.size > 1 else fit.lam[0])
    if fit.lam.size > 1:  # posterior null: p-values at the mean λ of the draws used
        lam0 = np.full(c, float(np.mean(fit.lam)))
    # P3D evaluates every statistic at the null λ; exact mode needs the null fit only for the
    # score test, whose nuisance λ is the null maximum likelihood one (as GEMMA -lmm 3/4)
    proj0 = None if exact else projections(fit.null, block, lam0)
    n_f = float(n)
    proj_s = projections(fit.null, block, np.full(c, fit.lam_ml)) if exact else proj0
    score = n_f * proj_s.p_gy**2 / (proj_s.p_yy * proj_s.p_gg)
    p_score = stats.f.sf(score, 1, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        prior_sd = bf_prior_sd * fit.sd_y / sd_g
    if exact:
        lams, best = maximize_lambdas(
            fit.null, block, ("reml", "ml"), True, fit.bounds, return_values=True
        )
        lam_reml = lams["reml"]
        beta, se, p_wald = _wald(projections(fit.null, block, lam_reml), df)
        ll1 = best["ml"]  # the maximized ML log-likelihood with the SNP
        lrt = np.maximum(2 * (ll1 - fit.loglik_ml), 0.0)
        h2 = lam_reml / (1 + lam_reml)
    else:
        beta, se, p_wald = _wald(proj0, df)
        rss1 = proj0.p_yy - proj0.p_gy**2 / proj0.p_gg
        lrt = n_f * np.log(proj0.p_yy / rss1)
        h2 = lam0 / (1 + lam0)
    log10_bf = _log10_bf(beta, se, prior_sd)
    if fit.lam.size > 1:  # average the Bayes factor over the posterior draws of h²
        terms = []
        for lam in fit.lam:
            b_k, se_k, _ = _wald(projections(fit.null, block, np.full(c, lam)), df)
            terms.append(_log10_bf(b_k, se_k, prior_sd) * np.log(10))
        log10_bf = (special.logsumexp(np.stack(terms), axis=0) - np.log(len(terms))) / np.log(10)
    return {
        "beta": beta * fit.y_scale,
        "se": se * fit.y_scale,
        "p_wald": p_wald,
        "p_lrt": stats.chi2.sf(lrt, 1),
        "p_score": p_score,
        "log10_bf": log10_bf,
        "h2": h2,
    }


def _impute(G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean-impute; return G, allele frequency, call count and a mask of testable SNPs."""
    observed = ~np.isnan(G)
    count = observed.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(G, axis=0) / np.maximum(count, 1), np.nan)
    G = np.where(observed, G, mean)
    ok = (count > 0) & (np.nan_to_num(G.std(axis=0)) > 0)
    return G, mean / 2, count, ok


def _chunk_table(
    fit: NullFit, G: np.ndarray, snp_table: pd.DataFrame, exact: bool, bf_prior_sd: float
) -> pd.DataFrame:
    G, af, count, ok = _impute(G)
    out = {k: np.full(G.shape[1], np.nan) for k in COLUMNS[7:]}
    if ok.any():
        res = _test_chunk(fit, G[:, ok], exact, bf_prior_sd)
        for k, v in res.items():
            out[k][ok] = v
    table = snp_table[["chrom", "snp", "pos", "a1", "a2"]].reset_index(drop=True).copy()
    table["af"] = af
    table["n"] = count
    for k in COLUMNS[7:]:
        table[k] = out[k]
    return table


def _read_chunk(source: str, snp_idx: np.ndarray, sample_idx: np.ndarray) -> np.ndarray:
    from bayeslmm.io.plink import read_plink

    return read_plink(source).read(snp_idx, sample_idx)


def _remote_chunk(
    fit: NullFit,
    source: str,
    snp_idx: np.ndarray,
    sample_idx: np.ndarray,
    snp_table: pd.DataFrame,
    exact: bool,
    bf_prior_sd: float,
) -> pd.DataFrame:
    """A chunk as a dask task: read its SNPs on the worker, test them."""
    return _chunk_table(
        fit, _read_chunk(source, snp_idx, sample_idx), snp_table, exact, bf_prior_sd
    )


def _plan(
    genotypes: Genotypes, K: Any, loco: bool, snp_idx: np.ndarray
) -> tuple[list[tuple[str, np.ndarray]], bool, str | None]:
    """SNP groups that share a null model: ([(label, SNP positions)], LOCO used, why not).

    With LOCO (K None), each chromosome that the kinships use (autosomes, unknown 0) is a
    group tested against the kinship without it; X, Y, XY, MT and contigs are one group
    ("autosomes") tested against the kinship of all the autosomes. The third item says why
    LOCO was asked for but cannot apply (fewer than two such chromosomes), else None.
    """
    chrom = normalize_chromosomes(genotypes.snps["chrom"])
    tested = chrom[snp_idx]
    if isinstance(K, Mapping):
        return [(c, snp_idx[tested == c]) for c in dict.fromkeys(tested)], True, None
    if K is not None or not loco:
        return [("all", snp_idx)], False, None
    groups = list(dict.fromkeys(chrom[in_kinship(chrom)]))
    if len(groups) < 2:
        reason = (
            "chromosome unknown ('0') for every SNP"
            if groups == ["0"]
            else f"all on chromosome {groups[0]}"
            if groups
            else "no autosome"
        )
        return [("all", snp_idx)], False, reason
    plan = [(c, snp_idx[tested == c]) for c in dict.fromkeys(tested) if c in groups]
    others = snp_idx[~np.isin(tested, groups)]
    if others.size:
        plan.append(("autosomes", others))
    return plan, True, None


def _groups(
    genotypes: Genotypes,
    data: Prepared,
    K: Any,
    loco: bool,
    kinship_method: str,
    snp_idx: np.ndarray,
) -> Iterator[tuple[str, Any, np.ndarray]]:
    """(label, kinship matrix over the analysed samples, SNP positions) per kinship."""
    rows = data.rows
    plan, by_chromosome, why_not = _plan(genotypes, K, loco, snp_idx)
    if why_not is not None:
        warnings.warn(
            f"LOCO cannot apply: {why_not}, so every SNP is tested against one kinship that "
            "includes its own chromosome (proximal contamination makes the tests slightly "
            "conservative). Give SNPs on two or more autosomes, or pass loco=False (CLI "
            "--no-loco) to ask for one kinship.",
            DataWarning,
            stacklevel=3,
        )
    if K is None:
        if by_chromosome:
            kins = loco_kinships(genotypes, kinship_method, samples=rows)
            chrom = normalize_chromosomes(genotypes.snps["chrom"])
            for label, group in plan:
                yield label, kins[chrom[group[0]]].matrix, group
            return
        yield "all", kinship(genotypes, kinship_method, samples=rows).matrix, snp_idx
        return
    if isinstance(K, Mapping):  # one kinship per chromosome, given
        given = {}
        for key, value in K.items():
            code = str(normalize_chromosomes([str(key)])[0])
            if code in given:
                raise InputError(f"K names chromosome {code} twice ({key!r}); give it once.")
            given[code] = value
        for c, group in plan:
            if c not in given:
                raise InputError(
                    f"no kinship given for chromosome {c}; K has {list(K)} (codes normalized: "
                    "chr1 = 1, X = 23, Y = 24, XY = 25, MT = 26)."
                )
            yield c, _aligned(given[c], genotypes, data), group
        return
    yield "all", _aligned(K, genotypes, data), snp_idx


def _aligned(K: Any, genotypes: Genotypes, data: Prepared) -> Any:
    """K over the analysed samples in their order: K itself when it already is, else a copy."""
    matrix = kinship_array(K)
    if isinstance(K, pd.DataFrame):
        ids = pd.Index(K.index.astype(str))
    elif hasattr(K, "samples"):
        ids = pd.Index(np.asarray(K.samples, dtype=str))
    else:
        if matrix.shape[0] != genotypes.n_samples:
            raise InputError(
                f"K is {matrix.shape[0]}×{matrix.shape[0]} but the genotypes have "
                f"{genotypes.n_samples} samples; a plain array K is aligned by position with "
                "the genotype file (pass a Kinship or DataFrame to align by ID)."
            )
        return matrix[np.ix_(data.rows, data.rows)]
    pos = ids.get_indexer(pd.Index(data.samples))
    if (pos < 0).any():
        missing = list(pd.Index(data.samples)[pos < 0][:3])
        raise InputError(
            f"K has no row for {int((pos < 0).sum())} analysed samples (e.g. "
            f"{missing}); build K on the same samples as the genotypes."
        )
    if isinstance(K, Kinship) and np.array_equal(pos, np.arange(matrix.shape[0])):
        return K  # its cached decomposition can be reused
    return matrix[np.ix_(pos, pos)]


def _settings_hash(**settings: Any) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


PARTS_MAKER = "bayeslmm.scan"  # the manifest's mark: the parts folder is bayeslmm's to delete
PART_NAME = re.compile(r"\d{6}\.tsv|\.\d{6}\.tsv\..*\.tmp|\.manifest\.json\..*\.tmp")
HASHED_BYTES = 1 << 20  # the header and first block of each input file


def _file_fingerprint(path: Path) -> dict:
    """Size, modification time and a hash of the first MiB of a file."""
    stat = path.stat()
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(HASHED_BYTES)).hexdigest()[:16]
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head": head}


def _array_hash(values: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=float).tobytes()).hexdigest()[:16]


def _input_fingerprint(g: Genotypes, K: Any) -> dict:
    """What a resumed scan must find unchanged: the genotype files (or values) and a given K."""
    source = Path(g.source)
    if source.suffix == ".bed" and source.is_file():
        files = [source.with_suffix(ext) for ext in (".bed", ".bim", ".fam")]
    elif source.is_file():
        files = [source]
    else:
        files = []
    found = {str(f): _file_fingerprint(f) for f in files if f.is_file()}
    if not files:  # genotypes held in memory
        found["genotype values"] = _array_hash(g.read())
    if K is not None:
        kinships = K if isinstance(K, Mapping) else {"K": K}
        for name, k in kinships.items():
            found[f"kinship {name}"] = _array_hash(kinship_array(k))
    return found


def _remove_parts(parts: Path) -> None:
    """Delete the chunk files and manifest bayeslmm wrote in ``parts``, then the folder if empty."""
    for entry in parts.iterdir():
        if entry.is_file() and (entry.name == "manifest.json" or PART_NAME.fullmatch(entry.name)):
            entry.unlink()
    if not any(parts.iterdir()):
        parts.rmdir()


def _open_parts(parts: Path, settings: str, inputs: dict, resume: bool, overwrite: bool) -> None:
    """Create ``parts`` or check that its chunks can be resumed; never delete what is not ours."""
    manifest = parts / "manifest.json"
    if parts.exists() or parts.is_symlink():
        recorded: dict = {}
        if parts.is_dir() and manifest.is_file():
            try:
                recorded = json.loads(manifest.read_text())
            except (OSError, ValueError):
                recorded = {}
        if not isinstance(recorded, dict) or recorded.get("created_by") != PARTS_MAKER:
            raise InputError(
                f"{parts} exists but was not made by a bayeslmm scan (no bayeslmm manifest.json "
                "in it); bayeslmm keeps its chunks there and will not touch it: move it away or "
                "choose another output name."
            )
        done = sum(1 for f in parts.iterdir() if re.fullmatch(r"\d{6}\.tsv", f.name))
        if not resume and not overwrite:
            raise InputError(
                f"{parts} holds {done} completed chunks of an interrupted scan; continue it with "
                "resume=True (--resume), or pass overwrite=True (--force) to discard them."
            )
        if not resume:
            _remove_parts(parts)
        elif recorded.get("settings") != settings:
            raise InputError(
                f"{parts} holds a scan with other settings (phenotype, covariates, samples, "
                "SNPs, chunk size or test options differ); resume with the same ones, or pass "
                "overwrite=True (--force) without resume to start over."
            )
        elif recorded.get("inputs") != inputs:
            changed = sorted(
                k
                for k in set(inputs) | set(recorded.get("inputs", {}))
                if inputs.get(k) != recorded.get("inputs", {}).get(k)
            )
            raise InputError(
                f"the inputs changed since the interrupted scan in {parts}: {changed} differ "
                "(size, modification time or content); its chunks cannot be reused. Pass "
                "overwrite=True (--force) without resume to start over."
            )
    parts.mkdir(exist_ok=True)
    if not manifest.exists():
        from bayeslmm._version import __version__

        record = {
            "created_by": PARTS_MAKER,
            "version": __version__,
            "settings": settings,
            "inputs": inputs,
        }
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(record, indent=1))


def _write_table(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, sep="\t", index=False, na_rep="NA")


def _read_part(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep="\t",
        dtype={"chrom": str, "snp": str, "a1": str, "a2": str},
        keep_default_na=False,
        na_values=["NA"],
    )


def scan(
    genotypes: Any,
    y: Any,
    *,
    K: Any = None,
    X: Any = None,
    loco: bool = True,
    exact: bool = False,
    null: str = "reml",
    posterior: Any = None,
    kinship_method: str = "centered",
    chunk_size: int = 1000,
    snps: Any = None,
    bf_prior_sd: float = 0.2,
    client: Any = None,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    r"""Test every SNP for association under the LMM (EMMAX / GEMMA style).

    Parameters
    ----------
    genotypes : Genotypes or ndarray
        From :func:`bayeslmm.read_plink` (read lazily in chunks) or allele counts
        [shape: (n_samples, n_snps)], NaN = missing (mean-imputed per SNP).
    y
        Phenotype; array aligned with the genotype samples, or Series indexed by sample ID.
    K : optional
        Kinship used as given (array aligned with the genotype samples, DataFrame, Kinship),
        or a dict chromosome → kinship for LOCO. None: ``kinship_method`` kinship built from
        the genotypes, leaving each chromosome out in turn when ``loco`` and there are ≥ 2.
    X : optional
        Covariates (an intercept is added unless X spans the constant).
    loco : bool
        Leave-one-chromosome-out kinships when K is None.
    exact : bool
        Re-estimate λ per SNP (REML for Wald, ML for the LRT), as GEMMA ``-lmm 4``; else fix λ
        at the null estimate (P3D / EMMAX), much faster.
    null : {"reml", "map", "posterior"}
        How the null λ is estimated: profiled REML; the PyMC MAP of the kinship model; or the
        draws of h² in ``posterior`` (the null model's DataTree from bl.sample): Bayes factors
        are averaged over up to 50 draws and p-values use their mean λ.
    posterior : xarray.DataTree, optional
        For ``null="posterior"``.
    kinship_method : str
        Kinship built when K is None (``"centered"`` = GEMMA ``-gk 1``).
    chunk_size : int
        SNPs read, rotated and tested at a time.
    snps : optional
        Positions of the SNPs to test (default: all).
    bf_prior_sd : float
        Prior SD τ of the effect in phenotype SDs per genotype SD: β ~ N(0, (τ·sd(y)/sd(g))²).
    client : dask.distributed.Client, optional
        Run chunks as tasks on its workers (same table as the local run).
    out : str or Path, optional
        Write the table there (TSV, or Parquet for ``.parquet``), atomically; completed chunks
        are kept in ``<out>.parts/`` until the end, so that ``resume=True`` continues a killed
        scan and gives a byte-identical file. The path is checked before any work (its folder
        must exist and be writable); an existing file is an error unless ``overwrite``.
    resume : bool
        Continue from the completed chunks of an earlier run with the same settings and
        unchanged inputs (size, modification time and first MiB of each genotype file; the
        values of in-memory genotypes and of a given K); refused with an InputError otherwise.
    overwrite : bool
        Replace an existing ``out`` file and discard the chunks of an interrupted scan. A
        ``<out>.parts/`` folder without bayeslmm's manifest is never deleted.
    progress : bool
        Report progress on stderr.

    Returns
    -------
    pandas.DataFrame
        One row per SNP: chrom, snp, pos, a1, a2, af (frequency of a1), n (calls), beta
        (per a1 allele), se, p_wald, p_lrt, p_score, log10_bf, h2 (the null h² used; the SNP's
        REML h² in exact mode). Monomorphic or all-missing SNPs have NaN statistics.

    Notes
    -----
    With H = λK + I in the eigenbasis, GEMMA's projected quantities P_yy, P_gg, P_gy give
    :math:`\hat\beta = P_{gy}/P_{gg}`, :math:`F_{Wald} = (P_{yy} - RSS_1)\,df/RSS_1`,
    :math:`F_{score} = N P_{gy}^2/(P_{yy} P_{gg})` (both on F(1, N − d − 1)) and the LRT on
    χ²₁. The Bayes factor is Wakefield's approximation,
    :math:`BF = \sqrt{V/(V+W)}\exp(z^2 W / (2(V+W)))` with V = se², W the prior variance.
    λ is searched on GEMMA's range [1e-5, 1e5] × the mean diagonal of K.
    """
    if null not in NULLS:
        raise InputError(f"null must be one of {NULLS}, got {null!r}.")
    if null == "posterior" and (
        posterior is None or "h2" not in getattr(posterior, "posterior", {})
    ):
        raise InputError(
            "null='posterior' needs posterior=<the DataTree of bl.sample, with h2 draws>."
        )
    if chunk_size < 1:
        raise InputError(f"chunk_size must be positive, got {chunk_size}.")
    g = as_genotypes(genotypes)
    data = prepare(y, X, g, genetic_name="genotypes", square=False)
    from bayeslmm.io.genotypes import as_index

    snp_idx = as_index(snps, g.n_snps, "SNPs")
    if resume and out is None:
        raise InputError("resume=True continues a scan written to a file; give out= as well.")
    out_path = check_outputs([out], overwrite=overwrite)[0] if out is not None else None
    parts = Path(f"{out_path}.parts") if out_path is not None else None
    settings = _settings_hash(
        source=g.source,
        n_snps=g.n_snps,
        samples=list(data.samples),
        y=data.y.round(12).tolist(),
        X=data.X.round(12).tolist(),
        exact=exact,
        null=null,
        chunk=chunk_size,
        loco=loco,
        method=kinship_method,
        snps=snp_idx.tolist(),
        K=None if K is None else "given",
        tau=bf_prior_sd,
    )
    if parts is not None:
        _open_parts(parts, settings, _input_fingerprint(g, K), resume, overwrite)
    try:
        return _scan_chunks(
            g,
            data,
            K,
            loco,
            exact,
            null,
            posterior,
            kinship_method,
            chunk_size,
            snp_idx,
            bf_prior_sd,
            client,
            out_path,
            parts,
            progress,
        )
    except KeyboardInterrupt as exc:
        if parts is not None and parts.is_dir():
            exc.add_note(
                f"bayeslmm.scan was interrupted; the completed chunks are kept in {parts}. Run "
                "the same scan with resume=True (bayeslmm scan ... --resume) to continue it."
            )
        raise


def _scan_chunks(
    g: Genotypes,
    data: Prepared,
    K: Any,
    loco: bool,
    exact: bool,
    null: str,
    posterior: Any,
    kinship_method: str,
    chunk_size: int,
    snp_idx: np.ndarray,
    bf_prior_sd: float,
    client: Any,
    out_path: Path | None,
    parts: Path | None,
    progress: bool,
) -> pd.DataFrame:
    """The chunk loop of :func:`scan` (local or on dask workers), writing parts and the table."""
    tables: list[pd.DataFrame] = []
    positions: list[np.ndarray] = []  # SNP positions of each table, to restore file order
    chunk_id = 0
    futures: list[tuple[int, Any]] = []
    sizes = np.array([group.size for _, group in _plan(g, K, loco, snp_idx)[0]])
    total = int(np.ceil(sizes / chunk_size).sum())
    for label, matrix, group_snps in _groups(g, data, K, loco, kinship_method, snp_idx):
        # a Kinship over exactly the analysed samples keeps its decomposition between scans
        if isinstance(matrix, Kinship):
            spectral = matrix.spectral()
        else:
            spectral = spectral_from_kinship(matrix)
        fit = _fit_null(spectral, data, null, posterior, exact)
        remote_fit = client.scatter(fit, broadcast=True) if client is not None else None
        for start in range(0, group_snps.size, chunk_size):
            idx = group_snps[start : start + chunk_size]
            positions.append(idx)
            part = parts / f"{chunk_id:06d}.tsv" if parts is not None else None
            chunk_id += 1
            if part is not None and part.exists():
                tables.append(_read_part(part))
                continue
            snp_table = g.snps.iloc[idx]
            if client is not None and g.source.endswith(".bed"):
                fut = client.submit(
                    _remote_chunk,
                    remote_fit,
                    g.source,
                    idx,
                    data.rows,
                    snp_table,
                    exact,
                    bf_prior_sd,
                    pure=False,
                )
                futures.append((len(tables), fut, part))
                tables.append(None)
                continue
            G = g.read(idx, data.rows)
            if client is not None:
                fut = client.submit(
                    _chunk_table, remote_fit, G, snp_table, exact, bf_prior_sd, pure=False
                )
                futures.append((len(tables), fut, part))
                tables.append(None)
                continue
            table = _chunk_table(fit, G, snp_table, exact, bf_prior_sd)
            if part is not None:
                _write_table(table, part)
                table = _read_part(part)  # the same text the final file is assembled from
            tables.append(table)
            if progress:
                print(
                    f"\rscan: chunk {chunk_id}/{total} (kinship {label})", end="", file=sys.stderr
                )
    for position, fut, part in futures:
        table = fut.result()
        if part is not None:
            _write_table(table, part)
            table = _read_part(part)
        tables[position] = table
    if progress:
        print(file=sys.stderr)
    result = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    order = np.argsort(np.concatenate(positions), kind="stable") if positions else []
    result = result.iloc[order].reset_index(drop=True)
    if out_path is not None:
        _write_table(result, out_path)
        _remove_parts(parts)
    return result
