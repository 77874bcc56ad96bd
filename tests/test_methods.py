"""The method registry, the protocol's contract every registered method must pass, resolution
by name / module:attribute / entry point, and a method's identity in the run key."""

import sys
import textwrap

import numpy as np
import pytest
import torch

from harness import methods
from harness.learners import models
from harness.runs.spec import SpecError, make_spec

LABELS = np.array([0] * 90 + [1] * 10)
FEATURES = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32) + LABELS[:, None]


@pytest.mark.parametrize("name", sorted(methods.BUILTIN_METHODS))
def test_every_method_follows_the_contract(name):
    cls = methods.get(name)
    assert cls.name == name and set(cls.requires) <= set(methods.CAPABILITIES)
    assert "rows" in cls.requires  # every model can at least train on rows
    method = cls()
    x, y, weights, epoch_size = method.resample(FEATURES, LABELS, np.random.default_rng(0))
    assert len(x) == len(y) and x.shape[1:] == FEATURES.shape[1:] and y.dtype.kind == "i"
    assert set(np.unique(y)) == {0, 1}
    if weights is not None:
        assert weights.shape == y.shape and (weights > 0).all()
    again = method.resample(FEATURES, LABELS, np.random.default_rng(0))
    assert np.array_equal(x, again[0]) and np.array_equal(y, again[1])
    # A method's settings for a model are only ones it declares (settings or model_settings).
    for model in models.DEFAULTS:
        assert set(cls.defaults_for(model)) <= set(cls.settings), (name, model)
    if cls.trains_like is not None:  # post-hoc: its runs share a model trained by its base
        base = methods.get(cls.trains_like)
        assert all(getattr(cls, h) is getattr(base, h) for h in methods.base.TRAINING_HOOKS), name


def test_a_post_hoc_method_that_changes_training_is_refused():
    class Sneaky(methods.Method):
        name = "sneaky_post_hoc"
        trains_like = "erm"

        def loss(self, logits, labels, state):
            return super().loss(logits, labels, state) * 2

    with pytest.raises(methods.MethodError, match=r"overrides its training hook\(s\) \['loss'\]"):
        methods.register(Sneaky)
    assert "sneaky_post_hoc" not in methods.METHODS


def test_a_post_hoc_method_of_an_unknown_base_is_refused():
    class Typo(methods.Method):
        name = "typo_post_hoc"
        trains_like = "ermm"

    with pytest.raises(methods.MethodError, match="trains_like='ermm' names no registered method"):
        methods.register(Typo)


@pytest.mark.parametrize("name", sorted(methods.BUILTIN_METHODS))
def test_every_method_runs_its_hooks_on_a_tiny_network(name, monkeypatch):
    """The training-loop contract: each method trains a tiny CNN for one epoch and predicts
    probabilities that sum to one, wherever the CNN has the capabilities it needs; its
    predictions and variants evaluate networks in strict fp32 only, even for CUDA images."""
    from tests.test_batches import (STRICT, LooksLikeCuda, forward_precision, pretend_cuda_autocast,
                                    tf32_allowed)
    from tests.test_engine import small, tiny_images

    cls = methods.get(name)
    if cls.requires - models.capabilities("small_cnn"):
        pytest.skip(f"{name} does not apply to networks")
    x, y = tiny_images()
    settings = {"epochs": 1, "batch_size": 8, "projection_dim": 4,  # SimCLR's pre-training
                "cycles": 1}
    method = cls(**{k: v for k, v in settings.items() if k in cls.settings})
    if name == "simclr_imagenet":
        pytest.skip("needs a weights file (tests/test_simclr.py)")
    xs, ys, weights, epoch_size = method.resample(x, y, np.random.default_rng(0))
    model = small(epochs=1).fit(xs, ys, sample_weight=weights, method=method, epoch_size=epoch_size)
    probabilities = model.probabilities(model.train_images)
    assert torch.allclose(probabilities.sum(1), torch.ones(len(ys)), atol=1e-5)
    assert model.predict(x).shape == (len(x),)
    # The CPU pretends to be CUDA (tests/test_batches.py): no bf16 autocast, no TF32 anywhere.
    pretend_cuda_autocast(monkeypatch)
    images = model.images(x).as_subclass(LooksLikeCuda)
    with tf32_allowed(), forward_precision() as seen:
        model.probabilities(images)
        model.method.variants(model.state, images)
    assert seen and set(seen) == {STRICT}


