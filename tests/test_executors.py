"""Executors: every one gives the same record for the same spec on the CPU, reports a failing run
while the others go on, and rejects bad settings before anything is submitted."""

import math
import os
import sys
import time
from dataclasses import dataclass
from functools import partial

import pytest

from harness.runs import executors
from harness.data import imbalance
from harness.runs.executors import ExecutorError, GpuSlotsExecutor, make_executor
from harness.runs.runner import execute_spec
from harness.runs.spec import make_spec

from .conftest import shared_data_available

needs_adult = pytest.mark.skipif(not shared_data_available("adult/adult.data"), reason="Adult not present")


def adult_specs():
    return [make_spec("adult", "xgboost", method, imbalance.binary_counts(1_000, 0.1), (0.1, 1.0),
                      seed, n_estimators=10)
            for method in ("erm", "oversample") for seed in (0, 1)]


def run_all(executor, fn, items, tick_s=None):
    try:
        return [o for o in executor.submit_all(fn, items, tick_s=tick_s)
                if not isinstance(o, executors.Heartbeat)]
    finally:
        executor.close()


@needs_adult
def test_every_executor_gives_the_same_record_for_the_same_spec(tmp_path):
    specs = adult_specs()
    job = partial(execute_spec, n_jobs=1)
    built = {
        "in-process": make_executor("local", workers=1),
        "local pool": make_executor("local", workers=2),
        "gpu slots": GpuSlotsExecutor(["0"], runs_per_gpu=2),  # pinning is harmless on the CPU
        "slurm-local": make_executor("slurm-local", workers=2, folder=tmp_path / "jobs"),
    }
    metrics = {}
    for name, executor in built.items():
        outcomes = run_all(executor, job, specs)
        assert all(error is None for _, _, error in outcomes), (name, outcomes)
        metrics[name] = {spec.key: record["metrics"] for spec, record, _ in outcomes}
        assert sorted(metrics[name]) == sorted(s.key for s in specs), name
    reference = metrics.pop("in-process")
    for name, got in metrics.items():
        assert got == reference, f"{name} gave different metrics than the in-process run"


@pytest.mark.parametrize("name", ["local pool", "gpu slots", "slurm-local"])
def test_a_failing_run_is_reported_while_the_others_finish(name, tmp_path):
    executor = {"local pool": lambda: make_executor("local", workers=2),
                "gpu slots": lambda: GpuSlotsExecutor(["0"], 1),
                "slurm-local": lambda: make_executor("slurm-local", workers=2,
                                                     folder=tmp_path / "jobs")}[name]()
    outcomes = {item: (result, error) for item, result, error in run_all(executor, math.sqrt, [4.0, -1.0, 9.0])}
    assert outcomes[4.0] == (2.0, None) and outcomes[9.0] == (3.0, None)
    assert outcomes[-1.0][0] is None and "math domain error" in str(outcomes[-1.0][1])
    if name == "slurm-local":  # the message points at the job's log
        assert "log:" in str(outcomes[-1.0][1]) and str(tmp_path / "jobs") in str(outcomes[-1.0][1])


def one_run_of_the_group_failed(item):
    """A group's outcome in which the second run's own part failed (with an exception that does
    not unpickle: its constructor takes two arguments)."""
    from harness.runs.training import RunFailure

    class TwoArguments(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a} {b}")

    try:
        raise TwoArguments("stage", "failed")
    except TwoArguments as err:
        return [{"key": f"{item}-ok"}, RunFailure(f"{item}-failed", "TwoArguments: stage failed",
                                                 "Traceback ...", err)]


@pytest.mark.parametrize("name", ["in-process", "local pool", "gpu slots", "slurm-local"])
def test_a_run_failure_inside_a_group_s_result_comes_back_through_every_executor(name, tmp_path):
    """The runner tells a failed run of a group by its RunFailure: it crosses every executor's
    process boundary as its strings."""
    from harness.runs.training import RunFailure

    executor = {"in-process": lambda: make_executor("local", workers=1),
                "local pool": lambda: make_executor("local", workers=2),
                "gpu slots": lambda: GpuSlotsExecutor(["0"], 1),
                "slurm-local": lambda: make_executor("slurm-local", workers=1,
                                                     folder=tmp_path / "jobs")}[name]()
    (item, result, error), = run_all(executor, one_run_of_the_group_failed, ["g"])
    assert error is None and result[0] == {"key": "g-ok"}
    assert isinstance(result[1], RunFailure)
    assert (result[1].key, result[1].error, result[1].traceback) == ("g-failed", "TwoArguments: stage failed",
                                                                    "Traceback ...")


