"""Plug-in report sections: tables and figures drawn from a folder's stored rows, appended to its
grid report under headings of their own.

A section is a function ``section(ctx: SectionContext) -> str`` (Markdown), registered with
:func:`emrun.plugins.register_report_section` by a file under ``claim_plugins:`` (report-only, not
hashed with the rows), and chosen by a config's ``report_sections: [name, ...]`` (not hashed
either). It reads copies of the rows and the config, so it can change nothing the built-in report
or the claims read; it writes only the figures it saves through ``ctx.save_figure``. A section
that raises, or returns something other than a string, is shown as not drawn, with the error:
a report is never lost to a plug-in's bug.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from emrun.report.document import Document

KEY = "report_sections"  # the config key that selects sections (not hashed: emrun.config.REPORT_KEYS)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,60}")  # a figure's name: a file name on any file system, no path


@dataclass(frozen=True)
class Section:
    """A registered section: its name, the function that draws it and the heading it goes under."""

    name: str
    render: Callable[[SectionContext], str]
    title: str


@dataclass(frozen=True)
class SectionContext:
    """What a section reads: ``rows``, a copy of the folder's trial rows without failed trials (the
    columns of docs/extending.md, "Trial rows"); ``config``, a copy of the folder's canonical config;
    ``name``, the section's registered name. ``save_figure`` writes a figure beside report.md."""

    name: str
    rows: pd.DataFrame
    config: dict
    folder: Path = field(repr=False)
    saved: list[str] = field(default_factory=list, repr=False)  # files written, in order (for check-plugin)

    def save_figure(self, fig: Any, name: str, title: str) -> str:
        """Save a matplotlib figure as ``section-<section>-<name>.png`` beside report.md (atomically,
        the same bytes on every rerun) and close it; return the Markdown that shows it, ``title``
        being what it shows."""
        from emrun.report.common import save_figure

        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"figure name {name!r} must be 1 to 60 letters, digits, '_' or '-'")
        stem = f"section-{self.name}-{name}"
        self.saved.append(f"{stem}.png")
        return "\n".join(save_figure(fig, self.folder, stem, title)).rstrip("\n")


def registered() -> tuple[str, ...]:
    from emrun.registry import SECTIONS

    return SECTIONS.names()


def check_names(raw: Any, check) -> list[str]:
    """A config's ``report_sections``: registered names, each once (errors name file, line and key)."""
    names = check.nonempty_list(raw, KEY)
    known = registered()
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in known:
            allowed = (f"one of {', '.join(known)}" if known else "a registered section, and none is (a file under "
                       "claim_plugins registers them with emrun.plugins.register_report_section)")
            check.fail(f"{KEY}[{i}]", f"'{KEY}[{i}]' must be {allowed}; got {name!r}")
    return names


def render(section: Section, rows: pd.DataFrame, config: dict, folder: Path) -> tuple[str, SectionContext]:
    """A section's Markdown on copies of ``rows`` and ``config`` (its figures saved into ``folder``),
    and the context it was given; raises what the section raises, TypeError if it returns no string."""
    ctx = SectionContext(section.name, rows.copy(), copy.deepcopy(config), Path(folder))
    text = section.render(ctx)
    if not isinstance(text, str):
        raise TypeError(f"it returned {type(text).__name__}, not Markdown text (a str)")
    return text, ctx


def lines_for(config: dict, rows: pd.DataFrame, folder: Path) -> list[str]:
    """The Markdown lines of the sections a config selects, each under its own heading."""
    from emrun.registry import SECTIONS

    out: list[str] = []
    for name in config.get(KEY, []):
        if name not in SECTIONS:  # registered at the sweep, gone now (an uninstalled entry point)
            out += [f"## {name}", "", f"Report section `{name}` is not registered now, so it is not drawn.", ""]
            continue
        section = SECTIONS.get(name)
        try:
            text, _ = render(section, rows, config, folder)
        except Exception as error:  # a plug-in's bug costs its own section, never the report
            text = f"Report section `{name}` could not be drawn: {type(error).__name__}: {error}"
        out += [f"## {section.title}", "", text.strip("\n"), ""]
    return out


def append(ctx, result):
    """Add the config's sections to the report a layout handed over (``ctx.pending``): after the
    built-in tables, figures and verdicts, before Provenance. A config without ``report_sections``
    leaves the report untouched, byte for byte."""
    if not ctx.config.get(KEY):
        return result
    content = ctx.pending.get(result.path)
    if content is None:  # a layout that wrote its file itself
        content = Path(result.path).read_text()
    document = content if isinstance(content, Document) else Document(content.rstrip("\n").split("\n"))
    document.insert_before("## Provenance", lines_for(ctx.config, ctx.rows, ctx.folder))
    # A finished text stays text, so that its verdict lines are still found and audited.
    ctx.write_report(result.path, document if document is content else document.render() + "\n")
    return result
