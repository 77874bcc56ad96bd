"""The GPU check's script, smoke-tested on the CPU with a tiny network (the numbers it reports on
a GPU are in the issue notes; here only its shape and the calibration it writes)."""

import pytest

from harness.experiments import gpucheck, plan


def test_flops_of_a_training_image_are_counted():
    # ResNet-34 with the CIFAR stem: 1.16 G multiply-adds forward per 32 px image = 2.32 GFLOPs
    # (torch counts a multiply-add as 2 FLOPs, as peak FLOP/s figures do); backward is ~2x forward
    flops = gpucheck.training_flops_per_image("resnet34", 32)
    assert 6.5e9 < flops < 7.5e9


def test_bf16_peaks_match_the_most_specific_name():
    assert gpucheck.bf16_peak("NVIDIA H100 PCIe") == 756.0
    assert gpucheck.bf16_peak("NVIDIA H100 80GB HBM3") == 989.4
    assert gpucheck.bf16_peak("NVIDIA H200") == 989.4
    assert gpucheck.bf16_peak("Some Future GPU") is None


def test_gpucheck_measures_concurrent_runs_and_writes_the_calibration(tmp_path):
    file = tmp_path / "calibration.json"
    result = gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1, 2),
                               images=256, cells=False, calibration=file, warmup_s=4)
    assert [t["concurrent_runs"] for t in result["throughput"]] == [1, 2]
    assert len(result["throughput"][1]["images_per_second_per_run"]) == 2
    assert all(t["images_per_second_total"] > 0 for t in result["throughput"])
    figures = plan.load_calibration(file)
    assert figures["small_cnn/cpu"]["measured"]
    assert figures["small_cnn/cpu"]["images_per_second"] == result["throughput"][0]["images_per_second_per_run"][0]


def test_gpucheck_on_cuda_without_a_gpu_says_where_to_run_it():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="run it on the GPU machine"):
        gpucheck.gpucheck(device="cuda")
