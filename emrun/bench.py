"""``make bench``: time the engine on one cell (population, paper protocol); m = 3, D = 5 by default.

60 GD runs and 60 EM runs from random inits, each as one batch, on one core (one BLAS thread),
as in ``emrun sweep``. Prints trial-iterations and runs per second and the peak memory, and
saves them as JSON under results/bench/.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from emrun import experiments  # noqa: E402
from emrun.config import Cell, validate  # noqa: E402

TARGET_SECONDS = {(3, 5): 2.0}  # the foundation issue's target for this cell


def bench_config(m: int, D: int, runs: int) -> dict:
    raw = {"name": "bench", "seed": 2019, "grid": {"m": [m], "D": [D]}, "runs": runs}
    return validate(raw, "bench", {})


@click.command()
@click.option("--m", default=3, show_default=True)
@click.option("--D", "D", default=5, show_default=True)
@click.option("--runs", default=60, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="results/bench/bench.json", show_default=True)
def main(m: int, D: int, runs: int, out: str) -> None:
    """Time 60 GD + 60 EM runs of one cell to convergence with the paper's protocol."""
    values = bench_config(m, D, runs)
    # Load (or compile) the engine's kernels first: a one-off cost per process, reported apart.
    started = time.perf_counter()
    warm = bench_config(m, D, 2)
    for algorithm, step in (("gd", 0.02), ("em", None)):
        warm["stopping"][algorithm]["max_iter"] = 5
        experiments.run_batch(warm, "bench", experiments.BatchSpec("warm", Cell(m, D, algorithm, step, "uniform"), 0))
    load_seconds = time.perf_counter() - started
    click.echo(f"engine load (numba cache or compile, once per process): {load_seconds:.2f} s")
    figures = {}
    total = 0.0
    for algorithm, step in (("gd", 0.02), ("em", None)):
        spec = experiments.BatchSpec("bench", Cell(m, D, algorithm, step, "uniform"), 0)
        started = time.perf_counter()
        rows = experiments.run_batch(values, "bench", spec)
        seconds = time.perf_counter() - started
        total += seconds
        iterations = sum(r["iterations"] for r in rows)
        figures[algorithm] = {
            "runs": runs, "seconds": round(seconds, 3), "runs_per_second": round(runs / seconds, 2),
            "trial_iterations": iterations, "trial_iterations_per_second": round(iterations / seconds),
            "microseconds_per_trial_iteration": round(1e6 * seconds / iterations, 3),
        }
        click.echo(f"{algorithm}: {runs} runs, {iterations} trial-iterations in {seconds:.2f} s: "
                   f"{runs / seconds:.1f} runs/s, {iterations / seconds:,.0f} trial-iterations/s "
                   f"({1e6 * seconds / iterations:.2f} us each)")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    target = TARGET_SECONDS.get((m, D))
    verdict = f" (target {target} s: {'met' if total <= target else 'not met'})" if target else ""
    click.echo(f"cell m={m}, D={D}: {2 * runs} runs in {total:.2f} s{verdict}; peak memory {peak_mib:.0f} MiB")
    result = {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "platform": platform.platform(), "cores_used": 1, "m": m, "D": D, "data": "population",
              "algorithms": figures, "cell_seconds": round(total, 3), "target_seconds": target,
              "peak_memory_mib": round(peak_mib, 1), "engine_load_seconds": round(load_seconds, 2),
              "command": f"python -m emrun.bench --m {m} --D {D} --runs {runs} (make bench)"}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
