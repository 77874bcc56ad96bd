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
    """One training run.

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
        The model's hyperparameters and the method's settings, sorted by name, defaults filled
        in (a method's settings are in the spec of that method's runs only).
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
    data_source: str
    harness_version: str
    method_version: str = "1"
    method_path: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunSpec:
        return cls(
            dataset=raw["dataset"], model=raw["model"], method=raw["method"],
            train_counts=tuple(raw["train_counts"]), test_ratios=tuple(raw["test_ratios"]),
            seed=raw["seed"], hyperparameters=tuple(tuple(p) for p in raw["hyperparameters"]),
            data_source=raw["data_source"], harness_version=raw["harness_version"],
            method_version=raw.get("method_version", "1"), method_path=raw.get("method_path", ""),
        )

    @property
    def device(self) -> str:
        """Where the run trains: its ``device`` hyperparameter (a network's), else ``"cpu"``.
        Executors route by it (a CPU-only run never takes a GPU slot or a GPU request)."""
        return dict(self.hyperparameters).get("device", "cpu")

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


def split_hyperparameters(model: str, method: str, hyperparameters: dict) -> tuple[dict, dict]:
    """``(model hyperparameters, method settings)`` of a spec's merged hyperparameters."""
    model_keys = set(models.DEFAULTS[model])
    return ({k: v for k, v in hyperparameters.items() if k in model_keys},
            {k: v for k, v in hyperparameters.items() if k not in model_keys})


def setting_collisions(method_cls, model: str) -> list[str]:
    """Each setting of ``method_cls`` that is also a hyperparameter of ``model``, as a sentence
    naming both (empty when there is none).

    A method's settings and its model's hyperparameters share one namespace in a spec, so a
    method setting ``{"epochs": 1}`` or ``{"lr": 10.0}`` would silently train its runs another
    way than ERM's, and every comparison with ERM would stop being like for like. A method that
    changes the training length or the learning rate does it in ``prepare(state)`` with a
    setting of its own name (``overfit``: ``overfit_epoch_scale``).
    """
    hyperparameters = models.DEFAULTS[model]
    return [f"method {method_cls.name!r} setting {key!r} (= {value!r}) is also model {model!r}'s "
            f"hyperparameter {key!r} (= {hyperparameters[key]!r})"
            for key, value in sorted(method_cls.defaults_for(model).items()) if key in hyperparameters]


def check_method_settings(method_cls, model: str | None = None) -> None:
    """Refuse a method whose settings collide with the hyperparameters of ``model`` (default:
    every model it applies to).

    Raises
    ------
    SpecError
        Naming each colliding setting, the model and the fix.
    """
    clashes = [clash for name in ([model] if model else sorted(models.MODELS))
               if not set(method_cls.requires) - models.capabilities(name)
               for clash in setting_collisions(method_cls, name)]
    if clashes:
        raise SpecError("; ".join(clashes) + ": a method may not override its model's "
                        "hyperparameters (its runs would not compare like for like with ERM's). "
                        "Rename the setting and apply it in prepare(state), e.g. "
                        "state.epochs = int(state.epochs * self.settings['my_epoch_scale'])")


def make_spec(dataset: str, model: str, method: str, train_counts, test_ratios, seed: int,
              data_dir=None, **hyperparameters) -> RunSpec:
    """Validate a run's settings against the registries and the data, and return its spec.

    ``hyperparameters`` override the model's defaults and the method's settings. A setting of
    another registered method is accepted and left out (an arm's settings for one of its methods
    never change the keys of its other methods' runs).

    Raises
    ------
    SpecError
        Unknown dataset, model, method or hyperparameter; a method the model cannot train with
        (e.g. XGBoost + SAM); a method setting that is also a model hyperparameter
        (:func:`setting_collisions`); a test ratio outside (0, 1]; or more samples of a class
        than its train split holds.
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
    check_method_settings(method_cls, model)
    own = method_cls.defaults_for(model)
    others = {k for cls in methods.METHODS.values() for k in cls.settings} - set(own)
    unknown = set(hyperparameters) - set(models.DEFAULTS[model]) - set(own) - others
    if unknown:
        raise SpecError(f"model {model!r} with method {method!r} has no hyperparameter(s) "
                        f"{sorted(unknown)}; it takes {sorted(set(models.DEFAULTS[model]) | set(own))}")
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
    params = {**models.DEFAULTS[model], **own,
              **{k: v for k, v in hyperparameters.items() if k not in others}}
    version, path = methods.identity(method_cls)
    return RunSpec(dataset, model, method, counts, ratios, int(seed),
                   tuple(sorted(params.items())), source_fingerprint(loaded.source), __version__,
                   version, path)


def training_key(spec: RunSpec) -> str:
    """The key of the model a run trains. Runs with one training key train one model
    (:func:`harness.runs.training.execute_group`); what only happens after training is left out:

    * the test ratios (every run evaluates the trained model on its own test sets);
    * the model's measurement settings (``models.measurements``, e.g. the Hessian spectrum a
      network measures of itself);
    * for a post-hoc method (one that ``trains_like`` another: logit adjustment, Laplace), its own
      settings and its name: its model is its base method's.

    A method defined outside the registry of this process keeps its own run (its key).
    """
    cls = methods.METHODS.get(spec.method)
    if cls is None:
        return spec.key
    after_training = set(models.measurements(spec.model))
    hp = {k: v for k, v in spec.hyperparameters if k not in after_training}
    trained_as = spec
    if cls.trains_like is not None:
        base = methods.get(cls.trains_like)
        own = set(cls.settings) - set(base.settings)
        hp = {**base.defaults_for(spec.model), **{k: v for k, v in hp.items() if k not in own}}
        version, path = methods.identity(base)
        trained_as = replace(spec, method=base.name, method_version=version, method_path=path)
    return replace(trained_as, test_ratios=(), hyperparameters=tuple(sorted(hp.items()))).key
