"""Takeaway 5: under class imbalance minima are flatter (the network is more underspecified), and
Bayesian inference helps, more so under imbalance.

Protocol (Figure 7): CIFAR-10 at a fixed training size, standard training on a balanced and on a
highly imbalanced training set, five seeds. After training, the ten largest eigenvalues of the
Hessian of the mean cross-entropy on the model's own training data (``hessian_samples``
un-augmented training images: 1,000 in the full profile, 500 in quick; BatchNorm in eval mode;
Lanczos on Hessian-vector products, :mod:`harness.nn.flatness`), and the loss along
filter-normalized random directions (Figure 7b).

Protocol (Figure 8): CIFAR-10 at the same training size, balanced and imbalanced training sets,
five seeds; balanced test error of two Bayesian procedures (:mod:`harness.nn.bayesian`), each
against the standard training it replaces, paired by seed (same training subset):

* diagonal Laplace (laplace-torch; last-layer weights, GGN diagonal, prior precision by marginal
  likelihood, GLM probit predictive) against the MAP network it is fitted around (recorded in the
  same run: the standard-training network itself);
* SGHMC (cyclical, predictions averaged over its samples, same epochs and data) against the ERM
  run of the same seed (shared with takeaways 1 and 6).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.judging import stats
from harness.judging.stats import Rule, declare_outcomes
from harness.experiments.protocols import balanced_test_error, per_seed, variant_balanced_test_error
from harness.judging.report import line_figure, mean_series
from harness.runs.records import RecordView

TAKEAWAY = "5"
ALPHA = 0.05


def top_eigenvalues(record) -> list[float]:
    return RecordView(record).extra("hessian_top_eigenvalues")


def mean_top(record) -> float:
    return float(np.mean(top_eigenvalues(record)))


def figures(arm, cfg, records, seeds) -> list[dict]:
    ratios = list(cfg.train_ratios)
    k = len(top_eigenvalues(records[("erm", ratios[0], seeds[0])]))
    fig7a = line_figure(
        f"fig7a-{arm}", f"Figure 7a: top-{k} Hessian eigenvalues, {cfg.model} on {cfg.dataset}",
        "eigenvalue rank", "eigenvalue", [
            mean_series(f"train r={r:g}", list(range(1, k + 1)),
                        [[top_eigenvalues(records[("erm", r, s)])[i] for s in seeds] for i in range(k)])
            for r in ratios], xscale="linear",
        caption="Hessian of the mean training cross-entropy on each model's own training data.")
    curve = RecordView(records[("erm", ratios[0], seeds[0])]).extra("loss_along_direction")
    alphas, directions = curve["alpha"], len(curve["losses"])
    fig7b = line_figure(
        f"fig7b-{arm}", f"Figure 7b: loss along filter-normalized directions, {cfg.model}",
        "step along the direction (alpha)", "training loss", [
            mean_series(f"train r={r:g}", alphas,
                        [[RecordView(records[("erm", r, s)]).extra("loss_along_direction")["loss"][i]
                          for s in seeds] for i in range(len(alphas))]) for r in ratios],
        xscale="linear", caption=f"Per seed, the mean over {directions} random directions, each "
                                 "rescaled filter by filter; mean ± 1 SE over seeds.")
    return [fig7a, fig7b]


def balanced_exceeds_imbalanced(cfg, records, seeds, metric, statistic: str, label: str, rule):
    """Verdict that ``metric`` of the balanced-data model exceeds that of the imbalanced one:
    for every imbalanced train ratio r, a one-sided t over seeds (paired by seed index) of H1:
    metric(balanced) - metric(r) > 0, Holm over those ratios (the claim's declared ``rule``)."""
    balanced = per_seed(records, ("erm", 1.0), seeds, metric)
    values = {r: per_seed(records, ("erm", r), seeds, metric) for r in cfg.train_ratios if r < 1}
    tests = {f"balanced minus train r={r:g}": stats.paired_greater(balanced, v, ALPHA, rule=rule)
             for r, v in values.items()}
    return stats.family_verdict(
        tests, ALPHA, f"one-sided t over seeds on {statistic} (balanced minus imbalanced), Holm "
        "over imbalanced train ratios", seeds,
        {"r=1": balanced, **{f"r={r:g}": v for r, v in values.items()}},
        summary=f"{label}: balanced {np.mean(balanced):.3f}; " + ", ".join(
            f"r={r:g} {np.mean(v):.3f}" for r, v in values.items()),
        effect_unit=f"{statistic}, balanced-trained minus imbalanced-trained model (> 0 supports)")


SHARPER_WHEN_BALANCED = Rule("mean top-10 Hessian eigenvalue(trained at r = 1) - the same trained at "
                             "r, each imbalanced r")


@pytest.mark.parametrize("arm", ["t5-cifar10-flatness"])
@declare_outcomes(SHARPER_WHEN_BALANCED, alpha=ALPHA)
def test_imbalanced_training_gives_lower_top_hessian_eigenvalues(profile, arm, suite, claim):
    """Section 7, Figure 7a: "We thus measure the 10 leading singular values of the Hessian on
    models trained on balanced or highly imbalanced CIFAR-10 data, where the loss function is
    evaluated on the models' respective training data. We observe in Figure 7a that imbalanced
    data leads to *lower* singular values."

    Statistic: per seed, the mean of the ten largest Hessian eigenvalues; for every imbalanced
    train ratio r in the grid, a one-sided t-test over seeds (paired by seed index) of H1:
    mean top-10 eigenvalue(balanced) - mean top-10 eigenvalue(r) > 0, Holm, alpha = 0.05.
    """
    cfg, records = claim.grid(arm)
    verdict = balanced_exceeds_imbalanced(cfg, records, claim.seeds, mean_top,
                                          "the mean top-10 Hessian eigenvalue", "mean top-10 eigenvalue",
                                          SHARPER_WHEN_BALANCED)
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, records, claim.seeds), records.values())
    claim.assert_supported()


