"""Owners declare what they know: a method, a device-bound network and a dataset are each added
in one file of their own, and the plan, the dry run, the session and the plugin pick them up
without a harness file being edited (issue 22).

Each file is written to the test's temporary directory and imported, as a user's would be; the
registries are put back afterwards.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import subprocess
import sys
import textwrap

import pytest

from harness import data, methods
from harness.data import REPO_ROOT
from harness.experiments import dryrun, plan, protocols
from harness.learners import models
from harness.runs import training
from harness.runs.spec import make_spec

DATASET_FILE = '''
"""A small image dataset with its own channel statistics."""
import functools

import numpy as np

from harness.data import Dataset, register_dataset

MEAN, STD = (0.2, 0.3, 0.4), (0.1, 0.2, 0.3)


@functools.lru_cache(maxsize=1)
def load_tiny_images(data_dir=None):
    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % 2
        x = rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)
        x[y == 1, :8] //= 4  # the minority class is darker at the top
        return x, y.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = split(200), split(80)
    return Dataset("tiny_images", x_train, y_train, x_test, y_test, ("light", "dark"),
                   {"variant": "generated", "kind": "synthetic", "sha256": "seed0"})


register_dataset("tiny_images", load_tiny_images, image_statistics=(MEAN, STD))
'''

METHOD_FILE = '''
"""A method that trains every epoch twice and records a second predictor."""
import numpy as np

from harness.methods import Method, register


@register
class TwicePerEpoch(Method):
    name = "twice_per_epoch"
    requires = frozenset({"rows", "loop", "logits"})
    variant_names = ("all_light",)

    @classmethod
    def training_passes(cls, images, epochs, settings):
        return 2.0 * images * epochs  # each epoch twice (prepare)

    @classmethod
    def dry_run_budget(cls, hyperparameters, settings):
        return {"epochs": 2}, {}

    def prepare(self, state):
        state.epochs *= 2
        return {}

    def variants(self, state, images_u8):
        return {"all_light": np.zeros(len(images_u8), dtype=np.int64)}
'''

NETWORK_FILE = '''
"""A narrow CNN whose runs train on the session's device, and a full-profile arm of it."""
from harness.experiments import protocols
from harness.learners import models
from harness.learners.nn_hyperparameters import SMALL_CNN

models.register_model("tiny_net", models.torch_classifier, {**SMALL_CNN, "width": 4},
                      libraries=("torch",), device_bound=True)
protocols.PROFILES["full"]["t1-tiny-net"] = protocols.RatioGrid(
    "cifar10", "tiny_net", 100, (0.1, 1.0), (1.0,))
'''

CLAIM_FILE = '''
import pytest


@pytest.mark.parametrize("arm", ["t1-tiny-net"])
def test_tiny_net_arm(claim, arm):
    pass
