"""Takeaway 3: minority samples are hard to fit; fitting them helps XGBoost but not neural networks.

Protocol (Figures 4 and 5): Figure 1's ratio grid under standard training (ERM, the same runs as
takeaway 1) and under methods that fit the minority: random oversampling, inverse-frequency loss
re-weighting (XGBoost), and "overfit" (neural networks: a small learning rate for many epochs,
until the training set is fit). Training error is measured on the distinct training samples,
without augmentation; test error on the balanced test set. "Minority" and "majority" are the
tail and head halves of the classes (binary: label 1 and label 0; CIFAR-10: classes 5-9 and 0-4),
each the mean of its per-class errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.judging import stats
from harness.judging.stats import Rule, declare_outcomes
from harness.experiments.protocols import (balanced_test_error, group_train_error, method_lowers_metric,
                               per_seed)
from harness.judging.report import line_figure, mean_series

TAKEAWAY = "3"
ALPHA = 0.05
IMBALANCED_TRAIN_RATIO = 0.3  # train ratios at or below this form each claim's family
# Non-superiority margin on balanced test error (1 percentage point), declared in version 0.5
# before any run at the new statistic: see test_fitting_the_minority_does_not_improve_nn_generalization.
NO_IMPROVEMENT_MARGIN = 0.01
NN_ARM = "t3-cifar10-nn"

# Why two quick arms are expected not to hold (the live numbers are in each verdict; the numbers of
# every scale searched are in claims/evidence/). Scales searched: the quick CNN (width 16, 16 px,
# 2,500 images; 8 epochs since version 0.3, 15 before) and a 4x larger one (width 32, 30 epochs,
# 2 seeds). At both, the under-trained CPU network still gains from oversampling, and the
# "overfit" regime (lr x0.1, 3x epochs) does not significantly lower the minority's training
# error (at width 32 it trends that way, below what 2 seeds resolve). The full profile
# (ResNet-34, 200 epochs, GPU) is where these arms are tested.
QUICK_SCALE_OVERFIT = (
    "not expected at CPU quick scale: the overfit regime (lr x0.1, 3x epochs) does not "
    "significantly lower the under-trained quick CNN's minority training error. Searched: width "
    "16 at 8 epochs (this arm) and 15 epochs (5 seeds), and width 32 / 30 epochs (2 seeds, where "
    "it trends toward holding, below what 2 seeds resolve); the full ResNet-34 profile is where "
    "it is tested.")
QUICK_SCALE_OVERSAMPLING = (
    "not expected at CPU quick scale: oversampling still improves the under-trained quick CNN. "
    "Searched: width 16 at 8 epochs (this arm) and 15 epochs (5 seeds), and width 32 / 30 epochs "
    "(2 seeds); the full ResNet-34 profile is where it is tested.")


def imbalanced(cfg) -> list[float]:
    return [r for r in cfg.train_ratios if r <= IMBALANCED_TRAIN_RATIO]


def minority_error(rec):
    return group_train_error(rec, "minority")


def majority_error(rec):
    return group_train_error(rec, "majority")


def fitting_methods_vs_erm(cfg, records, seeds, metric) -> dict[str, dict[str, list[float]]]:
    """Per-seed ``metric`` of ERM and of each minority-fitting method at every imbalanced ratio,
    keyed ``"<method>, r=<ratio>"`` (the seeds pair them: same training subset per seed)."""
    return {f"{method}, r={r:g}": {"erm": per_seed(records, ("erm", r), seeds, metric),
                                   "method": per_seed(records, (method, r), seeds, metric)}
            for method in ("oversample", "overfit") for r in imbalanced(cfg)}


def figures(arm, cfg, records, seeds) -> list[dict]:
    ratios = list(cfg.train_ratios)
    fig4 = line_figure(
        f"fig4-{arm}", f"Figure 4: training error, minority vs majority, {cfg.model} on {cfg.dataset}",
        "train imbalance ratio", "training error",
        [mean_series(f"{method}, {group.__name__.split('_')[0]}", ratios,
                     [per_seed(records, (method, r), seeds, group) for r in ratios],
                     linestyle="-" if method == "erm" else "--")
         for method in cfg.methods if method != "reweight" for group in (minority_error, majority_error)],
        caption="Error on the distinct training samples (no augmentation), mean ± 1 SE over seeds.")
    fig5 = line_figure(
        f"fig5-{arm}", f"Figure 5: balanced test error by method, {cfg.model} on {cfg.dataset}",
        "train imbalance ratio", "balanced test error",
        [mean_series(method, ratios, [per_seed(records, (method, r), seeds, balanced_test_error)
                                      for r in ratios]) for method in cfg.methods],
        caption="Balanced test set; mean ± 1 SE over seeds.")
    return [fig4, fig5]


def conclude(claim, arm, cfg, records, seeds, verdict):
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, records, seeds), records.values())
    claim.assert_supported()


HARDER_TO_FIT = Rule("training error(minority half) - training error(majority half) under ERM, "
                     f"each train r <= {IMBALANCED_TRAIN_RATIO}")


@pytest.mark.parametrize("arm", ["t3-adult-xgboost", NN_ARM])
@declare_outcomes(HARDER_TO_FIT, alpha=ALPHA)
def test_minority_training_error_exceeds_majority(profile, arm, suite, claim):
    """Section 4.3, Figure 4: "In imbalanced training, the vast majority of the gradient signal
    during training comes from majority class samples since they are seen much more often, making
    it hard to fit minority samples as shown in Figure 4."

    Statistic: under standard training, for every train ratio r <= 0.3 in the grid, a paired
    one-sided t-test over seeds of H1: training error on minority samples - training error on
    majority samples > 0. Holm over train ratios, alpha = 0.05.
    """
    cfg, records = claim.grid(arm)
    values = {r: {"minority": per_seed(records, ("erm", r), claim.seeds, minority_error),
                  "majority": per_seed(records, ("erm", r), claim.seeds, majority_error)}
              for r in imbalanced(cfg)}
    tests = {f"train r={r:g}: minority minus majority": stats.paired_greater(
        v["minority"], v["majority"], ALPHA, rule=HARDER_TO_FIT) for r, v in values.items()}
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on training error (minority minus majority), ERM, "
        f"Holm over train ratios <= {IMBALANCED_TRAIN_RATIO}", claim.seeds,
        {f"r={r:g}": v for r, v in values.items()},
        summary="mean minority/majority training error: " + ", ".join(
            f"r={r:g}: {np.mean(v['minority']):.3f}/{np.mean(v['majority']):.3f}" for r, v in values.items()),
        effect_unit="training error, minority half minus majority half of the classes (> 0 supports)")
    conclude(claim, arm, cfg, records, claim.seeds, verdict)


OVERSAMPLING_HELPS = Rule("balanced test error(ERM) - balanced test error(oversampling), each train "
                          f"r <= {IMBALANCED_TRAIN_RATIO}")


@pytest.mark.parametrize("arm", ["t3-adult-xgboost"])
@declare_outcomes(OVERSAMPLING_HELPS, alpha=ALPHA)
def test_oversampling_improves_xgboost_balanced_error(profile, arm, suite, claim):
    """Section 4.3, Figure 5: "Nonetheless, they fail to improve neural network test performance
    in contrast to XGBoost which benefits from oversampling, as seen in Figure 5."

    Statistic: for every train ratio r <= 0.3 in the grid, a paired one-sided t-test over seeds
    (same training subset per seed) of H1: balanced test error(ERM) - balanced test
    error(oversampling) > 0. Holm over train ratios, alpha = 0.05.
    """
    cfg, records = claim.grid(arm)
    verdict = method_lowers_metric(
        records, claim.seeds, imbalanced(cfg), ("erm", "ERM"), ("oversample", "oversampling"),
        balanced_test_error, "balanced test error",
        f"train ratios <= {IMBALANCED_TRAIN_RATIO}", ALPHA, rule=OVERSAMPLING_HELPS)
    conclude(claim, arm, cfg, records, claim.seeds, verdict)


FITS_THE_MINORITY = Rule("minority training error(ERM) - minority training error(method), each "
                         f"method and train r <= {IMBALANCED_TRAIN_RATIO}")


@pytest.mark.parametrize("arm", [NN_ARM])
@declare_outcomes(FITS_THE_MINORITY, alpha=ALPHA)
def test_oversampling_and_overfitting_fit_the_minority(profile, arm, suite, claim):
    """Section 4.3: "To answer the above question, we train our model using two additional
    methods: (1) oversampling the minority class, and (2) overfitting the training examples using
    a large number of epochs and a small learning rate. Both methods successfully fit minority
    and majority classes."

    Statistic: for each method in {oversampling, overfitting} and every train ratio r <= 0.3 in
    the grid, a paired one-sided t-test over seeds (same training subset per seed) of H1:
    minority training error(ERM) - minority training error(method) > 0. Holm over the
    methods x ratios family, alpha = 0.05.
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_OVERFIT)
    cfg, records = claim.grid(arm)
    per = fitting_methods_vs_erm(cfg, records, claim.seeds, minority_error)
    tests = {f"{k}: ERM minus {k.split(',')[0]}": stats.paired_greater(
        v["erm"], v["method"], ALPHA, rule=FITS_THE_MINORITY) for k, v in per.items()}
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on minority training error (ERM minus method), Holm "
        f"over methods x train ratios <= {IMBALANCED_TRAIN_RATIO}", claim.seeds, per,
        summary="mean minority training error ERM -> method: " + ", ".join(
            f"{k}: {np.mean(v['erm']):.3f} -> {np.mean(v['method']):.3f}" for k, v in per.items()),
        effect_unit="minority training error, ERM minus the method (> 0 supports)")
    conclude(claim, arm, cfg, records, claim.seeds, verdict)


