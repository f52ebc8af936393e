"""Kinship (genetic relationship) matrices built by streaming SNP chunks through BLAS.

Every construction is K = Σ_j w_j z_j z_j' / Σ_j w_j over SNPs j with a per-SNP transform z_j of
the allele counts; the genotypes are read one chunk at a time, missing calls are imputed by the
SNP mean, and the N×N accumulator is the only large allocation (stated before it is made).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import blas

from bayeslmm.data.samples import positional_ids
from bayeslmm.errors import InputError
from bayeslmm.io.chromosomes import is_autosome, normalize_chromosomes
from bayeslmm.io.genotypes import (
    DEFAULT_CHUNK,
    Genotypes,
    Index,
    as_index,
    check_dosages,
    in_memory_genotypes,
)
from bayeslmm.relatedness.relationship import Kinship

log = logging.getLogger("bayeslmm")

METHODS = ("standardized", "standardized_empirical", "centered", "ldak", "ibs")


def as_genotypes(G: Any, samples: Any = None) -> Genotypes:
    """Wrap an in-memory allele-count matrix [shape: (n_samples, n_snps)] as Genotypes.

    A DataFrame keeps its index as the sample IDs (so it aligns by ID with pandas phenotypes) and
    its columns as the SNP names; a plain array gets IDs "1".."N" and names snp1..snpM.
    """
    if isinstance(G, Genotypes):
        return G
    names = None
    if isinstance(G, pd.DataFrame):
        if samples is None:
            samples = G.index.astype(str)
        names = [str(c) for c in G.columns]
        G = G.to_numpy()
    try:
        values = np.asarray(G, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"genotypes must be numeric allele counts: {err}") from None
    if values.ndim != 2:
        raise InputError(f"genotypes must be a 2-D matrix (samples × SNPs), got {values.shape}.")
    check_dosages(values, snps=names)
    n, m = values.shape
    ids = np.asarray(samples if samples is not None else positional_ids(n), str)
    if len(ids) != n:
        raise InputError(f"{len(ids)} sample IDs for a genotype matrix of {n} samples.")
    snps = pd.DataFrame(
        {
            "chrom": "0",
            "snp": names if names is not None else [f"snp{j + 1}" for j in range(m)],
            "cm": 0.0,
            "pos": np.arange(1, m + 1),
            "a1": "A",
            "a2": "B",
        }
    )
    return in_memory_genotypes(values, ids, snps, "array")


def available_memory() -> int:
    """Bytes of memory available to allocate now (MemAvailable), or a large number if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _check_memory(n: int, n_matrices: int, chunk: int) -> None:
    need = n_matrices * n * n * 8 + 4 * n * chunk * 8
    have = available_memory()
    log.info(
        "kinship: %d×%d float64 accumulator(s) ×%d = %.2f GB (available %.2f GB)",
        n,
        n,
        n_matrices,
        need / 1e9,
        have / 1e9,
    )
    if need > 0.9 * have:
        raise InputError(
            f"building {n_matrices} {n}×{n} kinship matrix(es) needs {need / 1e9:.1f} GB but "
            f"{have / 1e9:.1f} GB are available. Use the low-rank SNP form instead "
            "(bl.snp_model(y, W), thin SVD of W, memory N×M), fewer samples, or a machine with "
            "more memory."
        )


@dataclass
class _Sums:
    """Running sums of one kinship: Σ w z z', Σ w, and GCTA's diagonal terms."""

    cross: np.ndarray
    weight: float = 0.0
    count: int = 0
    diag: np.ndarray | None = None
    diag_count: np.ndarray | None = None
    pairs: np.ndarray | None = None


def in_kinship(codes: np.ndarray) -> np.ndarray:
    """SNPs that kinships use by default: autosomes and unknown chromosome ``"0"``.

    X, Y, XY, MT and named contigs are left out, as GCTA's ``--autosome`` does; SNPs of
    unknown chromosome (plain arrays, BIMBAM without annotation) are kept.
    """
    return is_autosome(codes) | (np.asarray(codes) == "0")


def _runs(labels: np.ndarray) -> list[tuple[str, slice]]:
    """Contiguous runs of equal labels: [(label, slice)], so that blocks split into views."""
    if labels.size == 0:
        return []
    edges = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.r_[0, edges]
    stops = np.r_[edges, labels.size]
    return [(str(labels[a]), slice(a, b)) for a, b in zip(starts, stops, strict=True)]


