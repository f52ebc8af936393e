"""GCTA binary GRMs (``.grm.bin``, ``.grm.id``, ``.grm.N.bin``) to and from a Kinship."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.samples import positional_ids
from bayeslmm.errors import InputError
from bayeslmm.io.files import compression
from bayeslmm.io.outputs import atomic_path
from bayeslmm.linalg.spectral import check_kinship
from bayeslmm.relatedness.relationship import Kinship


def _grm_paths(prefix: str | Path) -> dict[str, Path]:
    """The three files of a GRM prefix (a path ending in one of their suffixes is accepted)."""
    prefix = str(prefix)
    for ext in (".grm.bin", ".grm.id", ".grm.N.bin"):
        if prefix.endswith(ext):
            prefix = prefix[: -len(ext)]
    return {
        "bin": Path(prefix + ".grm.bin"),
        "id": Path(prefix + ".grm.id"),
        "N": Path(prefix + ".grm.N.bin"),
    }


def read_grm(prefix: str | Path) -> Kinship:
    """Read a GCTA binary GRM (``.grm.bin``, ``.grm.id``, ``.grm.N.bin``) into a Kinship.

    Parameters
    ----------
    prefix : str or Path
        Path without the suffixes (``out/cohort`` for ``out/cohort.grm.bin`` etc.).

    Returns
    -------
    Kinship
        ``matrix`` (float64 from GCTA's float32), ``samples`` (IID), ``n_snps`` (the largest
        entry of ``.grm.N.bin``, or 0 if that file is absent).
    """
    paths = _grm_paths(prefix)
    for key in ("bin", "id"):
        if not paths[key].is_file():
            raise InputError(f"GCTA GRM file {paths[key]} not found.")
    ids = pd.read_csv(
        paths["id"],
        sep=r"\s+",
        header=None,
        dtype=str,
        keep_default_na=False,  # IDs verbatim: a sample called NA is "NA"
        compression=compression(paths["id"]),
    )
    if ids.shape[1] < 2:
        raise InputError(f"{paths['id']} must have two columns (FID IID).")
    n = len(ids)
    values = np.fromfile(paths["bin"], dtype="<f4")
    if values.size != n * (n + 1) // 2:
        raise InputError(
            f"{paths['bin']} holds {values.size} values but {paths['id']} lists {n} samples "
            f"(needs {n * (n + 1) // 2}); the .id and .bin files do not belong together."
        )
    K = np.zeros((n, n))
    rows, cols = np.tril_indices(n)
    K[rows, cols] = values
    K[cols, rows] = values
    n_snps = 0
    if paths["N"].is_file():
        counts = np.fromfile(paths["N"], dtype="<f4")
        if counts.size not in (1, values.size):
            raise InputError(f"{paths['N']} has {counts.size} values; expected {values.size}.")
        n_snps = int(counts.max()) if counts.size else 0
    samples = ids[1].to_numpy(dtype=str)
    return Kinship(
        matrix=K, samples=samples, n_snps=n_snps, method="gcta_grm", fid=ids[0].to_numpy(dtype=str)
    )


def write_grm(
    K: Any, prefix: str | Path, samples: Sequence[str] | None = None, n_snps: int | None = None
) -> None:
    """Write a kinship matrix as a GCTA binary GRM, atomically.

    Parameters
    ----------
    K : Kinship, DataFrame or ndarray
        The matrix (stored as float32, lower triangle with diagonal, row by row); a DataFrame's
        index gives the sample IDs.
    prefix : str or Path
        Output prefix; writes ``prefix.grm.bin``, ``.grm.id`` and ``.grm.N.bin``.
    samples : sequence of str, optional
        Sample IDs (default: those of the Kinship or DataFrame, else "1", "2", ...).
    n_snps : int, optional
        SNP count for ``.grm.N.bin`` (default: the Kinship's).
    """
    if isinstance(K, pd.DataFrame):
        if list(K.index) != list(K.columns):
            raise InputError(
                "K's rows and columns must list the same sample IDs in the same order to write "
                "a GRM; reorder with K.loc[ids, ids]."
            )
        if samples is None:
            samples = [str(i) for i in K.index]
        K = K.to_numpy()
    matrix = np.asarray(getattr(K, "matrix", K), dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"K must be square to write a GRM, got shape {matrix.shape}.")
    matrix = check_kinship(matrix)  # finite and symmetric: GCTA stores one triangle
    n = matrix.shape[0]
    if samples is None:
        samples = getattr(K, "samples", None)
    samples = list(positional_ids(n)) if samples is None else [str(s) for s in samples]
    if len(samples) != n:
        raise InputError(f"{len(samples)} sample IDs for a {n}×{n} matrix.")
    fid = getattr(K, "fid", None)
    fid = list(fid) if fid is not None and len(fid) == n else samples
    n_snps = int(n_snps if n_snps is not None else getattr(K, "n_snps", 0) or 0)
    paths = _grm_paths(prefix)
    rows, cols = np.tril_indices(n)
    with atomic_path(paths["bin"]) as tmp:
        matrix[rows, cols].astype("<f4").tofile(tmp)
    with atomic_path(paths["N"]) as tmp:
        np.full(rows.size, n_snps, dtype="<f4").tofile(tmp)
    with atomic_path(paths["id"]) as tmp:
        tmp.write_text("".join(f"{f}\t{s}\n" for f, s in zip(fid, samples, strict=True)))
