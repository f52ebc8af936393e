"""A catalogue of hostile inputs, through the API and the CLI (issue 10).

Each case is one row: an input that a real user could bring, built in ``tmp_path``, and its
expected outcome — a correct answer checked against an independent computation, a typed error
(:mod:`bayeslmm.errors`) whose message names the problem and the way out, or a typed warning.
No case may end in a raw traceback from NumPy, pandas or PyMC, emit a warning that is not
bayeslmm's own, or lose an output that existed before it.

The table in ``docs/hostile_inputs.md`` is generated from these rows
(``.venv/bin/python tests/test_hostile.py`` rewrites it) and a test checks that the two agree.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import bayeslmm as bl
from bayeslmm.cli.main import main
from bayeslmm.errors import BayeslmmWarning, DataWarning, InputError, KinshipWarning

DOC = Path(__file__).resolve().parents[1] / "docs" / "hostile_inputs.md"
N = 40


# --------------------------------------------------------------------------------------------
# outcomes


@dataclass(frozen=True)
class Raises:
    """A typed error whose message matches ``match`` (the problem and the way out)."""

    exc: type[Exception]
    match: str

    def describe(self) -> str:
        return f"`{self.exc.__name__}` /{self.match}/"


@dataclass(frozen=True)
class Warns:
    """A typed warning whose message matches ``match``; ``check`` then tests the result."""

    warning: type[Warning]
    match: str
    check: Callable[[Any, Env], None] | None = None

    def describe(self) -> str:
        extra = " and a correct answer" if self.check else ""
        return f"`{self.warning.__name__}` /{self.match}/{extra}"


@dataclass(frozen=True)
class Correct:
    """No error and no warning; ``check(result, env)`` compares with an independent answer."""

    check: Callable[[Any, Env], None]

    def describe(self) -> str:
        return "correct answer"


@dataclass(frozen=True)
class CliFails:
    """The CLI returns 2 with ``match`` on stderr; ``check(tmp_path)`` then tests the files."""

    match: str
    check: Callable[[Path], None] | None = None

    def describe(self) -> str:
        return f"exit 2, stderr /{self.match}/"


@dataclass(frozen=True)
class Case:
    id: str
    input: str
    expected: str
    run: Callable[[Path, Env], Any]
    outcome: Raises | Warns | Correct | CliFails
    marks: tuple = field(default=())


@dataclass
class Env:
    """Shared inputs: a small simulated cohort in memory and the same cohort on disk."""

    data: Any
    files: Path  # folder holding sim.bed/.bim/.fam/.pheno.tsv/.covar.tsv and sim.grm.*
    ids: np.ndarray
    fit: Any  # bl.reml(y, K, X) on the clean inputs

    @property
    def y(self) -> np.ndarray:
        return self.data.y.copy()

    @property
    def K(self) -> np.ndarray:
        return self.data.K.copy()

    @property
    def X(self) -> np.ndarray:
        return self.data.X.copy()

    def series(self) -> pd.Series:
        return pd.Series(self.y, index=pd.Index(self.ids, name="iid"), name="y")

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.K, index=self.ids, columns=self.ids)

    def copy_files(self, tmp: Path) -> Path:
        """A private copy of the on-disk cohort; returns the prefix tmp/sim."""
        for path in self.files.iterdir():
            shutil.copy(path, tmp / path.name)
        return tmp / "sim"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    data = bl.simulate(N, 120, 0.5, n_covariates=1, seed=7)
    files = tmp_path_factory.mktemp("cohort")
    rc, err = cli(
        "simulate",
        "--out",
        files / "sim",
        "--n-samples",
        N,
        "--n-snps",
        200,
        "--n-chromosomes",
        2,
        "--seed",
        1,
    )
    assert rc == 0, err
    g = bl.read_plink(files / "sim")
    bl.write_grm(bl.kinship(g), files / "sim")
    return Env(
        data=data,
        files=files,
        ids=np.asarray(data.samples).astype(str),
        fit=bl.reml(data.y, data.K, data.X),
    )


def cli(*argv: Any) -> tuple[int, str]:
    """Run ``bayeslmm`` in process: (return code, stderr); argparse's exit is a return code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code
    return rc, err.getvalue()


# --------------------------------------------------------------------------------------------
# checkers


def same_fit(fit: Any, env: Env, *, rtol: float = 1e-6) -> None:
    """h² and its SE equal to the clean fit's."""
    np.testing.assert_allclose(fit.h2, env.fit.h2, rtol=rtol, atol=1e-8)
    np.testing.assert_allclose(fit.h2_se, env.fit.h2_se, rtol=1e-4, atol=1e-8)


def subset_fit(keep: slice | np.ndarray) -> Callable[[Any, Env], None]:
    """Equal to the fit on hand-aligned arrays restricted to ``keep``."""

    def check(fit: Any, env: Env) -> None:
        idx = np.arange(N)[keep]
        ref = bl.reml(env.y[idx], env.K[np.ix_(idx, idx)], env.X[idx])
        assert fit.n == idx.size
        np.testing.assert_allclose(fit.h2, ref.h2, rtol=1e-6, atol=1e-8)

    return check


def table_values(expected: dict[str, list[float]], ids: list[str]) -> Callable[[Any, Env], None]:
    def check(table: pd.DataFrame, env: Env) -> None:
        assert list(table.index.astype(str)) == ids
        for col, values in expected.items():
            np.testing.assert_allclose(table[col].to_numpy(dtype=float), values)

    return check


def no_file(*names: str) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        for name in names:
            assert not (tmp / name).exists(), f"{name} was written"

    return check


def unchanged(name: str, text: str) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert (tmp / name).read_text() == text, f"{name} was changed"

    return check


# --------------------------------------------------------------------------------------------
# builders


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


PHENO = "FID IID y age\nA a 1.5 30\nB b 2.5 41\nC c 0.5 52\n"


def with_y(tmp: Path, env: Env, values: Any, **kw: Any) -> Any:
    return bl.reml(values, env.K, env.X, **kw)


def nan_at(values: np.ndarray, where: Any) -> np.ndarray:
    values = values.astype(float)
    values[where] = np.nan
    return values


def K_with(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path, Env], Any]:
    def run(tmp: Path, env: Env) -> Any:
        return bl.reml(env.y, change(env.K), env.X)

    return run


def set_entry(K: np.ndarray, value: float, sym: bool = True) -> np.ndarray:
    K[0, 1] = value
    if sym:
        K[1, 0] = value
    return K


def negative_eigen(K: np.ndarray) -> np.ndarray:
    s, U = np.linalg.eigh(K)
    s[:3] = -0.05 * s.max()
    return (U * s) @ U.T


def model(tmp: Path, env: Env, **kw: Any) -> Any:
    return bl.kinship_model(env.y, env.K, env.X, **kw)


def fake_fit(samples: list[str], y: np.ndarray, seed: int) -> xr.DataTree:
    """A DataTree as bl.sample writes it (sample-space log_likelihood and observed y)."""
    rng = np.random.default_rng(seed)
    ll = rng.normal(-1.0, 0.1, size=(2, 50, len(samples)))
    coords = {"sample": samples}
    tree = xr.DataTree()
    tree["posterior"] = xr.DataTree(
        xr.Dataset({"h2": (("chain", "draw"), rng.uniform(size=(2, 50)))})
    )
    tree["log_likelihood"] = xr.DataTree(
        xr.Dataset({"y": (("chain", "draw", "sample"), ll)}, coords=coords)
    )
    tree["observed_data"] = xr.DataTree(xr.Dataset({"y": (("sample",), y)}, coords=coords))
    return tree


