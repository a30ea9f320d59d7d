"""What the grid kinds share: a grid of cells (m, D, algorithm and its hyperparameters, init
scheme) crossed with truths, and the config keys that describe it.

:class:`CellGrid` validates those keys into the canonical config, expands the cells and plans one
batch per (cell, truth); the shared keys' checks are in :mod:`emrun.kinds.grid_keys`. The trial
kinds (:mod:`emrun.kinds.trials`) are trial grids and subclass it; the theory and dynamics kinds
have a grid as a part (``self.grid``) and pass on to it only the members that are about the grid
(its cells, truths and plan), so that nothing about trials (their cost per iteration, traces,
memory) is theirs by inheritance. A plug-in kind may do either, or follow the protocol
(:mod:`emrun.kinds.protocol`) with no grid at all.
"""

from __future__ import annotations

from itertools import product
from typing import Any

from emrun.batch import BatchSpec, Cell
from emrun.config import Checker, Config
from emrun.kinds.grid_keys import LEGACY_ALGORITHMS, check_data, check_grid, check_record, check_runs_and_stopping, check_variants
from emrun.kinds.inputs import check_init_options, check_mixture
from emrun.registry import ALGORITHMS, ARTEFACTS, FAMILIES
from emrun.settings import K_CLUSTER_THRESHOLD, GridSettings
from emrun.truths import settings, truth_axes

SAMPLE_SECONDS = 2e-8  # drawing one value of a sample (uniform draw, comparison, np.unique), from make bench's machine
SHARED_KEYS = {"model": False, "gd_boundary": False, "em_update": False, "compare_to": False, "grid": True,
               "data": False, "truths": False, "runs": False, "stopping": False, "k_cluster_threshold": False,
               "init_options": False, "record": False}


def algorithm_columns(values: dict) -> list[str]:
    """Names of the hyperparameters (other than the step) that the config's grid varies."""
    truth = truth_axes(values)
    return [key for key in values["grid"] if key not in ("m", "D", "algorithm", "step", "init")
            and not key.endswith("_max_iter") and key not in truth]


NOT_RUN_DEFINING = ("name", "description", "claims", "baseline", "compare_to", "record", "truths", "runs", "stopping",
                    "grid", "plugins", "claim_plugins", "report_sections", "companions", "em_update", "gd_boundary")


