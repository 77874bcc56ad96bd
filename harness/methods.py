"""Training methods for imbalanced data, in one registry by name.

A method turns the labels of a training subset into a :class:`TrainPlan`: which rows the model
sees (with repeats, for resampling) and an optional weight per row (for loss re-weighting).
Models then train on ``x[plan.indices]`` with ``plan.sample_weight``. The same plan drives a
neural-network epoch sampler in later issues, so a method is written once for every model.

Register your own with :func:`register_method`::

    @register_method("undersample")
    def undersample(y, rng):
        ...
        return TrainPlan(indices, None)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrainPlan:
    """Rows to train on (indices into the training subset, repeats allowed), their weights, the
    training regime the model should use (``"standard"`` or ``"overfit"``), and for models that
    train in epochs, how many rows one epoch draws from ``indices`` (None: all of them)."""

    indices: np.ndarray
    sample_weight: np.ndarray | None = None
    regime: str = "standard"
    epoch_size: int | None = None


METHODS: dict[str, Callable[[np.ndarray, np.random.Generator], TrainPlan]] = {}


def register_method(name: str):
    """Decorator adding ``fn(y, rng) -> TrainPlan`` to the registry under ``name``."""

    def add(fn):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = fn
        return fn

    return add


def get(name: str):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]


@register_method("erm")
def erm(y: np.ndarray, rng: np.random.Generator) -> TrainPlan:
    """Standard training: every sample once, unweighted."""
    return TrainPlan(np.arange(len(y)))


@register_method("oversample")
def oversample(y: np.ndarray, rng: np.random.Generator) -> TrainPlan:
    """Random oversampling to balance: every class is topped up to the largest class's count.

    Each class keeps all of its samples once and draws the shortfall uniformly with replacement
    from its own samples. Models without epochs (XGBoost, SVM) train on the duplicated rows.
    Neural networks use it as a sampler: each epoch draws ``len(y)`` rows from the balanced list,
    so an epoch is class-balanced and has as many steps as standard training (otherwise
    oversampling would also mean training for several times more steps).
    """
    classes, counts = np.unique(y, return_counts=True)
    target = counts.max()
    parts = []
    for c, n in zip(classes, counts):
        members = np.flatnonzero(y == c)
        parts += [members, rng.choice(members, size=int(target - n), replace=True)]
    return TrainPlan(np.sort(np.concatenate(parts)), epoch_size=len(y))


@register_method("reweight")
def reweight(y: np.ndarray, rng: np.random.Generator) -> TrainPlan:
    """Loss re-weighting by inverse class frequency, ``w_c = n / (C * n_c)`` (mean weight 1)."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    weights = len(y) / (len(classes) * counts)
    return TrainPlan(np.arange(len(y)), weights[inverse].astype(np.float64))


def every_sample_once(regime: str, doc: str):
    """A method that trains on every sample once, unweighted, in the model's ``regime``."""

    def plan(y: np.ndarray, rng: np.random.Generator) -> TrainPlan:
        return TrainPlan(np.arange(len(y)), regime=regime)

    plan.__doc__ = doc
    return plan


# Methods that change how the model trains or predicts, not which samples it sees.
for _name, _regime, _doc in [
    ("overfit", "overfit",
     "Every sample once, trained with a small learning rate for many epochs until fit. The model "
     "decides what 'small' and 'many' mean (``overfit_lr_scale`` and ``overfit_epoch_scale`` in "
     ":mod:`harness.nn_hyperparameters`); tabular models reject it."),
    ("sam", "sam", "Every sample once, optimized with SAM (:mod:`harness.sam`; the model sets the radius)."),
    ("asymmetric_sam", "asymmetric_sam",
     "SAM with a larger ascent radius for minority samples (:mod:`harness.sam`)."),
    ("laplace", "laplace",
     "Standard training, then a diagonal Laplace posterior; predictions are its posterior "
     "predictive (:mod:`harness.bayesian`)."),
    ("sghmc", "sghmc",
     "SGHMC in place of SGD, predictions averaged over its samples (:mod:`harness.bayesian`)."),
    ("simclr", "simclr",
     "SimCLR pre-training on the training images, then end-to-end fine-tuning on the same data "
     "(:mod:`harness.simclr`); a linear probe on the pre-trained encoder is recorded alongside."),
    ("simclr_imagenet", "pretrained",
     "Fine-tuning from user-supplied ImageNet SimCLR weights (hyperparameter "
     "``pretrained_weights``); a linear probe on those weights is recorded alongside."),
]:
    register_method(_name)(every_sample_once(_regime, _doc))

# The registry as the package defines it: a worker process that imports the harness afresh has
# exactly these, so only runs using them can be sent to another process (see harness.runner).
BUILTIN_METHODS = dict(METHODS)
