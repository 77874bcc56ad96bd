"""Shared helpers for the harness unit tests: a tiny synthetic dataset and a spy model."""

from __future__ import annotations

import numpy as np
import pytest

from harness import data
from harness.learners import models


def make_synthetic(n_train=(300, 60), n_test=(200, 100), seed=0) -> data.Dataset:
    """Two Gaussian blobs; column 0 is 0 on train rows and 1 on test rows (a leak detector)."""
    rng = np.random.default_rng(seed)

    def split(counts, marker):
        y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int64)
        x = rng.normal(size=(len(y), 3)).astype(np.float32) + y[:, None] * 1.5
        x[:, 0] = marker
        return x, y

    x_tr, y_tr = split(n_train, 0.0)
    x_te, y_te = split(n_test, 1.0)
    return data.Dataset("synthetic", x_tr, y_tr, x_te, y_te, ("major", "minor"),
                        {"variant": "synthetic", "kind": "test", "sha256": "0" * 64})


class SpyModel:
    """Follows the model contract; remembers what it was trained on."""

    seen: list = []

    def __init__(self, seed=0, n_jobs=1, **params):
        self.seed = seed

    def fit(self, x, y, sample_weight=None, method=None, epoch_size=None):
        SpyModel.seen.append((np.array(x), np.array(y), sample_weight))
        self.majority = int(np.bincount(y).argmax())
        return self

    def predict(self, x):
        return np.full(len(x), self.majority, dtype=np.int64)


@pytest.fixture
def synthetic(monkeypatch):
    """Register the synthetic dataset and the spy model for one test."""
    dataset = make_synthetic()
    monkeypatch.setitem(models.MODELS, "spy", SpyModel)
    monkeypatch.setitem(models.DEFAULTS, "spy", {})
    SpyModel.seen = []
    with data.registered_dataset("synthetic", lambda data_dir=None: dataset):
        yield dataset


def shared_data_available(relative: str) -> bool:
    return data.locate(relative) is not None
