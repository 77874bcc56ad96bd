"""The paper's experimental protocols as dataclass configs, and the run grids they expand to.

Two protocols cover the tabular arms of takeaways 1-3:

* :class:`RatioGrid` (Figures 1, 2, 4, 5): a fixed training-set size at several train ratios,
  each model evaluated on test sets at several test ratios.
* :class:`MajorityGrid` (Figure 3): the minority count fixed, the majority count varied on a
  grid that spans both sides of balance, evaluated on a balanced test set.

A third, :class:`MethodGrid`, trains one training set with several methods (Figure 9); the three
share :class:`Grid`. ``PROFILES[profile][arm]`` holds the paper's arms, :data:`METHOD_ARMS` the
methods-under-test arms (their zoo from the registry: :func:`method_arms`), and :func:`arms`
both. ``quick`` is a smaller budget for the same
code path (coarser grids); ``medium`` the paper's networks at ResNet-34 scale on one GPU-hour's
budget (:data:`~harness.learners.nn_hyperparameters.MEDIUM_BUDGET`); ``full`` is the paper's scale. Choices and their reasons are in the
comments; the paper gives no training-set size for Figure 1, so we use 10,000 for both tabular
datasets (Adult's 7,841 minority samples allow at most 15,682 at r = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from .. import data, methods
from ..data import imbalance
from ..learners import models
from ..learners.nn_hyperparameters import LAPTOP_BUDGET, MEDIUM_BUDGET
from ..runs.records import RecordView
from ..runs.spec import RunSpec, SpecError, make_spec


class Grid:
    """What every protocol config is: a dataset, a model, its methods and the run specs they
    expand to. Each grid keys its specs its own way (``cell + (seed,)``), names the cell whose
    runs the learned-something gate checks, and says how the full-shape dry run shrinks it."""

    dataset: str
    model: str
    test_ratios: tuple[float, ...]
    hyperparameters: tuple[tuple[str, object], ...]
    method_settings: tuple[tuple[str, tuple], ...]
    methods: tuple[str, ...]
    # The learned-something gate's floor on the median balanced accuracy of the reference runs
    # (None: chance + GATE_MARGIN only); a budgeted profile declares it (LAPTOP_BUDGET).
    accuracy_floor: float | None = None
    # The dry run caps each test set at a few samples per class (a grid whose full size is its
    # dry run says False).
    dry_run_caps_test_sets: ClassVar[bool] = True

    def cells(self, num_classes: int, available: tuple[int, ...]):
        """``(cell, method, train_counts)`` of each cell of the grid, in order
        (``available``: the training rows per class the data holds)."""
        raise NotImplementedError

    def reference_cell(self) -> tuple:
        """The cell whose runs the gate checks: standard training on the most balanced
        training set of the arm."""
        raise NotImplementedError

    def floor_cell(self) -> tuple:
        """The cell whose runs the accuracy floor (:attr:`accuracy_floor`) is checked on:
        standard training on a balanced training set, the training the floor is declared for.
        The reference cell where that is balanced; a grid whose arm trains no balanced set
        adds the cell for the floor alone (:meth:`RatioGrid.cells`)."""
        return self.reference_cell()

    def dry_counts(self, method: str, num_classes: int, train_images: int | None,
                   device_bound: bool) -> tuple[int, ...]:
        """Training counts of the dry run of ``method``: the grid's most imbalanced shape,
        with ``train_images`` images for a device-bound model (None: the grid's own size)."""
        raise NotImplementedError

    @property
    def max_seeds(self) -> int:
        """The most seeds per arm sequential seeds may give this grid's claims (the last look
        of their designs): :data:`MAX_SEEDS_DEVICE_BOUND` for a device-bound model, else
        :data:`MAX_SEEDS`."""
        return MAX_SEEDS_DEVICE_BOUND if models.device_bound(self.model) else MAX_SEEDS

    def settings_for(self, method: str) -> dict:
        """The grid's settings of ``method`` beyond its defaults."""
        return dict(dict(self.method_settings).get(method, ()))

    def check_method_settings(self) -> None:
        """Refuse settings for a method the grid does not run (they would be ignored)."""
        stray = sorted(set(dict(self.method_settings)) - set(self.methods))
        if stray:
            raise SpecError(f"{self.dataset}/{self.model} grid: method_settings for {stray}, which "
                            f"it does not run (it runs {list(self.methods)}); drop them or add "
                            "the methods")

    def specs(self, seeds: Sequence[int], data_dir=None, **hyperparameters) -> dict[tuple, RunSpec]:
        """The grid's specs keyed ``cell + (seed,)``; ``hyperparameters`` (the model's, e.g.
        the session's ``device``) over the grid's own."""
        self.check_method_settings()
        dataset = data.load(self.dataset, data_dir)
        available = tuple(imbalance.class_counts(dataset.y_train, dataset.num_classes))
        model_hp = {**dict(self.hyperparameters), **hyperparameters}
        return {cell + (seed,): make_spec(self.dataset, self.model, method, counts,
                                          self.test_ratios, seed, data_dir,
                                          settings=self.settings_for(method), **model_hp)
                for cell, method, counts in self.cells(dataset.num_classes, available)
                for seed in seeds}


@dataclass(frozen=True)
class RatioGrid(Grid):
    """A fixed training-set size at several train ratios, each model evaluated on test sets at
    several test ratios (Figures 1, 2, 4, 5). Cells: ``(method, train_ratio)``."""

    dataset: str
    model: str
    total: int                          # training samples, fixed across train ratios
    train_ratios: tuple[float, ...]     # minority/majority of the training set
    test_ratios: tuple[float, ...]      # minority/majority of the held-out test sets
    methods: tuple[str, ...] = ("erm",)
    imbalanced_only: tuple[str, ...] = ()  # methods run only at train ratios below 1
    hyperparameters: tuple[tuple[str, object], ...] = ()  # model settings beyond the defaults
    method_settings: tuple[tuple[str, tuple], ...] = ()  # (method, ((setting, value), ...)), ...
    accuracy_floor: float | None = None  # the gate's floor on the reference runs' median balanced accuracy

    def ratios_for(self, method: str) -> list[float]:
        """The train ratios ``method`` runs at (imbalanced-only methods skip r = 1)."""
        return [r for r in self.train_ratios if r < 1 or method not in self.imbalanced_only]

    def cells(self, num_classes, available):
        cells = [((method, r), method, imbalance.counts_for_total(self.total, num_classes, r))
                 for method in self.methods for r in self.ratios_for(method)]
        floor = self.floor_cell()
        if self.accuracy_floor is not None and floor not in [c for c, _, _ in cells]:
            # The floor is declared for balanced training; an arm whose claims train none
            # (takeaway 3: r = 0.05 and 0.2) trains it for the gate alone, at the arm's size
            # (the same runs as takeaway 1's balanced cell, so a whole session shares them).
            cells.append((floor, floor[0], imbalance.counts_for_total(self.total, num_classes, 1.0)))
        return cells

    def reference_method(self) -> str:
        return "erm" if "erm" in self.methods else self.methods[0]

    def reference_cell(self) -> tuple:
        method = self.reference_method()
        return (method, max(self.ratios_for(method)))

    def floor_cell(self) -> tuple:
        return (self.reference_method(), 1.0)

    def dry_counts(self, method, num_classes, train_images, device_bound):
        total = self.total if train_images is None else (train_images if device_bound else DRY_ROWS)
        counts = imbalance.counts_for_total(total, num_classes, min(self.ratios_for(method)))
        return tuple(max(1, c) for c in counts)  # a few images cannot hold r = 0.01: 1 each


@dataclass(frozen=True)
class MajorityGrid(Grid):
    """The minority count fixed, the majority count varied on a grid that spans both sides of
    balance, on a balanced test set (Figure 3). Cells: ``(minority, majority)``."""

    dataset: str
    model: str
    minority_counts: tuple[int, ...]    # fixed minority sizes (Figure 3c's x axis)
    majority_factors: tuple[float, ...]  # majority = round(minority * factor); <1 is below balance
    claim_minority: int = 500           # the minority size the paper's Figure 3b fixes
    test_ratios: tuple[float, ...] = (1.0,)  # balanced test error, as in Figure 3
    method: str = "erm"
    hyperparameters: tuple[tuple[str, object], ...] = ()  # model settings beyond the defaults
    method_settings: tuple[tuple[str, tuple], ...] = ()  # (method, ((setting, value), ...)), ...
    accuracy_floor: float | None = None  # the gate's floor on the reference runs' median balanced accuracy

    @property
    def methods(self) -> tuple[str, ...]:
        return (self.method,)

    def cells(self, num_classes, available):
        cells = []
        for minority in self.minority_counts:
            grid = imbalance.majority_grid(minority, self.majority_factors, available[0])
            cells += [((minority_, majority), self.method, (majority, minority_))
                      for majority, minority_ in imbalance.fixed_minority_counts(minority, grid)]
        return cells

    def reference_cell(self) -> tuple:  # the claim's minority, the majority nearest balance
        factor = min(self.majority_factors, key=lambda f: abs(math.log(f)))
        return (self.claim_minority, round(self.claim_minority * factor))

    def dry_counts(self, method, num_classes, train_images, device_bound):
        if device_bound and train_images is not None:  # the same shapes with fewer images
            return (train_images - train_images // 8, train_images // 8)
        minority = min(self.minority_counts)
        return (max(1, round(minority * max(self.majority_factors))), minority)


@dataclass(frozen=True)
class MethodGrid(Grid):
    """One fixed training set, several methods (Figure 9's toy problem). Cells: ``(method,)``."""

    dataset: str
    model: str
    train_counts: tuple[int, ...]       # samples per class, head first
    methods: tuple[str, ...]
    test_ratios: tuple[float, ...] = (1.0,)
    hyperparameters: tuple[tuple[str, object], ...] = ()  # model settings beyond the defaults
    method_settings: tuple[tuple[str, tuple], ...] = ()  # (method, ((setting, value), ...)), ...

    def cells(self, num_classes, available):
        return [((method,), method, self.train_counts) for method in self.methods]

    def reference_cell(self) -> tuple:
        return ("erm",) if "erm" in self.methods else (self.methods[0],)

    dry_run_caps_test_sets: ClassVar[bool] = False  # the toy problem is cheap: its full grid is the dry run

    def dry_counts(self, method, num_classes, train_images, device_bound):
        return self.train_counts


DRY_ROWS = 2_000  # training rows of a tabular dry run
# Sequential seeds (--seeds=auto) stop at these many seeds per arm at most (looks 5, 10, 20, ...).
# Tabular and toy runs take seconds: 80 seeds detect effects about a fifth of the size 5 seeds
# detect (Figure 2 on Adult needed about 80 at quick scale). A network run takes minutes on the
# CPU and up to an hour of GPU time: 20 seeds (effects about half the size) bound the worst case
# at 4x the fixed design's cost.
MAX_SEEDS = 80
MAX_SEEDS_DEVICE_BOUND = 20


FULL_RATIOS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
# Neural networks: CIFAR-10 10-class at a fixed total. 12,000 is about the most the train split
# allows at r = 0.01 (head class 5,000 of 5,000); quick uses 2,500 at 16x16 px on the CPU.
FULL_NN_RATIOS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# Five ratios so that every test ratio has a train ratio two grid steps away (Figure 2's claim).
QUICK_NN_RATIOS = (0.02, 0.05, 0.2, 0.5, 1.0)
QUICK_RATIOS = (0.02, 0.05, 0.1, 0.3, 1.0)
FULL_FACTORS = (0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 5.0, 10.0, 20.0, 48.0)
QUICK_FACTORS = (0.2, 0.5, 1.0, 2.0, 5.0, 20.0)  # balance (1.0) and both sides

PROFILES = {
    "full": {
        "t1-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, FULL_RATIOS, FULL_RATIOS),
        "t1-covtype-linear_svm": RatioGrid("covtype", "linear_svm", 10_000, FULL_RATIOS, FULL_RATIOS),
        "t2-adult-xgboost": MajorityGrid("adult", "xgboost", (250, 500, 1000, 2000), FULL_FACTORS),
        "t3-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, FULL_RATIOS, FULL_RATIOS,
                                      ("erm", "oversample", "reweight")),
        "t1-cifar10-nn": RatioGrid("cifar10", "resnet34", 12_000, FULL_NN_RATIOS, FULL_NN_RATIOS),
        "t2-cifar10-binary-nn": MajorityGrid("cifar10-binary", "resnet34", (250, 500, 1000),
                                             (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)),
        # ERM cells are shared with t1-cifar10-nn (same specs); the other methods only run where
        # the training set is imbalanced, the only place the claims look at them.
        "t3-cifar10-nn": RatioGrid("cifar10", "resnet34", 12_000, (0.01, 0.02, 0.05, 0.1, 0.2),
                                   FULL_NN_RATIOS, ("erm", "oversample", "overfit")),
        "t6-toy2d-mlp": MethodGrid("toy2d", "mlp2d", (400, 20), ("erm", "sam", "asymmetric_sam")),
        "t6-cifar10-nn": RatioGrid("cifar10", "resnet34", 12_000, (0.01, 0.1, 1.0), FULL_NN_RATIOS,
                                   ("erm", "sam", "asymmetric_sam"), ("asymmetric_sam",)),
        "t5-cifar10-flatness": RatioGrid("cifar10", "resnet34", 12_000, (0.01, 1.0), (1.0,),
                                         hyperparameters=(("hessian_top_k", 10), ("loss_directions", 5))),
        # ERM cells shared with t6-cifar10-nn (same specs).
        "t5-cifar10-bayesian": RatioGrid("cifar10", "resnet34", 12_000, (0.01, 0.1, 1.0),
                                         FULL_NN_RATIOS, ("erm", "laplace", "sghmc")),
        # Figure 6: binary CIFAR-10 (airplane vs automobile) across imbalance ratios; 5,000
        # training images (the minority has 5,000 in the train split, enough up to r = 1).
        "t4-cifar10-binary-ssl": RatioGrid("cifar10-binary", "resnet34", 5_000,
                                           (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), (1.0,),
                                           ("erm", "oversample", "simclr"), ("oversample",)),
    },
    "quick": {
        # The toy problem is cheap: quick and full are the same grid.
        "t6-toy2d-mlp": MethodGrid("toy2d", "mlp2d", (400, 20), ("erm", "sam", "asymmetric_sam")),
        # Asymmetric SAM needs a minority: it runs at the imbalanced ratio only.
        "t6-cifar10-nn": RatioGrid("cifar10", "small_cnn", 2_500, (0.05, 1.0), QUICK_NN_RATIOS,
                                   ("erm", "sam", "asymmetric_sam"), ("asymmetric_sam",)),
        # Hessian spectra need the trained network, so these runs measure them as they finish.
        # Five random directions per model for Figure 7b: one is too noisy (p = 0.088 with one).
        # The Hessian and loss curves use 500 training images at quick scale (1,000 at full).
        "t5-cifar10-flatness": RatioGrid("cifar10", "small_cnn", 2_500, (0.05, 1.0), (1.0,),
                                         hyperparameters=(("hessian_top_k", 10), ("loss_directions", 5),
                                                          ("hessian_samples", 500))),
        # ERM cells shared with t1-cifar10-nn and t6-cifar10-nn (same specs).
        "t5-cifar10-bayesian": RatioGrid("cifar10", "small_cnn", 2_500, (0.05, 1.0), QUICK_NN_RATIOS,
                                         ("erm", "laplace", "sghmc")),
        # 1,000 images for 20 epochs (160 SGD steps) and 30 SimCLR epochs. Until version 0.3:
        # 40 and 100 (at 15 epochs the imbalanced binary CNN predicted the majority class almost
        # always); cut on cost alone for the quick suite's 10-minute budget on 2 cores.
        "t4-cifar10-binary-ssl": RatioGrid("cifar10-binary", "small_cnn", 1_000, (0.1, 1.0), (1.0,),
                                           ("erm", "oversample", "simclr"), ("oversample",),
                                           (("epochs", 20),),
                                           (("simclr", (("batch_size", 256), ("epochs", 30))),)),
        "t1-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, QUICK_RATIOS, QUICK_RATIOS),
        "t1-covtype-linear_svm": RatioGrid("covtype", "linear_svm", 10_000, QUICK_RATIOS, QUICK_RATIOS),
        "t2-adult-xgboost": MajorityGrid("adult", "xgboost", (250, 500), QUICK_FACTORS),
        "t3-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, QUICK_RATIOS, QUICK_RATIOS,
                                      ("erm", "oversample", "reweight")),
        "t1-cifar10-nn": RatioGrid("cifar10", "small_cnn", 2_500, QUICK_NN_RATIOS, QUICK_NN_RATIOS),
        "t2-cifar10-binary-nn": MajorityGrid("cifar10-binary", "small_cnn", (250,),
                                             (0.2, 1.0, 5.0, 20.0), claim_minority=250),
        "t3-cifar10-nn": RatioGrid("cifar10", "small_cnn", 2_500, (0.05, 0.2), QUICK_NN_RATIOS,
                                   ("erm", "oversample", "overfit")),
    },
}


