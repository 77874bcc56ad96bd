"""Takeaway 6: flatness-seeking regularization (SAM) pulls decision boundaries away from minority
samples, helps more under imbalance, and asymmetric SAM helps further.

Protocol (Figure 10): CIFAR-10 at a fixed training size under standard training (ERM, shared with
takeaway 1), SAM and asymmetric SAM (a larger ascent radius, x2, for the rarer half of the classes;
see :mod:`harness.nn.sam` for how that realizes "increasing the ascent step size in SAM's inner loop
for minority samples"), on balanced and imbalanced training sets; balanced test error.

Protocol (Figure 9): the toy 2D problem of :mod:`harness.learners.toy` (majority: a standard Gaussian;
minority: a tight cluster at (1.5, 1.5) inside the majority's tail), 400 majority and 20 minority
training points, a 2-64-64-2 MLP trained full batch with SGD (momentum 0.9, lr 0.1, 1,500 steps)
or SAM (radius 0.1) from the same initialization and data at each seed. The margin of a minority
training point is its Euclidean distance to the decision boundary (negative when misclassified),
found by root-finding along 360 rays from the point (:func:`harness.learners.toy.boundary_distances`,
precise to ~1e-6; it replaced a 241 x 241 grid whose spacing, 0.033, exceeded the effect); a
run's statistic is the mean over its minority points.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import data
from harness.judging import stats
from harness.judging.stats import Rule, declare_outcomes
from harness.experiments.protocols import balanced_test_error, per_seed
from harness.judging.report import boundary_figure, line_figure, mean_series
from harness.runs.records import RecordView
from harness.runs.spec import RunSpec
from harness.runs.training import train_subset

TAKEAWAY = "6"
ALPHA = 0.05

# Why the quick Figure 10 arms are expected not to hold (the live numbers are in each verdict; the
# numbers of every scale searched are in claims/evidence/).
# Scales searched (2 cores): the quick CNN (width 16, 16 px, 2,500 images, 5 seeds; 8 epochs since version 0.3, 15 before) and
# a 4x larger one (width 32, 30 epochs, 2 seeds): SAM raised the under-trained network's balanced
# error at both. SAM is a regularizer; the paper's ResNet-34 at 200 epochs is where it helps.
QUICK_SCALE_SAM = (
    "not expected at CPU quick scale: SAM does not help the under-trained quick CNN. Searched: "
    "width 16 at 8 epochs (this arm) and 15 epochs and width 32 / 30 epochs (2 seeds); the full ResNet-34 "
    "profile is where it is tested.")
QUICK_SCALE_MARGIN = (
    "not expected at 5 seeds: SAM's gain in minority margin (about 0.01, measured by "
    "root-finding) is about the smallest effect 5 seeds detect; of four disjoint 5-seed blocks "
    "(seeds 0-19) one held. Searched: 20 seeds (supported).")
QUICK_SCALE_ASYMMETRIC = (
    "not expected at CPU quick scale, where SAM itself does not help (see the SAM arm) and "
    "asymmetric SAM is no better than standard training. Searched: width 16 at 8 epochs (this "
    "arm) and 15 epochs, and width 32 / 30 epochs (2 seeds); the full ResNet-34 profile is "
    "where it is tested.")


def minority_margin(record) -> float:
    return RecordView(record).extra("minority_margin_mean")


def figures(arm, cfg, records, seeds) -> list[dict]:
    toy = data.load(cfg.dataset)
    figs = []
    for method, panel in (("erm", "a"), ("sam", "b")):
        record = records[(method, seeds[0])]
        idx = train_subset(toy, RunSpec.from_dict(record["spec"]))
        grid = RecordView(record).extra("decision_grid")
        figs.append(boundary_figure(
            f"fig9{panel}-{arm}", f"Figure 9{panel}: decision boundary after "
            f"{'SGD' if method == 'erm' else 'SAM'} training (seed {seeds[0]})", grid["axis"],
            grid["labels"], toy.x_train[idx].tolist(), toy.y_train[idx].tolist(),
            caption=f"Seed {seeds[0]}, the first of the {len(seeds)} seeds judged (its training "
                    f"points and boundary); its mean minority margin {minority_margin(record):.3f}. "
                    "Every seed's margin is in the next figure."))
    figs.append(line_figure(
        f"fig9-margins-{arm}", "Mean minority margin per seed", "seed", "mean minority margin",
        [{"label": m, "x": list(seeds), "y": per_seed(records, (m,), seeds, minority_margin)}
         for m in cfg.methods], xscale="linear",
        caption="Distance from minority training points to the decision boundary (negative: "
                "misclassified). Asymmetric SAM uses a 3x larger radius for minority samples."))
    return figs


WIDER_MARGIN = Rule("mean minority-point margin(SAM) - mean minority-point margin(SGD)")


@pytest.mark.parametrize("arm", ["t6-toy2d-mlp"])
@declare_outcomes(WIDER_MARGIN, alpha=ALPHA)
def test_sam_widens_the_margin_around_minority_points(profile, arm, suite, claim):
    """Section 7, Figure 9: "we see small margins surrounding minority class samples, and SAM
    expands these margins supporting the intuition of Huang et al. (2019b)."

    Statistic: the mean margin of the minority training points under SAM and under SGD, paired
    by seed (same data and initialization); a one-sided paired t-test over seeds of H1:
    margin(SAM) - margin(SGD) > 0, alpha = 0.05 (a single comparison: no correction).
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_MARGIN)
    cfg, records = claim.grid(arm)
    sgd = per_seed(records, ("erm",), claim.seeds, minority_margin)
    sharp = per_seed(records, ("sam",), claim.seeds, minority_margin)
    verdict = stats.family_verdict(
        {"SAM minus SGD": stats.paired_greater(sharp, sgd, ALPHA, rule=WIDER_MARGIN)}, ALPHA,
        "paired one-sided t on the mean minority-point margin (SAM minus SGD)", claim.seeds,
        {"sgd": sgd, "sam": sharp},
        summary=f"mean minority margin SGD {np.mean(sgd):.4f}, SAM {np.mean(sharp):.4f}.",
        effect_unit="mean minority-point margin (input units), SAM minus SGD (> 0 supports)")
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, records, claim.seeds), records.values())
    claim.assert_supported()


