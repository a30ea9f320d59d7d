"""Writing a file whole or not at all, and the errors of the results store.

Every file emrun writes into a results folder goes through :func:`write_atomically`, so that a
crash, a kill or a full disk never leaves half a file behind. This module imports no other part of
emrun but its fault injection, so the store, its lock and its summaries can all use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from emrun import faults

WRITE_ADVICE = "free space (or fix the folder's permissions) and run the same command to resume"


class StoreError(RuntimeError):
    """A results folder that cannot be used as asked; the message says why and what to do."""


class StoreWriteError(StoreError):
    """Writing failed (a full disk, a read-only folder): the sweep must stop."""


def write_atomically(path: Path, write, point: str | None = None) -> None:
    """Write to a temporary name, then rename: the file exists whole or not at all. A failed
    write (a full disk) removes its temporary file and raises."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if point:
        faults.checkpoint(point)
    os.replace(temporary, path)
