"""The report: three files, figures inlined, NaN-free JSON, every claim a row, re-rendering."""

import html
import json
import math
import re
import warnings
from html.parser import HTMLParser

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
    """The paper's claims are counted apart from the zoo's measurements, and "expected at quick
    scale" (xfailed) qualifies refuted or inconclusive rather than being a verdict of its own."""
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
    heading = html.unescape(" ".join(re.search(r"<h1>(.*?)</h1>", page, re.S).group(1).split()))
    assert ("1 supported, 1 refuted (1 expected at quick scale), 2 inconclusive (1 expected at "
            "quick scale), 1 error; 1 skipped") in heading, heading
    assert "zoo" not in heading  # the zoo's measurements are not the paper's claims
    assert report.verdict_summary(entries) == [
        "the paper's claims (6): 1 supported, 1 refuted (1 expected at quick scale), 2 "
        "inconclusive (1 expected at quick scale), 1 error; 1 skipped",
        "zoo measurements (not asserted) (2): 1 supported, 1 inconclusive"]
    assert page.count("claims/evidence/test_c--toy.json") >= 4  # a link and its text, per claim
    assert "80 seeds" in page and "abc123" in page
    rows = {r["nodeid"]: r for r in json.loads((out / "claims.json").read_text())}
    assert rows["claims/t.py::c[quick]"]["evidence"] == EVIDENCE
    assert rows["claims/t.py::z[quick]"]["xfail_kind"] == "report only"
    assert rows["claims/t.py::z[quick]"]["kind"] == "zoo" and rows["claims/t.py::c[quick]"]["kind"] == "paper"


def test_inline_svg_ids_are_unique_on_the_page(tmp_path):
    entries = [claim_entry(), dict(claim_entry("full"), figures=[dict(claim_entry()["figures"][0], id="fig2")])]
    page = (report.write_report(entries, [], {}, tmp_path, run_id="r3") / "index.html").read_text()
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) > 20 and len(ids) == len(set(ids))
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', page):
        assert ref in ids, ref  # every reference still points at an element


