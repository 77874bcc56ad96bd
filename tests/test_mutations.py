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
T2 = "claims/test_takeaway2_more_majority_data.py"
T3 = "claims/test_takeaway3_minority_fitting.py"
T5 = "claims/test_takeaway5_flatness.py"
T6 = "claims/test_takeaway6_sam_margins.py"


def sabotaged(sabotage: str, *args: str, tmp_path, store=None):
    """Run claims under ``sabotage``; return (completed process, claims.json rows by test name).
    Each call writes its own report; ``store`` lets sabotages that leave the runs as they are
    share trained runs."""
    env = dict(os.environ, IMBALANCE_SABOTAGE=sabotage)
    reports = tmp_path / f"reports-{sabotage}"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.sabotage", "-p", "no:cacheprovider", "-q",
         "-m", "quick", f"--store={store or tmp_path / 'store'}", f"--report-dir={reports}",
         *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    path = reports / "latest" / "claims.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    return out, {row["nodeid"].split("::")[-1]: row for row in rows}


def comparisons(row: dict, containing: str) -> list[dict]:
    found = [c for c in row["comparisons"] if containing in c["label"]]
    assert found, f"no comparison {containing!r} in {[c['label'] for c in row['comparisons']]}"
    return found


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


T1_ADULT = [f"{test}[quick-t1-adult-xgboost]" for test in (
    "test_training_at_test_ratio_beats_balanced_training",
    "test_best_training_ratio_is_near_test_ratio",
    "test_training_at_test_ratio_is_near_optimal")]


@needs_adult
def test_a_train_ratio_that_does_nothing_fails_all_three_takeaway1_claims(tmp_path):
    """Every train ratio trains the same runs. The two claims already expected not to hold at
    quick scale cannot turn redder; what must change for them is why: each of their comparisons
    is now of runs with themselves, degenerate, where real data are merely noisy."""
    out, rows = sabotaged("balanced_everywhere", T1, "-k", "adult", tmp_path=tmp_path)
    assert_red(out, rows, T1_ADULT)
    for name in T1_ADULT:
        assert rows[name]["gate"]["passed"] is True  # the models learn; the ratio does nothing
        # Runs compared with themselves (the majority-class predictor is no run): no p = 0.
        itself = [c for c in rows[name]["comparisons"] if "majority-class" not in c["label"]]
        assert itself and all(c["p_value"] == 1 and c["degenerate"] for c in itself), itself
    for name in T1_ADULT[1:]:
        assert "degenerate" in rows[name]["reason"], rows[name]["reason"]


@needs_adult
def test_reversed_train_ratios_refute_the_takeaway1_claims(tmp_path):
    """Training at r gets the counts of 0.02 / r: far train ratios now beat the matched one, so
    the claims must be *refuted*, including the two that are only inconclusive at quick scale
    on real data (a verdict that moves, not one that was red already)."""
    out, rows = sabotaged("ratios_reversed", T1, "-k", "adult", tmp_path=tmp_path)
    assert_red(out, rows, T1_ADULT)
    for name in T1_ADULT:
        assert rows[name]["verdict"] == "refuted", (name, rows[name]["reason"])


@needs_adult
def test_a_model_that_learned_only_the_prior_under_imbalance_does_not_beat_balanced_training(tmp_path):
    """XGBoost predicts its training majority class whenever its training set is highly
    imbalanced (r < 0.11): matched training then still "beats" balanced training at every
    imbalanced test ratio (the old family supported it), but at r <= 0.1 it does not beat the
    constant majority-class predictor, which it is (identical errors: degenerate), so the claim
    cannot hold."""
    name = T1_ADULT[0]
    out, rows = sabotaged("prior_when_imbalanced", f"{T1}::test_training_at_test_ratio_beats_balanced_training",
                          "-k", "adult", tmp_path=tmp_path)
    assert_red(out, rows, [name])
    assert rows[name]["gate"]["passed"] is True  # balanced models learn
    assert all(c["rejected"] for c in comparisons(rows[name], "balanced minus matched"))
    prior = [c for c in comparisons(rows[name], "majority-class predictor minus matched")
             if not c["label"].startswith("test r=0.3")]  # at 0.3 it learns for real
    assert len(prior) == 3 and all(c["degenerate"] and not c["rejected"] for c in prior), prior


TABULAR = [f"{test}[quick-{arm}]" for test, arm in (
    ("test_training_at_test_ratio_beats_balanced_training", "t1-adult-xgboost"),
    ("test_training_at_test_ratio_beats_balanced_training", "t1-covtype-linear_svm"),
    ("test_best_training_ratio_is_near_test_ratio", "t1-adult-xgboost"),
    ("test_best_training_ratio_is_near_test_ratio", "t1-covtype-linear_svm"),
    ("test_training_at_test_ratio_is_near_optimal", "t1-adult-xgboost"),
    ("test_training_at_test_ratio_is_near_optimal", "t1-covtype-linear_svm"),
    ("test_adding_majority_samples_first_helps_then_hurts", "t2-adult-xgboost"),
    ("test_minority_training_error_exceeds_majority", "t3-adult-xgboost"),
    ("test_oversampling_improves_xgboost_balanced_error", "t3-adult-xgboost"))]


