"""Simulated cohorts with population structure and a phenotype of known heritability.

:func:`simulate` holds a cohort in memory (genotypes, W and K included), or, given ``out=``,
streams it to PLINK 1 files SNP block by SNP block without forming K or holding the genotypes
(N = 100,000 and more; :class:`Cohort`). :func:`write_cohort` writes an in-memory cohort to the
same files, :func:`encode_bed` packs allele counts into PLINK's .bed bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from bayeslmm.errors import InputError
from bayeslmm.io.outputs import atomic_path, check_outputs
from bayeslmm.io.plink import BED_MAGIC

#: What a cohort written to files appends to its prefix, one file each.
COHORT_SUFFIXES = (".bed", ".bim", ".fam", ".pheno.tsv", ".covar.tsv", ".truth.json")

#: SNPs drawn from one random stream of a streamed cohort (and written at once): the files
#: depend on the seed and the arguments only, memory is O(N · STREAM_SNPS).
STREAM_SNPS = 64

#: PLINK 1 .bed codes of the allele-1 count (0, 1, 2; any other value: missing), 2 bits each:
#: 0b00 = two copies of allele 1, 0b10 = heterozygous, 0b11 = no copy, 0b01 = missing.
_BED_CODES = np.full(256, 0b01, dtype=np.uint8)
_BED_CODES[[0, 1, 2]] = [0b11, 0b10, 0b00]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A simulated cohort.

    Attributes
    ----------
    y : ndarray
        Phenotype [shape: (n_samples,)].
    X : ndarray
        Covariates without intercept [shape: (n_samples, n_covariates)].
    G : ndarray
        Allele counts 0/1/2 [shape: (n_samples, n_snps)].
    W : ndarray
        Standardized genotypes (each SNP mean 0, variance 1) [shape: (n_samples, n_snps)].
    K : ndarray
        Kinship W W'/M (mean diagonal 1) [shape: (n_samples, n_samples)].
    samples : ndarray of str
        Sample IDs.
    snps : pandas.DataFrame
        SNP table: chrom, snp, cm, pos, a1, a2.
    populations : ndarray of int
        Population of each sample.
    truth : dict
        h2, beta (with intercept first), causal SNP indices, their effects (per standardized
        genotype), u (genetic values), sigma_g2, sigma_e2, fst, seed.
    """

    y: np.ndarray
    X: np.ndarray
    G: np.ndarray
    W: np.ndarray
    K: np.ndarray
    samples: np.ndarray
    snps: pd.DataFrame
    populations: np.ndarray
    truth: dict = field(default_factory=dict)

    def phenotype(self) -> pd.Series:
        """The phenotype as a Series indexed by sample ID."""
        return pd.Series(self.y, index=self.samples, name="y")

    def covariates(self) -> pd.DataFrame:
        """The covariates as a DataFrame indexed by sample ID."""
        cols = [f"cov{j + 1}" for j in range(self.X.shape[1])]
        return pd.DataFrame(self.X, index=self.samples, columns=cols)


@dataclass(frozen=True, eq=False)
class Cohort:
    """A simulated cohort streamed to PLINK 1 files (``bl.simulate(..., out=prefix)``).

    Attributes
    ----------
    prefix : str
        The output prefix.
    files : dict of str to Path
        The files written, by suffix (:data:`COHORT_SUFFIXES`).
    y : ndarray
        Phenotype [shape: (n_samples,)].
    X : ndarray
        Covariates without intercept [shape: (n_samples, n_covariates)].
    samples : ndarray of str
        Sample IDs (FID = IID).
    snps : pandas.DataFrame
        SNP table: chrom, snp, cm, pos, a1, a2 (the .bim; a1 is the counted allele).
    populations : ndarray of int
        Population of each sample.
    truth : dict
        As :attr:`Dataset.truth` (u included; the .truth.json has all but u).
    """

    prefix: str
    files: dict[str, Path]
    y: np.ndarray
    X: np.ndarray
    samples: np.ndarray
    snps: pd.DataFrame
    populations: np.ndarray
    truth: dict = field(default_factory=dict)

    def phenotype(self) -> pd.Series:
        """The phenotype as a Series indexed by sample ID."""
        return pd.Series(self.y, index=self.samples, name="y")

    def covariates(self) -> pd.DataFrame:
        """The covariates as a DataFrame indexed by sample ID."""
        cols = [f"cov{j + 1}" for j in range(self.X.shape[1])]
        return pd.DataFrame(self.X, index=self.samples, columns=cols)

    def genotypes(self) -> Any:
        """The genotypes, opened lazily with :func:`bayeslmm.read_plink`."""
        from bayeslmm.io.plink import read_plink

        return read_plink(self.prefix)


