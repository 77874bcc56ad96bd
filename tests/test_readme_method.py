"""A method written outside the repository, as the README shows it, works without editing the
library: the README's own ``my_methods.py``, and a user's method run through a quick claims arm
(with its ERM twin as the sabotage that must turn the claim red)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from harness import methods
from harness.data import REPO_ROOT
from harness.methods.base import TrainingState


def readme_method_source() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    after = readme.split("This is `my_methods.py`", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.fixture
def restore_registry():
    saved = dict(methods.METHODS)
    yield
    methods.METHODS.clear()
    methods.METHODS.update(saved)


def test_the_readme_method_is_one_file_that_trains(tmp_path, monkeypatch, restore_registry):
    module = f"my_methods_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(readme_method_source())
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = methods.resolve(f"{module}:SqrtInverseFrequency")
    assert cls.name == "sqrt_inverse_frequency" and methods.get("sqrt_inverse_frequency") is cls
    # Its loss against its formula.
    counts = torch.tensor([400, 100, 25])
    state = TrainingState(net=None, labels=None, num_classes=3, class_counts=counts, hp={}, seed=0)
    logits, labels = torch.randn(12, 3), torch.arange(12) % 3
    w = counts.float() ** -0.5
    w = w * 3 / w.sum()
    assert torch.allclose(cls().loss(logits, labels, state),
                          w[labels] * F.cross_entropy(logits, labels, reduction="none"))
    # Through a run spec and the engine, like any built-in method.
    from harness.runs.spec import SpecError, make_spec
    from harness.runs.training import execute
    from tests.test_engine import tiny_images

    x, y = tiny_images(per_class=20)
    from harness import data

    monkeypatch.setitem(data.DATASETS, "tiny", lambda data_dir=None: data.Dataset(
        "tiny", x, y, x, y, ("a", "b"), {"variant": "test", "sha256": "2" * 64}))
    spec = make_spec("tiny", "small_cnn", "sqrt_inverse_frequency", (20, 5), (1.0,), 0,
                     width=4, epochs=2, batch_size=8)
    assert dict(spec.settings)["power"] == 0.5 and spec.method_version.startswith("1+")
    record = execute(spec)
    assert record["spec"]["method_path"] == f"{module}:SqrtInverseFrequency"
    with pytest.raises(SpecError, match="does not apply to model 'xgboost'"):
        make_spec("adult", "xgboost", "sqrt_inverse_frequency", (900, 100), (1.0,), 0)


USER_METHODS = '''
import numpy as np

from harness.methods import Method, TrainPlan


class InverseFrequency(Method):
    """Rows weighted by n / (C n_c): a user's re-weighting, in the user's own module."""
    name = "user_inverse_frequency"

    def rows(self, y, rng):
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        return TrainPlan(np.arange(len(y)), (len(y) / (len(classes) * counts))[inverse])


class PlainERM(Method):
    """The sabotage: a "method" that is ERM under another name; it must not beat ERM."""
    name = "user_plain_erm"
'''


def test_a_user_method_runs_through_a_quick_arm_and_its_erm_twin_fails(tmp_path):
    """Issue 10: --method=module:Class from a temporary module, trained by worker processes
    (they import it by path), judged on the quick XGBoost methods arm. The twin that is ERM
    under another name must get a red light on "beats ERM"."""
    (tmp_path / "user_methods.py").write_text(textwrap.dedent(USER_METHODS))
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    report = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "claims/test_methods_under_test.py", "-m", "quick",
         "-k", "adult and beats_erm", "-p", "no:cacheprovider", "-q", "--workers=2",
         f"--store={tmp_path / 'store'}", f"--report-dir={report}",
         "--method=user_methods:InverseFrequency", "--method=user_methods:PlainERM"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    claims = {c["method"]: c for c in json.loads((report / "latest" / "claims.json").read_text())}
    assert set(claims) == {"user_inverse_frequency", "user_plain_erm"}, done.stdout[-3000:]
    assert claims["user_inverse_frequency"]["verdict"] == "supported", done.stdout[-3000:]
    assert claims["user_plain_erm"]["verdict"] != "supported"
    assert claims["user_plain_erm"]["outcome"] == "failed"  # a hard claim: red, not xfail
    assert done.returncode == 1
    records = [json.loads(line) for line in (report / "latest" / "results.jsonl").read_text().splitlines()]
    user = [r for r in records if r["spec"]["method"] == "user_inverse_frequency"]
    assert user and all(r["spec"]["method_path"] == "user_methods:InverseFrequency" for r in user)
    assert {r["pid"] for r in user} != {os.getpid()}
