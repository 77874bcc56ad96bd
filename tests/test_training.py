"""Executing a run: counts recorded, test data never trained on, seeds shared across arms."""

import pickle

import numpy as np
import pytest

from harness import methods
from harness.runs import training
from harness.runs.spec import make_spec

from .conftest import SpyModel
from .test_runner import image_task  # noqa: F401 - a fixture: a tiny image dataset and CNN


def test_record_holds_counts_metrics_and_provenance(synthetic):
    spec = make_spec("synthetic", "spy", "erm", (100, 20), (0.5, 1.0), seed=0)
    record = training.execute(spec)
    assert record["key"] == spec.key
    assert record["metrics"]["train"]["counts"] == [100, 20]
    assert record["metrics"]["test"]["1"]["counts"] == [100, 100]
    assert record["metrics"]["test"]["0.5"]["counts"] == [200, 100]  # the largest set at 0.5
    # the spy predicts the majority: error 0 on class 0 and 1 on class 1
    assert record["metrics"]["test"]["1"]["per_class_error"] == [0.0, 1.0]
    assert record["metrics"]["test"]["1"]["balanced_accuracy"] == 0.5
    assert record["data_source"]["variant"] == "synthetic"
    assert {"numpy", "xgboost-cpu", "scikit-learn", "torch", "torchvision", "laplace-torch",
            "harness"} <= set(record["versions"])


def test_training_never_sees_test_rows(synthetic):
    for method in ("erm", "oversample", "reweight"):
        training.execute(make_spec("synthetic", "spy", method, (300, 60), (0.2, 1.0), seed=1))
    for x, _, _ in SpyModel.seen:
        assert (x[:, 0] == 0).all()  # column 0 is 1 on every test row


def test_methods_share_the_training_subset_and_test_sets_at_a_seed(synthetic):
    erm = training.execute(make_spec("synthetic", "spy", "erm", (200, 30), (1.0,), seed=5))
    over = training.execute(make_spec("synthetic", "spy", "oversample", (200, 30), (1.0,), seed=5))
    x_erm, x_over = SpyModel.seen[0][0], SpyModel.seen[1][0]
    assert {tuple(r) for r in x_erm} == {tuple(r) for r in x_over}  # same distinct rows
    assert len(x_over) == 400
    a = training.test_set(synthetic, 0.3, seed=5)
    assert np.array_equal(a, training.test_set(synthetic, 0.3, seed=5))
    assert not np.array_equal(a, training.test_set(synthetic, 0.3, seed=6))
    assert erm["metrics"]["test"] == over["metrics"]["test"]  # same test set, same spy predictions


def test_same_spec_same_metrics_with_real_models(synthetic):
    spec = make_spec("synthetic", "xgboost", "oversample", (150, 30), (0.2, 1.0), seed=2)
    assert training.execute(spec)["metrics"] == training.execute(spec, n_jobs=2)["metrics"]


def test_training_subsets_are_nested_across_class_counts(synthetic):
    """Figure 3 adds majority data: at a seed, the minority samples stay the same and a larger
    majority set contains the smaller one."""
    def subset(counts, seed=3):
        idx = training.train_subset(synthetic, make_spec("synthetic", "spy", "erm", counts, (1.0,), seed))
        y = synthetic.y_train[idx]
        return set(idx[y == 0]), set(idx[y == 1])

    small_major, minority = subset((50, 30))
    big_major, same_minority = subset((200, 30))
    assert minority == same_minority and small_major < big_major
    fewer_minority = subset((200, 10))[1]
    assert fewer_minority < minority
    assert subset((50, 30), seed=4)[1] != minority  # another seed, another draw


def test_fingerprints_say_what_the_seed_drew_and_whether_it_must_vary(synthetic):
    """The synthetic data has (300, 60) training and (200, 100) held-out rows: a subset of
    (100, 20) is drawn, one of (300, 60) is the whole split; the test set at r = 0.5 is the whole
    split (200, 100) and cannot vary, the balanced one (100, 100) is drawn."""
    def prints(counts, seed, method="erm", model="spy"):
        return training.execute(make_spec("synthetic", model, method, counts, (0.5, 1.0), seed))["fingerprints"]

    a, b = prints((100, 20), 0), prints((100, 20), 1)
    assert a["train_subset"]["varies_with_seed"] and a["train_subset"]["digest"] != b["train_subset"]["digest"]
    assert a["test set r=1"]["varies_with_seed"] and a["test set r=1"]["digest"] != b["test set r=1"]["digest"]
    assert not a["test set r=0.5"]["varies_with_seed"]
    assert a["test set r=0.5"]["digest"] == b["test set r=0.5"]["digest"]
    whole = prints((300, 60), 0)
    assert not whole["train_subset"]["varies_with_seed"]
    assert whole["train_subset"]["digest"] == prints((300, 60), 1)["train_subset"]["digest"]
    assert a["model"] == {"digest": a["model"]["digest"], "of": "model seed", "varies_with_seed": True}
    assert a["model"]["digest"] != b["model"]["digest"]
    assert prints((100, 20), 0, "oversample")["train_subset"] == a["train_subset"]  # same draw per seed


