"""The long profiles' dry run (full, medium and laptop): every distinct training path at full shape (ResNet-34, 32 px,
Hessian top-10, Laplace, SGHMC, SimCLR, asymmetric SAM, ...) trains once on a shrunk budget and
its record holds every field the claims read. Budget: 6 minutes on 2 cores."""

import copy
import dataclasses

import pytest

from harness.experiments import dryrun, protocols
from harness.runs.executors import make_executor

from .conftest import shared_data_available

needs_data = pytest.mark.skipif(
    not (shared_data_available("adult/adult.data") and shared_data_available("covtype/covtype-sample.csv.gz")
         and (shared_data_available("cifar10/cifar10-jpeg.zip")
              or shared_data_available("cifar10/cifar-10-batches-py/data_batch_1"))),
    reason="the shared datasets are not present")


def profile_paths(*profiles: str) -> set[str]:
    paths = set()
    for profile in profiles:
        for cfg in protocols.arms(profile).values():
            for method in cfg.methods:
                paths.add(f"{cfg.dataset}/{cfg.model}/{method}{dryrun.measurement(cfg)}")
    return paths


def gpu_profile_paths() -> set[str]:
    """Every path of the profiles the dry run covers (the GPU profiles and laptop)."""
    return profile_paths(*dryrun.DRY_RUN_PROFILES)


@needs_data
def test_the_dry_run_covers_every_gpu_profile_and_builds_shared_paths_from_the_full_arm(monkeypatch):
    """A path only the medium profile has (here undersampling, which no full network arm trains,
    added to a medium arm) is in the dry run, built from that arm; a path the two profiles share
    is built from the full arm, so a full-shape run (gpucheck's) trains the full size."""
    medium = dict(protocols.PROFILES["medium"])
    arm = medium["t6-cifar10-nn"]
    medium["t6-cifar10-nn"] = dataclasses.replace(arm, methods=arm.methods + ("undersample",))
    monkeypatch.setitem(protocols.PROFILES, "medium", medium)
    runs = {r.path: r for r in dryrun.dry_runs(device_bound_only=True, train_images=None,
                                                 test_per_class=None)}
    assert set(runs) == {p for p in gpu_profile_paths() if "/resnet34/" in p or "/airbench_cnn/" in p}
    assert runs["cifar10/resnet34/undersample"].arm == "t6-cifar10-nn"
    assert "cifar10/resnet34/undersample" not in profile_paths("full")
    shared = runs["cifar10/resnet34/sam"]
    assert sum(shared.spec.train_counts) == protocols.PROFILES["full"]["t6-cifar10-nn"].total


@needs_data
def test_every_gpu_profile_training_path_runs_at_full_shape_and_records_what_claims_read():
    runs = dryrun.dry_runs()
    assert {r.path for r in runs} == gpu_profile_paths()
    hessian = next(r for r in runs if r.path.endswith("+hessian"))
    hp, measured = dict(hessian.spec.hyperparameters), dict(hessian.spec.measurements)
    assert hp["arch"] == "resnet34" and hp["image_size"] == 32 and measured["hessian_top_k"] == 10
    assert measured["loss_directions"] == 5 and hessian.evaluation.dry_run["hyperparameters"]["epochs"] == 1
    sghmc = next(r for r in runs if r.path.endswith("/sghmc"))  # its own budget: an epoch per cycle
    assert dict(sghmc.spec.hyperparameters)["epochs"] == dict(sghmc.spec.settings)["cycles"]
    simclr = next(r for r in runs if r.path.endswith("/simclr"))
    assert dict(simclr.spec.settings)["epochs"] == 1
    executor = make_executor("local", workers=2)
    try:
        outcome = dryrun.run_all(runs, executor)
    finally:
        executor.close()
    problems = {path: o["problems"] for path, o in outcome.items() if o["problems"]}
    assert not problems, problems
    assert set(outcome) == gpu_profile_paths()


@needs_data
def test_a_record_missing_a_field_the_claims_read_is_caught():
    run = next(r for r in dryrun.dry_runs() if r.path == "adult/xgboost/erm")
    record = dryrun.execute_dry(run)
    assert dryrun.missing_fields(run.spec, record) == []
    broken = copy.deepcopy(record)
    del broken["metrics"]["test"]["1"]
    assert any("r=1" in p for p in dryrun.missing_fields(run.spec, broken))


def test_dry_run_records_are_never_stored(synthetic, tmp_path):
    from harness.runs.spec import make_spec
    from harness.runs.store import ResultStore
    from harness.runs.training import Evaluation, execute

    record = execute(make_spec("synthetic", "spy", "erm", (200, 10), (1.0,), 0),
                     evaluation=Evaluation(test_per_class=3, dry_run={}))
    assert record["dry_run"]["test_per_class"] == 3
    assert record["metrics"]["test"]["1"]["counts"] == [3, 3]
    with pytest.raises(ValueError, match="never stored"):
        ResultStore(tmp_path).put(record)


def test_device_bound_dry_runs_read_no_tabular_data(monkeypatch):
    """Issue 21: gpucheck runs only the device-bound cells; building them must not need the
    tabular datasets, which a GPU machine may lack."""
    from harness import data
    from harness.experiments import dryrun
    from harness.learners import models

    real = data.load
    asked = []
    images = {name for name in data.DATASETS if name.startswith("cifar")}

    def load(name, *args, **kwargs):
        asked.append(name)
        if name not in images:
            raise data.DataError(f"{name}: not on this machine")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(data, "load", load)
    runs = dryrun.dry_runs(device="cpu", device_bound_only=True)
    assert runs and all(models.device_bound(run.spec.model) for run in runs)
    assert asked and set(asked) <= images
