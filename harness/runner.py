"""The runner: give it specs, get records; it trains only what the store does not hold.

Each finished run is written to the store the moment it completes, so a suite killed mid-grid
resumes where it stopped. A run that fails is reported with its spec after the other runs have
finished and been stored; nothing is written for the failed run.

Several processes may share one store: a run is trained only by the process holding its lock
(:meth:`~harness.store.ResultStore.claim_run`). The runner first trains the runs nobody else is
training, then waits for the others and loads them (training one itself only if its holder died
without storing it). A read-only store lends its runs; lacking one is an error before training.

Worker processes start afresh and know only the registries as the package defines them, so a
run whose dataset, model or method was registered or replaced in this process (a user's method
registered in a conftest, a test's spy model, a mutation test's sabotage) trains in this process
whatever the executor; the others go to the executor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from . import data, methods, models, training
from .executors import InProcessExecutor, threads_per_worker
from .spec import RunSpec
from .store import ReadOnlyStoreError, ResultStore


class RunFailed(RuntimeError):
    """One or more runs raised; the message lists each spec and its error."""


@dataclass
class Progress:
    """Counts for a progress line: runs done of total, how many came from the store, seconds."""

    done: int
    total: int
    cached: int
    elapsed_s: float

    def line(self) -> str:
        return (f"runs {self.done}/{self.total} done ({self.cached} from store), "
                f"{self.elapsed_s:.1f}s elapsed")


def portable(spec: RunSpec) -> bool:
    """Whether a fresh worker process would train ``spec`` with the same registered code."""
    return (data.DATASETS.get(spec.dataset) is data.BUILTIN_DATASETS.get(spec.dataset)
            and models.MODELS.get(spec.model) is models.BUILTIN_MODELS.get(spec.model)
            and methods.METHODS.get(spec.method) is methods.BUILTIN_METHODS.get(spec.method))


def execute_spec(spec: RunSpec, data_dir=None, n_jobs: int = 1) -> dict:
    return training.execute(spec, data_dir=data_dir, n_jobs=n_jobs)


class Runner:
    """Runs specs through an executor, backed by a result store.

    Parameters
    ----------
    store : ResultStore
    executor : executor, optional
        Defaults to :class:`~harness.executors.InProcessExecutor`.
    data_dir : path, optional
        Passed to the data loaders.
    progress : callable, optional
        Called with a :class:`Progress` after each run and at most every ``progress_every_s``.
    """

    def __init__(self, store: ResultStore, executor=None, data_dir=None,
                 progress: Callable[[Progress], None] | None = None, progress_every_s: float = 5.0):
        self.store, self.executor = store, executor or InProcessExecutor()
        self.data_dir, self.progress, self.progress_every_s = data_dir, progress, progress_every_s
        self.trained = 0  # runs trained (not loaded) by this runner, for tests and reports
        self.loaded = 0   # runs read from the store
        self.memory: dict[str, dict] = {}  # records already seen this session, by key

    def run(self, specs: Sequence[RunSpec]) -> list[dict]:
        """Records for ``specs``, in the same order; trains the ones the store lacks."""
        started = time.perf_counter()
        unique = {spec.key: spec for spec in specs}
        records = {key: self.memory[key] for key in unique if key in self.memory}
        for key, spec in unique.items():
            if key not in records and (record := self.store.get(spec)) is not None:
                records[key] = self.memory[key] = record
                self.loaded += 1
        missing = [spec for key, spec in unique.items() if key not in records]
        if missing and self.store.read_only:
            raise ReadOnlyStoreError(
                f"the result store {self.store.root} is read-only and lacks {len(missing)} of the "
                f"{len(unique)} runs asked for (first: {missing[0].describe()}); pass a writable "
                "--store, or merge the missing runs into this one")
        cached = len(records)
        failures, attempted, last_report = [], 0, 0.0
        locks, tried = {}, set()
        try:
            # First pass: runs no other process is training; second: wait for the rest.
            for wait in (False, True):
                mine = []
                for spec in missing:
                    if spec.key in records or spec.key in locks or spec.key in tried:
                        continue
                    lock = self.store.claim_run(spec.key, wait=wait)
                    if lock is None:
                        continue
                    locks[spec.key] = lock
                    if (record := self.store.get(spec)) is not None:  # stored while we waited
                        records[spec.key] = self.memory[spec.key] = record
                        self.loaded += 1
                        locks.pop(spec.key).close()
                    else:
                        mine.append(spec)
                attempted += len(mine)
                for spec, record, error in self.submit(mine):
                    tried.add(spec.key)
                    if error is None:
                        records[spec.key] = self.memory[spec.key] = self.store.put(record)
                        self.trained += 1
                    else:
                        failures.append(f"{spec.describe()}: {type(error).__name__}: {error}")
                    locks.pop(spec.key).close()  # only once the record is stored
                    now = time.perf_counter()
                    if error is None and self.progress and (now - last_report >= self.progress_every_s
                                                            or len(records) == len(unique)):
                        self.progress(Progress(len(records), len(unique), cached, now - started))
                        last_report = now
        finally:
            for lock in locks.values():
                lock.close()
        if failures:
            raise RunFailed(f"{len(failures)} of {attempted} runs failed:\n" + "\n".join(failures))
        return [records[spec.key] for spec in specs]

    def submit(self, specs: list[RunSpec]):
        """(spec, record, error) as runs finish: portable runs through the executor, the rest
        (registered only in this process) in this process, after them."""
        if self.executor.workers <= 1:
            yield from self.executor.submit_all(self.job(), specs)
            return
        remote = [spec for spec in specs if portable(spec)]
        local = [spec for spec in specs if not portable(spec)]
        yield from self.executor.submit_all(self.job(), remote)
        yield from InProcessExecutor().submit_all(self.job(), local)

    def job(self):
        """The function the executor runs per spec (module-level, so it crosses processes)."""
        return partial(execute_spec, data_dir=self.data_dir,
                       n_jobs=threads_per_worker(self.executor.workers))