def budgeted_network_arms(model: str, budget: dict, network: tuple = ()) -> dict:
    """Every network arm of the paper for ``model`` at ``budget`` (``MEDIUM_BUDGET``,
    ``LAPTOP_BUDGET``: training images, SimCLR epochs, Hessian images, the imbalanced ratio, the
    learned-something floors) on quick's grid points, which each claim was designed around;
    ``network`` the model's settings beyond its defaults. One function for every such profile:
    a profile is a budget for the same arms, never a separate set."""
    images, binary, imbalanced = (budget["train_images"], budget["binary_train_images"],
                                  budget["imbalanced_ratio"])
    floor = budget.get("accuracy_floor")  # 10-class; the binary arms' is binary_accuracy_floor
    binary_floor = budget.get("binary_accuracy_floor")
    hp = tuple(network)
    return {
        "t1-cifar10-nn": RatioGrid("cifar10", model, images, QUICK_NN_RATIOS, QUICK_NN_RATIOS,
                                   hyperparameters=hp, accuracy_floor=floor),
        # Figure 3b's minority of 500 (quick: 250), the majority from a fifth of it to the 5,000
        # the binary train split holds.
        "t2-cifar10-binary-nn": MajorityGrid("cifar10-binary", model, (500,),
                                             (0.2, 0.5, 1.0, 2.0, 5.0, 10.0), hyperparameters=hp,
                                             accuracy_floor=binary_floor),
        "t3-cifar10-nn": RatioGrid("cifar10", model, images, (imbalanced, 0.2), QUICK_NN_RATIOS,
                                   ("erm", "oversample", "overfit"), hyperparameters=hp,
                                   accuracy_floor=floor),
        "t6-cifar10-nn": RatioGrid("cifar10", model, images, (imbalanced, 1.0), QUICK_NN_RATIOS,
                                   ("erm", "sam", "asymmetric_sam"), ("asymmetric_sam",),
                                   hyperparameters=hp, accuracy_floor=floor),
        "t5-cifar10-flatness": RatioGrid("cifar10", model, images, (imbalanced, 1.0), (1.0,),
                                         hyperparameters=hp + (
                                             ("hessian_top_k", 10), ("loss_directions", 5),
                                             ("hessian_samples", budget["hessian_samples"])),
                                         accuracy_floor=floor),
        "t5-cifar10-bayesian": RatioGrid("cifar10", model, images, (imbalanced, 1.0), QUICK_NN_RATIOS,
                                         ("erm", "laplace", "sghmc"), hyperparameters=hp,
                                         accuracy_floor=floor),
        "t4-cifar10-binary-ssl": RatioGrid("cifar10-binary", model, binary, (0.1, 1.0), (1.0,),
                                           ("erm", "oversample", "simclr"), ("oversample",), hp,
                                           (("simclr", (("epochs", budget["simclr_epochs"]),)),),
                                           accuracy_floor=binary_floor),
    }


