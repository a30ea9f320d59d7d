"""The criterion record: recorded before the rows, every later change shown with the verdict under
the recorded criterion, rewording without a version bump not flagged, and each finding counted once."""

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emrun.criteria import CHECK, EXTENSION, PAPER, ClaimSpec, Declared, check
from emrun.criteria import record as criteria
from emrun.report.counting import count_findings
from tests.conftest import TINY, emrun

CLAIMED = TINY + "claims:\n  - {claim: always_near_optimal, algorithm: em, threshold: 0.5}\n"
KEY = "always_near_optimal[algorithm=em]"


def _verdict(folder):
    return next(v for v in json.loads((folder / "verdicts.json").read_text())["verdicts"] if v["key"] == KEY)


@pytest.mark.slow
def test_a_claim_parameter_changed_after_the_sweep_is_flagged_with_both_verdicts(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(CLAIMED)
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    folder = tmp_path / "results" / "tiny"
    recorded = json.loads((folder / "manifest.json").read_text())["criteria"]["recorded"][KEY]
    assert recorded["params"] == {"threshold": 0.5} and recorded["rows_before"] is False
    emrun("report", cwd=tmp_path)
    before = _verdict(folder)
    assert before["status"] == "holds" and before["record"]["changed_after_rows"] is False
    assert "before these rows" in (folder / "report.md").read_text()

    # The threshold moves after the rows exist: claims are report keys, so the same rows are judged again.
    config.write_text(CLAIMED.replace("threshold: 0.5", "threshold: 2.0"))
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", cwd=tmp_path)
    after = _verdict(folder)
    assert after["status"] == "does not hold" and after["params"] == {"threshold": 2.0}
    assert after["record"]["changed_after_rows"] is True
    assert after["record"]["recorded_params"] == {"threshold": 0.5} and after["record"]["recorded_status"] == "holds"
    amendments = json.loads((folder / "manifest.json").read_text())["criteria"]["amendments"]
    assert [(a["from"]["params"], a["to"]["params"]) for a in amendments] == [({"threshold": 0.5}, {"threshold": 2.0})]
    report = (folder / "report.md").read_text()
    assert "**Criterion changed after these rows were stored**" in report and "under it, this claim holds" in report
    index = (tmp_path / "results" / "REPORT.md").read_text()
    assert "criterion changed after its rows" in index

    # Reporting again records nothing new: the change is dated once.
    emrun("report", cwd=tmp_path)
    assert json.loads((folder / "manifest.json").read_text())["criteria"]["amendments"] == amendments


@pytest.mark.slow
def test_replacing_the_rows_keeps_the_criterion_record(tmp_path):
    # A criterion recorded after rows existed must not look recorded before any once the rows are
    # replaced (--replace after a hashed change); one moved meanwhile is flagged against the first.
    config = tmp_path / "tiny.yaml"
    config.write_text(CLAIMED.replace("runs: 6", "runs: 2"))
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    folder = tmp_path / "results" / "tiny"
    first = json.loads((folder / "manifest.json").read_text())["criteria"]["recorded"][KEY]
    config.write_text(CLAIMED.replace("runs: 6", "runs: 3").replace("threshold: 0.5", "threshold: 2.0"))
    emrun("sweep", str(config), "--quiet", "--workers", "1", "--replace", cwd=tmp_path)
    record = json.loads((folder / "manifest.json").read_text())["criteria"]
    assert record["recorded"][KEY] == first
    emrun("report", cwd=tmp_path)
    verdict = _verdict(folder)
    assert verdict["record"]["changed_after_rows"] is True and verdict["record"]["recorded_params"] == {"threshold": 0.5}


def test_rewording_a_claim_without_a_version_bump_is_not_flagged_and_a_bump_is(tmp_path, monkeypatch):
    from emrun.report import row_claims as claims
    from emrun.report import write_reports

    config = tmp_path / "tiny.yaml"
    config.write_text(CLAIMED)
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    folder, root = tmp_path / "results" / "tiny", tmp_path / "results"

    reworded = replace(claims.NEAR, criterion="no em run ends below the likelihood ratio {threshold} (reworded)")
    monkeypatch.setattr(claims, "NEAR", reworded)
    write_reports([folder], root, "emrun report")
    verdict = _verdict(folder)
    assert "(reworded)" in verdict["criterion"] and verdict["record"]["changed_after_rows"] is False
    assert json.loads((folder / "manifest.json").read_text())["criteria"]["amendments"] == []

    monkeypatch.setattr(claims, "NEAR", replace(reworded, version=2))
    write_reports([folder], root, "emrun report")
    verdict = _verdict(folder)
    assert verdict["record"]["changed_after_rows"] is True and verdict["record"]["recorded_status"] is None
    assert "can no longer be computed" in verdict["record"]["recorded_evidence"]


def test_a_claim_added_after_the_rows_says_it_was_recorded_after_them(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    config.write_text(CLAIMED)
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)  # nothing to run: the claim is recorded
    emrun("report", cwd=tmp_path)
    record = _verdict(tmp_path / "results" / "tiny")["record"]
    assert record["rows_before"] is True and record["changed_after_rows"] is False
    assert "after these rows were stored" in (tmp_path / "results" / "tiny" / "report.md").read_text()


SPEC = ClaimSpec("example", "a claim", "a criterion ({threshold})", check("a test"), identity=("D",))


@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from([0.1, 0.2, 0.3])), min_size=1, max_size=6),
       st.booleans())
