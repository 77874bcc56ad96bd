"""The method registry and every method's TrainPlan contract."""

import numpy as np
import pytest

from harness import methods

LABELS = np.array([0] * 90 + [1] * 10)


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_every_method_returns_a_valid_plan(name):
    plan = methods.get(name)(LABELS, np.random.default_rng(0))
    assert plan.indices.dtype.kind == "i"
    assert plan.indices.min() >= 0 and plan.indices.max() < len(LABELS)
    if plan.sample_weight is not None:
        assert plan.sample_weight.shape == plan.indices.shape
        assert (plan.sample_weight > 0).all()
    again = methods.get(name)(LABELS, np.random.default_rng(0))
    assert np.array_equal(plan.indices, again.indices)


@pytest.mark.parametrize("name", ["erm", "oversample", "reweight"])
def test_built_in_methods_keep_every_sample(name):
    plan = methods.get(name)(LABELS, np.random.default_rng(0))
    assert set(plan.indices) == set(range(len(LABELS)))


def test_oversampling_balances_classes():
    plan = methods.get("oversample")(LABELS, np.random.default_rng(0))
    assert np.bincount(LABELS[plan.indices]).tolist() == [90, 90]


def test_reweighting_uses_inverse_class_frequency_with_mean_one():
    plan = methods.get("reweight")(LABELS, np.random.default_rng(0))
    assert plan.sample_weight[LABELS == 1][0] == pytest.approx(100 / (2 * 10))
    assert plan.sample_weight[LABELS == 0][0] == pytest.approx(100 / (2 * 90))
    assert plan.sample_weight.mean() == pytest.approx(1.0)
    # each class carries the same total weight
    assert plan.sample_weight[LABELS == 1].sum() == pytest.approx(plan.sample_weight[LABELS == 0].sum())


def test_registering_a_method_and_unknown_names(monkeypatch):
    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    methods.register_method("identity")(lambda y, rng: methods.TrainPlan(np.arange(len(y))))
    assert "identity" in methods.METHODS
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method("identity")(lambda y, rng: None)
    with pytest.raises(ValueError, match="unknown method 'smote'"):
        methods.get("smote")