# The tabular and toy arms of every budgeted profile: the full profile's (minutes on the CPU).
FULL_CPU_ARMS = {arm: cfg for arm, cfg in PROFILES["full"].items() if not models.device_bound(cfg.model)}
# One GPU (docs/cluster.md, One GPU): the paper's network arms at ResNet-34 scale on a budget
# (MEDIUM_BUDGET: epochs, training images, SimCLR epochs, Hessian images, and why). No methods
# arms: a method's CI runs quick, a replication full (METHOD_ARMS).
PROFILES["medium"] = {**FULL_CPU_ARMS, **budgeted_network_arms(
    "resnet34", MEDIUM_BUDGET, (("epochs", MEDIUM_BUDGET["epochs"]),))}
# A laptop (docs/profiles.md, The laptop profile): the same arms on the CPU with the network chosen on
# balanced data alone (LAPTOP_BUDGET and its reasons; python -m harness frontier), whose
# reference runs must reach the budget's balanced-accuracy floors.
PROFILES["laptop"] = {**FULL_CPU_ARMS, **budgeted_network_arms(LAPTOP_BUDGET["model"], LAPTOP_BUDGET)}


# Profiles whose device-bound (network) arms train on a CUDA GPU: their runs are keyed to cuda
# wherever they are planned, merged or judged; quick's train on whatever the machine has.
GPU_PROFILES = ("medium", "full")