'''


def harness_digest() -> str:
    """sha256 of every harness source file: a test that adds an owner must not change it."""
    root = REPO_ROOT / "harness"
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def owner_files(tmp_path, monkeypatch):
    """Writes a file of its own per owner and imports it; every registry, and the harness's
    sources, are as they were afterwards."""
    registries = [(methods.METHODS, dict(methods.METHODS)), (models.MODELS, dict(models.MODELS)),
                  (models.DEFAULTS, dict(models.DEFAULTS)), (models.LIBRARIES, dict(models.LIBRARIES)),
                  (protocols.PROFILES, copy.deepcopy(protocols.PROFILES))]
    device_bound = set(models.DEVICE_BOUND)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = harness_digest()
    imported = []

    def add(name: str, text: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        imported.append(name)
        return importlib.import_module(name)

    with data.registered_dataset("tiny_images", lambda data_dir=None: None):
        data.DATASETS.pop("tiny_images")  # the file registers it, as a user's would
        yield add
    for registry, saved in registries:
        registry.clear()
        registry.update(saved)
    models.DEVICE_BOUND.clear()
    models.DEVICE_BOUND.update(device_bound)
    for name in imported:
        sys.modules.pop(name, None)
    assert harness_digest() == before, "adding an owner edited a harness file"


def test_a_method_in_one_file_changes_the_plan_and_the_dry_run_checks(owner_files):
    owner_files("tiny_images", DATASET_FILE)
    owner_files("twice_per_epoch", METHOD_FILE)
    erm, twice = (make_spec("tiny_images", "small_cnn", m, (40, 8), (1.0,), 0) for m in ("erm", "twice_per_epoch"))

    figures = plan.load_calibration("/nonexistent/calibration.json")  # the assumed figures
    rate = figures["small_cnn/cpu"]["images_per_second"]
    extra = plan.estimate_seconds(twice, figures)[0] - plan.estimate_seconds(erm, figures)[0]
    assert extra == pytest.approx(48 * dict(erm.hyperparameters)["epochs"] / rate)

    arm = protocols.RatioGrid("tiny_images", "small_cnn", 48, (0.2, 1.0), (1.0,), ("erm", "twice_per_epoch"))
    spec, evaluation = dryrun.dry_spec(arm, "twice_per_epoch", None, "cpu")
    assert dict(spec.hyperparameters)["epochs"] == 2 == evaluation.dry_run["hyperparameters"]["epochs"]
    record = training.execute(spec, evaluation=evaluation)
    assert dryrun.missing_fields(spec, record) == []
    del record["metrics"]["variants"]
    assert any("variant all_light" in p for p in dryrun.missing_fields(spec, record))
    # ERM declares no variant: the same record without one is complete for it
    erm_dry, _ = dryrun.dry_spec(arm, "erm", None, "cpu")
    assert not [p for p in dryrun.missing_fields(erm_dry, record) if "variant" in p]


def test_a_device_bound_network_in_one_file_gets_the_device_and_the_gpu_marker(owner_files, tmp_path):
    from harness.experiments.session import Options, Session
    from harness.runs.executors import InProcessExecutor

    owner_files("tiny_images", DATASET_FILE)
    owner_files("tiny_net", NETWORK_FILE)
    assert models.device_bound("tiny_net")
    session = Session(Options(device="cuda", store=str(tmp_path / "store"), seeds=2),
                      executor=InProcessExecutor())
    arm = protocols.RatioGrid("tiny_images", "tiny_net", 48, (0.2, 1.0), (1.0,))
    assert {spec.device for spec in session.arm_specs("quick", arm).values()} == {"cuda"}
    tabular = protocols.RatioGrid("adult", "xgboost", 1_000, (1.0,), (1.0,))
    assert not session.cannot_train("full", tabular)

    (tmp_path / "test_tiny_net_claim.py").write_text(CLAIM_FILE)
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{REPO_ROOT}"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tiny_net",
                          "-p", "fixtures.options", "-p", "fixtures.plugin", "-W",
                          "ignore::pytest.PytestUnknownMarkWarning", f"--store={tmp_path / 'store'}",
                          str(tmp_path / "test_tiny_net_claim.py"), "--collect-only", "-q",
                          "-m", "full and gpu"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert "test_tiny_net_arm[full-t1-tiny-net]" in out.stdout, out.stdout + out.stderr
    assert "quick-t1-tiny-net" not in out.stdout


def test_a_dataset_in_one_file_brings_its_own_image_statistics(owner_files, monkeypatch):
    from harness.nn import batches

    module = owner_files("tiny_images", DATASET_FILE)
    assert data.image_statistics("tiny_images") is not None
    seen = []
    normalize = batches.normalize

    def spy(batch_u8):
        seen.append(batches.active_image_statistics())
        return normalize(batch_u8)

    monkeypatch.setattr(batches, "normalize", spy)
    for module_name in ("harness.learners.engine",):
        monkeypatch.setattr(importlib.import_module(module_name), "normalize", spy)
    spec = make_spec("tiny_images", "small_cnn", "erm", (40, 8), (1.0,), 0, epochs=1)
    training.execute(spec)
    assert seen
    # other statistics standardize other inputs: the runs never share a key
    with data.registered_dataset("tiny_images", module.load_tiny_images,
                                 image_statistics=(0.5, 0.25)):
        assert make_spec("tiny_images", "small_cnn", "erm", (40, 8), (1.0,), 0, epochs=1).key != spec.key
    assert {tuple(float(m) for m in mean) for mean, _ in seen} == {module.MEAN}
    assert {tuple(float(s) for s in std) for _, std in seen} == {module.STD}