def test_oversampling_balances_classes():
    plan = methods.create("oversample").rows(LABELS, np.random.default_rng(0))
    assert np.bincount(LABELS[plan.indices]).tolist() == [90, 90] and plan.epoch_size == 100


def test_reweighting_uses_inverse_class_frequency_with_mean_one():
    plan = methods.create("reweight").rows(LABELS, np.random.default_rng(0))
    assert plan.sample_weight[LABELS == 1][0] == pytest.approx(100 / (2 * 10))
    assert plan.sample_weight[LABELS == 0][0] == pytest.approx(100 / (2 * 90))
    assert plan.sample_weight.mean() == pytest.approx(1.0)
    assert plan.sample_weight[LABELS == 1].sum() == pytest.approx(plan.sample_weight[LABELS == 0].sum())


@pytest.fixture
def registry():
    """The method registry, restored after the test."""
    saved = dict(methods.METHODS)
    yield methods.METHODS
    methods.METHODS.clear()
    methods.METHODS.update(saved)


def test_registering_a_method_and_unknown_names(registry):

    class Identity(methods.Method):
        name = "identity"

    methods.register(Identity)
    assert registry["identity"] is Identity

    class Clash(methods.Method):
        name = "identity"

    with pytest.raises(ValueError, match="already registered"):
        methods.register(Clash)
    with pytest.raises(methods.MethodError, match=r"unknown method 'nope'; choose one of \[.*'erm'"):
        methods.get("nope")
    with pytest.raises(methods.MethodError, match="has no setting"):
        methods.create("sam", radius=1)


def test_a_setting_named_like_a_model_hyperparameter_stays_the_method_s(registry):
    """Issue 20 refused ``settings = {"lr": 10.0}``, which trained at learning rate 10 without a
    word; since issue 22 a spec keeps the method's settings in a section of their own, so the
    setting is the method's to read and the model trains at its own learning rate."""
    class FastLoss(methods.Method):
        name = "fast_loss"
        requires = frozenset({"rows", "loss"})
        settings = {"lr": 10.0, "margin": 0.5}

    methods.register(FastLoss)
    spec = make_spec("cifar10-binary", "small_cnn", "fast_loss", (900, 100), (1.0,), 0)
    assert dict(spec.hyperparameters)["lr"] == 0.05 and dict(spec.settings) == {"lr": 10.0, "margin": 0.5}
    assert spec.model_arguments()["lr"] == 0.05
    simclr = make_spec("cifar10-binary", "small_cnn", "simclr", (900, 100), (1.0,), 0,
                       settings={"epochs": 3}, epochs=2)
    assert dict(simclr.hyperparameters)["epochs"] == 2 and dict(simclr.settings)["epochs"] == 3
    with pytest.raises(methods.MethodError, match="none is installed|entry point \\("):
        methods.get("nope")


def test_unsupported_pairs_are_rejected_when_the_spec_is_made():
    with pytest.raises(SpecError, match="'sam' does not apply to model 'xgboost'.*step"):
        make_spec("adult", "xgboost", "sam", (900, 100), (1.0,), 0)
    with pytest.raises(SpecError, match="'smote' does not apply to model 'small_cnn'.*features"):
        make_spec("cifar10-binary", "small_cnn", "smote", (900, 100), (1.0,), 0)


