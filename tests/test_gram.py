"""bl.gram and REML from it (issue 11): equal to the N×N path, streamed, never N×N.

The reference is ``bl.reml(y, bl.kinship(G, method), X)``: the N×N kinship, its eigh, the
explicit null-space residuals. The Gram path decomposes W'W (M×M) and rotates through W'[X, y].

Tolerances. The algebra is exact to round-off: at any h² the profiled likelihood, β̂ and σ̂p² of
the two paths agree to ~1e-15 relative (tested to 1e-10 here), and so does the maximized
log-likelihood. The maximizer ĥ² is bounded Brent's answer refined to the root of the analytic
derivative of the profile (``reml._polish``), so it too agrees to round-off (~1e-15 measured):
ĥ², σ̂g², σ̂e² and the SE of h² are compared to 1e-8 relative (issue 11's criterion), β̂ to
1e-8 of its SE.
"""

import logging
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from bed_reader import to_bed

import bayeslmm as bl
from bayeslmm.data.inputs import gram_inputs, kinship_inputs
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.estimation.reml import profile
from bayeslmm.linalg.spectral import rotate_data, standardize
from bayeslmm.relatedness.gram import gram_memory

N, M = 700, 240
H2_RTOL = 1e-8
EXACT = 1e-10


def _cohort(n: int = N, m: int = M, seed: int = 11, missing: float = 0.02):
    data = bl.simulate(n, m, 0.5, n_covariates=2, n_populations=2, seed=seed)
    rng = np.random.default_rng(seed)
    G = data.G.copy()
    G[rng.random(G.shape) < missing] = np.nan
    return data, G


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


@pytest.fixture(scope="module")
def grams(cohort):
    _, G = cohort
    return {method: bl.gram(G, method) for method in ("standardized_empirical", "centered")}


@pytest.fixture(scope="module")
def kinships(cohort):
    _, G = cohort
    return {method: bl.kinship(G, method) for method in ("standardized_empirical", "centered")}


def _assert_same_fit(fit, ref, *, same_drops: bool = True):
    assert fit.n == ref.n
    if same_drops:  # (the Gram is named "gram" in the messages, K "K")
        assert {k.replace("gram", "K"): v for k, v in fit.dropped.items()} == ref.dropped
    assert fit.loglik == pytest.approx(ref.loglik, rel=EXACT)
    assert fit.kinship_scale == pytest.approx(ref.kinship_scale, rel=1e-12)
    assert fit.h2 == pytest.approx(ref.h2, rel=H2_RTOL)
    assert fit.sigma_g2 == pytest.approx(ref.sigma_g2, rel=H2_RTOL)
    assert fit.sigma_e2 == pytest.approx(ref.sigma_e2, rel=H2_RTOL)
    assert fit.h2_se == pytest.approx(ref.h2_se, rel=H2_RTOL)
    beta, beta_se = ref.beta.to_numpy(), ref.beta_se.to_numpy()
    np.testing.assert_allclose(fit.beta.to_numpy(), beta, rtol=0, atol=H2_RTOL * beta_se.min())
    np.testing.assert_allclose(fit.beta_se.to_numpy(), beta_se, rtol=H2_RTOL)


def _with_missing_y(y: np.ndarray, n_missing: int, seed: int = 3) -> np.ndarray:
    y = y.copy()
    y[np.random.default_rng(seed).choice(y.size, n_missing, replace=False)] = np.nan
    return y


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# --- the Gram itself -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["standardized_empirical", "centered"])
def test_gram__kinship_from_its_blocks_equals_bl_kinship(cohort, grams, kinships, method):
    g, K = grams[method], kinships[method]
    W = np.vstack([block for _, block in g.blocks(np.arange(g.n_samples))])
    assert W.shape == (N, M)
    np.testing.assert_allclose(W @ W.T / g.n_snps, K.matrix, rtol=0, atol=1e-12)
    np.testing.assert_allclose(W.T @ W, g.wtw, rtol=0, atol=1e-10)
    assert g.scale == pytest.approx(K.scale, rel=1e-14)
    assert g.qc == K.qc
    np.testing.assert_array_equal(g.samples, K.samples)


