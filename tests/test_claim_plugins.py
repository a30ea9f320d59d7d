"""Claims are report-only (issue 31): a claim plug-in is listed under ``claim_plugins:``, outside the
config hash, so changing it after a sweep re-writes the verdict with nothing re-run, and the
criterion record flags a changed criterion with the verdict under the recorded one (judged by the
kept copy of the file). Files that make rows (families, init schemes, algorithms) stay hashed."""

import json

import pytest

from tests.conftest import emrun
from tests.test_plugins import CLAIM, FAMILY_CONFIG, FAMILY_INIT, HEAVY_BALL

# A claim whose verdict depends on its rule only: version 1 asks for 1000 runs (does not hold on
# a tiny sweep), version 2 for one (holds).
COUNTED = """\
from emrun.criteria import Change
from emrun.plugins import register_claim
from emrun.report.claims import Claim
from emrun.report.verdicts import Verdict


def enough_runs(rows, config, algorithm="heavy_ball"):
    runs = rows[rows["algorithm"] == algorithm]
    return Verdict.judged("enough heavy_ball runs", len(runs) >= NEEDED, f"WORDING: {len(runs)} runs",
                          f"at least NEEDED runs")


register_claim(Claim("enough_runs", enough_runs, {"algorithm": "heavy_ball"}, criterion="at least NEEDED runs",
                     VERSION))
"""

CONFIG = """\
name: hb
seed: 3
plugins: [plugin/heavy_ball.py]
claim_plugins: [plugin/claims.py]
grid: {m: [2], D: [2, 3], algorithm: [gd, heavy_ball], step: [0.05], momentum: [0.5]}
runs: 2
stopping: {gd: {max_iter: 100}, heavy_ball: {max_iter: 100}}
claims: [enough_runs]
"""


def write_claims(tmp_path, wording="first", needed=1000, version="version=1"):
    text = COUNTED.replace("WORDING", wording).replace("NEEDED", str(needed)).replace("VERSION", version)
    (tmp_path / "plugin" / "claims.py").write_text(text)


def verdict(tmp_path) -> dict:
    return json.loads((tmp_path / "results" / "hb" / "verdicts.json").read_text())["verdicts"][0]


def batch_files(tmp_path) -> dict:
    return {path.name: path.stat().st_mtime_ns for path in (tmp_path / "results" / "hb" / "batches").glob("*.parquet")}


