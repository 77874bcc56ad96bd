"""Executors: where runs train. One interface, so a distributed engine is one more class.

An executor has ``submit_all(fn, items)``, an iterator of ``(item, result, error)`` in completion
order, and ``close()``. ``fn`` must be a module-level function so it can cross process boundaries.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator


class InProcessExecutor:
    """Runs each item in the calling process, one after another."""

    workers = 1

    def submit_all(self, fn: Callable, items: Iterable) -> Iterator[tuple]:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as err:  # noqa: BLE001 - reported per run by the runner
                yield item, None, err

    def close(self) -> None:
        pass


class ProcessPoolExecutor:
    """Runs items in a pool of ``workers`` local processes, kept alive across calls.

    Workers are started with ``spawn``: a forked child of a process that has started threads
    (BLAS, torch) can deadlock, and spawn behaves the same on every platform.
    """

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be at least 1; got {workers}")
        self.workers = workers
        self.pool: futures.ProcessPoolExecutor | None = None

    def submit_all(self, fn: Callable, items: Iterable) -> Iterator[tuple]:
        if self.pool is None:
            self.pool = futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
        pending = {self.pool.submit(fn, item): item for item in items}
        try:
            for done in futures.as_completed(pending):
                error = done.exception()
                yield pending[done], (None if error else done.result()), error
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def make_executor(workers: int):
    """In-process for one worker, a local process pool for more."""
    return InProcessExecutor() if workers <= 1 else ProcessPoolExecutor(workers)


def threads_per_worker(workers: int) -> int:
    """Split the machine's cores between workers so that parallel runs do not oversubscribe."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
