"""Takeaway 2: with the minority fixed, adding majority samples first helps, then hurts.

Protocol (Figure 3): the minority class (label 1) fixed at a count, the majority count varied on a
grid of multiples of it that includes balance and spans both sides of it; balanced test error on
the largest balanced test set the held-out split allows, five seeds. At a seed every grid point
trains on the same minority samples, and each larger majority set contains the smaller ones
(nested subsets, :func:`harness.runs.training.train_subset`): majority data is really *added*.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.judging import stats
from harness.judging.stats import Rule, declare_outcomes
from harness.experiments.protocols import balanced_test_error, per_seed
from harness.judging.report import line_figure, mean_series

TAKEAWAY = "2"
ALPHA = 0.05

# The quick CNN arm is expected not to hold at 8 epochs (the live numbers are in its verdict).
QUICK_SCALE = {
    "t2-cifar10-binary-nn": (
        "not expected at 8 epochs: the under-trained quick CNN with 50 majority images is not "
        "significantly worse than with 250. Searched: 15 epochs at 5 seeds (supported)."),
}


def error_curves(records, seeds) -> dict[int, dict[int, list[float]]]:
    """Per-seed balanced test error by minority count, then majority count."""
    curves: dict[int, dict[int, list[float]]] = {}
    for minority, majority, _ in records:
        curves.setdefault(minority, {})[majority] = per_seed(
            records, (minority, majority), seeds, balanced_test_error)
    return {m: dict(sorted(c.items())) for m, c in sorted(curves.items())}


def best_majority(curve: dict[int, list[float]]) -> int:
    return min(curve, key=lambda m: np.mean(curve[m]))


def figures(arm, cfg, curves) -> list[dict]:
    fig3b = line_figure(
        f"fig3b-{arm}", f"Figure 3b: {cfg.model} on {cfg.dataset}, minority fixed",
        "majority training samples", "balanced test error",
        [mean_series(f"minority = {m}", list(c), list(c.values())) for m, c in curves.items()],
        vlines=[{"x": cfg.claim_minority, "label": f"balance at {cfg.claim_minority}"}],
        caption="Mean ± 1 SE over seeds. The claim is tested on the minority-"
                f"{cfg.claim_minority} curve.")
    minorities = list(curves)
    fig3c = line_figure(
        f"fig3c-{arm}", f"Figure 3c: best majority count, {cfg.model} on {cfg.dataset}",
        "minority training samples", "majority count with lowest balanced error",
        [{"label": arm, "x": minorities, "y": [best_majority(curves[m]) for m in minorities]}],
        diagonal=True, caption="Points on the diagonal mean a balanced training set is optimal.")
    return [fig3b, fig3c]


END_IS_WORSE = Rule("balanced test error(fewest, or most, majority samples) - balanced test "
                    "error(balanced training set), minority fixed")


@pytest.mark.parametrize("arm", ["t2-adult-xgboost", "t2-cifar10-binary-nn"])
@declare_outcomes(END_IS_WORSE, alpha=ALPHA)
def test_adding_majority_samples_first_helps_then_hurts(profile, arm, suite, claim):
    """Section 4.2, Figure 3b: "increasing the number of samples from the majority class ...
    initially boosts performance on a balanced test set. Nevertheless, in both cases, the
    performance reaches an optimum before the ever increasing imbalance in training data
    eventually degrades test accuracy." and "the optimal training set ratio is nearly balanced".

    Statistic: on the curve at the arm's fixed minority count m (500 as in the paper; 250 in the
    quick neural-network arm, which trains at a quarter of the paper's scale), the balanced
    point (majority = m, declared in advance as the paper's near-optimal ratio; no optimum is
    picked on the tested seeds) against both ends of the grid: two paired one-sided t-tests over
    seeds, H1: error(fewest majority) - error(balanced) > 0 ("adding majority samples first
    helps") and H1: error(most majority) - error(balanced) > 0 ("then hurts"), Holm, alpha =
    0.05. An end significantly better than balance means more majority data only helps, or only
    hurts. Changed in version 0.3 from "the optimum picked on the tested seeds" (which favoured the claim) before the new
    statistic was run.
    """
    if arm in QUICK_SCALE:
        claim.expect_failure_at_quick_scale(QUICK_SCALE[arm])
    cfg, records = claim.grid(arm)
    curves = error_curves(records, claim.seeds)
    curve = curves[cfg.claim_minority]
    grid = list(curve)
    if cfg.claim_minority not in curve:
        raise ValueError(f"{arm}: the majority grid {grid} has no balanced point "
                         f"({cfg.claim_minority}); add factor 1.0")
    balanced = cfg.claim_minority
    tests = {
        f"fewest majority ({grid[0]}) minus balanced ({balanced})":
            stats.paired_greater(curve[grid[0]], curve[balanced], ALPHA, rule=END_IS_WORSE),
        f"most majority ({grid[-1]}) minus balanced ({balanced})":
            stats.paired_greater(curve[grid[-1]], curve[balanced], ALPHA, rule=END_IS_WORSE),
    }
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on balanced test error (grid end minus balanced point), "
        "Holm over both ends", claim.seeds, {f"majority={m}": v for m, v in curve.items()},
        summary=f"balanced error at {balanced} majority (balance) {np.mean(curve[balanced]):.4f} vs "
                f"ends {grid[0]}: {np.mean(curve[grid[0]]):.4f} and {grid[-1]}: "
                f"{np.mean(curve[grid[-1]]):.4f}; lowest mean at {best_majority(curve)} "
                "(descriptive).",
        effect_unit="balanced test error, grid end minus balanced training set (> 0 supports)")
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, curves), records.values())
    claim.assert_supported()