def run_identity(values: dict, algorithm: str) -> str:
    """A digest of what makes a config's runs of ``algorithm`` what they are, whatever the folder's
    name: the shared settings, the algorithm's runs and stopping rule, its own hyperparameters and
    the family variant it uses (EM's update rule, GD's boundary rule)."""
    import hashlib
    import json

    known = ALGORITHMS.get(algorithm) if algorithm in ALGORITHMS else None
    grid = values.get("grid", {})
    own = set(known.hyperparameters) if known is not None else set(grid) - {"m", "D", "algorithm", "init"}
    own.add(f"{algorithm}_max_iter")  # a grid of iteration caps (GD's sensitivity study)
    per = {key: (value.get(algorithm) if isinstance(value, dict) else value)
           for key, value in ((k, values.get(k)) for k in ("runs", "stopping"))}
    variant = {"em": "em_update", "gradient": "gd_boundary"}.get(getattr(known, "requires", None))
    shared = {k: v for k, v in values.items() if k not in NOT_RUN_DEFINING}
    axes = {k: grid[k] for k in truth_axes(values)}  # the truths run (only when the grid varies them)
    text = json.dumps({"algorithm": algorithm, **shared, **per, "init": grid.get("init"),
                       "hyperparameters": {k: grid[k] for k in sorted(own) if k in grid},
                       "variant": values.get(variant) if variant else None, **({"truth_axes": axes} if axes else {})},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def runs_judged(values: dict, verdict: Any) -> dict:
    """Which runs decided a verdict, from the config: per algorithm it judges, an identity of
    everything that makes those runs what they are (model, data, seed, init, the algorithm's own
    settings), and the cells and truths run. Two verdicts on the same claim whose identities
    match and whose cells and truths are contained in the other's judge the same runs (or a
    subset of them): REPORT.md counts that finding once."""
    algorithms = list(verdict.judges or values["grid"].get("algorithm", []))
    truths = values.get("truths")
    count = truths if isinstance(truths, int) else truths.get("max") if isinstance(truths, dict) else None
    # A comparison of two variants (EM update rules) judges the runs of both, from either side:
    # its identity leaves the variant out, so that both sides are one finding.
    identity_of = (lambda a: run_identity({**values, "em_update": None, "gd_boundary": None}, a)) \
        if getattr(verdict, "symmetric", False) else (lambda a: run_identity(values, a))
    return {"identity": {a: identity_of(a) for a in algorithms}, "m": list(values["grid"].get("m", [])),
            "D": list(values["grid"].get("D", [])), "truths": count}


class CellGrid:
    """A grid of cells crossed with truths; one batch per (cell, truth)."""

    name = "grid"
    keys = SHARED_KEYS
    row_noun = "rows"
    adaptive = False  # True if the plan grows with the stored rows
    replayable = False  # True if a stored row can be re-run alone (emrun replay)
    default_algorithms = LEGACY_ALGORITHMS

    def __init__(self, default_algorithms: tuple[str, ...] | None = None, check_model=None):
        """As a part of another kind: ``default_algorithms`` when its config names none (a check
        runs its own algorithms, so the grid's only name batches); ``check_model(raw, check, out)``
        instead of "any registered family"."""
        if default_algorithms is not None:
            self.default_algorithms = default_algorithms
        if check_model is not None:
            self.check_model = check_model

    def declared_claims(self, values: dict) -> list:
        """The claims a config of this kind is judged on (emrun.criteria.Declared), known before any row."""
        from emrun.report.claims import declared

        return declared(values) if "claims" in values or values.get("compare_to") else []

    def runs_judged(self, values: dict, verdict: Any) -> dict:
        return runs_judged(values, verdict)

    # --- validation ---------------------------------------------------------------------------

    def validate(self, raw: dict, check: Checker, out: dict) -> None:
        self.check_model(raw, check, out)
        family = FAMILIES.get(out["model"]) if out["model"] in FAMILIES else None
        if family is not None:
            check_variants(raw, check, out, family)
        compare_to = raw.get("compare_to")
        out["compare_to"] = None if compare_to is None else check.registered(compare_to, "compare_to", ARTEFACTS)
        check_grid(raw, check, out, self.default_algorithms, self.truth_options(out))
        check_data(raw, check, out)
        self.check_truths(raw, check, out, family)
        check_runs_and_stopping(raw, check, out)
        out["k_cluster_threshold"] = check.number(raw.get("k_cluster_threshold", K_CLUSTER_THRESHOLD), "k_cluster_threshold",
                                                  below_one=True)
        self.check_init_options(raw, check, out, family)
        check_record(raw, check, out)

    def check_model(self, raw: dict, check: Checker, out: dict) -> None:
        out["model"] = check.registered(raw.get("model", "bernoulli"), "model", FAMILIES)

    def truth_options(self, out: dict) -> dict:
        """The truth options this kind lets the grid vary (the trial kinds: the family's)."""
        return {}

    def check_truths(self, raw: dict, check: Checker, out: dict, family) -> None:
        truths = raw.get("truths", 1)
        if isinstance(truths, list):
            mean_range = family.mean_range if family is not None else None
            out["truths"] = [check_mixture(check, t, f"truths[{i}]", mean_range) for i, t in enumerate(truths)]
            if not out["truths"]:
                check.fail("truths", "'truths' must list at least one mixture")
            for i, t in enumerate(out["truths"]):
                shape = (len(t["pi"]), len(t["mu"][0]))
                if any((m, D) != shape for m in out["grid"]["m"] for D in out["grid"]["D"]):
                    check.fail(f"truths[{i}]", f"given truth {i} has (m, D) = {shape}; grid.m and grid.D must be exactly that")
        else:
            out["truths"] = check.integer(truths, "truths", 1)

    def check_init_options(self, raw: dict, check: Checker, out: dict, family) -> None:
        check_init_options(raw, check, out, family)

    def settings(self, values: dict) -> GridSettings:
        return GridSettings.from_values(values)

    def names_used(self, values: dict) -> set[str]:
        """The registered names that make the config's rows (its kind, family, algorithms, init schemes;
        not its claims, which only judge them): an installed plug-in that registers one enters the hash."""
        return {values["experiment"], values["model"], *values["grid"]["algorithm"], *values["grid"]["init"]}

    def prepare(self, values: dict, say=None) -> None:
        """Ready this process to run the config's batches: compile (or load from the cache) the
        accelerators its family and algorithms use. The sweep calls it before its workers start,
        so that they load the compiled code instead of each compiling it, and each worker before
        its first batch, so that no batch's timing includes it. ``say(text)`` tells the user."""
        from emrun.registry import ACCELERATORS

        model = values.get("model")
        ready = set()
        for algorithm in values.get("grid", {}).get("algorithm", ()):
            name = f"{model}/{algorithm}"
            accelerator = ACCELERATORS.get(name) if name in ACCELERATORS else None
            if accelerator is not None and id(accelerator) not in ready and hasattr(accelerator, "prepare"):
                accelerator.prepare(say)
                ready.add(id(accelerator))

    # --- cells and the plan ---------------------------------------------------------------------

    def cells(self, values: dict) -> list[Cell]:
        grid = values["grid"]
        extra = algorithm_columns(values)
        cells = []
        for m, D, truth, name, init in product(grid["m"], grid["D"], settings(values), grid["algorithm"], grid["init"]):
            hyper = ALGORITHMS.get(name).hyperparameters
            steps = grid["step"] if "step" in hyper else [None]
            caps = grid.get(f"{name}_max_iter", [None])
            axes = [[(key, value) for value in grid[key]] for key in extra if key in hyper]
            cells.extend(Cell(m, D, name, step, init, cap, tuple(params), tuple(truth))
                         for step in steps for params in product(*axes) for cap in caps)
        return cells

    def n_truths(self, values: dict) -> int:
        return self.settings(values).n_truths

    def plan(self, config: Config, stored=None) -> list[BatchSpec]:
        """One batch per (cell, truth), in a fixed order."""
        return [BatchSpec(f"{cell.label}-truth{t}", cell, t) for cell in config.cells() for t in range(config.n_truths)]

    def find_batch(self, config: Config, batch_id: str) -> BatchSpec:
        """The batch of a config with this id (as stored in its rows); KeyError if there is none."""
        for cell in config.cells():
            prefix = f"{cell.label}-truth"
            if batch_id.startswith(prefix) and batch_id[len(prefix):].isdigit():
                return BatchSpec(batch_id, cell, int(batch_id[len(prefix):]))
        raise KeyError(batch_id)

    def planned_bound(self, config: Config) -> int:
        """At most how many batches the config plans (cells x truths), counted without building them."""
        return len(config.cells()) * config.n_truths

    def first_round(self, config: Config) -> int:
        """How many batches the first round plans, counted without building them."""
        return len(config.cells()) * config.n_truths

    def seconds_per_trial_iteration(self, values: dict, cell: Cell) -> float:
        """The cost model's price of one trial-iteration (a kind that knows better says so)."""
        return 1e-5

    def estimated_seconds(self, values: dict) -> float:
        """CPU seconds at most: every run of every planned batch to its iteration cap, priced by
        :meth:`seconds_per_trial_iteration` (the bench's measured cost for the cell's size)."""
        truths = self.n_truths(values)
        total = 0.0
        for cell in self.cells(values):
            cap = cell.max_iter or values["stopping"][cell.algorithm]["max_iter"]
            total += values["runs"][cell.algorithm] * truths * cap * self.seconds_per_trial_iteration(values, cell)
            total += truths * self.drawing_seconds(values, cell)
        return total

    def drawing_seconds(self, values: dict, cell: Cell) -> float:
        """Drawing a batch's sample, once per batch: a large sample costs time even when every run
        stops at once (it was priced at nothing)."""
        data = values.get("data")
        return SAMPLE_SECONDS * data["n"] * cell.D if isinstance(data, dict) and data.get("kind") == "samples" else 0.0

    def describe(self, config: Config) -> list[str]:
        """What a dry run prints: the grid, the truths and runs, the cells (the sweep adds the time)."""
        runs = config.values["runs"]
        per_algorithm = " / ".join(f"{runs[a]} {a.upper() if a in LEGACY_ALGORITHMS else a}"
                                   for a in config.values["grid"]["algorithm"])
        cells = config.cells()
        # A cell is one (m, D), as the reports use the word; each runs every algorithm setting.
        n_cells = len({(cell.m, cell.D) for cell in cells})
        per_cell = len(cells) // n_cells if len(cells) % n_cells == 0 else None
        settings = f"{per_cell} algorithm setting{'' if per_cell == 1 else 's'}" if per_cell else "its algorithm settings"
        lines = [f"config {config.name} (hash {config.hash}): {n_cells} cells (m, D) x {settings} ({len(cells)} in all) "
                 f"x {self.truths_text(config)} x "
                 f"{per_algorithm} runs; {self.first_round(config)} batches in the first round (at most "
                 f"{config.trial_count()} trials)"]
        return lines + [f"  {cell.label}" for cell in cells[:200]] + (
            [f"  ... and {len(cells) - 200} more"] if len(cells) > 200 else [])

    def truths_text(self, config: Config) -> str:
        return f"{config.n_truths} truth(s)"

    def estimated_cost(self, values: dict, spec: BatchSpec) -> float:
        """CPU seconds of a batch if every run reached its cap (the cost model of
        :meth:`estimated_seconds`): long batches start first, and the progress bar weighs by it."""
        cell = spec.cell
        cap = cell.max_iter or values["stopping"][cell.algorithm]["max_iter"]
        return (values["runs"][cell.algorithm] * cap * self.seconds_per_trial_iteration(values, cell)
                + self.drawing_seconds(values, cell))



class HasGrid:
    """A kind with a grid of cells x truths as a part (``self.grid``, a :class:`CellGrid`): the
    members about the grid (its cells, truths, plan, the batches' relative cost and which runs a
    verdict judged) are the grid's; all else is the kind's own."""

    grid: CellGrid

    def cells(self, values: dict) -> list[Cell]:
        return self.grid.cells(values)

    def n_truths(self, values: dict) -> int:
        return self.grid.n_truths(values)

    def plan(self, config: Config, stored=None) -> list[BatchSpec]:
        return self.grid.plan(config, stored)

    def find_batch(self, config: Config, batch_id: str) -> BatchSpec:
        return self.grid.find_batch(config, batch_id)

    def planned_bound(self, config: Config) -> int:
        return self.grid.planned_bound(config)

    def first_round(self, config: Config) -> int:
        return self.grid.first_round(config)

    def describe(self, config: Config) -> list[str]:
        return self.grid.describe(config)

    def prepare(self, values: dict, say=None) -> None:
        self.grid.prepare(values, say)

    def estimated_cost(self, values: dict, spec: BatchSpec) -> float:
        return self.grid.estimated_cost(values, spec)

    def runs_judged(self, values: dict, verdict: Any) -> dict:
        return self.grid.runs_judged(values, verdict)

