"""The report: three files, figures inlined, NaN-free JSON, every claim a row, re-rendering."""

import json
import math
import re
import warnings

from harness import __main__ as cli
from harness.judging import report, stats
from harness.runs.store import ResultStore

GATE = {"passed": True, "summary": "balanced accuracy 0.8 vs chance 0.5 + 0.05", "cell": "erm, 1"}


def claim_entry(profile="quick", supported=True, outcome=None, nodeid=None):
    values = [0.3, 0.31, 0.32] if supported else [0.2, 0.21, 0.23]
    verdict = stats.family_verdict(
        {"r=0.1": stats.paired_greater(values, [0.2, 0.22, 0.21])}, 0.05,
        "paired t", [0, 1, 2], {"r=0.1": {"a": values}}, summary="toy",
        effect_unit="test error, balanced minus matched (> 0 supports)")
    verdict = stats.gated(verdict, GATE)
    figure = report.line_figure("fig1-toy", "Figure 1: toy", "test ratio", "accuracy",
                                [report.mean_series("matched", [0.1, 1.0], [[0.9, 0.91], [0.8, 0.82]])],
                                diagonal=True, vlines=[{"x": 0.5, "label": "balance"}])
    return {"nodeid": nodeid or f"claims/test_toy.py::test_toy[{profile}]", "profile": profile,
            "takeaway": "1", "arm": "toy", "title": "toy claim", "quote": "A sentence of the paper.",
            "xfail_reason": "", "exploratory": None, "verdict": verdict.to_dict(),
            "outcome": outcome or ("passed" if supported else "failed"), "figures": [figure],
            "record_keys": ["abc"]}


def error_entry():
    return {"nodeid": "claims/test_toy.py::test_crash[quick]", "profile": "quick", "takeaway": "1",
            "arm": "toy", "title": "crash", "quote": "", "xfail_reason": "", "exploratory": None,
            "verdict": None, "outcome": "error", "figures": [], "record_keys": [],
            "error": "RuntimeError: injected"}


def test_report_writes_three_files_and_latest(tmp_path):
    records = [{"key": "abc", "spec": {"dataset": "toy"}, "data_source": {"variant": "x"},
                "versions": {"numpy": "1", "torch": "2.x"}, "metrics": {"nan": math.nan}}]
    out = report.write_report([claim_entry(), claim_entry("full", False), error_entry()], records,
                              {"seeds": [0, 1, 2], "git_commit": "deadbeef"}, tmp_path, run_id="r1")
    page = (out / "index.html").read_text()
    assert "<svg" in page and "Figure 1: toy" in page and "deadbeef" in page
    assert "inconclusive" in page and "A sentence of the paper." in page
    assert "(&gt; 0 supports)" in page and "torch" in page  # effect units; library versions
    for fetch in ('src="http', "src='http", 'href="http', "<link", "@import", "url(http"):
        assert fetch not in page  # self-contained: nothing to fetch (XML namespaces are names)
    claims = json.loads((out / "claims.json").read_text())
    assert sorted(c["verdict"] for c in claims) == ["error", "inconclusive", "supported"]
    crashed = next(c for c in claims if c["verdict"] == "error")
    assert crashed["error"] == "RuntimeError: injected"
    failed = next(c for c in claims if c["verdict"] == "inconclusive")
    assert failed["minimal_detectable_effect"] > 0 and failed["reason"].startswith("inconclusive")
    supported = next(c for c in claims if c["verdict"] == "supported")
    assert supported["per_seed"] and supported["seeds"] == [0, 1, 2] and supported["gate"]["passed"]
    line = (out / "results.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["metrics"]["nan"] is None  # strict JSON
    assert (tmp_path / "latest").resolve() == out.resolve()


EVIDENCE = {"path": "claims/evidence/test_c--toy.json", "entries": [
    {"scale": "quick", "seeds": [0, 1, 2, 3, 4], "verdict": "inconclusive", "effect": 0.001,
     "ci": [-0.002, 0.004], "p_holm": 0.2, "commit": "abc123", "date": "2026-11-30"},
    {"scale": "80 seeds", "seeds": list(range(80)), "verdict": "supported", "effect": 0.0011,
     "ci": [0.0006, 0.0016], "p_holm": 1e-7, "commit": "abc123", "date": "2026-11-30"}]}


def test_header_counts_every_kind_of_outcome(tmp_path):
    """Expected failures are counted apart from the claims asserted: refuted or inconclusive at
    quick scale (with the evidence of the scales searched), or zoo measurements."""
    refuted = stats.paired_greater([0.0, 0.12, 0.05], [1.0, 1.1, 1.06])
    refuted = stats.gated(stats.family_verdict({"r": refuted}, 0.05, "t", [0, 1, 2], {}), GATE)
    entries = [claim_entry(), claim_entry("full", False, nodeid="claims/t.py::b[full]"),
               dict(claim_entry(outcome="xfailed", supported=False, nodeid="claims/t.py::c[quick]"),
                    xfail_kind="quick scale", evidence=EVIDENCE),
               dict(claim_entry(outcome="xfailed", nodeid="claims/t.py::d[quick]"),
                    verdict=refuted.to_dict(), xfail_kind="quick scale", evidence=EVIDENCE),
               dict(claim_entry(outcome="xfailed", supported=False, nodeid="claims/t.py::z[quick]"),
                    xfail_kind="report only"),
               dict(claim_entry(outcome="xpassed", nodeid="claims/t.py::y[quick]"), xfail_kind="report only"),
               error_entry(), dict(error_entry(), nodeid="claims/t.py::s[quick]", outcome="skipped")]
    out = report.write_report(entries, [], {}, tmp_path, run_id="r2")
    page = (out / "index.html").read_text()
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)
    for part in ("8 claim tests", "1 supported", "1 inconclusive", "1 refuted at quick scale",
                 "1 inconclusive at quick scale", "1 zoo: supported", "1 zoo: inconclusive", "1 error",
                 "1 skipped"):
        assert part in heading, heading
    assert page.count("claims/evidence/test_c--toy.json") >= 4  # a link and its text, per claim
    assert "80 seeds" in page and "abc123" in page
    rows = {r["nodeid"]: r for r in json.loads((out / "claims.json").read_text())}
    assert rows["claims/t.py::c[quick]"]["evidence"] == EVIDENCE
    assert rows["claims/t.py::z[quick]"]["xfail_kind"] == "report only"


