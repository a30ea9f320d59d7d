"""``make bench-compare BASE=<commit>``: this checkout against an earlier commit, same machine, same session.

Each measurement runs the real command line of both trees (a worktree of BASE beside this one),
interleaved (base, new, base, new, ...), and keeps every repeat, its median and its minimum, with
the load average before each: a ratio is only fair when both sides ran under the same conditions.
The measurements use only what both trees accept (``emrun sweep`` of a config, each tree's own copy
of it: an older tree refuses keys added since, such as ``companions``, which change no hash; the
two sweeps' config hashes are compared and a difference stops the comparison), so the base's code
runs unmodified:

- the Table 1 sweep (wall and CPU of the sweep and its workers), compiled kernels warm;
- the tail of a batch: one truth of Tables 3-4's cell m = 6, D = 10, 60 EM runs to convergence;
  the kernel time per trial-iteration over the whole batch, divided by that while all 60 runs are
  still active (the same batch capped at 31 iterations, less the batch capped at 1: set-up apart);
- the CPU of paper C's and paper B's dynamics (configs/simplex_rates.yaml, gradem_figure1_rates.yaml);
- with ``--paper``, ``make paper``'s wall time in fresh worktrees of both commits (installed first,
  not timed; once per tree: about 10 to 15 minutes each).

Writes results/bench/compare.json and prints the table.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
TAIL_CONFIG = """name: tail
seed: 2019
grid: {{m: [6], D: [10], algorithm: [em], init: [uniform]}}
data: population
runs: 60
stopping: {{em: {{max_iter: {cap}, tol: 1.0e-5}}}}
"""


def _sweep(tree: Path, config: Path, results: Path, workers: int = 2) -> dict:
    """Run ``emrun sweep`` of ``tree`` (its own code: the working directory and PYTHONPATH are the
    tree's); wall seconds and the CPU seconds of the command and its workers."""
    from emrun.bench import timed_sweep

    wall, cpu, _ = timed_sweep(str(config), str(results), {**os.environ, "PYTHONPATH": str(tree)}, workers,
                               cwd=str(tree))
    return {"wall": round(wall, 3), "cpu": round(cpu, 3)}


def _batch_seconds(results: Path, name: str) -> tuple[float, int]:
    import pyarrow.parquet as pq

    table = pq.read_table(results / name / "batches").to_pandas()
    return float(table["batch_seconds"].iloc[0]), int(table["iterations"].sum())


def tail_metric(tree: Path, scratch: Path) -> dict:
    """Per trial-iteration time over a whole (6, 10) EM batch over that with all 60 runs active."""
    seconds = {}
    scratch.mkdir(parents=True, exist_ok=True)
    for cap in (1, 31, 20000):
        config = scratch / f"tail_{cap}.yaml"
        config.write_text(TAIL_CONFIG.format(cap=cap).replace("name: tail", f"name: tail_{cap}"))
        results = scratch / f"tail_{cap}_{tree.name}"
        _sweep(tree, config, results, workers=1)
        seconds[cap] = _batch_seconds(results, f"tail_{cap}")
    active = (seconds[31][0] - seconds[1][0]) / (60 * 30)
    whole = (seconds[20000][0] - seconds[1][0]) / (seconds[20000][1] - 60)
    return {"us_all_active": round(1e6 * active, 3), "us_whole_batch": round(1e6 * whole, 3),
            "trial_iterations": seconds[20000][1], "metric": round(whole / active, 3)}


def _measure(name: str, tree: Path, scratch: Path) -> tuple[dict, str | None]:
    """The measurement's numbers, and the hash of the config it swept (None: the tail's own configs)."""
    results = scratch / f"{name}_{tree.name}_{time.monotonic_ns()}"
    if name == "tail":
        return tail_metric(tree, results.with_suffix("")), None
    measured = _sweep(tree, tree / "configs" / f"{name}.yaml", results)  # each tree's own: an older one refuses newer keys
    return measured, json.loads((results / name / "manifest.json").read_text())["config_hash"]


def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "all": values}


@click.command()
@click.argument("base")
@click.option("--repeats", default=3, show_default=True)
@click.option("--paper", is_flag=True, help="Also time 'make paper' once per tree (about 10-15 minutes each).")
@click.option("--out", type=click.Path(dir_okay=False), default="results/bench/compare.json", show_default=True)
def main(base: str, repeats: int, paper: bool, out: str) -> None:
    """Compare this checkout with commit BASE on the same machine, interleaved, median of REPEATS."""
    with tempfile.TemporaryDirectory(prefix="emrun-compare-") as folder:
        scratch = Path(folder)
        base_tree = scratch / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base_tree), base], cwd=ROOT, check=True)
        try:
            trees = {"base": base_tree, "new": ROOT}
            for tree in trees.values():  # compile each tree's kernel before anything is timed
                _measure("bmm_table1", tree, scratch)
            measured: dict = {}
            for name in ("bmm_table1", "tail", "simplex_rates", "gradem_figure1_rates"):
                for _ in range(repeats):
                    hashes = set()
                    for side, tree in trees.items():
                        load = os.getloadavg()[0]
                        result, config_hash = _measure(name, tree, scratch)
                        hashes.add(config_hash)
                        if len(hashes) > 1:
                            raise click.ClickException(f"configs/{name}.yaml has another hash at {base} than here "
                                                       f"({', '.join(sorted(map(str, hashes)))}): the trees would time "
                                                       "different work")
                        for key, value in result.items():
                            measured.setdefault(name, {}).setdefault(key, {}).setdefault(side, []).append(value)
                        measured[name].setdefault("load_before", {}).setdefault(side, []).append(round(load, 2))
                click.echo(f"{name}: " + json.dumps({k: {s: statistics.median(v) for s, v in sides.items()}
                                                      for k, sides in measured[name].items()}))
            if paper:  # fresh clones of both commits (no stored rows), installed first, then timed
                new_tree = scratch / "new"
                subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(new_tree), "HEAD"], cwd=ROOT,
                               check=True)
                for side, tree in (("base", base_tree), ("new", new_tree)):
                    subprocess.run(["make", "--no-print-directory", "install"], cwd=tree, check=True, capture_output=True)
                    load = os.getloadavg()[0]
                    started = time.perf_counter()
                    subprocess.run(["make", "--no-print-directory", "paper"], cwd=tree, check=True, capture_output=True)
                    measured.setdefault("make_paper", {}).setdefault("wall", {})[side] = [round(time.perf_counter() - started, 1)]
                    measured["make_paper"].setdefault("load_before", {})[side] = [round(load, 2)]
                    click.echo(f"make paper ({side}): {measured['make_paper']['wall'][side][0]} s")
        finally:
            for tree in (base_tree, scratch / "new"):
                if tree.exists():
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    table = {name: {key: {side: _summary(values) for side, values in sides.items()} for key, sides in keys.items()}
             for name, keys in measured.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {"base": base, "new": commit, "repeats": repeats, "cpu_count": os.cpu_count(), "measurements": table,
              "command": f"python -m emrun.bench_compare {base} --repeats {repeats}{' --paper' if paper else ''} --out {out}"}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    for name, keys in table.items():
        for key, sides in keys.items():
            if key in ("load_before",) or "base" not in sides or "new" not in sides:
                continue
            b, n = sides["base"]["median"], sides["new"]["median"]
            ratio = f"{b / n:.2f}x" if n else "-"
            click.echo(f"{name:22s} {key:16s} base {b:>10} new {n:>10}  base/new {ratio}")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
