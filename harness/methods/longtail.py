"""The long-tail baselines people compare against, each one class.

``n_c`` is the number of training rows of class ``c`` (``state.class_counts``) and
``pi_c = n_c / n`` the training prior. Formulas (tested in ``tests/test_longtail.py``):

* ``logit_adjustment`` (Menon et al. 2021, post-hoc): train as ERM, predict
  ``argmax_c  f_c(x) - tau * log pi_c``;
* ``logit_adjusted_loss`` (Menon et al. 2021): cross-entropy of ``f(x) + tau * log pi``;
* ``balanced_softmax`` (Ren et al. 2020): cross-entropy of ``f(x) + log n`` (the logit-adjusted
  loss at ``tau = 1``: ``log pi`` and ``log n`` differ by a constant, which softmax ignores);
* ``ldam_drw`` (Cao et al. 2019): cross-entropy of ``s * (f(x) - m_y e_y)`` with margins
  ``m_c = C / n_c^(1/4)`` scaled so the largest is ``ldam_max_margin``; from the epoch at
  ``drw_start`` of training on, rows are weighted by their class's effective-number weight
  (deferred re-weighting);
* ``focal`` (Lin et al. 2017): ``(1 - p_y)^gamma * CE``;
* ``class_balanced`` (Cui et al. 2019): rows weighted by ``w_c = (1 - beta) / (1 - beta^n_c)``,
  scaled so that the weights sum to the number of classes over the classes (cross-entropy;
  applies to any model that takes row weights, XGBoost included).
"""

from __future__ import annotations

import math

import numpy as np

from .base import Method, TrainingState, TrainPlan, register


def log_prior(state: TrainingState):
    """``log pi_c`` of the training rows, as a tensor on the logits' device."""
    counts = state.class_counts.float()
    return (counts / counts.sum()).log()


def effective_number_weights(counts, beta: float) -> np.ndarray:
    """Cui et al.'s class weights ``(1 - beta) / (1 - beta^n_c)``, normalized to sum to ``C``.

    Classes with no rows get weight 0 (they never appear in the loss)."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    raw = np.zeros_like(counts)
    raw[present] = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
    return raw * present.sum() / raw.sum()


@register
class LogitAdjustment(Method):
    """Post-hoc logit adjustment (Menon et al. 2021): ERM's network, logits minus tau log prior."""

    name = "logit_adjustment"
    requires = frozenset({"rows", "logits"})
    reference = "Menon et al. 2021 (post-hoc)"
    settings = {"logit_adjustment_tau": 1.0}  # tau: strength of the prior correction (1: Bayes-optimal for balanced error)
    trains_like = "erm"

    def adjust_logits(self, logits, state: TrainingState):
        return logits - self.settings["logit_adjustment_tau"] * log_prior(state).to(logits.device)


@register
class LogitAdjustedLoss(Method):
    """The logit-adjusted cross-entropy (Menon et al. 2021): train on ``f(x) + tau log pi``."""

    name = "logit_adjusted_loss"
    requires = frozenset({"rows", "loss"})
    reference = "Menon et al. 2021 (loss)"
    settings = {"logit_adjusted_loss_tau": 1.0}  # tau: strength of the prior in the loss

    def loss(self, logits, labels, state: TrainingState):
        import torch.nn.functional as F

        shifted = logits + self.settings["logit_adjusted_loss_tau"] * log_prior(state)
        return F.cross_entropy(shifted, labels, reduction="none")


@register
class BalancedSoftmax(Method):
    """Balanced softmax (Ren et al. 2020): cross-entropy of ``f(x) + log n_c``."""

    name = "balanced_softmax"
    requires = frozenset({"rows", "loss"})
    reference = "Ren et al. 2020"

    def loss(self, logits, labels, state: TrainingState):
        import torch.nn.functional as F

        return F.cross_entropy(logits + state.class_counts.float().log(), labels, reduction="none")


@register
class LDAMDRW(Method):
    """LDAM loss with deferred re-weighting (Cao et al. 2019).

    Cao et al. scale the logits of a cosine classifier by ``s = 30``; our networks keep their
    linear classifier, whose logits are not normalized, so ``s = 1`` and the margins are in
    logit units (largest 0.5, as theirs). Re-weighting starts at 80% of training (their epoch
    160 of 200) with effective-number weights at ``beta = 0.9999``.
    """

    name = "ldam_drw"
    requires = frozenset({"rows", "loss", "loop"})
    reference = "Cao et al. 2019"
    settings = {
        "ldam_max_margin": 0.5,   # margin of the rarest class, in logit units
        "ldam_scale": 1.0,        # s: logits multiplied by this (30 in Cao et al., cosine classifier)
        "drw_start": 0.8,         # re-weighting from this fraction of the epochs on
        "drw_beta": 0.9999,       # effective-number beta of the deferred weights
    }

    def margins(self, state: TrainingState):
        counts = state.class_counts.float().clamp(min=1)
        margins = counts.pow(-0.25)
        return margins * (self.settings["ldam_max_margin"] / margins.max())

    def prepare(self, state: TrainingState) -> dict:
        state.extra["margins"] = self.margins(state)
        return {}

    def epoch_start(self, state: TrainingState, epoch: int) -> None:
        import torch

        if epoch == math.floor(self.settings["drw_start"] * state.epochs) and epoch > 0:
            weights = effective_number_weights(state.class_counts.cpu().numpy(),
                                               self.settings["drw_beta"])
            per_class = torch.as_tensor(weights, dtype=torch.float32, device=state.labels.device)
            base = state.weights if state.weights is not None else 1.0
            state.weights = per_class[state.labels] * base

    def loss(self, logits, labels, state: TrainingState):
        import torch.nn.functional as F

        margins = state.extra.get("margins")
        if margins is None:
            margins = self.margins(state)
        shifted = logits - F.one_hot(labels, logits.shape[1]) * margins.to(logits.device)[labels, None]
        return F.cross_entropy(self.settings["ldam_scale"] * shifted, labels, reduction="none")


@register
class Focal(Method):
    """Focal loss (Lin et al. 2017): ``(1 - p_y)^gamma`` times the cross-entropy."""

    name = "focal"
    requires = frozenset({"rows", "loss"})
    reference = "Lin et al. 2017"
    settings = {"focal_gamma": 2.0}  # gamma: how strongly well-classified rows are down-weighted (Lin et al.'s default)

    def loss(self, logits, labels, state: TrainingState):
        import torch.nn.functional as F

        ce = F.cross_entropy(logits, labels, reduction="none")
        return (1.0 - (-ce).exp()).pow(self.settings["focal_gamma"]) * ce


@register
class ClassBalanced(Method):
    """Class-balanced re-weighting by the effective number of samples (Cui et al. 2019)."""

    name = "class_balanced"
    reference = "Cui et al. 2019"
    settings = {"class_balanced_beta": 0.9999}  # beta: effective-number decay (Cui et al.'s CIFAR value)

    def rows(self, y, rng):
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        weights = effective_number_weights(counts, self.settings["class_balanced_beta"])
        return TrainPlan(np.arange(len(y)), weights[inverse].astype(np.float64))
