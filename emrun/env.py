"""Process settings that must be in place before numpy is first imported.

Parallelism in emrun is across processes (one batch per worker), so BLAS threads would only
compete with the workers. numpy reads these variables once, when it is first imported, so the
command line and the bench call :func:`single_threaded` before importing anything else, and
spawned or Dask worker processes inherit them from the environment. This module imports nothing.
"""

from __future__ import annotations

import os

SINGLE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def kernel_cache() -> None:
    """Compiled kernels (numba) are cached outside the source tree, so that a read-only install or
    a fresh clone compiles once per machine, not once per process: in $EMRUN_CACHE_DIR, else
    $XDG_CACHE_HOME/emrun, else ~/.cache/emrun (a NUMBA_CACHE_DIR the user set is kept)."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        base = os.environ.get("EMRUN_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "emrun")
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(base, "numba")


ALLOCATOR_THRESHOLDS = {-1: 1 << 30, -3: 1 << 28}  # glibc M_TRIM_THRESHOLD 1 GiB, M_MMAP_THRESHOLD 256 MiB
_memory_kept = False


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the system: the
    numpy loops allocate and free arrays of the same sizes every iteration, and with glibc's
    defaults each large one is a fresh mmap whose pages fault in again (paper C's dynamics spent
    more than a third of their time there). Only the allocator's policy changes, never a result;
    a no-op where malloc is not glibc's."""
    global _memory_kept
    if _memory_kept:
        return
    _memory_kept = True
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    for option, value in ALLOCATOR_THRESHOLDS.items():
        mallopt(ctypes.c_int(option), ctypes.c_int(value))


def single_threaded() -> None:
    """One BLAS thread per process, unless the user set these variables (to something non-empty)."""
    for name, value in SINGLE_THREAD_ENV.items():
        if not os.environ.get(name):
            os.environ[name] = value