def compare_different_samples(tmp: Path, env: Env) -> Any:
    a = fake_fit([f"s{i}" for i in range(10)], np.arange(10.0), 1)
    b = fake_fit([f"s{i}" for i in range(1, 11)], np.arange(1.0, 11.0), 2)
    return bl.compare({"a": a, "b": b})


def liability_reference(h2: float, k: float, p: float) -> float:
    z = stats.norm.pdf(stats.norm.isf(k))
    return h2 * k**2 * (1 - k) ** 2 / (z**2 * p * (1 - p))


def check_liability(result: Any, env: Env) -> None:
    np.testing.assert_allclose(
        float(np.asarray(result)), liability_reference(0.2, 0.01, 0.5), rtol=1e-10
    )


def genotypes(env: Env, change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return change(env.data.G.astype(float).copy())


def scan_G(change: Callable[[np.ndarray], np.ndarray], **kw: Any) -> Callable[[Path, Env], Any]:
    def run(tmp: Path, env: Env) -> Any:
        return bl.scan(genotypes(env, change), env.y, K=env.K, X=env.X, loco=False, **kw)

    return run


def column(j: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(G: np.ndarray) -> np.ndarray:
        G[:, j] = value
        return G

    return change


def nan_stats(j: int) -> Callable[[pd.DataFrame, Env], None]:
    def check(table: pd.DataFrame, env: Env) -> None:
        assert np.isnan(table["p_wald"].iloc[j]) and np.isnan(table["beta"].iloc[j])
        others = table.drop(index=table.index[j])
        assert np.isfinite(others["p_wald"]).all()

    return check


def check_centered_imputed(kin: Any, env: Env) -> None:
    G = env.data.G.astype(float)
    G[0, 0] = np.nan
    G[1:4, 5] = np.nan
    means = np.nanmean(G, axis=0)
    G = np.where(np.isnan(G), means, G) - means
    ref = G @ G.T / G.shape[1]
    np.testing.assert_allclose(kin.matrix, ref, rtol=1e-10, atol=1e-12)


def bimbam(
    tmp: Path,
    name: str,
    rows: list[str],
    *,
    gz: bool = False,
    crlf: bool = False,
    bom: bool = False,
) -> Path:
    text = ("\r\n" if crlf else "\n").join(rows) + ("\r\n" if crlf else "\n")
    data = text.encode()
    if bom:
        data = b"\xef\xbb\xbf" + data
    if gz:
        data = gzip.compress(data)
    return write(tmp, name, data)


BIMBAM = ["rs1, A, T, 0, 1, 2", "rs2, C, G, 2, 1.5, 0.5"]


def check_bimbam(g: Any, env: Env) -> None:
    np.testing.assert_allclose(g.read(), [[0, 2], [1, 1.5], [2, 0.5]])
    assert list(g.snps["snp"]) == ["rs1", "rs2"]


def grm_prefix(tmp: Path, env: Env) -> Path:
    return env.copy_files(tmp)


def edit(path: Path, change: Callable[[str], str]) -> None:
    path.write_text(change(path.read_text()))


def plink_with(change: Callable[[Path], None]) -> Callable[[Path, Env], Any]:
    def run(tmp: Path, env: Env) -> Any:
        prefix = env.copy_files(tmp)
        change(prefix)
        return bl.read_plink(prefix)

    return run


def grm_with(change: Callable[[Path], None]) -> Callable[[Path, Env], Any]:
    def run(tmp: Path, env: Env) -> Any:
        prefix = env.copy_files(tmp)
        change(prefix)
        return bl.read_grm(prefix)

    return run


def bim_chroms(codes: list[str]) -> Callable[[Path], None]:
    def change(prefix: Path) -> None:
        path = prefix.with_suffix(".bim")
        lines = path.read_text().splitlines()
        lines = [
            "\t".join([codes[i % len(codes)], *line.split("\t")[1:]])
            for i, line in enumerate(lines)
        ]
        path.write_text("\n".join(lines) + "\n")

    return change


def check_chroms(g: Any, env: Env) -> None:
    assert set(g.snps["chrom"]) == {"1", "23", "26"}


def truncate(suffix: str, keep: int) -> Callable[[Path], None]:
    def change(prefix: Path) -> None:
        path = Path(f"{prefix}{suffix}")
        path.write_bytes(path.read_bytes()[:keep])

    return change


def drop_last_line(suffix: str) -> Callable[[Path], None]:
    def change(prefix: Path) -> None:
        path = Path(f"{prefix}{suffix}")
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:-1]) + "\n")

    return change


def cli_run(*argv: Any, files: bool = True) -> Callable[[Path, Env], Any]:
    """Run the CLI in tmp with a private copy of the cohort; ``{p}`` is the cohort prefix."""

    def run(tmp: Path, env: Env) -> Any:
        prefix = env.copy_files(tmp) if files else tmp / "sim"
        return cli(*[str(a).format(p=prefix, t=tmp) for a in argv])

    return run


def cli_after(prepare: Callable[[Path, Path], None], *argv: Any) -> Callable[[Path, Env], Any]:
    def run(tmp: Path, env: Env) -> Any:
        prefix = env.copy_files(tmp)
        prepare(tmp, prefix)
        return cli(*[str(a).format(p=prefix, t=tmp) for a in argv])

    return run


def check_cli_ok(match: str, *files: str) -> Callable[[Any, Env], None]:
    def check(result: tuple[int, str], env: Env) -> None:
        rc, err = result
        assert rc == 0, err
        assert re.search(match, err), err

    return check


def dotted_prefix(tmp: Path, env: Env) -> list[str]:
    """simulate --out runs/cohort.1: the files written under runs/."""
    (tmp / "runs").mkdir()
    rc, err = cli("simulate", "--out", tmp / "runs" / "cohort.1", "--n-samples", 20, "--n-snps", 30)
    assert rc == 0, err
    return sorted(p.name for p in (tmp / "runs").iterdir())


def check_dotted_prefix(names: list[str], env: Env) -> None:
    suffixes = ["bed", "bim", "covar.tsv", "fam", "pheno.tsv", "truth.json"]
    assert names == [f"cohort.1.{s}" for s in suffixes], names


def resume_after_change(tmp: Path, env: Env) -> Any:
    """A CLI scan interrupted after one chunk, then the .bed changed (same size), then --resume."""
    from bayeslmm.gwas import scanner as gwas

    prefix = env.copy_files(tmp)
    argv = [
        "scan",
        "--bfile",
        prefix,
        "--pheno",
        f"{prefix}.pheno.tsv",
        "--no-loco",
        "--chunk-size",
        50,
        "--out",
        tmp / "scan.tsv",
        "--quiet",
    ]
    original, calls = gwas._chunk_table, []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gwas, "_chunk_table", interrupted)
        rc, err = cli(*argv)
    assert rc == 130 and "--resume" in err, err
    bed = Path(f"{prefix}.bed")
    data = bytearray(bed.read_bytes())
    data[10] ^= 0xFF
    bed.write_bytes(bytes(data))
    return cli(*argv, "--resume")


def read_only_out(tmp: Path, env: Env) -> Any:
    """reml --out into a folder that os.access reports read-only (root may write anywhere)."""
    prefix = env.copy_files(tmp)
    folder = tmp / "ro"
    folder.mkdir()
    real = os.access
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p) != folder)
        return cli("reml", "--grm", prefix, "--pheno", f"{prefix}.pheno.tsv", "--out", folder / "r")


# --------------------------------------------------------------------------------------------
# the catalogue


def _y_shift(tmp: Path, env: Env) -> Any:
    return bl.reml(env.y + 1e6, env.K, env.X)


