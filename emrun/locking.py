"""The lock a sweep holds on its results folder, so that two sweeps never write one folder."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from emrun import faults
from emrun.files import WRITE_ADVICE, StoreError, StoreWriteError, write_atomically
from emrun.invocation import command as printed

LOCK = ".lock"


@contextmanager
def locked(folder: Path, command: str):
    """Hold the folder's lock file (owner's pid, host, time, command) while a sweep writes.

    A second sweep on the folder is refused with a message naming the owner. A lock left by a
    process that no longer runs on this host, or by a live process that is not emrun, is taken
    over; taking over is itself exclusive (a ``.lock.takeover`` file made with O_EXCL), so two
    sweeps never both take over one stale lock.
    """
    path = Path(folder) / LOCK
    owner = {"pid": os.getpid(), "host": platform.node(), "command": command,
             "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _acquire(path, owner)
    try:
        yield
    finally:
        if _read_lock(path) == owner:
            path.unlink(missing_ok=True)


def describe(folder: Path) -> str:
    """The folder's lock in words, for ``emrun status``: whose it is and whether that sweep still
    runs, judged as a sweep taking the lock would judge it."""
    path = Path(folder) / LOCK
    if not path.is_file():
        return "none (no sweep running)"
    holder = _read_lock(path)
    if holder is None:
        return f"unreadable ({path}); the next sweep takes it over"
    pid, since, state = holder.get("pid"), holder.get("since"), _liveness(holder)
    if state == "alive":
        elsewhere = holder.get("host") != platform.node()
        where = f" on {holder.get('host')} (another machine: not checked)" if elsewhere else ""
        return f"running, pid {pid}{where}, since {since}"
    try:  # the sweep's command as it was recorded, with the program as this process was run
        again = printed(*shlex.split(str(holder.get("command")))[1:])
    except ValueError:
        again = str(holder.get("command"))
    gone = "is gone" if state == "dead" else "now belongs to another program"
    return f"stale: pid {pid} (since {since}) {gone}; the same command resumes and takes the lock over: {again}"


def _create(path: Path, content: dict) -> bool:
    """Create ``path`` with ``content`` only if it does not exist; False if it does."""
    try:
        faults.oserror("lock")
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    except OSError as error:
        raise StoreWriteError(f"cannot create the lock {path} ({error.strerror or error}); {WRITE_ADVICE}") from None
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(content, handle)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise StoreWriteError(f"cannot write the lock {path} ({error.strerror or error}); {WRITE_ADVICE}") from None
    return True


def _acquire(path: Path, owner: dict) -> None:
    if _create(path, owner):
        return
    holder = _read_lock(path)
    state = _liveness(holder) if holder is not None else "unreadable"
    if state == "alive":
        raise StoreError(
            f"{path.parent} is being written by another emrun sweep (pid {holder.get('pid')} on {holder.get('host')}, "
            f"since {holder.get('since')}: {holder.get('command')}). Wait for it to finish; if that process is gone, "
            f"delete {path}.")
    takeover = path.with_name(LOCK + ".takeover")
    if not _create(takeover, owner):
        other = _read_lock(takeover)
        if other is not None and _liveness(other) == "alive":
            raise StoreError(f"another emrun sweep (pid {other.get('pid')}) is taking over the stale lock {path}; "
                             "wait for it to finish")
        takeover.unlink(missing_ok=True)  # left by a sweep that died while taking over
        if not _create(takeover, owner):
            raise StoreError(f"another emrun sweep is taking over the stale lock {path}; wait for it to finish")
    try:
        faults.pause("lock_takeover")
        if _read_lock(path) != holder:
            raise StoreError(f"{path.parent} was just locked by another emrun sweep; wait for it to finish")
        reason = {"dead": "is not running", "not emrun": "is not an emrun process"}.get(state, "left an unreadable lock")
        print(f"emrun: taking over the stale lock {path} (pid {holder.get('pid') if holder else '?'} {reason})",
              file=sys.stderr)
        try:
            write_atomically(path, lambda p: p.write_text(json.dumps(owner)))
        except OSError as error:
            raise StoreWriteError(f"cannot write the lock {path} ({error.strerror or error}); {WRITE_ADVICE}") from None
    finally:
        takeover.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def _liveness(holder: dict) -> str:
    """"alive" (an emrun process, or on another host, where we cannot tell), "dead", or "not emrun"
    (a live process that the pid now belongs to, which is not a sweep)."""
    if holder.get("host") != platform.node():
        return "alive"
    try:
        pid = int(holder["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass
    except (KeyError, ValueError, TypeError, OSError):
        return "dead"
    if not Path("/proc/self").exists():
        return "alive"  # no /proc (not Linux): a live pid is taken to be the sweep
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "dead"
    return "alive" if b"emrun" in command else "not emrun"
