"""The spectral core against dense linear algebra."""

import numpy as np
import pytest

import bayeslmm as bl
from bayeslmm.linalg.spectral import rotate_data


def test_spectral_from_kinship__reconstructs_normalized_K(small):
    K = 3.0 * small.K  # any scale: normalization divides by the mean diagonal
    spec = bl.spectral_from_kinship(K)
    assert spec.scale == pytest.approx(3.0 * np.trace(small.K) / 40)
    np.testing.assert_allclose(spec.matrix(), K / spec.scale, atol=1e-12)
    np.testing.assert_allclose(spec.U.T @ spec.U, np.eye(spec.rank), atol=1e-12)
    assert np.all(np.diff(spec.s) <= 0)


def test_spectral_from_kinship__no_normalization(small):
    spec = bl.spectral_from_kinship(2 * small.K, normalize=False)
    assert spec.scale == 1.0
    np.testing.assert_allclose(spec.matrix(), 2 * small.K, atol=1e-12)


def test_spectral__low_rank_from_few_snps(rng):
    G = rng.binomial(2, 0.3, size=(50, 10)).astype(float)
    W = (G - G.mean(0)) / G.std(0)
    K = W @ W.T / 10
    spec = bl.spectral_from_kinship(K)
    assert spec.rank == np.linalg.matrix_rank(W)  # ≤ 10, and the centred all-ones direction is null
    np.testing.assert_allclose(spec.matrix(), K, atol=1e-10)


def test_spectral_from_genotypes__svd_equals_eigh(rng):
    G = rng.binomial(2, 0.4, size=(60, 25)).astype(float)
    W = (G - G.mean(0)) / G.std(0)
    by_svd = bl.spectral_from_genotypes(W)
    by_eigh = bl.spectral_from_kinship(W @ W.T / W.shape[1])
    assert by_svd.rank == by_eigh.rank
    np.testing.assert_allclose(by_svd.s, by_eigh.s, rtol=1e-10)
    np.testing.assert_allclose(by_svd.matrix(), by_eigh.matrix(), atol=1e-10)
    # M >= N goes through eigh of WW'/M and must agree as well
    wide = bl.spectral_from_genotypes(np.hstack([W, W, W]))
    np.testing.assert_allclose(wide.matrix(), by_eigh.matrix(), atol=1e-10)


def test_spectral__duplicated_sample_is_rank_deficient(small):
    K = small.K.copy()
    K = np.insert(np.insert(K, 0, K[0], axis=0), 0, np.insert(K[0], 0, K[0, 0]), axis=1)
    spec = bl.spectral_from_kinship(K)
    assert spec.rank == np.linalg.matrix_rank(small.K) == np.linalg.matrix_rank(K)
    np.testing.assert_allclose(spec.matrix(), K / spec.scale, atol=1e-10)


def test_rotate_data__null_space_gram_equals_projection(rng):
    G = rng.binomial(2, 0.3, size=(30, 8)).astype(float)
    W = (G - G.mean(0)) / G.std(0)
    spec = bl.spectral_from_genotypes(W)
    y, X = rng.normal(size=30), np.column_stack([np.ones(30), rng.normal(size=30)])
    rot = rotate_data(spec, y, X)
    P = np.eye(30) - spec.U @ spec.U.T  # projector onto the null space, dense
    A = np.column_stack([X, y])
    np.testing.assert_allclose(rot.gram, A.T @ P @ A, atol=1e-10)
    assert rot.n_null == 30 - spec.rank
