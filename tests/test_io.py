"""Readers and writers on small files, including malformed ones and random (hypothesis) ones."""

import gzip
import re

import numpy as np
import pandas as pd
import pytest
from bed_reader import to_bed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayeslmm as bl
from bayeslmm.errors import InputError
from bayeslmm.io import (
    bimbam_text,
    check_dosages,
    read_bimbam,
    read_grm,
    read_plink,
    read_table,
    write_grm,
)
from bayeslmm.io.bimbam_text import one_delimiter, parse_arrow, parse_calls, parse_exact, parse_fast


def _write_plink(prefix, G, iids=None, chrom=None):
    n, m = G.shape
    iids = iids if iids is not None else [f"s{i}" for i in range(n)]
    chrom = chrom if chrom is not None else ["1"] * m
    to_bed(
        f"{prefix}.bed",
        G,
        properties={
            "fid": iids,
            "iid": iids,
            "sid": [f"rs{j}" for j in range(m)],
            "chromosome": chrom,
            "bp_position": list(range(1, m + 1)),
            "allele_1": ["A"] * m,
            "allele_2": ["G"] * m,
        },
    )
    return str(prefix)


@pytest.fixture
def plink(tmp_path, rng):
    G = rng.binomial(2, 0.3, size=(11, 7)).astype(float)
    G[2, 3] = np.nan
    return _write_plink(tmp_path / "toy", G), G


def test_read_plink__values_samples_snps(plink):
    prefix, G = plink
    g = read_plink(prefix)
    assert g.shape == (11, 7)
    np.testing.assert_array_equal(g.read(), G)
    np.testing.assert_array_equal(g.read(snps=[6, 0], samples=slice(2, 5)), G[2:5][:, [6, 0]])
    assert list(g.samples[:2]) == ["s0", "s1"]
    assert list(g.snps.columns) == ["chrom", "snp", "cm", "pos", "a1", "a2"]
    blocks = list(g.chunks(chunk_size=3))
    assert [b[0].tolist() for b in blocks] == [[0, 1, 2], [3, 4, 5], [6]]
    np.testing.assert_array_equal(np.hstack([b[1] for b in blocks]), G)


def test_read_plink__missing_file(tmp_path):
    with pytest.raises(InputError, match="incomplete: .*nothing.bed, .*nothing.fam not found"):
        read_plink(tmp_path / "nothing")


def test_read_plink__truncated_bed(plink):
    prefix, _ = plink
    data = open(f"{prefix}.bed", "rb").read()
    open(f"{prefix}.bed", "wb").write(data[:-2])
    with pytest.raises(InputError, match=r"bytes but 11 samples \(.fam\) × 7 SNPs"):
        read_plink(prefix)


def test_read_plink__wrong_magic(plink):
    prefix, _ = plink
    data = bytearray(open(f"{prefix}.bed", "rb").read())
    data[0] = 0x00
    open(f"{prefix}.bed", "wb").write(bytes(data))
    with pytest.raises(InputError, match="not a PLINK 1 .bed file"):
        read_plink(prefix)


def test_read_plink__fam_count_disagrees(plink):
    prefix, _ = plink
    lines = open(f"{prefix}.fam").read().splitlines()
    open(f"{prefix}.fam", "w").write("\n".join(lines[:-4]) + "\n")  # 11 -> 7 samples: 2 bytes/SNP
    with pytest.raises(InputError, match="do not belong to this .bed|truncated"):
        read_plink(prefix)


