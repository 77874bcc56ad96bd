"""The GPU profiles' dry run: every distinct training path, at full shape, on a shrunk budget.

A 30-hour replication should not die in hour 20 on a shape bug. The dry run takes each distinct
(dataset, model, method, measurement) combination of the full, medium and laptop profiles
(:data:`DRY_RUN_PROFILES`), e.g. ResNet-34 on 32 px
CIFAR-10 with SAM, or with the Hessian top-10 and five loss directions, builds its real spec
(the arm's most imbalanced training ratio, full hyperparameters) and trains a copy of it shrunk
to a budget that changes the amount of work but not the shapes (the dry-run record carries the
shrunk spec): one epoch (SGHMC: one per cycle), a few dozen
training images, a few test images per class, the Hessian on two images at a loose tolerance.
Each record must hold every field the claims read (:func:`missing_fields`). Dry-run records say
``"dry_run"`` and are never stored.

ImageNet SimCLR (``simclr_imagenet``) is not in the dry run: it needs a weights file. The same
network is built and fine-tuned by ``simclr``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial

from .. import data, methods
from ..learners import models
from ..runs import training
from ..runs.records import RecordView
from ..runs.spec import RunSpec, make_spec
from ..runs.store import strict_json
from . import protocols

# The profiles whose paths the dry run covers: every profile but quick, whose paths run in CI at
# their own scale (the GPU profiles, and laptop's 90 minutes), full first so that a path they
# share is checked at full shape.
DRY_RUN_PROFILES = ("full",) + tuple(p for p in protocols.PROFILES if p not in ("full", "quick"))
TRAIN_IMAGES = 48       # training images of a network dry run (tabular: protocols.DRY_ROWS rows)
TEST_PER_CLASS = 4      # test samples per class in each test set
NETWORK_BUDGET = {      # replaces a device-bound model's settings; shapes stay
    "epochs": 1,
    "hessian_samples": 2,      # images the Hessian and the loss curves use
    "hessian_tol": 0.5,        # eigsh relative tolerance: a few dozen Hessian-vector products
}


@dataclass(frozen=True)
class DryRun:
    """One distinct training path of the full profile: the shrunk spec that exercises it and
    how its record is evaluated (``training.Evaluation``: capped test sets, marked dry run)."""

    path: str      # "dataset/model/method[+measurement]"
    arm: str
    spec: RunSpec
    evaluation: training.Evaluation

    def describe(self) -> str:
        return self.path


def measurement(cfg) -> str:
    hp = dict(cfg.hyperparameters)
    return "+hessian" if hp.get("hessian_top_k") else ""


def dry_runs(data_dir=None, device: str = "cpu", profiles: tuple[str, ...] = DRY_RUN_PROFILES,
             train_images: int | None = TRAIN_IMAGES, test_per_class: int | None = TEST_PER_CLASS,
             network_budget: dict | None = None, device_bound_only: bool = False) -> list[DryRun]:
    """One :class:`DryRun` per distinct (dataset, model, method, measurement) of the arms of
    ``profiles`` (:func:`harness.experiments.protocols.arms`: the zoo as the registry declares
    it); a path two profiles share is built from the first profile's arm.

    ``train_images`` (None: the arm's own size), ``test_per_class`` (None: whole test sets) and
    ``network_budget`` (default :data:`NETWORK_BUDGET`) size the runs; each method shrinks its
    own budget (:meth:`harness.methods.Method.dry_run_budget`). ``gpucheck`` uses larger
    sizes than the CPU dry run, and only the device-bound arms (``device_bound_only``: their
    datasets alone are read, so a GPU machine without the tabular data can run it)."""
    sizing = (train_images, test_per_class,
              NETWORK_BUDGET if network_budget is None else network_budget)
    runs: dict[str, DryRun] = {}
    for arm, cfg in ((arm, cfg) for profile in profiles for arm, cfg in protocols.arms(profile).items()):
        if device_bound_only and not models.device_bound(cfg.model):
            continue
        for method in cfg.methods:
            path = f"{cfg.dataset}/{cfg.model}/{method}{measurement(cfg)}"
            if path not in runs:
                runs[path] = DryRun(path, arm, *dry_spec(cfg, method, data_dir, device, *sizing))
    return list(runs.values())


def dry_spec(cfg, method: str, data_dir, device: str, train_images=TRAIN_IMAGES,
             test_per_class=TEST_PER_CLASS,
             network_budget=NETWORK_BUDGET) -> tuple[RunSpec, training.Evaluation]:
    """The arm's spec for ``method`` at its most imbalanced training ratio, shrunk in size and
    budget, and its evaluation."""
    device_bound = models.device_bound(cfg.model)
    hyperparameters = dict(cfg.hyperparameters)
    if device_bound:
        hyperparameters["device"] = device
    num_classes = len(data.load(cfg.dataset, data_dir).class_names)
    counts = cfg.dry_counts(method, num_classes, train_images, device_bound)
    settings = cfg.settings_for(method)
    full = make_spec(cfg.dataset, cfg.model, method, counts, cfg.test_ratios, 0, data_dir,
                     settings=settings, **hyperparameters)
    model_args = full.model_arguments()
    shrunk = {k: v for k, v in network_budget.items() if k in model_args} if device_bound else {}
    cls = methods.get(method)
    own = {}
    # a post-hoc method's model trains as its base: the base's budget, then its own
    for owner in dict.fromkeys((methods.get(cls.trains_like) if cls.trains_like else cls, cls)):
        more, settings_more = owner.dry_run_budget({**dict(full.hyperparameters), **shrunk},
                                                   {**dict(full.settings), **own})
        shrunk.update(more)
        own.update({k: v for k, v in settings_more.items() if k in cls.defaults_for(cfg.model)})
    spec = make_spec(cfg.dataset, cfg.model, method, counts, cfg.test_ratios, 0, data_dir,
                     settings={**settings, **own}, **{**hyperparameters, **shrunk})
    per_class = test_per_class if cfg.dry_run_caps_test_sets else None
    return spec, training.Evaluation(test_per_class=per_class or None,
                                     dry_run={"hyperparameters": shrunk, "settings": own})


def execute_dry(run: DryRun, data_dir=None, n_jobs: int = 1) -> dict:
    """Train one dry run (module-level, so an executor can send it to another process)."""
    return training.execute(run.spec, data_dir=data_dir, n_jobs=n_jobs, evaluation=run.evaluation)


def missing_fields(spec: RunSpec, record: dict) -> list[str]:
    """Fields the claims read that ``record`` lacks or holds in the wrong shape ([] if none).

    Reads them through the same accessors the claims use (:mod:`harness.experiments.protocols`)."""
    problems = []

    def check(what: str, fn):
        try:
            value = fn()
        except (KeyError, IndexError, TypeError, ValueError) as err:
            problems.append(f"{what}: {type(err).__name__}: {err}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{what}: not finite ({value})")
        return value

    classes = len(spec.train_counts)
    view = RecordView(record)
    check("class_names", lambda: view.class_names[classes - 1])
    check("train per-class error", lambda: protocols.train_class_error(record, classes - 1))
    check("train minority/majority error", lambda: protocols.group_train_error(record, "minority"))
    for ratio in spec.test_ratios:
        check(f"test error at r={ratio:g}", lambda r=ratio: protocols.error_at_ratio(record, r))
    if 1.0 in spec.test_ratios:
        check("balanced test error", lambda: protocols.balanced_test_error(record))
        check("gate: balanced accuracy", lambda: protocols.balanced_accuracy_on_most_balanced_test(record))
    for variant in methods.get(spec.method).variant_names if 1.0 in spec.test_ratios else ():
        check(f"variant {variant}", lambda v=variant: protocols.variant_balanced_test_error(v)(record))
    hp = dict(spec.measurements)
    if hp.get("hessian_top_k"):
        eig = check("hessian_top_eigenvalues", lambda: view.extra("hessian_top_eigenvalues"))
        if eig is not None and len(eig) != hp["hessian_top_k"]:
            problems.append(f"hessian_top_eigenvalues: {len(eig)} values, expected {hp['hessian_top_k']}")
        curve = check("loss_along_direction", lambda: view.extra("loss_along_direction"))
        if curve is not None and (len(curve.get("losses", [])) != hp["loss_directions"]
                                  or len(curve.get("loss", [])) != len(curve.get("alpha", [None]))):
            problems.append("loss_along_direction: wrong number of directions or points")
    for name in models.recorded_extras(spec.model):  # what the model declares it records
        check(name, lambda n=name: view.extra(n))
    try:
        json.dumps(strict_json(record), allow_nan=False)
    except (TypeError, ValueError) as err:
        problems.append(f"record is not JSON: {err}")
    return problems


def run_all(runs: list[DryRun], executor, data_dir=None) -> dict[str, dict]:
    """Train every dry run through ``executor``; ``path`` -> {"seconds", "problems"}."""
    outcome = {}
    job = partial(execute_dry, data_dir=data_dir, n_jobs=executor.threads_per_run)
    for run, record, error in executor.submit_all(job, runs):  # no tick_s: no heartbeats
        if error is not None:
            outcome[run.path] = {"seconds": None, "problems": [f"crashed: {type(error).__name__}: {error}"]}
        else:
            outcome[run.path] = {"seconds": round(record["wall_time_s"], 2),
                                 "problems": missing_fields(run.spec, record)}
    return outcome

