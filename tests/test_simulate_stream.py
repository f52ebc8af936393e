"""bl.simulate(..., out=prefix) and `bayeslmm simulate --stream` (issue 11, point 6).

A cohort streamed to PLINK 1 files SNP block by SNP block: the .bed bytes are written by
bayeslmm (``encode_bed``), so they are checked against bed-reader's writer and read back with
bed-reader and ``bl.read_plink``; the streamed cohort follows the model of the in-memory one
(same seed, other draws: compared in distribution), its truth is consistent with its files, and
its memory does not grow with the number of SNPs.
"""

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from bed_reader import open_bed, to_bed
from scipy import stats

import bayeslmm as bl
from bayeslmm.cli import simulate as cli_simulate
from bayeslmm.cli.main import main
from bayeslmm.data import simulation
from bayeslmm.data.simulation import (
    COHORT_SUFFIXES,
    STREAM_SNPS,
    Cohort,
    encode_bed,
    snp_table,
    write_cohort,
)
from bayeslmm.errors import InputError
from bayeslmm.io.plink import BED_MAGIC

N, M = 2002, 300  # N not a multiple of 4: the last byte of each SNP is padded


def _standardized(G: np.ndarray) -> np.ndarray:
    return (G - G.mean(0)) / G.std(0)


def _to_bed(path, G, samples, snps, y):
    """bed-reader's writer, as `bayeslmm simulate` used it before it wrote .bed bytes itself."""
    n = len(samples)
    to_bed(
        path,
        G,
        properties={
            "fid": samples,
            "iid": samples,
            "father": ["0"] * n,
            "mother": ["0"] * n,
            "sex": [0] * n,
            "pheno": np.asarray(y).astype(str),
            "chromosome": snps["chrom"].to_numpy(),
            "sid": snps["snp"].to_numpy(),
            "cm_position": snps["cm"].to_numpy(),
            "bp_position": snps["pos"].to_numpy(),
            "allele_1": snps["a1"].to_numpy(),
            "allele_2": snps["a2"].to_numpy(),
        },
    )


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("stream") / "cohort"
    cohort = bl.simulate(
        N,
        M,
        0.6,
        n_covariates=2,
        n_populations=3,
        fst=0.1,
        n_chromosomes=4,
        population_effect=0.3,
        seed=5,
        out=prefix,
    )
    return prefix, cohort


@pytest.mark.parametrize("n", [13, 14, 15, 16])
def test_encode_bed__equals_bed_reader_bytes_and_reads_back(tmp_path, n):
    rng = np.random.default_rng(n)
    G = rng.integers(0, 3, size=(n, 70)).astype(float)
    G[rng.random(G.shape) < 0.1] = np.nan
    snps = snp_table(70, 2)
    samples = simulation.sample_names(n)
    _to_bed(tmp_path / "ref.bed", G, samples, snps, np.zeros(n))
    codes = np.where(np.isnan(G), -1, G).astype(np.int8).T
    for name, counts in [("int8", codes), ("float", G.T), ("int64", codes.astype(np.int64))]:
        body = encode_bed(counts)
        assert BED_MAGIC + body == (tmp_path / "ref.bed").read_bytes(), name
    (tmp_path / "ours.bed").write_bytes(BED_MAGIC + encode_bed(codes))
    for ext in (".bim", ".fam"):
        (tmp_path / f"ours{ext}").write_bytes((tmp_path / f"ref{ext}").read_bytes())
    back = open_bed(tmp_path / "ours.bed").read(dtype="float64")
    np.testing.assert_array_equal(back, G)
    np.testing.assert_array_equal(bl.read_plink(tmp_path / "ours").read(), G)


def test_encode_bed__refuses_a_vector():
    with pytest.raises(InputError, match="must be 2-D"):
        encode_bed(np.zeros(5, dtype=np.int8))


def test_write_cohort__same_plink_files_as_bed_reader(tmp_path):
    data = bl.simulate(301, 150, 0.5, n_covariates=1, n_chromosomes=3, seed=2)
    paths = write_cohort(data, tmp_path / "ours")
    assert sorted(paths) == sorted(COHORT_SUFFIXES)
    _to_bed(tmp_path / "ref.bed", data.G, data.samples, data.snps, data.y)
    for ext in (".bed", ".bim", ".fam"):
        assert paths[ext].read_bytes() == (tmp_path / f"ref{ext}").read_bytes(), ext
    with pytest.raises(InputError, match="exists and would be overwritten"):
        write_cohort(data, tmp_path / "ours")
    write_cohort(data, tmp_path / "ours", overwrite=True)