# The methods-under-test arms (claims/test_methods_under_test.py): ERM and oversampling at the
# arm's ratios (shared with takeaways 1 and 3: same specs), then every zoo member (a method that
# declares ``zoo = True``, :func:`harness.methods.zoo`) that applies to the arm's model, unless
# ZOO_LEFT_OUT says why not, and the methods given with --method (added by the session). The zoo
# runs at the imbalanced ratios only; a method under test also at r = 1 (non-inferiority at
# balance). :func:`method_arms` expands them from the registry when asked.
METHOD_ARMS = {
    "quick": {
        "m-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, (0.02, 0.1, 1.0), QUICK_RATIOS,
                                     ("erm", "oversample"), ("oversample",)),
        "m-cifar10-nn": RatioGrid("cifar10", "small_cnn", 2_500, (0.05, 1.0), QUICK_NN_RATIOS,
                                  ("erm", "oversample"), ("oversample",)),
    },
    "full": {
        "m-adult-xgboost": RatioGrid("adult", "xgboost", 10_000, (0.01, 0.05, 0.1, 1.0), FULL_RATIOS,
                                     ("erm", "oversample"), ("oversample",)),
        "m-cifar10-nn": RatioGrid("cifar10", "resnet34", 12_000, (0.01, 0.1, 1.0), FULL_NN_RATIOS,
                                  ("erm", "oversample"), ("oversample",)),
    },
}
UNDERSAMPLING_NETWORKS = (
    "undersample is judged on the tabular methods arm only: on the networks' 10-class grid it "
    "keeps ten times the rarest class's count (a few hundred images at r = 0.05), a run that "
    "says more about the training-set size than about the method; --method=undersample adds it")
