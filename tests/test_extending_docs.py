"""Every code example of docs/extending.md runs: its plug-in files pass `emrun check-plugin`, its
config sweeps and reports through the real CLI, and its Python blocks run on the swept folder.
The README's claim example passes check-plugin too."""

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import emrun

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(python|yaml)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> list[tuple[str, str]]:
    return BLOCK.findall(path.read_text())


def files_and_sessions(path: Path) -> tuple[dict[str, str], list[str]]:
    """The blocks that are files (first line '# file: NAME') by name, and the other Python blocks in order."""
    files, sessions = {}, []
    for language, text in blocks(path):
        first = text.splitlines()[0]
        if first.startswith("# file: "):
            files[first.removeprefix("# file: ").strip()] = text
        elif language == "python":
            sessions.append(text)
    return files, sessions


def test_the_reference_has_its_examples():
    files, sessions = files_and_sessions(ROOT / "docs" / "extending.md")
    assert {"separated.py", "far_apart.py", "damped_em.py", "my_claims.py", "coin.py", "spread.yaml"} <= set(files)
    assert len(sessions) >= 3
    assert "docs/extending.md" in (ROOT / "README.md").read_text()  # linked from the README


def test_every_example_of_the_reference_runs(tmp_path, monkeypatch):
    files, sessions = files_and_sessions(ROOT / "docs" / "extending.md")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    # The init scheme through the command line; the other files' contracts in one process (one start-up, not four).
    checked = emrun("check-plugin", "far_apart.py", cwd=tmp_path).stdout
    assert "init scheme far_apart on gaussian" in checked and "2 of 2 checks passed" in checked, checked
    script = ("import json, sys; from emrun.contract import check_file; "
              "print(json.dumps({f: [[r.subject, r.passed] for r in check_file(f)] for f in sys.argv[1:]}))")
    found = json.loads(subprocess.run([sys.executable, "-c", script, "separated.py", "damped_em.py", "my_claims.py",
                                       "coin.py"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout)
    # damped_em: 4 checks on each family offering EM, separated_gaussian included (registered first, in this process).
    # my_claims.py: three claims (one comparing a companion folder) and a report section.
    assert {f: len(results) for f, results in found.items()} == {"separated.py": 7, "damped_em.py": 16, "my_claims.py": 4,
                                                                  "coin.py": 1}
    assert all(passed for results in found.values() for _, passed in results), found

    emrun("sweep", "spread.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", "--run-plugins", cwd=tmp_path)
    verdicts = json.loads((tmp_path / "results" / "spread" / "verdicts.json").read_text())
    verdicts = verdicts["verdicts"] if isinstance(verdicts, dict) else verdicts
    assert len(verdicts) == 2
    # Both claims built their intervals over truths: 3 truths per cell are not 15 independent runs.
    assert all("truths" in v["interval"] and "Over 6 truths" in v["evidence"] for v in verdicts), verdicts
    assert "fewer than 10 truths" in verdicts[0]["interval"] and "Clopper-Pearson" in verdicts[1]["interval"]
    # The report section: its table after the built-in content, its figure beside the report.
    report = (tmp_path / "results" / "spread" / "report.md").read_text()
    assert "## k-cluster rate against m\n\n| m | algorithm | init | k-cluster rate |" in report
    assert "| 3 | damped_em | far_apart |" in report and report.index("## k-cluster rate against m") < report.index(
        "## Provenance")
    assert (tmp_path / "results" / "spread" / "section-rates_by_m-rates.png").stat().st_size > 0

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for text in sessions:
        exec(compile(text, "docs/extending.md", "exec"), namespace)
    assert namespace["estimate"].truths == 6 and namespace["verdict"].interval == namespace["difference"].method


def test_the_readmes_claim_example_passes_check_plugin(tmp_path):
    claim = next(text for language, text in blocks(ROOT / "README.md") if "register_claim" in text)
    (tmp_path / "my_claims.py").write_text(claim)
    checked = emrun("check-plugin", "my_claims.py", cwd=tmp_path)
    assert "1 of 1 checks passed" in checked.stdout
    assert "emrun.stats" in claim or "from emrun import stats" in claim  # its interval is built over truths
