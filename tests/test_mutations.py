"""Mutation tests: each sabotage removes the effect a claim asserts, and the claim must turn red.

Each test runs the real claim tests in a child pytest (quick profile, five seeds, a fresh store)
with one sabotage of :mod:`tests.sabotage` applied through the public registries, then reads the
session's ``claims.json``. A claim that stayed "supported" under its sabotage is a claim that
cannot fail: that is what these tests exist to catch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.data import REPO_ROOT

from .conftest import shared_data_available

needs_adult = pytest.mark.skipif(not shared_data_available("adult/adult.data"), reason="Adult not present")
needs_cifar = pytest.mark.skipif(not (shared_data_available("cifar10/cifar10-jpeg.zip")
                                      or shared_data_available("cifar10/cifar-10-batches-py")),
                                 reason="CIFAR-10 not present")

T1 = "claims/test_takeaway1_train_test_ratio.py"
T3 = "claims/test_takeaway3_minority_fitting.py"
T5 = "claims/test_takeaway5_flatness.py"
T6 = "claims/test_takeaway6_sam_margins.py"


def sabotaged(sabotage: str, *args: str, tmp_path):
    """Run claims under ``sabotage``; return (completed process, claims.json rows by test name)."""
    env = dict(os.environ, IMBALANCE_SABOTAGE=sabotage)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.sabotage", "-p", "no:cacheprovider", "-q",
         "-m", "quick", f"--store={tmp_path / 'store'}", f"--report-dir={tmp_path / 'reports'}",
         *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    path = tmp_path / "reports" / "latest" / "claims.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    return out, {row["nodeid"].split("::")[-1]: row for row in rows}


def assert_red(out, rows, names):
    """Each named claim is not supported. A claim already expected not to hold at quick scale
    (xfail) cannot turn redder: for it the verdict is what the sabotage must change."""
    for name in names:
        assert name in rows, f"{name} has no row in claims.json: {sorted(rows)}\n{out.stdout[-3000:]}"
        assert rows[name]["verdict"] != "supported", rows[name]
        assert rows[name]["outcome"] in ("failed", "error", "xfailed"), rows[name]
    if any(rows[name]["outcome"] != "xfailed" for name in names):
        assert out.returncode != 0, out.stdout[-3000:]


@needs_adult
def test_shuffled_labels_fail_the_prior_matching_claims_through_the_gate(tmp_path):
    out, rows = sabotaged(
        "shuffled_labels", f"{T1}::test_training_at_test_ratio_beats_balanced_training",
        f"{T3}::test_minority_training_error_exceeds_majority", "-k", "adult", tmp_path=tmp_path)
    names = ["test_training_at_test_ratio_beats_balanced_training[quick-t1-adult-xgboost]",
             "test_minority_training_error_exceeds_majority[quick-t3-adult-xgboost]"]
    assert_red(out, rows, names)
    for name in names:
        assert rows[name]["gate"]["passed"] is False, rows[name]["gate"]
        assert rows[name]["reason"].startswith("gate failed"), rows[name]["reason"]


@needs_adult
def test_a_train_ratio_that_does_nothing_fails_all_three_takeaway1_claims(tmp_path):
    out, rows = sabotaged("balanced_everywhere", T1, "-k", "adult", tmp_path=tmp_path)
    names = [f"{test}[quick-t1-adult-xgboost]" for test in (
        "test_training_at_test_ratio_beats_balanced_training",
        "test_best_training_ratio_is_near_test_ratio",
        "test_training_at_test_ratio_is_near_optimal")]
    assert_red(out, rows, names)
    for name in names:
        assert rows[name]["gate"]["passed"] is True  # the models learn; the ratio does nothing
        assert all(c["p_value"] > 0 for c in rows[name]["comparisons"])  # no self-comparison at p = 0


@needs_adult
def test_oversampling_replaced_by_erm_fails_the_xgboost_oversampling_claim(tmp_path):
    out, rows = sabotaged("oversample_is_erm", f"{T3}::test_oversampling_improves_xgboost_balanced_error",
                          tmp_path=tmp_path)
    assert_red(out, rows, ["test_oversampling_improves_xgboost_balanced_error[quick-t3-adult-xgboost]"])


def test_sam_replaced_by_sgd_fails_the_toy_margin_claim(tmp_path):
    out, rows = sabotaged("sam_is_sgd", f"{T6}::test_sam_widens_the_margin_around_minority_points",
                          tmp_path=tmp_path)
    name = "test_sam_widens_the_margin_around_minority_points[quick-t6-toy2d-mlp]"
    assert_red(out, rows, [name])
    # SAM is SGD here: the margins are the same runs' margins, so no effect and no p = 0.
    assert all(c["effect"] == 0 and c["p_value"] == 1 for c in rows[name]["comparisons"]), rows[name]


@needs_cifar
def test_a_crash_inside_an_xfailed_claim_turns_the_suite_red(tmp_path):
    out, rows = sabotaged("crash_nn", f"{T5}::test_bayesian_inference_improves_imbalanced_training",
                          "--seeds=2", tmp_path=tmp_path)
    name = "test_bayesian_inference_improves_imbalanced_training[quick-t5-cifar10-bayesian]"
    assert out.returncode == 1, out.stdout[-3000:]
    assert "1 failed" in out.stdout and "xfailed" not in out.stdout.splitlines()[-1]
    assert rows[name]["outcome"] == "error" and "injected crash" in rows[name]["error"]


def test_missing_data_fails_each_claim_once_with_a_short_message(tmp_path):
    out, rows = sabotaged("no_adult", T1, "-k", "adult", tmp_path=tmp_path)
    assert out.returncode == 1
    assert "3 failed" in out.stdout.splitlines()[-1]
    assert "Traceback" not in out.stdout and len(out.stdout.splitlines()) < 60, out.stdout
    assert {row["outcome"] for row in rows.values()} == {"error"} and len(rows) == 3
    assert all("sabotage: data removed" in row["error"] for row in rows.values())
