"""The README's CI recipe for a method repository, run as written: a method in its own package
(registered through an ``imbalance_claims.methods`` entry point), judged with
``pytest claims/test_methods_under_test.py -m quick --method=NAME --baseline=ci/claims.json``.

The gate must be usable: an unchanged method that loses a claim is green (exit 0); the same
method changed to plain training is red naming the flips; the method renamed is red naming the
baseline's claims that went missing.

The method is a tabular one (random oversampling with optional jitter: it makes synthetic rows,
so it needs the ``features`` capability and runs on the XGBoost methods arm only), which keeps the four
sessions to about a minute on 2 cores; a loss-based method (the README's example) goes through
the same gate, the same options and the same exit status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap


from harness.data import REPO_ROOT

METHOD = '''
import numpy as np

from harness.methods import Method


class JitteredOversampling(Method):
    """Random oversampling of the rarer classes up to the largest class's count, made in the
    resample hook; with ``jitter`` > 0 the numeric columns of each repeated row get Gaussian
    noise of ``jitter`` times the column's standard deviation (its one-hot columns are copied as
    they are). Off by default: any jitter cost XGBoost on Adult its gain over ERM."""

    name = "NAME"
    version = "1"
    requires = frozenset({"rows", "features"})   # synthetic rows: tabular models
    settings = {"jitter": 0.0}                    # noise sd / column sd (dimensionless)

    def resample(self, x, y, rng, categorical=()):
        CHANGE
        counts = np.bincount(y)
        extra = np.concatenate([np.zeros(0, dtype=np.int64)] + [
            rng.choice(np.flatnonzero(y == c), counts.max() - n) for c, n in enumerate(counts) if n])
        numeric = np.setdiff1d(np.arange(x.shape[1]), [i for block in categorical for i in block])
        repeated = x[extra].astype(np.float64)
        sd = x[:, numeric].std(axis=0)
        repeated[:, numeric] += rng.normal(size=(len(extra), len(numeric))) * sd * self.settings["jitter"]
        return (np.concatenate([x, repeated.astype(x.dtype)]), np.concatenate([y, y[extra]]),
                None, None)
'''


def write_package(root, name: str, plain: bool = False) -> None:
    """``root/ci_method.py`` and an installed-package record (``*.dist-info`` with its entry
    point) on ``root``: what ``pip install -e .`` of the method's repository leaves on sys.path,
    without running pip inside the test's environment."""
    for old in root.glob("*.dist-info"):
        shutil.rmtree(old)
    change = "return x, y, None, None  # changed: plain training" if plain else "pass"
    (root / "ci_method.py").write_text(textwrap.dedent(METHOD).replace('"NAME"', repr(name))
                                       .replace("CHANGE", change))
    info = root / "ci_method-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ci-method\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[imbalance_claims.methods]\n{name} = ci_method:JitteredOversampling\n")


def recipe(tmp_path, name: str, baseline=None) -> subprocess.CompletedProcess:
    """The README's recipe command (its store and reports in ``tmp_path``)."""
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'pkg'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    args = [sys.executable, "-m", "pytest", "claims/test_methods_under_test.py", "-m", "quick",
            f"--method={name}", "-p", "no:cacheprovider", "-q", "--workers=2",
            f"--store={tmp_path / 'store'}", f"--report-dir={tmp_path / 'reports'}"]
    if baseline:
        args.append(f"--baseline={baseline}")
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


def claims_of(tmp_path) -> dict:
    rows = json.loads((tmp_path / "reports" / "latest" / "claims.json").read_text())
    return {row["nodeid"].split("::")[-1]: row for row in rows}


