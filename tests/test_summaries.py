"""Companion summaries are used only for the config and the verdict code that wrote them."""

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

import emrun
from emrun.summaries import VERDICT_CODE, VERDICT_MODULES, StaleSummary, read_summary, write_summary

# The texts of the verdict modules that each version of the verdict code stands for. A change to
# any of them fails this test: bump emrun.summaries.VERDICT_CODE and add the new hash under it
# (summaries of the old version are then refused, and re-written by the next report with rows).
# Only a change that provably computes nothing differently (an import, a comment) may add its hash
# under the current version instead, saying so in its commit.
VERDICT_CODE_HASHES = {
    1: {"fb5d91222d833f53d18b7b233be05142670f12cb9b40b58fd5985750980aefa0",  # 54b4b8a
        # CSVs and report text handed to the atomic writers (files.write_csv, ctx.write_report): same values
        "fca0677794daf8a7644663acb8ac19d5490bc4e5ca30243c6d8214c38f234c09"},
    # The criterion record: claims declared with sources and versions, verdicts as JSON, the interval rules
    2: {"ba48238b36948ae16464b0fec92a11f2565b9e640ee2e931197c1ed14b87da97"},
    # Cycling runs counted among the capped; Figure 2's and eq. 4.7's claims on the population
    3: {"e3ba45517ded424f3e5a48b2b3da3ce838187158cad0e312d767703a668a7d94",
        # Claim plug-ins apart (issue 31): a plug-in Claim's changes, its kept copy in the record, the source
        # line of a plug-in claim that names none; no built-in claim computes anything differently
        "99dfe7ed2fcc633de39686cc9563cdcb53401f7970364b5328ea905be0a512a9",
        # emrun.stats (issue 31): the k-cluster rate rule moved there, truths keyed with their truth options;
        # `emrun report` over every committed folder's rows re-wrote every file unchanged but provenance.json
        "a8415c20200f3b2be3b6298e2f6849a104c7b82ed1a2a30ac6fb4290fbb22919",
        # Companions (issue 31): claims.judge passes declared companions' rows to a claim whose judge takes a
        # `companions` parameter (no built-in claim does); judge_declared is judge on the report's own rows
        "d639502d26d258ea3063ed709a5e95ab5339cc237a13119180a3e18f3d4e5591",
        # A source that gives a place but no quote reads "Theorem 2 (stated for: ...)", not "Theorem 2: (stated
        # for: ...)"; no committed report had such a source
        "4b285ec3923bd23f05c28e520eecab982595bb8e30fa9f66c207575e37b1ba6c",
        # Reports as documents (issue 32): verdicts stay objects in the writers' blocks and are rendered audited by
        # identity (emrun.report.document), not found again in the text; `emrun report` over the rows of all 37
        # folders on this machine re-wrote every file unchanged but provenance.json
        "ae2e888a74e22d2115d24f85c698715f7078fde3dd9e5b3eddb99cff3d0b124b",
        # Typed configs and the claims split (issue 32): report/row_claims.py holds the built-in claims moved out
        # of report/claims.py; defaults read from emrun.settings instead of restated (em_update, gd_boundary,
        # k_cluster_threshold); a claim's derived wording params declared on the Claim; `emrun report` over the
        # rows of all 37 folders re-wrote every report, verdicts.json, figure and REPORT.md unchanged
        "05b781481118b868d277003e29293d6c4d2071f464a540011f826e2ddf3f3f5d",
        # Review: the binomial-only basis of the published comparison says no many-truths run is declared
        # (companions:), not "found"; no committed report has that basis (each declares its many-truths run)
        "faac5a002ae026026e5d0f54414cdfa1d1107f586ded50d03c4bea98742394c4",
        # selection.py imports pandas inside the two functions that table rows, not at the top (a pool worker
        # imports the module and never calls them); no line of either function changed
        "85fb0129ee41fb885310158b75ee2fb0d83191e7ae6506cc8990dae0e9f0ff48"},
}


def verdict_modules_hash() -> str:
    root = Path(emrun.__file__).parent
    digest = hashlib.sha256()
    for module in VERDICT_MODULES:
        digest.update(module.encode())
        digest.update((root / module).read_bytes())
    return digest.hexdigest()


def test_the_verdict_code_version_is_tied_to_the_verdict_modules():
    assert verdict_modules_hash() in VERDICT_CODE_HASHES.get(VERDICT_CODE, set()), (
        "a verdict module changed: bump emrun.summaries.VERDICT_CODE and record the new hash in VERDICT_CODE_HASHES")


def folder_with_manifest(tmp_path: Path) -> Path:
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"config_hash": "0123456789abcdef", "config": {"name": "many"},
                                                      "sweeps": []}))
    return folder


def test_a_summary_written_by_older_verdict_code_is_refused_though_the_package_version_is_the_same(tmp_path):
    folder = folder_with_manifest(tmp_path)
    write_summary(folder, "counts", pd.DataFrame({"m": [2], "k_cluster": [1]}), complete=True)
    table, complete = read_summary(folder, "counts")
    assert table.to_dict("records") == [{"m": 2, "k_cluster": 1}] and complete
    # As written before verdict code had a version of its own: stamped with the package version only.
    path = folder / "summaries" / "counts.json"
    stamped = json.loads(path.read_text())
    old = {"config_hash": stamped["config_hash"], "emrun_version": emrun.__version__,
           **{k: v for k, v in stamped.items() if k not in ("config_hash", "verdict_code")}}
    path.write_text(json.dumps(old))
    with pytest.raises(StaleSummary, match="by verdict code of emrun"):
        read_summary(folder, "counts")
    path.write_text(json.dumps({**stamped, "verdict_code": VERDICT_CODE - 1}))
    with pytest.raises(StaleSummary, match=f"by verdict code {VERDICT_CODE - 1}, not for 0123456789abcdef by verdict code"):
        read_summary(folder, "counts")


def test_the_committed_summaries_carry_the_verdict_code_stamp():
    committed = list((Path(__file__).parent.parent / "results").glob("*/summaries/*.json"))
    assert committed
    for path in committed:
        assert json.loads(path.read_text()).get("verdict_code") == VERDICT_CODE, path
