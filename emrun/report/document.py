"""A report as a document: what a report writer hands over, and the one place it becomes text.

A writer builds its report as a list of blocks, each a line of Markdown or a
:class:`emrun.criteria.Verdict`, and hands it to ``ctx.write_report(path, blocks)``. The verdicts
stay objects until the end: :func:`render` writes each as audited (its criterion record, the
folder that decided it, whether that folder was complete), looked up by identity, so a verdict's
line is never found again by searching the text for it. Notices under the title (an incomplete
folder, ``--set`` values) and the Completeness section are added here too, and the report is
written once, whole and atomically, by :func:`emrun.report.write_reports`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from emrun.criteria import Verdict


@dataclass
class Document:
    """A report's blocks in order: lines of Markdown (a line may hold several) and verdicts."""

    blocks: list = field(default_factory=list)

    def insert_before(self, heading: str, blocks: Iterable) -> None:
        """Put ``blocks`` before the last block that is exactly ``heading`` (at the end if none is)."""
        at = max((i for i, block in enumerate(self.blocks) if block == heading), default=len(self.blocks))
        self.blocks[at:at] = list(blocks)

    def render(self, audited: dict[int, Verdict] | None = None) -> str:
        """The Markdown text; each verdict as ``audited[id(verdict)]`` when given, else as it is."""
        audited = audited or {}
        return "\n".join(audited.get(id(block), block).markdown() if isinstance(block, Verdict) else block
                         for block in self.blocks)


def as_document(content: str | list | Document) -> Document | str:
    """What ``ctx.write_report`` keeps: a document, or a plug-in's finished text as it gave it."""
    if isinstance(content, Document):
        return content
    return Document(list(content)) if isinstance(content, list) else content


def render(content: Document | str, verdicts: list[Verdict], audited: list[Verdict],
           notices: list[str]) -> str:
    """A report's text: the document with each of ``verdicts`` rendered as its audited version
    (``audited``, in the same order), and ``notices`` under the title. A plug-in's finished text
    (a str) has its verdict lines replaced by their audited versions where they are found."""
    if isinstance(content, Document):
        text = content.render({id(before): after for before, after in zip(verdicts, audited, strict=True)})
    else:
        text = content
        for before, after in zip(verdicts, audited, strict=True):
            if before is not after:
                text = text.replace(before.markdown(), after.markdown())
    for notice in reversed(notices):
        lines = text.splitlines()
        lines[1:1] = ["", notice]
        text = "\n".join(lines) + "\n"
    return text
