"""Run specifications: a frozen, hashable description of one training run.

Everything that changes a run's result is in its spec, and the store keys results by the spec's
hash, so two claims asking for the same run share one result and a changed hyperparameter, data
file or harness version never reuses a stale one. Build specs with :func:`make_spec`, which
validates every field before anything trains.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from . import __version__, data, imbalance, methods, models


class SpecError(ValueError):
    """A run spec names something unknown or impossible; the message says what and how to fix it."""


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    Attributes
    ----------
    dataset, model, method : str
        Registry names (:mod:`harness.data`, :mod:`harness.models`, :mod:`harness.methods`).
    train_counts : tuple of int
        Samples per class drawn from the train split (label order).
    test_ratios : tuple of float
        Imbalance ratios of the test sets drawn from the held-out split; each run is evaluated
        on all of them, since one model serves every test ratio.
    seed : int
        Seeds the train subset, the test sets, the method's resampling and the model.
    hyperparameters : tuple of (name, value)
        The model's hyperparameters, sorted by name, defaults filled in.
    data_source : str
        Which copy of the data (variant and checksum prefix).
    harness_version : str
        Bumped whenever the harness changes how a result is computed.
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunSpec:
        return cls(
            dataset=raw["dataset"], model=raw["model"], method=raw["method"],
            train_counts=tuple(raw["train_counts"]), test_ratios=tuple(raw["test_ratios"]),
            seed=raw["seed"], hyperparameters=tuple(tuple(p) for p in raw["hyperparameters"]),
            data_source=raw["data_source"], harness_version=raw["harness_version"],
        )

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


def make_spec(dataset: str, model: str, method: str, train_counts, test_ratios, seed: int,
              data_dir=None, **hyperparameters) -> RunSpec:
    """Validate a run's settings against the registries and the data, and return its spec.

    Raises
    ------
    SpecError
        Unknown dataset, model, method or hyperparameter; a test ratio outside (0, 1]; or more
        samples of a class than its train split holds.
    harness.data.DataError
        The dataset's files are missing or corrupt.
    """
    if model not in models.MODELS:
        raise SpecError(f"unknown model {model!r}; choose one of {sorted(models.MODELS)}")
    if method not in methods.METHODS:
        raise SpecError(f"unknown method {method!r}; choose one of {sorted(methods.METHODS)}")
    if dataset not in data.DATASETS:
        raise SpecError(f"unknown dataset {dataset!r}; choose one of {sorted(data.DATASETS)}")
    unknown = set(hyperparameters) - set(models.DEFAULTS[model])
    if unknown:
        raise SpecError(f"model {model!r} has no hyperparameter(s) {sorted(unknown)}; "
                        f"it takes {sorted(models.DEFAULTS[model])}")
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
    params = {**models.DEFAULTS[model], **hyperparameters}
    return RunSpec(dataset, model, method, counts, ratios, int(seed),
                   tuple(sorted(params.items())), source_fingerprint(loaded.source), __version__)