@pytest.mark.slow
def test_a_claim_changed_after_the_sweep_is_judged_anew_with_nothing_rerun_and_a_new_rule_is_flagged(tmp_path):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "heavy_ball.py").write_text(HEAVY_BALL)
    write_claims(tmp_path)
    (tmp_path / "hb.yaml").write_text(CONFIG)
    swept = emrun("sweep", "hb.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    assert "claim plug-in plugin/claims.py imported" in swept.stderr and "not part of the config hash" in swept.stderr
    emrun("report", "--run-plugins", cwd=tmp_path)
    first = verdict(tmp_path)
    assert first["status"] == "does not hold" and first["evidence"].startswith("first:")
    manifest = json.loads((tmp_path / "results" / "hb" / "manifest.json").read_text())
    stored, config_hash = batch_files(tmp_path), manifest["config_hash"]

    # Reworded: status names the change and the command that records it; that sweep runs nothing.
    write_claims(tmp_path, wording="reworded")
    status = emrun("status", "--configs", ".", cwd=tmp_path).stdout
    assert "its claim plug-ins changed (plugin/claims.py" in status and "records them and runs nothing" in status
    again = emrun("sweep", "hb.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    assert "(0 run now" in again.stdout and batch_files(tmp_path) == stored
    emrun("report", "--run-plugins", cwd=tmp_path)
    reworded = verdict(tmp_path)
    assert reworded["evidence"].startswith("reworded:") and reworded["record"]["changed_after_rows"] is False
    assert json.loads((tmp_path / "results" / "hb" / "manifest.json").read_text())["config_hash"] == config_hash

    # A new rule (version 2): judged with it, flagged, and the recorded rule's verdict given by the kept copy.
    write_claims(tmp_path, wording="second", needed=1, version='version=2, changes=(Change(2, "2026-12-04", "one run is '
                                                                     'enough"),)')
    assert "(0 run now" in emrun("sweep", "hb.yaml", "--quiet", "--workers", "1", cwd=tmp_path).stdout
    reported = emrun("report", "--run-plugins", cwd=tmp_path)
    assert batch_files(tmp_path) == stored
    assert "judged under its recorded criterion by the kept copy plugins/claims." in reported.stderr
    second = verdict(tmp_path)
    assert second["status"] == "holds" and second["evidence"].startswith("second:")
    record = second["record"]
    assert record["changed_after_rows"] is True and record["recorded_version"] == 1
    assert record["recorded_status"] == "does not hold" and record["recorded_evidence"].startswith("first:")
    assert record["amendments"][0]["reason"] == "one run is enough"
    report = (tmp_path / "results" / "hb" / "report.md").read_text()
    assert "**Criterion changed after these rows were stored**" in report and "at least 1000 runs" in report
    assert "Claim plug-in `plugin/claims.py`" in report

    # A changed algorithm still refuses the folder: its file is hashed with the rows.
    (tmp_path / "plugin" / "heavy_ball.py").write_text(HEAVY_BALL + "\n# edited\n")
    refused = emrun("sweep", "hb.yaml", "--quiet", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "they differ in plugins" in refused.stderr


@pytest.mark.parametrize("edit", [('frozenset({"em"})', 'frozenset(["em"])'), ("rng.uniform(-3, 3", "rng.uniform(-2, 2")],
                         ids=["family", "init"])
def test_a_changed_family_or_init_scheme_still_refuses_the_folder_when_claims_are_apart(tmp_path, edit):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "heavy_ball.py").write_text(FAMILY_INIT)
    (tmp_path / "plugin" / "claims.py").write_text(CLAIM)
    (tmp_path / "fam.yaml").write_text(FAMILY_CONFIG.replace("runs: 4", "runs: 2"))
    emrun("sweep", "fam.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    (tmp_path / "plugin" / "claims.py").write_text(CLAIM.replace("every {algorithm}", "all {algorithm}"))
    assert "(0 run now" in emrun("sweep", "fam.yaml", "--quiet", "--workers", "1", cwd=tmp_path).stdout
    (tmp_path / "plugin" / "heavy_ball.py").write_text(FAMILY_INIT.replace(*edit))
    refused = emrun("sweep", "fam.yaml", "--quiet", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "another version of config 'fam'" in refused.stderr
    assert "they differ in plugins" in refused.stderr


@pytest.mark.parametrize("listed,words", [
    ("plugins: [plugin/both.py]", ["plug-in plugin/both.py registers claim 'all_converged'", "claim_plugins"]),
    ("plugins: [plugin/heavy_ball.py]\nclaim_plugins: [plugin/both.py]",
     ["claim plug-in plugin/both.py registers", "model family 'gaussian_em_only'", "claims and report sections only"]),
])
def test_a_file_mixing_claims_with_what_makes_rows_is_refused_in_one_line(tmp_path, listed, words):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "heavy_ball.py").write_text(HEAVY_BALL)
    both = FAMILY_INIT + CLAIM.replace("from emrun.plugins import register_claim\n", "from emrun.plugins import "
                                                                                  "register_claim  # noqa\n")
    (tmp_path / "plugin" / "both.py").write_text(both)
    config = FAMILY_CONFIG.replace("plugins: [plugin/heavy_ball.py]\nclaim_plugins: [plugin/claims.py]", listed)
    (tmp_path / "fam.yaml").write_text(config)
    result = emrun("sweep", "fam.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (tmp_path / "results").exists()


def test_an_installed_claim_does_not_enter_the_config_hash(tmp_path):
    site = tmp_path / "site"
    (site / "emrun_claims-1.0.dist-info").mkdir(parents=True)
    (site / "emrun_claims.py").write_text(CLAIM)
    (site / "emrun_claims-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: emrun-claims\nVersion: 1.0\n")
    (site / "emrun_claims-1.0.dist-info" / "entry_points.txt").write_text("[emrun.plugins]\nclaims = emrun_claims\n")
    (site / "emrun_claims-1.0.dist-info" / "RECORD").write_text("emrun_claims.py,,\n")
    plain = "name: p\nseed: 1\ngrid: {m: [2], D: [2], algorithm: [em]}\nruns: 2\n"
    (tmp_path / "plain.yaml").write_text(plain)
    (tmp_path / "judged.yaml").write_text(plain + "claims: [all_converged]\n")
    env = {"PYTHONPATH": str(site)}
    without = emrun("sweep", "plain.yaml", "--dry-run", cwd=tmp_path).stdout
    judged = emrun("sweep", "judged.yaml", "--dry-run", cwd=tmp_path, env=env).stdout
    assert without.split("(hash ")[1][:16] == judged.split("(hash ")[1][:16]
