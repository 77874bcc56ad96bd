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
