"""The paper's experimental protocols as dataclass configs, and the run grids they expand to.

Two protocols cover the tabular arms of takeaways 1-3:

* :class:`RatioGrid` (Figures 1, 2, 4, 5): a fixed training-set size at several train ratios,
  each model evaluated on test sets at several test ratios.
* :class:`MajorityGrid` (Figure 3): the minority count fixed, the majority count varied on a
  grid that spans both sides of balance, evaluated on a balanced test set.

``PROFILES[profile][arm]`` holds each arm's config. ``quick`` is a smaller budget for the same
code path (coarser grids); ``full`` is the paper's scale. Choices and their reasons are in the
comments; the paper gives no training-set size for Figure 1, so we use 10,000 for both tabular
datasets (Adult's 7,841 minority samples allow at most 15,682 at r = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import data, imbalance
from .spec import RunSpec, make_spec


@dataclass(frozen=True)
class RatioGrid:
    dataset: str
    model: str
    total: int                          # training samples, fixed across train ratios
    train_ratios: tuple[float, ...]     # minority/majority of the training set
    test_ratios: tuple[float, ...]      # minority/majority of the held-out test sets
    methods: tuple[str, ...] = ("erm",)


@dataclass(frozen=True)
class MajorityGrid:
    dataset: str
    model: str
    minority_counts: tuple[int, ...]    # fixed minority sizes (Figure 3c's x axis)
    majority_factors: tuple[float, ...]  # majority = round(minority * factor); <1 is below balance
    claim_minority: int = 500           # the minority size the paper's Figure 3b fixes
    test_ratios: tuple[float, ...] = (1.0,)  # balanced test error, as in Figure 3
    method: str = "erm"


FULL_RATIOS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
QUICK_RATIOS = (0.02, 0.05, 0.1, 0.3, 1.0)
FULL_FACTORS = (0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 5.0, 10.0, 20.0, 48.0)
QUICK_FACTORS = (0.2, 0.6, 2.0, 6.0, 20.0)

PROFILES = {
    "full": {
        "t1-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, FULL_RATIOS, FULL_RATIOS),
        "t1-covtype-linear_svm": RatioGrid("covtype", "linear_svm", 10_000, FULL_RATIOS, FULL_RATIOS),
        "t2-adult-xgboost": MajorityGrid("adult", "xgboost", (250, 500, 1000, 2000), FULL_FACTORS),
        "t3-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, FULL_RATIOS, FULL_RATIOS,
                                      ("erm", "oversample", "reweight")),
    },
    "quick": {
        "t1-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, QUICK_RATIOS, QUICK_RATIOS),
        "t1-covtype-linear_svm": RatioGrid("covtype", "linear_svm", 10_000, QUICK_RATIOS, QUICK_RATIOS),
        "t2-adult-xgboost": MajorityGrid("adult", "xgboost", (250, 500), QUICK_FACTORS),
        "t3-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, QUICK_RATIOS, QUICK_RATIOS,
                                      ("erm", "oversample", "reweight")),
    },
}


def arm_config(profile: str, arm: str):
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if arm not in PROFILES[profile]:
        raise KeyError(f"profile {profile!r} has no arm {arm!r}; it has {sorted(PROFILES[profile])}")
    return PROFILES[profile][arm]


def ratio_grid_specs(cfg: RatioGrid, seeds: Sequence[int], data_dir=None) -> dict[tuple, RunSpec]:
    """Specs keyed by ``(method, train_ratio, seed)``."""
    return {(method, r, seed): make_spec(cfg.dataset, cfg.model, method,
                                         imbalance.binary_counts(cfg.total, r), cfg.test_ratios,
                                         seed, data_dir)
            for method in cfg.methods for r in cfg.train_ratios for seed in seeds}


def majority_grid_specs(cfg: MajorityGrid, seeds: Sequence[int], data_dir=None) -> dict[tuple, RunSpec]:
    """Specs keyed by ``(minority, majority, seed)``; class 1 (the minority label) is fixed."""
    dataset = data.load(cfg.dataset, data_dir)
    available_majority = imbalance.class_counts(dataset.y_train, dataset.num_classes)[0]
    specs = {}
    for minority in cfg.minority_counts:
        grid = imbalance.majority_grid(minority, cfg.majority_factors, available_majority)
        for majority, minority_ in imbalance.fixed_minority_counts(minority, grid):
            for seed in seeds:
                specs[(minority_, majority, seed)] = make_spec(
                    cfg.dataset, cfg.model, cfg.method, (majority, minority_), cfg.test_ratios,
                    seed, data_dir)
    return specs


def run_grid(runner, specs: dict[tuple, RunSpec]) -> dict[tuple, dict]:
    """Run every spec of a grid (training only what the store lacks); records by the same keys."""
    keys = list(specs)
    return dict(zip(keys, runner.run([specs[k] for k in keys])))


# --------------------------------------------------------------------------------- metrics

def error_at_ratio(record: dict, ratio: float) -> float:
    """Plain error (1 - accuracy) on the test set at ``ratio``."""
    return 1.0 - record["metrics"]["test"][f"{float(ratio):g}"]["accuracy"]


def balanced_test_error(record: dict) -> float:
    """Mean per-class error on the balanced (r = 1) test set."""
    return 1.0 - record["metrics"]["test"]["1"]["balanced_accuracy"]


def train_class_error(record: dict, label: int) -> float:
    """Training error on one class (label 1 is the minority in binary tasks)."""
    return record["metrics"]["train"]["per_class_error"][label]


def per_seed(records: dict[tuple, dict], cell: tuple, seeds: Sequence[int], metric) -> list[float]:
    """``metric(record)`` for each seed of one grid cell (keys are ``cell + (seed,)``)."""
    return [metric(records[cell + (seed,)]) for seed in seeds]