def test_a_job_that_dies_fails_its_runs_with_the_log_path(tmp_path):
    executor = make_executor("slurm-local", workers=1, folder=tmp_path / "jobs")
    outcomes = run_all(executor, executors_exit, [1])
    (_, result, error), = outcomes
    assert result is None and isinstance(error, executors.JobFailed)
    assert "log:" in str(error)


def executors_exit(item):
    import os

    os._exit(3)  # the job's process dies without a result, as a killed Slurm task does


def test_a_long_run_gives_heartbeats_instead_of_silence():
    executor = executors.ProcessPoolExecutor(1)
    try:
        outcomes = list(executor.submit_all(time.sleep, [1.5], tick_s=0.3))
    finally:
        executor.close()
    beats = [o for o in outcomes if isinstance(o, executors.Heartbeat)]
    assert outcomes[-1][0] == 1.5 and len(beats) >= 2
    assert beats[-1].running and beats[-1].running[0][0] == 1.5 and beats[-1].running[0][1] > 0


def test_unknown_executor_names_the_choices():
    with pytest.raises(ExecutorError, match="local, gpus, slurm, slurm-local"):
        make_executor("ray")


def test_runs_per_gpu_below_one_is_rejected():
    with pytest.raises(ExecutorError, match="--runs-per-gpu must be at least 1"):
        make_executor("gpus", runs_per_gpu=0)


def test_gpus_without_a_visible_gpu_is_rejected(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ExecutorError, match="no GPU is visible"):
        make_executor("gpus")


def test_gpus_gives_each_slot_its_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    executor = make_executor("gpus", runs_per_gpu=3)
    assert executor.slots == ["2", "5", "2", "5", "2", "5"] and executor.workers == 6
    outcomes = run_all(executor, executors_visible_device, list(range(6)))
    assert sorted(result for _, result, _ in outcomes) == ["2", "2", "2", "5", "5", "5"]


def executors_visible_device(item):
    import os

    time.sleep(0.3)  # keep the slot busy so that every slot takes one item
    return os.environ["CUDA_VISIBLE_DEVICES"]


def test_slurm_without_sbatch_is_rejected(monkeypatch, tmp_path):
    monkeypatch.setattr(executors.shutil, "which", lambda name: None)
    with pytest.raises(ExecutorError, match="no `sbatch`.*--executor=slurm-local"):
        make_executor("slurm", folder=tmp_path)


def test_slurm_without_submitit_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ExecutorError, match=r'pip install -e "\.\[slurm\]"'):
        make_executor("slurm-local", folder=tmp_path)


def test_slurm_local_packs_runs_into_one_job_per_worker(tmp_path):
    executor = make_executor("slurm-local", workers=2, folder=tmp_path)
    assert [len(c) for c in executor.chunks(list(range(7)))] == [4, 3]
    executor = make_executor("slurm-local", workers=2, folder=tmp_path, runs_per_job=1)
    assert len(executor.chunks(list(range(7)))) == 7


def worker_pid():
    import os

    time.sleep(0.3)  # keep each worker busy so that the other one takes the other call
    return os.getpid()


