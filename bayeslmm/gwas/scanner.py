"""Genome-wide association scan under the LMM: variance components once, then every SNP.

The null model is fitted once per kinship (REML by default; one per chromosome with LOCO),
then SNPs are read from disk in chunks, rotated into the eigenbasis of K with one matrix
product per chunk, and tested in closed form (:mod:`bayeslmm.gwas.association`). ``exact=True``
re-estimates λ = σg²/σe² for every SNP (GEMMA ``-lmm 4``), vectorized across the chunk.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.inputs import kinship_array
from bayeslmm.data.samples import Prepared, prepare
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.gwas.interaction import GXE_COLUMNS, GxeBlock, gxe_statistics
from bayeslmm.gwas.lowrank import scan_gram
from bayeslmm.gwas.parts import (
    input_fingerprint,
    open_parts,
    read_part,
    remove_parts,
    settings_hash,
    write_table,
)
from bayeslmm.gwas.snp_statistics import (
    COLUMNS,
    NULLS,
    NullFit,
    chunk_frame,
    fit_null,
    rotate_block,
    snp_statistics,
)
from bayeslmm.gwas.snp_statistics import log10_bf as _log10_bf  # noqa: F401 (tests use it)
from bayeslmm.io.chromosomes import normalize_chromosomes
from bayeslmm.io.genotypes import Genotypes
from bayeslmm.io.outputs import check_outputs
from bayeslmm.linalg.spectral import Spectral, rotate_data, spectral_from_kinship, standardize
from bayeslmm.relatedness.gram import Gram
from bayeslmm.relatedness.grm import Kinship, as_genotypes, in_kinship, kinship, loco_kinships
from bayeslmm.relatedness.gxe import environment_values


def _fit_null(
    spectral: Spectral,
    data: Prepared,
    null: str,
    posterior: Any,
    exact: bool,
    env: np.ndarray | None = None,
) -> NullFit:
    std = standardize(data.y, data.X)  # no cancellation from the units or offsets of y and X
    rot = rotate_data(spectral, std.y, std.X)
    map_h2 = None
    if null == "map":
        from bayeslmm.families.gaussian import kinship_model
        from bayeslmm.inference.sampling import map_estimate

        model = kinship_model(data.y, spectral, data.X[:, 1:] if _has_intercept(data) else data.X)
        map_h2 = float(map_estimate(model)["posterior"]["h2"].values.ravel()[0])
    fit = fit_null(
        rot, std, data, null, posterior, exact, scale=spectral.scale, U=spectral.U, map_h2=map_h2
    )
    return fit if env is None else dataclasses.replace(fit, env=env)


def _has_intercept(data: Prepared) -> bool:
    return "intercept" in data.covariates


def _test_chunk(fit: NullFit, G: np.ndarray, exact: bool, bf_prior_sd: float) -> dict:
    """All statistics of one chunk [G: (n_samples, c), imputed]."""
    sd_g = G.std(axis=0, ddof=1)
    G = G - G.mean(axis=0)
    block = rotate_block(fit, G)
    out = snp_statistics(fit, block, sd_g, exact, bf_prior_sd)
    if fit.env is not None:  # the interaction g∘e, centred (the span of [1, e, g, g∘e] is kept)
        H = G * fit.env[:, None]
        H -= H.mean(axis=0)
        inter = rotate_block(fit, H)
        cross = np.einsum("ij,ij->j", G, H) - np.einsum("ij,ij->j", block.G1, inter.G1)
        lam0 = float(np.mean(fit.lam))
        out.update(
            gxe_statistics(
                fit.null,
                GxeBlock(block, inter, cross),
                lam0,
                fit.lam_ml,
                fit.bounds,
                exact,
                fit.y_scale,
            )
        )
    return out


def _environment(env: Any, data: Prepared, g: Genotypes) -> tuple[Prepared, np.ndarray]:
    """Align the G×E environment with the analysed samples and add it to the covariates.

    Returns the data with e as the last column of X and e centred [shape: (n_samples,)].
    """
    values, ids, name = environment_values(env, "gxe")
    if ids is not None:
        pos = ids.get_indexer(pd.Index(data.samples))
        aligned = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
    else:
        if values.shape[0] != g.n_samples:
            raise InputError(
                f"gxe has shape {values.shape} but the genotypes have {g.n_samples} samples; a "
                "plain array environment is aligned by position with the genotype file (pass a "
                "Series indexed by sample ID to align by ID)."
            )
        aligned = values[data.rows]
    missing = np.isnan(aligned)
    if missing.any():
        shown = [str(i) for i in data.samples[missing][:5]]
        raise InputError(
            f"environment '{name}' is missing for {int(missing.sum())} of the {data.n} samples "
            f"analysed (e.g. {shown}); give it for every sample, or set their phenotype to NaN "
            "to leave them out of the scan."
        )
    if np.isinf(aligned).any():
        raise InputError(f"environment '{name}' has infinite values; fix them.")
    if np.ptp(aligned) == 0:
        raise InputError(
            f"environment '{name}' is constant ({aligned[0]:g}) over the {data.n} samples "
            "analysed, so g×e is the SNP itself and no interaction can be tested; give an "
            "environment that varies."
        )
    names = list(data.covariates)
    while name in names:
        name = "_" + name
    X = np.column_stack([data.X, aligned])
    scaled = X / np.linalg.norm(X, axis=0)
    if np.linalg.matrix_rank(scaled, tol=X.shape[0] * np.finfo(float).eps * 1e3) < X.shape[1]:
        raise InputError(
            f"environment '{name}' is collinear with the covariates {names}; gxe adds it to "
            "the covariates itself, so remove it (or what spans it) from X."
        )
    if data.n <= X.shape[1] + 3:
        raise InputError(
            f"{data.n} samples cannot support a G×E test with {X.shape[1]} covariates; need "
            "more samples than covariates + 3."
        )
    data = dataclasses.replace(data, X=X, covariates=(*names, name))
    return data, aligned - aligned.mean()


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
    res = _test_chunk(fit, G[:, ok], exact, bf_prior_sd) if ok.any() else None
    extra = GXE_COLUMNS if fit.env is not None else ()
    return chunk_frame(snp_table, af, count, ok, res, extra)


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


def scan(
    genotypes: Any,
    y: Any,
    *,
    K: Any = None,
    X: Any = None,
    gxe: Any = None,
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
        A :class:`~bayeslmm.relatedness.gram.Gram` (:func:`bayeslmm.gram`) stands for
        K = WW'/M of its model SNPs without forming it (the large-cohort path, see Notes);
        with ``loco`` each chromosome is then tested against the model SNPs of the others.
    X : optional
        Covariates (an intercept is added unless X spans the constant).
    gxe : optional
        An environment e for a per-SNP G×E test: Series indexed by sample ID (or an array
        aligned with the genotype samples), numeric, known for every sample analysed. e joins
        the covariates (so the usual columns test g with e as a covariate), and the
        interaction g∘e is tested with X, e and g as covariates (GEMMA ``-gxe``; see
        :mod:`bayeslmm.gwas.interaction`). Not available with a Gram.
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
        Run chunks as tasks on its workers (same table as the local run). With a Gram and
        PLINK files, each task reads its own SNPs and blocks of the model SNPs from the files
        (paths and positions are sent, never genotypes); genotypes in memory are then tested
        here.
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
        With ``gxe``, also beta_gxe (the interaction's effect per a1 allele per unit of e),
        se_gxe, p_wald_gxe, p_lrt_gxe, p_score_gxe and h2_gxe (the h² used; the SNP's REML h²
        of the interaction model in exact mode).

    Notes
    -----
    With H = λK + I in the eigenbasis, GEMMA's projected quantities P_yy, P_gg, P_gy give
    :math:`\hat\beta = P_{gy}/P_{gg}`, :math:`F_{Wald} = (P_{yy} - RSS_1)\,df/RSS_1`,
    :math:`F_{score} = N P_{gy}^2/(P_{yy} P_{gg})` (both on F(1, N − d − 1)) and the LRT on
    χ²₁. The Bayes factor is Wakefield's approximation,
    :math:`BF = \sqrt{V/(V+W)}\exp(z^2 W / (2(V+W)))` with V = se², W the prior variance.
    λ is searched on GEMMA's range [1e-5, 1e5] × the mean diagonal of K.

    With a Gram, K = WW'/M is known through W'W = V diag(λ) V' (M×M), and a chunk G enters
    every statistic through :math:`U^\top G = \operatorname{diag}(s)^{-1/2} V^\top (W^\top G)
    /\sqrt{Mc}`, [X, y]'G and the squared norms of its SNPs, the null-space terms being
    differences, as in the N×N scan (:mod:`bayeslmm.gwas.lowrank`). W'G is one
    (M×N)(N×T) product per pass of test SNPs, streamed over blocks of samples: never N×N,
    never U, never the genotypes as an N×M float matrix. LOCO needs no second pass over the
    genotypes: the Gram of the other chromosomes' model SNPs is a submatrix of W'W, and the
    null is fitted from it. With M ≥ 2,000 model SNPs (and N > M), P3D tests with a REML null
    read it as a rank-k update of the whole Gram's one eigendecomposition
    (:mod:`bayeslmm.gwas.loco`); otherwise each chromosome's submatrix is decomposed.
    Per-SNP means and divisors of the model SNPs stay those of the Gram's samples (as when a
    given K is restricted to the samples analysed). ``null="map"`` is not available with a
    Gram. The statistics equal those of the N×N scan with the kinship of the same model SNPs
    to round-off (P3D −log10 p within ~1e-12).
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
    if isinstance(K, Gram) and null == "map":
        raise InputError(
            "null='map' needs the N×N kinship model; with a Gram use null='reml' (the default) "
            "or null='posterior' with the draws of bl.sample."
        )
    if gxe is not None and isinstance(K, Gram):
        raise InputError(
            "gxe (a G×E scan) needs an N×N kinship; pass K=None (built from the genotypes) or "
            "a Kinship/array instead of a Gram."
        )
    g = as_genotypes(genotypes)
    data = prepare(y, X, g, genetic_name="genotypes", square=False)
    env = None
    if gxe is not None:
        data, env = _environment(gxe, data, g)
    from bayeslmm.io.genotypes import as_index

    snp_idx = as_index(snps, g.n_snps, "SNPs")
    if resume and out is None:
        raise InputError("resume=True continues a scan written to a file; give out= as well.")
    out_path = check_outputs([out], overwrite=overwrite)[0] if out is not None else None
    parts = Path(f"{out_path}.parts") if out_path is not None else None
    settings = settings_hash(
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
        K=None if K is None else ("gram", K.method, K.n_snps) if isinstance(K, Gram) else "given",
        tau=bf_prior_sd,
    )
    if parts is not None:
        open_parts(parts, settings, input_fingerprint(g, K), resume, overwrite)
    try:
        if isinstance(K, Gram):
            return scan_gram(
                g,
                data,
                K,
                loco=loco,
                exact=exact,
                null=null,
                posterior=posterior,
                chunk_size=chunk_size,
                snp_idx=snp_idx,
                bf_prior_sd=bf_prior_sd,
                client=client,
                out_path=out_path,
                parts=parts,
                progress=progress,
            )
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
            env,
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
    env: np.ndarray | None = None,
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
        fit = _fit_null(spectral, data, null, posterior, exact, env)
        remote_fit = client.scatter(fit, broadcast=True) if client is not None else None
        for start in range(0, group_snps.size, chunk_size):
            idx = group_snps[start : start + chunk_size]
            positions.append(idx)
            part = parts / f"{chunk_id:06d}.tsv" if parts is not None else None
            chunk_id += 1
            if part is not None and part.exists():
                tables.append(read_part(part))
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
                write_table(table, part)
                table = read_part(part)  # the same text the final file is assembled from
            tables.append(table)
            if progress:
                print(
                    f"\rscan: chunk {chunk_id}/{total} (kinship {label})", end="", file=sys.stderr
                )
    for position, fut, part in futures:
        table = fut.result()
        if part is not None:
            write_table(table, part)
            table = read_part(part)
        tables[position] = table
    if progress:
        print(file=sys.stderr)
    columns = [*COLUMNS, *GXE_COLUMNS] if env is not None else COLUMNS
    result = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    order = np.argsort(np.concatenate(positions), kind="stable") if positions else []
    result = result.iloc[order].reset_index(drop=True)
    if out_path is not None:
        write_table(result, out_path)
        remove_parts(parts)
    return result
