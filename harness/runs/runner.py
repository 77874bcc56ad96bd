"""The runner: give it specs, get records; it trains only what the store does not hold.

Each finished run is written to the store the moment it completes, so a suite killed mid-grid
resumes where it stopped. A run that fails is reported with its spec after the other runs have
finished and been stored; nothing is written for the failed run. Runs that share a trained model
(a :class:`RunGroup`) fail together only when their shared training does: a failure in one run's
own post-training stage or record fails that run alone (:class:`~harness.runs.training.RunFailure`).

Before anything trains, the libraries the runs to train need are imported
(:mod:`harness.runs.preflight`): in the started workers' warm-up, or here. One that fails is a
:class:`~harness.runs.preflight.LibraryError` naming it and its fix, and nothing trains.

Several processes may share one store: a run is trained only by the process holding its lock
(:meth:`~harness.runs.store.ResultStore.claim_run`). The runner first trains the runs nobody else is
training, then waits for the others and loads them (training one itself only if its holder died
without storing it). A read-only store lends its runs; lacking one is an error before training.

Worker processes start afresh and know only the registries as the package defines them, so a
run whose dataset, model or method was registered or replaced in this process (a user's method
registered in a conftest, a test's spy model, a mutation test's sabotage) trains in this process
whatever the executor; the others go to the executor.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from .. import data, methods
from ..learners import models
from ..runs.executors import Heartbeat, InProcessExecutor, keep_freed_memory
from ..runs.spec import RunSpec, training_key
from ..runs.store import ReadOnlyStoreError, ResultStore
from . import preflight, training


class RunFailed(RuntimeError):
    """One or more runs raised; the message lists each spec and its error."""


@dataclass
class Progress:
    """One progress line: runs done / in flight / failed of the total, how many came from the
    store, time elapsed, an estimate of the time left and the run that finished last."""

    done: int
    total: int
    cached: int
    elapsed_s: float
    in_flight: int = 0
    failed: int = 0
    eta_s: float | None = None
    last: str = ""

    def line(self) -> str:
        text = (f"runs {self.done}/{self.total} done ({self.cached} from store), "
                f"{self.in_flight} in flight, {self.failed} failed, "
                f"{duration(self.elapsed_s)} elapsed")
        if self.eta_s is not None and self.done + self.failed < self.total:
            text += f", ETA {duration(self.eta_s)}"
        return text + (f"; last: {self.last}" if self.last else "")


def duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def portable(spec) -> bool:
    """Whether a fresh worker process would train ``spec`` (or every spec of a
    :class:`RunGroup`) with the same code: built-in datasets and models, and a built-in method
    or one the worker imports by the spec's ``method_path``."""
    if isinstance(spec, RunGroup):
        return all(portable(s) for s in spec.specs)
    method = methods.METHODS.get(spec.method)
    importable = method is methods.BUILTIN_METHODS.get(spec.method) or (
        spec.method_path and method is not None and methods.import_path(method) == spec.method_path
        and not method.__module__.startswith("__"))
    return bool(data.DATASETS.get(spec.dataset) is data.BUILTIN_DATASETS.get(spec.dataset)
                and models.MODELS.get(spec.model) is models.BUILTIN_MODELS.get(spec.model)
                and importable)


@dataclass(frozen=True)
class RunGroup:
    """Runs that train one model (one :func:`~harness.runs.spec.training_key`): usually one run;
    a post-hoc method's run joins the run of the method it trains like, and runs that differ
    only in their test sets or measurements (Figure 7's Hessian spectra) join each other."""

    specs: tuple

    @property
    def key(self) -> str:
        return self.specs[0].key

    @property
    def device(self) -> str:
        """Where the group's model trains (its runs share it)."""
        return self.specs[0].device

    def describe(self) -> str:
        extra = f" (+{len(self.specs) - 1} sharing its model)" if len(self.specs) > 1 else ""
        return self.specs[0].describe() + extra