@pytest.mark.parametrize("name", ["local", "gpus"])
def test_start_runs_a_function_once_in_each_worker_before_any_submit(name, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    executor = make_executor(name, workers=2, runs_per_gpu=2)
    try:
        warmed = [future.result(timeout=60) for future in executor.start(worker_pid)]
        assert len(warmed) == 2 and len(set(warmed)) == 2 and os.getpid() not in warmed
        # The started workers are the ones that train.
        ran = {result for _, result, _ in run_all(executor, executors_pid, [0, 1])}
        assert ran <= set(warmed)
    finally:
        executor.close()


def executors_pid(item):
    import os

    return os.getpid()


WORKER_EXIT = '''
import sys
from harness.runs.executors import worker_started
if sys.argv[1] == "worker":
    worker_started(print, ("initializer ran;",))
class Marker:
    def __del__(self, open=open, path=sys.argv[2]):
        open(path, "w").close()  # runs only if the interpreter tears its modules down
marker = Marker()
sys.stdout.write("written without a newline")
'''


@pytest.mark.parametrize("role", ["worker", "plain"])
def test_a_worker_exits_without_the_interpreter_teardown_but_flushes(role, tmp_path):
    """Closing a pool waited ~1.8 s per torch-importing worker for its teardown: a worker now
    skips it (its results are all returned by then), still flushing what it wrote."""
    import subprocess

    marker = tmp_path / "torn-down"
    out = subprocess.run([sys.executable, "-c", WORKER_EXIT, role, str(marker)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("written without a newline")
    assert ("initializer ran;" in out.stdout) == (role == "worker")
    assert marker.exists() == (role == "plain")


REALLOCATE = '''
import resource, sys
import numpy as np
from harness.runs.executors import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
for _ in range(2):  # the second 64 MB block: fresh pages, or the first one's memory again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(16 * 2**20, np.float32)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del block
print(kept, faults)
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc policy")
def test_a_training_process_reuses_freed_memory_instead_of_faulting_it_in_again():
    """glibc maps blocks over 32 MB afresh and unmaps them on free: a Hessian run page-faulted
    0.5-1 M times (kernel time ~10% of the run). keep_freed_memory makes the second allocation of
    a 64 MB block reuse the first one's pages."""
    import subprocess

    faults = {}
    for policy in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", REALLOCATE, policy], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        kept, faults[policy] = out.stdout.split()
    if kept != "True":
        pytest.skip("not glibc: keep_freed_memory leaves the platform's policy")
    assert int(faults["default"]) > 0  # the premise: without it, the block's pages fault again
    assert int(faults["keep"]) <= int(faults["default"]) // 10


def visible_devices(_item):
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_slurm_local_jobs_see_the_gpus_this_process_sees(tmp_path, monkeypatch):
    """Issue 21: slurm-local asked submitit for 0 GPUs per job, so each job ran with
    CUDA_VISIBLE_DEVICES="" and every neural job failed on a GPU machine. (A fake device list
    on the CPU: the job only reads the variable.)"""
    # "2,3": the machine's GPUs 2 and 3, not 0 and 1
    for devices, folder in (("0,1", "jobs"), ("2,3", "jobs3")):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", devices)
        executor = make_executor("slurm-local", workers=1, folder=tmp_path / folder)
        try:
            [(_, seen, error)] = list(executor.submit_all(visible_devices, [Item("job", "cuda")]))
        finally:
            executor.close()
        assert error is None and seen == devices
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a machine without GPUs: none asked for
    assert make_executor("slurm-local", workers=1, folder=tmp_path / "jobs2").executor.parameters[
        "gpus_per_node"] == 0


# ------------------------------------------------------------------ issue 21: slots that survive

@dataclass(frozen=True)
class Item:
    """A run as executors see it: a name and the device it declares."""

    name: str
    device: str = "cpu"


def pid_or_die(item):
    """The worker's pid; "die" kills the worker without a result, "cuda" fails as a sticky CUDA
    error does, "plain" fails as a run's own bug does."""
    import os

    if item == "die":
        os._exit(3)
    if item == "cuda":
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    if item == "plain":
        raise ValueError("a bug in the run")
    time.sleep(0.05)
    return os.getpid()


@pytest.mark.parametrize("name", ["local pool", "gpu slots"])
def test_a_dead_worker_fails_its_run_alone_and_its_slot_goes_on(name):
    """Issue 21: after a worker died, its pool was broken: the next submit raised
    BrokenProcessPool out of submit_all and the queued runs were lost."""
    executor = {"local pool": lambda: make_executor("local", workers=2),
                "gpu slots": lambda: GpuSlotsExecutor(["0"], 1)}[name]()
    items = ["a", "die", "b", "c", "d"]
    outcomes = {item: (result, error) for item, result, error in run_all(executor, pid_or_die, items)}
    assert sorted(outcomes) == sorted(items)
    assert outcomes["die"][0] is None and isinstance(outcomes["die"][1], executors.JobFailed)
    assert "died" in str(outcomes["die"][1])
    assert all(outcomes[i][1] is None and outcomes[i][0] > 0 for i in "abcd")


def test_a_device_error_leaves_a_fresh_worker_and_a_plain_error_does_not():
    """Issue 21: a CUDA error is sticky, so the slot that hit one would fail every later run."""
    executor = GpuSlotsExecutor(["0"], 1)
    try:
        pids = [result for _, result, _ in executor.submit_all(pid_or_die, ["a", "cuda", "b", "plain", "c"])]
    finally:
        executor.close()
    a, _, b, _, c = pids
    assert a != b, "the worker that raised a CUDA error trained the next run"
    assert b == c, "a run's own error should not cost the slot its warm worker"


def test_slots_interleave_gpus_so_the_first_runs_spread_over_the_cards(monkeypatch):
    """Issue 21: slots were [0, 0, 0, 1, 1, 1], so the first (heaviest) runs shared GPU 0."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert make_executor("gpus", runs_per_gpu=2).slots[:2] == ["0", "1"]


def device_seen(item):
    import os

    time.sleep(0.2)
    return item.device, os.environ.get("CUDA_VISIBLE_DEVICES")


def test_workers_auto_on_a_gpu_machine_counts_gpu_slots_beside_cpu_workers(monkeypatch):
    """Issue 21: --workers=auto started one process per core, all on the same GPU. Now GPU runs
    get --runs-per-gpu slots per GPU, each pinned, and CPU-only runs the remaining cores."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    executor = make_executor("local", workers="auto", runs_per_gpu=2)
    assert sorted(executor.slots, key=str) == ["0", "0", "1", "1"] + [None] * 4
    assert executor.workers == 8 and executor.threads_per_run == 1  # 8 cores, not oversubscribed
    items = [Item(f"n{i}", "cuda") for i in range(4)] + [Item(f"t{i}") for i in range(6)]
    seen = [result for _, result, _ in run_all(executor, device_seen, items)]
    assert sorted(gpu for device, gpu in seen if device == "cuda") == ["0", "0", "1", "1"]
    cpu = [gpu for device, gpu in seen if device == "cpu"]
    # the CPU workers took the first CPU runs; the rest may go to a GPU slot once no GPU run waits
    assert cpu.count("0,1") >= 4 and set(cpu) <= {"0,1", "0", "1"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: one worker per core, as before
    assert make_executor("local", workers="auto").slots == [None] * 8


def test_gpu_detection_does_not_import_torch_on_a_machine_without_gpu_nodes(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(executors, "gpu_device_nodes", lambda: [])
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch would raise
    assert executors.visible_gpus() == []


def test_slurm_cpu_only_runs_ask_for_no_gpu(tmp_path, monkeypatch):
    """Issue 21: every array task asked for the session's GPUs, so a one-second XGBoost run held
    a GPU. (slurm-local on a fake device list: a task sees the GPUs it asked for.)"""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    executor = make_executor("slurm-local", workers=2, folder=tmp_path / "jobs")
    items = [Item("tabular"), Item("network", "cuda"), Item("toy")]
    seen = {item.name: result for item, result, error in run_all(executor, device_seen, items)}
    assert seen == {"tabular": ("cpu", ""), "network": ("cuda", "0,1"), "toy": ("cpu", "")}


def pid_with_a_failed_run(item):
    """A group's result whose second run failed on its own, with a CUDA error for "cuda-run"."""
    import os

    from harness.runs.training import RunFailure

    time.sleep(0.05)
    if item == "cuda-run":
        return [os.getpid(), RunFailure("k", "RuntimeError: CUDA error: device-side assert triggered")]
    if item == "plain-run":
        return [os.getpid(), RunFailure("k", "ValueError: a bug in the stage")]
    return [os.getpid()]


def test_a_cuda_error_inside_a_group_s_result_also_leaves_a_fresh_worker():
    """A run's own failure comes back inside its group's result, not raised; a CUDA error there
    breaks the worker just the same."""
    executor = GpuSlotsExecutor(["0"], 1)
    try:
        pids = [result[0] for _, result, _ in executor.submit_all(
            pid_with_a_failed_run, ["a", "cuda-run", "b", "plain-run", "c"])]
    finally:
        executor.close()
    a, cuda_run, b, plain_run, c = pids
    assert cuda_run == a and b != cuda_run  # replaced after the CUDA failure
    assert plain_run == b and c == plain_run  # kept after a plain one


def test_gpu_slots_take_cpu_runs_once_no_gpu_run_is_queued(monkeypatch):
    """Auditor: with only CPU runs left (--device=cpu, -m "full and not gpu", GPU runs stored),
    the GPU slots sat idle beside the CPU workers."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    executor = make_executor("local", workers="auto")
    assert sorted(executor.slots, key=str) == ["0", "1", None]
    seen = [result for _, result, _ in run_all(executor, device_seen, [Item(f"t{i}") for i in range(6)])]
    assert {gpu for _, gpu in seen} == {"0", "1", "0,1"}  # every slot trained CPU runs


def test_slurm_cpu_only_tasks_leave_the_gpu_flag_out_and_restore_it(tmp_path, monkeypatch):
    """On Slurm a CPU-only task's script carries no --gpus-per-node (some sites refuse =0), and
    the GPU request comes back for the next submission even when one is refused."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("srun", "sbatch"):
        (fake / tool).write_text("#!/bin/sh\nexit 0\n")
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    executor = executors.SubmititExecutor(tmp_path / "jobs", cluster="slurm", gpus_per_job=1)
    inner = executor.executor._executor

    def script() -> str:
        return inner._make_submission_file_text("cmd", "uid")

    assert "--gpus-per-node=1" in script()
    with pytest.raises(RuntimeError):
        with executor.asking_no_gpu():
            assert "gpus-per-node" not in script()
            raise RuntimeError("sbatch: error: invalid partition for a job without a GPU")
    assert "--gpus-per-node=1" in script()


def test_slurm_packs_cpu_only_runs_into_at_most_one_task_per_parallel_slot(tmp_path):
    executor = make_executor("slurm-local", workers=1, folder=tmp_path / "jobs")
    executor.cluster, executor.workers = "slurm", 4  # the chunking of a Slurm executor
    assert len(executor.chunks(list(range(400)))) == 400  # a GPU run per task: a log each
    assert len(executor.chunks(list(range(400)), packed=True)) == 4
