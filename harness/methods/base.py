"""What a method is: one class with hooks, a registry by name, and a method's identity.

A method changes one or more stages of training; each stage is a hook with a default that is
plain empirical risk minimization (ERM), so a method overrides only what it changes (DomainBed
style: one class per algorithm, each with its own settings block):

=====================  ==============================================  ===================
hook                   what it decides                                 needs (capability)
=====================  ==============================================  ===================
``resample``           the rows (repeats, synthetic rows) and a        ``rows``
                       weight per row; ``rows`` for index-only plans   (``features`` for
                                                                        synthetic rows)
``prepare``            before the loop: epochs, learning rate,         ``loop``
                       pre-training, per-sample SAM radii, ...
``optimizer``          the optimizer (default SGD + momentum)          ``loop``
``lr_factor``          the learning-rate schedule (default cosine)     ``loop``
``epoch_start``        per-epoch changes, e.g. deferred re-weighting   ``loop``
``loss``               per-sample loss given the class counts          ``loss``
``step``               one optimizer step from a per-sample loss (SAM) ``step``
``epoch_end``          after each epoch (SGHMC collects a sample)      ``loop``
``finish``             a post-training stage (Laplace)                 ``posterior``
``probabilities``      the predictive (posterior averaging; by         ``logits``
                       default the softmax of ``adjust_logits``)
``variants``           other predictors recorded beside the main one   ``logits``
=====================  ==============================================  ===================

A method declares the capabilities it needs (``requires``); a model declares the ones it has
(``CAPABILITIES`` in :mod:`harness.learners.models`), and :func:`harness.runs.spec.make_spec` rejects a pair
that does not fit before anything trains. The hooks receive the :class:`TrainingState` of the
model being trained (network, labels, class counts, weights, epochs, learning rate, ...).

A method owns its settings (``settings``, units in comments; ``model_settings`` for per-model
values): they go into a run's spec only when that method runs, so adding or tuning a method
never changes another method's runs. A method's identity in the spec is its name, its
``version`` and, for a method defined outside this package, a hash of its module's source, so
editing a method retrains its runs and an unchanged one is reused. A method declares the
modules it imports beyond its model's (``libraries``), which the preflight imports before
anything trains.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..caching import ObjectCache

# What a model can let a method change (models declare a subset in harness.learners.models).
CAPABILITIES = {
    "rows": "trains on the rows and per-row weights a method picks",
    "features": "rows are feature vectors a resampler can interpolate (SMOTE)",
    "loss": "minimizes a per-sample loss the method can replace",
    "step": "lets the method take the optimizer step (SAM)",
    "loop": "trains in epochs with optimizer, schedule and per-epoch hooks",
    "encoder": "a network whose encoder can be pre-trained and its classifier replaced",
    "posterior": "a post-training stage over the trained network (Laplace)",
    "logits": "predicts through logits the method can adjust or average",
}

ENTRY_POINT_GROUP = "imbalance_claims.methods"


class MethodError(ValueError):
    """A method name or path that does not resolve, or an object that is not a method."""


@dataclass(frozen=True)
class TrainPlan:
    """Rows to train on (indices into the training subset, repeats allowed), their weights, and
    for models that train in epochs, how many rows one epoch draws from ``indices`` (None: all)."""

    indices: np.ndarray
    sample_weight: np.ndarray | None = None
    epoch_size: int | None = None


@dataclass
class TrainingState:
    """What a method's hooks see and may change while a model trains.

    ``net`` the network, ``params`` its trainable parameters, ``images`` / ``labels`` the
    training rows on the device, ``weights`` one weight per row (or None; hooks may replace it),
    ``class_counts`` training rows per class (a tensor), ``hp`` the model's hyperparameters,
    ``epochs`` / ``lr`` / ``stop_when_fit`` the loop's budget (``prepare`` may change them),
    ``generator`` the run's seeded generator, ``extra`` anything a method keeps between hooks.
    """

    net: Any
    labels: Any
    num_classes: int
    class_counts: Any
    hp: dict
    seed: int
    generator: Any = None
    images: Any = None
    weights: Any = None
    params: list = field(default_factory=list)
    epochs: int = 0
    lr: float = 0.0
    stop_when_fit: bool = False
    device: Any = None
    extra: dict = field(default_factory=dict)
    # images -> their logits, per images object: see network_logits; the engine clears it
    # (forget_logits)
    logits_seen: ObjectCache = field(default_factory=ObjectCache, repr=False)

    def network_logits(self, images_u8):
        """The trained network's logits for network-ready uint8 images, computed once per
        images tensor while the network stays as it is, and handed out as a copy (a caller may
        change it in place).

        Runs that share one trained network predict the same images with it: an ERM run and its
        twin with other measurements, a post-hoc correction (``adjust_logits``), Laplace's MAP
        variant. The engine forgets the logits whenever the network may change (a
        post-training stage)."""
        from ..nn.batches import predict_logits

        return self.logits_seen.get(images_u8, lambda images: predict_logits(self.net, images)).clone()

    def forget_logits(self) -> None:
        """The network may have changed: recompute logits from now on."""
        self.logits_seen.clear()


class Method:
    """Empirical risk minimization; every other method overrides some of these hooks.

    Subclass, set ``name`` (and ``version``, ``requires``, ``settings`` as needed), override
    hooks, and register with :func:`register` (or point ``--method`` at ``module:Class``).
    Settings are read with ``self.settings[...]`` and reach the run spec, so a changed value
    retrains. Bump ``version`` when you change what a method computes.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    requires: ClassVar[frozenset] = frozenset({"rows"})
    settings: ClassVar[dict] = {}
    model_settings: ClassVar[dict[str, dict]] = {}  # model name -> settings that differ for it
    # A post-hoc method trains exactly as the method named here (its own settings apart: it
    # overrides no training hook) and differs only in its post-training stage (``finish``) and
    # how it predicts; runs of both share one trained model (harness.runs.training.execute_group).
    trains_like: ClassVar[str | None] = None
    # Shown in reports and --method listings: the paper or source it follows.
    reference: ClassVar[str] = ""
    # Modules its hooks import (lazily) beyond its model's (``harness.learners.models.libraries``):
    # the preflight (harness.runs.preflight) imports them before anything trains, so a broken
    # install stops the session with its fix instead of failing runs one by one.
    libraries: ClassVar[tuple[str, ...]] = ()
    # A baseline of the methods-under-test zoo (claims/test_methods_under_test.py): the zoo's
    # arms train every zoo method that applies to their model (harness.experiments.protocols).
    zoo: ClassVar[bool] = False
    # The names ``variants`` returns (other predictors recorded beside the main one): the dry run
    # checks that each run of the method records every one of them.
    variant_names: ClassVar[tuple[str, ...]] = ()

    # -- what the method costs and how the dry run shrinks it (harness.experiments.plan, .dryrun)
    @classmethod
    def training_passes(cls, images: int, epochs: int, settings: dict) -> float:
        """Work of training a network with this method, in image passes (forward and backward
        of one training image): ``images`` training images for the model's ``epochs``, with the
        method's ``settings``. ERM: one pass per image per epoch."""
        return float(images * epochs)

    @classmethod
    def post_training_passes(cls, images: int, settings: dict) -> float:
        """Work of the post-training stage (``finish``) in image passes; none by default."""
        return 0.0

    @classmethod
    def dry_run_budget(cls, hyperparameters: dict, settings: dict) -> tuple[dict, dict]:
        """What the full-shape dry run (:mod:`harness.experiments.dryrun`) changes for this
        method, given the spec's model ``hyperparameters`` (after the dry run's own shrinking:
        one epoch) and the method's ``settings``: ``(hyperparameters, settings)`` that replace
        the spec's, less work with every shape and branch kept. Nothing by default; SGHMC keeps
        an epoch per cycle, SimCLR pre-trains one epoch."""
        return {}, {}

    def __init__(self, **settings):
        unknown = set(settings) - set(type(self).settings)
        if unknown:
            raise MethodError(f"method {self.name!r} has no setting(s) {sorted(unknown)}; "
                              f"it takes {sorted(type(self).settings)}")
        self.settings = {**type(self).settings, **settings}

    @classmethod
    def defaults_for(cls, model: str) -> dict:
        """The method's settings for ``model`` (``settings`` with ``model_settings[model]`` over it)."""
        return {**cls.settings, **cls.model_settings.get(model, {})}

    # -- data ----------------------------------------------------------------------------------
    def rows(self, y: np.ndarray, rng: np.random.Generator) -> TrainPlan:
        """Every sample once, unweighted."""
        return TrainPlan(np.arange(len(y)))

    def resample(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, categorical=()):
        """``(x, y, sample_weight, epoch_size)`` to train on; by default the rows of :meth:`rows`.

        ``categorical`` is the dataset's one-hot blocks (``harness.data.Dataset.categorical``):
        a method that makes synthetic rows keeps each block one-hot."""
        plan = self.rows(y, rng)
        return x[plan.indices], y[plan.indices], plan.sample_weight, plan.epoch_size

    # -- the training loop -----------------------------------------------------------------------
    def prepare(self, state: TrainingState) -> dict:
        """Before the first epoch; returns entries for the training log."""
        return {}

    def optimizer(self, state: TrainingState, params, lr: float):
        from ..nn.optim import sgd

        return sgd(params, lr, state.hp)  # the recipe's SGD (momentum, weight decay, Nesterov)

    def lr_factor(self, step: int, total_steps: int) -> float:
        from ..nn.optim import cosine

        return cosine(step, total_steps)

    def epoch_start(self, state: TrainingState, epoch: int) -> None:
        """Before each epoch (0-based)."""

    def loss(self, logits, labels, state: TrainingState):
        """Per-sample loss of fp32 ``logits`` (batch x classes) at int ``labels``: cross-entropy."""
        import torch.nn.functional as F

        return F.cross_entropy(logits, labels, reduction="none")

    def step(self, state: TrainingState, per_sample_loss, idx, optimizer) -> None:
        """One step: ``per_sample_loss()`` evaluates the batch (rows ``idx``), weights applied."""
        optimizer.zero_grad(set_to_none=True)
        per_sample_loss().mean().backward()
        optimizer.step()

    def epoch_end(self, state: TrainingState, epoch: int) -> None:
        """After each epoch (0-based)."""

    def finish(self, state: TrainingState) -> dict:
        """After training (a post-training stage); returns entries for the training log."""
        return {}

    # -- predicting ------------------------------------------------------------------------------
    def adjust_logits(self, logits, state: TrainingState):
        """The logits predictions are made from (post-hoc corrections override this)."""
        return logits

    def probabilities(self, state: TrainingState, images_u8):
        """Class probabilities for network-ready uint8 images (the model's predictive)."""
        return self.adjust_logits(state.network_logits(images_u8), state).softmax(1)

    def variants(self, state: TrainingState, images_u8) -> dict:
        """Other predictors' labels for ``images_u8`` (name -> int64 array), recorded beside."""
        return {}


