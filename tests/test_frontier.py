"""The balanced-data frontier: balanced subsets, the Pareto front, one tiny measured point."""

import json

import numpy as np
import pytest

from harness.data import Dataset
from harness.experiments import frontier


def test_balanced_subset_draws_equal_counts_without_replacement_and_refuses_short_classes():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    rows = frontier.balanced_subset(labels, 5, seed=0)
    assert np.bincount(labels[rows]).tolist() == [5, 5, 5] and len(set(rows)) == 15
    assert not np.array_equal(rows, frontier.balanced_subset(labels, 5, seed=1))
    with pytest.raises(ValueError, match=r"class 0 has 10 samples"):
        frontier.balanced_subset(labels, 11, seed=0)


def test_pareto_keeps_the_points_nothing_beats_on_both_axes():
    points = [{"train_seconds": 1, "balanced_accuracy": 0.4}, {"train_seconds": 2, "balanced_accuracy": 0.3},
              {"train_seconds": 3, "balanced_accuracy": 0.6}, {"train_seconds": 4, "balanced_accuracy": 0.6}]
    assert [p["train_seconds"] for p in frontier.pareto(points)] == [1, 3]


def tiny_images(seed=0, n=40, classes=2):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 60, (n, 16, 16, 3), dtype=np.uint8)
    x[y == 1] += 150  # bright images are class 1: learnable in a few steps
    return x, y.astype(np.int64)


def test_a_point_is_measured_written_and_plotted(tmp_path, monkeypatch):
    x, y = tiny_images()
    tx, ty = tiny_images(1)
    dataset = Dataset("cifar10", x, y, tx, ty, ("dark", "bright"), {"variant": "test"})
    monkeypatch.setattr(frontier, "RECIPE", dict(frontier.RECIPE, batch_size=8))
    candidate = frontier.Candidate("small_cnn", 8, 16, 3)
    point = frontier.measure(candidate, dataset, train_images=20, seed=0, threads=1)
    assert point["train_images"] == 20 and point["label"] == candidate.label
    assert 0.0 <= point["balanced_accuracy"] <= 1.0 and point["train_seconds"] > 0
    monkeypatch.setattr("harness.data.load", lambda name, data_dir=None: dataset)
    out = tmp_path / "frontier.json"
    frontier.run((candidate,), out, train_images=20, threads=1, floor=0.65)
    assert len(json.loads(out.read_text())["points"]) == 1 and out.with_suffix(".png").is_file()
