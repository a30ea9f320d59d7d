"""The kind protocol (emrun.kinds.protocol): a kind written to it alone sweeps, reports, shows its
status and replays through the real CLI; an object that does not follow it is refused when it
registers, with every problem named."""

import shutil
from pathlib import Path

import pytest

from emrun.kinds.protocol import OPTIONAL, REQUIRED, Kind, KindError, protocol_problems
from emrun.plugins import PluginError, register_kind
from tests.conftest import emrun

DARTS = Path(__file__).resolve().parent / "kinds" / "darts.py"
CONFIG = "name: darts\nseed: 3\nexperiment: darts\nplugins: [darts.py]\ndarts: 20000\nthrowers: 3\n"


@pytest.fixture
def project(tmp_path):
    shutil.copy(DARTS, tmp_path / "darts.py")
    (tmp_path / "darts.yaml").write_text(CONFIG)
    return tmp_path


def test_a_kind_written_to_the_protocol_alone_sweeps_reports_and_replays(project):
    dry = emrun("sweep", "darts.yaml", "--dry-run", "--run-plugins", cwd=project).stdout
    assert "experiment darts, 3 batches in the first round" in dry
    swept = emrun("sweep", "darts.yaml", "--quiet", "--workers", "2", cwd=project)
    assert "3 of 3 batches stored" in swept.stdout, swept.stdout
    emrun("report", "--run-plugins", cwd=project)
    report = (project / "results" / "darts" / "report.md").read_text()
    assert "12 throws." in report and "**the darts estimate pi**: holds" in report
    assert "All 3 planned batches are stored." in report  # the core's completeness, from the default failed_rows
    status = emrun("status", "--run-plugins", "--configs", str(project), cwd=project).stdout
    assert "throws: 12" in status and "3 stored, 0 pending of 3 planned" in status
    replayed = emrun("replay", "--run-plugins", "darts/thrower2/3", cwd=project)
    assert "re-run reproduces the stored row exactly" in replayed.stdout
    assert "this kind records no trace" in replayed.stdout
    missing = emrun("replay", "--run-plugins", "darts/thrower7/0", cwd=project, check=False)
    assert missing.returncode == 2 and "no stored trial thrower7/0" in missing.stderr


class Incomplete:
    name = "incomplete"
    keys = {}
    adaptive = "sometimes"

    def validate(self, raw, check):  # one argument short
        pass

    plan = 3  # not a method


def test_an_object_that_does_not_follow_the_protocol_is_refused_when_it_registers_naming_each_problem():
    problems = protocol_problems(Incomplete())
    assert problems == ["has no run_batch", "has no write_report", "validate cannot be called as validate(raw, check, out)",
                        "plan is int, not a method", "adaptive is 'sometimes', not a bool"]
    with pytest.raises(KindError, match="'incomplete' does not follow the kind protocol"):
        Kind(Incomplete())
    with pytest.raises(PluginError, match="has no run_batch; has no write_report"):
        register_kind(Incomplete())


def test_the_defaults_cover_every_optional_member_and_only_those():
    defaults = {name for name in dir(Kind) if not name.startswith("_")}
    assert defaults == set(OPTIONAL)
    assert not set(REQUIRED) & set(OPTIONAL)
