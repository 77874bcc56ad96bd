"""Sabotages for mutation tests: a pytest plugin that breaks the harness through its public
registries before any claim runs, chosen by ``$IMBALANCE_SABOTAGE``.

Loaded in a child pytest with ``-p tests.sabotage``; the claims themselves are never edited.
Each sabotage removes the effect a claim asserts (or crashes its runs), so the claim must fail:

* ``shuffled_labels``: tabular models train on a random permutation of their labels;
* ``balanced_everywhere``: every train ratio of a ratio grid gets the balanced class counts, so
  the train ratio does nothing (the runs are the same runs);
* ``oversample_is_erm``: the ``oversample`` method trains like ERM;
* ``sam_is_sgd``: the ``sam`` method trains with the base optimizer;
* ``crash_nn``: building a neural network raises (a crash inside an xfailed claim);
* ``no_adult``: the Adult data cannot be found.
"""

from __future__ import annotations

import os

import numpy as np

from harness import data, methods
from harness.data import imbalance
from harness.learners import models


def shuffled_labels(factory):
    def build(seed=0, n_jobs=1, **params):
        model = factory(seed=seed, n_jobs=n_jobs, **params)
        fit = model.fit

        def fit_on_shuffled_labels(x, y, *args, **kwargs):
            return fit(x, np.random.default_rng(seed + 999).permutation(y), *args, **kwargs)

        model.fit = fit_on_shuffled_labels
        return model

    build.CAPABILITIES = factory.CAPABILITIES  # the same model, only its labels are wrong
    return build


def crashing(factory):
    def build(**kwargs):
        raise RuntimeError("injected crash: building the network failed")

    build.CAPABILITIES = factory.CAPABILITIES  # passes the spec's checks, crashes when built
    return build


def missing_adult(data_dir=None):
    raise data.DataError("adult: adult/adult.data not found (sabotage: data removed)")


def balanced_counts(total, num_classes, ratio):
    return REAL_COUNTS_FOR_TOTAL(total, num_classes, 1.0)


REAL_COUNTS_FOR_TOTAL = imbalance.counts_for_total


class OversampleIsERM(methods.Method):
    """Named oversample, trains as ERM (every row once)."""

    name = "oversample"


class SAMIsSGD(methods.get("sam")):
    """SAM's name and settings, the base optimizer's step."""

    step = methods.Method.step


def pytest_configure(config):
    sabotage = os.environ.get("IMBALANCE_SABOTAGE", "")
    if sabotage == "shuffled_labels":
        for name in ("xgboost", "linear_svm"):
            models.MODELS[name] = shuffled_labels(models.MODELS[name])
    elif sabotage == "balanced_everywhere":
        imbalance.counts_for_total = balanced_counts
    elif sabotage == "oversample_is_erm":
        methods.METHODS["oversample"] = OversampleIsERM
    elif sabotage == "sam_is_sgd":
        methods.METHODS["sam"] = SAMIsSGD
    elif sabotage == "crash_nn":
        for name in models.NEURAL:
            models.MODELS[name] = crashing(models.MODELS[name])
    elif sabotage == "no_adult":
        data.DATASETS["adult"] = missing_adult
    elif sabotage:
        raise ValueError(f"unknown sabotage {sabotage!r}")