def test_inline_svg_ids_are_unique_on_the_page(tmp_path):
    entries = [claim_entry(), dict(claim_entry("full"), figures=[dict(claim_entry()["figures"][0], id="fig2")])]
    page = (report.write_report(entries, [], {}, tmp_path, run_id="r3") / "index.html").read_text()
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) > 20 and len(ids) == len(set(ids))
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', page):
        assert ref in ids, ref  # every reference still points at an element


def test_cli_rerenders_from_the_store(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    store.put_claim(claim_entry())
    code = cli.main(["report", "--store", str(tmp_path / "store"), "--report-dir", str(tmp_path / "rep")])
    assert code == 0
    assert (tmp_path / "rep" / "latest" / "index.html").exists()
    assert "nothing trained" in capsys.readouterr().out


def test_cli_skips_a_corrupt_claim_or_session_file_and_names_it(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    store.put_claim(claim_entry())
    bad = tmp_path / "store" / "claims" / "quick" / "broken.json"
    bad.write_text("{not json")
    (tmp_path / "store" / "claims" / "quick" / "list.json").write_text("[]")
    (tmp_path / "store" / "sessions").mkdir(parents=True)
    (tmp_path / "store" / "sessions" / "latest.json").write_text("null")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(["report", "--store", str(tmp_path / "store"), "--report-dir", str(tmp_path / "rep")])
    assert code == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.json" in messages and "list.json" in messages and "latest.json" in messages
    assert "(1 claims" in capsys.readouterr().out


def test_cli_without_results_says_what_to_run(tmp_path, capsys):
    assert cli.main(["report", "--store", str(tmp_path / "empty")]) == 2
    assert "pytest claims/ -m quick" in capsys.readouterr().err


def test_cli_help_is_plain_text_and_every_option_is_described(capsys):
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.choices and a.dest == "command").choices
    for name, sub in [("", parser), *subparsers.items()]:
        for action in sub._actions:
            assert action.help, f"python -m harness {name}: {action.option_strings} has no description"
        text = sub.format_help()
        assert "``" not in text and ":mod:" not in text and "Examples::" not in text, text
