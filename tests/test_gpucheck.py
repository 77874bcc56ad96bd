"""The GPU check's script, smoke-tested on the CPU with a tiny network (the numbers it reports on
a GPU are in the issue notes; here only its shape and the calibration it writes)."""

import json
import time

import pytest

from harness.experiments import dryrun, gpucheck, plan


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


def test_h200_nvl_is_not_taken_for_an_h200_sxm():
    assert gpucheck.bf16_peak("NVIDIA H200 NVL") == 835.0  # NVIDIA's sheet: 1,671 with sparsity
    assert gpucheck.bf16_peak("NVIDIA H200") == 989.4
    assert gpucheck.bf16_peak("NVIDIA GH200 480GB") == 989.4
    assert gpucheck.bf16_peak("NVIDIA A100-SXM4-80GB") == 312.0  # not the A10's 125


def test_the_longest_matching_name_wins_for_every_pair_that_nests():
    names = list(gpucheck.BF16_PEAK_TFLOPS)
    nested = [(short, long) for short in names for long in names if short != long and short in long]
    assert ("H200", "H200 NVL") in nested and ("L4", "L40S") in nested
    for short, long in nested:
        for card in (f"NVIDIA {long}", f"NVIDIA {long} 141GB"):
            assert gpucheck.bf16_peak(card) == gpucheck.BF16_PEAK_TFLOPS[long], (short, long)


def test_gpucheck_measures_concurrent_runs_and_writes_the_calibration(tmp_path):
    file = tmp_path / "calibration.json"
    out = tmp_path / "gpucheck.json"
    result = gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1, 2),
                               images=256, cells=False, calibration=file, warmup_s=4, out=out)
    assert [t["concurrent_runs"] for t in result["throughput"]] == [1, 2]
    assert len(result["throughput"][1]["images_per_second_per_run"]) == 2
    assert all(t["images_per_second_total"] > 0 for t in result["throughput"])
    assert result["throughput"][0]["peak_memory_reserved_gib_per_run"] == [None]  # CUDA only
    figures = plan.load_calibration(file)
    assert figures["small_cnn/cpu"]["measured"] and figures["small_cnn/cpu"]["kind"] == "steady"
    assert figures["small_cnn/cpu"]["images_per_second"] == result["throughput"][0]["images_per_second_per_run"][0]
    assert result["failed"] == [] and result["complete"]
    assert "skipped" in result["variants"]  # not compiled on the CPU
    assert result["environment"]["torch_file"].endswith("__init__.py")
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))


def test_gpucheck_on_cuda_without_a_gpu_says_where_to_run_it():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="run it on the GPU machine"):
        gpucheck.gpucheck(device="cuda")


def fake_level(level, rate=100.0):
    return {"concurrent_runs": level, "images_per_second_per_run": [rate] * level,
            "images_per_second_total": rate * level, "peak_memory_gib_per_run": [None] * level,
            "peak_memory_reserved_gib_per_run": [None] * level}


OUT_OF_MEMORY = "CUDA out of memory. Tried to allocate 2 GiB"


def measure_failing_at(failing, error=None):
    def measure(arch, device, level, seconds, images, warmup_s=30.0, **settings):
        if level in failing:
            raise error or RuntimeError(OUT_OF_MEMORY)
        return fake_level(level)
    return measure


def test_a_failing_stage_keeps_the_finished_ones_on_disk_and_is_reported(tmp_path, monkeypatch):
    """An out-of-memory at 2 runs and a missing dataset in the cells: level 1, the FLOPs and the
    calibration stay, in the result and in the file; each error says what and where."""
    monkeypatch.setattr(gpucheck, "training_flops_per_image", lambda *a: 1e9)
    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at({2}))

    def no_dataset(*args, **kwargs):
        raise FileNotFoundError("covtype not found under /nowhere")

    monkeypatch.setattr(gpucheck, "run_cells", no_dataset)
    out, calibration = tmp_path / "out" / "gpucheck.json", tmp_path / "calibration.json"
    result = gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1, 2, 4),
                               cells=True, calibration=calibration, out=out)
    assert result["training_flops_per_image"] == 1e9
    level1, level2, level4 = result["throughput"]
    assert level1["images_per_second_total"] == 100.0 and level4["images_per_second_total"] == 400.0
    assert level2["concurrent_runs"] == 2 and level2["error"]["type"] == "RuntimeError"
    assert "out of memory" in level2["error"]["message"] and level2["error"]["traceback_tail"]
    assert result["errors"]["method_cells"]["type"] == "FileNotFoundError"
    assert "covtype" in result["errors"]["method_cells"]["message"]
    assert result["failed"] == ["throughput/2", "method_cells"]
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))  # the file holds it all
    assert result["calibration_file"] == str(calibration)


