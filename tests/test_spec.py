"""Run specs: validation errors before any training, and stable hashing."""

import pytest

from harness.runs.spec import RunSpec, SpecError, make_spec


def test_spec_key_is_stable_and_round_trips(synthetic):
    spec = make_spec("synthetic", "spy", "erm", (100, 20), (0.1, 1.0), seed=3)
    again = make_spec("synthetic", "spy", "erm", [100, 20], [0.1, 1], seed=3)
    assert spec == again and spec.key == again.key
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert make_spec("synthetic", "spy", "erm", (100, 20), (0.1, 1.0), seed=4).key != spec.key


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "smot"}, "unknown method 'smot'"),
    ({"model": "resnet"}, "unknown model 'resnet'"),
    ({"dataset": "mnist"}, "unknown dataset 'mnist'"),
    ({"test_ratios": (0.0,)}, r"\(0, 1\]"),
    ({"test_ratios": (2.0,)}, r"\(0, 1\]"),
    ({"train_counts": (100, 61)}, "has 60 training samples"),
    ({"train_counts": (100,)}, "2 classes"),
])
def test_bad_input_is_rejected_with_a_clear_message(synthetic, kwargs, match):
    args = dict(dataset="synthetic", model="spy", method="erm", train_counts=(100, 20),
                test_ratios=(1.0,), seed=0)
    args.update(kwargs)
    with pytest.raises(SpecError, match=match):
        make_spec(**args)


def test_unknown_hyperparameter(synthetic):
    with pytest.raises(SpecError, match="no hyperparameter"):
        make_spec("synthetic", "xgboost", "erm", (100, 20), (1.0,), 0, depth=3)


def test_a_spec_keeps_each_owner_s_settings_in_its_own_section():
    """Issue 22: the model's hyperparameters, the method's settings, the measurements and the
    placement are sections of the spec; the training key drops the sections that only matter
    after training, and a method setting never merges over a model hyperparameter."""
    from harness.runs.spec import training_key

    spec = make_spec("cifar10-binary", "small_cnn", "sam", (900, 100), (1.0,), 0,
                     settings={"rho": 0.1}, device="cpu", hessian_top_k=3, epochs=2)
    assert dict(spec.settings) == {"rho": 0.1} and dict(spec.hyperparameters)["epochs"] == 2
    assert dict(spec.measurements)["hessian_top_k"] == 3 and spec.placement == (("device", "cpu"),)
    assert not {"rho", "device", "hessian_top_k"} & set(dict(spec.hyperparameters))
    measured_less = make_spec("cifar10-binary", "small_cnn", "sam", (900, 100), (0.5,), 0,
                              settings={"rho": 0.1}, device="cpu", epochs=2)
    assert training_key(spec) == training_key(measured_less) and spec.key != measured_less.key
    other_rho = make_spec("cifar10-binary", "small_cnn", "sam", (900, 100), (1.0,), 0,
                          settings={"rho": 0.2}, device="cpu", hessian_top_k=3, epochs=2)
    assert training_key(other_rho) != training_key(spec)
    erm = make_spec("cifar10-binary", "small_cnn", "erm", (900, 100), (1.0,), 0, epochs=2)
    laplace = make_spec("cifar10-binary", "small_cnn", "laplace", (900, 100), (0.5,), 0,
                        settings={"subset": "all"}, epochs=2)
    assert training_key(laplace) == training_key(erm)  # post-hoc: its base's model
    assert training_key(make_spec("cifar10-binary", "small_cnn", "laplace", (900, 100), (1.0,), 0,
                                  epochs=2, device="cuda")) != training_key(erm)  # placed elsewhere


def test_a_post_hoc_subclass_shares_the_model_of_its_base_at_its_own_base_settings():
    """Audit of issue 22: a post-hoc method that subclasses SAM and sets ``rho`` trains (and
    shares the model of) SAM at that ``rho``, not SAM at its default."""
    from harness import methods
    from harness.runs import training
    from harness.runs.spec import training_key

    class SharpPostHoc(methods.get("sam")):
        name = "sharp_post_hoc"
        trains_like = "sam"
        settings = {**methods.get("sam").settings, "rho": 0.3}

    methods.register(SharpPostHoc)
    try:
        post_hoc = make_spec("cifar10-binary", "small_cnn", "sharp_post_hoc", (900, 100), (1.0,), 0)
        at_03 = make_spec("cifar10-binary", "small_cnn", "sam", (900, 100), (1.0,), 0, settings={"rho": 0.3})
        default = make_spec("cifar10-binary", "small_cnn", "sam", (900, 100), (1.0,), 0)
        assert training_key(post_hoc) == training_key(at_03) != training_key(default)
        trainer = training.training_method([post_hoc], [training.method_for(post_hoc)])
        assert trainer.name == "sam" and trainer.settings["rho"] == 0.3
    finally:
        methods.METHODS.pop("sharp_post_hoc")
