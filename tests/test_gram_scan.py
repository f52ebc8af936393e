"""The scan from a Gram (issue 11, point 4) and the .bed codes behind the fast Gram pass.

The reference is ``bl.scan`` from the N×N kinship: the Gram path rotates each chunk through
W'G and the eigenvectors of W'W instead of U, so the statistics agree to round-off. Measured at
N = 800: P3D −log10 p within ~3e-13, β within ~5e-14 of its SE, h² of the null to ~1e-15;
exact mode −log10 p within ~6e-8, the tolerance of its per-SNP λ search (a vectorized grid +
Brent, stopped at ~1e-7 relative, which round-off moves by as much). The tests ask 1e-8 in
−log10 p (issue 11's criterion for P3D) and 1e-8 of the SE in β; 1e-6 in exact mode.
"""

import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from bed_reader import open_bed, to_bed

import bayeslmm as bl
from bayeslmm.errors import DataWarning, InputError
from bayeslmm.io.plink_codes import (
    BedFile,
    Codebook,
    block_starts,
    code_counts,
    decode,
    moments,
    value_table,
)

N, M = 640, 700
LOG10P = 1e-8
EXACT_MODE = 1e-6
P_COLUMNS = ["p_wald", "p_lrt", "p_score"]


def _write_bed(prefix, G, data, chrom=None):
    to_bed(
        f"{prefix}.bed",
        G,
        properties={
            "fid": data.samples,
            "iid": data.samples,
            "sid": data.snps["snp"].to_numpy(),
            "chromosome": data.snps["chrom"].to_numpy() if chrom is None else chrom,
            "bp_position": data.snps["pos"].to_numpy(),
        },
    )
    return bl.read_plink(prefix)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    data = bl.simulate(N, M, 0.5, n_covariates=2, n_chromosomes=4, seed=21)
    G = data.G.copy()
    rng = np.random.default_rng(21)
    G[rng.random(G.shape) < 0.02] = np.nan
    G[:, 5] = 1.0  # monomorphic
    G[:, 9] = np.nan  # no call
    g = _write_bed(tmp_path_factory.mktemp("gram_scan") / "c", G, data)
    y = pd.Series(data.y, index=data.samples, name="y")
    X = pd.DataFrame(data.X, index=data.samples, columns=["age", "sex"])
    return data, G, g, y, X


def _assert_same_scan(new, ref, p_tol=LOG10P):
    pd.testing.assert_frame_equal(
        new[["chrom", "snp", "pos", "a1", "a2", "n"]], ref[["chrom", "snp", "pos", "a1", "a2", "n"]]
    )
    np.testing.assert_array_equal(new["af"].to_numpy(), ref["af"].to_numpy())
    a, b = new[P_COLUMNS].to_numpy(), ref[P_COLUMNS].to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(b)
    np.testing.assert_allclose(-np.log10(a[ok]), -np.log10(b[ok]), rtol=0, atol=p_tol)
    se = ref["se"].to_numpy()
    np.testing.assert_allclose(new["beta"], ref["beta"], rtol=0, atol=p_tol * np.nanmin(se))
    np.testing.assert_allclose(new["se"], se, rtol=p_tol)
    np.testing.assert_allclose(new["h2"], ref["h2"], rtol=p_tol)
    np.testing.assert_allclose(new["log10_bf"], ref["log10_bf"], rtol=0, atol=p_tol)


# --- the scan from a Gram equals the N×N scan -------------------------------------------------


@pytest.mark.parametrize("method", ["centered", "standardized_empirical"])
@pytest.mark.parametrize("loco", [True, False], ids=["loco", "one_kinship"])
def test_scan_gram__equals_nxn_scan(cohort, method, loco):
    _, _, g, y, X = cohort
    ref = bl.scan(g, y, X=X, loco=loco, kinship_method=method, chunk_size=200, progress=False)
    new = bl.scan(g, y, K=bl.gram(g, method), X=X, loco=loco, chunk_size=200, progress=False)
    assert len(new) == M and new.loc[[5, 9], "p_wald"].isna().all()
    assert ref["h2"].nunique() == (4 if loco else 1)  # one null per chromosome with LOCO
    _assert_same_scan(new, ref)


