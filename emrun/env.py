"""Process settings that must be in place before numpy is first imported.

Parallelism in emrun is across processes (one batch per worker), so BLAS threads would only
compete with the workers. numpy reads these variables once, when it is first imported, so the
command line and the bench call :func:`single_threaded` before importing anything else, and
spawned or Dask worker processes inherit them from the environment. This module imports nothing.
"""

from __future__ import annotations

import os

SINGLE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def single_threaded() -> None:
    """One BLAS thread per process, unless the user set these variables (to something non-empty)."""
    for name, value in SINGLE_THREAD_ENV.items():
        if not os.environ.get(name):
            os.environ[name] = value
