"""What the suite concludes about the paper, at a glance: one Markdown table of the paper's claim
tests (rows) by profile (columns) from the ``claims.json`` of one or more sessions.

The README's table is this module's output (``python -m harness verdicts FILE ...``), never
typed by hand; ``tests/test_docs.py`` regenerates it from the committed files and compares.
Only the paper's claims are shown (the zoo's measurements and methods under test are not the
paper's); each cell is the claim's verdict, its effect in the claim's own unit (whose sign
says which way supports, as the report gives it), and its seeds.
"""

from __future__ import annotations

import re

from .report import claim_kind

# A cell in words: the verdict first (what a reader scans for), then the numbers behind it.
VERDICT_MARK = {"supported": "**supported**", "refuted": "refuted", "inconclusive": "inconclusive",
                "error": "error", "skipped": "skipped"}


def claim_test(row: dict) -> str:
    """The claim test a row is a parametrization of: its function name without the profile."""
    return row["nodeid"].split("::")[-1].split("[")[0]


def arm_label(arm: str) -> str:
    """``t1-adult-xgboost`` -> ``adult xgboost``: the arm without its takeaway prefix."""
    return re.sub(r"^t\d+-", "", arm).replace("-", " ")


def cell(row: dict) -> str:
    verdict = row["verdict"]
    text = VERDICT_MARK.get(verdict, verdict)
    if row.get("effect") is not None:
        seeds = row.get("seeds") or []
        text += f" {row['effect']:+.3g}, {len(seeds)} seeds"
    if row.get("xfail_kind") == "quick scale" and row.get("outcome") == "xfailed":
        text += " (expected at this scale)"
    elif row.get("xfail_kind") == "quick scale" and row.get("outcome") == "xpassed":
        text += " (held although expected not to: XPASS)"
    if row.get("exploratory"):
        text += " (exploratory)"
    return text


def verdict_table(rows: list[dict], profiles: tuple[str, ...]) -> str:
    """The paper's claims of ``rows`` as a Markdown table: one row per claim test and arm, in
    takeaway and arm order (within one, as the rows come), one column per profile of ``profiles`` that any row has ("-": not judged
    there). A claim judged twice in one profile keeps the last row given.

    Raises
    ------
    ValueError
        No row is a claim of the paper.
    """
    paper = [r for r in rows if claim_kind(r) == "paper"]
    if not paper:
        raise ValueError("no claim of the paper in these files (only zoo measurements or "
                         "methods under test); give a claims.json of a claims/ session")
    columns = [p for p in profiles if any(r["profile"] == p for r in paper)]
    columns += sorted({r["profile"] for r in paper} - set(columns))
    cells: dict[tuple, dict[str, str]] = {}
    titles = {}
    for r in paper:
        key = (str(r["takeaway"]), claim_test(r), arm_label(r["arm"]))
        titles[key] = r["title"]
        cells.setdefault(key, {})[r["profile"]] = cell(r)
    lines = ["| takeaway | claim | arm | " + " | ".join(columns) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in columns) + " |"]
    for key in sorted(cells, key=lambda k: (k[0], k[2])):  # stable: per arm, in the run's order
        takeaway, _, arm = key
        lines.append(f"| {takeaway} | {titles[key]} | {arm} | "
                     + " | ".join(cells[key].get(p, "-") for p in columns) + " |")
    return "\n".join(lines)