def test_cli_rerenders_from_the_store(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    store.put_claim(claim_entry(), "20261130-100000-aaaa")
    code = cli.main(["report", "--store", str(tmp_path / "store"), "--report-dir", str(tmp_path / "rep")])
    assert code == 0
    assert (tmp_path / "rep" / "latest" / "index.html").exists()
    assert "nothing trained" in capsys.readouterr().out


def test_cli_skips_a_corrupt_claim_or_session_file_and_names_it(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    store.put_claim(claim_entry(), "s1")
    folder = tmp_path / "store" / "sessions" / "s1"
    (folder / "claims" / "quick" / "broken.json").write_text("{not json")
    (folder / "claims" / "quick" / "list.json").write_text("[]")
    (folder / "session.json").write_text("null")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(["report", "--store", str(tmp_path / "store"), "--report-dir", str(tmp_path / "rep")])
    assert code == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.json" in messages and "list.json" in messages and "session.json" in messages
    assert "(1 claims" in capsys.readouterr().out


def two_sessions(tmp_path):
    """A store with an older session (a supported claim and an error) and the latest one (the
    same claim, now inconclusive), plus a claim of an older store, which kept no session."""
    store = ResultStore(tmp_path / "store")
    old, new = "20261129-090000-aaaa", "20261130-090000-bbbb"
    store.put_claim(claim_entry(), old)
    store.put_claim(error_entry(), old)
    store.put_session({"session_id": old, "command": "pytest old", "profiles": ["quick"],
                       "wall_time_s": 60.0})
    store.put_claim(claim_entry(supported=False), new)
    store.put_session({"session_id": new, "command": "pytest new", "profiles": ["quick"],
                       "wall_time_s": 30.0})
    store.put_claim(dict(claim_entry(), nodeid="claims/test_toy.py::test_ancient[quick]"))
    return store, old, new


def rendered(tmp_path, *args):
    code = cli.main(["report", "--store", str(tmp_path / "store"), "--report-dir",
                     str(tmp_path / "rep"), *args])
    assert code == 0
    out = max((p for p in (tmp_path / "rep").iterdir() if p.name != "latest"),
              key=lambda p: p.stat().st_mtime_ns)
    page = " ".join((out / "index.html").read_text().split())  # the words, not the line breaks
    return out, json.loads((out / "claims.json").read_text()), page


def test_cli_renders_the_latest_session_only_by_default(tmp_path):
    store, old, new = two_sessions(tmp_path)
    assert store.sessions() == [old, new]
    out, rows, page = rendered(tmp_path)
    assert [(r["nodeid"], r["verdict"], r["session"]) for r in rows] == [
        ("claims/test_toy.py::test_toy[quick]", "inconclusive", new)]  # no stale error, no old claim
    assert out.name.startswith(f"{new}-rerendered-") and f"Claims of session {new}" in page
    assert (tmp_path / "rep" / "latest").resolve() == out.resolve()  # a rendering of the latest
    assert "pytest new" in page  # the session's own environment


def test_cli_renders_a_chosen_session_without_moving_latest(tmp_path):
    _, old, new = two_sessions(tmp_path)
    latest, _, _ = rendered(tmp_path)
    out, rows, page = rendered(tmp_path, "--session", old)
    assert sorted((r["verdict"], r["session"]) for r in rows) == [("error", old), ("supported", old)]
    assert (tmp_path / "rep" / "latest").resolve() == latest.resolve()
    assert cli.main(["report", "--store", str(tmp_path / "store"), "--session", "nope"]) == 2


def test_cli_renders_every_session_and_each_row_names_its_session(tmp_path, capsys):
    _, old, new = two_sessions(tmp_path)
    out, rows, page = rendered(tmp_path, "--all")
    assert sorted((r["verdict"], r["session"] or "") for r in rows) == [
        ("error", old), ("inconclusive", new), ("supported", ""), ("supported", old)]
    table = re.search(r'<table id="paper-table">(.*?)</table>', page, re.S).group(1)
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr class.*?</tr>", table)]
    assert sorted(c[4] for c in cells) == sorted([old, old, new, report.NO_SESSION])  # the session column
    assert "written before sessions had ids" in page  # the note on the older store's claim
    assert not (tmp_path / "rep" / "latest").exists()  # --all never repoints latest
    assert cli.main(["report", "--store", str(tmp_path / "store"), "--list"]) == 0
    listing = capsys.readouterr().out
    assert f"{new} (latest): 1 claims" in listing and "pytest old" in listing
    assert "1 claims without a session id" in listing


def test_cli_on_a_store_of_an_older_version_points_at_all(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    store.put_claim(claim_entry())  # no session, as harness 0.5 wrote claims
    (tmp_path / "store" / "sessions").mkdir()
    (tmp_path / "store" / "sessions" / "latest.json").write_text('{"command": "pytest 0.5"}')
    args = ["report", "--store", str(tmp_path / "store"), "--report-dir", str(tmp_path / "rep")]
    assert cli.main(args) == 2
    assert "--all" in capsys.readouterr().err
    out, rows, page = rendered(tmp_path, "--all")
    assert rows[0]["session"] is None and "pytest 0.5" in page and "written before sessions" in page


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


class Tables(HTMLParser):
    """The text of every cell of every table with an id, by table id: one list per row; and the
    ids of the h2 headings. Enough of the page's structure to read it the way a person does."""

    def __init__(self):
        super().__init__()
        self.tables, self.headings, self.current, self.row, self.cell = {}, [], None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self.current = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self.current is not None:
            self.row = []
            self.current.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag == "h2" and attrs.get("id"):
            self.headings.append(attrs["id"])
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")  # a line break in a cell reads as a space

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table":
            self.current, self.row = None, None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def method_claim(test, arm, method, values, zoo, outcome):
    """A claim of claims/test_methods_under_test.py: a zoo measurement (xfail "report only"), or
    a claim about a method under test."""
    verdict = stats.gated(stats.family_verdict(
        {"r=0.05": stats.paired_greater(values, [0.2, 0.21, 0.22])}, 0.05, "paired t", [0, 1, 2],
        {}, effect_unit="balanced test error, ERM minus method (> 0 supports)"), GATE)
    return {"nodeid": f"claims/test_methods_under_test.py::{test}[{arm}-{method}-quick]",
            "profile": "quick", "takeaway": "M", "arm": arm, "title": test.removeprefix("test_"),
            "quote": "Methods under test.", "xfail_reason": "measured" if zoo else "",
            "xfail_kind": "report only" if zoo else "", "exploratory": None, "method": method,
            "verdict": verdict.to_dict(), "outcome": outcome, "figures": [], "record_keys": []}


def test_report_reads_at_a_glance(tmp_path):
    """The page as a reader sees it (parsed, not grepped): the header splits the paper's claims
    from the zoo's measurements and the methods under test, with "expected at quick scale" a
    qualifier; the zoo has its own table, one row per (method, arm) and a column per claim it is
    measured on, and none of its rows is in the paper's table; a refuted row shows the p of the
    refuting test, not the supporting tests' 1."""
    against = stats.paired_greater([0.0, 0.12, 0.05], [1.0, 1.1, 1.06])
    refuted = stats.gated(stats.family_verdict({"r=0.1": against}, 0.05, "t", [0, 1, 2], {}), GATE)
    refuting_p = refuted.comparisons[0]["p_refute_adjusted"]
    assert refuted.outcome == "refuted" and refuted.p_value == refuting_p < 0.05
    assert refuted.p_supporting > 0.99  # what the row showed before
    paper = [claim_entry(nodeid="claims/t.py::supported[quick]"),
             dict(claim_entry(nodeid="claims/t.py::refuted[quick]", outcome="failed"),
                  verdict=refuted.to_dict(), title="refuted claim"),
             claim_entry(supported=False, nodeid="claims/t.py::inconclusive[quick]"),
             dict(claim_entry(outcome="xfailed", nodeid="claims/t.py::refuted_quick[quick]"),
                  verdict=refuted.to_dict(), xfail_kind="quick scale", evidence=EVIDENCE),
             dict(claim_entry(outcome="xfailed", supported=False, nodeid="claims/t.py::inc_quick[quick]"),
                  xfail_kind="quick scale", evidence=EVIDENCE),
             error_entry(), dict(error_entry(), nodeid="claims/t.py::skipped[quick]", outcome="skipped")]
    better, worse = [0.3, 0.32, 0.33], [0.2, 0.21, 0.23]
    zoo = [method_claim(test, arm, method, values, True, outcome)
           for method in ("focal", "ldam_drw") for arm in ("m-adult-xgboost", "m-cifar10-nn")
           for test, values, outcome in (("test_method_beats_erm_under_imbalance", better, "xpassed"),
                                         ("test_method_beats_oversampling", worse, "xfailed"))]
    mine = [method_claim(test, "m-cifar10-nn", "mine", better, False, "passed")
            for test in report.METHOD_CLAIM_TESTS]
    session = {"session_id": "20261130-120000-abcd", "zoo_left_out": {
        "quick": {"balanced_softmax": "balanced_softmax is left out of the quick zoo: it is the "
                                      "logit-adjusted loss at tau = 1"}, "full": {}}}
    out = report.write_report(paper + zoo + mine, [], session, tmp_path)
    assert out.name == "20261130-120000-abcd"  # the report's run id is its session's id
    page = (out / "index.html").read_text()
    parsed = Tables()
    parsed.feed(page)
    tables = parsed.tables

    heading = html.unescape(" ".join(re.search(r"<h1>(.*?)</h1>", page, re.S).group(1).split()))
    assert heading.endswith("the paper's claims \u2014 1 supported, 2 refuted (1 expected at "
                            "quick scale), 2 inconclusive (1 expected at quick scale), 1 error; "
                            "1 skipped"), heading
    counts = {row[0]: row[1] for row in tables["counts"]}
    assert counts == {
        "the paper's claims (7)": "1 supported, 2 refuted (1 expected at quick scale), 2 "
                                  "inconclusive (1 expected at quick scale), 1 error; 1 skipped",
        "zoo measurements (not asserted) (8)": "4 supported, 4 inconclusive",
        "methods under test (4)": "4 supported"}

    assert parsed.headings[:4] == ["paper-claims", "methods", "zoo", "takeaway-1"]
    header, *zoo_rows = tables["zoo-table"]
    assert header == ["method", "arm", "profile", "beats ERM under imbalance", "beats oversampling"]
    assert [row[:3] for row in zoo_rows] == [
        ["focal", "m-adult-xgboost", "quick"], ["focal", "m-cifar10-nn", "quick"],
        ["ldam_drw", "m-adult-xgboost", "quick"], ["ldam_drw", "m-cifar10-nn", "quick"]]
    for row in zoo_rows:
        assert re.fullmatch(r"supported effect \S+ \[\S+, \S+\] p \S+ \(supporting\)", row[3]), row
        assert re.fullmatch(r"inconclusive effect \S+ \[\S+, \S+\] p \S+ \(supporting\)", row[4]), row
    assert "Left out of the quick zoo: balanced_softmax" in " ".join(re.sub(r"<[^>]+>", "", page).split())

    header, *methods_rows = tables["methods-table"]
    assert header[3:] == list(report.METHOD_CLAIMS)
    assert [row[:3] for row in methods_rows] == [["mine", "m-cifar10-nn", "quick"]]
    assert all(cell.startswith("supported effect") for cell in methods_rows[0][3:])

    header, *paper_rows = tables["paper-table"]
    assert len(paper_rows) == len(paper)  # the zoo's and the method's rows are not the paper's
    assert not any("method" in " ".join(row) or "focal" in " ".join(row) for row in paper_rows)
    column = header.index("p (Holm), deciding test")
    row = next(r for r in paper_rows if r[2] == "refuted claim")
    assert row[header.index("verdict")] == "refuted"
    assert row[column] == f"{report.fmt(refuting_p)} (refuting)" and "1.0000" not in row[column]

    rows = {r["nodeid"]: r for r in json.loads((out / "claims.json").read_text())}
    refuted_row = rows["claims/t.py::refuted[quick]"]
    assert refuted_row["p_value"] == refuting_p and refuted_row["p_kind"] == "refuting"
    assert refuted_row["decided_by"] == "r=0.1" and refuted_row["p_supporting"] > 0.99
    assert {r["kind"] for r in rows.values()} == {"paper", "zoo", "method"}


def test_a_figure_drawn_before_is_read_from_the_figure_cache(tmp_path, monkeypatch):
    """A warm rerun redraws nothing: the same figure data gives the cached SVG; changed data
    is drawn again; an unwritable cache only costs the drawing."""
    from harness.judging import report

    monkeypatch.setenv("IMBALANCE_CACHE_DIR", str(tmp_path / "cache"))
    figure = report.line_figure("f", "t", "x", "y", [{"label": "a", "x": [1, 2], "y": [0.1, 0.2]}])
    drawn = []
    monkeypatch.setattr(report, "draw_all", lambda figs: drawn.extend(figs) or [f"<svg>{f['series'][0]['y']}</svg>" for f in figs])
    first = report.render_all([figure, figure])
    assert first == ["<svg>[0.1, 0.2]</svg>"] * 2 and len(drawn) == 1  # drawn once, cached
    assert report.render_all([figure]) == first[:1] and len(drawn) == 1  # from the cache
    changed = dict(figure, series=[{"label": "a", "x": [1, 2], "y": [0.1, 0.3]}])
    assert report.render_all([changed]) == ["<svg>[0.1, 0.3]</svg>"] and len(drawn) == 2
    assert report.figure_key(figure) != report.figure_key(changed)
    (tmp_path / "cache").rename(tmp_path / "gone")
    (tmp_path / "cache").write_text("not a directory")
    assert report.render_all([figure]) == first[:1] and len(drawn) == 3  # drawn, not cached
