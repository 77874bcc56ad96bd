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


def fingerprinted(cells, seeds=range(3), same=(), metrics=None):
    """Records of ``cells`` at ``seeds`` whose fingerprints differ by seed, except the names in
    ``same`` (shared by every seed); ``metrics(seed)`` gives each record's metrics."""
    def prints(seed):
        return {name: {"digest": "same" if name in same else f"d{seed}", "varies_with_seed": True}
                for name in ("train_subset", "test set r=1", "model")}

    metrics = metrics or (lambda seed: {"test": {"1": {"per_class_error": [0.1 + seed / 100, 0.3]}}})
    return {cell + (seed,): {"key": f"k{cell}{seed}", "fingerprints": prints(seed), "metrics": metrics(seed)}
            for cell in cells for seed in seeds}


def test_seeds_that_reach_the_runs_pass():
    check = protocols.seeds_reach_the_runs(fingerprinted([("erm", 0.1), ("erm", 1.0)]), range(3))
    assert check["passed"] and not check["problems"]


def test_a_fingerprint_shared_by_every_seed_names_the_cause():
    check = protocols.seeds_reach_the_runs(fingerprinted([("erm", 0.1)], range(5), same=("train_subset",)),
                                           range(5))
    assert not check["passed"]
    assert check["summary"] == ("the seed does not reach the run: identical train subset for cell "
                                "erm, 0.1, seeds 0-4")


def test_a_fingerprint_the_seed_cannot_change_is_not_checked():
    records = fingerprinted([("erm", 1.0)], same=("test set r=1",))
    for record in records.values():
        record["fingerprints"]["test set r=1"]["varies_with_seed"] = False  # the whole split
    assert protocols.seeds_reach_the_runs(records, range(3))["passed"]


def test_identical_metrics_are_caught_unless_the_predictions_are_constant_or_perfect():
    fractional = {"test": {"1": {"per_class_error": [0.12, 0.31]}}}
    check = protocols.seeds_reach_the_runs(fingerprinted([("erm",)], metrics=lambda s: fractional), range(3))
    assert not check["passed"] and "identical metrics to the last digit" in check["summary"]
    for errors in ([0.0, 1.0], [0.0, 0.0]):  # the class prior, or every sample right: may repeat
        same = {"test": {"1": {"per_class_error": errors}}}
        assert protocols.seeds_reach_the_runs(fingerprinted([("erm",)], metrics=lambda s: same), range(3))["passed"]


def test_records_without_fingerprints_fail_the_check():
    records = fingerprinted([("erm", 1.0)])
    del records[("erm", 1.0, 0)]["fingerprints"]
    check = protocols.seeds_reach_the_runs(records, range(3))
    assert not check["passed"] and "carry no fingerprints" in check["summary"]


def test_seeds_that_share_a_run_are_caught_even_when_others_differ():
    """Seeds 1-4 clamped to one run (say ``min(seed, 1)``) while seed 0 differs: four seeds
    would count one observation four times."""
    records = fingerprinted([("erm", 0.1)], range(5))
    for seed in range(2, 5):
        records[("erm", 0.1, seed)] = dict(records[("erm", 0.1, 1)])
    check = protocols.seeds_reach_the_runs(records, range(5))
    assert not check["passed"]
    assert "identical train subset, test set r=1, model" in check["summary"] and "seeds 1-4" in check["summary"]


def test_a_declared_floor_is_checked_on_the_median_and_none_is_no_floor():
    """The laptop profile's floor (issue 31): the reference runs' median balanced accuracy must
    reach it; an arm without one has no floor entry (the quick and GPU profiles)."""
    floored = protocols.RatioGrid("cifar10", "airbench_cnn", 100, (0.1, 1.0), (1.0,), accuracy_floor=0.65)
    under = protocols.learned_something(floored, fake_records(("erm", 1.0), [0.60, 0.70, 0.62, 0.64, 0.66], 10),
                                        range(5))
    assert under["passed"]  # it beats chance + 0.05 ...
    assert not under["floor"]["met"] and under["floor"]["median"] == 0.64  # ... but not the floor
    assert "did not learn" in under["summary"]
    over = protocols.learned_something(floored, fake_records(("erm", 1.0), [0.60, 0.70, 0.66, 0.64, 0.66], 10),
                                       range(5))
    assert over["floor"]["met"]
    plain = protocols.RatioGrid("cifar10", "small_cnn", 100, (0.1, 1.0), (1.0,))
    assert "floor" not in protocols.learned_something(plain, fake_records(("erm", 1.0), [0.4] * 5, 10), range(5))


