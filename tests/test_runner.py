"""The runner: trains only what the store lacks, survives a kill, reports failures, runs in a pool."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness import methods
from harness.runs import executors, training
from harness.data import REPO_ROOT
from harness.runs.runner import RunFailed, Runner, probe_device, warm_up
from harness.runs.spec import make_spec
from harness.runs.store import ResultStore

from .conftest import SpyModel, shared_data_available
from .test_mutations import T5, needs_cifar, sabotaged

needs_adult = pytest.mark.skipif(not shared_data_available("adult/adult.data"), reason="Adult not present")


def grid(dataset="synthetic", model="spy", seeds=range(3)):
    return [make_spec(dataset, model, "erm", (100, n), (1.0,), seed) for n in (10, 20) for seed in seeds]


def test_second_run_trains_nothing(tmp_path, synthetic):
    first = Runner(ResultStore(tmp_path))
    records = first.run(grid())
    assert first.trained == 6 and [r["key"] for r in records] == [s.key for s in grid()]
    second = Runner(ResultStore(tmp_path))
    assert second.run(grid()) == records
    assert second.trained == 0 and second.loaded == 6


def test_duplicate_specs_train_once(tmp_path, synthetic):
    runner = Runner(ResultStore(tmp_path))
    specs = grid()
    assert len(runner.run(specs + specs)) == 12
    assert runner.trained == 6


@pytest.fixture
def seed_1_fails(monkeypatch) -> list:
    """Runs at seed 1 raise "boom"; returns the keys of every run started."""
    real, calls = training.execute_group, []

    def flaky(specs, **kwargs):
        calls.extend(spec.key for spec in specs)
        if any(spec.seed == 1 for spec in specs):
            raise RuntimeError("boom")
        return real(specs, **kwargs)

    monkeypatch.setattr(training, "execute_group", flaky)
    return calls


def test_failed_run_writes_nothing_and_names_the_spec(tmp_path, synthetic, seed_1_fails):
    store = ResultStore(tmp_path)
    with pytest.raises(RunFailed, match=r"2 of 6 runs failed:[\s\S]*seed=1: RuntimeError: boom"):
        Runner(store).run(grid())
    stored = list((tmp_path / "runs").rglob("*.json"))
    assert len(stored) == 4  # the others finished and were kept


def test_progress_is_reported(tmp_path, synthetic):
    lines = []
    Runner(ResultStore(tmp_path), progress=lambda p: lines.append(p.line()), progress_every_s=0).run(grid())
    assert lines[-1].startswith("runs 6/6 done (0 from store)")


@needs_adult
def test_process_pool_matches_in_process(tmp_path):
    specs = grid("adult", "xgboost", seeds=range(2))
    local = Runner(ResultStore(tmp_path / "a")).run(specs)
    pool = executors.ProcessPoolExecutor(2)
    try:
        pooled = Runner(ResultStore(tmp_path / "b"), pool).run(specs)
    finally:
        pool.close()
    assert [r["metrics"] for r in local] == [r["metrics"] for r in pooled]


KILLABLE = textwrap.dedent("""
    import sys
    from harness.runs.runner import Runner
    from harness.runs.spec import make_spec
    from harness.runs.store import ResultStore
    specs = [make_spec("adult", "xgboost", "erm", (2000, 200), (1.0,), seed) for seed in range(40)]
    runner = Runner(ResultStore(sys.argv[1]))
    runner.run(specs)
    print("trained", runner.trained)
