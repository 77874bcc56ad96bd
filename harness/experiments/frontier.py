"""The accuracy-vs-CPU-seconds frontier of the CPU-sized networks, on balanced CIFAR-10 only.

``python -m harness frontier`` trains each candidate of :data:`CANDIDATES` (an architecture,
width, image side and epochs) with the harness's own engine and standard training (ERM: the
recipe every network arm uses) on a *balanced* subset of CIFAR-10's training split, and measures
its balanced accuracy on the whole balanced test split and its wall-clock training seconds.
The network of the ``laptop`` profile is chosen from this figure alone: no claim's outcome
enters the choice (issue 31). The JSON holds every point; the figure plots balanced accuracy
against training seconds, with the Pareto frontier drawn through the points no other point
beats on both.

A point's training FLOPs per image (forward + backward, counted by torch,
:func:`harness.experiments.gpucheck.training_flops_per_image`) times its images/s, over the
CPU's measured fp32 matmul ceiling (:mod:`harness.experiments.cpucheck`), is its CPU MFU.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import imbalance
from ..learners.nn_hyperparameters import AIRBENCH_CNN


@dataclass(frozen=True)
class Candidate:
    arch: str            # harness.nn.networks.ARCHITECTURES
    width: int           # channels of its first stage
    image_size: int      # pixels (side)
    epochs: int          # passes over the training subset

    @property
    def label(self) -> str:
        return f"{self.arch} w{self.width} {self.image_size}px {self.epochs}ep"


# The grids measured for issue 31 (docs/benchmarks/frontier-2026-12-07*.json). The first, at the
# quick CNN's recipe (lr 0.05, no Nesterov): today's quick CNN, the small CNN at 32 px, an
# airbench-shaped network at two widths and ResNet-20, each at two budgets, and airbench at 16 px.
# Its cheapest point over the floor was airbench w16 32 px at 30 epochs (its JSON lists every
# point and its recipe). The second grid, here, is airbench at 32 px under the laptop recipe
# (AIRBENCH_CNN: lr 0.2, Nesterov) at fewer epochs, and one wider.
CANDIDATES = (
    Candidate("airbench_cnn", 16, 32, 12), Candidate("airbench_cnn", 16, 32, 18),
    Candidate("airbench_cnn", 16, 32, 20), Candidate("airbench_cnn", 24, 32, 12),
)
TRAIN_IMAGES = 5_000     # balanced training subset: 500 per class (the laptop arms' size)
# Standard training's recipe beyond the network, the same for every candidate: the laptop
# network's (nn_hyperparameters.AIRBENCH_CNN, its owner).
RECIPE = {key: AIRBENCH_CNN[key] for key in ("batch_size", "lr", "momentum", "nesterov", "weight_decay")}


def training_settings(image_size: int) -> dict:
    """The engine's settings for a candidate at ``image_size`` px: :data:`RECIPE`, and a crop
    padding of an eighth of the side (4 px at 32 px, 2 at 16: the networks' own)."""
    return dict(RECIPE, image_size=image_size, crop_padding=max(1, image_size // 8))


def balanced_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Row indices of ``per_class`` rows of each class, drawn without replacement by ``seed``
    (:func:`harness.data.imbalance.sample_indices`, whose error names a class that is short)."""
    num_classes = int(labels.max()) + 1
    return imbalance.sample_indices(labels, (per_class,) * num_classes, np.random.default_rng(seed))


def measure(candidate: Candidate, dataset, train_images: int = TRAIN_IMAGES, seed: int = 0,
            threads: int = 2) -> dict:
    """Train ``candidate`` (ERM) on a balanced subset of ``dataset`` (a
    :class:`harness.data.Dataset` of images) and evaluate it on the whole test split: balanced
    accuracy, training seconds (wall clock, the engine's log), images/s."""
    import torch

    from ..data.images import downsample
    from ..learners import engine
    from ..nn.batches import predict_logits
    from ..nn.networks import build_network
    from ..runs.training import classification_metrics, standardized_as

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rows = balanced_subset(dataset.y_train, train_images // dataset.num_classes, seed)
    x = torch.from_numpy(downsample(dataset.x_train[rows], candidate.image_size))
    y = torch.from_numpy(dataset.y_train[rows].astype(np.int64))
    hp = training_settings(candidate.image_size)
    net = build_network(candidate.arch, dataset.num_classes, candidate.width)
    net = net.to(memory_format=torch.channels_last)
    with standardized_as(dataset.name):  # the statistics the dataset's runs standardize with
        log = engine.train(net, x, y, None, hp, candidate.epochs, hp["lr"],
                           torch.Generator().manual_seed(seed), seed=seed)
        test_x = torch.from_numpy(downsample(dataset.x_test, candidate.image_size))
        predicted = predict_logits(net, test_x).argmax(1).numpy()
    scores = classification_metrics(dataset.y_test, predicted, dataset.num_classes)  # the runs' own
    return {**asdict(candidate), "label": candidate.label, "seed": seed, "threads": threads,
            "train_images": len(rows), "balanced_accuracy": scores["balanced_accuracy"],
            "train_seconds": log["train_seconds"], "images_per_second": log["images_per_second"]}


def pareto(points: list[dict]) -> list[dict]:
    """The points no other point beats on both axes (fewer seconds and higher accuracy), by
    seconds."""
    ordered = sorted(points, key=lambda p: (p["train_seconds"], -p["balanced_accuracy"]))
    front, best = [], -1.0
    for p in ordered:
        if p["balanced_accuracy"] > best:
            front.append(p)
            best = p["balanced_accuracy"]
    return front


def plot(points: list[dict], path: Path, floor: float | None = None) -> None:
    """Balanced accuracy against training seconds, one marker per architecture, the frontier
    as a line, the laptop profile's floor (if given) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arch, marker in zip(sorted({p["arch"] for p in points}), "osD^v"):
        mine = [p for p in points if p["arch"] == arch]
        ax.scatter([p["train_seconds"] for p in mine], [p["balanced_accuracy"] for p in mine],
                   marker=marker, label=arch)
        for p in mine:
            ax.annotate(f"w{p['width']} {p['image_size']}px {p['epochs']}ep",
                        (p["train_seconds"], p["balanced_accuracy"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    front = pareto(points)
    ax.plot([p["train_seconds"] for p in front], [p["balanced_accuracy"] for p in front],
            color="grey", lw=1, zorder=0, label="frontier")
    if floor is not None:
        ax.axhline(floor, ls="--", color="red", lw=1, label=f"laptop floor {floor:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("training seconds (one run, 2 threads, wall clock)")
    ax.set_ylabel("balanced test accuracy (10-class, r = 1)")
    ax.set_title(f"Balanced CIFAR-10 subsets ({points[0]['train_images']:,} images): accuracy vs CPU time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def run(candidates=CANDIDATES, out: Path | None = None, data_dir=None, train_images: int = TRAIN_IMAGES,
        seeds=(0,), threads: int = 2, floor: float | None = None) -> list[dict]:
    """Measure every candidate at every seed; write ``out`` (JSON, rewritten after each point,
    atomically) and its figure beside it (``.png``)."""
    from .. import data

    dataset = data.load("cifar10", data_dir)
    points = []
    for candidate in candidates:
        for seed in seeds:
            started = time.perf_counter()
            point = measure(candidate, dataset, train_images, seed, threads)
            point["wall_seconds"] = time.perf_counter() - started
            points.append(point)
            print(f"{point['label']} seed {seed}: balanced accuracy {point['balanced_accuracy']:.3f}, "
                  f"{point['train_seconds']:.0f} s training ({point['images_per_second']:.0f} img/s)",
                  flush=True)
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps({"train_images": train_images, "threads": threads,
                                           "recipe": RECIPE, "points": points}, indent=1))
                os.replace(tmp, out)
    if out is not None:
        plot(points, out.with_suffix(".png"), floor)
    return points
