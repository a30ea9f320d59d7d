"""Time `make test` (wall and CPU, children included) and record it in results/bench/make_test.json,
from which .ci/readme_times.py writes the README's line for it.

    python3 .ci/time_tests.py          # or: make time-test
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
RECORD = REPOSITORY / "results" / "bench" / "make_test.json"


def main() -> int:
    subprocess.run(["make", "install"], cwd=REPOSITORY, check=True, stdout=subprocess.DEVNULL)
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(["make", "test"], cwd=REPOSITORY)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        print("make test failed: nothing recorded", file=sys.stderr)
        return result.returncode
    record = {"date": date.today().isoformat(), "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
              "cores": os.cpu_count(), "load_average_before": round(load_before, 2),
              "load_average_after": round(os.getloadavg()[0], 2), "machine": platform.processor()
              or platform.machine(), "command": "python3 .ci/time_tests.py"}
    if os.environ.get("EMRUN_TIMED_BESIDE"):  # what else ran on the machine, said by whoever timed it
        record["beside"] = os.environ["EMRUN_TIMED_BESIDE"]
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    print(f"make test: {wall:.0f} s wall, {cpu:.0f} CPU-s; recorded in {RECORD.relative_to(REPOSITORY)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