""")


@needs_adult
def test_killed_suite_resumes_without_retraining(tmp_path):
    script = tmp_path / "grid.py"
    script.write_text(KILLABLE)
    store_root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, str(script), str(store_root)], cwd=os.getcwd())
    deadline = time.time() + 120
    while len(list((store_root / "runs").rglob("*.json"))) < 5 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((store_root / "runs").rglob("*.json")))
    assert 5 <= done_before < 40, "the kill should land mid-grid"
    out = subprocess.run([sys.executable, str(script), str(store_root)], capture_output=True,
                         text=True, check=True).stdout
    assert f"trained {40 - done_before}" in out
    assert len(list((store_root / "runs").rglob("*.json"))) == 40
    assert not list(store_root.rglob("*.corrupt"))


RACER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from harness import data
    from harness.learners import models
    from harness.runs.runner import Runner
    from harness.runs.spec import make_spec
    from harness.runs.store import ResultStore
    from tests.conftest import SpyModel, make_synthetic

    class SlowSpy(SpyModel):
        def fit(self, x, y, **kwargs):
            time.sleep(0.3)
            return super().fit(x, y, **kwargs)

    dataset = make_synthetic()
    data.register_dataset("synthetic", lambda data_dir=None: dataset)
    models.MODELS["slow"], models.DEFAULTS["slow"] = SlowSpy, {}
    specs = [make_spec("synthetic", "slow", "erm", (100, 20), (1.0,), seed) for seed in range(12)]
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.01)
    runner = Runner(ResultStore(sys.argv[1]))
    records = runner.run(specs)
    assert [r["key"] for r in records] == [s.key for s in specs]
    print("trained", runner.trained, "loaded", runner.loaded)
""")


def test_two_processes_on_one_fresh_store_never_train_the_same_run(tmp_path):
    script = tmp_path / "race.py"
    script.write_text(RACER)
    start = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "store"), start, str(REPO_ROOT)],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    trained = [int(out.split()[1]) for out in outs]
    assert sum(trained) == 12, outs  # each run trained once, by one of them; the other loaded it
    assert all(f"loaded {12 - n}" in out for n, out in zip(trained, outs)), outs
    assert len(list((tmp_path / "store" / "runs").rglob("*.json"))) == 12


def test_runs_registered_only_in_this_process_train_here_even_with_a_pool(tmp_path, synthetic):
    """A fresh worker would not know a spy model or a test's dataset: such runs stay in process."""
    from harness.runs.runner import portable

    specs = grid()
    assert not any(portable(s) for s in specs)
    pool = executors.ProcessPoolExecutor(2)
    try:
        runner = Runner(ResultStore(tmp_path), pool)
        runner.run(specs)
    finally:
        pool.close()
    assert runner.trained == 6 and len(SpyModel.seen) == 6  # trained here, where the spy records
    assert pool.pools == []  # no worker was ever started


def test_builtin_registrations_are_portable(synthetic):
    from harness.runs.runner import portable

    if not shared_data_available("adult/adult.data"):
        pytest.skip("Adult not present")
    assert portable(make_spec("adult", "xgboost", "oversample", (200, 20), (1.0,), 0))


def test_a_run_that_failed_is_not_retrained_in_the_same_session(tmp_path, synthetic, seed_1_fails):
    calls = seed_1_fails
    runner = Runner(ResultStore(tmp_path))
    with pytest.raises(RunFailed):
        runner.run(grid())  # the whole selection, up front
    trained = len(calls)
    with pytest.raises(RunFailed, match="seed=1: RuntimeError: boom"):
        runner.run(grid()[:2])  # a claim asking for part of it
    assert len(calls) == trained  # the failure is reported again, not retrained


def test_progress_counts_failures_names_the_arm_and_estimates_time_left(tmp_path, synthetic, seed_1_fails):
    seen = []
    runner = Runner(ResultStore(tmp_path), progress=seen.append, progress_every_s=0,
                    estimate=lambda spec: 2.0)
    specs = grid()
    with pytest.raises(RunFailed):
        runner.run(specs, labels={s.key: "arm-x" for s in specs})
    assert seen[-1].failed == 2 and seen[-1].done == 4 and seen[-1].total == 6
    assert "arm-x" in seen[0].line() and "ETA" in seen[0].line()
    assert "2 failed" in seen[-1].line()


