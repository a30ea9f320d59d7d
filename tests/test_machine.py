"""A sweep records what computed it, below the Python packages (issue: results on any x86-64 machine)."""

from __future__ import annotations

import json

from emrun.machine import compute_environment
from tests.conftest import TINY, emrun


def test_a_sweep_names_the_cpu_simd_blas_core_and_numba_target(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    history = json.loads((tmp_path / "results" / "tiny" / "sweeps.json").read_text())
    compute = history["sweeps"][-1]["compute"]
    assert compute["cpu"] and compute["numba_target"]["cpu"]
    assert compute["numpy_simd"]["baseline"], "numpy's compiled baseline is named"
    assert compute["blas"] and all(entry["library"] and entry["core"] for entry in compute["blas"])


def test_a_variable_that_chooses_kernels_is_recorded_when_set(monkeypatch):
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")
    monkeypatch.delenv("NPY_DISABLE_CPU_FEATURES", raising=False)
    compute = compute_environment()
    assert compute["variables"]["NUMBA_CPU_NAME"] == "generic" and compute["numba_target"]["cpu"] == "generic"
    assert "NPY_DISABLE_CPU_FEATURES" not in compute["variables"]