def test_simulate_out__files_read_back_and_match_the_cohort(streamed):
    prefix, cohort = streamed
    assert isinstance(cohort, Cohort)
    assert cohort.files == {
        sfx: type(cohort.files[".bed"])(f"{prefix}{sfx}") for sfx in COHORT_SUFFIXES
    }
    assert not list(prefix.parent.glob(".*tmp"))
    G = open_bed(f"{prefix}.bed").read(dtype="float64")
    genotypes = cohort.genotypes()
    assert genotypes.shape == (N, M)
    np.testing.assert_array_equal(genotypes.read(), G)
    assert set(np.unique(G)) == {0.0, 1.0, 2.0}
    assert (G.std(axis=0) > 0).all()
    # the SNP table, samples and populations of the in-memory cohort
    expected = snp_table(M, 4)
    pd.testing.assert_frame_equal(cohort.snps, expected)
    bim = genotypes.snps
    assert bim["snp"].tolist() == expected["snp"].tolist()
    assert bim["chrom"].astype(int).tolist() == expected["chrom"].astype(int).tolist()
    assert bim["pos"].tolist() == expected["pos"].tolist()
    np.testing.assert_array_equal(genotypes.samples, simulation.sample_names(N))
    np.testing.assert_array_equal(cohort.populations, np.sort(np.arange(N) % 3))
    # truth: u = W[:, causal] b with W standardized from the file's genotypes
    truth = cohort.truth
    u = _standardized(G)[:, truth["causal"]] @ truth["effects"]
    np.testing.assert_allclose(truth["u"], u, rtol=0, atol=1e-10)
    fixed = truth["beta"][0] + cohort.X @ truth["beta"][1:] + truth["population_shift"]
    noise = cohort.y - fixed - u
    assert abs(noise.var() - 0.4) < 0.05
    # tables
    pheno = pd.read_csv(f"{prefix}.pheno.tsv", sep="\t")
    assert list(pheno.columns) == ["FID", "IID", "y"]
    np.testing.assert_array_equal(pheno["y"].to_numpy(), cohort.y)
    np.testing.assert_array_equal(genotypes.fam["phenotype"].to_numpy(), cohort.y)
    covar = pd.read_csv(f"{prefix}.covar.tsv", sep="\t")
    assert list(covar.columns) == ["FID", "IID", "cov1", "cov2"]
    np.testing.assert_array_equal(covar[["cov1", "cov2"]].to_numpy(), cohort.X)
    pd.testing.assert_series_equal(
        cohort.phenotype(), pd.Series(cohort.y, cohort.samples, name="y")
    )
    assert cohort.covariates().shape == (N, 2)
    record = json.loads((prefix.parent / "cohort.truth.json").read_text())
    assert (
        record["seed"] == 5 and record["h2"] == 0.6 and record["generator"].startswith("streamed")
    )
    assert record["causal"] == truth["causal"].tolist()


def test_simulate_out__truth_has_the_keys_of_the_in_memory_truth(tmp_path):
    data = bl.simulate(40, 30, 0.3, n_covariates=1, seed=2)
    write_cohort(data, tmp_path / "mem")
    bl.simulate(40, 30, 0.3, n_covariates=1, seed=2, out=tmp_path / "str")
    mem = json.loads((tmp_path / "mem.truth.json").read_text())
    ours = json.loads((tmp_path / "str.truth.json").read_text())
    assert mem.keys() == ours.keys()
    assert mem["generator"] == "in_memory"
    for key in ("h2", "sigma_g2", "sigma_e2", "fst", "seed"):
        assert mem[key] == ours[key]
    assert len(ours["population_shift"]) == 40 and len(ours["beta"]) == 2


def test_simulate_out__same_seed_same_files(tmp_path):
    args = (203, 2 * STREAM_SNPS + 7, 0.5)
    options = {"n_covariates": 1, "n_populations": 2, "n_chromosomes": 2}
    for name in ("a", "b"):
        bl.simulate(*args, **options, seed=9, out=tmp_path / name)
    bl.simulate(*args, **options, seed=10, out=tmp_path / "c")
    for sfx in COHORT_SUFFIXES:
        assert (tmp_path / f"a{sfx}").read_bytes() == (tmp_path / f"b{sfx}").read_bytes(), sfx
    assert (tmp_path / "a.bed").read_bytes() != (tmp_path / "c.bed").read_bytes()


