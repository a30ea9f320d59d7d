"""The README's table of times, written from the committed results (one source for every time it states).

Each make target's configs are read from the Makefile; each config's seconds from the provenance.json
its last report wrote (the sweeps that produced the rows, and the report itself). Prints the table, or
with --write replaces the block between the README's markers; tests/test_committed.py holds the
README equal to what this writes.

    python3 .ci/readme_times.py --write
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
BEGIN = "<!-- times: written by `python3 .ci/readme_times.py --write` from results/*/provenance.json -->"
END = "<!-- /times -->"
# The make targets the README's table covers, in its order.
TARGETS = ("table1", "table2", "table3", "figure2", "theory", "gradem", "simplex", "digits", "segmentation",
           "heavy-ball", "jin2016", "paper", "extended")


def makefile_configs(text: str) -> dict[str, list[str]]:
    """The configs each target sweeps, in order: its recipe's config files, its $(call sweep_all, ...)
    lists, the CONFIG it sets, and those of the targets it depends on (other than install)."""
    text = text.replace("\\\n", " ")
    variables = dict(re.findall(r"^([A-Z_]+) := (.*)$", text, flags=re.M))
    per_target = dict(re.findall(r"^([a-z0-9-]+): CONFIG := (\S+)$", text, flags=re.M))

    def expand(words: str) -> list[str]:
        out = []
        for word in words.split():
            name = re.fullmatch(r"\$\(([A-Z_]+)\)", word)
            out += expand(variables[name.group(1)]) if name else [word]
        return out

    configs: dict[str, list[str]] = {}
    for targets, dependencies, recipe in re.findall(r"^([a-z0-9 -]+):(?! CONFIG)([^\n]*)\n((?:\t[^\n]*\n)*)", text, flags=re.M):
        for target in targets.split():
            found = [c for d in dependencies.split() if d != "install" for c in configs.get(d, [])]
            for line in recipe.splitlines():
                line = line.replace("$(CONFIG)", per_target.get(target, "$(CONFIG)"))
                for listed in re.findall(r"\$\(call sweep_all,([^)]*\)?)\)", line):
                    found += expand(listed)
                found += re.findall(r"(?:configs|examples/[\w-]+)/([\w-]+)\.yaml", line)
            configs[target] = list(dict.fromkeys(found))
    return configs


def measured(results: Path, name: str) -> dict | None:
    """A config's seconds from its provenance.json: its producing sweeps' and its last report's."""
    path = results / name / "provenance.json"
    if not path.is_file():
        return None
    provenance = json.loads(path.read_text())
    sweeps = provenance.get("sweeps", [])
    report = provenance.get("report") or {}
    return {"sweep": sum(float(s.get("seconds") or 0.0) for s in sweeps), "report": report.get("seconds"),
            "workers": sorted({s.get("workers") for s in sweeps if s.get("workers")}),
            "date": max((str(s.get("time", ""))[:10] for s in sweeps), default=""),
            "cpu": next((s.get("compute", {}).get("cpu") for s in reversed(sweeps) if s.get("compute")), None),
            "load": [s["load_average"] for s in sweeps if isinstance(s.get("load_average"), (int, float))],
            "sweeps": len(sweeps)}


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"


def table(repository: Path = REPOSITORY) -> str:
    configs = makefile_configs((repository / "Makefile").read_text())
    lines = [BEGIN, "", "| target | sweeps | reports | configs | measured |", "|---|---|---|---|---|"]
    for target in TARGETS:
        found = {name: measured(repository / "results", name) for name in configs[target]}
        known = {name: m for name, m in found.items() if m is not None}
        missing = sorted(set(found) - set(known))
        sweep = sum(m["sweep"] for m in known.values())
        reports = [m["report"] for m in known.values() if m["report"] is not None]
        report = duration(sum(reports)) + ("" if len(reports) == len(known) else f" ({len(reports)} of {len(known)})")
        dates = sorted({m["date"] for m in known.values() if m["date"]})
        workers = sorted({w for m in known.values() for w in m["workers"]})
        note = f"; not measured: {', '.join(missing)}" if missing else ""
        if not known:
            lines.append(f"| `make {target}` | not measured | | {len(configs[target])}{note} | |")
            continue
        loads = [load for m in known.values() for load in m["load"]]
        unknown = sum(m["sweeps"] for m in known.values()) - len(loads)
        span = f"{min(loads):.1f}" + (f"-{max(loads):.1f}" if loads and max(loads) - min(loads) >= 0.05 else "") if loads else ""
        load = (f"load {span} at the start" if loads else "") + \
            (f"{', ' if loads else ''}load not recorded for {unknown} sweep{'s' if unknown != 1 else ''}" if unknown else "")
        when = f"{dates[0]}" + (f" to {dates[-1]}" if len(dates) > 1 else "") + \
            f", {'/'.join(map(str, workers))} worker{'s' if workers != [1] else ''}; {load}"
        lines.append(f"| `make {target}` | {duration(sweep)} | {report if reports else 'not recorded'} | "
                     f"{len(configs[target])}{note} | {when} |")
    cpus = sorted({m["cpu"] for name in {c for t in TARGETS for c in configs[t]}
                   if (m := measured(repository / "results", name)) and m["cpu"]})
    lines += [_test_line(repository)]
    lines += ["", "Seconds of the sweeps that produced the committed rows and of the reports that judged them, "
              "summed over the target's configs, as each `provenance.json` records them "
              f"(CPU: {'; '.join(cpus) or 'not recorded'}), with the machine's load average when each sweep "
              "started: other work running beside a sweep stretches its seconds. Installing and compiling the "
              "Bernoulli kernel on a fresh machine comes on top, once.", "", END]
    return "\n".join(lines)


def _test_line(repository: Path) -> str:
    """The test suite's row, from results/bench/make_test.json (written by `make time-test`)."""
    path = repository / "results" / "bench" / "make_test.json"
    if not path.is_file():
        return "| `make test` | not measured (`make time-test`) | | | |"
    record = json.loads(path.read_text())
    return (f"| `make test` | {duration(record['wall_seconds'])} wall, {duration(record['cpu_seconds'])} of CPU | | "
            f"the test suite and ruff | {record['date']}, {record['cores']} cores, load {record['load_average_before']} "
            f"before{'; beside ' + record['beside'] if record.get('beside') else ''} (`make time-test`) |")


def replaced(readme: str, block: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + block + readme[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the block in README.md")
    block = table()
    if parser.parse_args().write:
        path = REPOSITORY / "README.md"
        path.write_text(replaced(path.read_text(), block))
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