def figure10(arm, cfg, records, seeds) -> dict:
    series = [mean_series(method, cfg.ratios_for(method),
                          [per_seed(records, (method, r), seeds, balanced_test_error)
                           for r in cfg.ratios_for(method)]) for method in cfg.methods]
    return line_figure(f"fig10-{arm}", f"Figure 10: SAM and asymmetric SAM, {cfg.model} on {cfg.dataset}",
                       "train imbalance ratio", "balanced test error", series,
                       caption="Balanced test set; mean ± 1 SE over seeds.")


def imbalanced(cfg) -> list[float]:
    return [r for r in cfg.train_ratios if r < 1]


SAM_GAIN = Rule("SAM's gain, balanced test error(ERM) - balanced test error(SAM), each imbalanced r")
MORE_SAM_GAIN = Rule("SAM's gain at r - its gain at r = 1, each imbalanced r")


@pytest.mark.parametrize("arm", ["t6-cifar10-nn"])
@declare_outcomes(SAM_GAIN, MORE_SAM_GAIN, alpha=ALPHA)
def test_sam_helps_more_under_imbalance(profile, arm, suite, claim):
    """Section 7, Figure 10: "we employ SAM on our CIFAR-10 setup and find that SAM especially
    improves generalization on class-imbalanced training data in Figure 10."

    Statistic: per seed, SAM's gain in balanced test error (ERM minus SAM) at each imbalanced
    train ratio r, and that gain minus its gain on balanced training data (r = 1). For every
    imbalanced r in the grid two one-sided t-tests over seeds (paired by seed): H1: gain(r) > 0
    (SAM helps under imbalance) and H1: gain(r) - gain(1) > 0 (more than on balanced data), Holm
    over all, alpha = 0.05. SAM that does not help under imbalance never supports the claim,
    even if it hurts less there than on balanced data (the first test was added in version 0.3,
    before the claim was rerun: gains were compared without requiring a gain).
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_SAM)
    cfg, records = claim.grid(arm)

    def gain(r):
        erm = per_seed(records, ("erm", r), claim.seeds, balanced_test_error)
        sharp = per_seed(records, ("sam", r), claim.seeds, balanced_test_error)
        return [a - b for a, b in zip(erm, sharp)]

    balanced_gain = gain(1.0)
    zero = [0.0] * len(claim.seeds)
    tests = {}
    for r in imbalanced(cfg):
        tests[f"train r={r:g}: SAM gain > 0"] = stats.paired_greater(gain(r), zero, ALPHA, rule=SAM_GAIN)
        tests[f"train r={r:g}: SAM gain minus balanced-data gain"] = stats.paired_greater(
            gain(r), balanced_gain, ALPHA, rule=MORE_SAM_GAIN)
    verdict = stats.family_verdict(
        tests, ALPHA, "one-sided t over seeds on SAM's gain (ERM - SAM balanced error) at r and on "
        "that gain minus the same at r = 1, Holm over both tests x imbalanced train ratios", claim.seeds,
        {"gain at r=1": balanced_gain, **{f"gain at r={r:g}": gain(r) for r in imbalanced(cfg)}},
        summary=f"mean SAM gain: balanced data {np.mean(balanced_gain):+.4f}; " + ", ".join(
            f"r={r:g} {np.mean(gain(r)):+.4f}" for r in imbalanced(cfg)),
        effect_unit="balanced test error: SAM's gain (ERM minus SAM) at r, or that gain minus its "
                    "gain at r = 1 (> 0 supports)")
    claim.conclude(TAKEAWAY, arm, verdict, [figure10(arm, cfg, records, claim.seeds)], records.values())
    claim.assert_supported()


def asymmetric_sam_tests(records, seeds, ratios) -> tuple[dict, dict]:
    """The family of the claim below, and the per-seed values behind it: at every imbalanced
    ratio, asymmetric SAM's balanced test error below SAM's and below ERM's (paired by seed)."""
    values = {r: {m: per_seed(records, (m, r), seeds, balanced_test_error)
                  for m in ("erm", "sam", "asymmetric_sam")} for r in ratios}
    tests = {}
    for r, v in values.items():
        for base, name in (("sam", "SAM"), ("erm", "ERM")):
            tests[f"train r={r:g}: {name} minus asymmetric SAM"] = stats.paired_greater(
                v[base], v["asymmetric_sam"], ALPHA, rule=ASYMMETRIC_BEATS[base])
    return tests, values