# Zoo members a methods arm leaves out, and why (shown in the report's zoo section).
ZOO_LEFT_OUT = {
    "quick": {"m-cifar10-nn": {
        "balanced_softmax": (
            "balanced_softmax is left out of the quick zoo: it is the logit-adjusted loss at tau "
            "= 1 (the same loss up to a constant shift of the logits; tests/test_longtail.py), so "
            "quick trains one of the two; -m full judges both, and --method=balanced_softmax adds "
            "it here"),
        "undersample": UNDERSAMPLING_NETWORKS}},
    "full": {"m-cifar10-nn": {"undersample": UNDERSAMPLING_NETWORKS}},
}


def zoo_arm(profile: str, arm: str) -> RatioGrid:
    """A methods arm with the zoo members that apply to its model and that it does not leave out
    (:data:`ZOO_LEFT_OUT`), in registration order, at its imbalanced ratios."""
    cfg = METHOD_ARMS[profile][arm]
    left_out = ZOO_LEFT_OUT.get(profile, {}).get(arm, {})
    members = tuple(name for name in methods.zoo() if name not in left_out
                    and name not in cfg.methods
                    and models.can_train(cfg.model, methods.get(name)))
    return replace(cfg, methods=cfg.methods + members, imbalanced_only=cfg.imbalanced_only + members)