CASES: list[Case] = [
    # ---- phenotype -----------------------------------------------------------------------
    Case(
        "y-large-mean",
        "phenotype in raw units: y + 1e6",
        "same h² and SE as y",
        _y_shift,
        Correct(same_fit),
    ),
    Case(
        "y-tiny-scale",
        "phenotype in tiny units: 1e-6·y",
        "same h² and SE as y",
        lambda t, e: bl.reml(1e-6 * e.y, e.K, e.X),
        Correct(same_fit),
    ),
    Case(
        "y-constant",
        "constant phenotype",
        "error: y is constant",
        lambda t, e: bl.reml(np.full(N, 3.0), e.K, e.X),
        Raises(InputError, "constant"),
    ),
    Case(
        "y-all-missing",
        "phenotype all NaN",
        "error: no samples left",
        lambda t, e: bl.reml(np.full(N, np.nan), e.K, e.X),
        Raises(InputError, r"only 0 samples remain after .*removing missing values"),
    ),
    Case(
        "y-inf",
        "phenotype with +inf",
        "error naming the position",
        lambda t, e: bl.reml(np.r_[np.inf, e.y[1:]], e.K, e.X),
        Raises(InputError, r"infinite values at positions \[0\]"),
    ),
    Case(
        "y-some-nan",
        "phenotype with 3 NaN",
        "DataWarning (3 dropped), fit of the rest",
        lambda t, e: bl.reml(nan_at(e.y, [0, 5, 9]), e.K, e.X),
        Warns(DataWarning, "dropped 3", subset_fit(np.setdiff1d(np.arange(N), [0, 5, 9]))),
    ),
    Case(
        "y-2d-column",
        "y as an (N, 1) array",
        "same fit as the 1-D y",
        lambda t, e: bl.reml(e.y[:, None], e.K, e.X),
        Correct(same_fit),
    ),
    Case(
        "y-2d-two-columns",
        "y as an (N, 2) array of one trait twice",
        "several traits (multi-trait REML): error, the traits are linearly dependent",
        lambda t, e: bl.reml(np.c_[e.y, e.y], e.K, e.X),
        Raises(InputError, r"linearly dependent"),
    ),
    Case(
        "y-bool",
        "y of booleans",
        "fit of y as 0/1",
        lambda t, e: bl.reml(e.y > 0, e.K, e.X),
        Correct(
            lambda f, e: np.testing.assert_allclose(
                f.h2, bl.reml((e.y > 0).astype(float), e.K, e.X).h2, rtol=1e-10
            )
        ),
    ),
    Case(
        "y-numeric-strings",
        "y as an array of numeric strings ('1.25')",
        "fit of the numbers",
        lambda t, e: bl.reml(e.y.astype(str), e.K, e.X),
        Correct(lambda f, e: same_fit(f, e, rtol=1e-6)),
    ),
    Case(
        "y-text-strings",
        "y as strings with a '.' among numbers",
        "error: not numbers",
        lambda t, e: bl.reml(np.r_[["."], e.y[1:].astype(str)], e.K, e.X),
        Raises(InputError, r"y could not be read as numbers"),
    ),
    Case(
        "y-text-series",
        "y as a pandas Series of dtype object/str",
        "error: not numeric",
        lambda t, e: bl.reml(e.series().astype(str), e.frame(), None),
        Raises(InputError, r"not numeric .*convert it to numbers"),
    ),
    Case(
        "y-short",
        "y one sample shorter than K",
        "error: aligned by position",
        lambda t, e: bl.reml(e.y[:-1], e.K, e.X),
        Raises(InputError, "aligned by position"),
    ),
    Case(
        "y-duplicate-ids",
        "y indexed by IDs with a duplicate",
        "error naming the duplicate",
        lambda t, e: bl.reml(e.series().set_axis([*e.ids[:-1], e.ids[0]]), e.frame()),
        Raises(InputError, r"y has duplicated sample IDs \['id1'\].*remove or rename"),
    ),
    Case(
        "y-ids-disjoint",
        "y and K share no sample ID",
        "error: no samples in common",
        lambda t, e: bl.reml(e.series().set_axis([f"x{i}" for i in range(N)]), e.frame()),
        Raises(InputError, r"no sample ID is shared by y, X and the genetic matrix; check"),
    ),
    Case(
        "y-ids-shuffled",
        "y indexed by IDs in another order than K",
        "same fit as aligned",
        lambda t, e: bl.reml(e.series().iloc[::-1], e.frame(), pd.DataFrame(e.X, index=e.ids)),
        Correct(same_fit),
    ),
    Case(
        "y-ids-partial",
        "y covers 30 of the 40 samples of K",
        "DataWarning, fit on the 30",
        lambda t, e: bl.reml(e.series().iloc[:30], e.frame(), pd.DataFrame(e.X, index=e.ids)),
        Warns(DataWarning, r"dropped 10", subset_fit(slice(0, 30))),
    ),
    Case(
        "y-range-index-vs-array",
        "y a Series with default 0..N-1 index, K a plain array",
        "read by position, like the array: same fit",
        lambda t, e: bl.reml(pd.Series(e.y), e.K, e.X),
        Correct(same_fit),
    ),
    # ---- kinship ---------------------------------------------------------------------------
    Case(
        "K-nan",
        "K with a NaN",
        "error naming the entry",
        K_with(lambda K: set_entry(K, np.nan)),
        Raises(InputError, r"NaN or infinite"),
    ),
    Case(
        "K-inf",
        "K with +inf",
        "error naming the entry",
        K_with(lambda K: set_entry(K, np.inf)),
        Raises(InputError, r"NaN or infinite"),
    ),
    Case(
        "K-asymmetric",
        "K not symmetric",
        "error: not symmetric, check the order",
        K_with(lambda K: set_entry(K, 0.9, sym=False)),
        Raises(InputError, "not symmetric"),
    ),
    Case(
        "K-wrong-size",
        "K of size N+1",
        "error: y has N rows, K has N+1 samples",
        lambda t, e: bl.reml(e.y, np.eye(N + 1), e.X),
        Raises(InputError, rf"y has {N} rows but K has {N + 1} samples.*aligned by position"),
    ),
    Case(
        "K-not-square",
        "K of shape (N, N-1)",
        "error: square",
        lambda t, e: bl.reml(e.y, e.K[:, :-1], e.X),
        Raises(InputError, "square"),
    ),
    Case(
        "K-negative-eigen",
        "K with negative eigenvalues",
        "KinshipWarning, clipped",
        K_with(negative_eigen),
        Warns(KinshipWarning, r"not positive semi-definite: 3 eigenvalues are negative"),
    ),
    Case(
        "K-frame-ids-differ",
        "K DataFrame whose row and column IDs differ",
        "error: index both by the same IDs",
        lambda t, e: bl.reml(e.series(), e.frame().set_axis([f"x{i}" for i in range(N)], axis=1)),
        Raises(InputError, r"row and column labels differ"),
    ),
    Case(
        "K-frame-shuffled",
        "K DataFrame with rows and columns permuted together",
        "same fit",
        lambda t, e: bl.reml(
            e.series(), e.frame().iloc[::-1, ::-1], pd.DataFrame(e.X, index=e.ids)
        ),
        Correct(same_fit),
    ),
    Case(
        "K-frame-duplicate-ids",
        "K DataFrame with a duplicated sample ID",
        "error naming the duplicate",
        lambda t, e: bl.reml(
            e.series(),
            e.frame()
            .set_axis([*e.ids[:-1], e.ids[0]], axis=0)
            .set_axis([*e.ids[:-1], e.ids[0]], axis=1),
        ),
        Raises(InputError, r"K has duplicated sample IDs \['id1'\].*remove or rename"),
    ),
    Case(
        "K-zero",
        "K all zeros",
        "error: K has no variance",
        lambda t, e: bl.reml(e.y, np.zeros((N, N)), e.X),
        Raises(InputError, r"K has mean diagonal 0"),
    ),
    Case(
        "K-identity",
        "K = I (h² not identifiable)",
        "KinshipWarning, identifiable False",
        lambda t, e: bl.reml(e.y, np.eye(N), e.X),
        Warns(
            KinshipWarning,
            r"multiple of I|identif",
            lambda f, e: (_ for _ in ()).throw(AssertionError) if f.identifiable else None,
        ),
    ),
    Case(
        "K-strings",
        "K as an array of text",
        "error: not a numeric matrix",
        lambda t, e: bl.reml(e.y, np.full((N, N), "a"), e.X),
        Raises(InputError, r"numeric matrix"),
    ),
    # ---- covariates --------------------------------------------------------------------------
    Case(
        "X-constant-column",
        "X holding a column of ones (the intercept twice)",
        "same fit as X without it",
        lambda t, e: bl.reml(e.y, e.K, np.c_[np.ones(N), e.X]),
        Correct(same_fit),
    ),
    Case(
        "X-collinear",
        "X with two collinear columns",
        "error naming both",
        lambda t, e: bl.reml(e.y, e.K, pd.DataFrame({"age": e.X[:, 0], "age2": 2 * e.X[:, 0]})),
        Raises(InputError, r"\['age', 'age2'\] are collinear"),
    ),
    Case(
        "X-wide",
        "more covariates than samples",
        "error: too many covariates",
        lambda t, e: bl.reml(e.y, e.K, np.random.default_rng(0).normal(size=(N, N + 5))),
        Raises(InputError, rf"{N} samples cannot support {N + 5} covariates"),
    ),
    Case(
        "X-short",
        "X one row short",
        "error: X has N-1 rows",
        lambda t, e: bl.reml(e.y, e.K, e.X[:-1]),
        Raises(InputError, f"X has {N - 1} rows"),
    ),
    Case(
        "X-nan",
        "a covariate with 2 NaN",
        "DataWarning (2 dropped), fit of the rest",
        lambda t, e: bl.reml(e.y, e.K, nan_at(e.X, ([1, 2], [0, 0]))),
        Warns(DataWarning, "dropped 2", subset_fit(np.setdiff1d(np.arange(N), [1, 2]))),
    ),
    Case(
        "X-text-column",
        "a covariate column of text",
        "error: encode it",
        lambda t, e: bl.reml(e.y, e.K, pd.DataFrame({"batch": ["a", "b"] * (N // 2)})),
        Raises(InputError, r"covariate 'batch' is not numeric.*indicator"),
    ),
    Case(
        "X-3d",
        "X as a 3-D array",
        "error: 2-D",
        lambda t, e: bl.reml(e.y, e.K, np.ones((N, 2, 2))),
        Raises(InputError, "2-D"),
    ),
    Case(
        "X-covariate-large-offset",
        "a covariate 1e6 + age",
        "same h² as with age",
        lambda t, e: bl.reml(e.y, e.K, e.X + 1e6),
        Correct(same_fit),
    ),
    # ---- arguments --------------------------------------------------------------------------
    Case(
        "reml-method",
        "reml(method='REML ')",
        "error listing the methods",
        lambda t, e: bl.reml(e.y, e.K, e.X, method="REML "),
        Raises(InputError, r"method must be 'reml' or 'ml', got 'REML '"),
    ),
    Case(
        "reml-grid-size-0",
        "reml(grid_size=0)",
        "error: grid_size",
        lambda t, e: bl.reml(e.y, e.K, e.X, grid_size=0),
        Raises(InputError, r"grid_size must be an integer of at least 3"),
    ),
    Case(
        "prior-outside-support",
        "h2 prior Beta(alpha=-1)",
        "error naming the prior",
        lambda t, e: model(t, e, priors={"h2": bl.Prior("Beta", alpha=-1.0, beta=1.0)}),
        Raises(InputError, r"the prior for 'h2' .*cannot be built"),
    ),
    Case(
        "prior-unknown-name",
        "priors={'heritability': ...}",
        "error listing known names",
        lambda t, e: model(t, e, priors={"heritability": bl.Prior("Beta", alpha=1, beta=1)}),
        Raises(InputError, r"unknown prior\(s\) \['heritability'\].*allowed"),
    ),
    Case(
        "prior-unknown-preset",
        "priors='weakly'",
        "error listing the presets",
        lambda t, e: model(t, e, priors="weakly"),
        Raises(InputError, r"priors must be a dict, 'default' or 'flat', got 'weakly'"),
    ),
    Case(
        "prior-unknown-distribution",
        "Prior('Gaussian')",
        "error: not a PyMC distribution",
        lambda t, e: bl.Prior("Gaussian", mu=0),
        Raises(InputError, r"'Gaussian' is not a PyMC distribution; use"),
    ),
    Case(
        "sample-draws-0",
        "sample(draws=0)",
        "error before sampling",
        lambda t, e: bl.sample(model(t, e), draws=0),
        Raises(InputError, r"draws must be a positive integer, got 0"),
    ),
    Case(
        "sample-chains-0",
        "sample(chains=0)",
        "error before sampling",
        lambda t, e: bl.sample(model(t, e), chains=0),
        Raises(InputError, r"chains must be a positive integer, got 0"),
    ),
    Case(
        "sample-cores-0",
        "sample(cores=0)",
        "error before sampling (was: chains in turn, silently)",
        lambda t, e: bl.sample(model(t, e), cores=0),
        Raises(InputError, r"cores must be a positive integer, got 0"),
    ),
    Case(
        "sample-draws-string",
        "sample(draws='1000')",
        "error: an integer",
        lambda t, e: bl.sample(model(t, e), draws="1000"),
        Raises(InputError, r"draws must be a positive integer, got '1000'"),
    ),
    Case(
        "sample-sampler-unknown",
        "sample(sampler='stan')",
        "error listing samplers",
        lambda t, e: bl.sample(model(t, e), sampler="stan"),
        Raises(InputError, r"sampler must be one of .*got 'stan'"),
    ),
    Case(
        "sample-target-accept-exact-sampler",
        "sample(sampler='gibbs', target_accept=0.95)",
        "error: no step size to tune",
        lambda t, e: bl.sample(model(t, e), sampler="gibbs", target_accept=0.95),
        Raises(InputError, r"target_accept is a setting of NUTS; sampler='gibbs'"),
    ),
    Case(
        "sample-horseshoe-target-accept",
        "sample(a horseshoe model, target_accept=0.95)",
        "error: its default sampler is exact (Gibbs); the way to NUTS",
        lambda t, e: bl.sample(
            bl.snp_model(e.y, e.data.G, e.X, marginalize=False, prior="horseshoe"),
            target_accept=0.95,
        ),
        Raises(
            InputError,
            r"target_accept is a setting of NUTS; sampler='gibbs' \(this model's default\)"
            r".*'nutpie'",
        ),
    ),
    Case(
        "sample-not-a-model",
        "sample(a dict)",
        "error: pass a bayeslmm model",
        lambda t, e: bl.sample({"y": 1}),
        Raises(InputError, r"not built by bayeslmm\.kinship_model or bayeslmm\.snp_model"),
    ),
    Case(
        "map-not-a-model",
        "map_estimate(a RemlFit)",
        "error: pass a bayeslmm model",
        lambda t, e: bl.map_estimate(e.fit),
        Raises(InputError, r"not built by bayeslmm\.kinship_model or bayeslmm\.snp_model"),
    ),
    Case(
        "kinship-model-family",
        "kinship_model(family='poisson')",
        "error listing families",
        lambda t, e: model(t, e, family="poisson"),
        Raises(InputError, r"family must be 'gaussian' or 'probit', got 'poisson'"),
    ),
    Case(
        "snp-model-W-short",
        "snp_model with W one row short",
        "error: rows",
        lambda t, e: bl.snp_model(e.y, e.data.W[:-1], e.X),
        Raises(InputError, rf"y has {N} rows but W has {N - 1} samples.*aligned by position"),
    ),
    Case(
        "snp-model-W-nan",
        "snp_model with a NaN genotype",
        "DataWarning: mean-imputed; finite logp",
        lambda t, e: bl.snp_model(e.y, nan_at(e.data.G, (0, 0)), e.X),
        Warns(
            DataWarning,
            r"1 missing genotype calls in 1 SNPs were imputed by the SNP mean",
            lambda m, e: np.testing.assert_array_equal(
                np.isfinite(list(m.point_logps().values())), True
            ),
        ),
    ),
    # ---- genotypes and scans -----------------------------------------------------------------
    Case(
        "scan-monomorphic-snp",
        "a SNP with the same genotype in every sample",
        "NaN statistics for it, the others tested",
        scan_G(column(3, 1.0)),
        Correct(nan_stats(3)),
    ),
    Case(
        "scan-all-missing-snp",
        "a SNP missing in every sample",
        "NaN statistics for it, the others tested",
        scan_G(column(4, np.nan)),
        Correct(nan_stats(4)),
    ),
    Case(
        "scan-genotype-out-of-range",
        "an allele count of 3",
        "error: outside 0..2",
        scan_G(lambda G: set_entry(G, 3.0, sym=False)),
        Raises(InputError, r"allele counts or dosages in 0\.\.2.*the first 3 at sample 1, SNP 2"),
    ),
    Case(
        "scan-genotype-minus-9",
        "a genotype array with -9 for missing calls",
        "error: set missing calls to NaN",
        scan_G(lambda G: set_entry(G, -9.0, sym=False)),
        Raises(InputError, r"allele counts or dosages in 0\.\.2.*-9.*Set missing calls .* to NaN"),
    ),
    Case(
        "kinship-genotype-out-of-range",
        "kinship of standardized genotypes (negative values)",
        "error: allele counts in 0..2",
        lambda t, e: bl.kinship(e.data.W),
        Raises(InputError, r"allele counts or dosages in 0\.\.2"),
    ),
    Case(
        "scan-loco-one-chromosome",
        "scan(loco=True) of one chromosome",
        "DataWarning: LOCO cannot apply",
        lambda t, e: bl.scan(bl.read_plink(drop_chrom2(t, e)), e.series(), loco=True),
        Warns(DataWarning, r"LOCO"),
    ),
    Case(
        "scan-K-not-covering",
        "scan with K covering 30 of the 40 genotyped samples",
        "error: K has no row for 10 samples; build K on the genotyped samples",
        lambda t, e: bl.scan(
            bl.read_plink(e.copy_files(t)),
            bl.read_table(f"{t}/sim.pheno.tsv")["y"],
            K=pd.DataFrame(
                np.eye(30) + 0.1,
                index=[f"id{i}" for i in range(1, 31)],
                columns=[f"id{i}" for i in range(1, 31)],
            ),
            loco=False,
        ),
        Raises(InputError, r"K has no row for 10 analysed samples.*build K on the same"),
    ),
    Case(
        "kinship-non-autosomal-only",
        "kinship of a fileset whose SNPs are all on X",
        "error: autosomes only by default; autosomes_only=False",
        lambda t, e: bl.kinship(bl.read_plink(chroms(t, e, ["X"]))),
        Raises(InputError, r"all 200 SNPs are on X, .*pass autosomes_only=False"),
    ),
    Case(
        "scan-chr-prefix-mixed",
        ".bim mixing 'chr1' and '1' (one chromosome), scan with LOCO",
        "one chromosome: DataWarning that LOCO cannot apply",
        lambda t, e: bl.scan(
            bl.read_plink(chroms(t, e, ["chr1", "1"])),
            bl.read_table(f"{t}/sim.pheno.tsv")["y"],
            progress=False,
        ),
        Warns(DataWarning, r"LOCO cannot apply: all on chromosome 1"),
    ),
    Case(
        "scan-chunk-size-0",
        "scan(chunk_size=0)",
        "error: chunk_size must be positive",
        lambda t, e: bl.scan(e.data.G, e.y, K=e.K, loco=False, chunk_size=0),
        Raises(InputError, "chunk_size must be positive, got 0"),
    ),
    Case(
        "scan-out-is-directory",
        "scan(out=an existing folder)",
        "error before the work",
        lambda t, e: bl.scan(e.data.G, e.y, K=e.K, loco=False, out=t),
        Raises(InputError, r"is an existing directory, not a file; give a file name inside"),
    ),
    Case(
        "kinship-nan-genotypes",
        "genotypes with missing calls",
        "mean-imputed centered K",
        lambda t, e: bl.kinship(nan_at(e.data.G, ([0, 1, 2, 3], [0, 5, 5, 5])), method="centered"),
        Correct(check_centered_imputed),
    ),
    Case(
        "kinship-method-unknown",
        "kinship(method='vanraden')",
        "error listing methods",
        lambda t, e: bl.kinship(e.data.G, method="vanraden"),
        Raises(InputError, "unknown kinship method 'vanraden'; choose one of"),
    ),
    Case(
        "kinship-maf-above-half",
        "kinship(maf=0.7)",
        "error: maf in [0, 0.5]",
        lambda t, e: bl.kinship(e.data.G, maf=0.7),
        Raises(InputError, r"maf must lie in \[0, 0\.5\), got 0\.7"),
    ),
    Case(
        "kinship-all-monomorphic",
        "genotypes with no variable SNP",
        "error: no SNPs left",
        lambda t, e: bl.kinship(np.ones((N, 20))),
        Raises(InputError, r"no SNP passed quality control.*'monomorphic': 20.*relax"),
    ),
    Case(
        "pcs-too-many",
        "pcs(n=N+10)",
        "error: at most N-1",
        lambda t, e: bl.pcs(e.data.G, N + 10),
        Raises(InputError, rf"asked for {N + 10} principal components .*ask for at most {N - 1}"),
    ),
    Case(
        "pcs-zero",
        "pcs(n=0)",
        "error: n ≥ 1",
        lambda t, e: bl.pcs(e.data.G, 0),
        Raises(InputError, r"n must be a positive integer number of components, got 0"),
    ),
    # ---- tables ----------------------------------------------------------------------------
    Case(
        "table-dot-token",
        "'.' in a numeric column",
        "error naming file, line, column, value",
        lambda t, e: bl.read_table(write(t, "p.txt", PHENO.replace("41", "."))),
        Raises(InputError, r"column 'age' is not numeric: line 3 has '\.'.*missing="),
    ),
    Case(
        "table-na-codes",
        "NA, -9 and empty fields",
        "missing values (NaN)",
        lambda t, e: bl.read_table(write(t, "p.csv", "IID,y,age\na,NA,30\nb,-9,\nc,1,52\n")),
        Correct(table_values({"y": [np.nan, np.nan, 1], "age": [30, np.nan, 52]}, ["a", "b", "c"])),
    ),
    Case(
        "table-crlf",
        "Windows CRLF line ends",
        "same table as LF",
        lambda t, e: bl.read_table(write(t, "p.txt", PHENO.replace("\n", "\r\n").encode())),
        Correct(table_values({"y": [1.5, 2.5, 0.5], "age": [30, 41, 52]}, ["a", "b", "c"])),
    ),
    Case(
        "table-bom",
        "a UTF-8 byte-order mark",
        "same table; header not '\\ufeffFID'",
        lambda t, e: bl.read_table(write(t, "p.txt", b"\xef\xbb\xbf" + PHENO.encode())),
        Correct(table_values({"y": [1.5, 2.5, 0.5], "age": [30, 41, 52]}, ["a", "b", "c"])),
    ),
    Case(
        "table-gzip-no-suffix",
        "a gzipped table named p.txt",
        "read by content",
        lambda t, e: bl.read_table(write(t, "p.txt", gzip.compress(PHENO.encode()))),
        Correct(table_values({"y": [1.5, 2.5, 0.5]}, ["a", "b", "c"])),
    ),
    Case(
        "table-empty",
        "an empty file",
        "error: empty",
        lambda t, e: bl.read_table(write(t, "p.txt", "")),
        Raises(InputError, r"p\.txt is empty; give a table with one row per sample"),
    ),
    Case(
        "table-header-only",
        "a header and no rows",
        "error: no samples",
        lambda t, e: bl.read_table(write(t, "p.txt", "FID IID y\n")),
        Raises(InputError, r"has a header line but no rows"),
    ),
    Case(
        "table-duplicate-ids",
        "the same IID twice",
        "error naming the ID",
        lambda t, e: bl.read_table(write(t, "p.txt", PHENO + "C c 4 60\n")),
        Raises(InputError, r"duplicated sample IDs \['c'\] in column 'IID'"),
    ),
    Case(
        "table-ragged",
        "a row with one field too many",
        "error naming the line",
        lambda t, e: bl.read_table(write(t, "p.txt", PHENO.replace("2.5 41", "2.5 41 7"))),
        Raises(InputError, r"different numbers of fields \(Expected 4 fields in line 3, saw 5\)"),
    ),
    Case(
        "table-missing-file",
        "a path that does not exist",
        "error naming the path",
        lambda t, e: bl.read_table(t / "nope.txt"),
        Raises(InputError, r"nope\.txt"),
    ),
    Case(
        "table-directory",
        "a folder given as the table",
        "error naming the path",
        lambda t, e: bl.read_table(t),
        Raises(InputError, r"is a folder, not a file; give the table's file name"),
    ),
    Case(
        "table-short-row",
        "a row with one field too few (whitespace table)",
        "error naming the line and the field count",
        lambda t, e: bl.read_table(write(t, "p.txt", PHENO.replace("2.5 41", "2.5"))),
        Raises(InputError, r"line 3 has 3 fields but the table has 4 columns.*instead of leaving"),
    ),
    Case(
        "table-csv-ragged",
        "a CSV row with an extra comma",
        "error naming the line",
        lambda t, e: bl.read_table(write(t, "p.csv", "IID,y\na,1\nb,2,3\n")),
        Raises(InputError, r"different numbers of fields.*line 3"),
    ),
    Case(
        "table-csv-short-row",
        "a CSV row with its last field left out ('b,3' under 'IID,y,age')",
        "read as an empty field: the value is missing",
        lambda t, e: bl.read_table(write(t, "p.csv", "IID,y,age\na,1,2\nb,3\nc,4,5\n")),
        Correct(table_values({"y": [1, 3, 4], "age": [2, np.nan, 5]}, ["a", "b", "c"])),
    ),
    Case(
        "table-unknown-column",
        "read_table(columns=['bmi']) not in the file",
        "error listing the columns",
        lambda t, e: bl.read_table(write(t, "p.txt", PHENO), columns=["bmi"]),
        Raises(InputError, r"has no column\(s\) \['bmi'\]; columns are .*'age'"),
    ),
    Case(
        "table-numeric-header",
        "header 'FID IID 1 2'",
        "columns named '1', '2'",
        lambda t, e: bl.read_table(write(t, "p.txt", "FID IID 1 2\nA a 5 6\nB b 7 8\n")),
        Correct(table_values({"1": [5, 7], "2": [6, 8]}, ["a", "b"])),
    ),
    Case(
        "table-binary-garbage",
        "a binary file (random bytes)",
        "error: not a text table",
        lambda t, e: bl.read_table(write(t, "p.txt", bytes(range(256)) * 4)),
        Raises(InputError, r"is not a text table .*give a UTF-8"),
    ),
    # ---- BIMBAM ----------------------------------------------------------------------------
    Case(
        "bimbam-ragged",
        "BIMBAM row with one dosage short",
        "error naming the line",
        lambda t, e: bl.read_bimbam(bimbam(t, "g.txt", [BIMBAM[0], "rs2, C, G, 2, 1.5"])),
        Raises(InputError, r"line 2 \(SNP rs2\) has 2 genotypes; the first line has 3"),
    ),
    Case(
        "bimbam-empty",
        "an empty BIMBAM file",
        "error: empty",
        lambda t, e: bl.read_bimbam(write(t, "g.txt", "")),
        Raises(InputError, r"BIMBAM file .* is empty; expected one line per SNP"),
    ),
    Case(
        "bimbam-gzip-no-suffix",
        "gzipped BIMBAM named g.txt",
        "read by content",
        lambda t, e: bl.read_bimbam(bimbam(t, "g.txt", BIMBAM, gz=True)),
        Correct(check_bimbam),
    ),
    Case(
        "bimbam-crlf",
        "BIMBAM with CRLF line ends",
        "same genotypes",
        lambda t, e: bl.read_bimbam(bimbam(t, "g.txt", BIMBAM, crlf=True)),
        Correct(check_bimbam),
    ),
    Case(
        "bimbam-bom",
        "BIMBAM with a UTF-8 BOM",
        "same genotypes, SNP 'rs1'",
        lambda t, e: bl.read_bimbam(bimbam(t, "g.txt", BIMBAM, bom=True)),
        Correct(check_bimbam),
    ),
    Case(
        "bimbam-out-of-range",
        "a BIMBAM dosage of 2.7",
        "error: outside 0..2",
        lambda t, e: bl.read_bimbam(bimbam(t, "g.txt", [BIMBAM[0], "rs2, C, G, 2, 2.7, 0"])),
        Raises(InputError, r"SNP rs2 .* genotype 2 = 2\.7, outside 0\.\.2"),
    ),
    Case(
        "bimbam-text-dosage",
        "a BIMBAM dosage 'x'",
        "error naming line and value",
        lambda t, e: bl.read_bimbam(bimbam(t, "g.txt", [BIMBAM[0], "rs2, C, G, 2, x, 0"])),
        Raises(InputError, r"line 2 \(SNP rs2\).*genotype 2 is 'x'"),
    ),
    Case(
        "bimbam-samples-wrong-length",
        "read_bimbam(samples=2 IDs) for 3 samples",
        "error: counts differ",
        lambda t, e: bl.read_bimbam(bimbam(t, "g.txt", BIMBAM), samples=["a", "b"]),
        Raises(InputError, r"2 sample IDs given for 3 genotype columns"),
    ),
    # ---- PLINK ---------------------------------------------------------------------------
    Case(
        "plink-truncated-bed",
        ".bed shorter than .fam × .bim needs",
        "error: truncated",
        plink_with(truncate(".bed", 100)),
        Raises(InputError, r"has 100 bytes but 40 samples .* need 2003; the fileset is truncated"),
    ),
    Case(
        "plink-fam-extra-line",
        ".fam with one sample more than the .bed holds",
        "error: sizes disagree",
        plink_with(lambda p: edit(p.with_suffix(".fam"), lambda s: s + "x x 0 0 0 -9\n")),
        Raises(InputError, r"41 samples \(\.fam\) × 200 SNPs \(\.bim\) need 2203"),
    ),
    Case(
        "plink-bim-missing-line",
        ".bim with one SNP less",
        "error: sizes disagree",
        plink_with(drop_last_line(".bim")),
        Raises(InputError, r"40 samples \(\.fam\) × 199 SNPs \(\.bim\) need 1993"),
    ),
    Case(
        "plink-bad-magic",
        ".bed that is not a PLINK 1 file",
        "error: not a .bed",
        plink_with(lambda p: p.with_suffix(".bed").write_bytes(b"GARBAGE" * 500)),
        Raises(InputError, r"is not a PLINK 1 \.bed file .*plink --make-bed"),
    ),
    Case(
        "plink-missing-bim",
        "no .bim beside the .bed",
        "error naming the file",
        plink_with(lambda p: p.with_suffix(".bim").unlink()),
        Raises(InputError, r"fileset .*sim is incomplete: .*sim\.bim not found"),
    ),
    Case(
        "plink-chrom-codes",
        ".bim chromosomes chr1, X, MT",
        "normalized to 1, 23, 26",
        plink_with(bim_chroms(["chr1", "X", "MT"])),
        Correct(check_chroms),
    ),
    # ---- GRM ---------------------------------------------------------------------------------
    Case(
        "grm-id-short",
        ".grm.id with one line less than the .grm.bin",
        "error: sizes differ",
        grm_with(drop_last_line(".grm.id")),
        Raises(InputError, r"holds 820 values but .*lists 39 samples \(needs 780\)"),
    ),
    Case(
        "grm-bin-truncated",
        "a truncated .grm.bin",
        "error: size",
        grm_with(truncate(".grm.bin", 400)),
        Raises(InputError, r"grm\.bin holds 100 values but .*lists 40 samples \(needs 820\)"),
    ),
    Case(
        "grm-missing",
        "a prefix with no GRM files",
        "error naming the file",
        lambda t, e: bl.read_grm(t / "none"),
        Raises(InputError, r"none\.grm"),
    ),
    Case(
        "grm-roundtrip-dots",
        "write_grm then read_grm with prefix 'a.b.c'",
        "same matrix and IDs, files a.b.c.grm.*",
        lambda t, e: (bl.write_grm(e.K, t / "a.b.c", samples=e.ids), bl.read_grm(t / "a.b.c")),
        Correct(
            lambda r, e: np.testing.assert_allclose(
                np.asarray(getattr(r[1], "matrix", r[1])), e.K, rtol=1e-6, atol=1e-7
            )
        ),
    ),
    Case(
        "write-grm-asymmetric",
        "write_grm of a non-symmetric K",
        "error: not symmetric",
        lambda t, e: bl.write_grm(set_entry(e.K, 5.0, sym=False), t / "k"),
        Raises(InputError, "not symmetric"),
    ),
    Case(
        "write-grm-samples-length",
        "write_grm with N-1 sample IDs",
        "error: counts differ",
        lambda t, e: bl.write_grm(e.K, t / "k", samples=e.ids[:-1]),
        Raises(InputError, rf"{N - 1} sample IDs for a {N}×{N} matrix"),
    ),
    Case(
        "write-grm-missing-folder",
        "write_grm to a prefix whose folder is missing",
        "the folder is created; the GRM reads back",
        lambda t, e: (bl.write_grm(e.K, t / "new" / "k"), bl.read_grm(t / "new" / "k")),
        Correct(lambda r, e: np.testing.assert_allclose(r[1].matrix, e.K, rtol=1e-6, atol=1e-7)),
    ),
    # ---- comparison and liability ------------------------------------------------------------
    Case(
        "compare-different-samples",
        "compare() of fits to different samples",
        "error: refit on the same samples",
        compare_different_samples,
        Raises(InputError, r"different samples.*Refit"),
    ),
    Case(
        "compare-empty",
        "compare({})",
        "error: at least one fit",
        lambda t, e: bl.compare({}),
        Raises(InputError, r"compare needs a dict of at least two named fits"),
    ),
    Case(
        "compare-not-datatree",
        "compare({'a': RemlFit})",
        "error: pass bayeslmm.sample output",
        lambda t, e: bl.compare({"a": e.fit, "b": e.fit}),
        Raises(InputError, r"DataTree"),
    ),
    Case(
        "liability-prevalence-0",
        "liability_h2(prevalence=0)",
        "error: in (0, 1)",
        lambda t, e: bl.liability_h2(0.2, 0.0, 0.5),
        Raises(InputError, r"prevalence must lie in \(0, 1\); .*range 0 to 0"),
    ),
    Case(
        "liability-prevalence-1",
        "liability_h2(prevalence=1)",
        "error: in (0, 1)",
        lambda t, e: bl.liability_h2(0.2, 1.0, 0.5),
        Raises(InputError, r"prevalence must lie in \(0, 1\); .*range 1 to 1"),
    ),
    Case(
        "liability-h2-string",
        "liability_h2('0.2', ...)",
        "error: a number",
        lambda t, e: bl.liability_h2("abc", 0.01, 0.5),
        Raises(InputError, r"h2_observed must be a number, .* got str"),
    ),
    Case(
        "liability-sample-prevalence-0",
        "liability_h2(sample_prevalence=0)",
        "error: the proportion of cases in (0, 1)",
        lambda t, e: bl.liability_h2(0.2, 0.01, 0.0),
        Raises(InputError, r"sample_prevalence \(the proportion of cases\) must lie in \(0, 1\)"),
    ),
    Case(
        "liability-h2-above-1",
        "liability_h2(h2_observed=1.5)",
        "error: h2_observed in [0, 1]",
        lambda t, e: bl.liability_h2(1.5, 0.01, 0.5),
        Raises(InputError, r"h2_observed must lie in \[0, 1\]"),
    ),
    Case(
        "liability-value",
        "liability_h2(0.2, K=0.01, P=0.5)",
        "Lee et al. (2011) formula",
        lambda t, e: bl.liability_h2(0.2, 0.01, 0.5),
        Correct(check_liability),
    ),
    # ---- CLI ---------------------------------------------------------------------------------
    Case(
        "cli-pheno-dot",
        "reml --pheno with '.' in a value",
        "exit 2 naming line and value",
        cli_after(
            lambda t, p: edit(
                Path(f"{p}.pheno.tsv"), lambda s: s.replace(s.splitlines()[3].split("\t")[2], ".")
            ),
            "reml",
            "--bfile",
            "{p}",
            "--pheno",
            "{p}.pheno.tsv",
        ),
        CliFails(r"line 4.*'\.'"),
    ),
    Case(
        "cli-draws-string",
        "h2 --draws many",
        "exit 2: invalid int value",
        cli_run(
            "h2", "--grm", "{p}", "--pheno", "{p}.pheno.tsv", "--out", "{t}/h", "--draws", "many"
        ),
        CliFails(r"invalid int value: 'many'"),
    ),
    Case(
        "cli-draws-0",
        "h2 --draws 0",
        "exit 2 before sampling, nothing written",
        cli_run("h2", "--grm", "{p}", "--pheno", "{p}.pheno.tsv", "--out", "{t}/h", "--draws", "0"),
        CliFails(r"draws must be a positive integer, got 0", no_file("h.posterior.nc", "h.h2.tsv")),
    ),
    Case(
        "cli-chains-0",
        "h2 --chains 0",
        "exit 2 before sampling, nothing written",
        cli_run(
            "h2", "--grm", "{p}", "--pheno", "{p}.pheno.tsv", "--out", "{t}/h", "--chains", "0"
        ),
        CliFails(
            r"chains must be a positive integer, got 0", no_file("h.posterior.nc", "h.h2.tsv")
        ),
    ),
    Case(
        "cli-out-directory",
        "reml --out an existing folder's name (PREFIX.reml.tsv a folder)",
        "exit 2, folder untouched",
        cli_after(
            lambda t, p: (t / "r.reml.tsv").mkdir(),
            "reml",
            "--grm",
            "{p}",
            "--pheno",
            "{p}.pheno.tsv",
            "--out",
            "{t}/r",
        ),
        CliFails(
            r"is an existing directory, not a file", lambda t: (t / "r.reml.tsv").is_dir() or 1 / 0
        ),
    ),
    Case(
        "cli-out-exists",
        "simulate --out over existing files without --force",
        "exit 2, files unchanged",
        cli_after(
            lambda t, p: write(t, "sim.pheno.tsv", "keep\n"),
            "simulate",
            "--out",
            "{p}",
            "--n-samples",
            20,
            "--n-snps",
            30,
        ),
        CliFails(
            r"sim\.bed exists and would be overwritten; .* --force",
            unchanged("sim.pheno.tsv", "keep\n"),
        ),
    ),
    Case(
        "cli-out-empty",
        "scan --out ''",
        "exit 2: empty path",
        cli_run("scan", "--bfile", "{p}", "--pheno", "{p}.pheno.tsv", "--out", ""),
        CliFails(r"--out '' is not a usable prefix; give a file prefix"),
    ),
    Case(
        "cli-out-dots",
        "simulate --out runs/cohort.1",
        "writes runs/cohort.1.bed ...",
        dotted_prefix,
        Correct(check_dotted_prefix),
    ),
    Case(
        "cli-read-only-folder",
        "reml --out into a read-only folder",
        "exit 2 before the work",
        read_only_out,
        CliFails(r"not writable", no_file("ro/r.reml.tsv")),
    ),
    Case(
        "cli-pheno-missing-file",
        "reml --pheno nope.txt",
        "exit 2 naming the file",
        cli_run("reml", "--grm", "{p}", "--pheno", "{t}/nope.txt"),
        CliFails(r"table .*nope\.txt not found"),
    ),
    Case(
        "cli-pheno-name-unknown",
        "reml --pheno-name bmi (not in the file)",
        "exit 2 listing the columns",
        cli_run("reml", "--grm", "{p}", "--pheno", "{p}.pheno.tsv", "--pheno-name", "bmi"),
        CliFails(r"has no column\(s\) \['bmi'\]; columns are"),
    ),
    Case(
        "cli-bfile-missing",
        "reml --bfile of a prefix with no files",
        "exit 2 naming the file",
        cli_run("reml", "--bfile", "{t}/none", "--pheno", "{p}.pheno.tsv"),
        CliFails(r"fileset .*none is incomplete: .*none\.bed"),
    ),
    Case(
        "cli-pheno-ids-disjoint",
        "reml with a phenotype whose IIDs match no genotype",
        "exit 2: no samples in common",
        cli_after(
            lambda t, p: write(t, "other.txt", "FID IID y\nq q 1\nr r 2\ns s 3\n"),
            "reml",
            "--grm",
            "{p}",
            "--pheno",
            "{t}/other.txt",
        ),
        CliFails(r"no sample ID is shared by y, X and the genetic matrix"),
    ),
    Case(
        "cli-grm-id-mismatch",
        "reml --grm whose .grm.id lost a line",
        "exit 2 naming the GRM",
        cli_after(
            lambda t, p: drop_last_line(".grm.id")(p),
            "reml",
            "--grm",
            "{p}",
            "--pheno",
            "{p}.pheno.tsv",
        ),
        CliFails(r"holds 820 values but .*lists 39 samples.*do not belong together"),
    ),
    Case(
        "cli-maf-out-of-range",
        "grm --maf 2",
        "exit 2: maf",
        cli_run("grm", "--bfile", "{p}", "--maf", 2, "--out", "{t}/g"),
        CliFails(r"maf must lie in \[0, 0\.5\), got 2", no_file("g.grm.bin")),
    ),
    Case(
        "cli-chunk-size-0",
        "scan --chunk-size 0",
        "exit 2: chunk size",
        cli_run(
            "scan",
            "--bfile",
            "{p}",
            "--pheno",
            "{p}.pheno.tsv",
            "--chunk-size",
            0,
            "--out",
            "{t}/s.tsv",
        ),
        CliFails(r"chunk_size must be positive, got 0", no_file("s.tsv", "s.tsv.parts")),
    ),
    Case(
        "cli-resume-changed-bed",
        "scan --resume after the .bed changed (same size)",
        "exit 2: inputs changed, parts kept",
        resume_after_change,
        CliFails(
            r"inputs changed since the interrupted scan.*sim\.bed.*--force",
            lambda t: (t / "scan.tsv.parts").is_dir() or 1 / 0,
        ),
    ),
]


def chroms(tmp: Path, env: Env, codes: list[str]) -> Path:
    """A copy of the cohort whose .bim chromosomes cycle through ``codes``."""
    prefix = env.copy_files(tmp)
    bim_chroms(codes)(prefix)
    return prefix


def drop_chrom2(tmp: Path, env: Env) -> Path:
    """A copy of the cohort with every SNP on chromosome 1."""
    prefix = env.copy_files(tmp)
    bim_chroms(["1"])(prefix)
    return prefix


# --------------------------------------------------------------------------------------------
# the tests


def _foreign(record: list[warnings.WarningMessage]) -> list[str]:
    return [
        f"{w.category.__name__}: {w.message}"
        for w in record
        if not issubclass(w.category, BayeslmmWarning)
    ]


def _params() -> list:
    return [pytest.param(case, id=case.id, marks=case.marks) for case in CASES]


@pytest.mark.parametrize("case", _params())
def test_hostile(case: Case, env: Env, tmp_path: Path) -> None:
    outcome = case.outcome
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if isinstance(outcome, Raises):
            with pytest.raises(outcome.exc, match=outcome.match):
                case.run(tmp_path, env)
        else:
            result = case.run(tmp_path, env)
    assert not _foreign(record), _foreign(record)
    ours = [w for w in record if issubclass(w.category, BayeslmmWarning)]
    if isinstance(outcome, Correct):
        assert not ours, [str(w.message) for w in ours]
        outcome.check(result, env)
    elif isinstance(outcome, Warns):
        hits = [
            w
            for w in ours
            if issubclass(w.category, outcome.warning) and re.search(outcome.match, str(w.message))
        ]
        assert hits, [f"{w.category.__name__}: {w.message}" for w in ours]
        if outcome.check is not None:
            outcome.check(result, env)
    elif isinstance(outcome, CliFails):
        rc, err = result
        assert rc == 2, (rc, err)
        assert re.search(outcome.match, err), err
        assert "Traceback" not in err, err
        if outcome.check is not None:
            outcome.check(tmp_path)


def markdown() -> str:
    """The catalogue as a markdown table, from CASES."""
    counts = {
        kind: sum(isinstance(c.outcome, kind) for c in CASES)
        for kind in (Correct, Raises, Warns, CliFails)
    }
    lines = [
        "# Hostile inputs",
        "",
        "Inputs that real users bring, and what bayeslmm does with each. Every row is a case of",
        "`tests/test_hostile.py` (the test id is the last column); the table is generated from",
        "that file (`.venv/bin/python tests/test_hostile.py`) and a test checks they agree.",
        "",
        f"{len(CASES)} cases: {counts[Correct]} correct answers, {counts[Raises]} typed errors "
        f"(API), {counts[Warns]} typed warnings, {counts[CliFails]} CLI errors (exit status 2, "
        "a message on stderr, no traceback, no output file half-written or removed).",
        "",
        "| input | expected behaviour | outcome checked | test id |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        described = case.outcome.describe().replace("|", "\\|")
        xfail = " (xfail)" if any(getattr(m, "name", "") == "xfail" for m in case.marks) else ""
        lines.append(f"| {case.input} | {case.expected}{xfail} | {described} | `{case.id}` |")
    return "\n".join(lines) + "\n"


def test_hostile__catalogue_has_at_least_60_unique_cases() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


def test_hostile__docs_table_matches_cases() -> None:
    text = DOC.read_text()
    documented = re.findall(r"^\|.*\| `([^`]+)` \|$", text, flags=re.M)
    assert sorted(documented) == sorted(case.id for case in CASES)
    assert text == markdown(), "regenerate with: .venv/bin/python tests/test_hostile.py"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(markdown())
    sys.exit(0)
