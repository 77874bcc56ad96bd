"""The report: three files, figures inlined, NaN-free JSON, re-rendering from the store."""

import json
import math

from harness import __main__ as cli
from harness import report, stats
from harness.store import ResultStore


def claim_entry(profile="quick", supported=True):
    verdict = stats.family_verdict(
        {"r=0.1": stats.paired_greater([0.3, 0.31, 0.32], [0.2, 0.22, 0.21])}, 0.05,
        "paired t", [0, 1, 2], {"r=0.1": {"a": [0.3, 0.31, 0.32]}}, summary="toy")
    verdict.supported = supported
    figure = report.line_figure("fig1-toy", "Figure 1: toy", "test ratio", "accuracy",
                                [report.mean_series("matched", [0.1, 1.0], [[0.9, 0.91], [0.8, 0.82]])],
                                diagonal=True, vlines=[{"x": 0.5, "label": "balance"}])
    return {"nodeid": f"claims/test_toy.py::test_toy[{profile}]", "profile": profile, "takeaway": "1",
            "arm": "toy", "title": "toy claim", "quote": "A sentence of the paper.", "xfail_reason": "",
            "verdict": verdict.to_dict(), "outcome": "passed" if supported else "failed",
            "figures": [figure], "record_keys": ["abc"]}


def test_report_writes_three_files_and_latest(tmp_path):
    records = [{"key": "abc", "spec": {"dataset": "toy"}, "data_source": {"variant": "x"},
                "versions": {"numpy": "1"}, "metrics": {"nan": math.nan}}]
    out = report.write_report([claim_entry(), claim_entry("full", False)], records,
                              {"seeds": [0, 1, 2], "git_commit": "deadbeef"}, tmp_path, run_id="r1")
    page = (out / "index.html").read_text()
    assert "<svg" in page and "Figure 1: toy" in page and "deadbeef" in page
    assert "not supported" in page and "A sentence of the paper." in page
    for fetch in ('src="http', "src='http", 'href="http', "<link", "@import", "url(http"):
        assert fetch not in page  # self-contained: nothing to fetch (XML namespaces are names)
    claims = json.loads((out / "claims.json").read_text())
    assert {c["verdict"] for c in claims} == {"supported", "not supported"}
    assert claims[0]["per_seed"] and claims[0]["seeds"] == [0, 1, 2]
    line = (out / "results.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["metrics"]["nan"] is None  # strict JSON
    assert (tmp_path / "latest").resolve() == out.resolve()


def test_cli_rerenders_from_the_store(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    store.put_claim(claim_entry())
    code = cli.main(["report", "--store", str(tmp_path / "store"), "--report-dir", str(tmp_path / "rep")])
    assert code == 0
    assert (tmp_path / "rep" / "latest" / "index.html").exists()
    assert "nothing trained" in capsys.readouterr().out


def test_cli_without_results_says_what_to_run(tmp_path, capsys):
    assert cli.main(["report", "--store", str(tmp_path / "empty")]) == 2
    assert "pytest claims/ -m quick" in capsys.readouterr().err
