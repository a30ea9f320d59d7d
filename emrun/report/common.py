"""What every report shares: Markdown tables over (m, D), figures saved reproducibly, and the
provenance section (published sources, plug-ins, the commands that produced the rows)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from emrun import files, paper_values  # noqa: E402
from emrun.store import producing_sweeps  # noqa: E402


def grid_table(table: pd.DataFrame, text) -> str:
    """A Markdown table with rows m and columns D; ``text(row)`` formats one cell."""
    ms, Ds = sorted(table["m"].unique()), sorted(table["D"].unique())
    by_cell = {(r.m, r.D): r for r in table.itertuples()}
    lines = ["| | " + " | ".join(f"D = {D}" for D in Ds) + " |", "|---" * (len(Ds) + 1) + "|"]
    for m in ms:
        lines.append(f"| m = {m} | " + " | ".join(text(by_cell[(m, D)]) if (m, D) in by_cell else "" for D in Ds) + " |")
    return "\n".join(lines)


def save_figure(fig, folder: Path, name: str, title: str, pdf: bool = False) -> list[str]:
    """Save a figure beside its report (PNG; and PDF without a creation date, so that reruns give
    the same file) and return the Markdown that shows it. ``title`` says what the figure shows; it
    is the figure's title (unless it set one) and the image's text in the report."""
    if fig._suptitle is None:
        fig.suptitle(title, fontsize=10)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    files.save_figure(fig, Path(folder) / f"{name}.png", dpi=120)
    if pdf:
        files.save_figure(fig, Path(folder) / f"{name}.pdf", metadata={"CreationDate": None})
    plt.close(fig)
    return [f"![{title}]({name}.png)", ""]


def header(config: dict) -> list[str]:
    return [f"# {config['name']}: {config['description'] or config['name']}", ""]


def verdict_section(verdicts: list, heading: str = "Verdicts") -> list[str]:
    if not verdicts:
        return [f"## {heading}", "", "This config declares no claims (add `claims:` to it; `emrun list` shows the "
                "registered claims).", ""]
    return [f"## {heading}", "", *verdicts, ""]


def provenance_section(manifest: dict, artefacts: list[str], command: str) -> list[str]:
    """Where the published values come from, the plug-ins, and the commands that produced the rows and report."""
    out = ["## Provenance", ""]
    out += [f"Published values: {paper_values.source(artefact)}" for artefact in artefacts]
    for plugin in manifest["config"].get("plugins", []):
        name = plugin.get("file") or plugin.get("module") or plugin.get("entry_point")
        out.append(f"Plug-in `{name}` (sha256 {str(plugin.get('sha256'))[:16]}): its code ran in this experiment; "
                   "a copy of a file plug-in is kept in `plugins/` beside this report.")
    for plugin in manifest["config"].get("claim_plugins", []):
        name = plugin.get("file") or plugin.get("module")
        out.append(f"Claim plug-in `{name}` (sha256 {str(plugin.get('sha256'))[:16]}): judged these rows' claims (not part "
                   "of the config hash: recorded by the last sweep); a copy is kept in `plugins/` beside this report.")
    out += ["", f"Config hash `{manifest['config_hash']}`; the config as run is in `manifest.json` beside this file, "
            "and `provenance.json` has one entry per sweep that produced these rows (command, git commit, package "
            "versions, machine, CPU and its instruction sets, BLAS, seconds).", "",
            "Produced by:", "", "```"]
    out += producing_sweeps(manifest["sweeps"])
    return out + [command, "```", ""]
