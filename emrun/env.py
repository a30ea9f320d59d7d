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


def single_threaded() -> None:
    """One BLAS thread per process, unless the user set these variables (to something non-empty)."""
    for name, value in SINGLE_THREAD_ENV.items():
        if not os.environ.get(name):
            os.environ[name] = value