def loss_rise(record) -> float:
    """Mean rise of the training loss one filter-normalized step away: over the recorded
    directions, (loss(alpha = -1) + loss(alpha = +1)) / 2 - loss(alpha = 0)."""
    curve = RecordView(record).extra("loss_along_direction")
    alphas, losses = curve["alpha"], curve["loss"]  # "loss" is the mean over directions
    return (losses[alphas.index(-1.0)] + losses[alphas.index(1.0)]) / 2 - losses[alphas.index(0.0)]


RISES_FASTER_WHEN_BALANCED = Rule("loss rise one filter-normalized step away(trained at r = 1) - "
                                  "the same trained at r, each imbalanced r")


@pytest.mark.parametrize("arm", ["t5-cifar10-flatness"])
@declare_outcomes(RISES_FASTER_WHEN_BALANCED, alpha=ALPHA)
def test_loss_rises_more_slowly_around_imbalanced_minima(profile, arm, suite, claim):
    """Section 7, Figure 7b: "We also perturb the parameter vector in random directions in
    Figure 7b using filter-normalization (Huang et al., 2019b) to normalize distance
    measurements, and we see that the loss increases slightly slower on imbalanced data."

    Statistic: per seed, the rise of the training loss (mean cross-entropy on ``hessian_samples``
    of the model's own un-augmented training images: 1,000 in the full profile, 500 in quick)
    one filter-normalized step from the minimum, (loss(-1) + loss(+1)) / 2 - loss(0), averaged
    over the recorded random directions; for every imbalanced train ratio r a one-sided t-test
    over seeds (paired by seed index) of H1: rise(balanced) - rise(r) > 0, Holm, alpha = 0.05.

    EXPLORATORY: the number of random directions (now 5) was raised from 1 after this claim
    failed on seeds 0-4. The report labels runs on seeds 0-4 exploratory; a run on seeds never
    looked at (``--seed-offset=5``) is labelled a confirmation run. In version 0.3 the
    confirmation run on seeds 5-9 (quick profile) supported it; the issue tracker's note on
    issue 8 has its numbers.
    """
    claim.mark_exploratory(
        "Figure 7b's number of random directions per model went from 1 to 5 after the claim failed "
        "with one direction on seeds 0-4 (p = 0.088); the verdict depends on that choice",
        looked_at_seeds=range(5))
    cfg, records = claim.grid(arm)
    verdict = balanced_exceeds_imbalanced(cfg, records, claim.seeds, loss_rise,
                                          "the loss rise one filter-normalized step away",
                                          "mean loss rise at |alpha| = 1", RISES_FASTER_WHEN_BALANCED)
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, records, claim.seeds), records.values())
    claim.assert_supported()