def test_the_command_prints_what_finished_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    from harness import __main__ as cli

    monkeypatch.setattr(gpucheck, "training_flops_per_image", lambda *a: 1e9)
    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at({4}))
    out = tmp_path / "gpucheck.json"
    assert cli.main(["gpucheck", "--device", "cpu", "--arch", "small_cnn", "--no-cells",
                     "--out", str(out), "--calibration", str(tmp_path / "c.json")]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert [("error" in t) for t in printed["throughput"]] == [False, False, True]
    assert printed["failed"] == ["throughput/4"] and json.loads(out.read_text())["failed"] == ["throughput/4"]


def test_a_killed_check_leaves_its_finished_stages_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(gpucheck, "training_flops_per_image", lambda *a: 1e9)
    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at({2}, KeyboardInterrupt()))
    out = tmp_path / "gpucheck.json"
    with pytest.raises(KeyboardInterrupt):
        gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1, 2), cells=False,
                          calibration=tmp_path / "c.json", out=out)
    left = json.loads(out.read_text())
    assert left["complete"] is False and left["training_flops_per_image"] == 1e9
    assert left["throughput"][0]["images_per_second_total"] == 100.0 and len(left["throughput"]) == 1
    assert not list(tmp_path.glob(".gpucheck.json.*"))  # atomic writes leave no temporary file


def test_the_calibration_comes_from_a_level_that_succeeded(tmp_path, monkeypatch):
    monkeypatch.setattr(gpucheck, "training_flops_per_image", lambda *a: 1e9)
    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at({1, 4}))
    calibration = tmp_path / "calibration.json"
    result = gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1, 2, 4),
                               cells=False, calibration=calibration)
    figure = plan.load_calibration(calibration)["small_cnn/cpu"]
    assert figure["images_per_second"] == 100.0 and figure["concurrent_runs"] == 2
    assert figure["aggregate_images_per_second"] == {"2": 200.0}  # not the failed 1 or 4
    assert result["failed"] == ["throughput/1", "throughput/4"]

    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at({1, 2, 4}))
    nothing = tmp_path / "untouched.json"
    result = gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1, 2, 4),
                               cells=False, calibration=nothing)
    assert not nothing.exists() and result["calibration_file"] is None
    assert "no throughput level succeeded" in result["calibration_skipped"]


def test_cells_run_only_device_bound_models(monkeypatch):
    from types import SimpleNamespace

    from harness.runs import training

    def run(dataset, model, method):
        spec = SimpleNamespace(dataset=dataset, model=model, method=method, train_counts=(20, 10))
        return dryrun.DryRun(f"{dataset}/{model}/{method}", "arm", spec, None)

    mix = [run("adult", "xgboost", "erm"), run("toy2d", "mlp2d", "erm"), run("cifar10", "small_cnn", "erm"),
           run("adult", "linear_svm", "erm"), run("cifar10", "resnet34", "sam")]
    from harness.learners import models

    def dry_runs(*args, device_bound_only=False, **kwargs):  # the dry run's own filter
        return [r for r in mix if not device_bound_only or models.device_bound(r.spec.model)]

    monkeypatch.setattr(dryrun, "dry_runs", dry_runs)
    trained = []

    def execute(spec, **kwargs):
        trained.append(spec.model)
        if spec.model == "resnet34":
            raise ValueError("shape mismatch")
        return {}

    monkeypatch.setattr(training, "execute", execute)
    monkeypatch.setattr(dryrun, "missing_fields", lambda spec, record: [])
    cells = gpucheck.run_cells("cpu", time.time() + 60)
    assert list(cells) == ["cifar10/small_cnn/erm", "cifar10/resnet34/sam"] and trained == ["small_cnn", "resnet34"]
    assert cells["cifar10/small_cnn/erm"]["problems"] == []
    assert cells["cifar10/resnet34/sam"]["error"]["type"] == "ValueError"  # reported, not raised
    assert "peak_memory_reserved_gib" in cells["cifar10/small_cnn/erm"]


def test_variants_report_the_winner_and_a_compile_that_fails(monkeypatch):
    rates = {(False, False): 100.0, (True, False): 130.0, (False, True): 120.0}

    def measure(arch, device, level, seconds, images, warmup_s=30.0, cudnn_benchmark=None, compile=False):
        if compile and cudnn_benchmark:
            raise RuntimeError("InductorError: no C++ compiler found")
        return dict(fake_level(1, rates[cudnn_benchmark, compile]))

    monkeypatch.setattr(gpucheck, "measure_concurrency", measure)
    result = gpucheck.measure_variants("small_cnn", "cuda", 2.0, 64)
    assert result["winner"] == "cudnn_benchmark" and result["speedup_over_default"] == 1.3
    assert result["variants"]["compile"]["images_per_second"] == 120.0
    assert result["variants"]["cudnn_benchmark+compile"]["error"]["type"] == "RuntimeError"


