"""A scan's output: settings and input fingerprints, resumable chunk files, atomic tables.

Completed chunks are kept in ``<out>.parts/`` beside a manifest (who made the folder, the
settings, the inputs' fingerprints) until the table is written, so that a killed scan resumes
to a byte-identical file (DESIGN §2, "Outputs").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayeslmm.data.inputs import kinship_array
from bayeslmm.errors import InputError
from bayeslmm.io.genotypes import Genotypes
from bayeslmm.io.outputs import atomic_path
from bayeslmm.relatedness.gram import Gram


def settings_hash(**settings: Any) -> str:
    """A short hash of the settings of a scan (what a resumed scan must repeat)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


PARTS_MAKER = "bayeslmm.scan"  # the manifest's mark: the parts folder is bayeslmm's to delete
PART_NAME = re.compile(r"\d{6}\.tsv|\.\d{6}\.tsv\..*\.tmp|\.manifest\.json\..*\.tmp")
HASHED_BYTES = 1 << 20  # the header and first block of each input file


def file_fingerprint(path: Path) -> dict:
    """Size, modification time and a hash of the first MiB of a file."""
    stat = path.stat()
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(HASHED_BYTES)).hexdigest()[:16]
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head": head}


def array_hash(values: Any) -> str:
    """A short hash of the values of an array (as float64)."""
    return hashlib.sha256(np.ascontiguousarray(values, dtype=float).tobytes()).hexdigest()[:16]


def genotype_fingerprint(g: Genotypes) -> dict:
    """Fingerprints of the files genotypes are read from, or a hash of their values."""
    source = Path(g.source)
    if source.suffix == ".bed" and source.is_file():
        files = [source.with_suffix(ext) for ext in (".bed", ".bim", ".fam")]
    elif source.is_file():
        files = [source]
    else:
        files = []
    found = {str(f): file_fingerprint(f) for f in files if f.is_file()}
    if not files:  # genotypes held in memory
        found["genotype values"] = array_hash(g.read())
    return found


def input_fingerprint(g: Genotypes, K: Any) -> dict:
    """What a resumed scan must find unchanged: the genotype files (or values) and a given K.

    A Gram (:func:`bayeslmm.gram`) is known by a hash of W'W and of the per-SNP means and
    divisors, and by the files of its genotypes where they are not those of the scan.
    """
    found = genotype_fingerprint(g)
    if isinstance(K, Gram):
        found["gram"] = array_hash(np.concatenate([K.wtw.ravel(), K.center, K.spread]))
        if K.genotypes is not g:
            found.update({f"gram {k}": v for k, v in genotype_fingerprint(K.genotypes).items()})
        return found
    if K is not None:
        kinships = K if isinstance(K, Mapping) else {"K": K}
        for name, k in kinships.items():
            found[f"kinship {name}"] = array_hash(kinship_array(k))
    return found


def remove_parts(parts: Path) -> None:
    """Delete the chunk files and manifest bayeslmm wrote in ``parts``, then the folder if empty."""
    for entry in parts.iterdir():
        if entry.is_file() and (entry.name == "manifest.json" or PART_NAME.fullmatch(entry.name)):
            entry.unlink()
    if not any(parts.iterdir()):
        parts.rmdir()


def open_parts(parts: Path, settings: str, inputs: dict, resume: bool, overwrite: bool) -> None:
    """Create ``parts`` or check that its chunks can be resumed; never delete what is not ours."""
    manifest = parts / "manifest.json"
    if parts.exists() or parts.is_symlink():
        recorded: dict = {}
        if parts.is_dir() and manifest.is_file():
            try:
                recorded = json.loads(manifest.read_text())
            except (OSError, ValueError):
                recorded = {}
        if not isinstance(recorded, dict) or recorded.get("created_by") != PARTS_MAKER:
            raise InputError(
                f"{parts} exists but was not made by a bayeslmm scan (no bayeslmm manifest.json "
                "in it); bayeslmm keeps its chunks there and will not touch it: move it away or "
                "choose another output name."
            )
        done = sum(1 for f in parts.iterdir() if re.fullmatch(r"\d{6}\.tsv", f.name))
        if not resume and not overwrite:
            raise InputError(
                f"{parts} holds {done} completed chunks of an interrupted scan; continue it with "
                "resume=True (--resume), or pass overwrite=True (--force) to discard them."
            )
        if not resume:
            remove_parts(parts)
        elif recorded.get("settings") != settings:
            raise InputError(
                f"{parts} holds a scan with other settings (phenotype, covariates, samples, "
                "SNPs, chunk size or test options differ); resume with the same ones, or pass "
                "overwrite=True (--force) without resume to start over."
            )
        elif recorded.get("inputs") != inputs:
            changed = sorted(
                k
                for k in set(inputs) | set(recorded.get("inputs", {}))
                if inputs.get(k) != recorded.get("inputs", {}).get(k)
            )
            raise InputError(
                f"the inputs changed since the interrupted scan in {parts}: {changed} differ "
                "(size, modification time or content); its chunks cannot be reused. Pass "
                "overwrite=True (--force) without resume to start over."
            )
    parts.mkdir(exist_ok=True)
    if not manifest.exists():
        from bayeslmm._version import __version__

        record = {
            "created_by": PARTS_MAKER,
            "version": __version__,
            "settings": settings,
            "inputs": inputs,
        }
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(record, indent=1))


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write a scan's table atomically: Parquet for ``.parquet``, else TSV with NA."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, sep="\t", index=False, na_rep="NA")


def read_part(path: Path) -> pd.DataFrame:
    """Read a chunk file back (alleles and names as text, NA as missing)."""
    return pd.read_csv(
        path,
        sep="\t",
        dtype={"chrom": str, "snp": str, "a1": str, "a2": str},
        keep_default_na=False,
        na_values=["NA"],
    )