def test_gram__several_blocks_equal_one_block(cohort, grams):
    _, G = cohort
    one = grams["standardized_empirical"]
    many = bl.gram(G, chunk_size=37)  # 19 sample blocks; the first pass reads 12-SNP blocks
    assert _max_rel(many.wtw, one.wtw) < 1e-13
    np.testing.assert_array_equal(many.center, one.center)
    np.testing.assert_allclose(many.spread, one.spread, rtol=1e-14)
    y = cohort[0].y
    _assert_same_fit(bl.reml(y, many, cohort[0].X), bl.reml(y, one, cohort[0].X))


def test_gram__qc_counts_as_kinship(cohort):
    _, G = cohort
    G = G.copy()
    G[:, 3] = 1.0  # monomorphic
    G[:, 7] = np.nan  # no call
    G[: N // 2, 11] = np.nan  # half missing
    for kwargs in ({}, {"maf": 0.2, "max_missing": 0.3}):
        g = bl.gram(G, **kwargs)
        K = bl.kinship(G, "standardized_empirical", **kwargs)
        assert g.qc == K.qc
        assert g.n_snps == K.n_snps == g.qc["used"]
        assert len(g.snps) == g.n_snps and 3 not in g.snp_index and 7 not in g.snp_index


# --- REML from the Gram equals the N×N path --------------------------------------------------


@pytest.mark.parametrize("method", ["standardized_empirical", "centered"])
@pytest.mark.parametrize("n_missing", [0, 60, 450], ids=["all", "downdate", "recompute"])
def test_reml_gram__rotated_data_and_profile_equal_nxn(cohort, grams, kinships, method, n_missing):
    # the algebra at fixed h²: rotated data, null-space Gram and profile to round-off
    data, _ = cohort
    y = _with_missing_y(data.y, n_missing)
    with pytest.warns(DataWarning) if n_missing else _no_warning():
        prepared, subset = gram_inputs(y, grams[method], data.X)
    with pytest.warns(DataWarning) if n_missing else _no_warning():
        prepared_k, spectral = kinship_inputs(y, kinships[method], data.X)
    np.testing.assert_array_equal(prepared.rows, prepared_k.rows)
    std = standardize(prepared.y, prepared.X)
    rot, ref = subset.rotate_data(std.y, std.X), rotate_data(spectral, std.y, std.X)
    assert rot.n_null == ref.n_null == prepared.n - M
    assert subset.scale == pytest.approx(spectral.scale, rel=1e-14)
    np.testing.assert_allclose(rot.s, ref.s, rtol=0, atol=1e-13 * ref.s.max())  # eigh's error
    assert _max_rel(rot.gram, ref.gram) < EXACT
    np.testing.assert_allclose(
        rot.null_factor.T @ rot.null_factor, ref.gram, rtol=0, atol=EXACT * np.abs(ref.gram).max()
    )
    # eigenvectors have arbitrary signs (and rotations within repeated eigenvalues): compare
    # what the likelihood uses, sums of products per eigenvalue
    np.testing.assert_allclose(rot.y1**2, ref.y1**2, rtol=0, atol=EXACT * (ref.y1**2).max())
    np.testing.assert_allclose(
        rot.X1 * rot.y1[:, None], ref.X1 * ref.y1[:, None], rtol=0, atol=EXACT * prepared.n
    )
    h = np.linspace(0.0, 0.99, 12)
    for method_ in ("reml", "ml"):
        a, b = profile(rot, h, method_), profile(ref, h, method_)
        np.testing.assert_allclose(a.loglik, b.loglik, rtol=EXACT)
        np.testing.assert_allclose(a.sigma_p2, b.sigma_p2, rtol=EXACT)
        np.testing.assert_allclose(a.beta, b.beta, rtol=0, atol=EXACT)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("method", ["standardized_empirical", "centered"])
@pytest.mark.parametrize("fit_method", ["reml", "ml"])
def test_reml_gram__equals_nxn_with_missing_calls_and_covariates(
    cohort, grams, kinships, method, fit_method
):
    data, _ = cohort
    fit = bl.reml(data.y, grams[method], data.X, method=fit_method)
    ref = bl.reml(data.y, kinships[method], data.X, method=fit_method)
    assert 0.05 < ref.h2 < 0.95  # an interior estimate: the comparison means something
    _assert_same_fit(fit, ref)


@pytest.mark.parametrize("n_missing", [60, 450], ids=["downdate", "recompute"])
def test_reml_gram__samples_without_y_equal_nxn(cohort, grams, kinships, n_missing):
    data, _ = cohort
    y = _with_missing_y(data.y, n_missing)
    with pytest.warns(DataWarning, match=f"{n_missing} missing y"):
        fit = bl.reml(y, grams["standardized_empirical"], data.X)
    with pytest.warns(DataWarning):
        ref = bl.reml(y, kinships["standardized_empirical"], data.X)
    assert fit.n == N - n_missing
    _assert_same_fit(fit, ref)


def test_reml_gram__shuffled_ids_and_extra_samples_equal_nxn(cohort):
    data, G = cohort
    ids = np.array([f"s{i}" for i in range(N)])
    frame = pd.DataFrame(G, index=ids)
    order = np.random.default_rng(5).permutation(N)
    y = pd.Series(data.y, index=ids, name="height").iloc[order]
    y = pd.concat([y, pd.Series([1.0], index=["stranger"], name="height")])
    X = pd.DataFrame(data.X, index=ids, columns=["age", "sex"]).iloc[order[::-1]]
    with pytest.warns(DataWarning, match="in y but not in gram"):
        fit = bl.reml(y, bl.gram(frame, chunk_size=100), X)
    with pytest.warns(DataWarning, match="in y but not in K"):
        ref = bl.reml(y, bl.kinship(frame, "standardized_empirical"), X)
    assert list(fit.beta.index) == ["intercept", "age", "sex"]
    _assert_same_fit(fit, ref)
    assert list(ref.beta.index) == ["intercept", "age", "sex"]
    # and the same as the unshuffled arrays, position by position
    ref = bl.reml(data.y, bl.kinship(G, "standardized_empirical"), data.X)
    _assert_same_fit(fit, ref, same_drops=False)


def test_reml_gram__unnormalized_equals_nxn(cohort, grams, kinships):
    data, _ = cohort
    fit = bl.reml(data.y, grams["centered"], data.X, normalize=False)
    ref = bl.reml(data.y, kinships["centered"], data.X, normalize=False)
    assert fit.kinship_scale == ref.kinship_scale == 1.0
    _assert_same_fit(fit, ref)


def test_reml_gram__several_phenotypes_reuse_one_gram(cohort, grams, kinships):
    data, _ = cohort
    g = grams["standardized_empirical"]
    rng = np.random.default_rng(9)
    for y in (data.y, data.y + rng.normal(size=N), 1e6 + 3 * data.y):
        ref = bl.reml(y, kinships["standardized_empirical"], data.X)
        _assert_same_fit(bl.reml(y, g, data.X), ref)


@pytest.mark.slow
def test_reml_gram__n3000_equals_nxn():
    # the size of issue 11's criterion; the N×N eigh alone takes ~20 s on 2 cores
    data, G = _cohort(3000, 500, seed=2)
    y = _with_missing_y(data.y, 100)
    with pytest.warns(DataWarning):
        fit = bl.reml(y, bl.gram(G, chunk_size=700), data.X)
    with pytest.warns(DataWarning):
        ref = bl.reml(y, bl.kinship(G, "standardized_empirical"), data.X)
    _assert_same_fit(fit, ref)


# --- streaming from a PLINK file, memory ----------------------------------------------------


@pytest.fixture(scope="module")
def plink(cohort, tmp_path_factory):
    data, G = cohort
    prefix = tmp_path_factory.mktemp("gram") / "cohort"
    chrom = np.repeat(["1", "2", "23"], [M // 2, M // 2 - 10, 10])  # 10 SNPs on X
    to_bed(
        f"{prefix}.bed",
        G,
        properties={
            "fid": data.samples,
            "iid": data.samples,
            "sid": [f"rs{j}" for j in range(M)],
            "chromosome": chrom,
            "bp_position": np.arange(1, M + 1) * 100,
        },
    )
    return prefix


def test_gram__plink_file_read_lazily_equals_in_memory(cohort, plink):
    data, G = cohort
    g = bl.read_plink(plink)
    lazy = bl.gram(g, chunk_size=90)
    frame = pd.DataFrame(G, index=data.samples)
    memory = bl.gram(frame, autosomes_only=False, snps=slice(0, M - 10))
    assert lazy.qc["non_autosomal"] == 10 and lazy.n_snps == M - 10
    assert lazy.qc == bl.kinship(g, "standardized_empirical").qc
    assert _max_rel(lazy.wtw, memory.wtw) < 1e-13
    assert list(lazy.snps["snp"]) == [f"rs{j}" for j in range(M - 10)]
    y = pd.Series(_with_missing_y(data.y, 40), index=data.samples)
    with pytest.warns(DataWarning):
        fit = bl.reml(y, lazy, data.X)
    with pytest.warns(DataWarning):
        ref = bl.reml(y, bl.kinship(g, "standardized_empirical"), data.X)
    _assert_same_fit(fit, ref)


def test_gram__never_holds_nxn_nor_nxm(tmp_path):
    # N·M doubles = 7.2 MB and N² doubles = 288 MB here; the Gram path (a PLINK file read
    # lazily, then REML) peaks at its stated M² + one block, plus the O(N) phenotype and IDs
    n, m, chunk = 6000, 150, 250
    data = bl.simulate(n, m, 0.5, seed=4)
    prefix = tmp_path / "big"
    to_bed(f"{prefix}.bed", data.G, properties={"iid": data.samples, "fid": data.samples})
    g = bl.read_plink(prefix)
    y = pd.Series(data.y, index=data.samples)
    tracemalloc.start()
    try:
        fit = bl.reml(y, bl.gram(g, chunk_size=chunk))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0 <= fit.h2 <= 1
    assert peak < n * m * 8 / 2, f"peak {peak / 1e6:.2f} MB"
    assert peak < gram_memory(n, m, chunk) + 200 * n, f"peak {peak / 1e6:.2f} MB"


def test_gram__states_memory_before_the_work(cohort, caplog):
    _, G = cohort
    with caplog.at_level(logging.INFO, logger="bayeslmm"):
        bl.gram(G, chunk_size=100)
    first = caplog.records[0].getMessage()
    assert first.startswith(f"gram: {N} samples × {M} SNPs") and "GB" in first
    assert f"{gram_memory(N, M, 100) / 1e9:.3g} GB" in first
    assert gram_memory(100_000, 5_000, 2048) == 8 * (5 * 5_000**2 + 2 * 2048 * 5_000)


def test_gram__too_big_says_the_way_out(cohort, monkeypatch):
    _, G = cohort
    monkeypatch.setattr("bayeslmm.relatedness.gram.available_memory", lambda: 1_000_000)
    with pytest.raises(InputError, match=r"needs .* GB .* Use fewer model SNPs .* smaller chunk"):
        bl.gram(G)


# --- bad inputs: typed errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "standardized"}, "no low-rank form"),
        ({"method": "ibs"}, "unknown Gram method"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"chunk_size": 2.5}, "chunk_size must be a positive integer"),
        ({"chunk_size": True}, "chunk_size must be a positive integer"),
        ({"maf": 0.7}, "maf must lie"),
        ({"max_missing": -1}, "max_missing must lie"),
        ({"snps": [0, M + 5]}, "SNPs positions out of range"),
        ({"snps": []}, "no SNP selected"),
        ({"samples": [0, 1, 1]}, "more than once"),
        ({"samples": [4]}, "at least 2 samples"),
    ],
)
def test_gram__bad_arguments(cohort, kwargs, match):
    _, G = cohort
    with pytest.raises(InputError, match=match):
        bl.gram(G, **kwargs)


@pytest.mark.parametrize(
    ("genotypes", "match"),
    [
        (np.zeros(10), "2-D"),
        (np.full((10, 4), 5.0), "allele counts"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
        (np.ones((10, 4)), "no SNP passed quality control"),
    ],
)
def test_gram__bad_genotypes(genotypes, match):
    with pytest.raises(InputError, match=match):
        bl.gram(genotypes)


def test_reml_gram__bad_phenotypes_and_other_entry_points(cohort, grams):
    data, _ = cohort
    g = grams["standardized_empirical"]
    with pytest.raises(InputError, match="aligned by position"):
        bl.reml(data.y[:-1], g)
    with pytest.raises(InputError, match="accepted by bl.reml only"):
        kinship_inputs(data.y, g)
    with pytest.raises(InputError, match="accepted by bl.reml only"):
        bl.reml(data.y, [g, g])
    with pytest.raises(InputError, match="distinct"):
        g.subset(np.array([0, 0, 1]))
