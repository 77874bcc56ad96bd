"""The pytest plugin's options, checked in a child pytest (nothing trains)."""

import subprocess
import sys

from harness.data import REPO_ROOT


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


def test_too_few_seeds_is_a_usage_error(tmp_path):
    out = child_pytest("claims/", "--collect-only", "-q", "--seeds=1", tmp_path=tmp_path)
    assert out.returncode != 0 and "--seeds must be at least 2" in out.stderr


def test_cuda_without_a_gpu_is_a_usage_error_before_anything_trains(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

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