def test_a_method_s_settings_enter_only_its_own_specs():
    erm = make_spec("cifar10-binary", "small_cnn", "erm", (900, 100), (1.0,), 0)
    simclr = make_spec("cifar10-binary", "small_cnn", "simclr", (900, 100), (1.0,), 0,
                       settings={"epochs": 3})
    assert erm.settings == () and dict(simclr.settings)["epochs"] == 3
    assert dict(simclr.hyperparameters) == dict(erm.hyperparameters)
    toy = make_spec("toy2d", "mlp2d", "asymmetric_sam", (400, 20), (1.0,), 0)
    assert dict(toy.settings)["rho"] == 0.1  # the method's value for this model
    with pytest.raises(SpecError, match="no hyperparameter"):
        make_spec("adult", "xgboost", "erm", (900, 100), (1.0,), 0, rho=1)
    with pytest.raises(SpecError, match="'erm' has no setting"):  # another method's setting
        make_spec("adult", "xgboost", "erm", (900, 100), (1.0,), 0, settings={"rho": 1})


USER_METHOD = '''
from harness.methods import Method

class Halved(Method):
    """Cross-entropy at half strength (a user's method)."""
    name = "halved_{tag}"
    requires = frozenset({{"rows", "loss"}})

    def loss(self, logits, labels, state):
        import torch.nn.functional as F
        return 0.5 * F.cross_entropy(logits, labels, reduction="none")

NOT_A_METHOD = 3
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch, registry):
    """Writes a method module ``user_methods_<tag>`` on sys.path; returns (module name, writer)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"user_methods_{tmp_path.name.replace('-', '_')}"

    def write(tag="a", extra=""):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_METHOD.format(tag=tag)) + extra)
        sys.modules.pop(name, None)

    write()
    yield name, write
    sys.modules.pop(name, None)


def test_resolve_by_path_registers_and_keys_by_version_and_source(user_module):
    module, write = user_module
    cls = methods.resolve(f"{module}:Halved")
    assert methods.METHODS["halved_a"] is cls and methods.resolve("halved_a") is cls
    version, path = methods.identity(cls)
    assert version.startswith("1+") and path == f"{module}:Halved"
    spec = make_spec("adult", "xgboost", "erm", (900, 100), (1.0,), 0)
    assert (spec.method_version, spec.method_path) == ("1", "")  # built-in: version alone
    # Editing the module's source changes the method's identity (and so its runs' keys).
    write(extra="\n# an edit\n")
    edited = methods.load_path(f"{module}:Halved")
    assert methods.identity(edited)[0] != version


def test_bad_method_references_say_what_is_wrong(user_module):
    module, _ = user_module
    with pytest.raises(methods.MethodError, match="cannot import module 'no_such_module'"):
        methods.resolve("no_such_module:Thing")
    with pytest.raises(methods.MethodError, match="has no attribute 'Missing'"):
        methods.resolve(f"{module}:Missing")
    with pytest.raises(methods.MethodError, match="is not a method"):
        methods.resolve(f"{module}:NOT_A_METHOD")
    with pytest.raises(methods.MethodError, match="unknown method 'halved'"):
        methods.resolve("halved")


def test_a_method_found_through_an_entry_point(user_module, monkeypatch):
    module, _ = user_module
    from importlib import metadata

    point = metadata.EntryPoint("halved_ep", f"{module}:Halved", methods.ENTRY_POINT_GROUP)
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: [point] if group == methods.ENTRY_POINT_GROUP else [])
    cls = methods.resolve("halved_ep")
    assert cls.name == "halved_a"


def test_a_spec_refuses_a_method_whose_code_changed(user_module):
    module, write = user_module
    cls = methods.resolve(f"{module}:Halved")
    version, path = methods.identity(cls)
    with pytest.raises(methods.MethodError, match="code changed"):
        methods.for_spec(cls.name, version + "x", path)


@pytest.mark.parametrize("name", sorted(methods.BUILTIN_METHODS))
def test_every_method_s_declared_libraries_import(name):
    """What a method declares it imports (the preflight's list, harness.runs.preflight) imports
    in this environment."""
    from harness.runs import preflight

    cls = methods.get(name)
    assert isinstance(cls.libraries, tuple)
    assert preflight.import_failures(cls.libraries) == []
