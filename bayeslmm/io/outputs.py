"""Safe file output: paths checked before the work, atomic writes, nothing lost or clobbered.

:func:`check_outputs` is called before a run starts, so that a finished computation is never
lost to an unwritable path at the end; :func:`atomic_path` writes to a temporary name in the
same folder and renames it, so that a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from bayeslmm.errors import InputError


def _umask() -> int:
    """The process umask (read without changing it where the OS allows)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_outputs(
    paths: Iterable[str | Path],
    *,
    overwrite: bool = False,
    option: str = "overwrite=True",
    create_folders: bool = False,
) -> list[Path]:
    """Check that every output can be written, before any work is done.

    Parameters
    ----------
    paths
        The files a run will write.
    overwrite
        Whether existing files may be replaced.
    option
        How the user allows replacing, named in the message (``"--force"`` for the CLI).
    create_folders
        Create a missing folder (as ``mkdir -p``) when its nearest existing ancestor is a
        writable folder: a new folder loses nothing, and ``--out results/run1`` in a fresh
        checkout should just work.

    Returns
    -------
    list of Path
        The paths, as Path objects.

    Raises
    ------
    InputError
        For an empty path, a path that is a directory, a missing or read-only folder, or an
        existing file when ``overwrite`` is False; the message names the path and the way out.
    """
    out = []
    for raw in paths:
        if raw is None or str(raw).strip() == "" or str(raw).endswith(os.sep):
            raise InputError(
                f"output path {str(raw)!r} names no file; give a file name or prefix "
                "(e.g. results/run1)."
            )
        path = Path(raw)
        if path.is_dir():
            raise InputError(
                f"output {path} is an existing directory, not a file; give a file name inside "
                f"it (e.g. {path / 'results'}) or another path."
            )
        parent = path.parent
        if create_folders and not parent.exists():
            ancestor = next(a for a in parent.parents if a.exists()) if parent.parents else None
            if ancestor is not None and ancestor.is_dir() and os.access(ancestor, os.W_OK):
                parent.mkdir(parents=True, exist_ok=True)
        if not parent.is_dir():
            what = "is a file, not a folder" if parent.exists() else "does not exist"
            raise InputError(
                f"cannot write {path}: its folder {parent} {what}; create the folder "
                f"(mkdir -p {parent}) or choose another path."
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(
                f"cannot write {path}: the folder {parent} is not writable; choose a folder "
                "you can write to, or change its permissions."
            )
        if path.exists() and not overwrite:
            raise InputError(
                f"{path} exists and would be overwritten; choose another output name, move the "
                f"file away, or pass {option} to replace it."
            )
        if path.exists() and not os.access(path, os.W_OK):
            raise InputError(f"{path} exists and is read-only; remove it or choose another path.")
        out.append(path)
    return out


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    A reader never sees a half-written file: either the old file (or none) or the new one. The
    file gets the permissions of any new file of the user (0666 less the umask), not the 0600
    of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