# ------------------------------------------------------------------ Figure 8: Bayesian inference

BAYESIAN = {"laplace": "diagonal Laplace", "sghmc": "SGHMC"}

# Why the quick arms are expected not to hold (the live numbers are in each verdict; every scale
# searched is in claims/evidence/ with its numbers). In version 0.3 Laplace over all weights
# (sampled predictive) was searched as well, at seeds 0-1, and did not help either; its numbers
# were not kept, and its GLM predictive asks for 40 GB on the quick CNN, more than the 24 GB of
# this project's machines, so version 0.5 could not re-run it.
QUICK_SCALE_BAYES = (
    "not expected at CPU quick scale: neither diagonal Laplace nor SGHMC lowers the quick CNN's "
    "balanced error. Searched: 15 epochs (5 seeds); SGHMC at temperature 0.01 and with 1 cycle "
    "x 3 samples (2 seeds); the full ResNet-34 profile is where it is tested.")

map_error = variant_balanced_test_error("map")


def bayesian_gains(records, cfg, seeds) -> dict[tuple[str, float], list[float]]:
    """Per seed, baseline minus Bayesian balanced test error, by (method, train ratio)."""
    gains = {}
    for r in cfg.train_ratios:
        baseline = {"laplace": per_seed(records, ("laplace", r), seeds, map_error),
                    "sghmc": per_seed(records, ("erm", r), seeds, balanced_test_error)}
        for method in BAYESIAN:
            bayes = per_seed(records, (method, r), seeds, balanced_test_error)
            gains[(method, r)] = [a - b for a, b in zip(baseline[method], bayes)]
    return gains


def figure8(arm, cfg, records, seeds) -> dict:
    ratios = list(cfg.train_ratios)
    series = [mean_series("standard training (ERM)", ratios,
                          [per_seed(records, ("erm", r), seeds, balanced_test_error) for r in ratios]),
              mean_series("Laplace's MAP network", ratios,
                          [per_seed(records, ("laplace", r), seeds, map_error) for r in ratios]),
              *[mean_series(name, ratios, [per_seed(records, (m, r), seeds, balanced_test_error)
                                           for r in ratios]) for m, name in BAYESIAN.items()]]
    return line_figure(f"fig8-{arm}", f"Figure 8: Bayesian inference, {cfg.model} on {cfg.dataset}",
                       "train imbalance ratio", "balanced test error", series,
                       caption="Balanced CIFAR-10 test set; mean ± 1 SE over seeds.")


def bayesian_verdict(tests, gains, statistic, seeds, effect_unit):
    return stats.family_verdict(
        tests, ALPHA, statistic, seeds, {f"{m} gain r={r:g}": v for (m, r), v in gains.items()},
        summary="mean gain (baseline minus Bayesian balanced error): " + "; ".join(
            f"{BAYESIAN[m]} r={r:g} {np.mean(v):+.4f}" for (m, r), v in gains.items()),
        effect_unit=effect_unit)


GAIN = Rule("balanced test error(baseline) - balanced test error(Bayesian), the gain, each method "
            "and imbalanced r")


