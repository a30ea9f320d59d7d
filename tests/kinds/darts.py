"""A kind written to the kind protocol alone (emrun.kinds.protocol): no trial grid, no cells, no
truths, none of the EM/GD vocabulary. Each batch is one thrower who throws ``darts`` seeded darts
at the unit square four times; the report judges that 4 x (share inside the quarter circle) is
within 0.05 of pi. It gives the six required members and two optional ones (replayable, row_noun)."""

import math

import numpy as np

from emrun.batch import BatchResult, BatchSpec
from emrun.plugins import register_kind
from emrun.report import ReportResult
from emrun.report.verdicts import Verdict

THROWS = 4  # rows per batch


class Darts:
    name = "darts"
    keys = {"darts": True, "throwers": True}
    row_noun = "throws"
    replayable = True

    def validate(self, raw, check, out):
        out["darts"] = check.integer(raw["darts"], "darts", 1)
        out["throwers"] = check.integer(raw["throwers"], "throwers", 1, 100)

    def plan(self, config, stored=None):
        return [BatchSpec(f"thrower{index}") for index in range(config.values["throwers"])]

    def run_batch(self, values, config_hash, spec, retry=None):
        rng = np.random.default_rng([values["seed"], int(spec.batch_id.removeprefix("thrower"))])
        rows = []
        for run in range(THROWS):
            x, y = rng.random((2, values["darts"]))
            rows.append({"batch_id": spec.batch_id, "run_index": run, "config_hash": config_hash,
                         "inside": int((x * x + y * y <= 1.0).sum()), "darts": values["darts"]})
        return BatchResult(rows)

    def write_report(self, ctx):
        estimate = 4.0 * ctx.rows["inside"].sum() / ctx.rows["darts"].sum()
        verdict = Verdict.judged("the darts estimate pi", abs(estimate - math.pi) < 0.05, f"estimate {estimate:.4f}",
                                 "|estimate - pi| < 0.05")
        path = ctx.folder / "report.md"
        ctx.write_report(path, f"# {ctx.config['name']}: darts\n\n{len(ctx.rows)} throws.\n\n{verdict.markdown()}\n")
        return ReportResult(path, [verdict])


register_kind(Darts())