def assert_errors_naming_the_seed(out, rows, names, cause):
    for name in names:
        assert name in rows, f"{name} has no row in claims.json: {sorted(rows)}\n{out.stdout[-3000:]}"
        assert rows[name]["outcome"] == "error" and rows[name]["verdict"] == "error", rows[name]
        assert "the seed does not reach the run" in rows[name]["error"], rows[name]["error"]
        assert cause in rows[name]["error"], rows[name]["error"]
    assert out.returncode == 1, out.stdout[-3000:]


@needs_adult
def test_a_seed_that_never_reaches_the_run_makes_every_tabular_claim_an_error(tmp_path):
    """Every tabular run trains at seed 0 (same subset, test sets, resampling, model seed)
    while its record says seeds 0-4. Before the check, all nine quick tabular claims came out
    supported with p = 0; now each is an error naming the cause, expected failures included."""
    out, rows = sabotaged("seed_never_reaches_run", T1, T2, T3, "-k", "adult or covtype",
                          "--workers=1", tmp_path=tmp_path)
    assert_errors_naming_the_seed(out, rows, TABULAR, "identical train subset, ")


@needs_cifar
def test_a_seed_that_never_reaches_the_run_makes_the_neural_claims_errors(tmp_path):
    """The same in a CIFAR network arm (the engine's initialization fingerprint) and the toy
    MLP, at two seeds."""
    out, rows = sabotaged("seed_never_reaches_run", f"{T2}", f"{T6}::test_sam_widens_the_margin_around_minority_points",
                          "-k", "cifar10 or toy2d", "--workers=1", "--seeds=2", tmp_path=tmp_path)
    names = ["test_adding_majority_samples_first_helps_then_hurts[quick-t2-cifar10-binary-nn]",
             "test_sam_widens_the_margin_around_minority_points[quick-t6-toy2d-mlp]"]
    assert_errors_naming_the_seed(out, rows, names, "initial parameters")


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
    assert all(c["effect"] == 0 and c["p_value"] == 1 and c["degenerate"] for c in rows[name]["comparisons"]), rows[name]


@needs_cifar
def test_a_bayesian_method_with_no_gain_does_not_help_more_under_imbalance(tmp_path):
    """Laplace's predictive is uniform: its balanced error is constant, so gain(r) - gain(1)
    is ERM's own imbalance penalty, which is positive; the old family (that difference alone)
    held for Laplace. The gain itself must now be tested, and it is refuted."""
    name = "test_bayesian_inference_helps_more_under_imbalance[quick-t5-cifar10-bayesian]"
    out, rows = sabotaged("laplace_uniform", f"{T5}::test_bayesian_inference_helps_more_under_imbalance",
                          "--seeds=3", tmp_path=tmp_path)
    assert_red(out, rows, [name])
    # The sabotage reproduces the old false positive: the difference of gains holds for Laplace
    # (on real data it does not: the real Laplace gain is refuted at quick scale either way) ...
    difference = comparisons(rows[name], "diagonal Laplace, train r=0.05: gain minus balanced-data gain")
    assert [c["rejected"] for c in difference] == [True], difference
    # ... and the gain itself, now in the family, refutes the claim.
    gain = comparisons(rows[name], "diagonal Laplace, train r=0.05: gain")
    assert [c["refuted"] for c in gain if c["label"].endswith(": gain")] == [True], gain
    assert rows[name]["verdict"] == "refuted"


@needs_cifar
def test_asymmetric_sam_that_only_beats_a_harmful_sam_is_no_boost(tmp_path):
    """SAM's radius is 20x too large, so it hurts; asymmetric SAM (unchanged) beats it. The old
    claim (asymmetric SAM minus SAM only) held; asymmetric SAM must also beat standard training."""
    name = "test_asymmetric_sam_improves_on_sam_under_imbalance[quick-t6-cifar10-nn]"
    out, rows = sabotaged("sam_hurts", f"{T6}::test_asymmetric_sam_improves_on_sam_under_imbalance",
                          "--seeds=3", tmp_path=tmp_path)
    assert_red(out, rows, [name])
    assert all(c["rejected"] for c in comparisons(rows[name], ": SAM minus asymmetric SAM"))
    assert not any(c["rejected"] for c in comparisons(rows[name], "ERM minus asymmetric SAM"))