def test_simulate_out__seed_none_is_recorded_and_reproduces(tmp_path):
    first = bl.simulate(50, 70, 0.5, out=tmp_path / "a")
    seed = json.loads((tmp_path / "a.truth.json").read_text())["seed"]
    assert isinstance(seed, int) and first.truth["seed"] == seed
    bl.simulate(50, 70, 0.5, seed=seed, out=tmp_path / "b")
    assert (tmp_path / "a.bed").read_bytes() == (tmp_path / "b.bed").read_bytes()
    assert (tmp_path / "a.pheno.tsv").read_text() == (tmp_path / "b.pheno.tsv").read_text()


def test_simulate_out__agrees_in_distribution_with_in_memory(tmp_path):
    # same model, other draws: allele frequencies, divergence between the populations,
    # the genetic variance and the REML estimate agree with the in-memory cohort's
    options = {"n_covariates": 1, "n_populations": 2, "fst": 0.1, "seed": 21}
    n, m, h2 = 2000, 1000, 0.5
    held = bl.simulate(n, m, h2, **options)
    cohort = bl.simulate(n, m, h2, **options, out=tmp_path / "s")
    G = cohort.genotypes().read()
    pops = cohort.populations
    freq = {"held": held.G.mean(0) / 2, "streamed": G.mean(0) / 2}
    assert stats.ks_2samp(freq["held"], freq["streamed"]).pvalue > 1e-3

    def hudson_fst(G):  # between the two populations, ratio of averages
        p1, p2 = G[pops == 0].mean(0) / 2, G[pops == 1].mean(0) / 2
        n1, n2 = 2 * (pops == 0).sum(), 2 * (pops == 1).sum()
        num = (p1 - p2) ** 2 - p1 * (1 - p1) / (n1 - 1) - p2 * (1 - p2) / (n2 - 1)
        den = p1 * (1 - p2) + p2 * (1 - p1)
        return num.sum() / den.sum()

    f_held, f_streamed = hudson_fst(held.G), hudson_fst(G)
    # two populations drawn from the ancestor with F each: E(p1 - p2)² = 2F·p(1 - p) and
    # E[p1(1 - p2) + p2(1 - p1)] = 2p(1 - p), so Hudson's F_ST between them is ≈ F
    assert abs(f_held - f_streamed) < 0.02
    assert abs(f_streamed - 0.1) < 0.02
    for u in (held.truth["u"], cohort.truth["u"]):  # within populations: ≈ h²(1 - F)
        within = u - pd.Series(u).groupby(pops).transform("mean").to_numpy()
        assert abs(within.var() - h2 * 0.9) < 0.1
    for y, X, K in ((held.y, held.X, held.K), (cohort.y, cohort.X, None)):
        if K is None:
            W = _standardized(G)
            K = W @ W.T / m
        fit = bl.reml(y, K, X)
        assert abs(fit.h2 - h2) < 4 * fit.h2_se


def test_simulate_out__memory_does_not_grow_with_the_snps(tmp_path):
    # peak traced memory: the buffers of one 64-SNP block (N × 64 × 6 bytes), O(N) vectors and
    # the tables; an in-memory cohort of 2,000 × 4,096 would hold 65 MB in G alone
    n = 2000
    peaks = {}
    for m in (256, 4096):
        tracemalloc.start()
        bl.simulate(n, m, 0.5, n_causal=m // 2, seed=1, out=tmp_path / f"m{m}")
        peaks[m] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[4096] < 8e6, peaks
    assert peaks[4096] - peaks[256] < 2e6, peaks


def test_simulate_out__every_snp_polymorphic_in_a_tiny_cohort(tmp_path):
    cohort = bl.simulate(8, 500, 0.5, seed=3, out=tmp_path / "t")
    G = cohort.genotypes().read()
    assert (G.std(axis=0) > 0).all()


def test_simulate_out__refuses_existing_files_then_replaces_them(tmp_path):
    bl.simulate(30, 40, 0.5, seed=1, out=tmp_path / "c")
    before = (tmp_path / "c.bed").read_bytes()
    with pytest.raises(InputError, match="exists and would be overwritten.*overwrite=True"):
        bl.simulate(30, 40, 0.5, seed=2, out=tmp_path / "c")
    assert (tmp_path / "c.bed").read_bytes() == before
    bl.simulate(30, 40, 0.5, seed=2, out=tmp_path / "c", overwrite=True)
    assert (tmp_path / "c.bed").read_bytes() != before


def test_simulate_out__interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(counts):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return encode_bed(counts)

    monkeypatch.setattr(simulation, "encode_bed", failing)
    with pytest.raises(KeyboardInterrupt):
        bl.simulate(30, 3 * STREAM_SNPS, 0.5, seed=1, out=tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"h2": 1.5}, "h2 must lie in"),
        ({"n_chromosomes": 0}, "n_chromosomes must be at least 1"),
        ({"out": "folder/"}, "not a usable prefix"),
    ],
)
def test_simulate_out__bad_arguments_write_nothing(tmp_path, monkeypatch, kwargs, message):
    monkeypatch.chdir(tmp_path)
    arguments = {"h2": 0.5, "seed": 1, "out": "c"} | kwargs
    with pytest.raises(InputError, match=message):
        bl.simulate(30, 40, **arguments)
    assert list(tmp_path.iterdir()) == []