@overload
def simulate(
    n_samples: int,
    n_snps: int,
    h2: float,
    *,
    n_covariates: int = ...,
    n_populations: int = ...,
    fst: float = ...,
    n_causal: int | None = ...,
    n_chromosomes: int = ...,
    population_effect: float = ...,
    maf_min: float = ...,
    seed: int | None = ...,
    out: None = ...,
    overwrite: bool = ...,
) -> Dataset: ...


@overload
def simulate(
    n_samples: int,
    n_snps: int,
    h2: float,
    *,
    n_covariates: int = ...,
    n_populations: int = ...,
    fst: float = ...,
    n_causal: int | None = ...,
    n_chromosomes: int = ...,
    population_effect: float = ...,
    maf_min: float = ...,
    seed: int | None = ...,
    out: str | Path,
    overwrite: bool = ...,
) -> Cohort: ...


def simulate(
    n_samples: int,
    n_snps: int,
    h2: float,
    *,
    n_covariates: int = 0,
    n_populations: int = 1,
    fst: float = 0.05,
    n_causal: int | None = None,
    n_chromosomes: int = 1,
    population_effect: float = 0.0,
    maf_min: float = 0.05,
    seed: int | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> Dataset | Cohort:
    r"""Simulate genotypes under Balding–Nichols structure and a phenotype with heritability h².

    Parameters
    ----------
    n_samples, n_snps : int
        Cohort size N and number of SNPs M.
    h2 : float
        Heritability in [0, 1]: share of phenotypic variance from the causal SNPs.
    n_covariates : int
        Standard-normal covariates with fixed effects N(0, 0.5²) (plus an intercept of 1).
    n_populations : int
        Populations of equal size, drawn from a common ancestral frequency with divergence fst.
    fst : float
        Wright's F_ST of each population from the ancestral one (0 < fst < 1).
    n_causal : int, optional
        Causal SNPs (default: all, the infinitesimal model the LMM assumes).
    n_chromosomes : int
        SNPs are split evenly over this many chromosomes (for LOCO).
    population_effect : float
        SD of a per-population shift of the phenotype mean (confounding by structure).
    maf_min : float
        Ancestral allele frequencies are drawn uniformly on [maf_min, 1 − maf_min].
    seed : int, optional
        Seed; the same seed gives the same cohort.
    out : str or Path, optional
        Stream the cohort to PLINK 1 files instead of holding it: ``out`` is a prefix, the
        files are ``out`` + each of :data:`COHORT_SUFFIXES` (.bed/.bim/.fam, .pheno.tsv,
        .covar.tsv, .truth.json), written atomically. Memory O(N·64 + N + M) whatever N and M:
        no K, no N×M matrix (N = 100,000 × 50,000 SNPs in well under 1 GB).
    overwrite : bool
        With ``out``: replace existing files (default: refuse before any work).

    Returns
    -------
    Dataset or Cohort
        Without ``out``: the cohort in memory (:class:`Dataset`: G, W, K, y, X, truth). With
        ``out``: a :class:`Cohort` (y, X, samples, SNP table, truth and the paths written; the
        genotypes are read back with :meth:`Cohort.genotypes`).

    Raises
    ------
    InputError
        An argument out of range, or (with ``out``) an output that exists without
        ``overwrite`` or cannot be written.

    Notes
    -----
    Balding–Nichols: ancestral :math:`p_j \sim U(m, 1-m)`; population k has
    :math:`p_{kj} \sim \mathrm{Beta}(p_j(1-F)/F, (1-p_j)(1-F)/F)`; genotypes
    :math:`g_{ij} \sim \mathrm{Bin}(2, p_{k(i)j})`. With W the standardized genotypes and b_j ~
    N(0, h²/C) on C causal SNPs, u = W b has variance ≈ h², ε ~ N(0, 1 − h²).

    The streamed cohort (``out=``) follows the same model, the same standardization (each SNP's
    sample mean and SD) and the same SNP table, sample IDs and populations, but draws from other
    random streams: one per block of :data:`STREAM_SNPS` SNPs (its frequencies, then its
    genotypes as :math:`g = [r \ge (1-p)^2] + [r \ge 1-p^2]` from one uniform r per call),
    one for the causal SNPs and their effects, one for covariates and noise. So the same seed
    gives the same files, but not the genotypes of the in-memory cohort of that seed (those come
    from one N×M draw in sample-major order, which a SNP-major file cannot be written from
    without holding it): the two agree in distribution. A SNP that comes out monomorphic is
    drawn again, as in memory. With ``seed=None`` a seed is drawn and recorded in
    ``truth["seed"]``, so the files can be made again.
    """
    _check_arguments(n_samples, n_snps, h2, n_populations, fst, n_causal)
    n_causal = n_snps if n_causal is None else int(n_causal)
    if out is not None:
        return _stream(
            out,
            overwrite,
            n_samples,
            n_snps,
            h2,
            n_covariates=n_covariates,
            n_populations=n_populations,
            fst=fst,
            n_causal=n_causal,
            n_chromosomes=n_chromosomes,
            population_effect=population_effect,
            maf_min=maf_min,
            seed=seed,
        )
    rng = np.random.default_rng(seed)
    populations = np.sort(np.arange(n_samples) % n_populations)
    ancestral = rng.uniform(maf_min, 1 - maf_min, size=n_snps)
    if n_populations > 1:
        a = ancestral * (1 - fst) / fst
        b = (1 - ancestral) * (1 - fst) / fst
        freqs = rng.beta(a, b, size=(n_populations, n_snps))
    else:
        freqs = ancestral[None, :]
    G = rng.binomial(2, freqs[populations]).astype(float)
    # Resample SNPs that came out monomorphic so that every column can be standardized.
    for _ in range(100):
        mono = np.flatnonzero(G.std(axis=0) == 0)
        if mono.size == 0:
            break
        G[:, mono] = rng.binomial(2, freqs[populations][:, mono]).astype(float)
    sd = G.std(axis=0)
    sd[sd == 0] = 1.0
    W = (G - G.mean(axis=0)) / sd
    K = W @ W.T / n_snps
    causal = np.sort(rng.choice(n_snps, size=n_causal, replace=False))
    effects = rng.normal(0.0, np.sqrt(h2 / max(n_causal, 1)), size=n_causal)
    u = W[:, causal] @ effects
    X = rng.standard_normal((n_samples, n_covariates))
    beta = np.concatenate([[1.0], rng.normal(0.0, 0.5, size=n_covariates)])
    shift = rng.normal(0.0, population_effect, size=n_populations)[populations]
    y = beta[0] + X @ beta[1:] + u + shift + rng.normal(0.0, np.sqrt(1 - h2), size=n_samples)
    snps = snp_table(n_snps, n_chromosomes)
    samples = sample_names(n_samples)
    truth = {
        "h2": h2,
        "beta": beta,
        "causal": causal,
        "effects": effects,
        "u": u,
        "sigma_g2": h2,
        "sigma_e2": 1 - h2,
        "fst": fst,
        "seed": seed,
        "population_shift": shift,
    }
    return Dataset(
        y=y, X=X, G=G, W=W, K=K, samples=samples, snps=snps, populations=populations, truth=truth
    )


def _check_arguments(
    n_samples: int,
    n_snps: int,
    h2: float,
    n_populations: int,
    fst: float,
    n_causal: int | None,
) -> None:
    if not 0 <= h2 <= 1:
        raise InputError(f"h2 must lie in [0, 1], got {h2}.")
    if n_samples < 3 or n_snps < 1:
        raise InputError("simulate needs n_samples >= 3 and n_snps >= 1.")
    if n_populations < 1 or n_populations > n_samples:
        raise InputError("n_populations must be between 1 and n_samples.")
    if n_populations > 1 and not 0 < fst < 1:
        raise InputError(f"fst must lie in (0, 1), got {fst}.")
    n_causal = n_snps if n_causal is None else int(n_causal)
    if not 0 <= n_causal <= n_snps:
        raise InputError(f"n_causal must be between 0 and n_snps ({n_snps}), got {n_causal}.")


def snp_table(n_snps: int, n_chromosomes: int) -> pd.DataFrame:
    """The SNP table of a simulated cohort: rs1.., split evenly over chromosomes 1..C.

    Parameters
    ----------
    n_snps : int
        M.
    n_chromosomes : int
        C: SNP j is on chromosome ``1 + floor(j·C/M)`` (the first M mod C chromosomes get one
        SNP more), at 1000, 2000, ... bp along it.

    Returns
    -------
    pandas.DataFrame
        chrom (str), snp, cm (0.0), pos, a1 ("A", counted), a2 ("G") [shape: (n_snps, 6)].
    """
    if n_chromosomes < 1:
        raise InputError(f"n_chromosomes must be at least 1, got {n_chromosomes}.")
    chrom = np.sort(np.arange(n_snps) % n_chromosomes) + 1
    pos = np.concatenate([np.arange(1, (chrom == c).sum() + 1) * 1000 for c in np.unique(chrom)])
    return pd.DataFrame(
        {
            "chrom": chrom.astype(str),
            "snp": [f"rs{j + 1}" for j in range(n_snps)],
            "cm": 0.0,
            "pos": pos,
            "a1": "A",
            "a2": "G",
        }
    )


def sample_names(n_samples: int) -> np.ndarray:
    """Sample IDs of a simulated cohort: ``id1`` .. ``idN`` [shape: (n_samples,)]."""
    return np.array([f"id{i + 1}" for i in range(n_samples)])


def encode_bed(counts: np.ndarray) -> bytes:
    """Pack allele counts into the bytes of SNP-major PLINK 1 .bed records.

    Parameters
    ----------
    counts : ndarray of int
        Copies of allele 1 (the .bim's a1), 0, 1 or 2; any other value (e.g. -1) is a missing
        call [shape: (n_snps, n_samples)], one row per SNP.

    Returns
    -------
    bytes
        ``n_snps`` records of ``ceil(n_samples / 4)`` bytes each, to append after the magic
        bytes :data:`bayeslmm.io.plink.BED_MAGIC`: 2 bits per sample, the first sample in the
        lowest bits, 0b00 = two copies of a1, 0b10 = one, 0b11 = none, 0b01 = missing; the
        bits after the last sample are 0.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise InputError(f"counts must be 2-D (SNPs × samples), got shape {counts.shape}.")
    n_snps, n = counts.shape
    if counts.dtype in (np.int8, np.uint8):  # -1 and 3..255 read as 255.., all missing
        small = np.ascontiguousarray(counts).view(np.uint8)
    else:
        small = np.where((counts >= 0) & (counts <= 2), counts, 3).astype(np.uint8)
    codes = _BED_CODES[small]
    width = (n + 3) // 4
    if n % 4:
        codes = np.concatenate([codes, np.zeros((n_snps, 4 * width - n), np.uint8)], axis=1)
    codes = codes.reshape(n_snps, width, 4)
    packed = codes[:, :, 0] | (codes[:, :, 1] << 2)
    packed |= codes[:, :, 2] << 4
    packed |= codes[:, :, 3] << 6
    return packed.tobytes()


def cohort_paths(prefix: str | Path) -> dict[str, Path]:
    """The files of a cohort written to ``prefix``, by suffix (:data:`COHORT_SUFFIXES`)."""
    return {sfx: Path(f"{prefix}{sfx}") for sfx in COHORT_SUFFIXES}


def _check_paths(prefix: str | Path, overwrite: bool) -> dict[str, Path]:
    if not str(prefix).strip() or str(prefix).endswith(("/", ".")):
        raise InputError(
            f"out={str(prefix)!r} is not a usable prefix; give a file prefix such as "
            "results/cohort (the suffixes are appended)."
        )
    paths = cohort_paths(prefix)
    check_outputs(paths.values(), overwrite=overwrite, create_folders=True)
    return paths


def write_cohort(data: Dataset, prefix: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write an in-memory cohort as the files a streamed one has (PLINK 1 and tables).

    Parameters
    ----------
    data : Dataset
        From :func:`simulate`.
    prefix : str or Path
        Output prefix; the files are ``prefix`` + each of :data:`COHORT_SUFFIXES`.
    overwrite : bool
        Replace existing files (default: refuse before writing anything).

    Returns
    -------
    dict of str to Path
        The files written, by suffix.
    """
    paths = _check_paths(prefix, overwrite)
    counts = np.asarray(data.G)
    with atomic_path(paths[".bed"]) as tmp, open(tmp, "wb") as handle:
        handle.write(BED_MAGIC)
        for start in range(0, counts.shape[1], STREAM_SNPS):
            block = counts[:, start : start + STREAM_SNPS].T
            handle.write(encode_bed(np.where(np.isnan(block), -1, block).astype(np.int8)))
    _write_tables(paths, data.samples, data.snps, data.y, data.X, data.truth, "in_memory")
    return paths


def _write_tables(
    paths: dict[str, Path],
    samples: np.ndarray,
    snps: pd.DataFrame,
    y: np.ndarray,
    X: np.ndarray,
    truth: dict,
    generator: str,
) -> None:
    """Write the .bim, .fam, .pheno.tsv, .covar.tsv and .truth.json of a cohort, atomically.

    The .bim and .fam have the layout of bed-reader's ``to_bed`` (tab- and space-separated).
    """
    with atomic_path(paths[".bim"]) as tmp:
        snps[["chrom", "snp", "cm", "pos", "a1", "a2"]].to_csv(
            tmp, sep="\t", header=False, index=False
        )
    with atomic_path(paths[".fam"]) as tmp:
        text = np.char.add(np.char.add(samples, " "), samples)
        text = np.char.add(np.char.add(text, " 0 0 0 "), np.asarray(y, dtype=float).astype(str))
        tmp.write_text("\n".join(text.tolist()) + "\n")
    pheno = pd.DataFrame({"FID": samples, "IID": samples, "y": y})
    with atomic_path(paths[".pheno.tsv"]) as tmp:
        pheno.to_csv(tmp, sep="\t", index=False)
    covar = pd.DataFrame(X, columns=[f"cov{j + 1}" for j in range(X.shape[1])])
    covar.insert(0, "IID", samples)
    covar.insert(0, "FID", samples)
    with atomic_path(paths[".covar.tsv"]) as tmp:
        covar.to_csv(tmp, sep="\t", index=False)
    record = {
        k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
        for k, v in truth.items()
        if k != "u"
    }
    record["generator"] = generator
    with atomic_path(paths[".truth.json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def _stream_rng(entropy: int, *key: int) -> np.random.Generator:
    """The random stream ``key`` of a streamed cohort (independent of every other key)."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=key))


#: Keys of the streams of a streamed cohort: causal SNPs and effects; SNP block b is
#: (_GENOTYPES, b); covariates, population shifts and noise.
_CAUSAL, _GENOTYPES, _PHENOTYPE = 0, 1, 2


class _BlockDrawer:
    """Draws the allele counts of SNP blocks into buffers reused from block to block.

    ``bounds`` are the first sample of each population and N (populations are contiguous).
    Memory: one float32 and two one-byte arrays of :data:`STREAM_SNPS` × N.
    """

    def __init__(self, bounds: np.ndarray, fst: float, maf_min: float) -> None:
        self.bounds, self.fst, self.maf_min = bounds, fst, maf_min
        n = int(bounds[-1])
        self.uniform = np.empty((STREAM_SNPS, n), dtype=np.float32)
        self.counts = np.empty((STREAM_SNPS, n), dtype=np.int8)
        self.above = np.empty((STREAM_SNPS, n), dtype=bool)

    def draw(
        self, rng: np.random.Generator, n_snps: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts of one block, each SNP polymorphic where 100 more draws allow it.

        Returns
        -------
        counts : ndarray of int8
            [shape: (n_snps, n_samples)], a view of the buffer (valid until the next draw).
        sums, squares : ndarray of int64
            Per SNP Σ g and Σ g² [shape: (n_snps,)].
        """
        bounds, fst, n = self.bounds, self.fst, int(self.bounds[-1])
        ancestral = rng.uniform(self.maf_min, 1 - self.maf_min, size=n_snps)
        if bounds.size > 2:
            a = ancestral * (1 - fst) / fst
            b = (1 - ancestral) * (1 - fst) / fst
            freqs = rng.beta(a, b, size=(bounds.size - 1, n_snps))
        else:
            freqs = ancestral[None, :]
        # g = [r >= (1-p)²] + [r >= 1-p²] with r ~ U(0, 1): P(0) = (1-p)², P(2) = p²
        low = ((1 - freqs) ** 2).astype(np.float32)[:, :, None]
        high = (1 - freqs**2).astype(np.float32)[:, :, None]
        r, counts, above = (x[:n_snps] for x in (self.uniform, self.counts, self.above))
        rng.random(dtype=np.float32, out=r)
        for k in range(bounds.size - 1):
            cols = slice(bounds[k], bounds[k + 1])
            np.greater_equal(r[:, cols], low[k], out=counts[:, cols].view(bool))
            np.greater_equal(r[:, cols], high[k], out=above[:, cols])
        counts += above.view(np.int8)
        sums = counts.sum(axis=1, dtype=np.int64)
        squares = sums + 2 * np.count_nonzero(counts == 2, axis=1)
        mono = np.flatnonzero(n * squares == sums * sums)  # zero variance
        for _ in range(100):  # as in memory: draw a monomorphic SNP again, up to 100 times
            if mono.size == 0:
                break
            redraw = rng.random((mono.size, n), dtype=np.float32)
            g = np.zeros((mono.size, n), dtype=np.int8)
            for k in range(bounds.size - 1):
                cols = slice(bounds[k], bounds[k + 1])
                g[:, cols] += redraw[:, cols] >= low[k, mono]
                g[:, cols] += redraw[:, cols] >= high[k, mono]
            counts[mono] = g
            sums[mono] = g.sum(axis=1, dtype=np.int64)
            squares[mono] = sums[mono] + 2 * np.count_nonzero(g == 2, axis=1)
            mono = mono[n * squares[mono] == sums[mono] * sums[mono]]
        return counts, sums, squares


#: Samples per slice when a block's genetic value is accumulated (a float64 copy of the slice).
_SLICE = 2048


def _stream(
    out: str | Path,
    overwrite: bool,
    n_samples: int,
    n_snps: int,
    h2: float,
    *,
    n_covariates: int,
    n_populations: int,
    fst: float,
    n_causal: int,
    n_chromosomes: int,
    population_effect: float,
    maf_min: float,
    seed: int | None,
) -> Cohort:
    """``simulate(..., out=prefix)``: the cohort written SNP block by SNP block."""
    snps = snp_table(n_snps, n_chromosomes)
    paths = _check_paths(out, overwrite)
    entropy = int(np.random.SeedSequence(seed).entropy)
    populations = np.sort(np.arange(n_samples) % n_populations)
    bounds = np.searchsorted(populations, np.arange(n_populations + 1))
    rng = _stream_rng(entropy, _CAUSAL)
    causal = np.sort(rng.choice(n_snps, size=n_causal, replace=False))
    effects = rng.normal(0.0, np.sqrt(h2 / max(n_causal, 1)), size=n_causal)
    u = np.zeros(n_samples)
    drawer = _BlockDrawer(bounds, fst, maf_min)
    with atomic_path(paths[".bed"]) as tmp, open(tmp, "wb") as handle:
        handle.write(BED_MAGIC)
        for block, start in enumerate(range(0, n_snps, STREAM_SNPS)):
            width = min(STREAM_SNPS, n_snps - start)
            counts, sums, squares = drawer.draw(_stream_rng(entropy, _GENOTYPES, block), width)
            handle.write(encode_bed(counts))
            lo, hi = np.searchsorted(causal, [start, start + width])
            if hi == lo:
                continue
            # u += W[:, causal] @ effects, W standardized by the sample mean and SD (ddof 0)
            local = causal[lo:hi] - start
            mean = sums[local] / n_samples
            sd = np.sqrt(n_samples * squares[local] - sums[local] ** 2) / n_samples
            sd[sd == 0] = 1.0
            weights = effects[lo:hi] / sd
            u -= weights @ mean
            if local.size == width:  # every SNP of the block is causal (the default)
                local = slice(None)
            for i in range(0, n_samples, _SLICE):
                u[i : i + _SLICE] += weights @ counts[local, i : i + _SLICE].astype(float)
    rng = _stream_rng(entropy, _PHENOTYPE)
    X = rng.standard_normal((n_samples, n_covariates))
    beta = np.concatenate([[1.0], rng.normal(0.0, 0.5, size=n_covariates)])
    shift = rng.normal(0.0, population_effect, size=n_populations)[populations]
    y = beta[0] + X @ beta[1:] + u + shift + rng.normal(0.0, np.sqrt(1 - h2), size=n_samples)
    samples = sample_names(n_samples)
    truth = {
        "h2": h2,
        "beta": beta,
        "causal": causal,
        "effects": effects,
        "u": u,
        "sigma_g2": h2,
        "sigma_e2": 1 - h2,
        "fst": fst,
        "seed": seed if seed is not None else entropy,
        "population_shift": shift,
    }
    _write_tables(paths, samples, snps, y, X, truth, f"streamed ({STREAM_SNPS} SNPs per stream)")
    return Cohort(
        prefix=str(out),
        files=paths,
        y=y,
        X=X,
        samples=samples,
        snps=snps,
        populations=populations,
        truth=truth,
    )
