"""``make bench``: the engine against fair baselines and the machine's limit, on one core.

For each cell (m = 3, D = 5 and m = 6, D = 10 population; m = 6, D = 6 with 2000 samples): 60 GD
and 60 EM runs from random inits with the paper's protocol, as one batch each, as in a sweep, each
timing repeated 3 times (median and min). Beside them, in the same run: the same runs capped at 100
iterations through the kernel and through emrun's own numpy loop (the production path with the
kernel disabled); the plain per-pattern implementation of ``emrun/reference.py`` (one trial); the
flops of one trial-iteration counted from the kernel's loops and a float64 matmul's GFLOP/s; the
load average; a Table 1 sweep on an empty kernel cache against a second one (CPU of the sweep and
its workers); the peak memory of a worker at (6, 10). Saves JSON under results/bench/.
"""

from __future__ import annotations

from emrun import env

env.single_threaded()  # before numpy: the bench measures one core

import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402

from emrun import experiments  # noqa: E402
from emrun.batch import BatchSpec, Cell  # noqa: E402
from emrun.config import validate  # noqa: E402

CELLS = [(3, 5, None), (6, 10, None), (6, 6, 2000)]  # (m, D, samples or None for the population)
RATIO_TARGET = 1000  # at (3, 5): engine trial-iterations/s over the plain implementation's
GFLOPS_SHARE_TARGET = 0.10  # at (6, 10): achieved GFLOP/s over the matmul's


def bench_config(m: int, D: int, runs: int, samples: int | None) -> dict:
    raw = {"name": "bench", "seed": 2019, "grid": {"m": [m], "D": [D]}, "runs": runs,
           "data": "population" if samples is None else {"samples": samples}}
    return validate(raw, "bench", {})[0]


def flops_per_trial_iteration(data, m: int, D: int, algorithm: str) -> int:
    """Floating-point operations of one trial-iteration, counted from the kernel's loops:
    per pattern, D products per component, 2 for the mixture, 2 for its responsibility, 1 for
    its sum and one add per x_j = 1 (E[gamma x]), plus a division per pattern; per iteration, the
    factor table (2 m D) and the update (EM about 3 m D, GD about 9 m D with the projection)."""
    patterns = data.patterns.shape[0]
    ones = float(data.patterns.sum()) / patterns
    per_pattern = m * (D + 5 + ones) + 1
    update = (3 if algorithm == "em" else 9) * m * D + 2 * m * D
    return int(round(patterns * per_pattern + update))


def matmul_gflops(n: int = 1500, repeats: int = 3) -> float:
    a, b = np.random.default_rng(0).standard_normal((2, n, n))
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def plain_rate(data, pi, mu, algorithm: str, minimum_seconds: float = 1.0) -> tuple[float, int]:
    """Trial-iterations per second of the plain implementation (one trial, doubling the
    iterations until the timing is long enough)."""
    from emrun import reference as plain_reference

    iterations = 1
    while True:
        started = time.perf_counter()
        plain_reference.run(data.patterns, data.weights, pi, mu, algorithm, iterations)
        seconds = time.perf_counter() - started
        if seconds >= minimum_seconds:
            return iterations / seconds, iterations
        iterations *= 2


REPEATS = 3  # each timing is repeated; min and median reported
CAPPED_ITERATIONS = 100  # the kernel against the numpy loop: every run capped here, so both do the same work