@needs_cifar
def test_an_injected_improvement_of_twice_the_margin_fails_the_no_improvement_claim(tmp_path):
    """Oversampling and overfitting report their ERM twin's balanced error (+- a seed jitter of
    0.002): the claim must hold. Then the same runs with an improvement of 0.02, twice the
    non-superiority margin, injected: it must be refuted. (The old TOST with a 3-point margin
    held under both.)"""
    name = "test_fitting_the_minority_does_not_improve_nn_generalization[quick-t3-cifar10-nn]"
    claim = f"{T3}::test_fitting_the_minority_does_not_improve_nn_generalization"
    store = tmp_path / "shared-store"  # both sabotages edit records as read, not the runs
    out, rows = sabotaged("no_improvement", claim, "--seeds=3", tmp_path=tmp_path, store=store)
    assert rows[name]["verdict"] == "supported" and rows[name]["outcome"] == "xpassed", rows[name]
    out, rows = sabotaged("injected_improvement", claim, "--seeds=3", tmp_path=tmp_path, store=store)
    assert_red(out, rows, [name])
    assert rows[name]["verdict"] == "refuted", rows[name]["reason"]
    assert "0 runs trained" in out.stdout  # the second session reused the first one's runs


def test_a_constant_difference_is_one_observation_not_certainty(tmp_path):
    """SAM's minority margin is SGD's plus exactly 0.05 at every seed. The old rule gave p = 0
    and the claim held; a difference with zero spread is degenerate now: inconclusive, named."""
    name = "test_sam_widens_the_margin_around_minority_points[quick-t6-toy2d-mlp]"
    out, rows = sabotaged("sam_margin_shifted", f"{T6}::test_sam_widens_the_margin_around_minority_points",
                          tmp_path=tmp_path)
    assert_red(out, rows, [name])
    assert rows[name]["verdict"] == "inconclusive" and "degenerate" in rows[name]["reason"]
    assert [(c["degenerate"], c["p_value"], round(c["effect"], 12)) for c in rows[name]["comparisons"]] \
        == [(True, 1.0, 0.05)]


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
    # With --baseline the gate decides the exit status, but only for verdicts: errors that the
    # baseline holds too (the gate sees no flip) still fail the session.
    baseline = tmp_path / "baseline.json"
    baseline.write_text((tmp_path / "reports-no_adult" / "latest" / "claims.json").read_text())
    gated, _ = sabotaged("no_adult", T1, "-k", "adult", f"--baseline={baseline}", tmp_path=tmp_path)
    assert "regression gate (fail on flip): passed" in gated.stdout, gated.stdout[-2000:]
    assert gated.returncode == 1 and "do not fail the session" not in gated.stdout


# ------------------------------------------------------------------ under sequential seeds

@needs_adult
def test_under_sequential_seeds_sabotaged_claims_stay_red_and_stop_at_the_first_look(tmp_path):
    """--seeds=auto cannot rescue a sabotage by adding seeds: with shuffled labels the gate
    fails at the first look (stopped for futility: no seeds beyond 5 trained), and SAM replaced
    by SGD gives degenerate comparisons, which stop it there too. A seed that never reaches the
    run is still an error (the probe reaches no verdict; the claim's own run reports why)."""
    out, rows = sabotaged(
        "shuffled_labels", f"{T1}::test_training_at_test_ratio_beats_balanced_training", "-k", "adult",
        "--seeds=auto", tmp_path=tmp_path, store=tmp_path / "shuffled")
    name = "test_training_at_test_ratio_beats_balanced_training[quick-t1-adult-xgboost]"
    assert_red(out, rows, [name])
    assert rows[name]["sequential"]["stop"] == "futile" and rows[name]["sequential"]["stopped_at"] == 5
    assert "did not learn" in rows[name]["reason"], rows[name]["reason"]
    assert "runs trained" in out.stdout and "seeds, look 2" not in out.stdout

    out, rows = sabotaged("sam_is_sgd", f"{T6}::test_sam_widens_the_margin_around_minority_points",
                          "--seeds=auto", tmp_path=tmp_path, store=tmp_path / "sgd")
    name = "test_sam_widens_the_margin_around_minority_points[quick-t6-toy2d-mlp]"
    assert_red(out, rows, [name])
    assert rows[name]["sequential"]["stop"] == "futile" and "zero spread" in rows[name]["reason"]

    out, rows = sabotaged("seed_never_reaches_run", f"{T1}::test_training_at_test_ratio_beats_balanced_training",
                          "-k", "adult", "--workers=1", "--seeds=auto", tmp_path=tmp_path,
                          store=tmp_path / "seed")
    assert_errors_naming_the_seed(out, rows, ["test_training_at_test_ratio_beats_balanced_training"
                                              "[quick-t1-adult-xgboost]"], "identical train subset, ")