def test_scan_gram__exact_mode_equals_nxn(cohort):
    _, _, g, y, X = cohort
    kwargs = {"X": X, "exact": True, "chunk_size": 350, "progress": False}
    ref = bl.scan(g, y, kinship_method="centered", **kwargs)
    new = bl.scan(g, y, K=bl.gram(g, "centered"), **kwargs)
    assert new["h2"].nunique() > 100  # λ re-estimated per SNP
    # the per-SNP λ (and the null ML λ of the score test) come from a vectorized grid + Brent
    # search stopped at ~1e-7 relative, which round-off moves by as much: up to ~6e-8 measured
    _assert_same_scan(new, ref, p_tol=EXACT_MODE)


def test_scan_gram__posterior_null_equals_nxn(cohort):
    # the null λ from draws of h² (Bayes factors averaged over them): the same draws, the
    # same statistics
    import xarray as xr

    _, _, g, y, X = cohort
    draws = np.random.default_rng(4).uniform(0.3, 0.6, size=(2, 40))
    posterior = xr.DataTree.from_dict({"posterior": xr.Dataset({"h2": (("chain", "draw"), draws)})})
    kwargs = {"X": X, "null": "posterior", "posterior": posterior, "progress": False}
    ref = bl.scan(g, y, K=bl.kinship(g, "centered"), snps=np.arange(150), **kwargs)
    new = bl.scan(g, y, K=bl.gram(g, "centered"), loco=False, snps=np.arange(150), **kwargs)
    _assert_same_scan(new, ref)


def test_scan_gram__missing_phenotypes_and_shuffled_ids_equal_nxn(cohort):
    # samples without y are dropped: the Gram is downdated, K restricted (same means)
    data, G, g, y, X = cohort
    y = y.copy()
    y.iloc[np.random.default_rng(2).choice(N, 45, replace=False)] = np.nan
    y = y.iloc[np.random.default_rng(3).permutation(N)]
    K = bl.kinship(g, "standardized_empirical")
    with pytest.warns(DataWarning, match="45 missing y"):
        ref = bl.scan(g, y, K=K, X=X, chunk_size=300, progress=False)
    with pytest.warns(DataWarning, match="45 missing y"):  # (a given K: one kinship)
        new = bl.scan(g, y, K=bl.gram(g), X=X, loco=False, chunk_size=300, progress=False)
    assert (new["n"].max()) <= N - 45
    _assert_same_scan(new, ref)


def test_scan_gram__in_memory_genotypes_equal_nxn(cohort):
    data, G, _, _, _ = cohort
    frame = pd.DataFrame(G[:, :300], index=data.samples)
    y = pd.Series(data.y, index=data.samples)
    K = bl.kinship(frame, "centered")
    ref = bl.scan(frame, y, K=K, X=data.X, chunk_size=128, progress=False)
    with pytest.warns(DataWarning, match="LOCO cannot apply: chromosome unknown"):
        new = bl.scan(
            frame, y, K=bl.gram(frame, "centered"), X=data.X, chunk_size=128, progress=False
        )
    _assert_same_scan(new, ref)
    # the model SNPs in memory, the tested ones read from the PLINK file of the same genotypes
    gram = bl.gram(frame, "centered")
    mixed = bl.scan(cohort[2], y, K=gram, X=data.X, snps=np.arange(300), loco=False, progress=False)
    ok = ref["p_wald"].notna().to_numpy()
    np.testing.assert_allclose(
        -np.log10(mixed["p_wald"][ok]), -np.log10(ref["p_wald"][ok]), rtol=0, atol=LOG10P
    )


