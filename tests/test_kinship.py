"""Kinship constructions against frozen plink2 / GEMMA matrices (EUR) and dense formulas."""

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl
from bayeslmm.errors import InputError
from tests.gemma_reference import EUR_DIR, read_block, read_diag


@pytest.fixture(scope="module", params=["eurA", "eurB"])
def eur(request):
    g = bl.read_plink(EUR_DIR / request.param)
    return request.param, g


@pytest.mark.parametrize(
    ("method", "tool", "name_fmt", "diag_too"),
    [
        ("centered", "plink2", "{}.cov", True),
        ("centered", "gemma", "{}.cXX", True),
        ("standardized_empirical", "gemma", "{}.sXX", True),
        ("standardized", "plink2", "{}.std", False),  # GCTA's diagonal differs from plink2's
    ],
)
def test_kinship__equals_peer_tool(eur, method, tool, name_fmt, diag_too):
    name, g = eur
    K = bl.kinship(g, method, chunk_size=500).matrix
    stem = EUR_DIR / tool / name_fmt.format(name)
    block = read_block(f"{stem}.block20.tsv")
    digits = 6 if tool == "plink2" else 9  # significant digits the tool printed
    tol = 10.0**-digits * 5
    ours = K[:20, :20]
    off = ~np.eye(20, dtype=bool)
    np.testing.assert_allclose(ours[off], block[off], rtol=tol, atol=tol * np.abs(block).max())
    if diag_too:
        np.testing.assert_allclose(np.diag(K), read_diag(f"{stem}.diag.txt"), rtol=tol, atol=tol)


def test_kinship__gcta_diagonal_formula(eur):
    _, g = eur
    G = g.read()
    p = G.mean(0) / 2
    expected = 1 + np.mean((G**2 - (1 + 2 * p) * G + 2 * p**2) / (2 * p * (1 - p)), axis=1)
    np.testing.assert_allclose(np.diag(bl.kinship(g, "standardized").matrix), expected, rtol=1e-12)


def test_kinship__ldak_alpha_and_weights(rng):
    G = rng.binomial(2, rng.uniform(0.05, 0.5, 30), size=(25, 30)).astype(float)
    w = rng.uniform(0, 2, 30)
    p = G.mean(0) / 2
    Z = (G - 2 * p) * (2 * p * (1 - p)) ** (-0.25 / 2)
    expected = (Z * w) @ Z.T / w.sum()
    K = bl.kinship(G, "ldak", alpha=-0.25, weights=w, chunk_size=7)
    np.testing.assert_allclose(K.matrix, expected, rtol=1e-12)
    # α = −1 without weights is GCTA's scaling off the diagonal
    std = bl.kinship(G, "standardized").matrix
    ldak = bl.kinship(G, "ldak", alpha=-1).matrix
    off = ~np.eye(25, dtype=bool)
    np.testing.assert_allclose(ldak[off], std[off], rtol=1e-12)


def test_kinship__ibs_brute_force(rng):
    G = rng.integers(0, 3, size=(8, 40)).astype(float)
    G[rng.uniform(size=G.shape) < 0.1] = np.nan
    K = bl.kinship(G, "ibs").matrix
    for i in range(8):
        for j in range(8):
            both = ~np.isnan(G[i]) & ~np.isnan(G[j])
            expected = np.mean(1 - np.abs(G[i, both] - G[j, both]) / 2)
            assert K[i, j] == pytest.approx(expected, abs=1e-12)


def test_kinship__missing_calls_are_mean_imputed(rng):
    G = rng.binomial(2, 0.4, size=(20, 15)).astype(float)
    G[3, 4] = G[7, 9] = np.nan
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    W = filled - filled.mean(0)
    np.testing.assert_allclose(bl.kinship(G, "centered").matrix, W @ W.T / 15, rtol=1e-12)


def test_kinship__qc_counts(rng):
    G = rng.binomial(2, 0.4, size=(30, 10)).astype(float)
    G[:, 0] = 1.0  # monomorphic
    G[:, 1] = np.nan  # all missing
    G[:20, 2] = np.nan  # 2/3 missing
    G[:, 3] = 0.0
    G[0, 3] = 1.0  # maf 1/60
    K = bl.kinship(G, "centered", maf=0.05, max_missing=0.5)
    assert K.qc == {
        "snps_in": 10,
        "all_missing": 1,
        "monomorphic": 1,
        "missingness": 1,
        "maf": 1,
        "used": 6,
    }
    assert K.n_snps == 6
    W = G[:, 4:] - G[:, 4:].mean(0)
    np.testing.assert_allclose(K.matrix, W @ W.T / 6, rtol=1e-12)