def test_a_long_run_gives_heartbeat_lines(tmp_path):
    if not shared_data_available("adult/adult.data"):
        pytest.skip("Adult not present")
    lines = []
    spec = make_spec("adult", "xgboost", "erm", (900, 100), (1.0,), 0, n_estimators=50)
    runner = Runner(ResultStore(tmp_path), executors.ProcessPoolExecutor(2),
                    progress=lambda p: lines.append(p.line()), heartbeat_s=0.2)
    try:
        runner.run([spec])
    finally:
        runner.executor.close()
    # while it trained: a line naming the run and how long it has been running
    assert any("1 in flight" in line and "still running: adult/xgboost/erm" in line for line in lines[:-1])
    assert lines[-1].startswith("runs 1/1 done")


@pytest.fixture
def image_task():
    """A tiny two-class image dataset (registered in this process only) and a 1-epoch CNN."""
    from harness import data
    from tests.test_engine import tiny_images

    x_train, y_train = tiny_images(per_class=24, seed=0)
    x_test, y_test = tiny_images(per_class=12, seed=1)
    dataset = data.Dataset("tiny-images", x_train, y_train, x_test, y_test, ("red", "blue"),
                           {"variant": "test", "sha256": "1" * 64})
    with data.registered_dataset("tiny-images", lambda data_dir=None: dataset):
        yield dict(width=4, epochs=1, batch_size=8)


def test_runs_that_share_their_training_train_one_model(tmp_path, image_task, monkeypatch):
    """ERM, a post-hoc correction, Laplace (a post-training stage) and an ERM run measuring its
    Hessian on other test sets train one network; each record equals its run trained alone."""
    from harness.learners import models
    from harness.runs.runner import group_by_training
    from harness.runs.spec import training_key

    erm, adjusted, laplace = (make_spec("tiny-images", "small_cnn", m, (24, 6), (1.0, 0.5), 0,
                                        **image_task)
                              for m in ("erm", "logit_adjustment", "laplace"))
    measured = make_spec("tiny-images", "small_cnn", "erm", (24, 6), (1.0,), 0, hessian_top_k=2,
                         hessian_samples=16, loss_directions=1, **image_task)
    other_seed = make_spec("tiny-images", "small_cnn", "erm", (24, 6), (1.0, 0.5), 1, **image_task)
    other_training = make_spec("tiny-images", "small_cnn", "erm", (24, 6), (1.0, 0.5), 0,
                               **{**image_task, "epochs": 2})
    group = [laplace, adjusted, measured, erm]
    assert len({s.key for s in group}) == 4 and len({training_key(s) for s in group}) == 1
    assert training_key(other_seed) != training_key(erm) != training_key(other_training)
    groups = group_by_training(group)
    assert len(groups) == 1 and groups[0].specs[0].method == "erm"  # a run that trains leads
    fits = []
    real_build = models.build
    monkeypatch.setattr(models, "build", lambda *a, **k: fits.append(a) or real_build(*a, **k))
    records = Runner(ResultStore(tmp_path)).run(group)
    assert len(fits) == 1  # one network for all four runs
    assert [r["key"] for r in records] == [s.key for s in group]
    # Bit for bit as each run on its own (one thread for both: the runner may use more).
    records = training.execute_group(group)
    for spec, record in zip(group, records):
        alone = training.execute(spec)
        assert record["metrics"] == alone["metrics"], spec.method
        assert record["training_log"].keys() == alone["training_log"].keys(), spec.method
    assert records[2]["metrics"]["extra"]["hessian_top_eigenvalues"]  # measured with its settings
    assert not records[3]["metrics"]["extra"]  # ... and only there
    assert "map" in records[0]["metrics"]["variants"]  # Laplace's own stage ran for it


def test_a_group_of_post_hoc_runs_alone_trains_their_base(image_task):
    """With no ERM run in the group, the model trains as ERM (the base), and each post-hoc run's
    record equals its run trained alone."""
    specs = [make_spec("tiny-images", "small_cnn", m, (24, 6), (1.0,), 0, **image_task)
             for m in ("laplace", "logit_adjustment")]
    together = training.execute_group(specs)
    for spec, record in zip(specs, together):
        assert record["metrics"] == training.execute(spec)["metrics"]
    assert "laplace_prior_precision" not in together[1]["training_log"]