@pytest.mark.parametrize("arm", ["t5-cifar10-bayesian"])
@declare_outcomes(GAIN, alpha=ALPHA)
def test_bayesian_inference_improves_imbalanced_training(profile, arm, suite, claim):
    """Section 6, Figure 8: "We see in Figure 8 that such methods confer especially large boosts
    in accuracy on class-imbalanced training data with virtually no additional training cost."

    Statistic: per seed, the gain in balanced test error (baseline minus Bayesian; the baseline
    is Laplace's own MAP network, and the ERM run for SGHMC); for each method and every
    imbalanced train ratio a one-sided paired t-test of H1: gain > 0, Holm over methods and
    ratios, alpha = 0.05.
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_BAYES)
    cfg, records = claim.grid(arm)
    gains = bayesian_gains(records, cfg, claim.seeds)
    tests = gain_tests(gains)
    verdict = bayesian_verdict(tests, gains, "one-sided t over seeds on the gain in balanced "
                               "test error, Holm over methods and imbalanced ratios", claim.seeds,
                               "gain in balanced test error, baseline minus Bayesian (> 0 supports)")
    claim.conclude(TAKEAWAY, arm, verdict, [figure8(arm, cfg, records, claim.seeds)], records.values())
    claim.assert_supported()


def gain_tests(gains) -> dict[str, stats.TestResult]:
    """One-sided t over seeds of H1: gain > 0, for each method and imbalanced train ratio."""
    zero = [0.0] * len(next(iter(gains.values())))
    return {f"{BAYESIAN[m]}, train r={r:g}: gain": stats.paired_greater(v, zero, ALPHA, rule=GAIN)
            for (m, r), v in gains.items() if r < 1}


def helps_more_tests(gains) -> dict[str, stats.TestResult]:
    """The family of the claim below: each method's gain under imbalance is positive, and larger
    than its gain on balanced data (paired by seed index)."""
    return gain_tests(gains) | {
        f"{BAYESIAN[m]}, train r={r:g}: gain minus balanced-data gain": stats.paired_greater(
            v, gains[(m, 1.0)], ALPHA, rule=MORE_GAIN) for (m, r), v in gains.items() if r < 1}


MORE_GAIN = Rule("the gain at r - the gain at r = 1, each method and imbalanced r")


@pytest.mark.parametrize("arm", ["t5-cifar10-bayesian"])
@declare_outcomes(GAIN, MORE_GAIN, alpha=ALPHA)
def test_bayesian_inference_helps_more_under_imbalance(profile, arm, suite, claim):
    """Section 6, Figure 8: "Bayesian inference improves performance, especially on imblanced
    training data" (caption), "we find that this capability of BNNs is especially advantageous
    in the class-imbalanced regime" (Section 1).

    Statistic: per seed, the gain in balanced test error (as in the test above). For each method
    and every imbalanced train ratio r, two one-sided t-tests over seeds (paired by seed index):
    H1: gain(r) > 0 (the method helps under imbalance) and H1: gain(r) - gain(1) > 0 (more than
    on balanced data). Holm over methods x ratios x both, alpha = 0.05. The first test was added
    in version 0.5 (issue 19), before any run of the new family: a method that predicts at chance has
    a constant error, so the difference of gains alone reduces to ERM's own imbalance penalty
    and held with no Bayesian gain at all. Adding a test to a family that must hold whole can
    only turn a supported verdict into an unsupported one.
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_BAYES)
    cfg, records = claim.grid(arm)
    gains = bayesian_gains(records, cfg, claim.seeds)
    verdict = bayesian_verdict(helps_more_tests(gains), gains, "one-sided t over seeds on the gain "
                               "at r and on (gain at r) - (gain at r = 1), Holm over methods x "
                               "imbalanced ratios x both", claim.seeds,
                               "Bayesian gain in balanced test error at r, or that gain minus the "
                               "gain at r = 1 (> 0 supports)")
    claim.conclude(TAKEAWAY, arm, verdict, [figure8(arm, cfg, records, claim.seeds)], records.values())
    claim.assert_supported()