def prepare_block(
    block: np.ndarray, maf: float, max_missing: float, qc: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Impute and centre a block of allele counts in place; drop the SNPs failing QC.

    The one convention of every kinship and of :func:`bayeslmm.gram`: a missing call is set to
    the mean of the SNP's observed calls (2p), then each SNP is centred by that mean.

    Parameters
    ----------
    block : ndarray
        Allele counts, NaN = missing, every sample of the analysis [shape: (n_samples, b)];
        overwritten.
    maf : float
        SNPs with a minor allele frequency below this are dropped.
    max_missing : float
        SNPs with a larger share of missing calls are dropped.
    qc : dict
        Counts of dropped SNPs by reason (``all_missing``, ``monomorphic``, ``missingness``,
        ``maf``), incremented in place; a SNP is counted under its first reason only.

    Returns
    -------
    centred : ndarray
        The centred, imputed block of the kept SNPs (column-major) [shape: (n_samples, k)].
    keep : ndarray
        Positions of the kept SNPs in ``block`` [shape: (k,)].
    p : ndarray
        Frequency of the counted allele of the kept SNPs (mean / 2) [shape: (k,)].
    missing : ndarray of bool
        Where the calls of ``centred`` were missing [shape: (n_samples, k)].
    """
    missing = np.isnan(block)
    count = block.shape[0] - missing.sum(axis=0)
    np.copyto(block, 0.0, where=missing)
    mean = block.sum(axis=0) / np.maximum(count, 1)
    np.copyto(block, mean, where=missing)  # mean imputation
    block -= mean
    sum_sq = np.einsum("ij,ij->j", block, block)
    p = mean / 2
    reasons = {
        "all_missing": count == 0,
        "monomorphic": (count > 0) & (sum_sq <= 1e-12 * block.shape[0]),
        "missingness": (count > 0) & (1 - count / block.shape[0] > max_missing),
        "maf": (count > 0) & (np.minimum(p, 1 - p) < maf),
    }
    drop = np.zeros(block.shape[1], bool)
    for reason, mask in reasons.items():
        qc[reason] += int((mask & ~drop).sum())
        drop |= mask
    keep = np.flatnonzero(~drop)
    if drop.any():
        block = np.asfortranarray(block[:, keep])
        missing = missing[:, keep]
        p = p[keep]
    return block, keep, p, missing


def _add_block(
    acc: _Sums,
    z: np.ndarray,
    p: np.ndarray,
    missing: np.ndarray,
    method: str,
    alpha: float,
    weights: np.ndarray | None,
) -> None:
    """Scale a centred block in place for the method and add Σ w z z' to the accumulator."""
    n = z.shape[0]
    if method == "standardized":
        var = 2 * p * (1 - p)
        # GCTA's diagonal over observed calls; with c = x − 2p the term is c² + (2p − 1)c − var
        diag = np.einsum("ij,ij,j->i", z, z, 1 / var) + z @ ((2 * p - 1) / var)
        rows = np.nonzero(missing)[0]
        observed = z.shape[1] - np.bincount(rows, minlength=n)
        acc.diag = (0 if acc.diag is None else acc.diag) + diag - observed
        acc.diag_count = (0 if acc.diag_count is None else acc.diag_count) + observed
        z /= np.sqrt(var)
    elif method == "standardized_empirical":
        z /= np.sqrt(np.einsum("ij,ij->j", z, z) / n)
    elif method == "ldak":
        z *= (2 * p * (1 - p)) ** (alpha / 2)
    w = np.ones(z.shape[1]) if weights is None else weights
    if weights is not None:
        z *= np.sqrt(weights)
    # in place, upper triangle only: C ← C + Z Z' (BLAS syrk; no N×N temporary)
    acc.cross = blas.dsyrk(1.0, z, beta=1.0, c=acc.cross, overwrite_c=1)
    acc.weight += float(w.sum())
    acc.count += z.shape[1]


def _accumulate(
    genotypes: Genotypes,
    method: str,
    *,
    alpha: float,
    weights: np.ndarray | None,
    maf: float,
    max_missing: float,
    snp_idx: np.ndarray,
    sample_idx: np.ndarray,
    chunk_size: int,
    by_chromosome: bool,
    autosomes_only: bool = True,
) -> tuple[dict[str, _Sums], dict[str, int]]:
    n = sample_idx.size
    chrom = normalize_chromosomes(genotypes.snps["chrom"])
    snps_in = int(snp_idx.size)
    if autosomes_only:
        inside = in_kinship(chrom[snp_idx])
        left_out = int((~inside).sum())
        snp_idx = snp_idx[inside]
        if snps_in and not snp_idx.size:
            raise InputError(
                f"all {snps_in} SNPs are on X, Y, XY, MT or contigs, which kinships leave out by "
                "default (as GCTA); pass autosomes_only=False to use them."
            )
    keys = list(dict.fromkeys(chrom[snp_idx])) if by_chromosome else ["all"]
    _check_memory(n, len(keys) + (2 if by_chromosome else 0), chunk_size)
    sums = {k: _Sums(cross=np.zeros((n, n), order="F")) for k in keys}
    qc = {
        "snps_in": snps_in,
        **({"non_autosomal": left_out} if autosomes_only and left_out else {}),
        "all_missing": 0,
        "monomorphic": 0,
        "missingness": 0,
        "maf": 0,
    }
    for block_idx, block in genotypes.chunks(chunk_size, snp_idx, sample_idx):
        block = np.asfortranarray(block)
        if method == "ibs":
            invalid = ~np.isnan(block) & ~np.isin(block, (0.0, 1.0, 2.0))
            if invalid.any():
                raise InputError("IBS kinship needs hard calls 0/1/2; these genotypes are dosages.")
            raw = block.copy()
        block, keep, p, missing = prepare_block(block, maf, max_missing, qc)
        if keep.size == 0:
            continue
        labels = chrom[block_idx[keep]] if by_chromosome else np.full(keep.size, "all")
        for key, cols in _runs(labels):
            if method == "ibs":
                _ibs_update(sums[key], raw[:, keep[cols]])
                continue
            w = None if weights is None else weights[block_idx[keep[cols]]]
            _add_block(sums[key], block[:, cols], p[cols], missing[:, cols], method, alpha, w)
        del block, missing  # free this chunk before the next one is read
    qc["used"] = qc["snps_in"] - sum(
        qc.get(r, 0) for r in ("non_autosomal", "all_missing", "monomorphic", "missingness", "maf")
    )
    return sums, qc


def _ibs_update(acc: _Sums, block: np.ndarray) -> None:
    """Add IBS similarity counts: 1 per identical genotype, ½ per genotype differing by one."""
    A = [np.where(np.isnan(block), 0.0, block == g).astype(float) for g in (0.0, 1.0, 2.0)]
    observed = ~np.isnan(block)
    same = A[0] @ A[0].T + A[1] @ A[1].T + A[2] @ A[2].T
    near = A[1] @ (A[0] + A[2]).T
    acc.cross += same + 0.5 * (near + near.T)
    obs = observed.astype(float)
    acc.pairs = (0 if acc.pairs is None else acc.pairs) + obs @ obs.T
    acc.weight += block.shape[1]
    acc.count += block.shape[1]


def _symmetric(upper: np.ndarray) -> np.ndarray:
    """Fill the lower triangle from the upper one (syrk writes the upper only), in place."""
    n, step = upper.shape[0], 512
    for i0 in range(0, n, step):  # row blocks: temporaries of step × n, not n × n
        i1 = min(i0 + step, n)
        upper[i0:i1, :i0] = upper[:i0, i0:i1].T
        diagonal = upper[i0:i1, i0:i1]
        diagonal[...] = np.triu(diagonal) + np.triu(diagonal, 1).T
    return upper


def _finish(total: _Sums, method: str) -> np.ndarray:
    if method == "ibs":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total.pairs > 0, total.cross / total.pairs, 0.0)
    K = _symmetric(total.cross)
    K /= total.weight
    if method == "standardized" and total.diag is not None:
        np.fill_diagonal(K, 1 + total.diag / np.maximum(total.diag_count, 1))
    return K