def _timed(function, repeats: int = REPEATS) -> tuple[list[float], object]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def bench_cell(m: int, D: int, samples: int | None, runs: int) -> dict:
    """60 runs of each algorithm as one batch, as a sweep runs them (median and min of REPEATS);
    the same runs capped at CAPPED_ITERATIONS through the compiled kernel and through emrun's own
    numpy loop (the production path of every other family, kernel disabled: the fair baseline);
    and the plain per-pattern implementation on one trial."""
    from emrun.algorithms import run_batch

    values = bench_config(m, D, runs, samples)
    warm = bench_config(m, D, 2, samples)
    for algorithm, step in (("gd", 0.02), ("em", None)):  # load (or compile) the kernels first
        warm["stopping"][algorithm]["max_iter"] = 5
        experiments.run_batch(warm, "bench", BatchSpec("warm", Cell(m, D, algorithm, step, "uniform"), 0))
    true_pi, true_mu = experiments.true_mixture(values, m, D, 0)
    data = experiments.make_data(values, m, D, 0, true_pi, true_mu)
    figures = {}
    for algorithm, step in (("gd", 0.02), ("em", None)):
        cell = Cell(m, D, algorithm, step, "uniform")
        seconds, result = _timed(lambda cell=cell: experiments.run_batch(values, "bench", BatchSpec("bench", cell, 0)))
        iterations = sum(r["iterations"] for r in result.rows)
        pi0, mu0, _ = experiments.initial_points(values, cell, 0, data)
        capped = {}
        for engine, fused in (("kernel", True), ("numpy", False)):
            arguments = ("bernoulli", data, pi0, mu0, algorithm, CAPPED_ITERATIONS, 0.0, step)
            times, _ = _timed(lambda arguments=arguments, fused=fused: run_batch(*arguments, fused=fused))
            capped[engine] = len(pi0) * CAPPED_ITERATIONS / statistics.median(times)
        plain, plain_iterations = plain_rate(data, pi0[0], mu0[0], algorithm)
        rate = iterations / statistics.median(seconds)
        flops = flops_per_trial_iteration(data, m, D, algorithm)
        figures[algorithm] = {
            "runs": runs, "seconds_median": round(statistics.median(seconds), 3), "seconds_min": round(min(seconds), 3),
            "trial_iterations": iterations, "trial_iterations_per_second": round(rate),
            "trial_iterations_per_second_best": round(iterations / min(seconds)),
            "microseconds_per_trial_iteration": round(1e6 / rate, 3),
            "capped_kernel_per_second": round(capped["kernel"]), "capped_numpy_per_second": round(capped["numpy"]),
            "ratio_to_numpy_loop": round(capped["kernel"] / capped["numpy"], 1),
            "plain_trial_iterations_per_second": round(plain, 1), "plain_iterations_timed": plain_iterations,
            "ratio_to_plain": round(rate / plain, 1), "flops_per_trial_iteration": flops,
            "gflops": round(rate * flops / 1e9, 3),
        }
    return {"m": m, "D": D, "data": "population" if samples is None else f"{samples} samples",
            "patterns": int(data.patterns.shape[0]), "algorithms": figures}


def timed_sweep(config: str, results: str, environment: dict, workers: int = 2,
                cwd: str | None = None) -> tuple[float, float, int]:
    """Run ``emrun sweep`` in a subprocess (in ``cwd``, with ``environment``): its wall seconds, the
    CPU seconds of the command and its workers, and the peak memory (MiB) of any process so far."""
    import subprocess
    import sys

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "emrun.cli", "sweep", config, "--quiet", "--results", results,
                    "--workers", str(workers)], cwd=cwd, env=environment, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, round(after.ru_maxrss / 1024)