def test_on_an_h200_nvl_mfu_uses_its_peak_and_variants_are_measured(tmp_path, monkeypatch):
    """The CUDA path without a GPU: torch's device queries and the measurements are faked."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H200 NVL")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(gpucheck, "training_flops_per_image", lambda *a: 7e9)
    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at(set()))
    result = gpucheck.gpucheck(minutes=0.1, device="cuda", levels=(1,), cells=False,
                               calibration=tmp_path / "c.json")
    assert result["bf16_peak_tflops"] == 835.0
    assert result["throughput"][0]["mfu_bf16"] == round(100.0 * 7e9 / 1e12 / 835.0, 4)
    assert set(result["variants"]["variants"]) == {name for name, *_ in gpucheck.VARIANTS}
    assert result["variants"]["winner"] and result["failed"] == []


def test_an_error_in_a_worker_process_comes_back_with_its_own_traceback():
    with pytest.raises(KeyError) as caught:
        gpucheck.measure_concurrency("no_such_network", "cpu", 1, 0.1, 8, warmup_s=0)
    error = gpucheck.error_record(caught.value)
    assert error["type"] == "KeyError" and "no_such_network" in error["message"]
    assert any("throughput_worker" in line for line in error["traceback_tail"])


def test_the_throughput_command_does_not_replace_a_gpucheck_figure(tmp_path, monkeypatch, capsys):
    """Its cold first-epoch figure is printed, and gpucheck's steady state stays in the file."""
    import numpy as np

    from harness import __main__ as cli
    from harness import data
    from harness.learners import models

    from types import SimpleNamespace

    cifar = SimpleNamespace(x_train=np.zeros((8, 32, 32, 3), np.uint8), y_train=np.zeros(8, np.int64),
                            x_test=np.zeros(8, np.int64), y_test=np.zeros(8, np.int64),
                            source={"variant": "fake"})

    class Model:
        log = {"images_per_second": 55.0, "images_seen": 8}
        device = __import__("torch").device("cpu")

        def fit(self, x, y):
            return self

        def predict(self, x):
            return np.zeros(len(x), np.int64)

    monkeypatch.setattr(data, "load", lambda *a, **k: cifar)
    monkeypatch.setattr(models, "build", lambda *a, **k: Model())
    calibration = tmp_path / "calibration.json"
    plan.record_throughput("small_cnn", "cpu", {"images_per_second": 9_500.0, "device_name": "cpu",
                                                "aggregate_images_per_second": {"1": 9_500.0}},
                           calibration, kind="steady")  # what gpucheck writes
    command = ["throughput", "--device", "cpu", "--calibration", str(calibration)]
    assert cli.main(command) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images_per_second"] == 55.0 and "steady-state" in report["calibration_kept"]
    assert plan.load_calibration(calibration)["small_cnn/cpu"]["images_per_second"] == 9_500.0
    assert cli.main(command + ["--force-calibration"]) == 0
    figure = plan.load_calibration(calibration)["small_cnn/cpu"]
    assert figure["images_per_second"] == 55.0 and figure["kind"] == "cold"


def test_a_cpu_smoke_test_leaves_the_default_calibration_alone(tmp_path, monkeypatch):
    """Auditor: `gpucheck --device cpu` wrote its contended figure as a steady-state one into the
    file plan reads by default, where a later cold figure could not replace it."""
    default = tmp_path / "default-calibration.json"
    monkeypatch.setenv(plan.CALIBRATION_ENV, str(default))
    monkeypatch.setattr(gpucheck, "training_flops_per_image", lambda *a: 1e9)
    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at(set()))
    result = gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1,), cells=False)
    assert not default.exists() and result["calibration_file"] is None
    assert "--calibration FILE" in result["calibration_skipped"] and result["failed"] == []


def test_an_unwritable_result_file_is_said_and_the_check_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpucheck, "training_flops_per_image", lambda *a: 1e9)
    monkeypatch.setattr(gpucheck, "measure_concurrency", measure_failing_at(set()))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = gpucheck.gpucheck(minutes=0.1, device="cpu", arch="small_cnn", levels=(1, 2), cells=False,
                               calibration=tmp_path / "c.json", out=blocked / "gpucheck.json")
    assert result["complete"] is True and len(result["throughput"]) == 2
    assert "out_file_error" in result and "cannot write" in capsys.readouterr().err
