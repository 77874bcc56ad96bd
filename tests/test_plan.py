"""The plan: unique runs per arm (shared runs counted once), runs stored, cost from throughput."""

import json
import subprocess
import sys

import pytest

from harness.experiments import plan, protocols
from harness.learners import models
from harness.data import REPO_ROOT
from harness.runs.spec import make_spec
from harness.runs.store import ResultStore

from .conftest import shared_data_available


def spec(n, seed=0, model="spy"):
    return make_spec("synthetic", model, "erm", (200, n), (1.0,), seed)


def test_shared_runs_count_once_and_stored_runs_are_counted(synthetic, tmp_path):
    store = ResultStore(tmp_path)
    a = [spec(10, s) for s in range(3)]
    b = [spec(10, 0), spec(20, 0)]  # the first is also in arm a
    from harness.runs.training import execute

    store.put(execute(a[0]))
    result = plan.build_plan([("quick", "a", a), ("quick", "b", b)], store, plan.load_calibration())
    assert result["runs_total"] == 4 and result["runs_stored"] == 1 and result["runs_to_train"] == 3
    assert result["by_arm"]["quick/a"]["runs"] == 3 and result["by_arm"]["quick/a"]["stored"] == 1
    assert result["by_arm"]["quick/b"]["shared_with_earlier_arms"] == 1
    assert result["by_arm"]["quick/b"]["to_train"] == 1


def test_cost_scales_with_the_work_of_a_run():
    full = make_spec_like("resnet34", "erm")
    sam = make_spec_like("resnet34", "sam")
    figures = plan.load_calibration("/nonexistent")
    seconds, key = plan.estimate_seconds(full, figures)
    assert key == "resnet34/cuda"
    # 12,000 images x 200 epochs at the assumed 11,000 images/s, plus evaluation and overhead
    assert seconds == pytest.approx(12_000 * 200 / 11_000 + plan.EVAL_PASSES / 11_000 + plan.RUN_OVERHEAD_S)
    assert plan.estimate_seconds(sam, figures)[0] > 1.9 * seconds - 1


def test_runs_sharing_a_trained_model_pay_for_its_training_once(tmp_path):
    """Laplace trains like ERM: after the ERM run of its cell, it adds only its own stage."""
    erm, laplace = make_spec_like("resnet34", "erm"), make_spec_like("resnet34", "laplace")
    figures = plan.load_calibration("/nonexistent")
    alone = plan.build_plan([("full", "laplace", [laplace])], ResultStore(tmp_path), figures)
    both = plan.build_plan([("full", "erm", [erm]), ("full", "laplace", [laplace])],
                           ResultStore(tmp_path), figures)
    erm_hours = both["by_arm"]["full/erm"]["estimated_gpu_hours"]
    assert both["by_arm"]["full/laplace"]["estimated_gpu_hours"] < 0.05 * erm_hours
    assert alone["estimated_gpu_hours"] >= erm_hours  # on its own it trains (and adds its stage)


def make_spec_like(model, method):
    from harness.learners import models
    from harness.runs.spec import RunSpec

    from harness import methods

    measured = models.measurements(model)
    hp = {k: v for k, v in models.DEFAULTS[model].items() if k not in measured and k != "device"}
    return RunSpec("cifar10", model, method, (1_200,) * 10, (1.0,), 0, tuple(sorted(hp.items())),
                   tuple(sorted(methods.get(method).defaults_for(model).items())),
                   tuple(sorted((k, models.DEFAULTS[model][k]) for k in measured)),
                   (("device", "cuda"),), "x", "0")


def test_a_measured_figure_overrides_the_assumed_one(tmp_path):
    file = tmp_path / "calibration.json"
    plan.record_throughput("resnet34", "cuda", {"images_per_second": 22_000, "device_name": "H100"}, file)
    figures = plan.load_calibration(file)
    assert figures["resnet34/cuda"]["measured"] and figures["resnet34/cuda"]["images_per_second"] == 22_000
    assert not figures["small_cnn/cpu"]["measured"]
    assert "H100" in figures["resnet34/cuda"]["source"]


