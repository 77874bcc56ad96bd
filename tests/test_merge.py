"""Merging stores: copies what is new, keeps identical runs once, reports conflicts, and refuses
bad input before writing anything."""

import json
import subprocess
import sys

import pytest

from harness.runs import merge
from harness.data import REPO_ROOT
from harness.runs.spec import make_spec
from harness.runs.store import IncompatibleStoreError, ResultStore
from harness.runs.training import execute


def runs(n_values, seed=0):
    return [execute(make_spec("synthetic", "spy", "erm", (200, n), (1.0,), seed)) for n in n_values]


def test_merge_copies_new_runs_and_reports_conflicts(synthetic, tmp_path):
    a, b, into = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b"), tmp_path / "into"
    first, shared, clashing = runs([10, 20, 30])
    for record in (first, shared, clashing):
        a.put(record)
    b.put(shared)  # the same run with the same metrics
    other = json.loads(json.dumps(clashing))  # the same key, different metrics (a GPU rerun)
    other["metrics"]["test"]["1"]["accuracy"] += 0.01
    other["host"] = "gpu-node-7"
    b.put(other)
    report = merge.merge_stores([tmp_path / "a", tmp_path / "b"], into)
    assert report.copied == 3 and report.identical == 1 and len(report.conflicts) == 1
    conflict = report.conflicts[0]
    assert conflict.key == clashing["key"]
    assert any(path == "test.1.accuracy" for path, _, _ in conflict.differences)
    assert "gpu-node-7" in conflict.describe() and "largest |difference| 0.01" in conflict.describe()
    kept = json.loads(ResultStore(into).run_path(clashing["key"]).read_text())
    assert kept["metrics"] == clashing["metrics"]  # never overwritten


def test_merging_a_store_into_itself_is_refused(synthetic, tmp_path):
    ResultStore(tmp_path / "a").put(runs([10])[0])
    with pytest.raises(merge.MergeError, match="is the --into store itself"):
        merge.merge_stores([tmp_path / "a"], tmp_path / "a")


def test_a_directory_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(merge.MergeError, match="not a result store"):
        merge.merge_stores([tmp_path / "empty"], tmp_path / "into")


def test_a_store_in_another_layout_is_refused_before_anything_is_copied(synthetic, tmp_path):
    good, bad = ResultStore(tmp_path / "good"), ResultStore(tmp_path / "bad")
    good.put(runs([10])[0])
    bad.put(runs([20])[0])
    (tmp_path / "bad" / "store.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(IncompatibleStoreError, match="layout version 99"):
        merge.merge_stores([tmp_path / "good", tmp_path / "bad"], tmp_path / "into")
    assert not (tmp_path / "into").exists()


def test_a_record_that_does_not_match_its_key_is_skipped_and_named(synthetic, tmp_path):
    store = ResultStore(tmp_path / "a")
    record = store.put(runs([10])[0])
    path = store.run_path(record["key"])
    tampered = dict(record, spec=dict(record["spec"], seed=99))
    path.write_text(json.dumps(tampered))
    report = merge.merge_stores([tmp_path / "a"], tmp_path / "into")
    assert report.copied == 0 and len(report.invalid) == 1 and "does not match its key" in report.invalid[0]


def test_records_carry_the_provenance_a_merged_store_needs(synthetic):
    record = runs([10])[0]
    assert record["host"] and record["device_name"]
    assert {"python", "harness", "numpy"} <= set(record["versions"])


def test_merge_command_exit_codes(tmp_path):
    into_itself = subprocess.run([sys.executable, "-m", "harness", "merge", str(tmp_path),
                                  "--into", str(tmp_path)], cwd=REPO_ROOT, capture_output=True,
                                 text=True, timeout=120)
    assert into_itself.returncode == 2 and "merge:" in into_itself.stderr