def test_the_ci_recipe_is_green_unchanged_and_red_on_a_regression_or_a_rename(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    write_package(pkg, "ci_jittered")
    # The trusted run whose claims.json the method's repository keeps as its baseline.
    trusted = recipe(tmp_path, "ci_jittered")
    verdicts = {test: row["verdict"] for test, row in claims_of(tmp_path).items()}
    assert len(verdicts) == 4, trusted.stdout[-3000:]
    assert "supported" in verdicts.values() and set(verdicts.values()) != {"supported"}, (
        f"the test needs a method that wins one claim and loses another: {verdicts}")
    assert trusted.returncode == 1  # without --baseline, a lost claim is red
    baseline = tmp_path / "ci" / "claims.json"
    baseline.parent.mkdir()
    shutil.copy(tmp_path / "reports" / "latest" / "claims.json", baseline)

    unchanged = recipe(tmp_path, "ci_jittered", baseline)
    assert unchanged.returncode == 0, unchanged.stdout[-3000:]
    assert "regression gate (fail on flip): passed" in unchanged.stdout
    assert "do not fail the session" in unchanged.stdout  # says why the lost claims are green

    # A baseline that holds only the claim the method wins vouches for nothing else: the lost
    # claims it lacks are red (a gate cannot be made green by trimming its baseline).
    trimmed = tmp_path / "ci" / "trimmed.json"
    trimmed.write_text(json.dumps([row for row in json.loads(baseline.read_text())
                                   if row["verdict"] == "supported"]))
    unvouched = recipe(tmp_path, "ci_jittered", trimmed)
    assert unvouched.returncode == 1 and "nothing vouches" in unvouched.stdout, unvouched.stdout[-3000:]

    write_package(pkg, "ci_jittered", plain=True)  # the method regresses to plain training
    regressed = recipe(tmp_path, "ci_jittered", baseline)
    assert regressed.returncode == 1, regressed.stdout[-3000:]
    flips = [line for line in regressed.stdout.splitlines() if line.strip().startswith("FLIP")]
    assert flips and all("ci_jittered" in line for line in flips), regressed.stdout[-3000:]
    assert "supported ->" in regressed.stdout

    write_package(pkg, "ci_jittered_v2")  # renamed: the baseline's claims match nothing
    renamed = recipe(tmp_path, "ci_jittered_v2", baseline)
    assert renamed.returncode == 1, renamed.stdout[-3000:]
    missing = [line for line in renamed.stdout.splitlines() if line.strip().startswith("MISSING")]
    assert len(missing) == 4 and all("ci_jittered-quick" in line for line in missing), renamed.stdout[-3000:]
    assert "regression gate (fail on flip): FAILED" in renamed.stdout


def test_an_unknown_method_lists_the_installed_entry_points(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    write_package(pkg, "ci_listed")
    env = dict(os.environ, PYTHONPATH=str(pkg))
    done = subprocess.run([sys.executable, "-m", "pytest", "claims/test_methods_under_test.py",
                           "--collect-only", "-q", "-p", "no:cacheprovider", "--method=ci_lsited"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4
    assert "unknown method 'ci_lsited'" in done.stderr and "ci_listed" in done.stderr


SETTING_CLASH = '''
from harness.methods import Method


class ShortTraining(Method):
    name = "ci_short_training"
    requires = frozenset({"rows", "loss"})
    settings = {"epochs": 1}
'''


def test_a_method_setting_named_like_a_model_hyperparameter_is_the_method_s(tmp_path):
    """Issue 20 made ``settings = {"epochs": 1}`` a usage error (it trained the method's runs for
    one epoch); since issue 22 a spec keeps the method's settings apart from the model's, so the
    method is accepted and its runs train for the model's own epochs."""
    (tmp_path / "clash.py").write_text(SETTING_CLASH)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "harness", "plan", "--json", "-m", "quick", "-k",
                           "m-cifar10-nn", "--method=clash:ShortTraining",
                           f"--store={tmp_path / 'store'}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(done.stdout)["by_arm"]["quick/m-cifar10-nn"]["runs"] > 0
    from harness.runs.spec import make_spec

    sys.path.insert(0, str(tmp_path))
    try:
        from harness import methods

        cls = methods.resolve("clash:ShortTraining")
        spec = make_spec("cifar10", "small_cnn", cls.name, (250,) * 10, (1.0,), 0)
        assert dict(spec.hyperparameters)["epochs"] == 8 and dict(spec.settings) == {"epochs": 1}
    finally:
        sys.path.remove(str(tmp_path))
        methods.METHODS.pop("ci_short_training", None)