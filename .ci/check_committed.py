"""Does a fresh clone's make target re-write the committed results unchanged?

Clones HEAD into a temporary folder, runs the given make targets there (they install what they
need), then compares every file under results/ with its committed version, allowing only the
differences listed in .ci/may_differ.txt. A file the targets write that is not committed is a
difference too. Exit status 0 when everything matches, 1 otherwise (with what differs).

    python3 .ci/check_committed.py table1 table3 figure2 theory
    python3 .ci/check_committed.py --numpy-baseline table1 table3 figure2 theory
    python3 .ci/check_committed.py --then-numpy-baseline table1 table3 figure2 theory
    python3 .ci/check_committed.py --env OPENBLAS_CORETYPE=Haswell --env OPENBLAS_L2_SIZE=512 table1 theory

--numpy-baseline runs the targets with numpy's dispatch limited to its compiled baseline
(NPY_DISABLE_CPU_FEATURES set to every dispatched instruction set this CPU has), as on an older
x86-64 machine; --env sets other variables for the targets, e.g. another machine's OpenBLAS core.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# The instruction sets numpy dispatches to on this CPU beyond its compiled baseline.
DISPATCHED = ("from numpy._core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f; "
              "print(' '.join(name for name in d if f.get(name)))")


def rules(path: Path) -> list[tuple[str, str, str]]:
    """(file glob, kind, argument) of each rule in may_differ.txt."""
    found = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            glob, kind, argument = line.split(maxsplit=2)
            found.append((glob, kind, argument))
    return found


def comparable(name: str, text: str, allowed: list[tuple[str, str, str]]) -> str:
    """The text of a file with what may differ taken out."""
    mine = [(kind, argument) for glob, kind, argument in allowed if fnmatch.fnmatch(name, glob)]
    for kind, argument in mine:
        if kind == "line":
            pattern = re.compile(argument)
            text = "\n".join(line for line in text.splitlines() if not pattern.search(line))
        elif kind == "json":
            value = json.loads(text)
            value.pop(argument, None)
            text = json.dumps(value, indent=1, sort_keys=True)
        elif kind == "csv":
            table = list(csv.reader(io.StringIO(text)))
            if table and argument in table[0]:
                column = table[0].index(argument)
                table = [row[:column] + row[column + 1:] for row in table]
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(table)
            text = out.getvalue()
    return text


def differences(clone: Path, allowed: list[tuple[str, str, str]]) -> list[str]:
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "results"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    found = []
    for entry in status:
        state, name = entry[:2], entry[3:]
        if state == "??":
            found.append(f"{name}: written by the make target but not committed")
            continue
        if state.strip() == "D":
            found.append(f"{name}: committed but no longer written")
            continue
        committed = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=clone, capture_output=True, check=True).stdout
        written = (clone / name).read_bytes()
        try:
            before, after = (comparable(name, data.decode(), allowed) for data in (committed, written))
        except UnicodeDecodeError:
            found.append(f"{name}: a binary file differs")
            continue
        if before != after:
            diff = difflib.unified_diff(before.splitlines(), after.splitlines(), "committed", "written", lineterm="", n=1)
            found.append(f"{name}:\n" + "\n".join(list(diff)[:30]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", help="make targets to run in the clone (e.g. table1 figure2 theory)")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set a variable for the make targets (repeatable)")
    parser.add_argument("--numpy-baseline", action="store_true",
                        help="limit numpy to its compiled baseline instruction set (NPY_DISABLE_CPU_FEATURES)")
    parser.add_argument("--then-numpy-baseline", action="store_true",
                        help="after the first pass, remove the rows and run the targets again with numpy limited "
                             "to its baseline, in the same clone (one install for both)")
    arguments = parser.parse_args()
    environment = dict(os.environ)
    for setting in arguments.env:
        name, _, value = setting.partition("=")
        environment[name] = value
    workspace = Path(tempfile.mkdtemp(prefix="emrun-check-"))
    clone = workspace / "clone"
    try:
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPOSITORY), str(clone)], check=True)
        if arguments.numpy_baseline:
            subprocess.run(["make", "--no-print-directory", "install"], cwd=clone, check=True)
            environment["NPY_DISABLE_CPU_FEATURES"] = subprocess.run(
                [str(clone / ".venv" / "bin" / "python"), "-c", DISPATCHED], capture_output=True, text=True,
                check=True).stdout.strip()
        changed = {name: value for name, value in environment.items() if os.environ.get(name) != value}
        print(f"check-committed: running 'make {' '.join(arguments.targets)}' in a clone of HEAD"
              + "".join(f", {name}={value}" for name, value in changed.items()), flush=True)
        subprocess.run(["make", "--no-print-directory", *arguments.targets], cwd=clone, check=True, env=environment)
        found = differences(clone, rules(clone / ".ci" / "may_differ.txt"))
        if arguments.then_numpy_baseline:
            subprocess.run(["make", "--no-print-directory", "clean"], cwd=clone, check=True)
            environment["NPY_DISABLE_CPU_FEATURES"] = subprocess.run(
                [str(clone / ".venv" / "bin" / "python"), "-c", DISPATCHED], capture_output=True, text=True,
                check=True).stdout.strip()
            print(f"check-committed: again with the rows removed and NPY_DISABLE_CPU_FEATURES="
                  f"{environment['NPY_DISABLE_CPU_FEATURES']}", flush=True)
            subprocess.run(["make", "--no-print-directory", *arguments.targets], cwd=clone, check=True, env=environment)
            found += [f"(numpy baseline) {difference}"
                      for difference in differences(clone, rules(clone / ".ci" / "may_differ.txt"))]
    except subprocess.CalledProcessError as error:
        print(f"check-committed: {' '.join(map(str, error.cmd))} failed with status {error.returncode}", file=sys.stderr)
        return 1
    finally:
        if arguments.keep:
            print(f"check-committed: the clone is kept at {clone}")
        else:
            shutil.rmtree(workspace, ignore_errors=True)
    if found:
        print(f"check-committed: {len(found)} committed file(s) are not what the code writes "
              "(re-run the target and commit, or list a legitimate difference in .ci/may_differ.txt):", file=sys.stderr)
        print("\n".join(found), file=sys.stderr)
        return 1
    print("check-committed: every committed result was re-written unchanged (apart from .ci/may_differ.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