NO_IMPROVEMENT = Rule("balanced test error(ERM) - balanced test error(method), i.e. the method's "
                      f"improvement, each method and train r <= {IMBALANCED_TRAIN_RATIO}", "less",
                      NO_IMPROVEMENT_MARGIN)


@pytest.mark.parametrize("arm", [NN_ARM])
@declare_outcomes(NO_IMPROVEMENT, alpha=ALPHA)
def test_fitting_the_minority_does_not_improve_nn_generalization(profile, arm, suite, claim):
    """Section 4.3, Figure 5: "Nonetheless, they fail to improve neural network test
    performance" and the takeaway "strategies such as oversampling which fit these samples do not
    improve generalization."

    Statistic: for each method in {oversampling, overfitting} and every train ratio r <= 0.3 in
    the grid, a paired one-sided non-superiority t-test over seeds on balanced test error with
    margin 0.01 (1 percentage point): H1: error(ERM) - error(method) < 0.01, i.e. the method's
    improvement over ERM is below one point. Holm over the methods x ratios family, alpha =
    0.05. The paper asserts no improvement and allows a degradation, so a method that is worse
    than ERM never counts against the claim; an improvement of a point or more does. The margin:
    one point of balanced error is the smallest gain the long-tail literature reports as an
    improvement on CIFAR-10 (methods in Cao et al. 2019 and Menon et al. 2021 are separated by
    about a point), and the margin of takeaway 1's "near optimal"; the old 3-point margin let a
    2-3 point gain pass as "no improvement".

    EXPLORATORY: until version 0.4 this was a two-sided TOST with a 3-point margin, which stayed
    green under a 2-3 point improvement and failed on a degradation. The new statistic and
    margin were fixed in version 0.5 (issue 19) before any run at them, but after this arm's
    quick-scale results on seeds 0-4 were seen under the old one.
    """
    claim.mark_exploratory(
        "the statistic went from a two-sided TOST (margin 3 points) to one-sided non-superiority "
        "(margin 1 point) in version 0.5, after the quick arm was seen on seeds 0-4 under the old "
        "statistic; a degradation no longer counts against the claim", looked_at_seeds=range(5))
    claim.expect_failure_at_quick_scale(QUICK_SCALE_OVERSAMPLING)
    cfg, records = claim.grid(arm)
    per = fitting_methods_vs_erm(cfg, records, claim.seeds, balanced_test_error)
    verdict = no_improvement_verdict(per, claim.seeds)
    conclude(claim, arm, cfg, records, claim.seeds, verdict)


def no_improvement_verdict(per: dict[str, dict[str, list[float]]], seeds) -> stats.Verdict:
    """The non-superiority family of the claim above, from per-seed balanced test errors of ERM
    and of each method, keyed ``"<method>, r=<ratio>"``."""
    tests = {f"{k}: improvement of {k.split(',')[0]} over ERM < {NO_IMPROVEMENT_MARGIN:g}":
             stats.paired_less(v["erm"], v["method"], ALPHA, margin=NO_IMPROVEMENT_MARGIN,
                               rule=NO_IMPROVEMENT)
             for k, v in per.items()}
    return stats.family_verdict(
        tests, ALPHA, f"paired one-sided non-superiority t on balanced test error (ERM minus "
        f"method) < {NO_IMPROVEMENT_MARGIN}, Holm over methods x train ratios <= "
        f"{IMBALANCED_TRAIN_RATIO}", seeds, per,
        summary="mean balanced test error ERM vs method: " + ", ".join(
            f"{k}: {np.mean(v['erm']):.3f} vs {np.mean(v['method']):.3f}" for k, v in per.items()),
        effect_unit=f"balanced test error, ERM minus the method: its improvement (< "
                    f"{NO_IMPROVEMENT_MARGIN} supports)")
