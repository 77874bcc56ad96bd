"""The paper's methods that pick rows or change how a network trains: ERM, oversampling,
re-weighting, overfitting, SAM and asymmetric SAM."""

from __future__ import annotations

import numpy as np

from .base import Method, TrainingState, TrainPlan, register


@register
class ERM(Method):
    """Standard training: every sample once, unweighted, cross-entropy, SGD."""

    name = "erm"


@register
class Oversample(Method):
    """Random oversampling to balance: every class is topped up to the largest class's count.

    Each class keeps all of its samples once and draws the shortfall uniformly with replacement
    from its own samples. Models without epochs (XGBoost, SVM) train on the duplicated rows.
    Neural networks use it as a sampler: each epoch draws ``len(y)`` rows from the balanced list,
    so an epoch is class-balanced and has as many steps as standard training (otherwise
    oversampling would also mean training for several times more steps).
    """

    name = "oversample"

    def rows(self, y, rng):
        classes, counts = np.unique(y, return_counts=True)
        target = counts.max()
        parts = []
        for c, n in zip(classes, counts):
            members = np.flatnonzero(y == c)
            parts += [members, rng.choice(members, size=int(target - n), replace=True)]
        return TrainPlan(np.sort(np.concatenate(parts)), epoch_size=len(y))


@register
class Reweight(Method):
    """Loss re-weighting by inverse class frequency, ``w_c = n / (C * n_c)`` (mean weight 1)."""

    name = "reweight"

    def rows(self, y, rng):
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        weights = len(y) / (len(classes) * counts)
        return TrainPlan(np.arange(len(y)), weights[inverse].astype(np.float64))


@register
class Overfit(Method):
    """Every sample once, trained with a small learning rate for many epochs, stopping after the
    first epoch whose un-augmented training error is zero (Figure 4's "overfitting")."""

    name = "overfit"
    requires = frozenset({"rows", "loop"})
    settings = {
        "lr_scale": 0.1,   # learning rate multiplied by this
        "epoch_scale": 3,  # epochs multiplied by this (stops once train error is 0)
    }

    @classmethod
    def training_passes(cls, images: int, epochs: int, settings: dict) -> float:
        # An upper bound: it stops once the training set is fit.
        return float(images * epochs * settings["epoch_scale"])

    def prepare(self, state: TrainingState) -> dict:
        state.epochs = int(state.epochs * self.settings["epoch_scale"])
        state.lr = state.lr * self.settings["lr_scale"]
        state.stop_when_fit = True
        return {}


@register
class SAM(Method):
    """Sharpness-aware minimization (Foret et al. 2020; :mod:`harness.nn.sam`) with one radius."""

    name = "sam"
    requires = frozenset({"rows", "step"})
    reference = "Foret et al. 2021"
    settings = {
        "rho": 0.05,  # ascent radius, L2 over all weights (Foret et al.'s CIFAR value)
    }
    # The toy 2D MLP (Figure 9): a larger radius for its full-batch steps.
    model_settings = {"mlp2d": {"rho": 0.1}}
    minority_scale_key = None  # asymmetric SAM names its minority radius multiplier

    @classmethod
    def training_passes(cls, images: int, epochs: int, settings: dict) -> float:
        return 2.0 * images * epochs  # an ascent step and a descent step

    def prepare(self, state: TrainingState) -> dict:
        from ..nn.sam import minority_half_radii

        scale = self.settings[self.minority_scale_key] if self.minority_scale_key else 1.0
        state.extra["radii"] = minority_half_radii(state.labels, state.num_classes,
                                                   self.settings["rho"], scale)
        # One radius for every sample (plain SAM): each batch takes the one-backward path, known
        # here, so a step need not read the radii back from the device to find out (a sync).
        state.extra["uniform_radii"] = True if scale == 1.0 or self.settings["rho"] == 0 else None
        return {}

    def step(self, state: TrainingState, per_sample_loss, idx, optimizer) -> None:
        from ..nn.sam import sam_step

        radii = state.extra["radii"]
        sam_step(state.params, per_sample_loss, radii if idx is None else radii[idx], optimizer,
                 uniform=state.extra["uniform_radii"])


@register
class AsymmetricSAM(SAM):
    """SAM with a larger ascent radius for the rarer half of the classes (Section 7)."""

    name = "asymmetric_sam"
    reference = "the paper, Section 7"
    settings = {
        "rho": 0.05,                   # ascent radius of the frequent half of the classes
        "minority_radius_scale": 2.0,  # the rarer half's radius = rho x this
    }
    model_settings = {"mlp2d": {"rho": 0.1, "minority_radius_scale": 3.0}}
    minority_scale_key = "minority_radius_scale"
