"""Opening input files: gzip detected from the content, never from the name."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Literal

GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of every gzip stream."""


def is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic bytes, whatever its name.

    True for a gzip stream named ``.txt``, False for plain text named ``.gz``.
    """
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def compression(path: Path) -> Literal["gzip"] | None:
    """The ``compression=`` argument for a pandas reader of ``path``, from its content.

    pandas would infer it from the suffix, and fail on a gzipped ``.txt`` or a plain ``.gz``.
    """
    return "gzip" if is_gzip(path) else None


def read_bytes(path: Path) -> bytes:
    """The whole file as bytes, decompressed when it is gzip by content.

    Parameters
    ----------
    path
        An existing file.

    Returns
    -------
    bytes
        The file's bytes, or the gzip stream's content (all members, as ``gunzip`` writes them).
    """
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == GZIP_MAGIC else data


def open_text(path: Path) -> io.TextIOWrapper:
    """Open a text file for reading, through gzip when it is gzip by content.

    The caller closes it (use it in a ``with`` block).
    """
    if is_gzip(path):
        return gzip.open(path, "rt")  # type: ignore[return-value]  (a TextIOWrapper)
    return open(path)  # noqa: SIM115 - the caller closes