def test_a_network_fingerprints_its_initial_parameters():
    def run(seed):
        return training.execute(make_spec("toy2d", "mlp2d", "erm", (40, 10), (1.0,), seed, steps=2))

    a, b = run(0), run(1)
    assert a["fingerprints"]["model"]["of"] == "initial parameters"
    assert a["fingerprints"]["model"]["digest"] != b["fingerprints"]["model"]["digest"]
    assert run(0)["fingerprints"] == a["fingerprints"]


def test_a_set_that_can_repeat_by_chance_is_not_required_to_vary(synthetic):
    """59 of a class's 60 samples: only 60 such sets exist, so two seeds may draw the same one
    by chance; it is not checked (the other fingerprints still are)."""
    record = training.execute(make_spec("synthetic", "spy", "erm", (300, 59), (1.0,), 0))
    assert not record["fingerprints"]["train_subset"]["varies_with_seed"]
    assert record["fingerprints"]["model"]["varies_with_seed"]


class StageFails(methods.Method):
    """A post-hoc method (it trains as ERM) whose post-training stage raises, as Laplace's does
    when laplace-torch cannot be imported."""

    name = "stage_fails"
    trains_like = "erm"
    requires = frozenset({"rows", "loop", "posterior", "logits"})

    def finish(self, state):
        raise ImportError("injected: the stage's library does not import")


@pytest.fixture
def stage_fails(monkeypatch):
    """Register :class:`StageFails` for one test."""
    monkeypatch.setitem(methods.METHODS, StageFails.name, StageFails)
    return StageFails


def test_a_failing_post_training_stage_fails_only_its_run(image_task, stage_fails):  # noqa: F811 - the fixture
    """ERM and a post-hoc run share one trained network; the post-hoc run's stage raises: its
    place holds a RunFailure with the error, and the ERM record is the one it has alone."""
    erm, failing = (make_spec("tiny-images", "small_cnn", m, (24, 6), (1.0,), 0, **image_task)
                    for m in ("erm", "stage_fails"))
    records = training.execute_group([failing, erm])
    assert records[1]["key"] == erm.key
    assert records[1]["metrics"] == training.execute(erm)["metrics"]
    failure = records[0]
    assert isinstance(failure, training.RunFailure) and failure.key == failing.key
    assert failure.error.startswith("ImportError: injected: the stage's library does not import (raised at ")
    assert "in finish" in failure.traceback
    # Across processes it is its strings: whatever the exception, it unpickles.
    copy = pickle.loads(pickle.dumps(failure))
    assert copy == failure and copy.exception is None and copy.traceback == failure.traceback
    with pytest.raises(ImportError, match="injected"):  # a run alone raises its own error
        training.execute(failing)


def test_a_failure_recording_one_run_fails_only_that_run(synthetic, monkeypatch):
    """Two runs share a model and differ in their test sets; making one's test sets fails."""
    shared, failing = (make_spec("synthetic", "spy", "erm", (100, 20), ratios, 0)
                       for ratios in ((1.0,), (0.5, 1.0)))
    real = training.evaluation_rows

    def evaluation_rows(dataset, spec, test_per_class):
        if spec.key == failing.key:
            raise KeyError("injected")
        return real(dataset, spec, test_per_class)

    monkeypatch.setattr(training, "evaluation_rows", evaluation_rows)
    records = training.execute_group([shared, failing])
    assert len(SpyModel.seen) == 1  # trained once
    assert records[0]["key"] == shared.key and "1" in records[0]["metrics"]["test"]
    assert isinstance(records[1], training.RunFailure) and records[1].error.startswith("KeyError: 'injected' (raised at ")


