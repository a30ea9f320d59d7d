"""Plug-in report sections and claims that compare declared companion folders (issue 31, item 6):
both report-only, in files under ``claim_plugins:``, selected by unhashed config keys
(``report_sections``, ``companions``), so they change after a sweep with nothing re-run."""

import json

import pytest

from tests.conftest import emrun

# A section drawing a table of the rows and one figure; WORDING lets a test change the file.
SECTIONS = """\
import matplotlib.pyplot as plt

from emrun.plugins import register_report_section


def iterations(ctx):
    table = ctx.rows.groupby(["m", "algorithm"])["iterations"].median().reset_index()
    lines = ["WORDING", "", "| m | algorithm | median iterations |", "|---|---|---|"]
    lines += [f"| {r.m} | {r.algorithm} | {r.iterations:.0f} |" for r in table.itertuples()]
    fig, ax = plt.subplots()
    ax.bar(range(len(table)), table["iterations"])
    return "\\n".join(lines) + "\\n\\n" + ctx.save_figure(fig, "bars", "median iterations per cell")


register_report_section("iterations", iterations, title="Median iterations")
"""

# A claim comparing this folder's EM runs with those of the companion "other": EM needs at most
# FACTOR times the other folder's median iterations.
COMPARING = """\
from emrun.plugins import register_claim
from emrun.report.claims import Claim
from emrun.report.verdicts import Verdict


def fewer_iterations(rows, config, companions, factor=1.0):
    mine = rows[rows["algorithm"] == "em"]["iterations"].median()
    theirs = companions["other"]
    other = theirs[theirs["algorithm"] == "em"]["iterations"].median()
    return Verdict.judged("EM needs no more iterations here than in the other folder", bool(mine <= factor * other),
                          f"median {mine:g} here, {other:g} there", f"median here <= {factor} x median there")


register_claim(Claim("fewer_iterations", fewer_iterations, {"factor": 1.0}, criterion="median here <= {factor} x there"))
"""

BASE = """\
name: NAME
seed: 3
grid: {m: [2], D: [2], algorithm: [em, gd], step: [0.05]}
data: population
runs: 3
stopping: {em: {max_iter: MAXITER, tol: 1.0e-6}, gd: {max_iter: 50, tol: 1.0e-6}}
"""


def config(name: str, max_iter: int = 200, extra: str = "") -> str:
    return BASE.replace("NAME", name).replace("MAXITER", str(max_iter)) + extra


def report(tmp_path, name: str) -> str:
    return (tmp_path / "results" / name / "report.md").read_text()


@pytest.mark.slow
def test_a_section_is_drawn_and_a_changed_section_file_changes_the_report_with_nothing_rerun(tmp_path):
    (tmp_path / "sections.py").write_text(SECTIONS.replace("WORDING", "first wording"))
    extra = "claim_plugins: [sections.py]\nreport_sections: [iterations]\n"
    (tmp_path / "s.yaml").write_text(config("s", extra=extra))
    emrun("sweep", "s.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", "--run-plugins", cwd=tmp_path)
    text = report(tmp_path, "s")
    assert "## Median iterations\n\nfirst wording" in text and "| 2 | em |" in text and "| 2 | gd |" in text
    assert "![median iterations per cell](section-iterations-bars.png)" in text
    assert (tmp_path / "results" / "s" / "section-iterations-bars.png").stat().st_size > 0
    assert text.index("## Median iterations") < text.index("## Provenance") < text.index("## Completeness")
    manifest = json.loads((tmp_path / "results" / "s" / "manifest.json").read_text())
    batches = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "s" / "batches").glob("*.parquet")}

    # A changed section file: the sweep records it and runs nothing; the report shows the new text.
    (tmp_path / "sections.py").write_text(SECTIONS.replace("WORDING", "second wording"))
    assert "(0 run now" in emrun("sweep", "s.yaml", "--quiet", "--workers", "1", cwd=tmp_path).stdout
    emrun("report", "--run-plugins", cwd=tmp_path)
    assert "second wording" in report(tmp_path, "s") and "first wording" not in report(tmp_path, "s")
    assert batches == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "s" / "batches").glob("*.parquet")}
    assert json.loads((tmp_path / "results" / "s" / "manifest.json").read_text())["config_hash"] == manifest["config_hash"]

    # A section that breaks costs its own section, not the report.
    (tmp_path / "sections.py").write_text(SECTIONS.replace("WORDING", "first wording").replace("ctx.rows.groupby",
                                                                                               "ctx.rows.nosuch"))
    emrun("sweep", "s.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", "--run-plugins", cwd=tmp_path)
    assert "Report section `iterations` could not be drawn: AttributeError" in report(tmp_path, "s")


