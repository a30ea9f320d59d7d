"""The kernel cache check (issue 30): the sweep says it compiles the Bernoulli kernel, and lets its
workers compile it in parallel, unless numba's cache holds this source file's own kernel."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from emrun.models import bernoulli as b
from emrun.models import bernoulli_fused as kernel


def _cached_in(cache: Path) -> bool:
    code = "from emrun.models import bernoulli_fused as k; print(k.cached())"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
                            capture_output=True, text=True, check=True)
    return result.stdout.strip() == "True"


def test_another_checkouts_kernel_in_the_cache_is_not_this_ones(tmp_path):
    b.KERNEL.prepare()  # this source's kernel, compiled or loaded: numba's cache holds its entry
    real_root = Path(os.environ["NUMBA_CACHE_DIR"])
    ours = Path(kernel.fused_run._cache._cache_path)  # numba's folder for this source path
    assert list(ours.glob("bernoulli_fused.fused_run-*.nbi"))
    cache = tmp_path / "numba"
    # Another checkout's entry: the same file names (the kernel's name and line), in the folder numba
    # keeps for that checkout's source path. The check used to accept any fused_run-*.nbi.
    shutil.copytree(ours, cache / "models_0123456789abcdef0123456789abcdef01234567")
    assert not _cached_in(cache)
    shutil.copytree(ours, cache / ours.relative_to(real_root), dirs_exist_ok=True)  # this checkout's own entry
    assert _cached_in(cache)