def _subtract(total: _Sums, part: _Sums) -> _Sums:
    """The sums of every chromosome but one: total − part (new arrays)."""

    def minus(name: str) -> Any:
        a, b = getattr(total, name), getattr(part, name)
        return None if a is None else a - (0 if b is None else b)

    return _Sums(
        cross=total.cross - part.cross,
        weight=total.weight - part.weight,
        count=total.count - part.count,
        diag=minus("diag"),
        diag_count=minus("diag_count"),
        pairs=minus("pairs"),
    )


def _combine(parts: list[_Sums]) -> _Sums:
    def add(name: str) -> Any:
        values = [getattr(p, name) for p in parts if getattr(p, name) is not None]
        return sum(values) if values else None

    return _Sums(
        cross=sum(p.cross for p in parts),
        weight=sum(p.weight for p in parts),
        count=sum(p.count for p in parts),
        diag=add("diag"),
        diag_count=add("diag_count"),
        pairs=add("pairs"),
    )


def _validate(
    method: str,
    genotypes: Any,
    weights: Any,
    maf: float,
    max_missing: float,
    snps: Index,
    samples: Index,
) -> tuple[Genotypes, np.ndarray | None, np.ndarray, np.ndarray]:
    if method not in METHODS:
        raise InputError(f"unknown kinship method {method!r}; choose one of {METHODS}.")
    genotypes = as_genotypes(genotypes)
    if not 0 <= maf < 0.5:
        raise InputError(f"maf must lie in [0, 0.5), got {maf}.")
    if not 0 <= max_missing <= 1:
        raise InputError(f"max_missing must lie in [0, 1], got {max_missing}.")
    snp_idx = as_index(snps, genotypes.n_snps, "SNPs")
    sample_idx = as_index(samples, genotypes.n_samples, "samples")
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if method != "ldak":
            raise InputError("per-SNP weights apply to method='ldak' only.")
        if (
            weights.shape != (genotypes.n_snps,)
            or (weights < 0).any()
            or not np.isfinite(weights).all()
        ):
            raise InputError(
                f"weights must be {genotypes.n_snps} finite non-negative numbers (one per SNP)."
            )
    return genotypes, weights, snp_idx, sample_idx


