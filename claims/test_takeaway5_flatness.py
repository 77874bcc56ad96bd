"""Takeaway 5: under class imbalance minima are flatter (the network is more underspecified).

Protocol (Figure 7): CIFAR-10 at a fixed training size, standard training on a balanced and on a
highly imbalanced training set, five seeds. After training, the ten largest eigenvalues of the
Hessian of the mean cross-entropy on the model's own training data (1,000 un-augmented training
images, BatchNorm in eval mode; Lanczos on Hessian-vector products, :mod:`harness.flatness`), and
the loss along one filter-normalized random direction (Figure 7b, shown, not tested).

The Bayesian-inference arms of this takeaway (Figure 8: diagonal Laplace, SGHMC) are not here yet.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import stats
from harness.protocols import per_seed
from harness.report import line_figure, mean_series

TAKEAWAY = "5"
ALPHA = 0.05


def top_eigenvalues(record) -> list[float]:
    return record["metrics"]["extra"]["hessian_top_eigenvalues"]


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
    first = records[("erm", ratios[0], seeds[0])]["metrics"]["extra"]["loss_along_direction"]["alpha"]
    fig7b = line_figure(
        f"fig7b-{arm}", f"Figure 7b: loss along a filter-normalized direction, {cfg.model}",
        "step along the direction (alpha)", "training loss", [
            mean_series(f"train r={r:g}", first,
                        [[records[("erm", r, s)]["metrics"]["extra"]["loss_along_direction"]["loss"][i]
                          for s in seeds] for i in range(len(first))]) for r in ratios],
        xscale="linear", caption="One random direction per seed, rescaled filter by filter.")
    return [fig7a, fig7b]


@pytest.mark.parametrize("arm", ["t5-cifar10-flatness"])
def test_imbalanced_training_gives_lower_top_hessian_eigenvalues(profile, arm, suite, claim):
    """Section 7, Figure 7a: "We thus measure the 10 leading singular values of the Hessian on
    models trained on balanced or highly imbalanced CIFAR-10 data, where the loss function is
    evaluated on the models' respective training data. We observe in Figure 7a that imbalanced
    data leads to *lower* singular values."

    Statistic: per seed, the mean of the ten largest Hessian eigenvalues; for every imbalanced
    train ratio r in the grid, a one-sided t-test over seeds (paired by seed index) of H1:
    mean top-10 eigenvalue(balanced) - mean top-10 eigenvalue(r) > 0, Holm, alpha = 0.05.
    Supported when every comparison rejects. Refuted when the imbalanced model's top eigenvalues
    are not significantly lower.
    """
    cfg, records = suite.grid(profile, arm)
    balanced = per_seed(records, ("erm", 1.0), suite.seeds, mean_top)
    family = [r for r in cfg.train_ratios if r < 1]
    values = {r: per_seed(records, ("erm", r), suite.seeds, mean_top) for r in family}
    tests = {f"balanced minus train r={r:g}": stats.paired_greater(balanced, v, ALPHA)
             for r, v in values.items()}
    verdict = stats.family_verdict(
        tests, ALPHA, "one-sided t over seeds on the mean top-10 Hessian eigenvalue (balanced "
        "minus imbalanced), Holm over imbalanced train ratios", suite.seeds,
        {"r=1": balanced, **{f"r={r:g}": v for r, v in values.items()}},
        summary=f"mean top-10 eigenvalue: balanced {np.mean(balanced):.3f}; " + ", ".join(
            f"r={r:g} {np.mean(v):.3f}" for r, v in values.items()))
    claim.conclude(TAKEAWAY, arm, verdict, figures(arm, cfg, records, suite.seeds), records.values())
    assert verdict.supported, claim.explain()