# ------------------------------------------------------------------------------------- registry

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a :class:`Method` subclass to the registry under ``cls.name``."""
    check_method_class(cls, repr(cls))
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is already registered")
    METHODS[cls.name] = cls
    return cls


def check_method_class(obj, where: str) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise MethodError(f"{where} is not a method: expected a subclass of "
                          f"harness.methods.Method, got {type(obj).__name__}")
    if not obj.name:
        raise MethodError(f"{where} has no name: set the class attribute name = '...'")
    unknown = set(obj.requires) - set(CAPABILITIES)
    if unknown:
        raise MethodError(f"method {obj.name!r} requires unknown capabilities {sorted(unknown)}; "
                          f"known: {sorted(CAPABILITIES)}")
    if isinstance(obj.libraries, str) or not all(isinstance(m, str) and m for m in obj.libraries):
        raise MethodError(f"method {obj.name!r}: libraries must be a tuple of module names "
                          f"(e.g. ('laplace',)); got {obj.libraries!r}")
    if "categorical" not in inspect.signature(obj.resample).parameters:
        raise MethodError(f"method {obj.name!r} overrides resample(x, y, rng) without the "
                          "categorical parameter: define resample(self, x, y, rng, "
                          "categorical=()) (the dataset's one-hot column blocks)")
    if obj.trains_like is not None and obj.trains_like not in METHODS:
        raise MethodError(f"method {obj.name!r}: trains_like={obj.trains_like!r} names no "
                          f"registered method; choose one of {sorted(METHODS)}")
    base = METHODS.get(obj.trains_like) if obj.trains_like is not None else None
    changed = [hook for hook in TRAINING_HOOKS if base and getattr(obj, hook) is not getattr(base, hook)]
    if changed:  # its runs would share a model trained with hooks it does not have
        raise MethodError(f"method {obj.name!r} trains like {base.name!r} but overrides its "
                          f"training hook(s) {changed}; a post-hoc method may change only "
                          "finish and the predictive (adjust_logits, probabilities, variants)")


# The hooks that decide how a model trains: a post-hoc method (``trains_like``) keeps its base's.
TRAINING_HOOKS = ("rows", "resample", "prepare", "optimizer", "lr_factor", "epoch_start", "loss",
                  "step", "epoch_end")


def zoo() -> tuple[str, ...]:
    """The methods-under-test zoo: every registered method that declares ``zoo = True``, in the
    order they registered (the report's order)."""
    return tuple(name for name, cls in METHODS.items() if cls.zoo)


def get(name: str) -> type[Method]:
    """The registered method class ``name``; unknown names raise listing the known ones."""
    if name not in METHODS:
        installed = entry_point_names()
        raise MethodError(f"unknown method {name!r}; choose one of {sorted(METHODS)}, an installed "
                          f"{ENTRY_POINT_GROUP!r} entry point ("
                          + (", ".join(installed) if installed else "none is installed")
                          + "), or module:Class (e.g. my_methods:MyLoss, importable from "
                          "PYTHONPATH)")
    return METHODS[name]


def entry_point_names() -> list[str]:
    """Names of the installed entry points of the methods group, sorted (what ``--method`` also
    accepts besides registered names and ``module:Class``)."""
    from importlib.metadata import entry_points

    return sorted({point.name for point in entry_points(group=ENTRY_POINT_GROUP)})


def create(name: str, **settings) -> Method:
    """An instance of the registered method ``name`` with ``settings`` over its defaults."""
    return get(name)(**settings)


def import_path(cls: type[Method]) -> str:
    """``module:QualName`` of a method class (how a worker process finds it)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def load_path(path: str) -> type[Method]:
    """Import ``module:attribute`` and check that it is a method class."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise MethodError(f"{path!r} is not module:attribute (e.g. mypackage.methods:MyLoss)")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or an error raised while importing it
        raise MethodError(f"cannot import module {module_name!r} for method {path!r}: "
                          f"{type(err).__name__}: {err}") from None
    obj = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise MethodError(f"module {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    check_method_class(obj, path)
    return obj


def from_entry_points(name: str) -> type[Method] | None:
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            try:
                obj = point.load()
            except Exception as err:
                raise MethodError(f"entry point {name!r} ({point.value}) of group "
                                  f"{ENTRY_POINT_GROUP!r} does not load: {type(err).__name__}: "
                                  f"{err}") from None
            check_method_class(obj, f"entry point {name!r} ({point.value})")
            return obj
    return None


def resolve(ref: str) -> type[Method]:
    """A method class from a registered name, a ``module:attribute`` path, or an entry point of
    the ``imbalance_claims.methods`` group; registers it (under its ``name``) when it is new."""
    if ref in METHODS:
        return METHODS[ref]
    cls = load_path(ref) if ":" in ref else from_entry_points(ref)
    if cls is None:
        get(ref)  # raises, listing the known names
    if METHODS.get(cls.name) not in (None, cls):
        raise MethodError(f"{ref!r} is named {cls.name!r}, which another method already uses "
                          f"({import_path(METHODS[cls.name])}); give it another name")
    return register(cls)


def builtin(cls: type[Method]) -> bool:
    """Whether a method class is part of this package (its runs are keyed by version alone)."""
    return cls.__module__.split(".")[0] == __name__.split(".")[0]


def source_hash(cls: type[Method]) -> str:
    """sha256 (12 hex digits) of the source of the module defining ``cls``."""
    module = inspect.getmodule(cls)
    try:
        text = inspect.getsource(module)
    except (OSError, TypeError):  # e.g. defined in an interactive session
        text = inspect.getsource(cls)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def identity(cls: type[Method]) -> tuple[str, str]:
    """``(version, import path)`` that go into a run spec: a built-in method is its version and
    no path; a method from elsewhere is ``version+source hash`` and its ``module:Class`` path."""
    if builtin(cls):
        return str(cls.version), ""
    return f"{cls.version}+{source_hash(cls)}", import_path(cls)


def for_spec(name: str, version: str, path: str) -> type[Method]:
    """The method class a spec names, importing it by path in a process that lacks it, and
    refusing to train if its code changed since the spec was made."""
    cls = METHODS.get(name)
    if path and (cls is None or import_path(cls) != path):
        # Not registered here (a fresh worker), or registered here as another class (a worker
        # has the built-in under the name a replacement took): the spec's path decides.
        cls = load_path(path)
        METHODS.setdefault(name, cls)
    if cls is None:
        get(name)
    found = identity(cls)[0]
    if found != version:
        raise MethodError(f"method {name!r} is at {found} here but the run was planned at "
                          f"{version}: its code changed during the session; run again")
    return cls
