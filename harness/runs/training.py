"""Execute one run spec: draw the sets, apply the method, fit the model, measure.

Random streams are separate and keyed by purpose, so that runs which should share a draw do:
every arm at the same seed sees the same test sets (paired comparisons), and every method at the
same seed and class counts sees the same training subset.

Training subsets are *nested*: at a seed, each class has one fixed random order of its training
samples and a run takes the first ``count`` of them. So with the minority fixed (Figure 3) every
majority count trains on the same minority samples, and a larger majority set contains the
smaller one: adding majority data really adds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .. import __version__, data, methods
from ..data import imbalance
from ..learners import models
from ..runs.spec import RunSpec, base_settings, training_key
from .records import ratio_key  # the record's layout is records.py's

TRAIN_STREAM, METHOD_STREAM, TEST_STREAM = 0, 1, 2
# A drawn set must differ between seeds when at least 2^this sets of its class counts exist:
# a chance repeat between two of 80 seeds is then below 1e-6.
SEED_CHECK_BITS = 32


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, balanced accuracy and per-class error; classes absent from ``y_true`` get None."""
    counts = imbalance.class_counts(y_true, num_classes)
    per_class = []
    for c in range(num_classes):
        members = y_true == c
        per_class.append(float(np.mean(y_pred[members] != c)) if members.any() else None)
    present = [e for e in per_class if e is not None]
    return {
        "counts": list(counts),
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": 1.0 - float(np.mean(present)),
        "per_class_error": per_class,
    }


VERSIONED = ("numpy", "scipy", "scikit-learn", "xgboost-cpu", "xgboost", "torch", "torchvision",
             "laplace-torch", "matplotlib")


@lru_cache(maxsize=1)
def library_versions() -> dict:
    """Versions of Python, the harness and the libraries a result depends on, read from the
    installed distributions (nothing is imported, so tabular runs never load torch)."""
    from importlib import metadata

    versions = {"python": platform.python_version(), "harness": __version__}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_commit(length: int | None = None, ignoring=()) -> str:
    """The checkout's commit (its first ``length`` hex digits, or all), with "(uncommitted
    changes)" when a tracked file outside ``ignoring`` (paths) differs from it; "unknown"
    outside git. The provenance of a session (the report) and of an evidence entry."""
    import subprocess

    from ..data import REPO_ROOT

    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=False, timeout=5).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")[:length]
        excluded = [f":!{os.path.relpath(path, REPO_ROOT)}" for path in ignoring]
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + (" (uncommitted changes)" if dirty else "")) or "unknown"


def test_set(dataset: data.Dataset, ratio: float, seed: int) -> np.ndarray:
    """Indices into the held-out split of the largest test set at ``ratio`` for this seed."""
    available = imbalance.class_counts(dataset.y_test, dataset.num_classes)
    counts = imbalance.held_out_counts(available, ratio)
    rng = np.random.default_rng([seed, TEST_STREAM, round(ratio * 1_000_000)])
    return imbalance.sample_indices(dataset.y_test, counts, rng)


def train_subset(dataset: data.Dataset, spec: RunSpec) -> np.ndarray:
    """Indices into the train split of the training subset a spec trains on: per class, the first
    ``train_counts[c]`` samples of that class's fixed order at this seed (nested across counts)."""
    return imbalance.nested_indices(dataset.y_train, spec.train_counts,
                                    lambda c: np.random.default_rng([spec.seed, TRAIN_STREAM, c]))


def digest(values) -> str:
    """A short sha256 of an array's values (its dtype and bytes), for fingerprints."""
    array = np.ascontiguousarray(values)
    return hashlib.sha256(array.dtype.str.encode() + array.tobytes()).hexdigest()[:16]


def set_digest(indices: np.ndarray, pool_size: int) -> str:
    """:func:`digest` of a set of indices into a pool, whatever their order (a bit mask over the
    pool: no sort)."""
    mask = np.zeros(pool_size, dtype=bool)
    mask[indices] = True
    return digest(np.packbits(mask))


