"""Run specifications: a frozen, hashable description of one training run.

Everything that changes a run's result is in its spec, and the store keys results by the spec's
hash, so two claims asking for the same run share one result and a changed hyperparameter, data
file or harness version never reuses a stale one. Build specs with :func:`make_spec`, which
validates every field before anything trains.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from .. import __version__, data, methods
from ..data import imbalance
from ..learners import models


class SpecError(ValueError):
    """A run spec names something unknown or impossible; the message says what and how to fix it."""


@dataclass(frozen=True)
class RunSpec:
    """One training run, in sections: what data, which model and method, and each owner's
    settings apart (a method's setting never shares a namespace with its model's).

    Attributes
    ----------
    dataset, model, method : str
        Registry names (:mod:`harness.data`, :mod:`harness.learners.models`, :mod:`harness.methods`).
    train_counts : tuple of int
        Samples per class drawn from the train split (label order).
    test_ratios : tuple of float
        Imbalance ratios of the test sets drawn from the held-out split; each run is evaluated
        on all of them, since one model serves every test ratio.
    seed : int
        Seeds the train subset, the test sets, the method's resampling and the model.
    hyperparameters : tuple of (name, value)
        The model's training hyperparameters, sorted by name, defaults filled in.
    settings : tuple of (name, value)
        The method's settings, sorted, defaults filled in (its ``model_settings`` for this model
        over its ``settings``).
    measurements : tuple of (name, value)
        What is measured of the trained model (``MEASUREMENTS`` of its factory: the Hessian
        spectrum a network measures of itself), sorted, defaults filled in.
    placement : tuple of (name, value)
        Where it trains (``device`` for a device-bound model; empty otherwise).
    data_source : str
        Which copy of the data (variant and checksum prefix).
    harness_version : str
        Bumped whenever the harness changes how a result is computed.
    method_version : str
        The method's declared version; for a method defined outside the harness, ``+`` a hash
        of its module's source, so that editing it retrains (:func:`harness.methods.identity`).
    method_path : str
        ``module:Class`` of a method defined outside the harness (how a worker process imports
        it); empty for built-in methods.
    """

    dataset: str
    model: str
    method: str
    train_counts: tuple[int, ...]
    test_ratios: tuple[float, ...]
    seed: int
    hyperparameters: tuple[tuple[str, Any], ...]
    settings: tuple[tuple[str, Any], ...]
    measurements: tuple[tuple[str, Any], ...]
    placement: tuple[tuple[str, Any], ...]
    data_source: str
    harness_version: str
    method_version: str = "1"
    method_path: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunSpec:
        """The spec of a record's ``spec``; ValueError for one written before specs had
        sections (harness < 0.6)."""
        if "settings" not in raw:
            raise ValueError(f"a spec of harness {raw.get('harness_version', '< 0.6')}, written "
                             "before specs had sections (0.6): this version never reuses it; "
                             "delete it from the store, or leave it (it is ignored)")

        def pairs(name):
            return tuple(tuple(p) for p in raw[name])

        return cls(
            dataset=raw["dataset"], model=raw["model"], method=raw["method"],
            train_counts=tuple(raw["train_counts"]), test_ratios=tuple(raw["test_ratios"]),
            seed=raw["seed"], hyperparameters=pairs("hyperparameters"), settings=pairs("settings"),
            measurements=pairs("measurements"), placement=pairs("placement"),
            data_source=raw["data_source"], harness_version=raw["harness_version"],
            method_version=raw.get("method_version", "1"), method_path=raw.get("method_path", ""),
        )

    @property
    def device(self) -> str:
        """Where the run trains: its placement's ``device`` (a device-bound model's), else
        ``"cpu"``. Executors route by it (a CPU-only run never takes a GPU slot or a GPU request)."""
        return dict(self.placement).get("device", "cpu")

    def model_arguments(self) -> dict:
        """What the model's factory takes: its hyperparameters, measurements and placement."""
        return {**dict(self.hyperparameters), **dict(self.measurements), **dict(self.placement)}

    @property
    def key(self) -> str:
        """Store key: sha256 of the spec's canonical JSON (first 24 hex digits)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def describe(self) -> str:
        return (f"{self.dataset}/{self.model}/{self.method} counts={list(self.train_counts)} "
                f"seed={self.seed}")


def source_fingerprint(source: dict) -> str:
    digest = source.get("sha256", "")
    if isinstance(digest, dict):
        digest = "+".join(v[:12] for _, v in sorted(digest.items()))
    return f"{source.get('variant', 'unknown')}:{digest[:25]}"


def data_fingerprint(dataset: str, source: dict) -> str:
    """The spec's ``data_source``: which copy of the data (:func:`source_fingerprint`) and, for
    an image dataset, the statistics its runs standardize with (a dataset registered again with
    other statistics must not reuse its old results)."""
    statistics = data.image_statistics(dataset)
    if statistics is None:
        return source_fingerprint(source)
    digest = hashlib.sha256(json.dumps(statistics).encode()).hexdigest()[:8]
    return f"{source_fingerprint(source)}+stats:{digest}"


def sorted_pairs(values: dict) -> tuple:
    return tuple(sorted(values.items()))


def make_spec(dataset: str, model: str, method: str, train_counts, test_ratios, seed: int,
              data_dir=None, settings: dict | None = None, **hyperparameters) -> RunSpec:
    """Validate a run's settings against the registries and the data, and return its spec.

    ``hyperparameters`` override the model's defaults: its training hyperparameters, its
    measurements and its placement (``device``), each put in its section. ``settings`` override
    the method's own (a method setting may share a name with a model hyperparameter, e.g.
    SimCLR's pre-training ``epochs``: they live in different sections).

    Raises
    ------
    SpecError
        Unknown dataset, model, method, hyperparameter or setting; a method the model cannot
        train with (e.g. XGBoost + SAM); a test ratio outside (0, 1]; or more samples of a
        class than its train split holds.
    harness.data.DataError
        The dataset's files are missing or corrupt.
    """
    if model not in models.MODELS:
        raise SpecError(f"unknown model {model!r}; choose one of {sorted(models.MODELS)}")
    try:
        method_cls = methods.get(method)
    except methods.MethodError as err:
        raise SpecError(str(err)) from None
    if dataset not in data.DATASETS:
        raise SpecError(f"unknown dataset {dataset!r}; choose one of {sorted(data.DATASETS)}")
    lacking = set(method_cls.requires) - models.capabilities(model)
    if lacking:
        raise SpecError(f"method {method!r} does not apply to model {model!r}: it needs "
                        f"{sorted(lacking)} ({'; '.join(methods.CAPABILITIES[c] for c in sorted(lacking))}), "
                        f"which {model!r} lacks (it has {sorted(models.capabilities(model))})")
    defaults = models.DEFAULTS[model]
    unknown = set(hyperparameters) - set(defaults)
    if unknown:
        raise SpecError(f"model {model!r} has no hyperparameter(s) {sorted(unknown)}; it takes "
                        f"{sorted(defaults)} (a method's settings go in settings=)")
    own = method_cls.defaults_for(model)
    unknown = set(settings or {}) - set(own)
    if unknown:
        raise SpecError(f"method {method!r} has no setting(s) {sorted(unknown)}; it takes "
                        f"{sorted(own) or 'none'}")
    try:
        ratios = tuple(imbalance.validate_ratio(r) for r in test_ratios)
    except imbalance.ImbalanceError as err:
        raise SpecError(f"test ratio: {err}") from None
    loaded = data.load(dataset, data_dir)
    available = imbalance.class_counts(loaded.y_train, loaded.num_classes)
    counts = tuple(int(c) for c in train_counts)
    if len(counts) != loaded.num_classes:
        raise SpecError(f"{dataset} has {loaded.num_classes} classes but train_counts has {len(counts)}")
    for c, (want, have) in enumerate(zip(counts, available)):
        if not 1 <= want <= have:
            raise SpecError(f"{dataset}: class {c} ({loaded.class_names[c]}) has {have} training "
                            f"samples; a count of {want} is not possible (use 1..{have})")
    model_args = {**defaults, **hyperparameters}
    measured, placed = models.measurements(model), models.placement(model)
    version, path = methods.identity(method_cls)
    return RunSpec(
        dataset, model, method, counts, ratios, int(seed),
        hyperparameters=sorted_pairs({k: v for k, v in model_args.items()
                                      if k not in measured and k not in placed}),
        settings=sorted_pairs({**own, **(settings or {})}),
        measurements=sorted_pairs({k: v for k, v in model_args.items() if k in measured}),
        placement=sorted_pairs({k: v for k, v in model_args.items() if k in placed}),
        data_source=data_fingerprint(dataset, loaded.source), harness_version=__version__,
        method_version=version, method_path=path)


def training_key(spec: RunSpec) -> str:
    """The key of the model a run trains. Runs with one training key train one model
    (:func:`harness.runs.training.execute_group`); the sections that only matter after training
    are dropped:

    * the test ratios (every run evaluates the trained model on its own test sets);
    * the measurements (e.g. the Hessian spectrum a network measures of itself);
    * for a post-hoc method (one that ``trains_like`` another: logit adjustment, Laplace), its
      name and settings: its model is its base method's, with the base's settings.

    A method defined outside the registry of this process keeps its own run (its key).
    """
    cls = methods.METHODS.get(spec.method)
    if cls is None:
        return spec.key
    trained_as = replace(spec, test_ratios=(), measurements=())
    if cls.trains_like is not None:
        base = methods.get(cls.trains_like)
        version, path = methods.identity(base)
        trained_as = replace(trained_as, method=base.name, method_version=version,
                             method_path=path, settings=sorted_pairs(base_settings(spec, base)))
    return trained_as.key


def base_settings(spec: RunSpec, base) -> dict:
    """The settings a post-hoc run's model trains with: its base method's for the model, with
    the values of the spec's settings the base also has (a post-hoc subclass of SAM with
    ``rho = 0.3`` shares the model of SAM at ``rho = 0.3``)."""
    defaults = base.defaults_for(spec.model)
    return {**defaults, **{k: v for k, v in spec.settings if k in defaults}}