def test_loco_kinships__equal_kinship_without_chromosome(eur):
    _, g = eur
    loco = bl.loco_kinships(g, "centered", chunk_size=400)
    chrom = g.snps["chrom"].astype(str).to_numpy()
    assert set(loco) == set(chrom)
    for c in (chrom[0], chrom[-1]):
        direct = bl.kinship(g, "centered", snps=np.flatnonzero(chrom != c))
        np.testing.assert_allclose(loco[c].matrix, direct.matrix, rtol=1e-10, atol=1e-13)
        assert loco[c].n_snps == direct.n_snps


def test_kinship_from_pcs__rank(rng):
    pcs = pd.DataFrame(rng.normal(size=(12, 3)), index=[f"s{i}" for i in range(12)])
    K = bl.kinship_from_pcs(pcs)
    assert np.linalg.matrix_rank(K.matrix) == 3 and list(K.samples[:2]) == ["s0", "s1"]
    assert K.spectral().rank == 3


def test_kinship__errors(rng):
    G = rng.binomial(2, 0.4, size=(5, 4)).astype(float)
    with pytest.raises(InputError, match="unknown kinship method"):
        bl.kinship(G, "grm")
    with pytest.raises(InputError, match="weights apply to method='ldak'"):
        bl.kinship(G, "centered", weights=np.ones(4))
    with pytest.raises(InputError, match="no SNP passed quality control"):
        bl.kinship(np.ones((5, 4)), "centered")
    with pytest.raises(InputError, match="dosages"):
        bl.kinship(G + 0.5, "ibs")
    with pytest.raises(InputError, match="at least two chromosomes"):
        bl.loco_kinships(G)


def test_kinship__memory_check_names_low_rank_alternative(monkeypatch, rng):
    import sys

    kin = sys.modules["bayeslmm.relatedness.grm"]
    monkeypatch.setattr(kin, "available_memory", lambda: 1000)
    with pytest.raises(InputError, match=r"needs .* GB .*bl.snp_model"):
        bl.kinship(rng.binomial(2, 0.4, size=(50, 5)).astype(float))


def test_kinship__reml_uses_ids(eur):
    name, g = eur
    K = bl.kinship(g, "standardized_empirical")
    y = pd.Series(g.fam["phenotype"].to_numpy(), index=g.samples)
    shuffled = y.sample(frac=1.0, random_state=1)
    fit = bl.reml(shuffled, K)
    ref = bl.reml(y.to_numpy(), K.matrix)
    assert fit.h2 == pytest.approx(ref.h2, abs=1e-10)


def _with_chromosomes(G, chrom):
    from bayeslmm.relatedness.grm import as_genotypes

    g = as_genotypes(G)
    g.snps["chrom"] = chrom
    return g


def test_kinship__autosomes_only_by_default(rng):
    G = rng.binomial(2, 0.4, size=(25, 12)).astype(float)
    chrom = ["chr1"] * 4 + ["2"] * 4 + ["X", "chrY", "MT", "scaffold_9"]
    g = _with_chromosomes(G, chrom)
    K = bl.kinship(g, "centered")
    np.testing.assert_allclose(K.matrix, bl.kinship(G[:, :8], "centered").matrix, rtol=1e-12)
    assert K.qc["non_autosomal"] == 4 and K.n_snps == 8
    everything = bl.kinship(g, "centered", autosomes_only=False)
    np.testing.assert_allclose(everything.matrix, bl.kinship(G, "centered").matrix, rtol=1e-12)
    assert "non_autosomal" not in everything.qc


def test_loco_kinships__normalized_codes_and_non_autosomes(rng):
    G = rng.binomial(2, 0.4, size=(25, 12)).astype(float)
    chrom = ["chr1"] * 3 + ["1"] * 2 + ["2"] * 3 + ["3"] * 2 + ["X", "chrX"]
    loco = bl.loco_kinships(_with_chromosomes(G, chrom), "centered")
    assert set(loco) == {"1", "2", "3", "23"}  # chr1 = 1, chrX = X = 23
    np.testing.assert_allclose(
        loco["1"].matrix, bl.kinship(G[:, 5:10], "centered").matrix, rtol=1e-10, atol=1e-13
    )
    assert loco["1"].n_snps == 5
    # X is in no kinship: its SNPs are tested against the all-autosome one
    np.testing.assert_allclose(
        loco["23"].matrix, bl.kinship(G[:, :10], "centered").matrix, rtol=1e-10, atol=1e-13
    )
