"""Models behind one small fit/predict contract, in a registry by name.

The contract (checked for every registered model by ``tests/test_models.py``):

* ``Model(seed=..., n_jobs=..., **hyperparameters)`` builds an unfitted model;
* ``fit(x, y, sample_weight=None, method=None, epoch_size=None)`` trains on features ``x`` and
  int labels ``y`` and returns self; ``method`` is a :class:`harness.methods.Method` whose hooks
  the model calls where it has them (None: ERM); ``epoch_size`` is how many rows an epoch draws
  (models without epochs ignore it);
* the class attribute ``CAPABILITIES`` says which hooks it honours (the keys of
  :data:`harness.methods.CAPABILITIES`; tabular models: ``rows`` and ``features``, i.e. the rows
  and row weights a method picks). :func:`harness.runs.spec.make_spec` refuses a method needing more;
* ``predict(x)`` returns int64 labels, one per row;
* the same seed and data give the same predictions;
* optionally ``extra_metrics(**measurements)``: measurements of the trained model for the run
  record, the class attribute ``MEASUREMENTS``: the hyperparameters that method reads (and
  training never does), passed to it per run, and ``EXTRA_METRICS``: the names it records for
  every run (the dry run checks them);
* optionally ``init_digest`` after ``fit``: a digest of the model's initial parameters (the
  networks set it), the run record's fingerprint that the seed reached the model; without it
  the record fingerprints the seed the model was built with;
* the modules it imports, declared at registration (``LIBRARIES``, ``register_model(...,
  libraries=...)``): the preflight (:mod:`harness.runs.preflight`) imports them before anything
  trains.

``DEFAULTS[name]`` holds the hyperparameters that go into a run spec, so the store key changes
whenever a hyperparameter does. The neural networks (``small_cnn``, ``airbench_cnn``, ``resnet34``) live in
:mod:`harness.learners.engine`, imported only when one is built so that tabular runs never load torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import nn_hyperparameters, toy

# XGBoost settings from the paper's appendix A.1 (XGBClassifier, XGBoost 1.6.2).
XGBOOST_DEFAULTS = {
    "n_estimators": 100,  # boosting rounds
    "subsample": 0.5,     # row fraction per tree
    "eta": 0.3,           # learning rate
    "max_depth": 6,       # tree depth
}
# LinearSVC settings from appendix A.1 (scikit-learn 1.1.2), on standardized features.
LINEAR_SVM_DEFAULTS = {
    "dual": False,        # primal solver, as in the paper
    "max_iter": 1000,     # solver iterations
    "C": 1.0,             # scikit-learn's default regularization
}


class XGBoostModel:
    """Gradient-boosted trees (``xgboost.XGBClassifier``, histogram method)."""

    CAPABILITIES = frozenset({"rows", "features"})

    def __init__(self, seed: int = 0, n_jobs: int = 1, **params):
        self.params = {**XGBOOST_DEFAULTS, **params}
        self.seed, self.n_jobs = seed, n_jobs

    def fit(self, x, y, sample_weight=None, method=None, epoch_size=None):
        from xgboost import XGBClassifier

        self.classes_ = np.unique(y)
        self.model = XGBClassifier(
            n_estimators=self.params["n_estimators"], subsample=self.params["subsample"],
            learning_rate=self.params["eta"], max_depth=self.params["max_depth"],
            tree_method="hist", random_state=self.seed, n_jobs=self.n_jobs,
        )
        # XGBoost wants labels 0..K-1; map through the classes actually present.
        self.model.fit(x, np.searchsorted(self.classes_, y), sample_weight=sample_weight)
        return self

    def predict(self, x) -> np.ndarray:
        return self.classes_[np.asarray(self.model.predict(x), dtype=np.int64)].astype(np.int64)


class LinearSVMModel:
    """``LinearSVC`` on features standardized with the training set's mean and variance."""

    CAPABILITIES = frozenset({"rows", "features"})

    def __init__(self, seed: int = 0, n_jobs: int = 1, **params):
        self.params = {**LINEAR_SVM_DEFAULTS, **params}
        self.seed = seed

    def fit(self, x, y, sample_weight=None, method=None, epoch_size=None):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        self.model = make_pipeline(StandardScaler(), LinearSVC(random_state=self.seed, **self.params))
        with warnings.catch_warnings():
            # max_iter=1000 is the paper's setting; non-convergence is part of the replication.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x, y, linearsvc__sample_weight=sample_weight)
        return self

    def predict(self, x) -> np.ndarray:
        return np.asarray(self.model.predict(x), dtype=np.int64)


def torch_classifier(**kwargs):
    from ..learners.engine import TorchClassifier  # torch loads only for neural-network runs

    return TorchClassifier(**kwargs)


# What the engine's TorchClassifier honours (kept here so that specs never import torch).
torch_classifier.CAPABILITIES = frozenset({"rows", "loss", "step", "loop", "encoder", "posterior",
                                           "logits"})
# Hyperparameters it reads only after training (measurements of the trained network).
torch_classifier.MEASUREMENTS = frozenset(nn_hyperparameters.MEASUREMENT_SETTINGS)


MODELS: dict[str, Callable] = {"xgboost": XGBoostModel, "linear_svm": LinearSVMModel,
                               "small_cnn": torch_classifier, "resnet34": torch_classifier,
                               "airbench_cnn": torch_classifier, "mlp2d": toy.ToyMLP}