USER_METHOD = '''
from harness.methods import Method

class HalfLoss(Method):
    """Cross-entropy at half strength: a user's method in a module of its own."""
    name = "half_loss"
    requires = frozenset({"rows", "loss"})

    def loss(self, logits, labels, state):
        import torch.nn.functional as F
        return 0.5 * F.cross_entropy(logits, labels, reduction="none")
'''


def test_worker_processes_load_a_user_method_by_its_import_path(tmp_path, monkeypatch):
    """Issue 10: a method registered outside the harness used to fail with "unknown method" in
    a worker; workers now import it by the spec's method_path (and check its source hash)."""
    import sys

    from harness import methods
    from harness.runs.executors import make_executor
    from harness.runs.runner import portable

    module = f"user_method_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(USER_METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = dict(methods.METHODS)
    try:
        cls = methods.resolve(f"{module}:HalfLoss")
        specs = [make_spec("toy2d", "mlp2d", "half_loss", (400, 20), (1.0,), seed, steps=50)
                 for seed in (0, 1)]
        assert specs[0].method_path == f"{module}:HalfLoss" and portable(specs[0])
        executor = make_executor("local", workers=2)
        try:
            records = Runner(ResultStore(tmp_path / "store"), executor).run(specs)
        finally:
            executor.close()
        assert {r["pid"] for r in records}.isdisjoint({__import__("os").getpid()})
        assert records[0]["spec"]["method_version"] == methods.identity(cls)[0]
    finally:
        methods.METHODS.clear()
        methods.METHODS.update(saved)
        sys.modules.pop(module, None)


class StartedExecutor(executors.InProcessExecutor):
    """An executor whose workers were started: ``start`` records what it was asked to run."""

    def __init__(self, answer=None, error=None):
        super().__init__()
        self.started, self.answer, self.error = [], answer, error

    def start(self, fn):
        from concurrent.futures import Future

        self.started.append(fn)
        future = Future()
        future.set_exception(self.error) if self.error else future.set_result(self.answer)
        return [future]


def test_started_workers_warm_up_and_answer_the_device_question(tmp_path):
    executor = StartedExecutor(answer="cuda")
    runner = Runner(ResultStore(tmp_path), executor)
    runner.start_workers()
    runner.start_workers()  # once per runner
    assert executor.started[0] is probe_device and executor.started[1].func is warm_up
    assert len(executor.started) == 2
    assert runner.device_here() == "cuda"  # the worker's answer: no torch import needed here


def test_a_failed_warm_up_falls_back_to_resolving_the_device_here(tmp_path):
    runner = Runner(ResultStore(tmp_path), StartedExecutor(error=RuntimeError("no torch")))
    runner.start_workers()
    from harness.nn.batches import resolve_device

    here = resolve_device("auto")
    assert runner.device_here() == here
    assert Runner(ResultStore(tmp_path / "b")).device_here() == here  # nothing to start


def test_warm_up_imports_what_a_run_needs_and_the_probe_names_the_device():
    warm_up()
    assert "torch._dynamo" in sys.modules and "harness.learners.engine" in sys.modules
    assert probe_device() in ("cpu", "cuda")