def test_a_config_without_sections_keeps_its_hash_and_its_report(tmp_path):
    (tmp_path / "sections.py").write_text(SECTIONS.replace("WORDING", "w"))
    (tmp_path / "a.yaml").write_text(config("a"))
    (tmp_path / "b.yaml").write_text(config("a", extra="claim_plugins: [sections.py]\nreport_sections: [iterations]\n"
                                                      "companions: {other: elsewhere}\n"))
    from emrun import config as configs

    assert configs.load(tmp_path / "a.yaml").hash == configs.load(tmp_path / "b.yaml").hash


@pytest.mark.parametrize("listed,words", [
    ("claim_plugins: [sections.py]\nreport_sections: [iteratoins]",
     ["b.yaml:8:", "'report_sections[0]' must be one of iterations; got 'iteratoins'"]),
    ("report_sections: [iterations]", ["b.yaml:7:", "'report_sections[0]' must be a registered section, and none is",
                                       "register_report_section"]),
    ("plugins: [sections.py]\nreport_sections: [iterations]",
     ["plug-in sections.py registers report section 'iterations'", "claim_plugins", "not part of the config hash"]),
    ("companions: {other: b}", ["b.yaml:7:", "'companions.other' names this config itself"]),
    ("companions: [a]", ["b.yaml:7:", "'companions' must map labels to config names"]),
])
def test_a_wrong_section_or_companion_is_refused_in_one_line(tmp_path, listed, words):
    (tmp_path / "sections.py").write_text(SECTIONS.replace("WORDING", "w"))
    (tmp_path / "b.yaml").write_text(config("b", extra=listed + "\n"))
    result = emrun("sweep", "b.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (tmp_path / "results").exists()


def test_check_plugin_accepts_a_file_of_sections_only(tmp_path):
    (tmp_path / "sections.py").write_text(SECTIONS.replace("WORDING", "w"))
    checked = emrun("check-plugin", "sections.py", cwd=tmp_path).stdout
    assert "report section iterations" in checked and "1 of 1 checks passed" in checked, checked
    (tmp_path / "broken.py").write_text(SECTIONS.replace('+ ctx.save_figure(fig, "bars", "median iterations per cell")',
                                                         "and 3"))
    failed = emrun("check-plugin", "broken.py", cwd=tmp_path, check=False)
    assert failed.returncode == 1 and "not Markdown text" in failed.stdout, failed.stdout


def sweep_pair(tmp_path, here_cap: int, there_cap: int):
    """This folder ('here', judged) and its companion ('there'), EM capped as given."""
    (tmp_path / "claims.py").write_text(COMPARING)
    (tmp_path / "here.yaml").write_text(config("here", here_cap, "claim_plugins: [claims.py]\ncompanions: {other: there}\n"
                                                                  "claims: [fewer_iterations]\n"))
    (tmp_path / "there.yaml").write_text(config("there", there_cap))


def verdict(tmp_path) -> dict:
    return json.loads((tmp_path / "results" / "here" / "verdicts.json").read_text())["verdicts"][0]


@pytest.mark.parametrize("caps,status", [((5, 200), "holds"), ((200, 5), "does not hold")])
def test_a_claim_compares_a_declared_companion_folder(tmp_path, caps, status):
    sweep_pair(tmp_path, *caps)
    emrun("sweep", "there.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("sweep", "here.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    manifest = json.loads((tmp_path / "results" / "here" / "manifest.json").read_text())
    assert "fewer_iterations" in json.dumps(manifest["criteria"])  # recorded before its rows, like any claim
    emrun("report", "--run-plugins", cwd=tmp_path)
    found = verdict(tmp_path)
    assert found["status"] == status, found
    # EM capped at 5 iterations stops there; at 200 it converges later than that.
    assert ("median 5 here" if caps[0] == 5 else ", 5 there") in found["evidence"], found
    assert found["evidence"].endswith("; compared with companion other (results folder there)"), found


@pytest.mark.slow
def test_a_claim_with_a_missing_or_incomplete_companion_is_not_testable_with_a_reason(tmp_path):
    sweep_pair(tmp_path, 5, 200)
    emrun("sweep", "here.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", "--run-plugins", cwd=tmp_path)
    missing = verdict(tmp_path)
    assert missing["status"] == "not testable"
    assert "companion other (results folder there) holds no rows" in missing["evidence"], missing

    emrun("sweep", "there.yaml", "--quiet", "--workers", "1", "--set", "grid.m=[2, 3]", cwd=tmp_path)
    # The companion's planned batches are not all stored: one is removed.
    next((tmp_path / "results" / "there" / "batches").glob("*.parquet")).unlink()
    emrun("report", "--run-plugins", cwd=tmp_path)
    incomplete = verdict(tmp_path)
    assert incomplete["status"] == "not testable" and "is incomplete (3 of 4 planned batches stored)" in \
        incomplete["evidence"], incomplete


@pytest.mark.slow
def test_a_companion_run_with_the_same_row_plugins_is_read_and_one_with_others_is_not(tmp_path):
    """The Jin et al. case: both studies use one plug-in family or algorithm. A companion whose row
    plug-ins are the files this folder runs is read with them; one run with other code is not (its
    code would have to run), and the claim says so. Changing ``companions`` re-runs nothing."""
    from tests.test_plugins import HEAVY_BALL

    for folder, text in (("plugin", HEAVY_BALL), ("changed", HEAVY_BALL + "# another version\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "heavy_ball.py").write_text(text)
    grid = "grid: {m: [2], D: [2], algorithm: [em, heavy_ball], step: [0.05], momentum: [0.5]}"

    def with_plugin(text: str, folder: str) -> str:
        return (text.replace("grid: {m: [2], D: [2], algorithm: [em, gd], step: [0.05]}", grid)
                .replace("gd: {max_iter: 50", "heavy_ball: {max_iter: 50") + f"plugins: [{folder}/heavy_ball.py]\n")

    sweep_pair(tmp_path, 5, 200)
    here = with_plugin((tmp_path / "here.yaml").read_text(), "plugin")
    (tmp_path / "here.yaml").write_text(here)
    (tmp_path / "there.yaml").write_text(with_plugin(config("there", 200), "plugin"))
    (tmp_path / "elsewhere.yaml").write_text(with_plugin(config("elsewhere", 200), "changed"))
    for name in ("there", "elsewhere", "here"):
        emrun("sweep", f"{name}.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", "--run-plugins", "results/here", cwd=tmp_path)
    assert verdict(tmp_path)["status"] == "holds", verdict(tmp_path)

    (tmp_path / "here.yaml").write_text(here.replace("{other: there}", "{other: elsewhere}"))
    assert "(0 run now" in emrun("sweep", "here.yaml", "--quiet", "--workers", "1", cwd=tmp_path).stdout
    emrun("report", "--run-plugins", "results/here", cwd=tmp_path)
    found = verdict(tmp_path)
    assert found["status"] == "not testable", found
    assert found["evidence"].startswith("companion other (results folder elsewhere) was run with other plug-ins than "
                                        "this folder (changed/heavy_ball.py (sha256 "), found


def test_a_kept_copy_read_for_its_recorded_claims_ignores_its_sections():
    """How a changed criterion is judged under the recorded one (emrun.plugins.claims_in): the kept
    copy's claims are captured, and the sections of the same file neither register nor refuse it."""
    from emrun import plugins, registry

    text = SECTIONS.replace("WORDING", "w") + COMPARING.replace("from emrun.plugins import register_claim\n", "")
    text = text.replace("from emrun.plugins import register_report_section", "from emrun.plugins import register_claim, "
                                                                              "register_report_section")
    kept = plugins.PluginSource("both.py", text, plugins.sha256_text(text))
    # Another test in this process may have registered a section 'iterations': what counts is that
    # reading the kept copy registers nothing (the same entries, the same objects, before and after).
    before = [(name, id(entry.value)) for name, entry in registry.SECTIONS.items()]
    found = plugins.claims_in(kept)
    assert list(found) == ["fewer_iterations"]
    assert [(name, id(entry.value)) for name, entry in registry.SECTIONS.items()] == before
