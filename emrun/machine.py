"""What computed a result, below the Python packages: the CPU, numpy's SIMD level, the BLAS core
and numba's code-generation target. Recorded with every sweep (``compute`` in the manifest's
sweep entry), because a row can depend on them: which OpenBLAS kernel computed a matrix product
changes its last bits, and an EM trajectory near a saddle can amplify them (README, "The same results on another machine").
"""

from __future__ import annotations

import os
import platform
from typing import Any

# Variables that choose OpenBLAS' kernels or numpy's and numba's instruction sets: recorded when set.
TARGET_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "NPY_DISABLE_CPU_FEATURES",
                    "NPY_ENABLE_CPU_FEATURES", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_OPT")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def numpy_simd() -> dict[str, Any]:
    """numpy's compiled baseline and the dispatched instruction sets this CPU lets it use."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy < 2
        return {}
    return {"baseline": list(__cpu_baseline__),
            "dispatched": [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]}


def blas() -> list[dict[str, Any]]:
    """Each BLAS library numpy and scipy loaded: its name, version and the core it chose."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"library": info.get("internal_api"), "version": info.get("version"),
             "core": info.get("architecture"), "file": os.path.basename(info.get("filepath", ""))}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def numba_target() -> dict[str, Any]:
    """The CPU numba compiles for (the host's, unless NUMBA_CPU_NAME says otherwise)."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return {}
    return {"cpu": os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name(),
            "features": os.environ.get("NUMBA_CPU_FEATURES") or "host"}


def compute_environment() -> dict[str, Any]:
    """The CPU, numpy's SIMD, the BLAS core(s), numba's target and any variable that overrides them."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)

    return {"cpu": cpu_model(), "numpy_simd": numpy_simd(), "blas": blas(), "numba_target": numba_target(),
            "variables": {name: os.environ[name] for name in TARGET_VARIABLES if name in os.environ}}
