"""Reports from stored results only: one report per results folder, and an index.

The report of a paper-protocol experiment (one truth per cell) also uses, when they exist, the
results of its many-truths companion: a config identical but for its name, description and
number of truths.
"""

from __future__ import annotations

import json
from pathlib import Path

from emrun.store import FAILED, MANIFEST, has_rows, load_results, load_traces, result_folders

INDEX = "REPORT.md"


def _protocol(config: dict, ignore: tuple[str, ...] = ()) -> str:
    same = {k: v for k, v in config.items() if k not in ("name", "description", "truths", *ignore)}
    if "grid.algorithm" in ignore:
        same["grid"] = {k: v for k, v in same["grid"].items() if k not in ("algorithm", "step")}
    return json.dumps(same, sort_keys=True)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def _most_truths(folder: Path, root: Path, ignore: tuple[str, ...], differs: str | None,
                 at_least: int = 2) -> Path | None:
    """The stored folder with the most random truths (``at_least`` or more) whose config equals this
    one's but for name, description, truths and ``ignore``; with ``differs``, that key must differ too."""
    config = _manifest(folder)["config"]
    best, best_truths = None, at_least - 1
    for other in result_folders(root):
        other_config = _manifest(other)["config"]
        truths = other_config["truths"]
        if other == folder or not isinstance(truths, int) or truths <= best_truths or not has_rows(other):
            continue
        if differs is not None and other_config.get(differs) == config.get(differs):
            continue
        if _protocol(other_config, ignore) == _protocol(config, ignore):
            best, best_truths = other, truths
    return best


def many_truths_companion(folder: Path, root: Path) -> Path | None:
    """The results folder of the same protocol with the most random truths (> 1), if any."""
    return _most_truths(folder, root, (), None)


def other_rule_companion(folder: Path, root: Path) -> Path | None:
    """A many-truths results folder of the same protocol run with the other GD boundary rule."""
    return _most_truths(folder, root, ("gd_boundary",), "gd_boundary")


def simultaneous_em_companion(folder: Path, root: Path) -> Path | None:
    """A results folder of the same protocol run with the standard EM update (for pairing runs)."""
    return _most_truths(folder, root, ("em_update", "grid.algorithm"), "em_update", at_least=1)


def write_reports(folders: list[Path], root: Path, command: str) -> list[Path]:
    """Write each folder's report and the index ``root/REPORT.md``; return the paths written."""
    from emrun.report import digits, figure2, gradem, kcluster, table34, theory, variants

    loaded: dict[Path, object] = {}
    failed: dict[Path, object] = {}

    def rows_of(folder: Path):
        """The folder's rows without failed trials, which no table averages (they are counted below)."""
        if folder not in loaded:
            rows = load_results(folder)
            is_failed = rows["status"] == FAILED if "status" in rows else rows["batch_id"].isna()
            loaded[folder], failed[folder] = rows[~is_failed].reset_index(drop=True), rows[is_failed]
        return loaded[folder]

    written = []
    for folder in folders:
        manifest = _manifest(folder)
        rows = rows_of(folder)
        config = manifest["config"]
        if config["experiment"] == "first_k_cluster":
            written.append(table34.write(rows, manifest, folder, command)[0])
            continue
        if config["data"]["kind"] == "dataset":
            written.append(digits.write(rows, manifest, folder, command))
            continue
        if config["experiment"] == "theory":
            written.append(theory.write(rows, manifest, folder, command))
            continue
        if config["experiment"] == "dynamics":
            written.append(gradem.write(rows, manifest, folder, command))
            continue
        if config.get("compare_to") == "uai2019_figure2":
            written.append(figure2.write(rows, load_traces(folder), manifest, folder, command))
            continue
        if config.get("em_update") == "in_place":
            other = simultaneous_em_companion(folder, root)
            companion = (other.name, rows_of(other)) if other is not None else None
            written.append(variants.write_em_update(rows, manifest, folder, companion, command))
            continue
        if len(config["grid"]["step"]) > 1 or "gd_max_iter" in config["grid"]:
            written.append(variants.write_sensitivity(rows, manifest, folder, command))
            continue
        many = None
        if isinstance(manifest["config"]["truths"], int) and manifest["config"]["truths"] == 1:
            companion = many_truths_companion(folder, root)
            if companion is not None:
                many = (companion.name, rows_of(companion))
        # Both GD boundary rules over many truths, when both were run: how much each explains.
        rules = {}
        own_many = many[1] if many is not None else (rows if manifest["config"]["truths"] != 1 else None)
        other = other_rule_companion(folder, root)
        if own_many is not None and other is not None:
            rules = {manifest["config"].get("gd_boundary", "exact"): (folder.name if many is None else many[0], own_many),
                     _manifest(other)["config"].get("gd_boundary", "exact"): (other.name, rows_of(other))}
        path, _ = kcluster.write(rows, manifest, folder, many, command, rules)
        written.append(path)
    for folder, path in zip(folders, written, strict=True):
        with path.open("a") as report:
            report.write("\n".join(completeness(_manifest(folder), rows_of(folder), failed[folder])) + "\n")
    written.append(write_index(root, command))
    return written


def completeness(manifest: dict, rows, failed) -> list[str]:
    """Whether every planned batch is stored, and the failed trials (excluded from every table)."""
    planned = manifest["sweeps"][-1].get("batches_total") if manifest.get("sweeps") else None
    stored = len(set(rows["batch_id"]) | set(failed["batch_id"]))
    lines = ["## Completeness", ""]
    if planned is not None and stored < planned:
        lines.append(f"**Incomplete: {stored} of {planned} planned batches are stored**; run the sweep command above "
                     "again to complete them (tables use the stored batches only).")
    else:
        lines.append(f"All {stored} planned batches are stored.")
    if len(failed):
        shown = ", ".join(f"{r.batch_id}/{r.run_index}" for r in failed.head(5).itertuples())
        lines.append(f"**{len(failed)} failed trials** (an error or a NaN state; excluded from every table, counted "
                     f"here): {shown}{' ...' if len(failed) > 5 else ''}. Run the sweep again to retry only those.")
    else:
        lines.append("No failed trials.")
    return lines + [""]


def own_verdicts(report_lines: list[str]) -> list[str]:
    """The verdict lines of a report's own rows (not those of its many-truths companion)."""
    verdicts = []
    for line in report_lines:
        if line.startswith("The same claims over"):
            break
        if line.startswith("- **"):
            verdicts.append(line)
    return verdicts


def write_index(root: Path, command: str) -> Path:
    """``root/REPORT.md``: every report under root with its verdict lines."""
    lines = ["# emrun results", "", f"Written by `{command}` from the results folders below; each report names "
             "the sweep commands that produced its rows.", ""]
    for folder in result_folders(root):
        report = folder / "report.md"
        if not report.exists():
            continue
        text = report.read_text().splitlines()
        lines += [f"## [{folder.name}]({folder.name}/report.md)", "", text[0].lstrip("# "), ""]
        lines += own_verdicts(text)
        lines += [line for line in text if "published cells agree" in line]
        lines.append("")
    path = Path(root) / INDEX
    path.write_text("\n".join(lines))
    return path