def test_a_cpu_figure_measured_at_more_threads_than_a_slot_is_not_used(tmp_path):
    """The suite trains one thread per CPU slot; a 2-thread figure would price it ~1.8x low."""
    file = tmp_path / "calibration.json"
    plan.record_throughput("airbench_cnn", "cpu", {"images_per_second": 2_700, "threads": 2}, file)
    figure = plan.load_calibration(file)["airbench_cnn/cpu"]
    assert not figure["measured"]
    assert figure["images_per_second"] == plan.ASSUMED[("airbench_cnn", "cpu")]["images_per_second"]
    assert "2 threads" in figure["source"] and "--threads 1" in figure["source"]
    plan.record_throughput("airbench_cnn", "cpu", {"images_per_second": 1_300, "threads": 1}, file)
    figure = plan.load_calibration(file)["airbench_cnn/cpu"]
    assert figure["measured"] and figure["images_per_second"] == 1_300


def test_an_unreadable_calibration_file_is_a_clear_error(tmp_path):
    file = tmp_path / "calibration.json"
    file.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON.*throughput"):
        plan.load_calibration(file)


@pytest.mark.skipif(not shared_data_available("adult/adult.data"), reason="Adult not present")
def test_plan_command_takes_pytest_selection_and_prints_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "plan", "-m", "quick", "-k", "adult and takeaway",
                          "--json", f"--store={tmp_path}", "--seeds=3"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    # t1 (5 ratios) + t2 (2 minority counts x 6 factors) + t3 (3 methods x 5 ratios, ERM shared
    # with t1), at 3 seeds
    assert result["runs_total"] == 3 * (5 + 12 + 10) and result["runs_stored"] == 0
    assert set(result["by_arm"]) == {"quick/t1-adult-xgboost", "quick/t2-adult-xgboost",
                                     "quick/t3-adult-xgboost"}
    assert result["by_arm"]["quick/t3-adult-xgboost"]["shared_with_earlier_arms"] == 15
    assert result["estimated_cpu_hours"] > 0 and "xgboost/cpu" in result["throughput"]
    assert result["estimated_gpu_hours"] == 0 and "estimated_hours" not in result  # never a GPU+CPU sum