def fingerprints(dataset: data.Dataset, train_idx: np.ndarray, test_sets: dict, model, seed: int) -> dict:
    """What a run drew from its seed, as short digests, and whether the seed must change each.

    ``train_subset`` (the training indices as a set) and ``test set r=<ratio>`` (each test set's
    held-out indices, as a set) must vary with the seed when a repeat could not happen by
    chance (:data:`SEED_CHECK_BITS`); a set that holds every sample of its classes has nothing
    to draw (a balanced binary test set is often the whole split). ``model`` is the digest of the initial parameters of a model that reports them
    (``init_digest``: the networks) or of the seed the model was built with (the tabular
    models, which draw inside their own libraries); it must always vary.

    Not fingerprinted: a method's own draws (oversampling's repeats, SMOTE's neighbours). A
    method may be deterministic on purpose (re-weighting, or ERM itself), and its draws come
    from the same run seed as the training subset, which is checked.
    """
    def drawn(idx, labels, pool) -> bool:
        """Whether two seeds drawing this same set would be no chance: at least 2^32 sets of
        these class counts are possible (a class of 21 samples of which 20 are taken can repeat
        by chance, so such a set is not checked)."""
        taken = np.bincount(labels[idx], minlength=len(pool))
        log_sets = sum(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                       for n, k in zip(pool.tolist(), taken.tolist()))
        return log_sets / math.log(2) >= SEED_CHECK_BITS

    train_pool = np.bincount(dataset.y_train, minlength=dataset.num_classes)
    test_pool = np.bincount(dataset.y_test, minlength=dataset.num_classes)
    prints = {"train_subset": {"digest": set_digest(train_idx, len(dataset.y_train)),
                               "varies_with_seed": drawn(train_idx, dataset.y_train, train_pool)}}
    for ratio, idx in test_sets.items():
        prints[f"test set r={ratio_key(ratio)}"] = {"digest": set_digest(idx, len(dataset.y_test)),
                                                   "varies_with_seed": drawn(idx, dataset.y_test, test_pool)}
    init = getattr(model, "init_digest", None)
    prints["model"] = {"digest": init or digest(np.array([seed], dtype=np.int64)),
                       "of": "initial parameters" if init else "model seed", "varies_with_seed": True}
    return prints


def no_variants(x) -> dict:
    return {}


def device_name(device: str) -> str:
    """The hardware a run used, for a merged store's provenance: the GPU's name, or the CPU's."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def reset_peak_memory(device: str) -> None:
    """Start counting a group's peak GPU memory from now (CUDA only; a no-op on the CPU, and
    where torch sees no GPU: the run then fails with the device's own message)."""
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device: str) -> dict | None:
    """Peak GPU memory since :func:`reset_peak_memory` (the start of the run's group) up to now,
    GiB: ``allocated`` (tensors) and ``reserved`` (held by torch's caching allocator: what the
    card must have free). None on the CPU, where a process's peak spans every run it trained and
    is no one run's."""
    if device != "cuda":
        return None
    import torch

    return {"allocated": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "reserved": round(torch.cuda.max_memory_reserved() / 2**30, 3)}


def release_device_memory() -> None:
    """Hand the memory torch's CUDA allocator caches but no tensor uses back to the card, between
    groups: a worker that trained a Hessian run keeps gigabytes cached that the runs of the other
    slots on its GPU may need. A no-op where this process never initialized CUDA (no import)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    import gc

    gc.collect()  # tensors held only by reference cycles (autograd graphs) go first
    try:
        torch.cuda.empty_cache()
    except Exception as err:  # noqa: BLE001 - housekeeping never replaces the group's outcome
        # (a broken device says so in the next run, whose worker the executor then replaces)
        print(f"[harness] could not release cached GPU memory: {type(err).__name__}: {err}",
              file=sys.stderr, flush=True)


def capped(indices: np.ndarray, labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` indices of each class, in their order (for the dry run)."""
    keep = np.zeros(len(indices), dtype=bool)
    for c in np.unique(labels[indices]):
        keep[np.flatnonzero(labels[indices] == c)[:per_class]] = True
    return indices[keep]


