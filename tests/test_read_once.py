"""A report run reads each results folder's manifest from disk once (emrun.store.read_once): once
for every folder it looks at, and once more, under the folder's lock, for each folder whose
criterion record it updates."""

from collections import Counter
from pathlib import Path

from emrun import manifest, store
from emrun.report import write_reports
from tests.conftest import TINY, emrun


def test_a_report_run_reads_each_manifest_once_and_again_only_under_the_lock(tmp_path, monkeypatch):
    for name in ("tiny", "other"):
        (tmp_path / f"{name}.yaml").write_text(TINY.replace("name: tiny", f"name: {name}").replace("runs: 6", "runs: 2"))
        emrun("sweep", f"{name}.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    reads: Counter = Counter()
    disk = manifest._read_manifest_file

    def counted(folder):
        reads[Path(folder).name] += 1
        return disk(folder)

    monkeypatch.setattr(manifest, "_read_manifest_file", counted)
    root = tmp_path / "results"
    write_reports([root / "tiny", root / "other"], root, "emrun report")
    assert reads == {"tiny": 2, "other": 2}, reads  # before: 3 and 3 (report, audit, index)
    reads.clear()
    store.read_manifest(root / "tiny")
    store.read_manifest(root / "tiny")
    assert reads == {"tiny": 2}  # outside a report run nothing is kept
