"""Takeaway 4: SimCLR pre-training on the imbalanced training set, then supervised fine-tuning
on the same data, beats supervised training and oversampling.

Protocol (Figure 6): binary CIFAR-10 (airplane = majority, automobile = minority) at a fixed
training size across train imbalance ratios; balanced test error on the largest balanced test
set. Arms share each seed's training subset: standard supervised training (ERM), random
oversampling (an epoch sampler, ERM's epoch length; imbalanced ratios only), and SimCLR
(:mod:`harness.nn.simclr`) pre-trained on that subset's images, then fine-tuned end to end with the
supervised recipe (same epochs and learning rate as ERM; only the initialization differs). Each
SimCLR run also fits a linear probe on its frozen pre-trained encoder (Figure 6's second
routine), reported alongside. The ImageNet SimCLR baseline runs when ``--simclr-weights FILE``
names weights for the arm's network, and skips with a reason otherwise.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.judging import stats
from harness.judging.stats import Rule, declare_outcomes
from harness.experiments.protocols import balanced_test_error, per_seed, variant_balanced_test_error
from harness.judging.report import line_figure, mean_series

TAKEAWAY = "4"
ALPHA = 0.05
NEAR_IMAGENET_MARGIN = 0.05  # "almost as high performance": within 5 pp balanced error

linear_probe_error = variant_balanced_test_error("linear_probe")

# Why the quick arm is expected not to hold (the live numbers are in its verdict; every scale
# searched, binary CIFAR-10 with the width-16 CNN on 1,000 images, is in claims/evidence/ with its
# numbers). In version 0.3 SimCLR seemed to close in on supervised training as pre-training grew
# (seed 0 only); re-run in version 0.5 at 2 seeds, no budget up to 400 SimCLR epochs supports it.
QUICK_SCALE_SSL = (
    "not expected at CPU quick scale: SimCLR on 1,000 small images (30 pre-training epochs here) "
    "learns weaker features than supervised training. Searched: 15, 25 and 40 supervised epochs "
    "around this arm's 20 (15 at 5 seeds, the others at 2), and at 2 seeds 32 px, 100 / 200 / 400 "
    "SimCLR epochs, SimCLR's fine-tuning learning rate x0.1 and x0.3, and every arm's learning "
    "rate x0.1 and x0.3; the full ResNet-34 profile (32 px, 5,000 images, 200 SimCLR epochs) is "
    "where it is tested.")


def arm_series(records, cfg, seeds, method, metric, label) -> dict:
    xs = cfg.ratios_for(method)
    return mean_series(label, xs, [per_seed(records, (method, r), seeds, metric) for r in xs])


def figure6(arm, cfg, records, seeds, imagenet=None) -> dict:
    series = [arm_series(records, cfg, seeds, "erm", balanced_test_error, "supervised"),
              arm_series(records, cfg, seeds, "oversample", balanced_test_error, "oversampling"),
              arm_series(records, cfg, seeds, "simclr", balanced_test_error, "SimCLR + fine-tuning"),
              arm_series(records, cfg, seeds, "simclr", linear_probe_error, "SimCLR + linear probe")]
    if imagenet is not None:
        icfg, irecords = imagenet
        series += [arm_series(irecords, icfg, seeds, "simclr_imagenet", balanced_test_error,
                              "ImageNet SimCLR + fine-tuning"),
                   arm_series(irecords, icfg, seeds, "simclr_imagenet", linear_probe_error,
                              "ImageNet SimCLR + linear probe")]
    return line_figure(
        f"fig6-{arm}", f"Figure 6: SSL pre-training, {cfg.model} on {cfg.dataset}",
        "train imbalance ratio", "balanced test error", series,
        caption="Pre-training and fine-tuning on the same imbalanced training set; balanced test "
                "set; mean ± 1 SE over seeds.")


SSL_BEATS_BASELINES = Rule("balanced test error(supervised, or oversampling) - balanced test "
                           "error(SimCLR + fine-tuning), each train ratio")


@pytest.mark.parametrize("arm", ["t4-cifar10-binary-ssl"])
@declare_outcomes(SSL_BEATS_BASELINES, alpha=ALPHA)
def test_ssl_pretraining_then_fine_tuning_beats_supervised_and_oversampling(profile, arm, suite, claim):
    """Section 5, Figure 6: "our two-step procedure which uses SSL pre-training on the small
    imbalanced CIFAR-10 dataset achieves almost as high performance as ImageNet pre-training and
    far superior performance to standard supervised learning and oversampling, even when the
    training set is relatively balanced."

    Statistic: balanced test error, paired by seed (same training subset). For every train ratio
    r in the grid a one-sided paired t-test of H1: error(ERM) - error(SimCLR + fine-tuning) > 0,
    and for every imbalanced r one of H1: error(oversampling) - error(SimCLR + fine-tuning) > 0;
    Holm over all of them, alpha = 0.05. The linear probe is shown, not tested.
    """
    claim.expect_failure_at_quick_scale(QUICK_SCALE_SSL)
    cfg, records = claim.grid(arm)
    seeds = claim.seeds
    values = {(m, r): per_seed(records, (m, r), seeds, balanced_test_error)
              for m in cfg.methods for r in cfg.ratios_for(m)}
    tests = {}
    for r in cfg.train_ratios:
        for baseline, name in (("erm", "supervised"), ("oversample", "oversampling")):
            if (baseline, r) in values:
                tests[f"train r={r:g}: {name} minus SimCLR fine-tune"] = stats.paired_greater(
                    values[(baseline, r)], values[("simclr", r)], ALPHA, rule=SSL_BEATS_BASELINES)
    probe = {r: per_seed(records, ("simclr", r), seeds, linear_probe_error) for r in cfg.train_ratios}
    verdict = stats.family_verdict(
        tests, ALPHA, "paired one-sided t on balanced test error (baseline minus SimCLR + "
        "fine-tuning), Holm over baselines and train ratios", seeds,
        {f"{m} r={r:g}": v for (m, r), v in values.items()} |
        {f"linear probe r={r:g}": v for r, v in probe.items()},
        summary="mean balanced error supervised/oversampling/SimCLR fine-tune/linear probe: " + ", ".join(
            f"r={r:g}: " + "/".join(f"{np.mean(values[(m, r)]):.4f}" if (m, r) in values else "-"
                                    for m in ("erm", "oversample", "simclr")) + f"/{np.mean(probe[r]):.4f}"
            for r in cfg.train_ratios),
        effect_unit="balanced test error, baseline minus SimCLR + fine-tuning (> 0 supports)")
    claim.conclude(TAKEAWAY, arm, verdict, [figure6(arm, cfg, records, seeds)], records.values())
    claim.assert_supported()


NEAR_IMAGENET = Rule("balanced test error(in-domain SimCLR) - balanced test error(ImageNet SimCLR), "
                     "each train ratio", "less", NEAR_IMAGENET_MARGIN)


@pytest.mark.needs_simclr_weights
@pytest.mark.parametrize("arm", ["t4-cifar10-binary-ssl"])
@declare_outcomes(NEAR_IMAGENET, alpha=ALPHA)
def test_in_domain_ssl_comes_close_to_imagenet_pretraining(profile, arm, suite, claim):
    """Section 5, Figure 6: "our two-step procedure which uses SSL pre-training on the small
    imbalanced CIFAR-10 dataset achieves almost as high performance as ImageNet pre-training."

    Statistic: balanced test error, paired by seed; for every train ratio r a one-sided paired
    t-test (non-inferiority) of H1: error(SimCLR on the training set + fine-tuning) -
    error(ImageNet SimCLR + fine-tuning) < 0.05 (the margin reading "almost as high"), Holm,
    alpha = 0.05. Needs ``--simclr-weights``; skipped with a reason without it.
    """
    weights = claim.simclr_weights()
    cfg, records = claim.grid(arm)
    icfg = dataclasses.replace(cfg, methods=("simclr_imagenet",), imbalanced_only=(),
                               method_settings=(("simclr_imagenet", tuple(weights.items())),))
    icfg, irecords = claim.grid(arm, icfg)
    seeds = claim.seeds
    own = {r: per_seed(records, ("simclr", r), seeds, balanced_test_error) for r in cfg.train_ratios}
    imagenet = {r: per_seed(irecords, ("simclr_imagenet", r), seeds, balanced_test_error)
                for r in cfg.train_ratios}
    tests = {f"train r={r:g}: in-domain minus ImageNet SimCLR": stats.paired_less(
        own[r], imagenet[r], ALPHA, margin=NEAR_IMAGENET_MARGIN, rule=NEAR_IMAGENET)
        for r in cfg.train_ratios}
    verdict = stats.family_verdict(
        tests, ALPHA, f"paired one-sided t (non-inferiority, margin {NEAR_IMAGENET_MARGIN}) on "
        "balanced test error, Holm over train ratios", seeds,
        {f"in-domain r={r:g}": own[r] for r in own} | {f"ImageNet r={r:g}": imagenet[r] for r in imagenet},
        summary="mean balanced error in-domain/ImageNet SimCLR: " + ", ".join(
            f"r={r:g}: {np.mean(own[r]):.4f}/{np.mean(imagenet[r]):.4f}" for r in cfg.train_ratios),
        effect_unit=f"balanced test error, in-domain minus ImageNet SimCLR (< {NEAR_IMAGENET_MARGIN} supports)")
    claim.conclude(TAKEAWAY, arm, verdict, [figure6(arm, cfg, records, seeds, (icfg, irecords))],
                   list(records.values()) + list(irecords.values()))
    claim.assert_supported()
