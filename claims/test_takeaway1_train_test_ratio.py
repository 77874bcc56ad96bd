"""Takeaway 1: training with a train-set imbalance similar to the test set's is near optimal.

Protocol (Figures 1 and 2): a training set of fixed size at each train ratio of a grid, five
seeds; every model is evaluated on test sets at every test ratio of the same grid, drawn from the
held-out split (the same test set for every arm at a given seed, so arms are paired by seed).
The statistic, alpha, margin and the refuting outcome of each claim are fixed in its docstring.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import stats
from harness.protocols import error_at_ratio, per_seed
from harness.report import line_figure, mean_series

TAKEAWAY = "1"
ARMS = ["t1-adult-xgboost", "t1-covtype-linear_svm", "t1-cifar10-nn"]
ALPHA = 0.05
IMBALANCED_TEST_RATIO = 0.3   # test ratios at or below this form claim (a)'s family
NEAR_OPTIMAL_MARGIN = 0.01    # claim (c): at most 1 percentage point of test error above the best
NEAR_GRID_STEPS = 1           # claim (b): best train ratio within one grid step of the test ratio


def error_table(cfg, records, seeds) -> dict[tuple[float, float], list[float]]:
    """Per-seed test error for every (train ratio, test ratio) pair under ERM."""
    return {(r_train, r_test): per_seed(records, ("erm", r_train), seeds,
                                        lambda rec, r=r_test: error_at_ratio(rec, r))
            for r_train in cfg.train_ratios for r_test in cfg.test_ratios}


def best_train_ratio(cfg, table, r_test: float) -> float:
    """Train ratio with the lowest mean test error at ``r_test`` (ties: the one nearest r_test)."""
    return min(cfg.train_ratios,
               key=lambda r: (np.mean(table[(r, r_test)]), abs(math.log(r / r_test))))


def figures(arm, cfg, table, class_names) -> list[dict]:
    tests = list(cfg.test_ratios)
    best = [best_train_ratio(cfg, table, r) for r in tests]
    accuracy = lambda values: [1 - v for v in values]  # noqa: E731 - the paper plots accuracy
    fig1 = line_figure(
        f"fig1-{arm}", f"Figure 1: {cfg.model} on {cfg.dataset}", "test imbalance ratio",
        "test accuracy", [
            mean_series("train ratio = test ratio", tests, [accuracy(table[(r, r)]) for r in tests]),
            mean_series("balanced training (r = 1)", tests, [accuracy(table[(1.0, r)]) for r in tests]),
            mean_series("best train ratio", tests,
                        [accuracy(table[(b, r)]) for b, r in zip(best, tests)], linestyle="--"),
        ], caption=f"Total training size {cfg.total}; mean ± 1 SE over seeds. Head class (most "
                f"samples): {class_names[0]}; tail class (fewest): {class_names[-1]}. Balanced "
                f"training reaches {np.mean(accuracy(table[(1.0, 1.0)])):.3f} accuracy on the "
                "balanced test set at this scale.")
    fig2 = line_figure(
        f"fig2-{arm}", f"Figure 2: optimal train ratio, {cfg.model} on {cfg.dataset}",
        "test imbalance ratio", "best train imbalance ratio",
        [{"label": arm, "x": tests, "y": best}], diagonal=True,
        caption="Train ratio with the lowest mean test error at each test ratio; points on the "
                "diagonal mean train ratio = test ratio is optimal.")
    return [fig1, fig2]


def conclude(claim, arm, cfg, records, table, verdict):
    class_names = next(iter(records.values()))["class_names"]
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, table, class_names), records.values())
    assert verdict.supported, claim.explain()


@pytest.mark.parametrize("arm", ARMS)
def test_training_at_test_ratio_beats_balanced_training(profile, arm, suite, claim):
    """Section 4.1, Figure 1: "We see that training on data with the same imbalance as the testing
    data is typically superior to training on balanced data, and the two strategies only approach
    equal performance when the testing data becomes balanced."

    Statistic: for every test ratio r <= 0.3 in the grid, a paired one-sided t-test over seeds of
    H1: error(trained at r=1) - error(trained at r) > 0, both measured on the test set at r.
    Holm correction over those test ratios, alpha = 0.05. Supported when every comparison
    rejects. Refuted when at some imbalanced test ratio balanced training is not significantly
    worse than training at the test ratio.
    """
    cfg, records = suite.grid(profile, arm)
    table = error_table(cfg, records, suite.seeds)
    family = [r for r in cfg.test_ratios if r <= IMBALANCED_TEST_RATIO]
    tests = {f"test r={r:g}: balanced minus matched": stats.paired_greater(table[(1.0, r)], table[(r, r)], ALPHA)
             for r in family}
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on test error (balanced-trained minus matched-trained), "
        f"Holm over test ratios <= {IMBALANCED_TEST_RATIO}", suite.seeds,
        {f"r={r:g}": {"matched": table[(r, r)], "balanced": table[(1.0, r)]} for r in family},
        summary=f"{sum(c.p_value < ALPHA for c in tests.values())}/{len(tests)} imbalanced test "
                "ratios show balanced training significantly worse before correction.")
    conclude(claim, arm, cfg, records, table, verdict)


@pytest.mark.parametrize("arm", ARMS)
def test_best_training_ratio_is_near_test_ratio(profile, arm, suite, claim):
    """Section 4.1, Figure 2: "Indeed, the points are close to the diagonal, indicating that it is
    best to train with a very similar ratio to that of the test dataset."

    Statistic: for every test ratio in the grid, the train ratio with the lowest mean test error
    over seeds; its distance from the test ratio in steps of the (log-spaced) ratio grid.
    Supported when that distance is at most 1 step for every test ratio. No p-value: this is the
    location of an optimum, reported as the grid-step distance (effect = the largest distance).
    Refuted when, for some test ratio, the best train ratio is two or more grid steps away.
    """
    cfg, records = suite.grid(profile, arm)
    table = error_table(cfg, records, suite.seeds)
    grid = list(cfg.train_ratios)
    rows = []
    for r in cfg.test_ratios:
        best = best_train_ratio(cfg, table, r)
        steps = abs(grid.index(best) - grid.index(r))
        rows.append({"label": f"test r={r:g}: best train r={best:g}", "effect": float(steps),
                     "ci": [float(steps), float(steps)], "statistic": float(steps),
                     "p_value": math.nan, "p_adjusted": math.nan,
                     "rejected": steps <= NEAR_GRID_STEPS})
    worst = max(row["effect"] for row in rows)
    verdict = stats.Verdict(
        all(row["rejected"] for row in rows),
        f"grid steps between best train ratio and test ratio, must be <= {NEAR_GRID_STEPS}",
        worst, (worst, worst), math.nan, ALPHA, list(suite.seeds),
        {f"train r={rt:g}, test r={rs:g}": table[(rt, rs)] for rt, rs in table},
        rows, summary=f"largest distance {worst:g} grid steps over {len(rows)} test ratios.")
    conclude(claim, arm, cfg, records, table, verdict)


@pytest.mark.parametrize("arm", ARMS)
def test_training_at_test_ratio_is_near_optimal(profile, arm, suite, claim):
    """Section 4.1, Figure 1: "Moreover, training on data with the same imbalance as the testing
    data is nearly optimal, so there is very little to gain by balancing the training set."

    Statistic: for every test ratio r in the grid, a paired one-sided non-inferiority t-test over
    seeds of H1: error(trained at r) - error(trained at the best train ratio) < 0.01 (a margin of
    1 percentage point of test error), on the test set at r. The best train ratio is the one with
    the lowest mean error (which makes the test conservative). Holm over test ratios,
    alpha = 0.05; supported when every comparison rejects. Refuted when at some test ratio
    training at that ratio cannot be shown within 1 point of the best.
    """
    cfg, records = suite.grid(profile, arm)
    table = error_table(cfg, records, suite.seeds)
    tests, per = {}, {}
    for r in cfg.test_ratios:
        best = best_train_ratio(cfg, table, r)
        tests[f"test r={r:g}: matched minus best (train r={best:g})"] = stats.paired_less(
            table[(r, r)], table[(best, r)], ALPHA, margin=NEAR_OPTIMAL_MARGIN)
        per[f"r={r:g}"] = {"matched": table[(r, r)], "best": table[(best, r)]}
    verdict = stats.family_verdict(
        tests, ALPHA, f"paired one-sided non-inferiority t, margin {NEAR_OPTIMAL_MARGIN} test error, "
        "Holm over test ratios", suite.seeds, per,
        summary=f"largest mean excess over the best: {max(t.effect for t in tests.values()):.4f}.")
    conclude(claim, arm, cfg, records, table, verdict)
