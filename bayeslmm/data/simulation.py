"""Simulated cohorts with population structure and a phenotype of known heritability."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayeslmm.errors import InputError


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
) -> Dataset:
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

    Returns
    -------
    Dataset

    Notes
    -----
    Balding–Nichols: ancestral :math:`p_j \sim U(m, 1-m)`; population k has
    :math:`p_{kj} \sim \mathrm{Beta}(p_j(1-F)/F, (1-p_j)(1-F)/F)`; genotypes
    :math:`g_{ij} \sim \mathrm{Bin}(2, p_{k(i)j})`. With W the standardized genotypes and b_j ~
    N(0, h²/C) on C causal SNPs, u = W b has variance ≈ h², ε ~ N(0, 1 − h²).
    """
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
    chrom = np.sort(np.arange(n_snps) % n_chromosomes) + 1
    pos = np.concatenate([np.arange(1, (chrom == c).sum() + 1) * 1000 for c in np.unique(chrom)])
    snps = pd.DataFrame(
        {
            "chrom": chrom.astype(str),
            "snp": [f"rs{j + 1}" for j in range(n_snps)],
            "cm": 0.0,
            "pos": pos,
            "a1": "A",
            "a2": "G",
        }
    )
    samples = np.array([f"id{i + 1}" for i in range(n_samples)])
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
