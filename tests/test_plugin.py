"""The pytest plugin's options, checked in a child pytest (nothing trains)."""

import subprocess
import sys

import pytest

from harness.data import REPO_ROOT
from harness.experiments import protocols


def child_pytest(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           f"--store={tmp_path / 'store'}", f"--report-dir={tmp_path / 'reports'}", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_missing_simclr_weights_file_is_a_usage_error(tmp_path):
    out = child_pytest("claims/test_takeaway4_ssl_pretraining.py", "--collect-only", "-q",
                       f"--simclr-weights={tmp_path / 'absent.pt'}", tmp_path=tmp_path)
    assert out.returncode != 0
    assert "--simclr-weights" in out.stderr and "no such file" in out.stderr


def test_imagenet_baseline_skips_with_a_reason_without_weights(tmp_path):
    out = child_pytest("claims/test_takeaway4_ssl_pretraining.py", "-m", "quick", "-k", "imagenet",
                       "-rs", tmp_path=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "1 skipped" in out.stdout and "--simclr-weights FILE" in out.stdout
    network = protocols.PROFILES["quick"]["t4-cifar10-binary-ssl"].model
    assert f"quick's network {network!r}" in out.stdout  # which network the weights must be for


def test_too_few_seeds_is_a_usage_error(tmp_path):
    out = child_pytest("claims/", "--collect-only", "-q", "--seeds=1", tmp_path=tmp_path)
    assert out.returncode != 0 and "--seeds must be at least 2" in out.stderr


def test_cuda_without_a_gpu_is_a_usage_error_before_anything_trains(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = child_pytest("claims/", "-m", "quick", "--device=cuda", tmp_path=tmp_path)
    assert out.returncode == 4  # pytest's usage error
    assert "--device=cuda" in out.stderr and "no CUDA GPU" in out.stderr
    assert not (tmp_path / "store").exists()


def test_seed_offset_selects_fresh_seeds_and_is_recorded(tmp_path):
    import json

    out = child_pytest("claims/test_takeaway6_sam_margins.py", "-m", "quick", "-k", "toy",
                       "--seeds=2", "--seed-offset=7", tmp_path=tmp_path)
    claims = json.loads((tmp_path / "reports" / "latest" / "claims.json").read_text())
    assert claims[0]["seeds"] == [7, 8], out.stdout[-2000:]
    assert "imbalance-claims verdicts" in out.stdout


def test_negative_seed_offset_is_a_usage_error(tmp_path):
    out = child_pytest("claims/", "--collect-only", "-q", "--seed-offset=-1", tmp_path=tmp_path)
    assert out.returncode != 0 and "--seed-offset must be 0 or more" in out.stderr


def test_executor_settings_are_checked_before_anything_trains(tmp_path):
    out = child_pytest("claims/", "--collect-only", "-q", "--executor=gpus", "--runs-per-gpu=0",
                       tmp_path=tmp_path)
    assert out.returncode != 0 and "--runs-per-gpu must be at least 1" in out.stderr
    out = child_pytest("claims/", "--collect-only", "-q", "--executor=ray", tmp_path=tmp_path)
    assert out.returncode != 0 and "invalid choice: 'ray'" in out.stderr


def test_gpus_executor_without_a_gpu_is_a_usage_error(tmp_path):
    import os

    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "claims/",
                          "--collect-only", "-q", "--executor=gpus", f"--store={tmp_path / 's'}"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert out.returncode != 0 and "no GPU is visible" in out.stderr


def test_a_store_from_another_layout_is_a_usage_error(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "store.json").write_text('{"format": 99}')
    out = child_pytest("claims/", "--collect-only", "-q", tmp_path=tmp_path)
    assert out.returncode != 0 and "layout version 99" in out.stderr


def test_the_whole_selection_is_submitted_before_the_first_claim(tmp_path):
    """Two claim modules, two arms: the first progress line already counts both arms' runs,
    and the runs go through slurm-local (the Slurm code path with local processes)."""
    log = tmp_path / "progress.log"
    out = child_pytest("claims/test_takeaway1_train_test_ratio.py", "claims/test_takeaway6_sam_margins.py",
                       "-m", "quick", "-k", "covtype or toy2d", "--executor=slurm-local",
                       f"--job-logs={tmp_path / 'jobs'}", f"--progress-log={log}", "--seeds=2",
                       tmp_path=tmp_path)
    lines = log.read_text().splitlines()
    # covtype: 5 train ratios x 2 seeds; toy: 3 methods x 2 seeds
    assert lines and all("/16 done" in line for line in lines), lines
    assert "runs 16/16 done" in lines[-1]
    assert "16 runs trained" in out.stdout, out.stdout[-3000:]


def test_baseline_gate_fails_a_session_whose_verdict_flipped_and_marks_the_report(tmp_path):
    import json

    args = ("claims/test_takeaway1_train_test_ratio.py", "-m", "quick", "-k",
            "covtype and near_optimal", "--seeds=3")
    first = child_pytest(*args, tmp_path=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:]
    rows = json.loads((tmp_path / "reports" / "latest" / "claims.json").read_text())
    assert [r["verdict"] for r in rows] == ["supported"]
    same = child_pytest(*args, f"--baseline={tmp_path / 'reports' / 'latest'}", tmp_path=tmp_path)
    assert same.returncode == 0 and "regression gate (fail on flip): passed" in same.stdout
    rows[0]["verdict"] = "inconclusive"  # a baseline in which this claim did not hold
    (tmp_path / "base.json").write_text(json.dumps(rows))
    flipped = child_pytest(*args, f"--baseline={tmp_path / 'base.json'}", tmp_path=tmp_path)
    assert flipped.returncode == 1, flipped.stdout[-2000:]
    assert "FLIP" in flipped.stdout and "inconclusive -> supported" in flipped.stdout
    page = (tmp_path / "reports" / "latest" / "index.html").read_text()
    assert "Against the baseline" in page and "FAILED" in page


def test_a_malformed_baseline_is_a_usage_error_before_anything_trains(tmp_path):
    (tmp_path / "base.json").write_text("{}")
    out = child_pytest("claims/", "-m", "quick", f"--baseline={tmp_path / 'base.json'}", tmp_path=tmp_path)
    assert out.returncode == 4 and "not a list of claim rows" in out.stderr
    assert not (tmp_path / "store" / "runs").exists()


@pytest.mark.parametrize("profile", ["full", "medium"])
def test_gpu_profile_network_arm_without_a_gpu_is_skipped_with_the_count(tmp_path, profile):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = child_pytest("claims/test_takeaway5_flatness.py", "-m", profile, "-k", "hessian", "-rs",
                       "--seeds=5", tmp_path=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "10 of 10 runs are not in the store" in out.stdout and "--executor=gpus" in out.stdout
    assert not (tmp_path / "store" / "runs").exists()  # nothing trained on the CPU


def test_the_medium_profile_runs_its_cpu_arms_on_the_cpu(tmp_path):
    """-m medium without a GPU: the toy arm (the full profile's grid) trains and is judged."""
    out = child_pytest("claims/test_takeaway6_sam_margins.py", "-m", "medium", "-k", "toy2d",
                       "--seeds=2", tmp_path=tmp_path)
    assert "1 passed" in out.stdout or "1 failed" in out.stdout, out.stdout[-2000:]
    assert "skipped" not in out.stdout.splitlines()[-1]
    assert len(list((tmp_path / "store" / "runs").rglob("*.json"))) == 3 * 2  # 3 methods, 2 seeds


def test_each_profile_judges_its_own_zoo(tmp_path):
    """The methods-under-test module reads each profile's methods arms: balanced_softmax, left
    out of the quick zoo, is judged in the full one (a GPU arm) on the two claims the zoo is
    measured on. No item is collected that could never run (the zoo against the strongest of
    itself, the zoo at r = 1, a left-out member); the report's zoo section names the member the
    quick zoo leaves out, with the reason its protocol gives."""
    full = child_pytest("claims/test_methods_under_test.py", "--collect-only", "-q", "-m", "full and gpu",
                        "-k", "balanced_softmax", tmp_path=tmp_path)
    items = [line for line in full.stdout.splitlines() if "::" in line]
    assert items and all(line.endswith("m-cifar10-nn-balanced_softmax-full]") for line in items), full.stdout
    assert len(items) == 2  # beats ERM, beats oversampling: what the zoo is measured on
    quick = child_pytest("claims/test_methods_under_test.py", "--collect-only", "-q", "-m", "quick",
                         tmp_path=tmp_path)
    items = [line for line in quick.stdout.splitlines() if "::" in line]
    never = ("balanced_softmax", "strongest", "non_inferior")
    assert len(items) == 16 and not any(w in line for line in items for w in never), quick.stdout
    run = child_pytest("claims/test_methods_under_test.py", "-m", "quick", "-k",
                       "m-adult-xgboost and smote and beats_erm", "--seeds=2", tmp_path=tmp_path)
    assert "1 xpassed" in run.stdout or "1 xfailed" in run.stdout, run.stdout[-2000:]
    page = " ".join((tmp_path / "reports" / "latest" / "index.html").read_text().split())
    assert ("Left out of the quick zoo on m-cifar10-nn:</b> <code>balanced_softmax</code> &mdash; balanced_softmax "
            "is left out of the quick zoo: it is the logit-adjusted loss") in page


def test_a_store_at_a_file_is_a_usage_error_before_anything_trains(tmp_path):
    """It was an INTERNALERROR (NotADirectoryError) at the first run stored."""
    import time

    (tmp_path / "file").write_text("")
    started = time.perf_counter()
    out = child_pytest("claims/", "-m", "quick", f"--store={tmp_path / 'file'}", tmp_path=tmp_path)
    assert out.returncode == 4, out.stdout[-2000:] + out.stderr[-2000:]  # pytest's usage error
    assert f"result store {tmp_path / 'file'} is a file, not a directory; point --store at a " \
           "directory" in out.stderr
    assert "Traceback" not in out.stderr and "INTERNALERROR" not in out.stdout
    assert time.perf_counter() - started < 60


def test_a_library_that_does_not_import_stops_the_session_before_anything_trains(tmp_path):
    """A laplace package whose import raises, ahead of the real one on PYTHONPATH (as a broken
    install would): a quick claim that needs Laplace stops the session in seconds, with the
    module, its error and the fix, and nothing trains (the preflight runs in the workers'
    warm-up)."""
    import os
    import time

    from .conftest import shared_data_available

    if not (shared_data_available("cifar10/cifar10-jpeg.zip")
            or shared_data_available("cifar10/cifar-10-batches-py")):
        pytest.skip("CIFAR-10 not present")
    fake = tmp_path / "fake" / "laplace"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('injected: laplace-torch is broken')\n")
    path = os.pathsep.join(filter(None, [str(tmp_path / "fake"), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "claims/test_takeaway5_flatness.py", "-m", "quick", "-k", "bayesian",
                          "--seeds=2", f"--store={tmp_path / 'store'}",
                          f"--report-dir={tmp_path / 'reports'}"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=path))
    took = time.perf_counter() - started
    text = out.stdout + out.stderr
    assert out.returncode == 4, text[-3000:]
    assert "laplace (needed by method laplace): ImportError: injected: laplace-torch is broken" in text
    # The fake shadows the installed laplace-torch: the fix says so, not "reinstall it".
    assert f"fix: laplace is imported from {fake / '__init__.py'}" in " ".join(text.split())
    assert "not from the installed laplace-torch: remove it from PYTHONPATH" in " ".join(text.split())
    assert "[harness] runs" not in text and not (tmp_path / "store").exists()  # nothing trained
    assert took < 60, took


def test_sequential_seeds_make_looks_in_rounds_record_them_and_load_them_again(tmp_path):
    """--seeds=auto on the quick Adult claims of takeaway 1, designs ending at 10 seeds
    (tests/small_designs.py): the looks are made in rounds, each verdict records its design and
    looks and is judged on the seeds it stopped at, and a second session on the same store
    trains nothing and reaches the same verdicts at the same seeds."""
    import json

    args = ("claims/test_takeaway1_train_test_ratio.py", "-p", "tests.small_designs", "-m", "quick",
            "-k", "adult", "--seeds=auto", "-p", "no:randomly")
    first = child_pytest(*args, tmp_path=tmp_path)
    assert first.returncode in (0, 1), first.stdout[-3000:]
    assert "sequential seeds, look 1: 3 undecided claim(s) on 1 arm(s)" in first.stdout
    rows = json.loads((tmp_path / "reports" / "latest" / "claims.json").read_text())
    assert len(rows) == 3
    for row in rows:
        q = row["sequential"]
        assert q["design"]["looks"] == [5, 10] and len(row["seeds"]) == q["stopped_at"]
        assert [x["n"] for x in q["looks"]] == [5, 10][:len(q["looks"])]
        assert q["stop"] in ("supported", "refuted", "futile", "inconclusive")
        assert "group-sequential" in row["statistic"]
    second = child_pytest(*args, tmp_path=tmp_path)
    assert "0 runs trained" in second.stdout, second.stdout[-2000:]
    again = json.loads((tmp_path / "reports" / "latest" / "claims.json").read_text())
    assert [(r["nodeid"], r["verdict"], r["seeds"]) for r in again] == \
        [(r["nodeid"], r["verdict"], r["seeds"]) for r in rows]


def test_seeds_take_a_number_or_auto(tmp_path):
    out = child_pytest("claims/", "--collect-only", "-q", "--seeds=many", tmp_path=tmp_path)
    assert out.returncode != 0 and "--seeds takes a whole number or auto" in out.stderr


def test_a_skip_reason_is_not_prefixed_twice():
    """The claim row prints "SKIPPED name: reason"; pytest's own "Skipped: " must not follow."""
    from fixtures.plugin import skip_reason

    assert skip_reason(("fixtures/claims.py", 77, "Skipped: arm: no GPU")) == "arm: no GPU"
    assert skip_reason(("claims/t.py", 116, "needs --simclr-weights")) == "needs --simclr-weights"
    assert skip_reason("Skipped: why") == "why"