def test_read_plink__bim_count_disagrees(plink):
    prefix, _ = plink
    lines = open(f"{prefix}.bim").read().splitlines()
    open(f"{prefix}.bim", "w").write("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError, match="6 SNPs"):
        read_plink(prefix)


def test_read_plink__duplicate_iids(tmp_path, rng):
    G = rng.binomial(2, 0.3, size=(4, 3)).astype(float)
    prefix = _write_plink(tmp_path / "dup", G, iids=["a", "b", "a", "c"])
    with pytest.raises(InputError, match=r"duplicated sample IDs \(IID\) \['a'\]"):
        read_plink(prefix)


def test_read_bimbam__matches_and_annotates(tmp_path):
    text = "rs1, A, T, 0, 1.5, 2\nrs2 G C NA 0.2 1\n"
    path = tmp_path / "geno.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    (tmp_path / "anno.txt").write_text("rs1 100 3\nrs2 250 4\n")
    g = read_bimbam(path, anno=tmp_path / "anno.txt", samples=["x", "y", "z"])
    np.testing.assert_array_equal(g.read(), [[0, np.nan], [1.5, 0.2], [2, 1]])
    assert list(g.snps["pos"]) == [100, 250] and list(g.snps["chrom"]) == ["3", "4"]
    assert list(g.samples) == ["x", "y", "z"]


def test_read_bimbam__ragged_line(tmp_path):
    (tmp_path / "g.txt").write_text("rs1 A T 0 1 2\nrs2 A T 0 1\n")
    with pytest.raises(InputError, match="line 2 \\(SNP rs2\\) has 2 genotypes"):
        read_bimbam(tmp_path / "g.txt")


def test_read_table__plink_without_header(tmp_path):
    (tmp_path / "p.txt").write_text("f1 a 1.5 -9\nf2 b NA 3\nf3 c 2 4\n")
    t = read_table(tmp_path / "p.txt")
    assert list(t.index) == ["a", "b", "c"] and list(t.columns) == ["V1", "V2"]
    assert np.isnan(t.loc["a", "V2"]) and np.isnan(t.loc["b", "V1"])


def test_read_table__csv_with_categorical(tmp_path):
    (tmp_path / "c.csv").write_text("id,age,site\nx,30,north\ny,,south\nz,41,east\nw,50,NA\n")
    t = read_table(tmp_path / "c.csv", id_column="id")
    assert list(t.columns) == ["age", "site[north]", "site[south]"]
    assert t.attrs["baselines"] == {"site": "east"}
    assert np.isnan(t.loc["y", "age"]) and np.isnan(t.loc["w", "site[north]"])
    assert t.loc["x", "site[north]"] == 1.0 and t.loc["z", "site[south]"] == 0.0


def test_read_table__non_numeric_phenotype_names_line(tmp_path):
    (tmp_path / "p.tsv").write_text("FID\tIID\theight\n1\ta\t1.7\n2\tb\ttall\n")
    with pytest.raises(InputError, match="column 'height' is not numeric: line 3 has 'tall'"):
        read_table(tmp_path / "p.tsv", numeric=True)


def test_read_table__duplicate_ids_and_missing_column(tmp_path):
    (tmp_path / "d.tsv").write_text("FID\tIID\th\n1\ta\t1\n2\ta\t2\n")
    with pytest.raises(InputError, match=r"duplicated sample IDs \['a'\]"):
        read_table(tmp_path / "d.tsv")
    (tmp_path / "e.tsv").write_text("FID\tIID\th\n1\ta\t1\n2\tb\t2\n")
    with pytest.raises(InputError, match=r"no column\(s\) \['height'\]"):
        read_table(tmp_path / "e.tsv", columns=["height"])


def test_grm__round_trip_is_bit_exact(tmp_path, rng):
    A = rng.normal(size=(9, 20))
    K = (A @ A.T / 20).astype(np.float32).astype(float)
    write_grm(K, tmp_path / "k", samples=[f"i{j}" for j in range(9)], n_snps=20)
    first = (tmp_path / "k.grm.bin").read_bytes()
    back = read_grm(tmp_path / "k")
    np.testing.assert_array_equal(back.matrix, K)
    assert back.n_snps == 20 and list(back.samples) == [f"i{j}" for j in range(9)]
    write_grm(back, tmp_path / "k2")
    assert (tmp_path / "k2.grm.bin").read_bytes() == first
    assert (tmp_path / "k2.grm.id").read_text() == (tmp_path / "k.grm.id").read_text()
    assert (tmp_path / "k2.grm.N.bin").read_bytes() == (tmp_path / "k.grm.N.bin").read_bytes()


def test_grm__id_and_bin_disagree(tmp_path):
    write_grm(np.eye(4), tmp_path / "k")
    (tmp_path / "k.grm.id").write_text("1\t1\n2\t2\n3\t3\n")
    with pytest.raises(InputError, match="lists 3 samples.*do not belong together"):
        read_grm(tmp_path / "k")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 9),
    m=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    missing=st.floats(0, 0.5),
)
def test_read_plink__random_files_round_trip(tmp_path_factory, n, m, seed, missing):
    rng = np.random.default_rng(seed)
    G = rng.integers(0, 3, size=(n, m)).astype(float)
    G[rng.uniform(size=(n, m)) < missing] = np.nan
    prefix = _write_plink(tmp_path_factory.mktemp("h") / "r", G)
    g = read_plink(prefix)
    np.testing.assert_array_equal(g.read(), G)
    j = rng.integers(0, m)
    np.testing.assert_array_equal(g.read(snps=[j]), G[:, [j]])


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(None)), min_size=1, max_size=12
    )
)
def test_read_table__random_columns_round_trip(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("t") / "t.tsv"
    ids = [f"id{i}" for i in range(len(values))]
    lines = ["FID\tIID\tv"] + [
        f"{i}\t{i}\t{'NA' if v is None else repr(v)}" for i, v in zip(ids, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    t = read_table(path)
    expected = np.array([np.nan if v is None or v == -9 else v for v in values], dtype=float)
    np.testing.assert_array_equal(t["v"].to_numpy(), expected)
    assert list(t.index) == ids


def test_public_names_exist():
    for name in ("read_plink", "read_bimbam", "read_table", "read_grm", "write_grm", "kinship"):
        assert callable(getattr(bl, name))
    assert isinstance(pd.DataFrame(), pd.DataFrame)


# ---- issue 10, point 3: input reading that never guesses silently ------------------------------


@pytest.mark.parametrize("token", [".", "N/A", "NULL", "?"])
def test_read_table__stray_token_in_numeric_column_is_an_error(tmp_path, token):
    # before: the whole column became dozens of indicator columns, silently
    ages = [str(20 + i) for i in range(30)]
    ages[7] = token
    lines = ["FID\tIID\tage"] + [f"f{i}\ts{i}\t{a}" for i, a in enumerate(ages)]
    (tmp_path / "c.tsv").write_text("\n".join(lines) + "\n")
    pattern = rf"c\.tsv: column 'age' is not numeric: line 9 has '{re.escape(token)}'.*NA"
    with pytest.raises(InputError, match=pattern):
        read_table(tmp_path / "c.tsv")
    t = read_table(tmp_path / "c.tsv", missing=(*bl.io.MISSING, token))  # the way out
    assert list(t.columns) == ["age"] and np.isnan(t.loc["s7", "age"])


def test_read_table__categorical_only_when_asked_or_text(tmp_path):
    (tmp_path / "c.tsv").write_text(
        "IID\tbatch\tsite\tage\na\t1\tnorth\t30\nb\t2\tsouth\t-9.0\nc\t3\t7\tNaN\nd\t1\tnorth\t41\n"
    )
    t = read_table(tmp_path / "c.tsv", categorical=["batch"])
    # batch: numeric but asked for; site: 3 of 4 values are text, so text (the '7' is a level)
    assert list(t.columns) == ["batch[2]", "batch[3]", "site[north]", "site[south]", "age"]
    assert t.attrs["baselines"] == {"batch": "1", "site": "7"}
    assert np.isnan(t.loc["b", "age"]) and np.isnan(t.loc["c", "age"])  # -9.0 and NaN: missing


def test_read_table__numeric_column_names_are_a_header(tmp_path):
    (tmp_path / "years.csv").write_text("person,2019,2020\np1,1.5,2\np2,3,4\n")
    t = read_table(tmp_path / "years.csv")
    assert list(t.index) == ["p1", "p2"] and list(t.columns) == ["2019", "2020"]
    (tmp_path / "fid.txt").write_text("FID IID 1 2 3\nf a 1 2 3\ng b 4 5 6\n")
    t = read_table(tmp_path / "fid.txt")
    assert list(t.index) == ["a", "b"] and list(t.columns) == ["1", "2", "3"]
    (tmp_path / "plain.txt").write_text("f a 1 2 3\ng b 4 5 6\n")
    assert list(read_table(tmp_path / "plain.txt").index) == ["a", "b"]
    forced = read_table(tmp_path / "plain.txt", header=True, columns=["1", "2", "3"])
    assert list(forced.index) == ["g"] and list(forced.columns) == ["1", "2", "3"]


def test_read_table__gzip_detected_by_content(tmp_path):
    text = "FID\tIID\ty\n1\ta\t1.5\n2\tb\tNA\n"
    with gzip.open(tmp_path / "pheno.txt", "wt") as handle:  # gzipped, no .gz suffix
        handle.write(text)
    (tmp_path / "plain.txt.gz").write_text(text)  # a .gz suffix on plain text
    for name in ("pheno.txt", "plain.txt.gz"):
        t = read_table(tmp_path / name)
        assert list(t.index) == ["a", "b"] and t.loc["a", "y"] == 1.5 and np.isnan(t.loc["b", "y"])


def test_read_plink__ids_verbatim_and_fam_phenotype_missing_codes(tmp_path, rng):
    prefix = _write_plink(tmp_path / "p", rng.binomial(2, 0.3, size=(4, 3)).astype(float))
    (tmp_path / "p.fam").write_text(
        "NA NA 0 0 1 NA\nf2 null 0 0 2 -9.0\nf3 s3 0 0 1 2.5\nf4 s4 0 0 1 .\n"
    )
    (tmp_path / "p.bim").write_text(
        "".join(f"{c}\trs{j}\t0\t{j + 1}\tA\tG\n" for j, c in enumerate(["chr1", "X", "chrMT"]))
    )
    with pytest.warns(bl.DataWarning, match=r"p\.fam, line 4: phenotype '\.' .*read as missing"):
        g = read_plink(prefix)
    assert list(g.samples) == ["NA", "null", "s3", "s4"]  # IDs are never missing codes
    np.testing.assert_array_equal(g.fam["phenotype"], [np.nan, np.nan, 2.5, np.nan])
    assert list(g.snps["chrom"]) == ["1", "23", "26"]


def test_normalize_chromosomes__plink_codes():
    codes = ["chr1", "1", "01", "X", "chrX", "23", "y", "XY", "PAR1", "MT", "M", "chrM", "0"]
    out = bl.io.normalize_chromosomes(codes + ["chrUn_gl000220", "scaffold_7"])
    assert list(out) == [
        "1",
        "1",
        "1",
        "23",
        "23",
        "23",
        "24",
        "25",
        "25",
        "26",
        "26",
        "26",
        "0",
    ] + [
        "chrUn_gl000220",
        "scaffold_7",
    ]


@pytest.mark.parametrize("token", [".", "N/A", "?"])
def test_read_bimbam__stray_token_names_line_snp_and_value(tmp_path, token):
    (tmp_path / "g.txt").write_text(f"rs1, A, T, 0, 1, 2\nrs2, A, T, 0, {token}, 1\n")
    pattern = (
        rf"line 2 \(SNP rs2\): genotypes must be numbers or NA; genotype 2 is '{re.escape(token)}'"
    )
    with pytest.raises(InputError, match=pattern):
        read_bimbam(tmp_path / "g.txt")


def test_read_bimbam__fast_parser_equals_reference(tmp_path, rng):
    G = np.round(rng.uniform(0, 2, size=(40, 25)), 3)
    G[rng.uniform(size=G.shape) < 0.1] = np.nan
    tokens = np.where(np.isnan(G), "NA", G.astype(str))
    tokens[0, 0], tokens[1, 1], tokens[2, 2] = "-9", "nan", "-9.0"
    G[0, 0] = G[1, 1] = G[2, 2] = np.nan
    lines = [f"rsNA{j}, A, NA, " + ", ".join(tokens[:, j]) for j in range(25)]
    lines[3] = lines[3].replace(", ", "\t")  # whitespace-separated lines mix with commas
    path = tmp_path / "g.bimbam"  # gzip by content, not by suffix
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n\n")
    (tmp_path / "anno.txt").write_text(
        "".join(f"rsNA{j} {j + 1} chr{j % 3 + 1} 0\n" for j in range(25))
    )
    g = read_bimbam(path, anno=tmp_path / "anno.txt")
    np.testing.assert_array_equal(g.read(), G)
    np.testing.assert_array_equal(g.read(snps=[4, 2], samples=[3, 0]), G[np.ix_([3, 0], [4, 2])])
    assert list(g.snps["snp"][:2]) == ["rsNA0", "rsNA1"] and set(g.snps["a2"]) == {"NA"}
    assert list(g.snps["chrom"][:4]) == ["1", "2", "3", "1"]


def test_read_grm__ids_verbatim(tmp_path):
    write_grm(np.eye(2), tmp_path / "k", samples=["NA", "x"])
    assert list(read_grm(tmp_path / "k").samples) == ["NA", "x"]


# ---- issue 10: the fast BIMBAM parser, the one dosage check ------------------------------------

#: Dosage tokens: numbers as writers spell them, missing codes, and what the exact parser refuses
#: or reads differently from C parsers ("1_0" and Arabic-Indic "١" are numbers to float()).
NUMBERS = [
    "0",
    "1",
    "2",
    "0.5",
    "1.",
    ".25",
    "1e-1",
    "1.9999999999999999",
    "0.1000000000000000055511",
]
MISSING_CODES = ["NA", "na", "NaN", "nan", "-9", "-9.0", "NAN", "-nan"]
ODD = [".", "x", "1_0", "nan(1)", "0x1", "\u0661", "1.5.3", "N/A", "inf", "-0", "+1", "3"]
#: Between two fields: commas and whitespace in any mix ("," at a line end: a trailing comma).
GAPS = [", ", ",", " ", "\t", " , ", ",  ", " \t", ",,", "\x0b"]


def _bimbam_text(draw, n, m, tokens, gaps, names):
    lines = []
    for _ in range(m):
        fields = [draw(names), draw(st.sampled_from(["A", "G", "NA", "1"])), "T"]
        fields += [draw(tokens) for _ in range(n)]
        line = fields[0]
        for field in fields[1:]:
            line += draw(gaps) + field
        lines.append(
            draw(st.sampled_from(["", " ", ","])) + line + draw(st.sampled_from(["", " ", ","]))
        )
        if draw(st.booleans()) and draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", " ", "\t"])))  # a blank line
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return (end.join(lines) + draw(st.sampled_from(["", end]))).encode()


@st.composite
def bimbam_bytes(draw):
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    weights = draw(st.sampled_from(["clean", "missing", "odd"]))
    pool = (
        NUMBERS + (MISSING_CODES if weights != "clean" else []) + (ODD if weights == "odd" else [])
    )
    layout = draw(st.sampled_from(["gemma", "tabs", "mixed"]))
    gaps = {"gemma": [", "], "tabs": ["\t"], "mixed": GAPS}[layout]
    names = st.sampled_from(["rs1", "NA", "rs(2)", "snp\u00e9", "9", "x\u00a0y", "a\x1cb"])
    return _bimbam_text(draw, n, m, st.sampled_from(pool), st.sampled_from(gaps), names)


def _same_lines(a, b):
    assert (a.snps, a.a1, a.a2) == (b.snps, b.a1, b.a2)
    assert a.dosages.shape == b.dosages.shape
    np.testing.assert_array_equal(a.dosages, b.dosages)  # NaN where NaN, bit-equal numbers
    assert (np.signbit(a.dosages) == np.signbit(b.dosages)).all()


def _engines(data):
    """What parse_fast returns, then what each engine returns on each layout (when it applies)."""
    yield "parse_fast", parse_fast(data)
    if data.isascii() and b"nan(" not in data.lower():  # (parse_fast leaves those to exact)
        for text, delimiter in one_delimiter(data):
            yield f"parse_calls {delimiter!r}", parse_calls(text, delimiter)
            yield f"parse_arrow {delimiter!r}", parse_arrow(text, delimiter)


@settings(max_examples=300, deadline=None)
@given(data=bimbam_bytes())
def test_bimbam_parsers__equal_exact_or_decline(data):
    try:
        exact = parse_exact(data, "g.txt")
    except InputError:
        exact = None
    for name, lines in _engines(data):
        if exact is None:
            assert lines is None, name  # a file the exact parser refuses goes to it, to be named
        elif lines is not None:
            _same_lines(lines, exact)


def test_bimbam_parsers__take_the_common_layouts(rng):
    digits = rng.integers(0, 18, size=(30, 8))  # up to 17 significant digits, "2" to "1.2e-05"
    tokens = np.array(
        [
            [f"{x:.{d}g}" for x, d in zip(row, ds, strict=True)]
            for row, ds in zip(rng.uniform(0, 2, size=(30, 8)) ** 3 / 4, digits, strict=True)
        ]
    )
    tokens[rng.uniform(size=tokens.shape) < 0.1] = "NA"
    tokens[0, 0], tokens[1, 1], tokens[2, 2] = "-9", "nan", "-9.0"
    calls = rng.integers(0, 3, size=tokens.shape).astype(str)  # hard calls, a few dosages
    calls[3, 4], calls[5, 6], calls[7, 7] = "NA", "0.5", "-9"
    for gap, end in [(", ", "\n"), (",", "\r\n"), ("\t", "\n"), (" ", "\n"), ("  ", "\n")]:
        for table in (tokens, calls):
            text = "".join(
                f"rs{j}{gap}A{gap}G{gap}" + gap.join(t) + end for j, t in enumerate(table)
            )
            for trailing in ("", "rs99, C, T" + ", 1" * 8 + ",\n"):  # a trailing comma
                data = (text + trailing).encode()
                exact = parse_exact(data, "g.txt")
                for name, lines in _engines(data):
                    # only the comma layout refuses the trailing comma (an empty field)
                    assert lines is not None or (trailing and name.endswith("','")), (name, gap)
                    if lines is not None:
                        _same_lines(lines, exact)


def test_bimbam_parse_calls__leaves_dosage_files_to_arrow(monkeypatch, rng):
    tokens = np.round(rng.uniform(0, 2, size=(20, 10)), 3).astype(str)
    data = "".join(f"rs{j} A G " + " ".join(t) + "\n" for j, t in enumerate(tokens)).encode()
    assert parse_calls(data, " ") is not None  # 200 dosages: fewer than CALLS_MIN
    monkeypatch.setattr(bimbam_text, "CALLS_MIN", 50)
    assert parse_calls(data, " ") is None
    _same_lines(parse_fast(data), parse_exact(data, "g.txt"))


def test_bimbam_parsers__decline_a_merge_the_comma_layout_would_make():
    # a space that follows no comma separates fields too: deleting it would read "01" and "10"
    data = b"rs1,A,G,0 1,2\nrs2,A,G,1,1 0\n"
    exact = parse_exact(data, "g.txt")
    np.testing.assert_array_equal(exact.dosages, [[0, 1, 2], [1, 1, 0]])
    assert [delimiter for _, delimiter in one_delimiter(data)] == [" "]
    _same_lines(parse_fast(data), exact)
    # an empty allele field would shift every dosage: no comma layout either
    data = b"rs1,,1,2,0 1,2\n"
    assert [delimiter for _, delimiter in one_delimiter(data)] == [" "]
    _same_lines(parse_fast(data), parse_exact(data, "g.txt"))


def test_bimbam_parsers__many_blocks_and_a_long_line(monkeypatch, rng):
    monkeypatch.setattr(bimbam_text, "ARROW_BLOCK", 1)  # blocks of 16 first lines
    monkeypatch.setattr(bimbam_text, "CALLS_BLOCK", 1)  # blocks of one line
    G = rng.integers(0, 3, size=(200, 7)).astype(str)
    G[150, :3] = "1.00000000000000000000000001"  # a line 10× longer than the first
    data = "".join(f"rs{j}, A, G, " + ", ".join(G[j]) + "\n" for j in range(200)).encode()
    exact = parse_exact(data, "g.txt")
    for name, lines in _engines(data):
        assert lines is not None or name.startswith("parse_arrow"), name
        if lines is not None:  # (Arrow may find the long line straddling two blocks: declined)
            _same_lines(lines, exact)


def test_read_bimbam__bad_token_far_down_is_named_by_the_exact_parser(tmp_path, rng):
    G = rng.integers(0, 3, size=(500, 40)).astype(str)
    G[417, 33] = "0,5"  # a decimal comma: one field too many
    G[480, 2] = "?"
    lines = [f"rs{j}, A, G, " + ", ".join(G[j]) for j in range(500)]
    with gzip.open(tmp_path / "g.txt", "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 418 \(SNP rs417\) has 41 genotypes; the first"):
        read_bimbam(tmp_path / "g.txt")
    G[417, 33] = "0.5"
    lines = [f"rs{j}, A, G, " + ", ".join(G[j]) for j in range(500)]
    (tmp_path / "g.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 481 \(SNP rs480\): .*genotype 3 is '\?'"):
        read_bimbam(tmp_path / "g.txt")


def test_read_bimbam__bgzip_members_and_blocks_returned_writable(tmp_path):
    # bgzip (tabix) writes many gzip members; every one is read
    parts = [b"rs1, A, T, 0, 1, 2\n", b"rs2, G, C, NA, 0.25, 1\n"]
    (tmp_path / "g.txt.gz").write_bytes(b"".join(gzip.compress(p) for p in parts))
    g = read_bimbam(tmp_path / "g.txt.gz")
    block = g.read()
    np.testing.assert_array_equal(block, [[0, np.nan], [1, 0.25], [2, 1]])
    assert block.flags.writeable and list(g.snps["snp"]) == ["rs1", "rs2"]


def test_check_dosages__names_snp_sample_value_count_and_the_way_out():
    G = np.zeros((4, 3))
    G[0, 2] = np.inf
    G[3, 1] = -0.5  # first in SNP order: SNP 2 comes before SNP 3
    G[1, 0] = np.nan
    G[2, 0] = 2 + 1e-7  # within the tolerance
    with pytest.raises(InputError) as err:
        check_dosages(G)
    assert str(err.value) == (
        "genotypes must be allele counts or dosages in 0..2 (NaN = missing); 2 values are not, "
        "the first -0.5 at sample 4, SNP 2. Set missing calls (-9, 3) to NaN; pass standardized "
        "genotypes to bl.snp_model, not here."
    )
    with pytest.raises(
        InputError,
        match=r"^g\.txt: .* 2 values are not, the first -0\.5 at sample 4, SNP 2 \(SNP rs2 has "
        r"genotype 4 = -0\.5, outside 0\.\.2\)\. Rescale\.$",
    ):
        check_dosages(G, "g.txt", snps=["rs1", "rs2", "rs3"], fix="Rescale.")
    G[3, 1], G[0, 2] = 0, 2
    check_dosages(G)  # passes
    check_dosages(np.full((2, 2), np.nan))  # all missing: nothing to check
    check_dosages(np.empty((0, 3)))


def test_check_dosages__one_rule_for_arrays_and_files(tmp_path):
    # kinship of an array and read_bimbam of a file refuse the same value with the same words
    G = np.array([[0.0, 1.0], [2.5, 1.0]])
    with pytest.raises(
        InputError, match=r"^genotypes must be .* the first 2\.5 at sample 2, SNP 1"
    ):
        bl.kinship(G)
    (tmp_path / "g.txt").write_text("rs1, A, T, 0, 2.5\nrs2, A, T, 1, 1\n")
    with pytest.raises(
        InputError,
        match=r"g\.txt: genotypes must be .* the first 2\.5 at sample 2, SNP 1 \(SNP rs1",
    ):
        read_bimbam(tmp_path / "g.txt")