def _sweep_cpu(config: str, results: str, environment: dict, workers: int = 2) -> dict:
    wall, cpu, peak = timed_sweep(config, results, environment, workers)
    return {"cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2), "peak_mib_any_process": peak}


def cold_and_warm_sweeps(config: str = "configs/bmm_table1.yaml") -> dict:
    """A fresh machine: an empty HOME and kernel cache. After the install step (make install
    compiles the kernel), the first sweep against a second identical one into fresh folders; and
    without the install step, the first sweep (which compiles, in the parent, once)."""
    import os
    import subprocess
    import sys
    import tempfile

    out = {}
    for install in (True, False):
        with tempfile.TemporaryDirectory() as home:
            environment = {**os.environ, "HOME": home, "EMRUN_CACHE_DIR": f"{home}/cache"}
            environment.pop("NUMBA_CACHE_DIR", None)
            if install:
                subprocess.run([sys.executable, "-c", "from emrun.models.bernoulli import KERNEL; KERNEL.prepare()"],
                               env=environment, check=True)
            first = _sweep_cpu(config, f"{home}/first", environment)
            second = _sweep_cpu(config, f"{home}/second", environment)
        out["after_install" if install else "no_install"] = {
            "first": first, "second": second, "cpu_ratio": round(first["cpu_seconds"] / second["cpu_seconds"], 2)}
    return out


def worker_memory(m: int = 6, D: int = 10) -> dict:
    """Peak resident memory of a sweep's workers on one (m, D) cell (60 EM and 60 GD runs, capped)."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "memory.yaml"
        config.write_text(f"name: memory\nseed: 1\ngrid: {{m: [{m}], D: [{D}]}}\nruns: 60\ntruths: 2\n"
                          "stopping: {em: {max_iter: 200}, gd: {max_iter: 200}}\n")
        sweep = _sweep_cpu(str(config), f"{folder}/results", dict(os.environ))
    return {"m": m, "D": D, "workers": 2, "peak_mib_largest_process": sweep["peak_mib_any_process"]}


def executor_overhead(config: str = "configs/bmm_table1.yaml", workers: int = 2) -> dict:
    """The Table 1 sweep on the local pool and on a Dask LocalCluster, both with ``workers``
    processes: wall time of each (the CLI's own count, LocalCluster start included) and the
    difference per batch."""
    import re
    import subprocess
    import sys
    import tempfile

    seconds = {}
    for executor in ("local", "dask"):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "emrun.cli", "sweep", config, "--quiet", "--results", folder,
                                   "--workers", str(workers), "--executor", executor],
                                  capture_output=True, text=True, check=True)
            wall = time.perf_counter() - started
            batches, sweep = re.search(r"\((\d+) run now in ([\d.]+) s", done.stdout).groups()
            seconds[executor] = {"sweep_seconds": float(sweep), "process_seconds": round(wall, 2)}
    batches = int(batches)
    overhead = (seconds["dask"]["sweep_seconds"] - seconds["local"]["sweep_seconds"]) / batches
    return {"config": config, "workers": workers, "batches": batches, **seconds,
            "dask_overhead_ms_per_batch": round(1000 * overhead, 1)}


@click.command()
@click.option("--runs", default=60, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="results/bench/bench.json", show_default=True)
def main(runs: int, out: str) -> None:
    """Time the three cells, the plain implementation and a matmul; check the targets."""
    load_before = os.getloadavg()
    matmul = matmul_gflops()
    click.echo(f"float64 matmul (1500 x 1500, one thread): {matmul:.1f} GFLOP/s")
    cells = []
    for m, D, samples in CELLS:
        result = bench_cell(m, D, samples, runs)
        cells.append(result)
        for algorithm, f in result["algorithms"].items():
            click.echo(f"m={m} D={D} {result['data']} {algorithm}: {f['trial_iterations']:,} trial-iterations in "
                       f"{f['seconds_median']:.2f} s = {f['trial_iterations_per_second']:,}/s "
                       f"({f['microseconds_per_trial_iteration']} us); "
                       f"numpy loop {f['ratio_to_numpy_loop']}x slower (capped at {CAPPED_ITERATIONS}); "
                       f"plain {f['plain_trial_iterations_per_second']:,}/s, ratio {f['ratio_to_plain']:,}x; "
                       f"{f['flops_per_trial_iteration']:,} flops each, {f['gflops']} GFLOP/s "
                       f"({f['gflops'] / matmul:.1%} of the matmul)")
    small, large = cells[0]["algorithms"], cells[1]["algorithms"]
    targets = {
        "ratio_to_plain_at_3_5": {a: {"ratio": small[a]["ratio_to_plain"], "target": RATIO_TARGET,
                                      "met": small[a]["ratio_to_plain"] >= RATIO_TARGET} for a in small},
        "matmul_share_at_6_10": {a: {"share": round(large[a]["gflops"] / matmul, 4), "target": GFLOPS_SHARE_TARGET,
                                     "met": large[a]["gflops"] / matmul >= GFLOPS_SHARE_TARGET} for a in large},
    }
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(f"targets: {json.dumps(targets)}; peak memory {peak_mib:.0f} MiB")
    executors = executor_overhead()
    click.echo(f"Table 1 sweep, 2 workers: local pool {executors['local']['sweep_seconds']} s, Dask LocalCluster "
               f"{executors['dask']['sweep_seconds']} s: {executors['dask_overhead_ms_per_batch']} ms more per batch")
    sweeps = cold_and_warm_sweeps()
    click.echo("Table 1 sweep on an empty cache: " + "; ".join(
        f"{case}: first {r['first']['cpu_seconds']} s CPU, second {r['second']['cpu_seconds']} s, ratio {r['cpu_ratio']}"
        for case, r in sweeps.items()))
    memory = worker_memory()
    click.echo(f"peak memory of a worker at (6, 10): {memory['peak_mib_largest_process']} MiB")
    result = {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "platform": platform.platform(), "cores_used": 1, "repeats": REPEATS,
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()], "matmul_gflops": round(matmul, 2),
              "cells": cells, "targets": targets, "peak_memory_mib": round(peak_mib, 1), "executors": executors,
              "cold_and_warm_sweeps": sweeps, "worker_memory": memory,
              "command": f"python -m emrun.bench --runs {runs} (make bench)"}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