SIM = ["--n-samples", "90", "--n-snps", "130", "--n-chromosomes", "2", "--seed", "4"]


def test_cli_simulate__stream_writes_the_same_kind_of_files(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "s"), *SIM, "--stream"]) == 0
    assert "streamed in blocks of 64 SNPs" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"s{x}" for x in COHORT_SUFFIXES)
    G = bl.read_plink(tmp_path / "s").read()
    assert G.shape == (90, 130)
    truth = json.loads((tmp_path / "s.truth.json").read_text())
    assert truth["generator"].startswith("streamed") and truth["seed"] == 4
    covar = pd.read_csv(tmp_path / "s.covar.tsv", sep="\t")
    assert list(covar.columns) == ["FID", "IID", "cov1", "cov2"]
    # the same files as the library call
    bl.simulate(90, 130, 0.5, n_covariates=2, n_chromosomes=2, seed=4, out=tmp_path / "lib")
    for sfx in COHORT_SUFFIXES:
        assert (tmp_path / f"s{sfx}").read_bytes() == (tmp_path / f"lib{sfx}").read_bytes()


def test_cli_simulate__no_stream_is_the_in_memory_cohort(tmp_path):
    assert main(["simulate", "--out", str(tmp_path / "m"), *SIM, "--no-stream"]) == 0
    data = bl.simulate(90, 130, 0.5, n_covariates=2, n_chromosomes=2, seed=4)
    _to_bed(tmp_path / "ref.bed", data.G, data.samples, data.snps, data.y)
    for ext in (".bed", ".bim", ".fam"):
        assert (tmp_path / f"m{ext}").read_bytes() == (tmp_path / f"ref{ext}").read_bytes()
    truth = json.loads((tmp_path / "m.truth.json").read_text())
    assert truth["generator"] == "in_memory"


def test_cli_simulate__streams_by_default_above_the_memory_threshold(tmp_path, monkeypatch):
    assert cli_simulate.in_memory_bytes(100_000, 5_000) > cli_simulate.STREAM_ABOVE
    assert cli_simulate.in_memory_bytes(1_000, 5_000) < cli_simulate.STREAM_ABOVE
    assert main(["simulate", "--out", str(tmp_path / "small"), *SIM]) == 0
    monkeypatch.setattr(cli_simulate, "STREAM_ABOVE", 1000)
    assert main(["simulate", "--out", str(tmp_path / "big"), *SIM]) == 0
    generator = {
        name: json.loads((tmp_path / f"{name}.truth.json").read_text())["generator"]
        for name in ("small", "big")
    }
    assert generator["small"] == "in_memory" and generator["big"].startswith("streamed")


def test_cli_simulate__stream_force(tmp_path, capsys):
    prefix = str(tmp_path / "c")
    assert main(["simulate", "--out", prefix, *SIM, "--stream"]) == 0
    before = (tmp_path / "c.bed").read_bytes()
    assert main(["simulate", "--out", prefix, *SIM[:-1], "5", "--stream"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "c.bed").read_bytes() == before
    assert main(["simulate", "--out", prefix, *SIM[:-1], "5", "--stream", "--force"]) == 0
    assert (tmp_path / "c.bed").read_bytes() != before