def test_a_run_whose_own_stage_fails_fails_alone_and_its_group_is_stored(tmp_path, image_task,
                                                                         monkeypatch):
    """A post-hoc run's stage raises: the ERM run of its group is returned and stored, the
    post-hoc run is a failure with its error, and RunFailed names it alone."""
    from tests.test_training import StageFails

    monkeypatch.setitem(methods.METHODS, StageFails.name, StageFails)
    erm, failing = (make_spec("tiny-images", "small_cnn", m, (24, 6), (1.0,), 0, **image_task)
                    for m in ("erm", "stage_fails"))
    runner = Runner(ResultStore(tmp_path))
    with pytest.raises(RunFailed) as raised:
        runner.run([erm, failing])
    message = str(raised.value)
    assert message.startswith("1 of 2 runs failed:\n") and len(message.splitlines()) == 2
    assert message.splitlines()[1].startswith(f"{failing.describe()}: ImportError: injected: "
                                              "the stage's library does not import (raised at ")
    assert message.endswith(" in finish)")  # where: the method author's line
    assert runner.trained == 1 and list(runner.failures) == [failing.key]
    assert ResultStore(tmp_path).get(erm) is not None and ResultStore(tmp_path).get(failing) is None
    assert runner.run([erm])[0]["key"] == erm.key  # a claim that needs only ERM is judged
    with pytest.raises(RunFailed, match="stage_fails"):  # one that needs the other fails
        runner.run([failing])


def test_a_record_that_cannot_be_stored_fails_that_run_only(tmp_path, synthetic, monkeypatch):
    store = ResultStore(tmp_path)
    specs = grid()
    real_put = store.put

    def put(record):
        if record["key"] == specs[1].key:
            raise TypeError("Object of type ndarray is not JSON serializable")
        return real_put(record)

    monkeypatch.setattr(store, "put", put)
    runner = Runner(store)
    with pytest.raises(RunFailed, match=r"1 of 6 runs failed:\n.*seed=1: TypeError: Object of type"):
        runner.run(specs)
    assert runner.trained == 5 and list(runner.failures) == [specs[1].key]


class WarmedExecutor(executors.InProcessExecutor):
    """Started workers whose warm-up reports ``failures`` (the preflight's), and that answer
    ``cpu`` to the device question."""

    def __init__(self, failures):
        super().__init__()
        self.failures, self.ran = failures, []

    def start(self, fn):
        from concurrent.futures import Future

        future = Future()
        future.set_result("cpu" if fn is probe_device else self.failures)
        return [future]

    def submit_all(self, fn, items, tick_s=None):
        items = list(items)
        self.ran += items
        return super().submit_all(fn, items, tick_s)


def test_the_preflight_uses_the_workers_warm_up_and_stops_before_training(tmp_path, synthetic,
                                                                         monkeypatch):
    """Libraries the started workers imported are not imported here: their failures stop the
    run before anything is submitted; the others are imported here."""
    from harness.runs import preflight
    from harness.learners import models

    monkeypatch.setitem(models.LIBRARIES, "spy", ("spy_library",))
    failure = preflight.ImportFailure("spy_library", "RuntimeError: broken", "reinstall it")
    executor = WarmedExecutor([failure])
    runner = Runner(ResultStore(tmp_path), executor)
    runner.start_workers(["spy_library"])
    with pytest.raises(preflight.LibraryError, match=r"spy_library \(needed by model spy\): "
                                                       r"RuntimeError: broken\n    fix: reinstall it"):
        runner.run(grid())
    assert executor.ran == [] and not SpyModel.seen and not (tmp_path / "runs").exists()
    # A library no warm-up imported is imported here; one that imports lets the runs train.
    monkeypatch.setitem(models.LIBRARIES, "spy", ("json",))
    assert len(runner.run(grid())) == 6 and "json" in runner.imported


def test_without_started_workers_the_preflight_imports_here(tmp_path, synthetic, monkeypatch):
    from harness.runs import preflight
    from harness.learners import models

    monkeypatch.setitem(models.LIBRARIES, "spy", ("json", "no_such_library_for_the_spy"))
    runner = Runner(ResultStore(tmp_path))
    with pytest.raises(preflight.LibraryError, match="no_such_library_for_the_spy .*ModuleNotFoundError"):
        runner.run(grid())
    assert not SpyModel.seen and runner.trained == 0


