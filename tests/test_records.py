"""Reading run records through their view: the layout the training step writes."""

import pytest

from harness.runs.records import RecordView, ratio_key


def metrics(accuracy, balanced, per_class, counts):
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "per_class_error": per_class,
            "counts": counts}


RECORD = {
    "key": "abc", "spec": {"method": "laplace"}, "class_names": ["head", "tail"],
    "metrics": {"train": metrics(0.9, 0.8, [0.05, 0.35], [90, 10]),
                "test": {"1": metrics(0.7, 0.7, [0.2, 0.4], [50, 50]),
                         "0.1": metrics(0.8, 0.65, [0.1, 0.6], [100, 10])},
                "variants": {"map": {"test": {"1": metrics(0.6, 0.6, [0.3, 0.5], [50, 50])}}},
                "extra": {"hessian_top_eigenvalues": [3.0, 2.0]}},
    "fingerprints": {"model": {"digest": "d"}},
}


def test_a_record_reads_through_typed_accessors():
    view = RecordView(RECORD)
    assert view.test(1.0).error == pytest.approx(0.3) and view.test(0.1).balanced_error == pytest.approx(0.35)
    assert view.train.per_class_error == [0.05, 0.35] and view.test(0.1).counts == [100, 10]
    assert view.predictions.ratios == [0.1, 1.0] and view.predictions.most_balanced.accuracy == 0.7
    assert view.variant("map").test(1).balanced_error == pytest.approx(0.4)
    assert view.extra("hessian_top_eigenvalues") == [3.0, 2.0]
    assert view.class_names == ["head", "tail"] and view.fingerprints["model"]["digest"] == "d"
    assert ratio_key(0.1) == "0.1" and ratio_key(1) == "1"


def test_what_a_record_lacks_is_named_with_what_it_has():
    view = RecordView(RECORD)
    with pytest.raises(KeyError, match=r"no test set at r = 0.5; it has \['0.1', '1'\]"):
        view.test(0.5)
    with pytest.raises(KeyError, match=r"recorded no 'linear_probe' predictions; it has \['map'\]"):
        view.variant("linear_probe")
    with pytest.raises(KeyError, match=r"measured no 'loss_along_direction'"):
        view.extra("loss_along_direction")
