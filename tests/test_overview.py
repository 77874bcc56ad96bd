"""The verdict table (harness.judging.overview): the paper's claims only, one row per claim
test and arm, one column per profile judged, cells that carry the verdict and its numbers."""

import pytest

from harness.judging.overview import verdict_table

PROFILES = ("quick", "laptop", "medium", "full")


def row(profile, test, arm, verdict, effect=None, seeds=(0, 1, 2, 3, 4), **extra):
    return {"nodeid": f"claims/test_takeaway1_x.py::{test}[{profile}-{arm}]", "takeaway": arm[1],
            "arm": arm, "profile": profile, "title": test.removeprefix("test_").replace("_", " "),
            "verdict": verdict, "effect": effect, "seeds": list(seeds), "outcome": "failed", **extra}


def test_one_row_per_claim_and_arm_and_a_column_per_profile_judged():
    table = verdict_table([
        row("quick", "test_near", "t1-adult-xgboost", "inconclusive", 0.001),
        row("laptop", "test_near", "t1-adult-xgboost", "supported", 0.0023, range(20)),
        row("laptop", "test_more", "t2-cifar10-nn", "refuted", -0.05),
    ], PROFILES)
    lines = table.splitlines()
    assert lines[0] == "| takeaway | claim | arm | quick | laptop |"  # medium, full: not judged
    assert len(lines) == 4
    assert "| 1 | near | adult xgboost | inconclusive +0.001, 5 seeds | **supported** +0.0023, 20 seeds |" in lines
    assert lines[3].endswith("| - | refuted -0.05, 5 seeds |")  # not judged at quick


def test_a_claim_without_a_verdict_says_why_and_a_skip_has_no_numbers():
    table = verdict_table([row("laptop", "test_a", "t4-x", "skipped"), row("laptop", "test_b", "t4-x", "error")],
                          PROFILES)
    assert "| skipped |" in table and "| error |" in table


def test_an_expected_failure_and_an_exploratory_claim_are_marked():
    table = verdict_table([
        row("quick", "test_a", "t3-x", "refuted", -0.1, xfail_kind="quick scale", outcome="xfailed"),
        row("quick", "test_b", "t5-x", "supported", 1.6, exploratory="statistic changed"),
    ], PROFILES)
    assert "(expected at this scale)" in table and "(exploratory)" in table
    held = verdict_table([row("quick", "test_a", "t3-x", "supported", 0.1, xfail_kind="quick scale",
                              outcome="xpassed")], PROFILES)
    assert "XPASS" in held


def test_zoo_measurements_and_methods_under_test_are_not_the_papers():
    zoo = row("quick", "test_beats_erm", "m-adult-xgboost", "supported", 0.01, xfail_kind="report only")
    method = dict(row("quick", "test_beats_erm", "m-adult-xgboost", "refuted", -0.01), takeaway="M")
    with pytest.raises(ValueError, match="no claim of the paper"):
        verdict_table([zoo, method], PROFILES)
    table = verdict_table([zoo, method, row("quick", "test_near", "t1-adult-xgboost", "supported", 0.1)],
                          PROFILES)
    assert "beats erm" not in table and "near" in table