def test_a_failure_in_the_shared_training_fails_the_whole_group(synthetic, monkeypatch):
    def fit(self, *args, **kwargs):
        raise RuntimeError("injected: training failed")

    monkeypatch.setattr(SpyModel, "fit", fit)
    specs = [make_spec("synthetic", "spy", "erm", (100, 20), ratios, 0) for ratios in ((1.0,), (0.5,))]
    with pytest.raises(RuntimeError, match="training failed"):
        training.execute_group(specs)


def fake_gpu_memory(monkeypatch) -> list:
    """torch.cuda's memory counters answering as a GPU would (3 GiB allocated, 4 reserved)."""
    import torch

    resets = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: resets.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 4 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    return resets


def test_a_gpu_run_records_the_peak_memory_of_its_group(synthetic, monkeypatch):
    """Issue 21: a run's record says how much GPU memory it needed (allocated and reserved),
    counted from the start of its group; a CPU run's record has no such field."""
    from dataclasses import replace

    from harness.learners import models

    monkeypatch.setitem(models.DEFAULTS, "spy", {"device": "cpu"})  # a model placed by --device
    resets = fake_gpu_memory(monkeypatch)
    spec = make_spec("synthetic", "spy", "erm", (100, 20), (1.0,), seed=0)
    record = training.execute(replace(spec, placement=(("device", "cuda"),)))
    assert resets == ["reset"]
    assert record["peak_memory_gib"] == {"allocated": 3.0, "reserved": 4.0}
    assert "peak_memory_gib" not in training.execute(spec) and resets == ["reset"]


def test_the_peak_memory_counter_is_not_what_fails_a_gpu_run_on_a_cpu_machine(monkeypatch):
    """Where torch sees no GPU the counter is left alone, so a CUDA run fails at the model's
    device check, whose message names the fix, not in torch's "invalid argument to
    reset_peak_memory_stats"."""
    import torch

    def unavailable(*args):
        raise RuntimeError("invalid argument to reset_peak_memory_stats")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", unavailable)
    training.reset_peak_memory("cuda")


def test_a_dry_run_evaluation_marks_its_record_and_caps_its_test_sets(synthetic, tmp_path):
    """The dry run trains a shrunk spec and evaluates it with an Evaluation: each test set is
    capped per class, and the record says it is a dry run's, which the store refuses."""
    from harness.runs.store import ResultStore

    spec = make_spec("synthetic", "spy", "erm", (200, 10), (0.5, 1.0), 0)
    evaluation = training.Evaluation(test_per_class=2, dry_run={"epochs": 1})
    assert pickle.loads(pickle.dumps(evaluation)) == evaluation  # it crosses to workers
    record = training.execute(spec, evaluation=evaluation)
    assert record["dry_run"] == {"epochs": 1, "test_per_class": 2}
    assert record["metrics"]["test"]["1"]["counts"] == [2, 2]
    assert record["metrics"]["test"]["0.5"]["counts"] == [2, 2]
    assert record["spec"] == spec.to_dict()
    with pytest.raises(ValueError, match="never stored"):
        ResultStore(tmp_path).put(record)
    real = training.execute(spec)
    assert "dry_run" not in real and real["metrics"]["test"]["1"]["counts"] == [100, 100]
    with pytest.raises(ValueError, match="dry run"):  # capped and unmarked: could be stored
        training.Evaluation(test_per_class=2)


def test_train_group_then_record_run_is_execute_group(image_task):  # noqa: F811 - the fixture
    """execute_group is train_group, then record_run per run (a post-training stage last)."""
    specs = [make_spec("tiny-images", "small_cnn", m, (24, 6), (1.0, 0.5), 0, **image_task)
             for m in ("laplace", "erm")]
    trained = training.train_group(specs)
    assert trained.spec == specs[0] and trained.recording_order() == [1, 0]  # Laplace's stage last
    assert type(trained.trainer).name == "erm" and len(trained.y_train) == 30
    by_hand = {i: training.record_run(trained, i) for i in trained.recording_order()}
    grouped = training.execute_group(specs)

    def comparable(record):  # all but the clocks
        log = {k: v for k, v in record["training_log"].items()
               if k not in ("train_seconds", "images_per_second")}
        return {**{k: v for k, v in record.items() if k not in ("wall_time_s", "pid", "created")},
                "training_log": log}

    for i, record in enumerate(grouped):
        assert comparable(record) == comparable(by_hand[i]), specs[i].method
    assert "map" in grouped[0]["metrics"]["variants"]