def test_the_floor_is_checked_on_balanced_training_even_where_the_arm_trains_none():
    """The floor is declared for balanced training (issue 31). Takeaway 3's arm trains only at
    r = 0.05 and 0.2: its grid adds balanced ERM runs for the floor alone, the floor is checked
    on them (a network that learned but is weaker at r = 0.2 is not "did not learn"), and the
    chance gate still checks the arm's own most balanced cell."""
    cfg = protocols.RatioGrid("cifar10", "airbench_cnn", 100, (0.05, 0.2), (1.0,), ("erm", "overfit"),
                              accuracy_floor=0.65)
    cells = [c for c, _, _ in cfg.cells(10, (5000,) * 10)]
    assert ("erm", 1.0) in cells and ("overfit", 1.0) not in cells
    assert protocols.reference_cell(cfg) == ("erm", 0.2) and cfg.floor_cell() == ("erm", 1.0)
    records = {**fake_records(("erm", 0.2), [0.60, 0.61, 0.60, 0.62, 0.60], 10),
               **fake_records(("erm", 1.0), [0.66, 0.67, 0.66, 0.65, 0.68], 10)}
    gate = protocols.learned_something(cfg, records, range(5))
    assert gate["cell"] == "erm, 0.2" and gate["floor"]["cell"] == "erm, 1.0" and gate["floor"]["met"]
    weak = {**records, **fake_records(("erm", 1.0), [0.60, 0.61, 0.60, 0.62, 0.60], 10)}
    assert not protocols.learned_something(cfg, weak, range(5))["floor"]["met"]  # still a floor
    unfloored = protocols.RatioGrid("cifar10", "small_cnn", 100, (0.05, 0.2), (1.0,))
    assert ("erm", 1.0) not in [c for c, _, _ in unfloored.cells(10, (5000,) * 10)]  # quick: unchanged
    own = fake_records(("erm", 0.2), [0.40, 0.41, 0.40, 0.42, 0.40], 10)
    assert "floor" not in protocols.learned_something(unfloored, own, range(5))  # its own cells only


def test_laptop_takeaway3_floor_runs_are_takeaway1s_balanced_runs():
    """The cell added for the floor costs nothing in a whole session: its specs are takeaway
    1's balanced ERM specs at the same budget."""
    laptop = protocols.PROFILES["laptop"]
    t3 = laptop["t3-cifar10-nn"].specs([0])[("erm", 1.0, 0)]
    t1 = laptop["t1-cifar10-nn"].specs([0])[("erm", 1.0, 0)]
    assert t3.key == t1.key


def test_laptop_judges_every_network_arm_medium_does_on_its_cpu_network_with_floors():
    """Laptop is medium's arms at another budget: the same arm names, grids and methods, the
    laptop network, the floors declared on every network arm; tabular and toy arms are full's."""
    from harness.learners.nn_hyperparameters import LAPTOP_BUDGET

    laptop, medium = protocols.PROFILES["laptop"], protocols.PROFILES["medium"]
    assert set(laptop) == set(medium)
    for arm, cfg in laptop.items():
        if not protocols.models.device_bound(cfg.model):
            assert cfg == protocols.PROFILES["full"][arm]
            continue
        assert cfg.model == LAPTOP_BUDGET["model"] and cfg.methods == medium[arm].methods
        binary = cfg.dataset == "cifar10-binary"
        assert cfg.accuracy_floor == LAPTOP_BUDGET["binary_accuracy_floor" if binary else "accuracy_floor"]
        assert medium[arm].accuracy_floor is None
    assert "laptop" not in protocols.GPU_PROFILES


def test_a_claim_on_a_network_under_its_floor_is_an_error_never_a_verdict(monkeypatch):
    """Mutation (issue 31): a laptop arm whose reference runs miss the floor (a network that did
    not learn, e.g. trained for too few epochs) must fail the claim with "did not learn" before
    any statistic runs; the same runs over the floor pass through to the claim."""
    import pytest

    from fixtures.claims import ClaimRecorder

    cfg = protocols.RatioGrid("cifar10", "airbench_cnn", 100, (0.1, 1.0), (1.0,), accuracy_floor=0.65)
    monkeypatch.setattr(protocols, "seeds_reach_the_runs", lambda records, seeds: {"passed": True})

    class Suite:
        def __init__(self, accuracies):
            self.records = fake_records(("erm", 1.0), accuracies, 10)

        def grid(self, profile, arm, cfg_, seeds=None):
            return cfg, self.records

    weak = ClaimRecorder(nodeid="t", profile="laptop", suite=Suite([0.5, 0.52, 0.49, 0.51, 0.5]), seeds=list(range(5)))
    with pytest.raises(pytest.fail.Exception, match="did not learn"):
        weak.grid("t1-cifar10-nn")
    strong = ClaimRecorder(nodeid="t", profile="laptop", suite=Suite([0.66, 0.67, 0.68, 0.66, 0.7]), seeds=list(range(5)))
    assert strong.grid("t1-cifar10-nn")[0] is cfg and strong.gate["floor"]["met"]
