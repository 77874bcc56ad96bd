"""Takeaway 1: training with a train-set imbalance similar to the test set's is near optimal.

Protocol (Figures 1 and 2): a training set of fixed size at each train ratio of a grid, five
seeds; every model is evaluated on test sets at every test ratio of the same grid, drawn from the
held-out split (the same test set for every arm at a given seed, so arms are paired by seed).
The statistic, alpha, margin and the refuting outcome of each claim are fixed in its docstring.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.judging import stats
from harness.judging.stats import Rule, declare_outcomes
from harness.experiments.protocols import error_at_ratio, majority_class_error, per_seed
from harness.judging.report import line_figure, mean_series
from harness.runs.records import RecordView

TAKEAWAY = "1"
ARMS = ["t1-adult-xgboost", "t1-covtype-linear_svm", "t1-cifar10-nn"]
ALPHA = 0.05
IMBALANCED_TEST_RATIO = 0.3   # test ratios at or below this form claim (a)'s family
NEAR_OPTIMAL_MARGIN = 0.01    # claim (c): at most 1 percentage point of test error above the best
FAR_GRID_STEPS = 2            # claim (b): train ratios this many grid steps or more from the test
                              # ratio must be significantly worse than training at the test ratio

# Quick arms expected not to hold (the live numbers are in each verdict), each after a search for
# a scale where it does; the numbers of every scale searched are in claims/evidence/. XGBoost's
# test error on Adult is nearly flat between train ratios 0.01 and 0.1 (about 0.1 percentage
# point apart), below what five seeds resolve; the quick CNN at 8 epochs does not resolve
# matched-vs-best within 1 point at test r = 0.05; the linear SVM at r = 0.02 beats the class
# prior by about a hundredth of a point.
QUICK_SCALE_BEATS = {
    "t1-covtype-linear_svm": (
        "not expected at 5 seeds: at test r = 0.02 the linear SVM trained at r = 0.02 beats the "
        "constant majority-class predictor by about a hundredth of a percentage point, below what "
        "5 seeds resolve (it beats balanced training by far). Searched: 20 seeds on this grid "
        "(supported) and the full 9-ratio grid at 5 seeds (not supported either)."),
}
QUICK_SCALE_NEAR = {
    "t1-adult-xgboost": (
        "not expected at 5 seeds: XGBoost's error on Adult differs by about 0.1 percentage point "
        "between train ratios two grid steps apart at low ratios, below what 5 seeds detect. "
        "Searched: the full 9-ratio grid at 5 seeds (not supported either) and 80 seeds on this "
        "grid (supported)."),
}
QUICK_SCALE_OPTIMAL = {
    "t1-adult-xgboost": (
        "not expected on the quick 5-ratio grid at 5 seeds: the train ratio farthest from test "
        "r = 0.1 is 0.02, about 0.1 percentage point worse, below what 5 seeds detect. Searched: "
        "the full 9-ratio grid at 5 seeds (supported) and 80 seeds on this grid (supported)."),
    "t1-cifar10-nn": (
        "not expected at 8 epochs: the quick CNN's matched-vs-best gap at test r = 0.05 is not "
        "resolved within 1 point by 5 seeds. Searched: 15 epochs at 5 seeds (supported)."),
}


def error_table(cfg, records, seeds) -> dict[tuple[float, float], list[float]]:
    """Per-seed test error for every (train ratio, test ratio) pair under ERM."""
    return {(r_train, r_test): per_seed(records, ("erm", r_train), seeds,
                                        lambda rec, r=r_test: error_at_ratio(rec, r))
            for r_train in cfg.train_ratios for r_test in cfg.test_ratios}


def best_train_ratio(cfg, table, r_test: float) -> float:
    """Train ratio with the lowest mean test error at ``r_test``. Ties are broken *against* the
    matched ratio (r_test itself), so a tie never spares the claim a comparison."""
    return min(cfg.train_ratios, key=lambda r: (np.mean(table[(r, r_test)]), r == r_test))


def same_runs(records, cell_a, cell_b, seeds) -> bool:
    """Whether two grid cells hold the very same runs (the same spec keys) at every seed."""
    return all(records[cell_a + (s,)]["key"] == records[cell_b + (s,)]["key"] for s in seeds)


def far_train_ratios(cfg, r_test: float) -> list[float]:
    """Train ratios at least ``FAR_GRID_STEPS`` grid steps from ``r_test``; a grid that leaves a
    test ratio without one cannot test claim (b) there, which is a configuration error."""
    grid = list(cfg.train_ratios)
    if r_test not in grid:
        raise ValueError(f"test ratio {r_test} is not a train ratio of the grid {grid}")
    far = [r for r in grid if abs(grid.index(r) - grid.index(r_test)) >= FAR_GRID_STEPS]
    if not far:
        raise ValueError(f"the train-ratio grid {grid} has no ratio {FAR_GRID_STEPS} steps from "
                         f"test ratio {r_test}: claims (b) and (c) could not fail there")
    return far


def farthest_train_ratio(cfg, r_test: float) -> float:
    grid = list(cfg.train_ratios)
    return max(far_train_ratios(cfg, r_test), key=lambda r: abs(grid.index(r) - grid.index(r_test)))


def figures(arm, cfg, table, class_names) -> list[dict]:
    tests = list(cfg.test_ratios)
    best = [best_train_ratio(cfg, table, r) for r in tests]
    accuracy = lambda values: [1 - v for v in values]  # noqa: E731 - the paper plots accuracy
    fig1 = line_figure(
        f"fig1-{arm}", f"Figure 1: {cfg.model} on {cfg.dataset}", "test imbalance ratio",
        "test accuracy", [
            # The best line is wide and translucent under the others: where training at the test
            # ratio is the best, the two coincide and both stay visible.
            mean_series("best train ratio", tests, [accuracy(table[(b, r)]) for b, r in zip(best, tests)],
                        linewidth=7, alpha=0.3, marker="s", markersize=9, zorder=1),
            mean_series("train ratio = test ratio", tests, [accuracy(table[(r, r)]) for r in tests],
                        zorder=3),
            mean_series("balanced training (r = 1)", tests, [accuracy(table[(1.0, r)]) for r in tests],
                        linestyle="--", marker="^", zorder=2),
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
    class_names = RecordView(next(iter(records.values()))).class_names
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, table, class_names), records.values())
    claim.assert_supported()


BEATS_BALANCED = Rule("error(trained at r = 1) - error(trained at r) on the test set at each r <= 0.3")
BEATS_PRIOR = Rule("error(constant majority-class predictor) - error(trained at r) on the test set at "
                   "each r <= 0.3")


@pytest.mark.parametrize("arm", ARMS)
@declare_outcomes(BEATS_BALANCED, BEATS_PRIOR, alpha=ALPHA)
def test_training_at_test_ratio_beats_balanced_training(profile, arm, suite, claim):
    """Section 4.1, Figure 1: "We see that training on data with the same imbalance as the testing
    data is typically superior to training on balanced data, and the two strategies only approach
    equal performance when the testing data becomes balanced."

    Statistic: for every test ratio r <= 0.3 in the grid, two paired one-sided t-tests over
    seeds, both on the test set at r: H1: error(trained at r = 1) - error(trained at r) > 0
    (matched beats balanced training), and H1: error(the constant majority-class predictor) -
    error(trained at r) > 0 (matched beats the class prior: at test r = 0.02, predicting the
    majority class alone errs on about 2% of the test set, so a model that learned only the prior
    could otherwise win against a balanced model). Holm over all those tests, alpha = 0.05.
    The second test was added in version 0.5 (issue 19), before any run of the new family; adding a
    test to a family that must hold whole can only turn a supported verdict into an
    unsupported one.
    """
    if arm in QUICK_SCALE_BEATS:
        claim.expect_failure_at_quick_scale(QUICK_SCALE_BEATS[arm])
    cfg, records = claim.grid(arm)
    table = error_table(cfg, records, claim.seeds)
    family = [r for r in cfg.test_ratios if r <= IMBALANCED_TEST_RATIO]
    prior = {r: per_seed(records, ("erm", r), claim.seeds, lambda rec, r=r: majority_class_error(rec, r))
             for r in family}
    tests = {}
    for r in family:
        tests[f"test r={r:g}: balanced minus matched"] = stats.paired_greater(
            table[(1.0, r)], table[(r, r)], ALPHA, rule=BEATS_BALANCED)
        tests[f"test r={r:g}: majority-class predictor minus matched"] = stats.paired_greater(
            prior[r], table[(r, r)], ALPHA, rule=BEATS_PRIOR)
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on test error (balanced-trained minus matched-trained, "
        f"and the constant majority-class predictor minus matched-trained), Holm over test ratios "
        f"<= {IMBALANCED_TEST_RATIO} x both", claim.seeds,
        {f"r={r:g}": {"matched": table[(r, r)], "balanced": table[(1.0, r)], "majority class": prior[r]}
         for r in family},
        summary=f"{sum(c.p_value < ALPHA for c in tests.values())}/{len(tests)} comparisons hold "
                "before correction; mean test error matched/balanced/majority class: " + ", ".join(
                    f"r={r:g}: {np.mean(table[(r, r)]):.4f}/{np.mean(table[(1.0, r)]):.4f}/"
                    f"{np.mean(prior[r]):.4f}" for r in family),
        effect_unit="test error at the test ratio, balanced-trained (or the majority-class "
                    "predictor) minus matched-trained (> 0 supports)")
    conclude(claim, arm, cfg, records, table, verdict)


FAR_IS_WORSE = Rule(f"error(trained >= {FAR_GRID_STEPS} grid steps from r) - error(trained at r) on "
                    "the test set at each r")


@pytest.mark.parametrize("arm", ARMS)
@declare_outcomes(FAR_IS_WORSE, alpha=ALPHA)
def test_best_training_ratio_is_near_test_ratio(profile, arm, suite, claim):
    """Section 4.1, Figure 2: "Indeed, the points are close to the diagonal, indicating that it is
    best to train with a very similar ratio to that of the test dataset."

    Statistic: for every test ratio r in the grid and every train ratio r' two or more grid steps
    from r, a paired one-sided t-test over seeds of H1: error(trained at r') - error(trained at
    r) > 0, both on the test set at r. Holm over all those (r, r') pairs, alpha = 0.05. When
    every comparison holds, no train ratio two or more steps from the test ratio can be the best
    one, which is Figure 2's "close to the diagonal". Every test ratio of every grid this claim
    runs on has a far train ratio (checked), so it can fail everywhere; when the train ratio
    makes no difference it fails.
    """
    if arm in QUICK_SCALE_NEAR:
        claim.expect_failure_at_quick_scale(QUICK_SCALE_NEAR[arm])
    cfg, records = claim.grid(arm)
    table = error_table(cfg, records, claim.seeds)
    tests, per = {}, {}
    for r in cfg.test_ratios:
        for far in far_train_ratios(cfg, r):
            tests[f"test r={r:g}: train r={far:g} minus matched"] = stats.paired_greater(
                table[(far, r)], table[(r, r)], ALPHA, rule=FAR_IS_WORSE)
            per[f"test r={r:g}, train r={far:g}"] = {"far": table[(far, r)], "matched": table[(r, r)]}
    best = {r: best_train_ratio(cfg, table, r) for r in cfg.test_ratios}
    verdict = stats.family_verdict(
        tests, ALPHA, f"paired one-sided t on test error (train ratio >= {FAR_GRID_STEPS} grid steps "
        "away minus matched), Holm over test ratios x far train ratios", claim.seeds, per,
        summary="best train ratio by mean error (descriptive): " + ", ".join(
            f"test r={r:g} -> {b:g}" for r, b in best.items()) + ".",
        effect_unit=f"test error at the test ratio, trained >= {FAR_GRID_STEPS} grid steps away minus "
                    "trained at the test ratio (> 0 supports)")
    conclude(claim, arm, cfg, records, table, verdict)


# Not required: where matched training is the empirical best, there is nothing to compare.
NEAR_BEST = Rule("error(trained at r) - error(trained at the best train ratio) on the test set at "
                 "each r", "less", NEAR_OPTIMAL_MARGIN, required=False)
FARTHEST_IS_WORSE = Rule("error(trained at the farthest train ratio) - error(trained at r) on the "
                         "test set at each r")


@pytest.mark.parametrize("arm", ARMS)
@declare_outcomes(NEAR_BEST, FARTHEST_IS_WORSE, alpha=ALPHA)
def test_training_at_test_ratio_is_near_optimal(profile, arm, suite, claim):
    """Section 4.1, Figure 1: "Moreover, training on data with the same imbalance as the testing
    data is nearly optimal, so there is very little to gain by balancing the training set."

    Statistic: for every test ratio r in the grid, two paired one-sided t-tests over seeds on
    the test set at r: (i) non-inferiority, H1: error(trained at r) - error(trained at the best
    train ratio) < 0.01 (1 percentage point), where the best train ratio has the lowest mean
    error (ties broken against r; when r itself is the best, no test is made and the report
    says "matched is the empirical best", as it does when the two cells hold the same runs);
    (ii) the choice matters, H1: error(trained at the
    train ratio farthest from r in grid steps; of two equally far, the lower) - error(trained at
    r) > 0. Holm over all tests,
    alpha = 0.05. (ii) keeps the claim from holding vacuously when the train ratio does nothing.
    """
    if arm in QUICK_SCALE_OPTIMAL:
        claim.expect_failure_at_quick_scale(QUICK_SCALE_OPTIMAL[arm])
    cfg, records = claim.grid(arm)
    table = error_table(cfg, records, claim.seeds)
    tests, per, empirical_best = {}, {}, []
    for r in cfg.test_ratios:
        best, far = best_train_ratio(cfg, table, r), farthest_train_ratio(cfg, r)
        if best == r or same_runs(records, ("erm", best), ("erm", r), claim.seeds):
            empirical_best.append(f"{r:g}")  # no comparison of runs with themselves
        else:
            tests[f"test r={r:g}: matched minus best (train r={best:g}) < {NEAR_OPTIMAL_MARGIN:g}"] = \
                stats.paired_less(table[(r, r)], table[(best, r)], ALPHA, margin=NEAR_OPTIMAL_MARGIN,
                                  rule=NEAR_BEST)
        tests[f"test r={r:g}: farthest (train r={far:g}) minus matched > 0"] = stats.paired_greater(
            table[(far, r)], table[(r, r)], ALPHA, rule=FARTHEST_IS_WORSE)
        per[f"r={r:g}"] = {"matched": table[(r, r)], "best": table[(best, r)], "farthest": table[(far, r)]}
    excess = [float(np.mean(table[(r, r)]) - np.mean(table[(best_train_ratio(cfg, table, r), r)]))
              for r in cfg.test_ratios]
    verdict = stats.family_verdict(
        tests, ALPHA, f"paired one-sided non-inferiority t (margin {NEAR_OPTIMAL_MARGIN} test error) "
        "of matched vs the best train ratio, and paired one-sided t of the farthest train ratio vs "
        "matched, Holm over all", claim.seeds, per,
        summary=(f"matched is the empirical best at test r = {', '.join(empirical_best)}; "
                 if empirical_best else "") + f"largest mean excess of matched over the best: "
                f"{max(excess):.4f}.",
        effect_unit="test error: matched minus best (< 0.01 supports) or farthest minus matched "
                    "(> 0 supports), whichever comparison is weakest")
    conclude(claim, arm, cfg, records, table, verdict)