@dataclass(frozen=True)
class RunFailure:
    """The outcome of one run of a group (:func:`execute_group`) that failed after the group's
    shared training: in its own post-training stage (Laplace's posterior) or while its record
    was made. The group's other runs keep their records; the runner reports this one as failed.

    ``error`` is the exception's type and message, as the runner reports a failed run, and
    ``traceback`` its text. It pickles as those strings alone, so that it crosses process
    boundaries (pools, Slurm jobs) whatever the exception was (one whose constructor takes other
    arguments does not unpickle); ``exception`` itself is kept only in the process that raised
    it (:func:`execute` re-raises it).
    """

    key: str
    error: str
    traceback: str = ""
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, spec: RunSpec, err: BaseException) -> RunFailure:
        # Where it was raised goes into the message the runner reports (the claim's error, the
        # report): "RuntimeError: msg" alone does not tell a method's author which line failed.
        frames = traceback.extract_tb(err.__traceback__)
        where = f" (raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
        return cls(spec.key, f"{type(err).__name__}: {err}{where}",
                   "".join(traceback.format_exception(type(err), err, err.__traceback__)), err)

    def __reduce__(self):
        return RunFailure, (self.key, self.error, self.traceback)


@dataclass(frozen=True)
class Evaluation:
    """How a group's runs are evaluated beyond what their specs say; the default (None) is a real
    run's. For the full-shape dry run (:mod:`harness.experiments.dryrun`) and the GPU check
    only, which train a spec shrunk for the purpose (e.g. one epoch).

    ``test_per_class`` caps each test set at its first that many samples of each class.
    ``dry_run`` (what the spec was shrunk by, e.g. ``{"epochs": 1}``), when not None, marks each
    record as a dry run's: ``record["dry_run"]`` holds it and ``test_per_class``, and the store
    refuses such a record (it is not its spec's result).
    """

    test_per_class: int | None = None
    dry_run: dict | None = None

    def __post_init__(self):
        if self.test_per_class is not None and self.dry_run is None:
            # capped test sets are not the spec's: such a record must never be stored
            raise ValueError("Evaluation(test_per_class=...) is a dry run's: give dry_run={...} "
                             "too, so that the record is marked and the store refuses it")


def execute(spec: RunSpec, data_dir=None, n_jobs: int = 1,
            evaluation: Evaluation | None = None) -> dict:
    """Train and evaluate one run; return its record (a JSON-ready dict).

    The record holds the spec and its key, metrics on the training subset (the distinct samples,
    before any resampling) and on each test set (``metrics["variants"][name]["test"]`` for the
    other predictors a model reports through ``predict_variants``), the class counts of each,
    wall time, library versions, the data source and its provenance (host, device name).
    ``evaluation``: see :class:`Evaluation` (the dry run's only).
    """
    record = execute_group([spec], data_dir, n_jobs, evaluation)[0]
    if isinstance(record, RunFailure):  # alone, the run's own failure is the call's
        raise record.exception
    return record


def method_for(spec: RunSpec):
    """The spec's method, built with its settings."""
    return methods.for_spec(spec.method, spec.method_version, spec.method_path)(**dict(spec.settings))


def execute_group(specs: list[RunSpec], data_dir=None, n_jobs: int = 1,
                  evaluation: Evaluation | None = None) -> list[dict | RunFailure]:
    """Records of runs that train the same model (one :func:`~harness.runs.spec.training_key`),
    training it once: runs that differ only in what happens after training (their test ratios,
    the model's measurements) and post-hoc methods with the method they train like.

    The model trains once (:func:`train_group`), then each run is recorded with its own
    method's predictive, its own measurements and its own test sets, exactly as if it had
    trained alone (:func:`record_run`), in :meth:`TrainedGroup.recording_order`. Records come
    back in the order of ``specs``; see :func:`execute` for a record.

    Failures stay local: one that happens in a run's own part (its post-training stage, its
    predictions, metrics, fingerprints, record) makes a :class:`RunFailure` in that run's place,
    and the other runs are recorded as usual. One that happens in what the runs share (data,
    training, the model's measurements) raises: every run of the group fails with it.
    """
    records: list[dict | RunFailure | None] = [None] * len(specs)
    with standardized_as(specs[0].dataset):
        trained = train_group(specs, data_dir, n_jobs)
        for i in trained.recording_order():
            try:
                records[i] = record_run(trained, i, evaluation)
            except Exception as err:  # noqa: BLE001 - this run's own part: the others are unaffected
                records[i] = RunFailure.of(specs[i], err)
    return records