def group_by_training(specs: Sequence[RunSpec]) -> list[RunGroup]:
    """Specs grouped by training key, in first-seen order; a run that is not post-hoc leads its
    group (it names the group in progress lines)."""
    groups: dict[str, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(training_key(spec), []).append(spec)
    return [RunGroup(tuple(sorted(g, key=post_hoc))) for g in groups.values()]


def post_hoc(spec: RunSpec) -> bool:
    """Whether the spec's method trains like another (a registered post-hoc method)."""
    cls = methods.METHODS.get(spec.method)
    return cls is not None and cls.trains_like is not None


def execute_spec(group, data_dir=None, n_jobs: int = 1):
    """Train ``spec`` with at most ``n_jobs`` threads in every thread pool (OpenMP, BLAS), not
    only the model's own: parallel runs that each started a thread per core would oversubscribe
    the machine (2 single-thread XGBoost workers on 2 cores: 1.7x over 1 without the limit,
    1.9x with it)."""
    from threadpoolctl import threadpool_limits

    keep_freed_memory()
    try:
        with threadpool_limits(limits=n_jobs):
            if isinstance(group, RunGroup):
                return training.execute_group(list(group.specs), data_dir=data_dir, n_jobs=n_jobs)
            return training.execute(group, data_dir=data_dir, n_jobs=n_jobs)
    finally:
        training.release_device_memory()  # between groups, whatever the run did


def probe_device() -> str:
    """The device ``--device=auto`` gives neural runs on this machine (imports torch): asked of
    a started worker, so that the driver need not import torch to know it."""
    from ..nn.batches import resolve_device

    return resolve_device("auto")


def warm_up(n_jobs: int = 1, libraries: Sequence[str] = ()) -> list:
    """A worker's one-time costs, paid when :meth:`Runner.start_workers` starts it (while the
    driver still builds specs) rather than in its first run: the preflight's imports of
    ``libraries`` (whose failures it returns, :class:`~harness.runs.preflight.ImportFailure` s:
    the runner stops the session on them before anything trains), then importing torch, the
    engine and the methods, and the first optimizer's lazy import of ``torch._dynamo`` (~2.7 s
    in torch 2.14)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_jobs):
        failures = preflight.import_failures(libraries)
        if failures:  # the session stops: nothing to warm up for
            return failures
        import torch

        from .. import methods as _methods  # noqa: F401 - the registry a run resolves against
        from ..learners import engine  # noqa: F401 - the networks and the batch helpers

        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        training.library_versions()
    return []


class Runner:
    """Runs specs through an executor, backed by a result store.

    Parameters
    ----------
    store : ResultStore
    executor : executor, optional
        Defaults to :class:`~harness.runs.executors.InProcessExecutor`.
    data_dir : path, optional
        Passed to the data loaders.
    progress : callable, optional
        Called with a :class:`Progress` when a run finishes (at most every ``progress_every_s``,
        and always for the last) and, while runs are in flight and none finishes, every
        ``heartbeat_s`` seconds.
    estimate : callable, optional
        ``estimate(spec)`` -> seconds one run takes on one executor slot (from
        :mod:`harness.experiments.plan`), for the ETA; the ETA is rescaled by the speed observed so far.
    """

    def __init__(self, store: ResultStore, executor=None, data_dir=None,
                 progress: Callable[[Progress], None] | None = None, progress_every_s: float = 10.0,
                 heartbeat_s: float = 30.0, estimate: Callable[[RunSpec], float] | None = None):
        self.store, self.executor = store, executor or InProcessExecutor()
        self.data_dir, self.progress, self.progress_every_s = data_dir, progress, progress_every_s
        self.heartbeat_s, self.estimate = heartbeat_s, estimate
        self.trained = 0  # runs trained (not loaded) by this runner, for tests and reports
        self.loaded = 0   # runs read from the store
        self.memory: dict[str, dict] = {}  # records already seen this session, by key
        self.failures: dict[str, str] = {}  # runs that failed this session: not retried
        self.warming: list = []  # futures of the started workers' probe_device
        self.warm_ups: list = []  # futures of their warm_up: the preflight's import failures
        self.warmed: tuple = ()  # the libraries those warm-ups import
        self.imported: set[str] = set()  # libraries the preflight found importing

    def start_workers(self, libraries: Sequence[str] = ()) -> None:
        """Start the executor's worker processes now, where it can (``executor.start``), each
        running :func:`warm_up`: their imports then overlap this process's collection and spec
        building instead of delaying the first runs (the first quick run finished ~10 s sooner).
        ``libraries`` (:func:`~harness.runs.preflight.needed`) are the preflight's: imported
        there, so that this process need not import them to know they work."""
        start = getattr(self.executor, "start", None)
        if start is not None and not self.warm_ups:
            # Each worker answers the device question first (a few seconds), then warms up.
            self.warming = start(probe_device)
            self.warmed = tuple(libraries)
            self.warm_ups = start(partial(warm_up, n_jobs=self.executor.threads_per_run,
                                          libraries=self.warmed))

    def check_libraries(self, specs: Sequence[RunSpec]) -> None:
        """The preflight of runs about to train: import every library they need (their models'
        and methods' declarations), from a started worker's warm-up where it imported them, else
        in this process.

        Raises
        ------
        harness.runs.preflight.LibraryError
            Some do not import; the message names each, its error and the fix.
        """
        needed_by = preflight.needed_by_specs(specs)
        todo = [module for module in needed_by if module not in self.imported]
        if not todo:
            return
        reported = self.warm_up_failures() if set(todo) & set(self.warmed) else None
        failures = [f for f in reported or () if f.module in todo]
        failures += preflight.import_failures(
            [m for m in todo if reported is None or m not in self.warmed])
        if failures:
            raise preflight.LibraryError(failures, needed_by)
        self.imported.update(todo)

    def warm_up_failures(self) -> list | None:
        """The import failures the first started worker to finish its warm-up reported (the
        workers share one environment), or None when none could say (each warm-up raised)."""
        for future in concurrent.futures.as_completed(self.warm_ups):
            try:
                return list(future.result())
            except Exception:  # noqa: BLE001, S112 - another worker may answer; else checked here
                continue
        return None

    def device_here(self) -> str:
        """``--device=auto``'s device on this machine: from a started worker's
        :func:`probe_device` (no torch import here), else resolved in this process."""
        for future in self.warming[:1]:
            try:
                return future.result()
            except Exception:  # noqa: BLE001, S110 - resolved here below, where an error says why
                pass
        preflight.check(("torch",), {"torch": ["--device=auto"]})  # a broken torch: its fix
        from ..nn.batches import resolve_device

        return resolve_device("auto")

    def run(self, specs: Sequence[RunSpec], labels: dict[str, str] | None = None) -> list[dict]:
        """Records for ``specs``, in the same order; trains the ones the store lacks.

        ``labels`` (key -> e.g. the arm a run belongs to) name finished runs in progress lines.
        A run that failed earlier in this session is not trained again: it fails again here.
        """
        started = time.perf_counter()
        labels = labels or {}
        unique = {spec.key: spec for spec in specs}
        records = {key: self.memory[key] for key in unique if key in self.memory}
        for key, spec in unique.items():
            if key not in records and key not in self.failures and (
                    record := self.store.get(spec)) is not None:
                records[key] = self.memory[key] = record
                self.loaded += 1
        failures = [self.failures[key] for key in unique if key in self.failures]
        missing = [spec for key, spec in unique.items()
                   if key not in records and key not in self.failures]
        if missing and self.store.read_only:
            raise ReadOnlyStoreError(
                f"the result store {self.store.root} is read-only and lacks {len(missing)} of the "
                f"{len(unique)} runs asked for (first: {missing[0].describe()}); pass a writable "
                "--store, or merge the missing runs into this one")
        if missing:
            self.check_libraries(missing)
        submission = Submission(self, len(unique), records, failures,
                                Board(self, len(unique), len(records), started, missing),
                                labels, attempted=len(failures))
        try:
            # First pass: runs no other process is training; second: wait for the rest.
            for wait in (False, True):
                for outcome in self.submit(submission.claim(missing, wait)):
                    submission.receive(outcome)
        finally:
            submission.release()
        if failures:
            raise RunFailed(f"{len(failures)} of {submission.attempted} runs failed:\n"
                            + "\n".join(failures))
        return [records[spec.key] for spec in specs]

    def submit(self, specs: list[RunSpec]):
        """(group, records, error) as runs finish, and a Heartbeat while none does (``records``
        may hold a :class:`~harness.runs.training.RunFailure` for a run whose own part failed):
        specs go as :class:`RunGroup` s (a post-hoc method's run trains with its base's), the longest
        estimated first; portable groups through the executor, the rest (registered only in
        this process) in this process, after them."""
        tick = self.heartbeat_s if self.progress else None
        groups = group_by_training(specs)
        if self.estimate is not None:  # longest first: the slots finish together, no long tail
            groups.sort(key=lambda g: -sum(self.estimate(s) for s in g.specs))
        if self.executor.workers <= 1:
            yield from self.executor.submit_all(self.job(), groups, tick_s=tick)
            return
        remote = [group for group in groups if portable(group)]
        local = [group for group in groups if not portable(group)]
        yield from self.executor.submit_all(self.job(), remote, tick_s=tick)
        yield from InProcessExecutor().submit_all(self.job(), local)

    def job(self):
        """The function the executor runs per spec (module-level, so it crosses processes)."""
        return partial(execute_spec, data_dir=self.data_dir, n_jobs=self.executor.threads_per_run)


@dataclass
class Submission:
    """One :meth:`Runner.run` call's state, and what the call does with it: claim the runs it
    trains (:meth:`claim`), store each as it finishes or keep its failure (:meth:`finish`),
    report progress, and release the locks it still holds (:meth:`release`)."""

    runner: Runner
    total: int  # distinct runs asked for
    records: dict[str, dict]  # key -> record: found or trained so far
    failures: list[str]  # a message per run that failed (this call's, and earlier ones asked again)
    board: Board
    labels: dict[str, str] = field(default_factory=dict)  # key -> a name for progress lines
    locks: dict = field(default_factory=dict)  # key -> the store's lock on a run this call trains
    tried: set[str] = field(default_factory=set)  # keys of the runs this call trained or failed
    attempted: int = 0  # runs this call trained, and failed ones asked again

    def claim(self, missing: Sequence[RunSpec], wait: bool) -> list[RunSpec]:
        """The runs of ``missing`` this call trains now: those whose lock it gets (waiting for
        it if ``wait``) and which were not stored meanwhile (those are loaded instead)."""
        runner, mine = self.runner, []
        for spec in missing:
            if spec.key in self.records or spec.key in self.locks or spec.key in self.tried:
                continue
            lock = runner.store.claim_run(spec.key, wait=wait)
            if lock is None:
                continue
            self.locks[spec.key] = lock
            if (record := runner.store.get(spec)) is not None:  # stored while we waited
                self.records[spec.key] = runner.memory[spec.key] = record
                runner.loaded += 1
                self.board.cached += 1
                self.locks.pop(spec.key).close()
            else:
                mine.append(spec)
        self.attempted += len(mine)
        self.board.queued += len(mine)
        return mine

    def receive(self, outcome) -> None:
        """One outcome of :meth:`Runner.submit`: a group's (its runs finish) or a heartbeat."""
        if isinstance(outcome, Heartbeat):  # nothing finished for a while
            self.board.report(len(self.records), heartbeat=outcome, labels=self.labels)
            return
        group, results, error = outcome
        for spec, record in zip(group.specs, results or [None] * len(group.specs)):
            self.finish(spec, record, error)

    def finish(self, spec: RunSpec, record, error: BaseException | None) -> None:
        """Store one finished run (or keep its failure) and report progress. A run fails when
        its group raised (``error``), when its own part failed (``record`` is a
        :class:`~harness.runs.training.RunFailure`), or when its record cannot be stored."""
        runner = self.runner
        self.tried.add(spec.key)
        self.board.finished(spec)
        why = f"{type(error).__name__}: {error}" if error is not None else None
        if isinstance(record, training.RunFailure):
            why = record.error
        elif why is None:
            try:
                self.records[spec.key] = runner.memory[spec.key] = runner.store.put(record)
                runner.trained += 1
            except (OSError, TypeError, ValueError) as err:  # this record only (not JSON, disk)
                why = f"{type(err).__name__}: {err}"
        if why is not None:
            message = f"{spec.describe()}: {why}"
            runner.failures[spec.key] = message
            self.failures.append(message)
        self.locks.pop(spec.key).close()  # only once the record is stored
        self.board.last = " ".join(filter(None, [self.labels.get(spec.key), spec.describe(),
                                                 "FAILED" if why else ""]))
        self.board.report(len(self.records),
                          final=len(self.records) + len(self.failures) == self.total)

    def release(self) -> None:
        """Close the locks still held (runs that never finished: the call was interrupted)."""
        for lock in self.locks.values():
            lock.close()


class Board:
    """The counts behind one :meth:`Runner.run`'s progress lines, and its ETA."""

    def __init__(self, runner: Runner, total: int, cached: int, started: float, missing):
        self.runner, self.total, self.cached, self.started = runner, total, cached, started
        self.queued = self.finished_count = self.failed = 0
        self.last, self.last_report = "", 0.0
        estimate = runner.estimate or (lambda spec: 1.0)
        self.estimates = {spec.key: max(1e-3, float(estimate(spec))) for spec in missing}
        self.estimated_done = 0.0

    def finished(self, spec: RunSpec) -> None:
        self.finished_count += 1
        self.estimated_done += self.estimates.get(spec.key, 0.0)

    def eta(self, done_keys: int) -> float | None:
        """Seconds left: the estimated work left over the executor's slots, rescaled by how fast
        the work done so far went against its estimate."""
        if self.runner.estimate is None:
            return None
        slots = max(1, min(self.runner.executor.workers, self.queued - self.finished_count))
        left = max(0.0, sum(self.estimates.values()) - self.estimated_done)
        elapsed = time.perf_counter() - self.started
        if self.estimated_done > 0 and elapsed > 0:
            speed = elapsed / (self.estimated_done / max(1, self.runner.executor.workers))
            return left / slots * speed
        return left / slots

    def report(self, done: int, heartbeat: Heartbeat | None = None, final: bool = False,
               labels: dict | None = None) -> None:
        if self.runner.progress is None:
            return
        now = time.perf_counter()
        if not (heartbeat or final or now - self.last_report >= self.runner.progress_every_s):
            return
        self.last_report = now
        self.failed = sum(1 for k in self.runner.failures if k in self.estimates)
        in_flight = min(self.runner.executor.workers, self.queued - self.finished_count)
        last = self.last
        if heartbeat is not None:  # a line about the runs that are taking long
            longest = sorted(heartbeat.running, key=lambda r: -r[1])[:3]
            last = "still running: " + ("; ".join(
                " ".join(filter(None, [(labels or {}).get(getattr(item, "key", None)),
                                       item.describe() if hasattr(item, "describe") else str(item),
                                       f"for {duration(seconds)}"]))
                for item, seconds in longest) or f"{in_flight} run(s)")
        self.runner.progress(Progress(done, self.total, self.cached, now - self.started,
                                      in_flight, self.failed, self.eta(done), last))