def test_scan_gram__model_panel_apart_from_test_snps_equals_nxn_loco_dict(cohort):
    # a pruned panel of model SNPs (every third) and every SNP tested: with LOCO each
    # chromosome is tested against the Gram of the panel's SNPs on the other chromosomes
    _, _, g, y, X = cohort
    panel = np.arange(0, M, 3)
    gram = bl.gram(g, "centered", snps=panel)
    chrom = g.snps["chrom"].to_numpy()
    loco_k = {c: bl.kinship(g, "centered", snps=panel[chrom[panel] != c]) for c in np.unique(chrom)}
    ref = bl.scan(g, y, K=loco_k, X=X, chunk_size=256, progress=False)
    new = bl.scan(g, y, K=gram, X=X, chunk_size=256, progress=False)
    _assert_same_scan(new, ref)


@pytest.mark.parametrize("method", ["centered", "standardized_empirical"])
def test_scan_gram__loco_by_update_equals_nxn_and_decompositions(cohort, method, monkeypatch):
    # N > M: LOCO as a rank-k update of the whole Gram's eigenbasis (one decomposition),
    # against the N×N scan with the LOCO kinships of the same panel, and against the
    # decomposition of each chromosome's submatrix
    import bayeslmm.gwas.lowrank as lowrank

    _, _, g, y, X = cohort
    panel = np.arange(1, M, 2)
    gram = bl.gram(g, method, snps=panel)
    chrom = g.snps["chrom"].to_numpy()
    loco_k = {c: bl.kinship(g, method, snps=panel[chrom[panel] != c]) for c in np.unique(chrom)}
    ref = bl.scan(g, y, K=loco_k, X=X, chunk_size=256, progress=False)
    monkeypatch.setattr(lowrank, "LOCO_BY_UPDATE_FROM", 0)
    calls = []
    monkeypatch.setattr(lowrank, "group_fit", lambda *a, **k: calls.append(1))
    new = bl.scan(g, y, K=gram, X=X, chunk_size=256, progress=False)
    assert calls == []  # no per-chromosome decomposition
    _assert_same_scan(new, ref)
    monkeypatch.undo()
    monkeypatch.setattr(lowrank, "LOCO_BY_UPDATE_FROM", 10**9)
    _assert_same_scan(bl.scan(g, y, K=gram, X=X, chunk_size=256, progress=False), new)


def test_loco_update__likelihood_and_derivative_equal_the_decomposition(cohort):
    from bayeslmm.data.samples import prepare
    from bayeslmm.estimation.reml import fit_rotated
    from bayeslmm.gwas.association import NullData, loglik, projections
    from bayeslmm.gwas.loco import LeftOut, maximize_h2, whole_gram
    from bayeslmm.gwas.snp_statistics import null_block
    from bayeslmm.linalg.spectral import rotate_lowrank, spectral_from_gram, standardize

    data, G, _, _, _ = cohort
    frame = pd.DataFrame(G[:, 1::2], index=data.samples)
    gram = bl.gram(frame, "centered")
    prepared = prepare(data.y, data.X, gram.genotypes, genetic_name="genotypes", square=False)
    std = standardize(prepared.y, prepared.X)
    WtA = gram.project(np.column_stack([std.X, std.y]))
    whole = whole_gram(gram.wtw, N, std, WtA)
    chrom = data.snps["chrom"].to_numpy()[1::2][gram.snp_index]
    out, kept = np.flatnonzero(chrom == "2"), np.flatnonzero(chrom != "2")
    left = LeftOut.build(whole, out, N)
    basis = spectral_from_gram(gram.wtw[np.ix_(kept, kept)], N)
    rot = rotate_lowrank(basis, std.y, std.X, WtA[kept])
    null = NullData(X1=rot.X1, y1=rot.y1, gram=rot.gram, s=rot.s, n=N)
    assert left.scale == pytest.approx(basis.scale, rel=1e-14)
    for h2 in (0.0, 0.2, 0.5, 0.9):
        for method in ("reml", "ml"):
            lam = h2 / (1 - h2)
            proj = projections(null, null_block(null), np.array([lam]))
            exact_logdet = np.array([np.log1p(lam * rot.s).sum()])  # (not the spline's)
            ref = loglik(replace(proj, logdet_h=exact_logdet), N, 3, method, False)[0]
            assert left.loglik(h2, method) == pytest.approx(ref, rel=1e-11)
            if h2 > 0:
                step = 1e-6
                diff = (left.loglik(h2 + step, method) - left.loglik(h2 - step, method)) / 2 / step
                assert left.derivative(h2, method) == pytest.approx(diff, rel=1e-6, abs=1e-6)
    h2 = fit_rotated(rot, prepared.covariates, "reml")[0]
    assert maximize_h2(left) == pytest.approx(h2, rel=1e-12)