# The quick t5 arms at the least cost that keeps what the test below checks: the flatness arm
# measures a top-2 Hessian on 100 images along one direction (measurements only: its ERM runs
# still share their network with the Laplace runs), and the Bayesian arm trains no SGHMC runs
# (its claims fail on Laplace first).
SHRUNK_T5 = '''
from dataclasses import replace

from harness.experiments import protocols


def pytest_configure(config):
    quick = protocols.PROFILES["quick"]
    quick["t5-cifar10-flatness"] = replace(quick["t5-cifar10-flatness"], hyperparameters=(
        ("hessian_top_k", 2), ("loss_directions", 1), ("hessian_samples", 100)))
    quick["t5-cifar10-bayesian"] = replace(quick["t5-cifar10-bayesian"], methods=("erm", "laplace"))
'''


@needs_cifar
def test_the_erm_runs_of_a_group_whose_laplace_stage_fails_are_stored_and_judged(tmp_path, monkeypatch):
    """Issue 20, end to end, with the runs in worker processes: Laplace's post-training stage
    raises in the quick t5 arms, whose ERM runs (the flatness claims', and the Bayesian arm's)
    share one trained network per cell with the Laplace runs. The ERM runs are stored, the
    flatness claims get verdicts, and the Bayesian claims are errors naming the stage failure."""
    import json

    (tmp_path / "shrunk_t5.py").write_text(SHRUNK_T5)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    out, rows = sabotaged("laplace_stage_fails", T5, "-p", "shrunk_t5", "--seeds=2", "--workers=2",
                          tmp_path=tmp_path)
    flatness = [name for name in rows if name.endswith("[quick-t5-cifar10-flatness]")]
    bayesian = [name for name in rows if name.endswith("[quick-t5-cifar10-bayesian]")]
    assert len(flatness) == 2 and len(bayesian) == 2, (sorted(rows), out.stdout[-3000:])
    for name in flatness:
        assert rows[name]["verdict"] in ("supported", "refuted", "inconclusive"), rows[name]
    for name in bayesian:
        assert rows[name]["outcome"] == "error", rows[name]
        assert "cifar10/small_cnn/laplace" in rows[name]["error"], rows[name]["error"]
        assert "ImportError: injected: Laplace's stage cannot import laplace-torch" in rows[name]["error"]
    stored = [json.loads(path.read_text())["spec"]["method"]
              for path in (tmp_path / "store" / "runs").rglob("*.json")]
    assert sorted(stored) == ["erm"] * 8, stored  # 2 ratios x 2 seeds, each arm's ERM runs
    assert "4 failed" in out.stdout and "8 runs trained" in out.stdout, out.stdout[-3000:]


def test_each_group_hands_cached_gpu_memory_back(monkeypatch, synthetic):
    """Issue 21: a worker kept what torch's allocator cached after a Hessian run, memory the
    other slots on its GPU needed. Now it is released after every group, also a failed one."""
    import torch

    from harness.runs.runner import execute_spec

    released = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append("group"))
    spec = make_spec("synthetic", "spy", "erm", (100, 20), (1.0,), seed=0)
    execute_spec(spec)
    assert released == ["group"]

    def crash(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(training, "execute", crash)
    with pytest.raises(RuntimeError):
        execute_spec(spec)
    assert released == ["group", "group"]


def test_releasing_gpu_memory_never_replaces_a_group_s_outcome(monkeypatch, synthetic, capsys):
    """A failing empty_cache() (a broken device) must not turn a group's records, or its own
    error, into the housekeeping's error."""
    import torch

    from harness.runs.runner import execute_spec

    def broken():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", broken)
    spec = make_spec("synthetic", "spy", "erm", (100, 20), (1.0,), seed=0)
    assert execute_spec(spec)["key"] == spec.key
    assert "could not release cached GPU memory" in capsys.readouterr().err

    def own_error(*args, **kwargs):
        raise ValueError("the run's own error")

    monkeypatch.setattr(training, "execute", own_error)
    with pytest.raises(ValueError, match="the run's own error"):
        execute_spec(spec)
