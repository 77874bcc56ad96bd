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
* ``no_adult``: the Adult data cannot be found;
* ``seed_never_reaches_run``: every run is executed with seed 0 (its subset, test sets, draws
  and initialization), while its record keeps its own seed (needs ``--workers=1``: the run
  path is patched in this process);
* ``ratios_reversed``: training at ratio r gets the class counts of ratio 0.02 / r (the quick
  grid's order reversed: 0.02 <-> 1, 0.05 <-> 0.4, 0.1 <-> 0.2), so far train ratios beat the
  matched one;
* ``prior_when_imbalanced``: XGBoost trained on a highly imbalanced set (minority share < 10%,
  r < 0.11) predicts its majority class for every row: it learned only the prior there, and
  learns for real elsewhere (so the learned-something gate passes);
* ``laplace_uniform``: Laplace's predictive is uniform (no Bayesian gain at all);
* ``laplace_stage_fails``: Laplace's post-training stage raises an ImportError, as when
  laplace-torch does not import (the runs that share its trained network must not fail with it);
* ``sam_hurts``: SAM ascends with radius 1.0 (20x its own), so that asymmetric SAM beats it
  without beating standard training;
* ``no_improvement`` / ``injected_improvement``: the balanced test error of every oversampling
  and overfitting run is set to its ERM twin's (same cell and seed) plus a small seed jitter
  (+-0.002), minus 0.02 for the injected improvement (twice takeaway 3's non-superiority
  margin); the records are edited as the claims read them, not in the store;
* ``sam_margin_shifted``: the toy's SAM runs report SGD's minority margin plus exactly 0.05
  (a constant difference: one observation repeated, which the old rule counted as p = 0).
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace

import numpy as np

from harness import data, methods
from harness.data import imbalance
from harness.experiments import protocols
from harness.learners import models
from harness.runs import training


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


def prior_when_imbalanced(factory):
    def build(seed=0, n_jobs=1, **params):
        model = factory(seed=seed, n_jobs=n_jobs, **params)
        fit, predict = model.fit, model.predict

        def fit_or_learn_the_prior(x, y, *args, **kwargs):
            counts = np.bincount(y)
            model.prior_only = counts.min() / counts.sum() < 0.1
            model.majority = int(counts.argmax())
            return fit(x, y, *args, **kwargs)

        def predict_the_prior(x):
            return np.full(len(x), model.majority, dtype=np.int64) if model.prior_only else predict(x)

        model.fit, model.predict = fit_or_learn_the_prior, predict_the_prior
        return model

    build.CAPABILITIES = factory.CAPABILITIES
    return build


def reversed_counts(total, num_classes, ratio):
    return REAL_COUNTS_FOR_TOTAL(total, num_classes, min(1.0, 0.02 / ratio))


def with_seed_zero(execute_group):
    def execute_at_seed_zero(specs, *args, **kwargs):
        records = execute_group([replace(s, seed=0) for s in specs], *args, **kwargs)
        for spec, record in zip(specs, records):  # each record keeps its own spec and key
            if isinstance(record, dict):  # not a run's own failure (training.RunFailure)
                record["key"], record["spec"] = spec.key, spec.to_dict()
        return records

    return execute_at_seed_zero


class UniformLaplace(methods.get("laplace")):
    """Laplace's name and training, a uniform predictive."""

    def probabilities(self, state, images_u8):
        import torch

        return torch.full((len(images_u8), state.num_classes), 1.0 / state.num_classes)


class LaplaceStageFails(methods.get("laplace")):
    """Laplace's name and training; its post-training stage cannot import laplace-torch."""

    def finish(self, state):
        raise ImportError("injected: Laplace's stage cannot import laplace-torch")


class SAMThatHurts(methods.get("sam")):
    """SAM with an ascent radius of 1.0: regularized far past helping."""

    settings = {"rho": 1.0}


def edited_records(edit, run_grid):
    """``run_grid`` whose records pass through ``edit(key, record, records)`` (a copy is edited:
    the store and the runner keep the real record; ``edit`` returns None to leave one as is)."""
    def run_grid_with_edited_records(runner, specs):
        records = run_grid(runner, specs)
        return {key: edit(key, copy.deepcopy(record), records) or record for key, record in records.items()}

    return run_grid_with_edited_records


def twin_error_minus(delta: float):
    """Oversampling and overfitting records report their ERM twin's balanced test error, plus a
    seed jitter, minus ``delta``."""
    def edit(key, record, records):
        method, *cell = key
        if method in ("oversample", "overfit") and ("erm", *cell) in records:
            twin = records[("erm", *cell)]["metrics"]["test"]["1"]["balanced_accuracy"]
            jitter = 0.002 * (cell[-1] % 3 - 1)
            record["metrics"]["test"]["1"]["balanced_accuracy"] = twin + delta - jitter
            return record
        return None

    return edit


def sam_margin_shifted(key, record, records):
    """The toy's SAM runs report SGD's minority margin plus exactly 0.05."""
    if key[0] == "sam" and ("erm", *key[1:]) in records:
        extra = record["metrics"]["extra"]
        extra["minority_margin_mean"] = records[("erm", *key[1:])]["metrics"]["extra"]["minority_margin_mean"] + 0.05
        return record
    return None


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
        for name in [n for n in models.MODELS if models.device_bound(n)]:
            models.MODELS[name] = crashing(models.MODELS[name])
    elif sabotage == "no_adult":
        data.register_dataset("adult", missing_adult, replace=True)
    elif sabotage == "seed_never_reaches_run":
        training.execute_group = with_seed_zero(training.execute_group)
    elif sabotage == "ratios_reversed":
        imbalance.counts_for_total = reversed_counts
    elif sabotage == "prior_when_imbalanced":
        models.MODELS["xgboost"] = prior_when_imbalanced(models.MODELS["xgboost"])
    elif sabotage == "laplace_uniform":
        methods.METHODS["laplace"] = UniformLaplace
    elif sabotage == "laplace_stage_fails":
        methods.METHODS["laplace"] = LaplaceStageFails
    elif sabotage == "sam_hurts":
        methods.METHODS["sam"] = SAMThatHurts
    elif sabotage in ("no_improvement", "injected_improvement"):
        protocols.run_grid = edited_records(
            twin_error_minus(0.0 if sabotage == "no_improvement" else 0.02), protocols.run_grid)
    elif sabotage == "sam_margin_shifted":
        protocols.run_grid = edited_records(sam_margin_shifted, protocols.run_grid)
    elif sabotage:
        raise ValueError(f"unknown sabotage {sabotage!r}")