def test_scan_gram__other_chromosomes_share_the_whole_gram(cohort, tmp_path):
    # test SNPs on X (no model SNP there) are tested against every model SNP, as the N×N
    # scan tests them against the kinship of all autosomes
    data, G, _, y, X = cohort
    chrom = data.snps["chrom"].to_numpy().astype(object)
    chrom[-40:] = "23"
    g = _write_bed(tmp_path / "x", G, data, chrom=chrom)
    ref = bl.scan(g, y, X=X, kinship_method="centered", chunk_size=300, progress=False)
    new = bl.scan(g, y, K=bl.gram(g, "centered"), X=X, chunk_size=300, progress=False)
    assert new["h2"].iloc[-40:].nunique() == 1
    _assert_same_scan(new, ref)


@pytest.mark.slow
def test_scan_gram__n3000_equals_nxn(tmp_path):
    # issue 11's size; the N×N LOCO kinships and their eigh take most of the time
    data = bl.simulate(3000, 1200, 0.4, n_covariates=1, n_chromosomes=3, seed=8)
    g = _write_bed(tmp_path / "n3000", data.G, data)
    y = pd.Series(data.y, index=data.samples)
    X = pd.DataFrame(data.X, index=data.samples)
    ref = bl.scan(g, y, X=X, kinship_method="centered", progress=False)
    new = bl.scan(g, y, K=bl.gram(g, "centered", chunk_size=512), X=X, progress=False)
    _assert_same_scan(new, ref)


# --- output, progress, errors ----------------------------------------------------------------


def test_scan_gram__output_resumes_to_identical_file(cohort, tmp_path, monkeypatch):
    import bayeslmm.gwas.lowrank as lowrank

    _, _, g, y, X = cohort
    gram = bl.gram(g, "centered")
    reference = tmp_path / "full.tsv"
    bl.scan(g, y, K=gram, X=X, chunk_size=100, out=reference, progress=False)
    monkeypatch.setattr(lowrank, "PASS_SNPS", 100)  # one chunk a pass
    original, calls, stop_at = lowrank.scan_pass, [], [4]

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(lowrank, "scan_pass", interrupted)
    out = tmp_path / "killed.tsv"
    with pytest.raises(KeyboardInterrupt) as info:
        bl.scan(g, y, K=gram, X=X, chunk_size=100, out=out, progress=False)
    assert "resume=True" in str(info.value.__notes__)
    assert len(list((tmp_path / "killed.tsv.parts").glob("0*.tsv"))) == 3 and not out.exists()
    with pytest.raises(InputError, match="other settings"):  # another Gram
        bl.scan(g, y, K=bl.gram(g), X=X, chunk_size=100, out=out, resume=True, progress=False)
    calls.clear()
    stop_at[0] = 0
    bl.scan(g, y, K=gram, X=X, chunk_size=100, out=out, resume=True, progress=False)
    assert len(calls) == 5  # the 3 chunks done are read back, not recomputed
    assert out.read_bytes() == reference.read_bytes()


def test_scan_gram__progress_and_errors(cohort, capsys):
    data, _, g, y, X = cohort
    gram = bl.gram(g, "centered")
    bl.scan(g, y, K=gram, X=X, snps=np.arange(60), chunk_size=20, progress=True)
    assert "scan: chunk 3/3 (Gram" in capsys.readouterr().err
    with pytest.raises(InputError, match="null='map' needs the N×N kinship"):
        bl.scan(g, y, K=gram, null="map", progress=False)
    small = bl.gram(g, "centered", samples=np.arange(100))
    with pytest.raises(InputError, match=f"the Gram has no row for {N - 100} analysed samples"):
        bl.scan(g, y, K=small, progress=False)