def test_plan_of_the_full_profile_counts_gpu_hours_without_a_gpu(tmp_path):
    if not shared_data_available("cifar10/cifar10-jpeg.zip") and not shared_data_available(
            "cifar10/cifar-10-batches-py/data_batch_1"):
        pytest.skip("CIFAR-10 not present")
    out = subprocess.run([sys.executable, "-m", "harness", "plan", "-m", "full", "-k", "takeaway5",
                          f"--store={tmp_path}"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "full/t5-cifar10-flatness" in out.stdout and "GPU-hours" in out.stdout
    assert "resnet34/cuda" in out.stdout and "assumed" in out.stdout
    import torch

    if not torch.cuda.is_available():  # without a GPU it says which arms will skip here, and why
        skips = out.stdout.split("what will skip in this session")[1]
        assert "full/t5-cifar10-flatness: they are GPU runs and this machine has no CUDA GPU" in skips


def test_durations_read_in_minutes_below_an_hour():
    assert plan.duration(0.0235) == "1.4 min" and plan.duration(0.0) == "0.0 min"
    assert plan.duration(0.0004) == "< 0.1 min" and plan.duration(4.56) == "4.56 h"
    assert plan.duration(20.43, "GPU") == "20.43 GPU-hours"
    assert plan.duration(0.235, "CPU") == "14.1 CPU-minutes"
    text = plan.format_plan({"by_arm": {"quick/a": {"device": "cpu", "runs": 3, "shared_with_earlier_arms": 0,
                                                    "stored": 0, "to_train": 3, "estimated_gpu_hours": 0.0,
                                                    "estimated_cpu_hours": 0.03}},
                             "runs_total": 3, "runs_stored": 0, "runs_to_train": 3, "store": "s",
                             "estimated_gpu_hours": 0.0, "estimated_cpu_hours": 0.03, "throughput": {}})
    assert "1.8 min" in text and "estimated cost: 1.8 CPU-minutes" in text
    assert "0.00" not in text and "GPU-" not in text  # no "0.00 GPU-hours" on a CPU-only plan


def test_the_docs_quote_the_full_plan(tmp_path):
    """docs/cluster.md's figures for the full profile are the plan's, not a memory of them."""
    if not shared_data_available("cifar10/cifar10-jpeg.zip") and not shared_data_available(
            "cifar10/cifar-10-batches-py/data_batch_1"):
        pytest.skip("CIFAR-10 not present")
    out = subprocess.run([sys.executable, "-m", "harness", "plan", "-m", "full", "--json",
                          f"--store={tmp_path}"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    resnet = sum(a["runs"] - a["shared_with_earlier_arms"] for a in result["by_arm"].values()
                 if a.get("model") == "resnet34")
    page = " ".join((REPO_ROOT / "docs" / "cluster.md").read_text().split())
    assert (f"The full profile is the paper's grids: {result['runs_total']} unique runs, {resnet} of "
            "them ResNet-34 runs") in page


def test_a_cold_figure_does_not_replace_a_steady_state_one_unless_forced(tmp_path):
    """gpucheck's steady state (after a warm-up epoch) is what a long run sustains; the
    throughput command's first epoch from cold is not, and does not overwrite it."""
    file = tmp_path / "calibration.json"
    plan.record_throughput("resnet34", "cuda", {"images_per_second": 20_000, "device_name": "H200"},
                           file, kind="steady")
    before = file.read_text()
    with pytest.raises(plan.SteadyFigureKept, match="steady-state.*--force-calibration"):
        plan.record_throughput("resnet34", "cuda", {"images_per_second": 9_000}, file, kind="cold")
    assert file.read_text() == before
    figure = plan.load_calibration(file)["resnet34/cuda"]
    assert figure["images_per_second"] == 20_000 and figure["kind"] == "steady"
    assert "steady state" in figure["source"]
    plan.record_throughput("resnet34", "cuda", {"images_per_second": 9_000}, file, kind="cold", force=True)
    assert plan.load_calibration(file)["resnet34/cuda"]["kind"] == "cold"
    plan.record_throughput("resnet34", "cuda", {"images_per_second": 9_500}, file, kind="cold")  # cold over cold
    plan.record_throughput("resnet34", "cuda", {"images_per_second": 21_000}, file, kind="steady")
    assert plan.load_calibration(file)["resnet34/cuda"]["images_per_second"] == 21_000
    with pytest.raises(ValueError, match="kind"):
        plan.record_throughput("resnet34", "cuda", {"images_per_second": 1}, file, kind="warm")


def test_figures_written_before_kinds_were_recorded_keep_their_kind(tmp_path):
    """A figure of an older file: gpucheck's (it alone has aggregate_images_per_second) is
    steady and kept; the throughput command's is cold and replaced."""
    file = tmp_path / "calibration.json"
    file.write_text(json.dumps({"throughput": {
        "resnet34/cuda": {"images_per_second": 20_000, "aggregate_images_per_second": {"1": 20_000},
                          "source": "measured on gpu1 (H100) 2025-01-01"},
        "small_cnn/cpu": {"images_per_second": 8_000, "images": 256, "threads": 1,
                          "source": "measured on ci (cpu) 2025-01-01"}}}))
    figures = plan.load_calibration(file)
    assert figures["resnet34/cuda"]["kind"] == "steady" and figures["small_cnn/cpu"]["kind"] == "cold"
    with pytest.raises(plan.SteadyFigureKept):
        plan.record_throughput("resnet34", "cuda", {"images_per_second": 9_000}, file, kind="cold")
    plan.record_throughput("small_cnn", "cpu", {"images_per_second": 9_000}, file, kind="cold")
    assert plan.load_calibration(file)["small_cnn/cpu"]["images_per_second"] == 9_000


def test_sequential_plan_prices_the_first_look_the_expected_and_the_worst_case(synthetic, tmp_path):
    """An arm under --seeds=auto comes with its specs up to its maximum: the plan's own figures
    are the first look's, the expected case takes ceil(expected seeds), the worst case all; a
    fixed arm beside it counts the same in all three."""
    store = ResultStore(tmp_path)
    auto = [spec(10, s) for s in range(20)]
    fixed = [spec(30, s) for s in range(5)]
    result = plan.sequential_plan([("full", "auto", auto), ("quick", "fixed", fixed)],
                                  {("full", "auto"): ([5, 10, 20], 11.7)}, 0, store,
                                  plan.load_calibration())
    q = result["sequential"]
    assert result["runs_total"] == 5 + 5 and q["first_look"]["runs_total"] == 10
    assert q["expected"]["runs_total"] == 12 + 5 and q["worst_case"]["runs_total"] == 20 + 5
    hours = [case["estimated_gpu_hours"] + case["estimated_cpu_hours"] for case in (q["worst_case"], q["expected"], result)]
    assert hours[0] > hours[1] > hours[2]
    assert q["arms"] == {"full/auto": {"looks": [5, 10, 20], "expected_seeds": 11.7}}
    text = plan.format_plan(result)
    assert "expected: 17 unique runs" in text and "worst case: 25 unique runs" in text
    assert "full/auto: looks at 5, 10, 20 seeds, expected 11.7" in text
    assert plan.sequential_plan([("quick", "fixed", fixed)], {}, 0, store, plan.load_calibration()) == \
        plan.build_plan([("quick", "fixed", fixed)], store, plan.load_calibration())


def test_plan_of_auto_seeds_from_the_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "plan", "-m", "quick", "-k", "adult and takeaway1",
                          "--seeds=auto", "--json", f"--store={tmp_path}"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    arms = result["sequential"]["arms"]
    assert list(arms) == ["quick/t1-adult-xgboost"] and arms["quick/t1-adult-xgboost"]["looks"][-1] == 80
    assert result["sequential"]["worst_case"]["runs_total"] == 16 * result["runs_total"]


def test_runs_sharing_a_gpu_divide_gpu_time_by_the_measured_speedup_only():
    figures = {"resnet34/cuda": {"images_per_second": 1_000, "aggregate_images_per_second":
                                 {"1": 1_000, "2": 1_600, "4": 1_900}}}
    used = {"resnet34/cuda", "xgboost/cpu"}
    shared = plan.gpu_sharing(figures, 4, used)
    assert shared["speedup"] == 1.9 and shared["best_measured"] == {"resnet34/cuda": 4}
    assert plan.gpu_sharing(figures, 1, used)["speedup"] == 1.0
    unmeasured = plan.gpu_sharing(figures, 3, used)  # no aggregate at 3: no speedup promised
    assert unmeasured["speedup"] == 1.0 and "no aggregate figure measured at 3" in unmeasured["source"]
    assumed = plan.gpu_sharing({"resnet34/cuda": {"images_per_second": 1_000}}, 2, used)
    assert assumed["speedup"] == 1.0 and assumed["best_measured"] == {}


def cold_plan(profile: str, tmp_path) -> dict:
    """``plan -m profile --json`` against an empty store and no calibration (assumed figures);
    skips where CIFAR-10 is absent."""
    if not shared_data_available("cifar10/cifar10-jpeg.zip") and not shared_data_available(
            "cifar10/cifar-10-batches-py/data_batch_1"):
        pytest.skip("CIFAR-10 not present")
    out = subprocess.run([sys.executable, "-m", "harness", "plan", "-m", profile, "--json",
                          f"--store={tmp_path}", f"--calibration={tmp_path / 'none.json'}"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_the_medium_profile_fits_one_gpu_hour_and_selects_every_neural_claim_of_the_paper(tmp_path):
    """-m medium: every claim test the full profile runs on a network arm is selected at medium
    too, and the plan of the whole profile (assumed figures, one run at a time per GPU) is at most
    one GPU-hour; docs/cluster.md's One GPU section quotes it."""
    result = cold_plan("medium", tmp_path)
    assert result["estimated_gpu_hours"] <= 1.0, result["estimated_gpu_hours"]
    network_arms = {a for a, c in protocols.PROFILES["full"].items() if models.device_bound(c.model)}
    assert {f"medium/{a}" for a in network_arms} <= set(result["by_arm"])
    resnet = sum(a["runs"] - a["shared_with_earlier_arms"] for a in result["by_arm"].values()
                 if a.get("model") == "resnet34")
    page = " ".join((REPO_ROOT / "docs" / "cluster.md").read_text().split())
    assert (f"`python -m harness plan -m medium`: {result['runs_total']} unique runs, {resnet} of "
            f"them ResNet-34 runs, {result['estimated_gpu_hours'] * 60:.1f} GPU-minutes") in page

    def collected(marker):
        done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", marker,
                               "-p", "no:cacheprovider", "-p", "no:randomly", "claims/"],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:]
        return {line for line in done.stdout.splitlines() if "::" in line}

    full = {i.replace("[full-", "[medium-") for i in collected("full")
            if any(f"-{arm}]" in i or f"-{arm}-" in i for arm in network_arms)
            and "test_methods_under_test" not in i}
    assert full and full <= collected("medium")


def test_the_docs_laptop_price_is_the_plans(tmp_path):
    """docs/profiles.md, "The laptop profile": `plan -m laptop` priced at the figure it quotes
    (assumed figures, an empty store), so a recipe change cannot leave the price stale."""
    hours = cold_plan("laptop", tmp_path)["estimated_cpu_hours"]
    page = " ".join((REPO_ROOT / "docs" / "profiles.md").read_text().split())
    assert f"laptop` prices it at {hours:.1f} CPU-hours" in page, hours