DEFAULTS: dict[str, dict] = {"xgboost": XGBOOST_DEFAULTS, "linear_svm": LINEAR_SVM_DEFAULTS,
                             "small_cnn": nn_hyperparameters.SMALL_CNN,
                             "resnet34": nn_hyperparameters.RESNET34,
                             "airbench_cnn": nn_hyperparameters.AIRBENCH_CNN, "mlp2d": toy.TOY_MLP}
# The modules each model imports (lazily, so that tabular runs never load torch), its
# measurements included: the preflight (harness.runs.preflight) imports them before anything
# trains. A method's own are its ``libraries``.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "xgboost": ("xgboost",),
    "linear_svm": ("sklearn.svm", "sklearn.preprocessing", "sklearn.pipeline"),
    "small_cnn": ("torch", "scipy.sparse.linalg"),  # scipy: the Hessian spectrum (nn.flatness)
    "resnet34": ("torch", "torchvision.models", "scipy.sparse.linalg"),  # its ResNet-34
    "airbench_cnn": ("torch", "scipy.sparse.linalg"),
    "mlp2d": ("torch",),
}
# Models whose runs train on the session's device (--device; the ``gpu`` marker of the full
# profile): declared at registration (``register_model(..., device_bound=True)``). The toy MLP
# is torch too, but small enough that the CPU is its device everywhere.
DEVICE_BOUND: set[str] = {"small_cnn", "resnet34", "airbench_cnn"}
BUILTIN_MODELS = dict(MODELS)  # what a freshly started worker process has (see harness.runs.runner)


def capabilities(name: str) -> frozenset:
    """The method hooks model ``name`` honours (``rows`` alone when its factory declares none)."""
    return frozenset(getattr(MODELS[name], "CAPABILITIES", {"rows"}))


def recorded_extras(name: str) -> tuple[str, ...]:
    """What every record of model ``name`` measures of the trained model (``EXTRA_METRICS`` on
    its factory; none by default): the full-shape dry run checks each is there."""
    return tuple(getattr(MODELS[name], "EXTRA_METRICS", ()))


def can_train(name: str, method_cls) -> bool:
    """Whether model ``name`` honours every capability ``method_cls`` requires."""
    return not set(method_cls.requires) - capabilities(name)


def measurements(name: str) -> frozenset:
    """Hyperparameters of model ``name`` read only after training (``MEASUREMENTS`` on its
    factory; none by default): runs that differ in these alone share one trained model, and
    ``extra_metrics(**values)`` measures it with each run's values."""
    return frozenset(getattr(MODELS[name], "MEASUREMENTS", ()))


def device_bound(name: str) -> bool:
    """Whether model ``name`` trains on the session's device (``--device``: a GPU where there is
    one) rather than always on the CPU; declared at registration."""
    return name in DEVICE_BOUND


# Where a run trains, not how: a run spec keeps these apart from the model's hyperparameters (its
# ``placement`` section), though the factory takes them with the rest.
PLACEMENT = frozenset({"device"})


def placement(name: str) -> frozenset:
    """The placement settings model ``name`` takes (``device`` for the device-bound ones)."""
    return frozenset(DEFAULTS[name]) & PLACEMENT


def libraries(name: str) -> tuple[str, ...]:
    """The modules model ``name`` imports (declared at registration; none by default)."""
    return tuple(LIBRARIES.get(name, ()))


def register_model(name: str, factory: Callable, defaults: dict, libraries=(),
                   device_bound: bool = False) -> None:
    """Add a model to the registry.

    Parameters
    ----------
    name : str
    factory : callable
        ``factory(seed=, n_jobs=, **defaults)`` follows the contract; its ``CAPABILITIES``
        attribute says which method hooks it honours.
    defaults : dict
        Its hyperparameters (they go into every run spec).
    libraries : tuple of str
        The modules it imports (the preflight imports them before training).
    device_bound : bool
        Its runs train on the session's device (``--device``, GPU slots, the ``gpu`` marker of
        the full profile) instead of always on the CPU. Its ``defaults`` then include
        ``"device"``, which the session sets.
    """
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    if isinstance(libraries, str) or not all(isinstance(m, str) and m for m in libraries):
        raise ValueError(f"model {name!r}: libraries must be module names, e.g. ('xgboost',); "
                         f"got {libraries!r}")
    if device_bound and "device" not in defaults:
        raise ValueError(f"model {name!r} is device-bound: its defaults need a 'device' entry "
                         "(e.g. \"device\": \"cpu\"), which the session sets from --device")
    MODELS[name], DEFAULTS[name], LIBRARIES[name] = factory, dict(defaults), tuple(libraries)
    if device_bound:
        DEVICE_BOUND.add(name)


def build(name: str, seed: int, n_jobs: int = 1, **params):
    """Instantiate a registered model; unknown names raise ValueError listing the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    unknown = set(params) - set(DEFAULTS[name])
    if unknown:
        raise ValueError(f"model {name!r} has no hyperparameter(s) {sorted(unknown)}; "
                         f"it takes {sorted(DEFAULTS[name])}")
    return MODELS[name](seed=seed, n_jobs=n_jobs, **{**DEFAULTS[name], **params})