ASYMMETRIC_BEATS = {m: Rule(f"balanced test error({name}) - balanced test error(asymmetric SAM), "
                            "each imbalanced r") for m, name in (("sam", "SAM"), ("erm", "ERM"))}


@pytest.mark.parametrize("arm", ["t6-cifar10-nn"])
@declare_outcomes(*ASYMMETRIC_BEATS.values(), alpha=ALPHA)
def test_asymmetric_sam_improves_on_sam_under_imbalance(profile, arm, suite, claim):
    """Section 7, Figure 10: "we now further increase flatness specifically on minority class loss
    terms by increasing the ascent step size in SAM's inner loop. We see in Figure 10 that this
    adaptation can yield even greater performance boosts."

    Statistic: for every imbalanced train ratio r in the grid, two paired one-sided t-tests over
    seeds (same training subset per seed) on balanced test error: H1: error(SAM) -
    error(asymmetric SAM) > 0 ("even greater": better than SAM) and H1: error(ERM) -
    error(asymmetric SAM) > 0 (a boost: better than standard training). Holm over both x
    ratios, alpha = 0.05. The second test was added in version 0.5 (issue 19), before any run
    of the new family: beating a SAM that itself hurts is no boost. Adding a test to a family that must
    hold whole can only turn a supported verdict into an unsupported one.
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_ASYMMETRIC)
    cfg, records = claim.grid(arm)
    tests, values = asymmetric_sam_tests(records, claim.seeds, imbalanced(cfg))
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on balanced test error (SAM, and ERM, minus asymmetric "
        "SAM), Holm over both x imbalanced train ratios", claim.seeds,
        {f"r={r:g}": v for r, v in values.items()},
        summary="mean balanced test error ERM/SAM/asymmetric SAM: " + ", ".join(
            f"r={r:g}: " + "/".join(f"{np.mean(v[m]):.4f}" for m in ("erm", "sam", "asymmetric_sam"))
            for r, v in values.items()),
        effect_unit="balanced test error, SAM (or ERM) minus asymmetric SAM (> 0 supports)")
    claim.conclude(TAKEAWAY, arm, verdict, [figure10(arm, cfg, records, claim.seeds)], records.values())
    claim.assert_supported()