def kinship(
    genotypes: Any,
    method: str = "standardized",
    *,
    alpha: float = -1.0,
    weights: Any = None,
    maf: float = 0.0,
    max_missing: float = 1.0,
    snps: Index = None,
    samples: Index = None,
    chunk_size: int = DEFAULT_CHUNK,
    autosomes_only: bool = True,
) -> Kinship:
    r"""Build a kinship matrix from genotypes, streaming SNP chunks.

    Parameters
    ----------
    genotypes : Genotypes or ndarray
        From :func:`bayeslmm.read_plink` / :func:`bayeslmm.read_bimbam`, or allele counts
        [shape: (n_samples, n_snps)], NaN = missing.
    method : str
        ``"standardized"`` (GCTA's GRM; = ``plink2 --make-rel``), ``"standardized_empirical"``
        (= GEMMA ``-gk 2``), ``"centered"`` (= GEMMA ``-gk 1`` = ``plink2 --make-rel cov``),
        ``"ldak"`` (scaling power ``alpha``, optional per-SNP ``weights``), ``"ibs"``.
    alpha : float
        LDAK power: z_j = (x_j − 2p_j)·[2p_j(1 − p_j)]^{α/2} (α = −1 is GCTA's scaling).
    weights : array, optional
        Per-SNP weights for ``"ldak"`` [shape: (n_snps,)].
    maf : float
        Drop SNPs with minor allele frequency below this.
    max_missing : float
        Drop SNPs with a larger share of missing calls.
    snps, samples
        Restrict to these SNP / sample positions.
    chunk_size : int
        SNPs read at a time.
    autosomes_only : bool
        Use autosomes only, as GCTA does (X, Y, XY, MT and contigs left out, counted in
        ``qc["non_autosomal"]``; SNPs of unknown chromosome 0 kept); False uses every SNP.
        Chromosome codes are normalized first (``chr1`` = 1, X = 23).

    Returns
    -------
    Kinship

    Notes
    -----
    With p_j the frequency of the counted allele and missing calls set to 2p_j,

    .. math::

        K = \frac{1}{\sum_j w_j} \sum_j w_j z_j z_j^\top, \qquad
        z_{ij} = \begin{cases} x_{ij} - 2p_j & \text{centered} \\
        (x_{ij} - 2p_j)/\mathrm{sd}(x_j) & \text{standardized\_empirical} \\
        (x_{ij} - 2p_j)/\sqrt{2p_j(1-p_j)} & \text{standardized} \\
        (x_{ij} - 2p_j)\,[2p_j(1-p_j)]^{\alpha/2} & \text{ldak}\end{cases}

    GCTA's diagonal is :math:`1 + \frac{1}{M_i}\sum_j \frac{x_{ij}^2 - (1+2p_j)x_{ij} + 2p_j^2}
    {2p_j(1-p_j)}` over the SNPs observed in sample i. IBS is the mean allele sharing,
    1 for identical genotypes and ½ for genotypes one allele apart, over SNPs observed in both.
    Cost O(N²·M) in BLAS products; memory N² doubles plus one chunk.
    """
    genotypes, weights, snp_idx, sample_idx = _validate(
        method, genotypes, weights, maf, max_missing, snps, samples
    )
    sums, qc = _accumulate(
        genotypes,
        method,
        alpha=alpha,
        weights=weights,
        maf=maf,
        max_missing=max_missing,
        snp_idx=snp_idx,
        sample_idx=sample_idx,
        chunk_size=chunk_size,
        by_chromosome=False,
        autosomes_only=autosomes_only,
    )
    if qc["used"] == 0:
        raise InputError(f"no SNP passed quality control ({qc}); relax maf / max_missing.")
    log.info("kinship %s: %s", method, qc)
    return Kinship(
        matrix=_finish(sums["all"], method),
        samples=genotypes.samples[sample_idx],
        n_snps=qc["used"],
        method=method,
        qc=qc,
        fid=genotypes.fam["fid"].to_numpy(dtype=str)[sample_idx],
    )


