"""Writing a file whole or not at all, never through a link, and the errors of the results store.

Every file emrun writes goes through :func:`write_atomically` (or its helpers :func:`write_text`,
:func:`write_csv`, :func:`save_figure`), so that a crash, a kill or a full disk never leaves half a
file behind, and a results folder cloned from someone else cannot make emrun write elsewhere: the
temporary file is created exclusively (a link planted at its name is refused, never followed), and
the rename replaces a link at the final name instead of writing through it. The file and its
folder are flushed to disk before and after the rename, so that a power loss leaves the old file
or the new one. This module imports no other part of emrun but its fault injection, so the store,
its lock, its summaries and the reports can all use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emrun import faults

_UMASK = os.umask(0)  # read once: a temporary file is created private, then given the usual mode
os.umask(_UMASK)
WRITE_ADVICE = "free space (or fix the folder's permissions) and run the same command to resume"


class StoreError(RuntimeError):
    """A results folder that cannot be used as asked; the message says why and what to do."""


class StoreWriteError(StoreError):
    """Writing failed (a full disk, a read-only folder): the sweep must stop."""


def _fsync(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return  # a folder that cannot be opened for reading: the rename is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # a file system without fsync (some network mounts): nothing more can be done
    finally:
        os.close(descriptor)


def write_atomically(path: Path, write: Callable[[Path], Any], point: str | None = None) -> None:
    """Write to a new temporary name beside ``path``, flush it, then rename it over ``path``: the
    file exists whole or not at all, and a link at ``path`` is replaced, not followed. A failed
    write (a full disk) removes its temporary file and raises."""
    path = Path(path)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)
        write(temporary)
        _fsync(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if point:
        faults.checkpoint(point)
    os.replace(temporary, path)
    _fsync(path.parent, directory=True)


def write_text(path: Path, text: str) -> None:
    """A text file, written atomically."""
    write_atomically(path, lambda target: target.write_text(text))


def write_csv(table: Any, path: Path, **options: Any) -> None:
    """A pandas DataFrame as CSV (``options`` go to ``to_csv``), written atomically."""
    write_atomically(path, lambda target: table.to_csv(target, **options))


def save_figure(fig: Any, path: Path, **options: Any) -> None:
    """A matplotlib figure (its format from the file name; ``options`` go to ``savefig``), written atomically."""
    path = Path(path)
    write_atomically(path, lambda target: fig.savefig(target, format=path.suffix.lstrip("."), **options))


MAX_TEXT_BYTES = 10 << 20  # a config or a plug-in file larger than this is not one a person wrote


def read_small_text(path: Path) -> str:
    """The text of a regular file of at most MAX_TEXT_BYTES (a config, a plug-in): a device such as
    /dev/zero or a FIFO would otherwise be read until memory runs out, or forever. Raises OSError
    (with strerror) for a file that is not one, UnicodeDecodeError for one that is not text."""
    path = Path(path)
    if not path.is_file():
        raise OSError(0, "not a regular file" if path.exists() else "No such file or directory")
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise OSError(0, f"larger than {MAX_TEXT_BYTES >> 20} MB")
    return path.read_text()


def refuse_links(*paths: Path) -> None:
    """Refuse to write into a folder (or file) that is a symbolic link: a results folder is data,
    and one cloned from someone else could point its ``batches/`` or ``summaries/`` anywhere."""
    for path in paths:
        if Path(path).is_symlink():
            raise StoreError(f"{path} is a symbolic link (to {os.readlink(path)}); emrun never writes or deletes through "
                             "a link in a results folder: replace it with a real folder")
