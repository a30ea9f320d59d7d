"""Reports as documents (emrun.report.document): verdicts are rendered audited by identity, never by
searching the text, and notices go under the title."""

from dataclasses import replace

from emrun.report.document import Document, render
from emrun.report.verdicts import Verdict


def test_a_verdict_is_rendered_audited_where_it_stands_and_an_equal_line_elsewhere_is_left_alone():
    judged = Verdict.judged("the rate is positive", True, "rate 0.3", "rate > 0")
    quoted = Verdict.judged("the rate is positive", True, "rate 0.3", "rate > 0")  # same text, another object
    audited = replace(judged, status="does not hold")
    document = Document(["# title", "", judged, "", "## Elsewhere", "", quoted])
    text = render(document, [judged], [audited], [])
    assert text.count(audited.markdown()) == 1 and text.count(quoted.markdown()) == 1
    assert text.index(audited.markdown()) < text.index("## Elsewhere")
    # A plug-in's finished text is still patched where the line is found (both equal lines).
    patched = render("\n".join(["# title", judged.markdown(), quoted.markdown()]), [judged], [audited], [])
    assert patched.count(audited.markdown()) == 2


def test_notices_stand_under_the_title_in_the_order_given_and_sections_go_before_provenance():
    document = Document(["# title", "", "body", "## Provenance", "", "commands"])
    document.insert_before("## Provenance", ["## Section", "", "added", ""])
    text = render(document, [], [], ["first notice", "second notice"])
    assert text.splitlines() == ["# title", "", "first notice", "", "second notice", "", "body", "## Section", "",
                                 "added", "", "## Provenance", "", "commands"]


def test_sections_added_to_a_finished_text_keep_its_verdict_lines_audited(tmp_path):
    from types import SimpleNamespace

    from emrun.report import ReportResult, sections

    judged = Verdict.judged("the rate is positive", True, "rate 0.3", "rate > 0")
    audited = replace(judged, status="does not hold")
    path = tmp_path / "report.md"
    ctx = SimpleNamespace(config={"report_sections": ["gone"]}, rows=None, folder=tmp_path,
                          pending={path: f"# title\n\n{judged.markdown()}\n\n## Provenance\n\ncommands\n"})
    ctx.write_report = lambda where, content: ctx.pending.__setitem__(where, content)
    sections.append(ctx, ReportResult(path, [judged]))
    text = render(ctx.pending[path], [judged], [audited], [])
    assert audited.markdown() in text and judged.markdown() not in text
    assert text.index("## gone") < text.index("## Provenance")
