r"""The scan from a Gram: exact P3D statistics through W'G, never an N×N K nor its eigenvectors.

With K = WW'/M from M model SNPs and W'W = V diag(λ) V' (:class:`~bayeslmm.relatedness.gram.Gram`),
a test SNP g enters every statistic through U'g = diag(s)^{-1/2} V'(W'g)/√(Mc), [X, y]'g and
g'g (DESIGN §6, "Large cohorts"). Testing T SNPs is then one (M×N)(N×T) product, streamed over
blocks of samples: W is decoded block by block from the model SNPs' file and multiplied with the
same block of the test SNPs (:func:`scan_pass`). LOCO needs no second pass over the genotypes:
the Gram of the other chromosomes' model SNPs is a principal submatrix of W'W, decomposed once
per chromosome (:func:`group_fit`), or for P3D tests with many model SNPs read as a rank-k
update of the whole Gram's eigenbasis (:mod:`bayeslmm.gwas.loco`). The null model, the
statistics and the output are those of the N×N scan
(:mod:`bayeslmm.gwas.snp_statistics`, :mod:`bayeslmm.gwas.parts`).
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import blas

from bayeslmm.data.samples import Prepared
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.gwas.loco import loco_null, whole_basis, whole_from_basis, whole_gram
from bayeslmm.gwas.parts import read_part, remove_parts, write_table
from bayeslmm.gwas.snp_statistics import (
    COLUMNS,
    NullFit,
    block_from_products,
    chunk_frame,
    fit_null,
    snp_statistics,
)
from bayeslmm.io.chromosomes import normalize_chromosomes
from bayeslmm.io.genotypes import Genotypes
from bayeslmm.io.plink_codes import BedFile, Codebook, code_counts, decode, moments, value_table
from bayeslmm.linalg.spectral import (
    DEFAULT_RTOL,
    LowRank,
    Standardized,
    rotate_lowrank,
    spectral_from_gram,
    standardize,
)
from bayeslmm.relatedness.gram import Gram, SnpReader, n_workers

#: Test SNPs multiplied with one pass over W (whole chunks; at least one chunk). Each pass
#: decodes W once (N·M values), so long passes amortize it; memory is about
#: (M + block) × PASS_SNPS doubles and N/4 bytes per test SNP.
PASS_SNPS = 4096

#: Groups of LOCO whose null fits may be on the workers at once (each holds an M × M basis).
GROUPS_IN_FLIGHT = 2

#: Model SNPs from which LOCO for P3D tests with a REML null is a rank-k update of the whole
#: Gram's eigenbasis (:mod:`bayeslmm.gwas.loco`: one O(M³) decomposition, then ~150 O(k²M)
#: likelihood evaluations per chromosome) rather than a decomposition of each chromosome's
#: submatrix of W'W (22 × O(M³)); below it the decompositions are cheaper. The exact mode, a
#: posterior null and N ≤ M always decompose each submatrix.
LOCO_BY_UPDATE_FROM = 2000


@dataclass(frozen=True, eq=False)
class ScanSamples:
    """The samples analysed, in the order the model SNPs' file is read.

    Attributes
    ----------
    model : ndarray of int
        Their positions in the file of the Gram's genotypes, increasing.
    test : ndarray of int
        Positions of the same samples in the file of the tested genotypes.
    A : ndarray
        The standardized covariates and phenotype [X, y], rows in this order
        [shape: (n, d + 1)].
    block : int
        Samples per block (the Gram's ``chunk_size``).
    """

    model: np.ndarray
    test: np.ndarray
    A: np.ndarray
    block: int

    @property
    def n(self) -> int:
        """Number of samples analysed."""
        return self.model.size


@dataclass(frozen=True, eq=False)
class TestSnps:
    """Where the tested SNPs are read from: a .bed (picklable) or genotypes in memory.

    Attributes
    ----------
    bed : BedFile or None
        Read through its raw codes (a dask task reopens it).
    genotypes : Genotypes or None
        Read through ``genotypes.read`` when ``bed`` is None.
    """

    bed: BedFile | None
    genotypes: Genotypes | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class PassProducts:
    """The products of a pass of test SNPs with W, [X, y] and themselves, and their counts.

    Attributes
    ----------
    WtG : ndarray
        W'G over the samples analysed [shape: (n_model_snps, t)].
    AtG : ndarray
        [X, y]'G [shape: (d + 1, t)].
    gtg : ndarray
        g'g of each centred, imputed SNP [shape: (t,)].
    af, count, ok, sd_g : ndarray
        Frequency of a1, calls, testable (polymorphic with calls), SD (ddof 1) [each (t,)].
    """

    WtG: np.ndarray
    AtG: np.ndarray
    gtg: np.ndarray
    af: np.ndarray
    count: np.ndarray
    ok: np.ndarray
    sd_g: np.ndarray


def gram_plan(
    genotypes: Genotypes, gram: Gram, loco: bool, snp_idx: np.ndarray
) -> tuple[list[tuple[str, str | None, np.ndarray]], str | None]:
    """SNP groups that share a null model: [(label, chromosome left out or None, SNPs)].

    With LOCO, the tested SNPs of each chromosome that has model SNPs are tested against the
    Gram of the model SNPs of the other chromosomes; the others (X, Y, chromosomes without
    model SNPs) form one group ("autosomes") tested against the whole Gram. The second item
    says why LOCO was asked for but cannot apply (model SNPs on fewer than two chromosomes),
    else None.
    """
    if not loco:
        return [("all", None, snp_idx)], None
    model = normalize_chromosomes(gram.snps["chrom"])
    groups = list(dict.fromkeys(model))
    if len(groups) < 2:
        reason = (
            "chromosome unknown ('0') for every model SNP of the Gram"
            if groups == ["0"]
            else f"every model SNP of the Gram is on chromosome {groups[0]}"
        )
        return [("all", None, snp_idx)], reason
    tested = normalize_chromosomes(genotypes.snps["chrom"])[snp_idx]
    plan = [(c, c, snp_idx[tested == c]) for c in dict.fromkeys(tested) if c in groups]
    others = snp_idx[~np.isin(tested, groups)]
    if others.size:
        plan.append(("autosomes", None, others))
    return plan, None


def gram_rows(gram: Gram, data: Prepared) -> np.ndarray:
    """Positions among the Gram's samples of the samples analysed (by ID), in their order.

    Raises
    ------
    InputError
        A sample analysed that the Gram does not have.
    """
    pos = pd.Index(gram.samples).get_indexer(pd.Index(data.samples))
    if (pos < 0).any():
        missing = list(pd.Index(data.samples)[pos < 0][:3])
        raise InputError(
            f"the Gram has no row for {int((pos < 0).sum())} analysed samples (e.g. {missing}); "
            "build it with bl.gram on genotypes that include every sample of the scan."
        )
    return pos


def test_products(
    model: SnpReader, test: TestSnps, chunks: list[np.ndarray], samples: ScanSamples
) -> PassProducts:
    r"""Products of some test SNPs with W, [X, y] and themselves, streamed by sample blocks.

    Parameters
    ----------
    model : SnpReader
        The standardized model SNPs of the kinship (LOCO: those of the other chromosomes).
    test : TestSnps
        Where the tested SNPs are read from.
    chunks : list of ndarray of int
        Positions of the tested SNPs in their file, chunk by chunk.
    samples : ScanSamples
        The samples analysed.

    Returns
    -------
    PassProducts
        The chunks side by side.

    Notes
    -----
    Each tested SNP is mean-imputed and centred over the samples analysed,
    :math:`g_i = x_i - \bar x` (0 where missing), as the N×N scan does. For a .bed the calls,
    mean and sum of squares come from the code counts and g is decoded block by block
    (:mod:`bayeslmm.io.plink_codes`); the test SNPs' codes over all samples are held for the
    pass (N/4 bytes each). Per block b, W_b is decoded once for the pass beside the block's
    rows of A, and the products of each chunk are one GEMM :math:`[W_b, A_b]^\top G_b`
    (BLAS, accumulated in place) and :math:`\sum_i g_{ib}^2`: a chunk's numbers do not
    depend on the other chunks of its pass, so a resumed scan writes the same bytes.
    """
    snps = np.concatenate(chunks)
    n, t = samples.n, snps.size
    edges = np.cumsum([0] + [idx.size for idx in chunks])
    if test.bed is not None:
        codes = test.bed.read(snps)
        every = samples.test.size == test.bed.n_samples and np.array_equal(
            np.sort(samples.test), np.arange(test.bed.n_samples)
        )
        count, mean, sum_sq = moments(
            code_counts(codes, test.bed.n_samples, None if every else samples.test)
        )
        ok = (count > 0) & (sum_sq > 0)
        af = np.where(count > 0, mean / 2, np.nan)
        sd_g = np.sqrt(sum_sq / (n - 1))
        center = np.where(ok, mean, 0.0)
        book = Codebook.build(value_table(center) * ok[:, None], samples.block)

        def test_block(rows: slice) -> np.ndarray:
            return decode(codes, book, samples.test[rows])

    else:
        G = test.genotypes.read(snps, samples.test)
        observed = ~np.isnan(G)
        count = observed.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, np.nansum(G, axis=0) / np.maximum(count, 1), np.nan)
        G = np.where(observed, G, mean)
        ok = (count > 0) & (np.nan_to_num(G.std(axis=0)) > 0)
        af = mean / 2
        sd_g = np.where(ok, G.std(axis=0, ddof=1), np.nan)
        G = np.asfortranarray(np.where(ok, G - G.mean(axis=0), 0.0))

        def test_block(rows: slice) -> np.ndarray:
            return G[rows]

    m = model.n_snps
    P = np.zeros((m + samples.A.shape[1], t), order="F")  # [W, A]'G
    gtg = np.zeros(t)
    for start, WA in model.blocks(samples.model, samples.block, extra=samples.A):
        rows = slice(start, start + WA.shape[0])
        Gb = np.asfortranarray(test_block(rows))
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            acc = P[:, a:b]  # (a view: columns of a column-major array)
            out = blas.dgemm(1.0, WA, Gb[:, a:b], beta=1.0, c=acc, trans_a=1, overwrite_c=1)
            if out is not acc:  # (f2py copied the accumulator)
                acc[...] = out
            gtg[a:b] += np.einsum("ij,ij->j", Gb[:, a:b], Gb[:, a:b])
    return PassProducts(P[:m], P[m:], gtg, af, count, ok, sd_g)


def group_fit(
    wtw: np.ndarray,
    cols: np.ndarray | None,
    WtA: np.ndarray,
    std: Standardized,
    data: Prepared,
    null: str,
    posterior: Any,
    exact: bool,
) -> NullFit:
    r"""The null model of one group from W'W of the samples analysed (a dask task, or local).

    Parameters
    ----------
    wtw : ndarray
        W'W over the samples analysed, every model SNP [shape: (M, M)]; not modified.
    cols : ndarray of int or None
        The model SNPs of the group's kinship (LOCO: those of the other chromosomes); None:
        all of them.
    WtA : ndarray
        W'[X, y] of the standardized covariates and phenotype, every model SNP
        [shape: (M, d + 1)].
    std, data, null, posterior, exact
        As for :func:`bayeslmm.gwas.snp_statistics.fit_null`.

    Returns
    -------
    NullFit
        With the :class:`~bayeslmm.linalg.spectral.LowRank` basis of the group's K.

    Notes
    -----
    The kinship of the other chromosomes' model SNPs, :math:`W_J W_J^\top/M_J`, has the
    Gram :math:`W_J^\top W_J`, the principal submatrix of W'W on J: decomposed in place
    (O(M_J³)), normalized to mean diagonal 1 as the N×N scan normalizes its LOCO kinships.
    """
    if cols is None:
        basis = spectral_from_gram(wtw, data.n, normalize=True, rtol=DEFAULT_RTOL)
        WtA_group = WtA
    else:  # the submatrix is made for the purpose: decomposed in place
        sub = wtw[np.ix_(cols, cols)]
        basis = spectral_from_gram(sub, data.n, rtol=DEFAULT_RTOL, overwrite=True)
        del sub
        WtA_group = WtA[cols]
    rot = rotate_lowrank(basis, std.y, std.X, WtA_group)
    return fit_null(rot, std, data, null, posterior, exact, scale=basis.scale, basis=basis)


def scan_pass(
    fit: NullFit | list[NullFit],
    model: SnpReader,
    test: TestSnps,
    samples: ScanSamples,
    chunks: list[np.ndarray],
    snp_tables: list[pd.DataFrame],
    exact: bool,
    bf_prior_sd: float,
    basis: LowRank | None = None,
) -> list[pd.DataFrame]:
    """The tables of some chunks of one group: one pass over W (a dask task, or local).

    Parameters
    ----------
    fit : NullFit or list of NullFit
        The group's null model, with its :class:`~bayeslmm.linalg.spectral.LowRank` basis;
        or one per chunk (LOCO by update: chunks of several groups share a pass over W, since
        every group's kinship is read from the whole Gram's basis).
    model, test, samples
        As in :func:`test_products`.
    chunks : list of ndarray
        SNP positions of each chunk.
    snp_tables : list of DataFrame
        Their rows of the genotypes' SNP table.
    exact, bf_prior_sd
        As in :func:`bayeslmm.scan`.
    basis : LowRank, optional
        The basis of a ``fit`` sent without it (LOCO by update on dask: the whole Gram's
        basis is on every worker once, each group's fit is small).

    Returns
    -------
    list of DataFrame
        One table per chunk, the columns of :func:`bayeslmm.scan`.
    """
    products = test_products(model, test, chunks, samples)
    return pass_tables(fit, products, chunks, snp_tables, exact, bf_prior_sd, basis)


def pass_tables(
    fit: NullFit | list[NullFit],
    products: PassProducts,
    chunks: list[np.ndarray],
    snp_tables: list[pd.DataFrame],
    exact: bool,
    bf_prior_sd: float,
    basis: LowRank | None = None,
) -> list[pd.DataFrame]:
    """The tables of the chunks of a pass from its products (the second half of :func:`scan_pass`).

    On dask it is a task of its own: the products (:func:`test_products`) do not need the
    null fit, so they run while the fit is being made (e.g. during the whole Gram's O(M³)
    decomposition), and only this cheap step waits for it. Parameters as :func:`scan_pass`.
    """
    fits = fit if isinstance(fit, list) else [fit] * len(chunks)
    fits = [f if f.basis is not None else replace(f, basis=basis) for f in fits]
    tables, start = [], 0
    for fit, idx, snp_table in zip(fits, chunks, snp_tables, strict=True):
        cols = np.arange(start, start + idx.size)
        start += idx.size
        ok = products.ok[cols]
        res = None
        if ok.any():
            sel = cols[ok]
            block = block_from_products(
                fit, products.WtG[:, sel], products.AtG[:, sel], products.gtg[sel]
            )
            res = snp_statistics(fit, block, products.sd_g[sel], exact, bf_prior_sd)
        tables.append(chunk_frame(snp_table, products.af[cols], products.count[cols], ok, res))
    return tables


def _passes(pending: list[tuple], limit: int) -> list[list[tuple]]:
    """Consecutive pending chunks grouped into passes of at most ``limit`` SNPs (or one chunk)."""
    out: list[list[tuple]] = []
    size = 0
    for item in pending:
        if not out or size + item[1].size > limit:
            out.append([])
            size = 0
        out[-1].append(item)
        size += item[1].size
    return out


def scan_gram(
    g: Genotypes,
    data: Prepared,
    gram: Gram,
    *,
    loco: bool,
    exact: bool,
    null: str,
    posterior: Any,
    chunk_size: int,
    snp_idx: np.ndarray,
    bf_prior_sd: float,
    client: Any,
    out_path: Path | None,
    parts: Path | None,
    progress: bool,
) -> pd.DataFrame:
    """The chunk loop of :func:`bayeslmm.scan` with a Gram (local or on dask workers).

    Per LOCO group: the Gram of the model SNPs of the other chromosomes over the samples
    analysed (a submatrix of W'W, downdated once for samples the Gram has but the scan does
    not), its eigendecomposition and the null fit from W'[X, y] (:func:`group_fit`), then
    passes of chunks (:func:`scan_pass`). On dask both are tasks: the fits of up to
    :data:`GROUPS_IN_FLIGHT` groups run beside the passes and stay on the workers.
    Completed chunks are read back from ``parts``; new ones written there, as in the N×N
    scan.
    """
    rows = gram_rows(gram, data)
    std = standardize(data.y, data.X)
    A = np.column_stack([std.X, std.y])
    wtw = gram.cross(rows)
    order, model_positions = gram.sorted_rows(rows)
    order = np.arange(rows.size) if order is None else order
    samples = ScanSamples(model_positions, data.rows[order], A[order], gram.chunk_size)
    test = TestSnps(BedFile.of(g), None if BedFile.of(g) is not None else g)
    plan, why_not = gram_plan(g, gram, loco, snp_idx)
    if why_not is not None:
        warnings.warn(
            f"LOCO cannot apply: {why_not}, so every SNP is tested against the whole Gram, "
            "which includes its own chromosome (proximal contamination makes the tests slightly "
            "conservative). Build the Gram from model SNPs on two or more chromosomes, or pass "
            "loco=False to ask for one kinship.",
            DataWarning,
            stacklevel=3,
        )
    distributed = client is not None and test.bed is not None and gram.bed is not None
    remote_samples = client.scatter(samples, broadcast=True) if distributed else None
    remote_wtw = client.scatter(wtw) if distributed else None
    WtA: Any = None  # W'[X, y]: one pass over W (on dask: tasks, a future), made when needed

    def projected() -> Any:
        nonlocal WtA
        if WtA is None:
            WtA = gram.submit_project(client, A, rows) if distributed else gram.project(A, rows)
        return WtA

    limit = PASS_SNPS
    if distributed:  # at least ~4 passes a worker, for balance
        limit = min(limit, max(chunk_size, -(-snp_idx.size // (4 * n_workers(client)))))
    model_chrom = normalize_chromosomes(gram.snps["chrom"])
    total = sum(-(-group.size // chunk_size) for _, _, group in plan)
    tables: list[pd.DataFrame | None] = []
    positions: list[np.ndarray] = []
    in_flight: deque[list[tuple[list, Any]]] = deque()
    chunk_id = 0

    def report(done: int, label: str) -> None:
        if progress:
            print(f"\rscan: chunk {done}/{total} (Gram, {label})", end="", file=sys.stderr)

    def collect(group: list[tuple[list, Any]]) -> None:
        for batch, future in group:
            for (position, _, part), table in zip(batch, future.result(), strict=True):
                tables[position] = _keep(table, part)
            report(sum(t is not None for t in tables), "on the cluster")

    # LOCO by a rank-k update of the whole Gram's eigenbasis (one O(M³) decomposition, not one
    # per chromosome) for P3D tests with a REML null, when N > M (K rank deficient, as there)
    by_update = null == "reml" and not exact and LOCO_BY_UPDATE_FROM <= gram.n_snps < data.n
    whole, remote_basis = None, None
    queued: list[tuple[np.ndarray, list]] = []  # LOCO by update: (left out, pending chunks)
    for label, excluded, group_snps in plan:
        update = by_update and excluded is not None
        if update or excluded is None:
            cols = np.arange(gram.n_snps)
        else:
            cols = np.flatnonzero(model_chrom != excluded)
        pending = []
        for start in range(0, group_snps.size, chunk_size):
            idx = group_snps[start : start + chunk_size]
            positions.append(idx)
            part = parts / f"{chunk_id:06d}.tsv" if parts is not None else None
            chunk_id += 1
            if part is not None and part.exists():
                tables.append(read_part(part))
                continue
            pending.append((len(tables), idx, part))
            tables.append(None)
        if not pending:
            continue
        model = gram.reader(cols)
        group_cols = None if excluded is None else cols
        if update and whole is None and distributed:  # the M³ decomposition is a task too,
            # submitted before the W'[X, y] pass so that it starts first: the passes' products
            # and W'[X, y] go on the other workers meanwhile
            remote_basis = client.submit(whole_basis, remote_wtw, data.n, pure=False)
            whole = client.submit(
                whole_from_basis, remote_basis, std, projected(), np.diag(wtw).copy(), pure=False
            )
        elif update and whole is None:
            whole = whole_gram(wtw, data.n, std, projected())
        out = np.flatnonzero(model_chrom == excluded) if update else None
        if update:  # every group reads the whole Gram: passes may span groups (below)
            queued.append((out, pending))
            continue
        if distributed:  # the null fit (an M_J³ eigendecomposition) is a task too
            while len(in_flight) >= GROUPS_IN_FLIGHT:
                collect(in_flight.popleft())
            remote_fit = client.submit(
                group_fit,
                remote_wtw,
                group_cols,
                projected(),
                std,
                data,
                null,
                posterior,
                exact,
                pure=False,
            )
            submitted = []
            for batch in _passes(pending, limit):
                chunks = [idx for _, idx, _ in batch]
                future = client.submit(
                    scan_pass,
                    remote_fit,
                    model,
                    test,
                    remote_samples,
                    chunks,
                    [g.snps.iloc[idx] for idx in chunks],
                    exact,
                    bf_prior_sd,
                    pure=False,
                )
                submitted.append((batch, future))
            in_flight.append(submitted)
            continue
        fit = None  # (the previous group's M×M basis goes before the next comes)
        fit = group_fit(wtw, group_cols, projected(), std, data, null, posterior, exact)
        for batch in _passes(pending, limit):
            chunks = [idx for _, idx, _ in batch]
            frames = scan_pass(
                fit,
                model,
                test,
                samples,
                chunks,
                [g.snps.iloc[idx] for idx in chunks],
                exact,
                bf_prior_sd,
            )
            for (position, _, part), table in zip(batch, frames, strict=True):
                tables[position] = _keep(table, part)
            report(sum(t is not None for t in tables), label)
    if queued:
        by_update_args = (queued, whole, std, data, gram, test, g, limit, exact, bf_prior_sd)
        if distributed:
            in_flight.append(
                _submit_by_update(*by_update_args, client, remote_samples, remote_basis)
            )
        else:
            _scan_by_update(*by_update_args, samples, tables, report)
    while in_flight:
        collect(in_flight.popleft())
    if progress:
        print(file=sys.stderr)
    result = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    order = np.argsort(np.concatenate(positions), kind="stable") if positions else []
    result = result.iloc[order].reset_index(drop=True)
    if out_path is not None:
        write_table(result, out_path)
        remove_parts(parts)
    return result


def _small_loco_null(whole: Any, out: np.ndarray, std: Standardized, data: Prepared) -> NullFit:
    """:func:`loco_null` without the basis (a dask task: the workers hold the basis once)."""
    return replace(loco_null(whole, out, std, data), basis=None)


def _by_update_passes(
    queued: list[tuple[np.ndarray, list]],
    whole: Any,
    std: Standardized,
    data: Prepared,
    limit: int,
    make: Any = loco_null,
) -> Iterator[tuple[list[tuple], list[Any]]]:
    """Passes of LOCO by update across groups: (chunks, the fit of each chunk).

    ``queued`` holds each group's left-out model SNPs and pending chunks (position, idx,
    part). A group's null fit (k × r), ``make(whole, out, std, data)`` (on a cluster: a
    future), is made when its first chunk comes and dropped after its last chunk. The chunks
    are yielded as (position, idx, part, group).
    """
    items = [
        (position, idx, part, k)
        for k, (_, pending) in enumerate(queued)
        for position, idx, part in pending
    ]
    left = Counter(k for *_, k in items)
    made: dict[int, Any] = {}
    for batch in _passes(items, limit):
        for *_, k in batch:
            if k not in made:
                made[k] = make(whole, queued[k][0], std, data)
        yield batch, [made[k] for *_, k in batch]
        for *_, k in batch:
            left[k] -= 1
            if not left[k]:
                del made[k]


def _scan_by_update(
    queued: list[tuple[np.ndarray, list]],
    whole: Any,
    std: Standardized,
    data: Prepared,
    gram: Gram,
    test: TestSnps,
    g: Genotypes,
    limit: int,
    exact: bool,
    bf_prior_sd: float,
    samples: ScanSamples,
    tables: list,
    report: Any,
) -> None:
    """The passes of LOCO by update on one machine, across groups.

    Every group's tests read W'G of all the model SNPs (its kinship is an update of the whole
    Gram's basis), so consecutive chunks of different groups share a pass over W: at
    T = 50,000 tested SNPs on 22 chromosomes, 13 passes of :data:`PASS_SNPS` instead of 22
    (each decodes the N × M model genotypes).
    """
    model = gram.reader(np.arange(gram.n_snps))
    for batch, fits in _by_update_passes(queued, whole, std, data, limit):
        chunks = [idx for _, idx, _, _ in batch]
        frames = scan_pass(
            fits,
            model,
            test,
            samples,
            chunks,
            [g.snps.iloc[idx] for idx in chunks],
            exact,
            bf_prior_sd,
        )
        for (position, _, part, _), table in zip(batch, frames, strict=True):
            tables[position] = _keep(table, part)
        report(sum(t is not None for t in tables), "LOCO")


def _submit_by_update(
    queued: list[tuple[np.ndarray, list]],
    whole: Any,
    std: Standardized,
    data: Prepared,
    gram: Gram,
    test: TestSnps,
    g: Genotypes,
    limit: int,
    exact: bool,
    bf_prior_sd: float,
    client: Any,
    remote_samples: Any,
    remote_basis: Any,
) -> list[tuple[list, Any]]:
    """The passes of LOCO by update as dask tasks, across groups (as :func:`_scan_by_update`).

    ``whole`` is a future (the whole Gram's decomposition, a task); each group's null fit is
    a task on it (small: F is k × r, sent without the basis, which the workers hold once),
    submitted before the first pass that needs it; each pass takes the fits of its chunks.
    Each pass is two tasks: its products with W (:func:`test_products`, which need no fit,
    so they run while the whole Gram is decomposed) and its tables (:func:`pass_tables`).
    The client only submits: on a machine it shares with its workers it takes no core from
    them. Returns (chunks, future) pairs as the other dask passes.
    """
    model = gram.reader(np.arange(gram.n_snps))

    def make(whole: Any, out: np.ndarray, std: Standardized, data: Prepared) -> Any:
        return client.submit(_small_loco_null, whole, out, std, data, pure=False)

    submitted = []
    for batch, fits in _by_update_passes(queued, whole, std, data, limit, make=make):
        chunks = [idx for _, idx, _, _ in batch]
        products = client.submit(test_products, model, test, chunks, remote_samples, pure=False)
        future = client.submit(
            pass_tables,
            fits,
            products,
            chunks,
            [g.snps.iloc[idx] for idx in chunks],
            exact,
            bf_prior_sd,
            remote_basis,
            pure=False,
        )
        submitted.append(([item[:3] for item in batch], future))
    return submitted


def _keep(table: pd.DataFrame, part: Path | None) -> pd.DataFrame:
    """Write a chunk's table to its part file and read it back (the text the output is made of)."""
    if part is None:
        return table
    write_table(table, part)
    return read_part(part)
