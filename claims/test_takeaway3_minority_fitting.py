"""Takeaway 3: minority samples are hard to fit; oversampling fits them. For XGBoost it also helps.

Protocol (Figures 4 and 5): Figure 1's ratio grid on Adult with XGBoost, under standard training
(ERM, shared with takeaway 1), random oversampling and inverse-frequency loss re-weighting. Training
error is measured on the distinct training samples; test error on the balanced test set.
"""

from __future__ import annotations

import numpy as np

from harness import stats
from harness.protocols import arm_config, balanced_test_error, per_seed, train_class_error
from harness.report import line_figure, mean_series

TAKEAWAY = "3"
ARM = "t3-adult-xgboost"
ALPHA = 0.05
IMBALANCED_TRAIN_RATIO = 0.3  # train ratios at or below this form each claim's family
MAJORITY, MINORITY = 0, 1


def figures(cfg, records, seeds) -> list[dict]:
    ratios = list(cfg.train_ratios)
    fig4 = line_figure(
        f"fig4-{ARM}", f"Figure 4: training error by class, {cfg.model} on {cfg.dataset}",
        "train imbalance ratio", "training error",
        [mean_series(f"{method}, {name}", ratios,
                     [per_seed(records, (method, r), seeds, lambda rec, c=label: train_class_error(rec, c))
                      for r in ratios], linestyle="-" if method == "erm" else "--")
         for method in ("erm", "oversample") for label, name in ((MINORITY, "minority"), (MAJORITY, "majority"))],
        caption="Error on the distinct training samples, mean ± 1 SE over seeds.")
    fig5 = line_figure(
        f"fig5-{ARM}", f"Figure 5: balanced test error by method, {cfg.model} on {cfg.dataset}",
        "train imbalance ratio", "balanced test error",
        [mean_series(method, ratios, [per_seed(records, (method, r), seeds, balanced_test_error)
                                      for r in ratios]) for method in cfg.methods],
        caption="Balanced test set; mean ± 1 SE over seeds.")
    return [fig4, fig5]


def test_minority_training_error_exceeds_majority(profile, suite, claim):
    """Section 4.3, Figure 4: "In imbalanced training, the vast majority of the gradient signal
    during training comes from majority class samples since they are seen much more often, making
    it hard to fit minority samples as shown in Figure 4."

    Statistic: under standard training, for every train ratio r <= 0.3 in the grid, a paired
    one-sided t-test over seeds of H1: training error on minority samples - training error on
    majority samples > 0. Holm over train ratios, alpha = 0.05; supported when every comparison
    rejects. Refuted when at some imbalanced ratio the minority is not fit significantly worse.
    """
    cfg = arm_config(profile, ARM)
    records = suite.ratio_grid(cfg)
    family = [r for r in cfg.train_ratios if r <= IMBALANCED_TRAIN_RATIO]
    values = {r: {name: per_seed(records, ("erm", r), suite.seeds,
                                 lambda rec, c=label: train_class_error(rec, c))
                  for label, name in ((MINORITY, "minority"), (MAJORITY, "majority"))}
              for r in family}
    tests = {f"train r={r:g}: minority minus majority": stats.paired_greater(
        values[r]["minority"], values[r]["majority"], ALPHA) for r in family}
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on training error (minority minus majority), ERM, "
        f"Holm over train ratios <= {IMBALANCED_TRAIN_RATIO}", suite.seeds,
        {f"r={r:g}": v for r, v in values.items()},
        summary="mean minority/majority training error: " + ", ".join(
            f"r={r:g}: {np.mean(v['minority']):.3f}/{np.mean(v['majority']):.3f}" for r, v in values.items()))
    claim.conclude(TAKEAWAY, ARM, verdict, figures(cfg, records, suite.seeds), records.values())
    assert verdict.supported, claim.explain()


def test_oversampling_improves_xgboost_balanced_error(profile, suite, claim):
    """Section 4.3, Figure 5: "Nonetheless, they fail to improve neural network test performance
    in contrast to XGBoost which benefits from oversampling, as seen in Figure 5."

    Statistic: for every train ratio r <= 0.3 in the grid, a paired one-sided t-test over seeds
    (same training subset per seed) of H1: balanced test error(ERM) - balanced test
    error(oversampling) > 0. Holm over train ratios, alpha = 0.05; supported when every
    comparison rejects. Refuted when at some imbalanced ratio oversampling does not significantly
    lower XGBoost's balanced test error.
    """
    cfg = arm_config(profile, ARM)
    records = suite.ratio_grid(cfg)
    family = [r for r in cfg.train_ratios if r <= IMBALANCED_TRAIN_RATIO]
    values = {r: {m: per_seed(records, (m, r), suite.seeds, balanced_test_error)
                  for m in ("erm", "oversample")} for r in family}
    tests = {f"train r={r:g}: ERM minus oversampling": stats.paired_greater(
        values[r]["erm"], values[r]["oversample"], ALPHA) for r in family}
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on balanced test error (ERM minus oversampling), "
        f"Holm over train ratios <= {IMBALANCED_TRAIN_RATIO}", suite.seeds,
        {f"r={r:g}": v for r, v in values.items()},
        summary="mean balanced error ERM/oversampling: " + ", ".join(
            f"r={r:g}: {np.mean(v['erm']):.3f}/{np.mean(v['oversample']):.3f}" for r, v in values.items()))
    claim.conclude(TAKEAWAY, ARM, verdict, figures(cfg, records, suite.seeds), records.values())
    assert verdict.supported, claim.explain()