@contextlib.contextmanager
def standardized_as(dataset: str):
    """The networks standardize their inputs with the image statistics ``dataset`` declares
    (:func:`harness.data.register_dataset`); nothing for data without them (tabular runs never
    import torch)."""
    statistics = data.image_statistics(dataset)
    if statistics is None:
        yield
        return
    from ..nn.batches import standardized_by

    with standardized_by(*statistics):
        yield


@dataclass
class TrainedGroup:
    """What the runs of a group share (:func:`train_group`): the model trained once, and what
    :func:`record_run` needs to record each run."""

    specs: list[RunSpec]
    run_methods: list  # each run's method, built with its settings (:func:`method_for`)
    trainer: methods.Method  # the method the model trained with (:func:`training_method`)
    dataset: data.Dataset
    train_idx: np.ndarray  # the training subset: indices into the train split
    x_train: np.ndarray  # its rows: the distinct samples, before any resampling
    y_train: np.ndarray
    model: object
    training_log: dict
    training_s: float  # from the group's start to the end of its training
    measurements: dict  # measurement settings -> (the model's extra metrics, their seconds)
    test_rows: dict = field(default_factory=dict)  # (test ratios, cap) -> evaluation_rows()

    @property
    def spec(self) -> RunSpec:
        """The run that leads: its seed drew the training subset and built the model."""
        return self.specs[0]

    def recording_order(self) -> list[int]:
        """The runs' indices in the order they are recorded: runs whose method has a
        post-training stage of its own last, since the stage may change the network (Laplace
        converts it to contiguous memory)."""
        trainer_finish = type(self.trainer).finish

        def own_stage(i: int) -> bool:
            run_method = self.run_methods[i]
            return run_method is not self.trainer and type(run_method).finish is not trainer_finish

        return sorted(range(len(self.specs)), key=own_stage)


def train_group(specs: list[RunSpec], data_dir=None, n_jobs: int = 1) -> TrainedGroup:
    """The shared part of a group's runs (:func:`execute_group`): build each run's method, load
    the data, draw the training subset, train the model once, with the method of a run that is
    not post-hoc, or, when all are, with their base method (:func:`training_method`), and make
    the model's measurements (decision margins, Hessian spectra) once per distinct settings,
    before anything else touches the model, as when a run trains alone."""
    started = time.perf_counter()
    spec = specs[0]
    reset_peak_memory(spec.device)  # each record says what its group needed
    # Built first: this imports a method defined outside the harness in a fresh worker, which
    # training_key needs.
    group_methods = [method_for(run) for run in specs]
    if len({training_key(s) for s in specs}) != 1:
        raise ValueError("execute_group trains once: its specs must share one training key")
    trainer = training_method(specs, group_methods)
    model_hp = spec.model_arguments()
    # An image model reads its dataset at its own input size: downsampled once per process and
    # dataset (a per-image function, so the same pixels as resizing this run's rows).
    dataset = data.load(spec.dataset, data_dir, image_size=model_hp.get("image_size"))
    train_idx = train_subset(dataset, spec)
    x_train, y_train = dataset.x_train[train_idx], dataset.y_train[train_idx]

    x_fit, y_fit, weights, epoch_size = trainer.resample(
        x_train, y_train, np.random.default_rng([spec.seed, METHOD_STREAM]),
        categorical=dataset.categorical)
    model = models.build(spec.model, seed=spec.seed, n_jobs=n_jobs, **model_hp)
    model.fit(x_fit, y_fit, sample_weight=weights, method=trainer, epoch_size=epoch_size)
    training_s = time.perf_counter() - started
    training_log = dict(getattr(model, "log", {}))

    measured: dict[tuple, tuple[dict, float]] = {}
    if hasattr(model, "extra_metrics"):
        for which in dict.fromkeys(run.measurements for run in specs):
            began = time.perf_counter()
            measured[which] = model.extra_metrics(**dict(which)), time.perf_counter() - began
    return TrainedGroup(list(specs), group_methods, trainer, dataset, train_idx, x_train, y_train,
                        model, training_log, training_s, measured)