def test_scan_gram__never_holds_nxm_float64(tmp_path):
    import tracemalloc

    import scipy.stats  # noqa: F401 (imported by the first chunk: not data)

    n, m = 6000, 400
    data = bl.simulate(n, m, 0.5, n_chromosomes=2, seed=4)
    g = _write_bed(tmp_path / "big", data.G, data)
    y = pd.Series(data.y, index=data.samples)
    gram = bl.gram(g, "centered", snps=np.arange(0, m, 4), chunk_size=500)
    tracemalloc.start()
    try:
        table = bl.scan(g, y, K=gram, chunk_size=100, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert table["p_wald"].notna().all()
    # the tested SNPs as float64 would be 19 MB; a pass holds their codes (N/4 bytes each), W'G
    # and one block of samples: ~6 MB measured
    assert peak < n * m * 8 / 2, f"peak {peak / 1e6:.2f} MB"


# --- the .bed codes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_bed(tmp_path_factory):
    # 1,003 samples: the last byte of each SNP holds 3 samples and 2 bits of padding
    rng = np.random.default_rng(5)
    G = rng.binomial(2, rng.uniform(0.05, 0.5, 37), size=(1003, 37)).astype(float)
    G[rng.random(G.shape) < 0.05] = np.nan
    path = tmp_path_factory.mktemp("codes") / "odd.bed"
    to_bed(path, G)
    return BedFile(str(path), 1003, 37), G


@pytest.mark.parametrize("cached", [False, True], ids=["tables_per_block", "tables_kept"])
def test_decode__equals_standardized_float_genotypes(odd_bed, cached):
    bed, G = odd_bed
    snps = np.array([0, 1, 2, 7, 30, 36, 12])
    x = G[:, snps]
    center, spread = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    reference = (x - center) / spread
    reference[np.isnan(reference)] = 0.0
    book = Codebook.build(value_table(center, spread), 4096 if cached else 16)
    assert (book.byte_values is not None) == cached
    codes = bed.read(snps)
    rng = np.random.default_rng(0)
    for positions in (
        np.arange(1003),  # whole bytes and the partial last one
        np.arange(400, 800),  # whole bytes
        np.arange(401, 777),  # a run off byte boundaries
        np.sort(rng.choice(1003, 600, replace=False)),  # dense, increasing
        rng.permutation(1003)[:50],  # scattered
    ):
        W = decode(codes, book, positions)
        assert W.flags.f_contiguous
        np.testing.assert_array_equal(W, reference[positions])  # the same numbers, to the bit
    part = bed.read(snps, 25, 100)  # samples 100..399 only
    np.testing.assert_array_equal(decode(part, book, np.arange(300)), reference[100:400])
    two = decode(codes[[3, 0]], book.columns(np.array([3, 0])), np.arange(9))
    np.testing.assert_array_equal(two, reference[:9][:, [3, 0]])


def test_code_counts__equal_counts_of_the_calls(odd_bed):
    bed, G = odd_bed
    codes = bed.read(np.arange(37))
    for positions in (None, np.random.default_rng(1).permutation(1003)[:333]):
        x = G if positions is None else G[positions]
        count, mean, sum_sq = moments(code_counts(codes, 1003, positions))
        np.testing.assert_array_equal(count, (~np.isnan(x)).sum(axis=0))
        np.testing.assert_array_equal(mean, np.nansum(x, axis=0) / count)  # to the bit
        np.testing.assert_allclose(sum_sq, np.nansum((x - mean) ** 2, axis=0), rtol=1e-13)


def test_bed_file__pickles_and_refuses_other_sources(odd_bed, cohort):
    bed, G = odd_bed
    assert pickle.loads(pickle.dumps(bed)) == bed
    g = cohort[2]
    assert BedFile.of(g) == BedFile(g.source, N, M)
    assert BedFile.of(bl.simulate(20, 10, 0.5, seed=1).G) is None
    first = open_bed(bed.path).read(index=np.s_[:4, 3:5], dtype="float64")
    book = Codebook.build(value_table(np.zeros(2)), 4)
    np.testing.assert_array_equal(decode(bed.read([3, 4], 0, 1), book, np.arange(4)), first)
    reader = bl.gram(g, "centered").reader(np.arange(4))
    assert pickle.loads(pickle.dumps(reader)).bed == BedFile.of(g)


def test_block_starts__byte_boundaries_for_runs():
    np.testing.assert_array_equal(block_starts(np.arange(10, 30), 8), [0, 6, 14])
    np.testing.assert_array_equal(block_starts(np.arange(0, 20), 10), [0, 8, 16])
    np.testing.assert_array_equal(block_starts(np.array([5, 2, 9]), 2), [0, 2])


def test_gram__from_bed_codes_equals_float_path(cohort):
    # the .bed pass (code counts, decoded blocks) against the same genotypes in memory
    data, G, g, _, _ = cohort
    frame = pd.DataFrame(G, index=data.samples)
    for kwargs in ({}, {"maf": 0.15, "max_missing": 0.01}, {"samples": np.arange(0, N, 3)}):
        bed = bl.gram(g, chunk_size=97, **kwargs)
        memory = bl.gram(frame, chunk_size=97, autosomes_only=False, **kwargs)
        assert bed.qc == memory.qc == bl.kinship(g, "standardized_empirical", **kwargs).qc
        np.testing.assert_array_equal(bed.snp_index, memory.snp_index)
        np.testing.assert_array_equal(bed.center, memory.center)
        np.testing.assert_allclose(bed.spread, memory.spread, rtol=1e-14)
        scale = np.abs(memory.wtw).max()
        np.testing.assert_allclose(bed.wtw, memory.wtw, rtol=0, atol=1e-13 * scale)


# --- dask --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gram_and_scan__dask_local_cluster_equal_local_run(cohort, monkeypatch):
    import bayeslmm.gwas.lowrank as lowrank

    distributed = pytest.importorskip("dask.distributed")
    _, _, g, y, X = cohort
    local_gram = bl.gram(g, "centered", chunk_size=100)
    local = bl.scan(g, y, K=local_gram, X=X, chunk_size=150, progress=False)
    monkeypatch.setattr(lowrank, "LOCO_BY_UPDATE_FROM", 0)  # N > M: LOCO by update
    panel = bl.gram(g, "centered", snps=np.arange(0, M, 2))
    local_panel = bl.scan(g, y, K=panel, X=X, chunk_size=150, progress=False)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote_gram = bl.gram(g, "centered", chunk_size=100, client=client)
        remote = bl.scan(g, y, K=remote_gram, X=X, chunk_size=150, client=client, progress=False)
        remote_panel = bl.scan(g, y, K=panel, X=X, chunk_size=150, client=client, progress=False)
        # the W'[X, y] pass as tasks (rows out of file order: the parts follow the file)
        rows = np.random.default_rng(3).permutation(panel.n_samples)[:-7]
        A = np.random.default_rng(4).standard_normal((rows.size, 3))
        remote_wta = panel.submit_project(client, A, rows).result()
    np.testing.assert_allclose(remote_wta, panel.project(A, rows), rtol=1e-12, atol=1e-10)
    assert remote_gram.qc == local_gram.qc
    np.testing.assert_array_equal(remote_gram.center, local_gram.center)
    scale = np.abs(local_gram.wtw).max()
    np.testing.assert_allclose(remote_gram.wtw, local_gram.wtw, rtol=0, atol=1e-13 * scale)
    _assert_same_scan(remote, local, p_tol=1e-10)
    _assert_same_scan(remote_panel, local_panel, p_tol=1e-10)