def test_a_record_keeps_its_first_criterion_and_dates_every_later_change(rules, rows_first):
    record = criteria.empty()
    for step, (version, threshold) in enumerate(rules):
        spec = replace(SPEC, version=version)
        criteria.note_declared(record, [Declared(spec, {"D": 2, "threshold": threshold})], f"t{step}",
                               rows_exist=rows_first or step > 0, first_sweep=step == 0)
    first = record["recorded"]["example[D=2]"]
    assert (first["version"], first["params"]) == (rules[0][0], {"threshold": rules[0][1]})
    changes = sum(1 for a, b in zip(rules, rules[1:], strict=False) if a != b)
    assert len(record["amendments"]) == changes  # one per change, none for a repeat
    last = criteria.latest(record, "example[D=2]")
    assert (last["version"], last["params"]) == (rules[-1][0], {"threshold": rules[-1][1]})


def _entry(folder, claim, status, kind, runs=None, finding=None, shown_in=None):
    return shown_in or folder, {"folder": folder, "claim": claim, "status": status, "finding": finding or claim,
                                "source": {"kind": kind}, "runs": runs}


def _index(*shown):
    entries = {}
    for folder, verdict in shown:
        entries.setdefault(folder, {"folder": folder, "verdicts": []})["verdicts"].append(verdict)
    return count_findings(list(entries.values()))


def test_each_finding_is_counted_once_and_each_kind_on_its_own():
    em = {"identity": {"em": "abc"}, "m": [2, 3], "D": [2, 3], "truths": 20}
    counted = _index(
        _entry("many", "EM never", "does not hold", EXTENSION, em),
        _entry("many", "EM never", "does not hold", EXTENSION, em, shown_in="one"),  # a companion's verdict, repeated
        _entry("one", "EM never", "holds", PAPER, {**em, "truths": 1}),  # the paper's setting: its own finding
        _entry("variant", "EM never", "does not hold", EXTENSION, em),  # the same runs in another folder
        _entry("small", "EM never", "does not hold", EXTENSION, {**em, "truths": 5, "m": [2]}),  # a subset of them
        _entry("other", "EM never", "holds", EXTENSION, {**em, "identity": {"em": "xyz"}}),  # other runs
        _entry("many", "rule check", "holds", CHECK))
    kinds = counted.by_kind()
    assert sum(kinds[PAPER].values()) == 1 and kinds[PAPER]["holds"] == 1
    assert kinds[EXTENSION]["does not hold"] == 1 and kinds[EXTENSION]["holds"] == 1
    assert sum(kinds[CHECK].values()) == 1
    assert counted.note_for("small", {"claim": "EM never", "folder": "small"}).startswith(" (counted under `many`")
    assert counted.note_for("variant", {"claim": "EM never", "folder": "variant"}).startswith(" (counted under `many`")


def test_a_symmetric_comparison_judged_from_both_sides_is_one_finding():
    spec = ClaimSpec("pair", "{rule} against {other}", "same", check("rules"), identity=("rule", "other"),
                     symmetric=True)
    assert spec.finding({"rule": "a", "other": "b"}) == spec.finding({"rule": "b", "other": "a"})
    assert spec.key({"rule": "a", "other": "b"}) != spec.key({"rule": "b", "other": "a"})
    runs = {"identity": {"em": "x"}, "m": [2], "D": [2], "truths": 3}
    counted = _index(_entry("one", "a vs b", "holds", CHECK, runs, spec.finding({"rule": "a", "other": "b"})),
                     _entry("two", "b vs a", "holds", CHECK, runs, spec.finding({"rule": "b", "other": "a"})))
    assert sum(counted.by_kind()[CHECK].values()) == 1


def test_every_config_declares_its_claims_before_any_row():
    """Every config in configs/ (and the example) lists what it will be judged on from the config
    alone: distinct keys, each with its criterion, source and version."""
    from pathlib import Path

    from emrun.config import load

    paths = sorted(Path("configs").glob("*.yaml")) + [Path("examples/heavy_ball/heavy_ball.yaml")]
    for path in paths:
        config = load(path)
        declared = config.kind.declared_claims(config.values)
        keys = [d.key for d in declared]
        assert declared and len(keys) == len(set(keys)), (path, keys)
        for item in declared:
            entry = item.entry()
            assert entry["criterion"] and entry["version"] >= 1 and entry["source"] in (PAPER, EXTENSION, CHECK), (path, entry)