def record_run(trained: TrainedGroup, i: int, evaluation: Evaluation | None = None) -> dict:
    """The record of the group's run ``i``: the model switched to the run's method (a post-hoc
    method's post-training stage runs for it: ``use_method``), its predictions on the training
    subset and the run's test sets (and those of the model's other predictors), metrics,
    fingerprints. Its wall time is the group's training, the run's measurements and this."""
    began = time.perf_counter()
    evaluation = evaluation or Evaluation()
    run, model, dataset = trained.specs[i], trained.model, trained.dataset
    log = dict(trained.training_log)
    # Each run predicts with its own method (a post-hoc one's predictive, or the trainer's).
    if hasattr(model, "use_method"):
        log.update(model.use_method(trained.run_methods[i]))
    else:
        model.method = trained.run_methods[i]
    metrics = {"train": classification_metrics(trained.y_train, model.predict(trained.x_train),
                                               dataset.num_classes), "test": {}}
    measuring_s = 0.0
    if trained.measurements:
        metrics["extra"], measuring_s = trained.measurements[run.measurements]
    rows = (run.test_ratios, evaluation.test_per_class)  # the group's runs share their seed
    if rows not in trained.test_rows:
        trained.test_rows[rows] = evaluation_rows(dataset, run, evaluation.test_per_class)
    test_sets, used, x_used = trained.test_rows[rows]
    predicted = model.predict(x_used)
    # Other predictors the run produced (a Laplace run's MAP network, a SimCLR run's linear
    # probe), measured on the same test sets so that claims can pair them with the main one.
    variants = getattr(model, "predict_variants", no_variants)(x_used)
    for ratio, idx in test_sets.items():
        at = np.searchsorted(used, idx)
        metrics["test"][ratio_key(ratio)] = classification_metrics(
            dataset.y_test[idx], predicted[at], dataset.num_classes)
        for name, y_pred in variants.items():
            metrics.setdefault("variants", {}).setdefault(name, {"test": {}})["test"][
                ratio_key(ratio)] = classification_metrics(dataset.y_test[idx], y_pred[at],
                                                           dataset.num_classes)
    record = make_record(run, dataset, metrics, log,
                         trained.training_s + measuring_s + time.perf_counter() - began)
    record["fingerprints"] = fingerprints(dataset, trained.train_idx, test_sets, model,
                                          trained.spec.seed)
    if evaluation.dry_run is not None:
        record["dry_run"] = {**evaluation.dry_run, "test_per_class": evaluation.test_per_class}
    return record


def training_method(specs: list[RunSpec], group_methods: list):
    """The method a group's model trains with: that of a run which is not post-hoc, else the
    base method the post-hoc runs train like, with its settings for their model."""
    for run_method in group_methods:
        if type(run_method).trains_like is None:
            return run_method
    base = methods.get(type(group_methods[0]).trains_like)
    return base(**base_settings(specs[0], base))  # as training_key keys it


def evaluation_rows(dataset, spec: RunSpec, test_per_class: int | None) -> tuple:
    """``(test sets, rows used, their features)`` of a run. Every test set is a subset of the
    held-out split and they overlap heavily, so the model predicts each held-out row they use
    once (predictions are per row), and each test set's metrics index into those predictions."""
    test_sets = {ratio: test_set(dataset, ratio, spec.seed) for ratio in spec.test_ratios}
    if test_per_class:
        test_sets = {r: capped(idx, dataset.y_test, test_per_class) for r, idx in test_sets.items()}
    used = np.unique(np.concatenate(list(test_sets.values())))
    return test_sets, used, dataset.x_test[used]  # one array: a model may keep its preprocessing


def make_record(spec: RunSpec, dataset, metrics: dict, log: dict, seconds: float) -> dict:
    device = spec.device
    return {
        "key": spec.key,
        "spec": spec.to_dict(),
        "metrics": metrics,
        "class_names": list(dataset.class_names),
        "data_source": dataset.source,
        "device": device,
        "device_name": device_name(device),
        "training_log": dict(log),
        "wall_time_s": seconds,
        **({"peak_memory_gib": peak} if (peak := peak_memory_gib(device)) else {}),
        "versions": library_versions(),
        "host": platform.node(),
        "pid": os.getpid(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
