"""The long-tail baselines people compare against, each one class.

``n_c`` is the number of training rows of class ``c`` (``state.class_counts``) and
``pi_c = n_c / n`` the training prior. Formulas (tested in ``tests/test_longtail.py``):

* ``logit_adjustment`` (Menon et al. 2021, post-hoc): train as ERM, predict
  ``argmax_c  f_c(x) - tau * log pi_c``;
* ``logit_adjusted_loss`` (Menon et al. 2021): cross-entropy of ``f(x) + tau * log pi``;
* ``balanced_softmax`` (Ren et al. 2020): cross-entropy of ``f(x) + log n`` (the logit-adjusted
  loss at ``tau = 1``: ``log pi`` and ``log n`` differ by a constant, which softmax ignores);
* ``ldam_drw`` (Cao et al. 2019): a cosine classifier ``f_c(x) = cos(features, w_c)`` and the
  cross-entropy of ``s * (f(x) - m_y e_y)``, ``s = 30``, with margins ``m_c = C / n_c^(1/4)``
  scaled so the largest is ``max_margin``; from the epoch at ``drw_start`` of training on,
  each row's loss is weighted by its class's effective-number weight and a batch's loss is
  ``sum(w_i l_i) / sum(w_i)`` (deferred re-weighting);
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
    zoo = True  # a baseline of the methods-under-test zoo
    requires = frozenset({"rows", "logits"})
    reference = "Menon et al. 2021 (post-hoc)"
    settings = {"tau": 1.0}  # tau: strength of the prior correction (1: Bayes-optimal for balanced error)
    trains_like = "erm"

    def adjust_logits(self, logits, state: TrainingState):
        return logits - self.settings["tau"] * log_prior(state).to(logits.device)


@register
class LogitAdjustedLoss(Method):
    """The logit-adjusted cross-entropy (Menon et al. 2021): train on ``f(x) + tau log pi``."""

    name = "logit_adjusted_loss"
    zoo = True  # a baseline of the methods-under-test zoo
    requires = frozenset({"rows", "loss"})
    reference = "Menon et al. 2021 (loss)"
    settings = {"tau": 1.0}  # tau: strength of the prior in the loss

    def loss(self, logits, labels, state: TrainingState):
        import torch.nn.functional as F

        shifted = logits + self.settings["tau"] * log_prior(state)
        return F.cross_entropy(shifted, labels, reduction="none")


@register
class BalancedSoftmax(Method):
    """Balanced softmax (Ren et al. 2020): cross-entropy of ``f(x) + log n_c``."""

    name = "balanced_softmax"
    zoo = True  # a baseline of the methods-under-test zoo
    requires = frozenset({"rows", "loss"})
    reference = "Ren et al. 2020"

    def loss(self, logits, labels, state: TrainingState):
        import torch.nn.functional as F

        return F.cross_entropy(logits + state.class_counts.float().log(), labels, reduction="none")


@register
class LDAMDRW(Method):
    """LDAM loss with deferred re-weighting (Cao et al. 2019), as their code trains CIFAR.

    The network's final layer becomes a cosine classifier (:class:`harness.nn.networks.CosineClassifier`,
    their ``NormedLinear``): logits are cosines in [-1, 1], the true class's margin is subtracted
    and the result scaled by ``s = 30`` before the cross-entropy, so that a margin of 0.5 is a
    large share of the logit range (on an unnormalized linear head a fixed margin in logit units
    fades as the logits grow). From 80% of training on (their epoch 160 of 200), rows are
    weighted by effective-number weights at ``beta = 0.9999``, and a batch's loss is divided by
    the batch's sum of weights, as ``F.cross_entropy(weight=...)`` does: re-weighting shifts the
    balance between classes, not the effective learning rate (a mean of ``w * loss`` shrinks it
    to the batch's mean weight, 0.17x at r = 0.01 on CIFAR-10).
    """

    name = "ldam_drw"
    zoo = True  # a baseline of the methods-under-test zoo
    version = "2"  # 2: cosine classifier with s = 30; DRW normalized by the batch's weight sum
    requires = frozenset({"rows", "loss", "loop", "encoder"})  # encoder: its classifier is replaced
    reference = "Cao et al. 2019"
    settings = {
        "max_margin": 0.5,        # margin of the rarest class, in cosine units
        "scale": 30.0,            # s: cosine logits multiplied by this (Cao et al.)
        "drw_start": 0.8,         # re-weighting from this fraction of the epochs on
        "drw_beta": 0.9999,       # effective-number beta of the deferred weights
    }

    def margins(self, state: TrainingState):
        counts = state.class_counts.float().clamp(min=1)
        margins = counts.pow(-0.25)
        return margins * (self.settings["max_margin"] / margins.max())

    def prepare(self, state: TrainingState) -> dict:
        from ..nn.networks import use_cosine_classifier

        use_cosine_classifier(state.net)
        state.extra["margins"] = self.margins(state)
        return {"classifier": "cosine"}

    def epoch_start(self, state: TrainingState, epoch: int) -> None:
        import torch

        if epoch == math.floor(self.settings["drw_start"] * state.epochs) and epoch > 0:
            weights = effective_number_weights(state.class_counts.cpu().numpy(),
                                               self.settings["drw_beta"])
            state.extra["drw_weights"] = torch.as_tensor(weights, dtype=torch.float32,
                                                         device=state.labels.device)

    def loss(self, logits, labels, state: TrainingState):
        """Per-row LDAM loss; in the re-weighting phase ``w_y * loss / mean(w_y)`` over the
        batch, whose mean (what a step minimizes) is ``sum(w l) / sum(w)``."""
        import torch.nn.functional as F

        margins = state.extra.get("margins")
        if margins is None:
            margins = self.margins(state)
        shifted = logits - F.one_hot(labels, logits.shape[1]) * margins.to(logits.device)[labels, None]
        loss = F.cross_entropy(self.settings["scale"] * shifted, labels, reduction="none")
        weights = state.extra.get("drw_weights")
        if weights is None:
            return loss
        w = weights.to(logits.device)[labels]
        return w * loss / w.mean()


@register
class Focal(Method):
    """Focal loss (Lin et al. 2017): ``(1 - p_y)^gamma`` times the cross-entropy."""

    name = "focal"
    zoo = True  # a baseline of the methods-under-test zoo
    requires = frozenset({"rows", "loss"})
    reference = "Lin et al. 2017"
    settings = {"gamma": 2.0}  # gamma: how strongly well-classified rows are down-weighted (Lin et al.'s default)

    def loss(self, logits, labels, state: TrainingState):
        import torch.nn.functional as F

        ce = F.cross_entropy(logits, labels, reduction="none")
        return (1.0 - (-ce).exp()).pow(self.settings["gamma"]) * ce


@register
class ClassBalanced(Method):
    """Class-balanced re-weighting by the effective number of samples (Cui et al. 2019)."""

    name = "class_balanced"
    zoo = True  # a baseline of the methods-under-test zoo
    reference = "Cui et al. 2019"
    settings = {"beta": 0.9999}  # beta: effective-number decay (Cui et al.'s CIFAR value)

    def rows(self, y, rng):
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        weights = effective_number_weights(counts, self.settings["beta"])
        return TrainPlan(np.arange(len(y)), weights[inverse].astype(np.float64))
