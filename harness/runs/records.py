"""Reading a run record: typed accessors over the JSON-ready dict a run makes.

:func:`harness.runs.training.execute_group` writes records as plain dicts (they go to the store
as JSON); everything that reads one goes through :class:`RecordView`, so the record's layout
is spelled out here and in the code that writes it, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def ratio_key(ratio: float) -> str:
    """The key under which a test ratio's metrics are stored (``0.1`` -> ``"0.1"``)."""
    return f"{float(ratio):g}"


@dataclass(frozen=True)
class Metrics:
    """Classification metrics of one predictor on one set of samples."""

    raw: dict

    @property
    def accuracy(self) -> float:
        return self.raw["accuracy"]

    @property
    def error(self) -> float:
        """1 - accuracy."""
        return 1.0 - self.raw["accuracy"]

    @property
    def balanced_accuracy(self) -> float:
        return self.raw["balanced_accuracy"]

    @property
    def balanced_error(self) -> float:
        """Mean per-class error."""
        return 1.0 - self.raw["balanced_accuracy"]

    @property
    def per_class_error(self) -> list:
        """Error per class in label order (None for a class absent from the set)."""
        return self.raw["per_class_error"]

    @property
    def counts(self) -> list:
        """Samples per class in the set."""
        return self.raw["counts"]


@dataclass(frozen=True)
class Predictor:
    """One predictor's metrics on the run's test sets (the main one, or a variant)."""

    name: str
    tests: dict  # ratio key -> metrics dict

    def test(self, ratio: float) -> Metrics:
        """Metrics on the test set at ``ratio`` (KeyError naming the ratios it has)."""
        key = ratio_key(ratio)
        if key not in self.tests:
            raise KeyError(f"{self.name}: no test set at r = {key}; it has {sorted(self.tests, key=float)}")
        return Metrics(self.tests[key])

    @property
    def ratios(self) -> list[float]:
        return sorted(float(k) for k in self.tests)

    @property
    def most_balanced(self) -> Metrics:
        """Metrics on the most balanced test set the run has."""
        return self.test(max(self.ratios))


@dataclass(frozen=True)
class RecordView:
    """Typed access to a run record (the dict :func:`harness.runs.training.record_run` makes)."""

    raw: dict

    @property
    def key(self) -> str:
        return self.raw.get("key", "(no key)")  # a hand-made record (tests) may have none

    @property
    def method(self) -> str:
        return self.raw.get("spec", {}).get("method", "(no method)")

    @property
    def class_names(self) -> list[str]:
        return self.raw["class_names"]

    @property
    def train(self) -> Metrics:
        """Metrics on the training subset (its distinct samples, before any resampling)."""
        return Metrics(self.raw["metrics"]["train"])

    @property
    def predictions(self) -> Predictor:
        """The run's main predictor on its test sets."""
        return Predictor(f"run {self.key} ({self.method})", self.raw["metrics"]["test"])

    def test(self, ratio: float) -> Metrics:
        """The main predictor's metrics on the test set at ``ratio``."""
        return self.predictions.test(ratio)

    def variant(self, name: str) -> Predictor:
        """Another predictor the run recorded (``"map"`` of a Laplace run, ``"linear_probe"`` of
        a SimCLR run); KeyError naming those it has."""
        variants = self.raw["metrics"].get("variants", {})
        if name not in variants:
            raise KeyError(f"run {self.key} ({self.method}) recorded no {name!r} predictions; it "
                           f"has {sorted(variants)}")
        return Predictor(f"run {self.key} variant {name}", variants[name]["test"])

    def extra(self, name: str) -> Any:
        """A measurement the model made of itself (``hessian_top_eigenvalues``,
        ``loss_along_direction``, ``minority_margin_mean``, ...); KeyError naming those it has."""
        extra = self.raw["metrics"].get("extra", {})
        if name not in extra:
            raise KeyError(f"run {self.key} ({self.method}) measured no {name!r}; it has {sorted(extra)}")
        return extra[name]

    @property
    def fingerprints(self) -> dict:
        """What the run drew from its seed (:func:`harness.runs.training.fingerprints`)."""
        return self.raw["fingerprints"]

    @property
    def metrics(self) -> dict:
        """All of the run's metrics, as stored (for comparing two runs' numbers)."""
        return self.raw["metrics"]