def loco_kinships(
    genotypes: Any,
    method: str = "centered",
    *,
    alpha: float = -1.0,
    weights: Any = None,
    maf: float = 0.0,
    max_missing: float = 1.0,
    snps: Index = None,
    samples: Index = None,
    chunk_size: int = DEFAULT_CHUNK,
    autosomes_only: bool = True,
) -> Mapping[str, Kinship]:
    """Leave-one-chromosome-out kinships, one per chromosome, from one pass over the genotypes.

    Parameters
    ----------
    genotypes, method, alpha, weights, maf, max_missing, snps, samples, chunk_size
        As in :func:`kinship`.
    autosomes_only : bool
        As in :func:`kinship`: the kinships are built from autosomes (and unknown chromosome 0).

    Returns
    -------
    dict
        Normalized chromosome code (str, ``chr1`` = ``"1"``, X = ``"23"``) → Kinship built
        from every other chromosome. Chromosomes left out of the kinships (X, Y, XY, MT,
        contigs) map to the kinship of all the autosomes, one shared object.

    Notes
    -----
    The pass keeps the per-chromosome sums S_c = Σ_{j∈c} w_j z_j z_j' (memory: one N×N matrix
    per chromosome, checked before allocating); then K_{−c} = (Σ_k S_k − S_c) / (Σ_k W_k − W_c),
    without re-reading the genotypes. SNPs of unknown chromosome 0 form one group of their own.
    """
    genotypes, weights, snp_idx, sample_idx = _validate(
        method, genotypes, weights, maf, max_missing, snps, samples
    )
    sums, qc = _accumulate(
        genotypes,
        method,
        alpha=alpha,
        weights=weights,
        maf=maf,
        max_missing=max_missing,
        snp_idx=snp_idx,
        sample_idx=sample_idx,
        chunk_size=chunk_size,
        by_chromosome=True,
        autosomes_only=autosomes_only,
    )
    if len(sums) < 2:
        raise InputError(
            "leave-one-chromosome-out needs SNPs on at least two chromosomes; these are all on "
            f"{list(sums)}."
        )
    fid = genotypes.fam["fid"].to_numpy(dtype=str)[sample_idx]
    total = _combine(list(sums.values()))
    out = {}
    for key, part in sums.items():
        rest = _subtract(total, part)
        out[key] = Kinship(
            matrix=_finish(rest, method),
            samples=genotypes.samples[sample_idx],
            n_snps=rest.count,
            method=f"{method} (without chromosome {key})",
            qc=qc,
            fid=fid,
        )
    others = [c for c in dict.fromkeys(normalize_chromosomes(genotypes.snps["chrom"])[snp_idx])]
    others = [c for c in others if c not in out]
    if others:
        everything = Kinship(
            matrix=_finish(total, method),
            samples=genotypes.samples[sample_idx],
            n_snps=total.count,
            method=f"{method} (autosomes)",
            qc=qc,
            fid=fid,
        )
        out.update(dict.fromkeys(others, everything))
    return out


def kinship_from_pcs(pcs: Any, samples: Any = None) -> Kinship:
    """A kinship matrix from principal components: K = P P'/k with P the standardized PCs.

    Parameters
    ----------
    pcs : ndarray or DataFrame
        PC scores [shape: (n_samples, k)]; a DataFrame's index gives the sample IDs.
    samples : sequence of str, optional
        Sample IDs when ``pcs`` is an array.

    Returns
    -------
    Kinship
        Of rank k (the models handle the null space exactly).
    """
    if isinstance(pcs, pd.DataFrame):
        samples = pcs.index.astype(str).to_numpy()
        pcs = pcs.to_numpy(dtype=float)
    P = np.asarray(pcs, dtype=float)
    if P.ndim != 2 or not np.isfinite(P).all():
        raise InputError("pcs must be a finite 2-D matrix (samples × components).")
    sd = P.std(axis=0)
    if (sd == 0).any():
        raise InputError("a principal component is constant; drop it.")
    P = (P - P.mean(axis=0)) / sd
    n = P.shape[0]
    ids = np.asarray(samples if samples is not None else positional_ids(n), str)
    return Kinship(matrix=P @ P.T / P.shape[1], samples=ids, n_snps=0, method="pcs")