def method_arms(profile: str) -> dict:
    """The methods arms of ``profile``, their zoo as the registry declares it now."""
    return {arm: zoo_arm(profile, arm) for arm in METHOD_ARMS.get(profile, {})}


def arms(profile: str) -> dict:
    """Every arm of ``profile``: the paper's (:data:`PROFILES`) and the methods arms."""
    return {**PROFILES[profile], **method_arms(profile)}


def with_methods_under_test(cfg: RatioGrid, names) -> RatioGrid:
    """``cfg`` with the methods under test added (at every train ratio, balance included)."""
    extra = tuple(n for n in names if n not in cfg.methods)
    imbalanced_only = tuple(m for m in cfg.imbalanced_only if m not in names)
    return replace(cfg, methods=cfg.methods + extra, imbalanced_only=imbalanced_only)


def arm_names(profile: str) -> set[str]:
    """The names of ``profile``'s arms (without building the methods arms' zoo)."""
    return set(PROFILES.get(profile, {})) | set(METHOD_ARMS.get(profile, {}))


def arm_config(profile: str, arm: str):
    """One arm's config (a methods arm with its zoo as the registry declares it now)."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if arm in METHOD_ARMS.get(profile, {}):
        return zoo_arm(profile, arm)
    if arm not in PROFILES[profile]:
        raise KeyError(f"profile {profile!r} has no arm {arm!r}; it has {sorted(arm_names(profile))}")
    return PROFILES[profile][arm]


def grid_specs(cfg: Grid, seeds: Sequence[int], data_dir=None, **hyperparameters) -> dict[tuple, RunSpec]:
    """The specs of any protocol config (:meth:`Grid.specs`)."""
    return cfg.specs(seeds, data_dir, **hyperparameters)


def run_grid(runner, specs: dict[tuple, RunSpec]) -> dict[tuple, dict]:
    """Run every spec of a grid (training only what the store lacks); records by the same keys."""
    keys = list(specs)
    return dict(zip(keys, runner.run([specs[k] for k in keys])))


# --------------------------------------------------------------------------------- metrics

def error_at_ratio(record: dict, ratio: float) -> float:
    """Plain error (1 - accuracy) on the test set at ``ratio``."""
    return RecordView(record).test(ratio).error


def majority_class_error(record: dict, ratio: float) -> float:
    """Error on the record's test set at ``ratio`` of the constant predictor of that test set's
    most frequent class: the best a model that learned only the class prior can do there."""
    counts = RecordView(record).test(ratio).counts
    return 1.0 - max(counts) / sum(counts)


def balanced_test_error(record: dict) -> float:
    """Mean per-class error on the balanced (r = 1) test set."""
    return RecordView(record).test(1.0).balanced_error


def variant_balanced_test_error(name: str):
    """Metric: balanced test error of another predictor a run recorded (``"map"`` of a Laplace
    run, ``"linear_probe"`` of a SimCLR run)."""

    def metric(record: dict) -> float:
        return RecordView(record).variant(name).test(1.0).balanced_error

    return metric


def train_class_error(record: dict, label: int) -> float:
    """Training error on one class (label 1 is the minority in binary tasks)."""
    return RecordView(record).train.per_class_error[label]


def group_train_error(record: dict, group: str) -> float:
    """Mean per-class training error of the minority or majority half of the classes.

    Classes are ordered head first, so the majority half is the first ``C // 2`` labels and the
    minority half the last ``C // 2`` (binary: label 0 and label 1; CIFAR-10: 0-4 and 5-9).
    """
    errors = RecordView(record).train.per_class_error
    half = len(errors) // 2
    chosen = errors[-half:] if group == "minority" else errors[:half]
    return sum(chosen) / len(chosen)


def per_seed(records: dict[tuple, dict], cell: tuple, seeds: Sequence[int], metric) -> list[float]:
    """``metric(record)`` for each seed of one grid cell (keys are ``cell + (seed,)``)."""
    return [metric(records[cell + (seed,)]) for seed in seeds]


# ------------------------------------------------------------------ the learned-something gate

GATE_ALPHA = 0.05
GATE_MARGIN = 0.05  # balanced accuracy must beat chance (1 / classes) by more than 5 points


def reference_cell(cfg: Grid) -> tuple:
    """The grid cell whose runs the gate checks (:meth:`Grid.reference_cell`)."""
    return cfg.reference_cell()


def balanced_accuracy_on_most_balanced_test(record: dict) -> float:
    return RecordView(record).predictions.most_balanced.balanced_accuracy


def learned_something(cfg, records: dict[tuple, dict], seeds: Sequence[int]) -> dict:
    """The gate every claim of an arm passes first: its models beat the class prior.

    On the arm's reference runs (:func:`reference_cell`), a one-sided t-test over seeds of H1:
    balanced accuracy on the balanced test set - (1 / classes + 0.05) > 0, alpha = 0.05. A model
    that predicts from the class prior alone (or from shuffled labels) has balanced accuracy
    1 / classes, so it fails; claims on such an arm can only be inconclusive.
    """
    from ..judging import stats

    cell = reference_cell(cfg)
    values = per_seed(records, cell, seeds, balanced_accuracy_on_most_balanced_test)
    classes = len(RecordView(records[cell + (seeds[0],)]).class_names)
    floor = 1.0 / classes + GATE_MARGIN
    test = stats.paired_greater(values, [floor] * len(values), GATE_ALPHA)
    passed = test.p_value < GATE_ALPHA
    label = ", ".join(str(c) for c in cell)
    gate = {"passed": bool(passed), "cell": label, "chance": 1.0 / classes, "margin": GATE_MARGIN,
            "mean": float(np.mean(values)), "p_value": test.p_value, "per_seed": values,
            "summary": f"balanced accuracy of the reference runs ({label}) {np.mean(values):.3f} "
                       f"vs chance {1.0 / classes:.3f} + {GATE_MARGIN}: p = {test.p_value:.3g}, "
                       f"{'passed' if passed else 'FAILED'}"}
    if getattr(cfg, "accuracy_floor", None) is not None:  # only a floored grid has its cell
        floor_cell = cfg.floor_cell()
        floor_values = values if floor_cell == cell else per_seed(
            records, floor_cell, seeds, balanced_accuracy_on_most_balanced_test)
        floor_check = accuracy_floor_check(cfg, floor_values, floor_cell)
        gate["floor"] = floor_check
        gate["summary"] += f"; {floor_check['summary']}"
    return gate


def accuracy_floor_check(cfg, values: Sequence[float], cell: tuple = ()) -> dict | None:
    """The profile's declared floor (``cfg.accuracy_floor``) on the median balanced accuracy
    of the balanced-trained runs (``values``, of ``cell``: :meth:`Grid.floor_cell`); None
    where the arm declares none. Below it the network did not learn the task well enough for
    the paper's claims to mean anything there: the claim is an error
    (:meth:`fixtures.claims.ClaimRecorder.grid`), never a verdict."""
    floor = getattr(cfg, "accuracy_floor", None)
    if floor is None:
        return None
    median = float(np.median(values))
    met = median >= floor
    label = ", ".join(str(c) for c in cell)
    return {"floor": floor, "median": median, "met": bool(met), "cell": label,
            "summary": f"balanced-trained runs ({label}) median {median:.3f} "
                       f"{'>=' if met else '<'} the profile's floor {floor:.2f}"
                       + ("" if met else ": the network did not learn the task")}


# ------------------------------------------------------------------ the seeds-reach-the-runs check

def seed_span(seeds: Sequence[int]) -> str:
    seeds = sorted(seeds)
    contiguous = seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 2 else ", ".join(map(str, seeds))


def fractional_errors(record: RecordView) -> bool:
    """Whether some test set has a per-class error strictly between 0 and 1: the predictions
    depend on the inputs (a constant or a perfect predictor may rightly score the same at
    every seed; such a model does not trip the identical-metrics check)."""
    return any(e is not None and 0 < e < 1 for r in record.predictions.ratios
               for e in record.test(r).per_class_error)


def seeds_reach_the_runs(records: dict[tuple, dict], seeds: Sequence[int]) -> dict:
    """The check beside the learned-something gate: each cell's runs at different seeds must be
    different runs.

    Records are keyed ``cell + (seed,)``. In every cell, it is a failure when (a) two or more
    seeds share a fingerprint the seed must change (``varies_with_seed`` in the record's
    ``fingerprints``, :func:`harness.runs.training.fingerprints`: the training subset and each
    test set when a chance repeat is practically impossible, and the model's initialization or
    seed), or (b) two or more seeds' runs have metrics identical to the last digit while their
    predictions depend on the inputs (:func:`fractional_errors`). Either means that the seed
    does not reach the run (or reaches it only for some seeds): those seeds would be one
    observation counted several times. Returns ``passed``, the ``problems`` (one line per cell)
    and a one-line ``summary``.
    """
    import json

    cells: dict[tuple, list] = {}
    for key in records:
        if key[-1] in seeds:
            cells.setdefault(key[:-1], []).append(key)
    problems = []  # one line per cell whose seeds do not reach its runs
    for cell, keys in cells.items():
        if len(keys) < 2:
            continue
        runs = {k[-1]: RecordView(records[k]) for k in keys}
        where = f"cell {', '.join(str(c) for c in cell)}"
        lacking = [r.key for r in runs.values() if "fingerprints" not in r.raw]
        if lacking:
            problems.append(f"runs {', '.join(lacking[:3])} ({where}) carry no fingerprints: they "
                            "were made by an older harness; delete them from the store to retrain")
            continue
        shared: dict[tuple, list[str]] = {}  # seeds sharing a value -> what they share
        first = next(iter(runs.values()))
        for name, entry in first.fingerprints.items():
            if entry.get("varies_with_seed"):
                what = entry.get("of", name) if name == "model" else name.replace("_", " ")
                for group in repeated({s: r.fingerprints.get(name, {}).get("digest")
                                       for s, r in runs.items()}):
                    shared.setdefault(group, []).append(what)
        for group in repeated({s: json.dumps(r.metrics, sort_keys=True) for s, r in runs.items()
                               if fractional_errors(r)}):
            shared.setdefault(group, []).append("metrics to the last digit")
        if shared:
            problems.append("; ".join(f"identical {', '.join(what)} for {where}, seeds {seed_span(group)}"
                                      for group, what in shared.items()))
    summary = ("the seeds reach the runs" if not problems else
               f"the seed does not reach the run: {problems[0]}"
               + (f" (and {len(problems) - 1} more cells)" if len(problems) > 1 else ""))
    return {"passed": not problems, "problems": problems, "summary": summary}


def repeated(values: dict) -> list[tuple]:
    """The groups of keys (seeds, sorted) that share a value, for values shared by two or more."""
    groups: dict = {}
    for key, value in values.items():
        groups.setdefault(value, []).append(key)
    return [tuple(sorted(g)) for g in groups.values() if len(g) > 1]


def method_lowers_metric(records: dict[tuple, dict], seeds: Sequence[int], ratios: Sequence[float],
                         baseline: tuple[str, str], method: tuple[str, str], metric,
                         metric_name: str, family: str, alpha: float, rule=None):
    """Verdict that ``method`` lowers ``metric`` below ``baseline`` at every train ratio.

    ``baseline`` and ``method`` are ``(method key, display name)``; cells are keyed
    ``(method, ratio, seed)``, so the two arms pair by seed (same training subset). One paired
    one-sided t-test per ratio of H1: metric(baseline) - metric(method) > 0, Holm over ratios;
    ``rule`` is the claim's declared :class:`~harness.judging.stats.Rule` these tests make.
    """
    from ..judging import stats

    (base, base_name), (other, other_name) = baseline, method
    values = {r: {m: per_seed(records, (m, r), seeds, metric) for m in (base, other)} for r in ratios}
    tests = {f"train r={r:g}: {base_name} minus {other_name}": stats.paired_greater(
        v[base], v[other], alpha, rule=rule) for r, v in values.items()}
    return stats.family_verdict(
        tests, alpha, f"paired one-sided t on {metric_name} ({base_name} minus {other_name}), "
        f"Holm over {family}", seeds, {f"r={r:g}": v for r, v in values.items()},
        summary=f"mean {metric_name} {base_name}/{other_name}: " + ", ".join(
            f"r={r:g}: {sum(v[base]) / len(seeds):.4f}/{sum(v[other]) / len(seeds):.4f}"
            for r, v in values.items()),
        effect_unit=f"{metric_name}, {base_name} minus {other_name} (> 0 supports)")
