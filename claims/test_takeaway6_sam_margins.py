"""Takeaway 6: flatness-seeking regularization (SAM) pulls decision boundaries away from minority
samples, helps more under imbalance, and asymmetric SAM helps further.

Protocol (Figure 10): CIFAR-10 at a fixed training size under standard training (ERM, shared with
takeaway 1), SAM and asymmetric SAM (a larger ascent radius, x2, for the rarer half of the classes;
see :mod:`harness.sam` for how that realizes "increasing the ascent step size in SAM's inner loop
for minority samples"), on balanced and imbalanced training sets; balanced test error.

Protocol (Figure 9): the toy 2D problem of :mod:`harness.toy` (majority: a standard Gaussian;
minority: a tight cluster at (1.5, 1.5) inside the majority's tail), 400 majority and 20 minority
training points, a 2-64-64-2 MLP trained full batch with SGD (momentum 0.9, lr 0.1, 1,500 steps)
or SAM (radius 0.1) from the same initialization and data at each seed. The margin of a minority
training point is its distance to the decision boundary (negative when misclassified), measured
on a 241 x 241 grid over [-4, 4]^2; a run's statistic is the mean over its minority points.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import data, stats
from harness.protocols import balanced_test_error, method_lowers_metric, per_seed
from harness.report import boundary_figure, line_figure, mean_series
from harness.spec import RunSpec
from harness.training import train_subset

TAKEAWAY = "6"
ALPHA = 0.05

# Measured before marking (2 CPU cores). At quick scale (width-16 CNN, 16 px, 15 epochs, 2,500
# images, 5 seeds) and at a 4x larger search scale (width 32, 30 epochs, 2 seeds) SAM *raises*
# the balanced test error of the under-trained CPU network, so neither Figure 10 arm can hold
# there; SAM is a regularizer, and the paper's ResNet-34 trained for 200 epochs is where it helps.
QUICK_SCALE_SAM = (
    "cannot hold at CPU quick scale: SAM hurts the under-trained quick CNN. SAM gain (ERM - SAM "
    "balanced error), 5 seeds: balanced data -0.021, r=0.05 -0.029; gain difference -0.007 "
    "[-0.018, 0.003], p=0.90. Search at width 32 / 30 epochs, r=0.05, 2 seeds: ERM 0.547/0.574, "
    "SAM 0.594/0.637. Expected to need the full ResNet-34 profile.")
QUICK_SCALE_ASYMMETRIC = (
    "cannot hold at CPU quick scale, where SAM itself does not help (see the SAM arm): SAM minus "
    "asymmetric SAM balanced error at r=0.05, 5 seeds: +0.0008 [-0.0004, 0.0019], p=0.11. "
    "Expected to need the full ResNet-34 profile.")


def minority_margin(record) -> float:
    return record["metrics"]["extra"]["minority_margin_mean"]


def figures(arm, cfg, records, seeds) -> list[dict]:
    toy = data.load(cfg.dataset)
    figs = []
    for method, panel in (("erm", "a"), ("sam", "b")):
        record = records[(method, seeds[0])]
        idx = train_subset(toy, RunSpec.from_dict(record["spec"]))
        grid = record["metrics"]["extra"]["decision_grid"]
        figs.append(boundary_figure(
            f"fig9{panel}-{arm}", f"Figure 9{panel}: decision boundary after "
            f"{'SGD' if method == 'erm' else 'SAM'} training (seed {seeds[0]})", grid["axis"],
            grid["labels"], toy.x_train[idx].tolist(), toy.y_train[idx].tolist(),
            caption=f"Mean minority margin {minority_margin(record):.3f}."))
    figs.append(line_figure(
        f"fig9-margins-{arm}", "Mean minority margin per seed", "seed", "mean minority margin",
        [{"label": m, "x": list(seeds), "y": per_seed(records, (m,), seeds, minority_margin)}
         for m in cfg.methods], xscale="linear",
        caption="Distance from minority training points to the decision boundary (negative: "
                "misclassified). Asymmetric SAM uses a 3x larger radius for minority samples."))
    return figs


@pytest.mark.parametrize("arm", ["t6-toy2d-mlp"])
def test_sam_widens_the_margin_around_minority_points(profile, arm, suite, claim):
    """Section 7, Figure 9: "we see small margins surrounding minority class samples, and SAM
    expands these margins supporting the intuition of Huang et al. (2019b)."

    Statistic: the mean margin of the minority training points under SAM and under SGD, paired
    by seed (same data and initialization); a one-sided paired t-test over seeds of H1:
    margin(SAM) - margin(SGD) > 0, alpha = 0.05 (a single comparison: no correction). Refuted when
    SAM's minority margin is not significantly larger than SGD's.
    """
    cfg, records = suite.grid(profile, arm)
    sgd = per_seed(records, ("erm",), suite.seeds, minority_margin)
    sharp = per_seed(records, ("sam",), suite.seeds, minority_margin)
    verdict = stats.family_verdict(
        {"SAM minus SGD": stats.paired_greater(sharp, sgd, ALPHA)}, ALPHA,
        "paired one-sided t on the mean minority-point margin (SAM minus SGD)", suite.seeds,
        {"sgd": sgd, "sam": sharp},
        summary=f"mean minority margin SGD {np.mean(sgd):.3f}, SAM {np.mean(sharp):.3f}.")
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, records, suite.seeds), records.values())
    assert verdict.supported, claim.explain()


def figure10(arm, cfg, records, seeds) -> dict:
    series = [mean_series(method, cfg.ratios_for(method),
                          [per_seed(records, (method, r), seeds, balanced_test_error)
                           for r in cfg.ratios_for(method)]) for method in cfg.methods]
    return line_figure(f"fig10-{arm}", f"Figure 10: SAM and asymmetric SAM, {cfg.model} on {cfg.dataset}",
                       "train imbalance ratio", "balanced test error", series,
                       caption="Balanced test set; mean ± 1 SE over seeds.")


def imbalanced(cfg) -> list[float]:
    return [r for r in cfg.train_ratios if r < 1]


@pytest.mark.parametrize("arm", ["t6-cifar10-nn"])
def test_sam_helps_more_under_imbalance(profile, arm, suite, claim):
    """Section 7, Figure 10: "we employ SAM on our CIFAR-10 setup and find that SAM especially
    improves generalization on class-imbalanced training data in Figure 10."

    Statistic: per seed, SAM's gain in balanced test error (ERM minus SAM) at an imbalanced train
    ratio r minus its gain on balanced training data (r = 1); a one-sided t-test over seeds of H1:
    that difference > 0, for every imbalanced r in the grid, Holm, alpha = 0.05. Supported when
    every comparison rejects. Refuted when SAM's gain under imbalance is not significantly larger
    than on balanced data (including when SAM does not help at all).
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_SAM)
    cfg, records = suite.grid(profile, arm)

    def gain(r):
        erm = per_seed(records, ("erm", r), suite.seeds, balanced_test_error)
        sharp = per_seed(records, ("sam", r), suite.seeds, balanced_test_error)
        return [a - b for a, b in zip(erm, sharp)]

    balanced_gain = gain(1.0)
    tests = {f"train r={r:g}: SAM gain minus balanced-data gain": stats.paired_greater(
        gain(r), balanced_gain, ALPHA) for r in imbalanced(cfg)}
    verdict = stats.family_verdict(
        tests, ALPHA, "one-sided t over seeds on (ERM - SAM balanced error at r) - (the same at "
        "r = 1), Holm over imbalanced train ratios", suite.seeds,
        {"gain at r=1": balanced_gain, **{f"gain at r={r:g}": gain(r) for r in imbalanced(cfg)}},
        summary=f"mean SAM gain: balanced data {np.mean(balanced_gain):+.4f}; " + ", ".join(
            f"r={r:g} {np.mean(gain(r)):+.4f}" for r in imbalanced(cfg)))
    claim.conclude(TAKEAWAY, arm, verdict, [figure10(arm, cfg, records, suite.seeds)], records.values())
    assert verdict.supported, claim.explain()


@pytest.mark.parametrize("arm", ["t6-cifar10-nn"])
def test_asymmetric_sam_improves_on_sam_under_imbalance(profile, arm, suite, claim):
    """Section 7, Figure 10: "we now further increase flatness specifically on minority class loss
    terms by increasing the ascent step size in SAM's inner loop. We see in Figure 10 that this
    adaptation can yield even greater performance boosts."

    Statistic: for every imbalanced train ratio r in the grid, a paired one-sided t-test over
    seeds (same training subset per seed) of H1: balanced test error(SAM) - balanced test
    error(asymmetric SAM) > 0, Holm, alpha = 0.05. Supported when every comparison rejects.
    Refuted when asymmetric SAM is not significantly better than SAM at some imbalanced ratio.
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_ASYMMETRIC)
    cfg, records = suite.grid(profile, arm)
    verdict = method_lowers_metric(
        records, suite.seeds, imbalanced(cfg), ("sam", "SAM"), ("asymmetric_sam", "asymmetric SAM"),
        balanced_test_error, "balanced test error", "imbalanced train ratios", ALPHA)
    claim.conclude(TAKEAWAY, arm, verdict, [figure10(arm, cfg, records, suite.seeds)], records.values())
    assert verdict.supported, claim.explain()
