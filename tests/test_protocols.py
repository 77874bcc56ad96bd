"""Protocol helpers: the learned-something gate and its reference cells."""

from harness.experiments import protocols


def fake_records(cell, balanced_accuracies, classes=2):
    return {cell + (seed,): {"class_names": [str(c) for c in range(classes)],
                             "metrics": {"test": {"0.1": {"balanced_accuracy": 0.0},
                                                  "1": {"balanced_accuracy": acc}}}}
            for seed, acc in enumerate(balanced_accuracies)}


def test_reference_cell_is_standard_training_on_the_most_balanced_training_set():
    ratio = protocols.RatioGrid("adult", "xgboost", 100, (0.1, 0.5, 1.0), (1.0,), ("oversample", "erm"))
    assert protocols.reference_cell(ratio) == ("erm", 1.0)
    majority = protocols.MajorityGrid("adult", "xgboost", (250, 500), (0.2, 0.9, 1.0, 5.0))
    assert protocols.reference_cell(majority) == (500, 500)
    method = protocols.MethodGrid("toy2d", "mlp2d", (400, 20), ("erm", "sam"))
    assert protocols.reference_cell(method) == ("erm",)


def test_gate_passes_models_that_learned_and_fails_the_class_prior():
    cfg = protocols.RatioGrid("adult", "xgboost", 100, (0.1, 1.0), (0.1, 1.0))
    learned = protocols.learned_something(cfg, fake_records(("erm", 1.0), [0.80, 0.82, 0.79, 0.81, 0.80]),
                                          range(5))
    assert learned["passed"] and learned["chance"] == 0.5
    prior = protocols.learned_something(cfg, fake_records(("erm", 1.0), [0.5] * 5), range(5))
    assert not prior["passed"] and "FAILED" in prior["summary"]
    # barely above chance is not enough: the gate asks for chance + 0.05
    barely = protocols.learned_something(cfg, fake_records(("erm", 1.0), [0.53, 0.54, 0.52, 0.53, 0.54]),
                                         range(5))
    assert not barely["passed"]
    ten = protocols.learned_something(cfg, fake_records(("erm", 1.0), [0.3, 0.31, 0.29, 0.3, 0.32], 10),
                                      range(5))
    assert ten["passed"] and ten["chance"] == 0.1
