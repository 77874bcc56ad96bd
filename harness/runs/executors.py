"""Executors: where runs train. One interface, so another engine (Ray, Dask, a batch queue) is one
more class.

An executor has

* ``workers``: how many runs it trains at once (for progress and ETA);
* ``threads_per_run``: CPU threads each run may use;
* ``submit_all(fn, items, tick_s=None)``: an iterator of ``(item, result, error)`` in completion
  order; with ``tick_s``, it also yields a :class:`Heartbeat` (the items running and for how
  long) whenever ``tick_s`` seconds pass without a run finishing, so the caller can print a line
  per long run instead of staying silent;
* ``close()``;
* ``reaches_gpus``: whether its runs can train on a GPU whatever this process's torch sees (GPU
  slots pinned to cards, a Slurm cluster's GPUs); a session keys device-bound runs of a machine
  without a GPU on ``cuda`` only when it does (False when absent);
* optionally ``start(fn)``: start the workers before the first ``submit_all`` and run ``fn()``
  once in each, returning their futures (the runner warms workers up this way while it still
  builds specs).

``fn`` must be picklable (a module-level function or a ``functools.partial`` of one) so that it
crosses process boundaries. Executors only train: results come back to the caller (the
:class:`~harness.runs.runner.Runner`), which alone writes the result store.

To add an engine, write a class with those members whose ``submit_all`` sends ``fn(item)``
somewhere and yields each item back with its result or its exception, and add it to
:func:`make_executor` and :data:`EXECUTORS` (the ``--executor`` choices). Tests in
``tests/test_executors.py`` run every executor on the same specs and require the same records.

Executors here:

* ``local``: in this process (``workers`` = 1) or local worker processes, one per slot; with
  ``workers="auto"`` on a machine with GPUs, GPU slots for the runs that train on a GPU beside
  CPU workers for the others (:func:`make_executor`);
* ``gpus``: one process per slot, ``runs_per_gpu`` slots per GPU, each pinned to its GPU with
  ``CUDA_VISIBLE_DEVICES`` (small runs do not fill a large GPU, so several share one);
* ``slurm`` / ``slurm-local``: `submitit <https://github.com/facebookincubator/submitit>`_ job
  arrays on a Slurm cluster, or the same code path with submitit's local executor (how CI tests
  it). Each job trains its runs one after another and drops each result into a spool folder as it
  finishes, so results stream back while the job runs and a job that dies keeps what it finished.

Local slots survive their workers: a worker that dies, or an item that hits a CUDA error, costs
that item alone (a run group: the runs sharing one trained model), and the slot goes on with a
fresh worker (:class:`SlotsExecutor`). An item declares where it trains (its ``device``,
:func:`needs_gpu`); the executors route by it.
"""

from __future__ import annotations

import atexit
import concurrent.futures as futures
import contextlib
import functools
import logging
import math
import multiprocessing
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("local", "gpus", "slurm", "slurm-local")


@dataclass
class Heartbeat:
    """Nothing finished for a while: the items running now and seconds each has run (as far as
    the executor can tell; empty when it cannot)."""

    running: list = field(default_factory=list)  # (item, seconds)


class ExecutorError(ValueError):
    """An executor cannot be built as asked; the message names the fix."""


class JobFailed(RuntimeError):
    """A run's job ended without returning its result (killed, timed out, out of memory)."""


class InProcessExecutor:
    """Runs each item in the calling process, one after another."""

    workers = 1
    reaches_gpus = False  # it has the GPUs this process has, nothing more

    def __init__(self, threads_per_run: int | None = None):
        self.threads_per_run = threads_per_run or os.cpu_count() or 1

    def submit_all(self, fn: Callable, items: Iterable, tick_s: float | None = None) -> Iterator:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as err:  # noqa: BLE001 - reported per run by the runner
                yield item, None, err

    def close(self) -> None:
        pass


def spawn_pool(workers: int, initializer=None, initargs=()) -> futures.ProcessPoolExecutor:
    # spawn, not fork: a forked child of a process that has started threads (BLAS, torch) can
    # deadlock, and spawn behaves the same on every platform.
    return futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=worker_started, initargs=(initializer, initargs))


def worker_started(initializer=None, initargs=()) -> None:
    """Every spawned worker's initializer: at exit, skip the interpreter's teardown, then run
    the executor's own ``initializer``. Tearing down a worker that has imported torch took
    ~1.8 s, which closing the pool waited for at the end of every session; by the time a worker
    exits it has returned every result, so there is nothing left to tear down."""
    atexit.register(exit_now)  # registered first, so it runs after every later atexit handler
    if initializer is not None:
        initializer(*initargs)


def exit_now() -> None:
    """Flush what the process wrote, and exit without the interpreter's teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# glibc mallopt parameters (malloc.h) and the size up to which a training process keeps what it
# frees: above every buffer a quick or full run allocates (a full CIFAR-10 split at 32 px is
# 150 MB), far below the memory of any machine that trains.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS;
    returns whether it could (False off glibc, where nothing changes).

    Why: a run allocates and frees the same large buffers over and over (the activations of a
    Hessian-vector product over 500 images). glibc serves blocks over its mmap threshold (at most
    32 MB unless set) with fresh pages and unmaps them when freed, so each allocation faulted its
    pages in again: ~25 s of kernel time per worker in the quick suite, measured before the toy's
    ray march stopped at first crossings (0.5-1 M page faults per Hessian run, 0.3 M per toy
    run). With both
    thresholds at 1 GiB those blocks are reused. Called by every process that trains
    (:func:`~harness.runs.runner.execute_spec`); it changes where memory comes from, never a
    result (the quick suite's records are identical with and without it)."""
    import ctypes

    try:  # the running program's own symbols: its C library's, without searching for the library
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): keep the platform's policy
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))


def needs_gpu(item) -> bool:
    """Whether ``item`` trains on a GPU, as it declares (a run spec's or group's ``device``)."""
    return getattr(item, "device", "cpu") == "cuda"


def pin_gpu(gpu: str) -> None:
    """Worker initializer: this process sees one GPU. Runs before the worker imports torch's CUDA
    state (CUDA reads the variable when it initializes)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


# What a run's error says when the device, not the run, is at fault. CUDA errors are sticky (after
# an illegal access or a device-side assert every later call in that process fails), and an
# out-of-memory leaves a fragmented cache behind: either way the next run deserves a fresh process.
DEVICE_ERROR = re.compile(r"CUDA|cuDNN|CUBLAS|AcceleratorError|NCCL")


def device_error(error) -> bool:
    """Whether ``error`` (an exception, or a run's failure message) is the device's fault."""
    if error is None:
        return False
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return bool(DEVICE_ERROR.search(text))


def run_failures(result) -> list[str]:
    """The failure messages inside a result: a group's records may hold a run's own failure (an
    object with an ``error`` message, :class:`~harness.runs.training.RunFailure`) in place of
    its record, which the runner reports; a CUDA error there leaves the worker broken too."""
    records = result if isinstance(result, (list, tuple)) else [result]
    return [r.error for r in records if isinstance(getattr(r, "error", None), str)]


class SlotsExecutor:
    """One worker process per slot; a slot takes the next item whenever its run finishes, so slow
    and fast runs mix without an idle worker. Workers are kept alive across calls (each keeps its
    imports, its CUDA context and its cached data).

    A slot is ``None`` (a CPU worker) or a GPU id (a worker pinned to that GPU with
    ``CUDA_VISIBLE_DEVICES``). When the executor has slots of both kinds, a run goes to a slot of
    its own kind (:func:`needs_gpu`): a GPU run never waits behind CPU work, and a CPU-only run
    takes a GPU slot only once no GPU run is queued. With one kind, every slot takes every run.

    A slot whose worker died (killed, out of host memory, a crash in native code) gets a fresh
    worker, and the item it was training fails alone with :class:`JobFailed`; an item that failed
    with a device error (:func:`device_error`), raised or in a run's failure inside its result
    (:func:`run_failures`), also leaves a fresh worker behind it. Without this,
    the broken pool would fail every later run of its slot, and its ``BrokenProcessPool`` would
    end the whole submission with the queued runs.

    Parameters
    ----------
    slots : sequence of (str or None)
        One entry per worker: ``None`` for a CPU worker, else the GPU id it is pinned to.
    threads_per_run : int, optional
        CPU threads each run may use; default: the machine's cores over the slots.
    """

    def __init__(self, slots: Sequence, threads_per_run: int | None = None):
        if not slots:
            raise ExecutorError("an executor needs at least one worker")
        self.slots = [None if s is None else str(s) for s in slots]
        self.workers = len(self.slots)
        self.threads_per_run = threads_per_run or threads_per_worker(self.workers)
        self.mixed = len({gpu is not None for gpu in self.slots}) > 1  # both kinds of slot
        # Whether its runs can train on a GPU whatever this process's torch sees: it has a slot
        # pinned to one (a session then keys and trains device-bound runs on cuda).
        self.reaches_gpus = any(gpu is not None for gpu in self.slots)
        self.pools: list[futures.ProcessPoolExecutor] = []

    def spawn(self, slot: int) -> futures.ProcessPoolExecutor:
        gpu = self.slots[slot]
        return spawn_pool(1) if gpu is None else spawn_pool(1, pin_gpu, (gpu,))

    def started_pools(self) -> list[futures.ProcessPoolExecutor]:
        """One single-process pool per slot; spawned on first use."""
        if not self.pools:
            self.pools = [self.spawn(slot) for slot in range(self.workers)]
        return self.pools

    def restart(self, slot: int) -> None:
        """A fresh worker for ``slot``; the old one exits once it is idle (at once if dead)."""
        self.pools[slot].shutdown(wait=False, cancel_futures=True)
        self.pools[slot] = self.spawn(slot)

    def start(self, fn: Callable) -> list[futures.Future]:
        """Start every slot's process now and run ``fn`` once in each."""
        return [pool.submit(fn) for pool in self.started_pools()]

    def takes(self, slot: int, item, gpu_run_queued: bool) -> bool:
        """Whether ``slot`` may train ``item`` now: its own kind of run; a GPU slot also takes a
        CPU-only run once no GPU run is queued (the queue only shrinks, so no GPU run waits for
        it, and an idle card's slot helps the cores); with one kind of slot, every run."""
        if not self.mixed or (self.slots[slot] is not None) == needs_gpu(item):
            return True
        return self.slots[slot] is not None and not gpu_run_queued

    def submit_all(self, fn: Callable, items: Iterable, tick_s: float | None = None) -> Iterator:
        self.started_pools()
        queue = list(items)
        running: dict = {}  # future -> (item, slot)
        started: dict = {}  # future -> when its slot took it

        def feed(slot: int) -> None:
            """Give ``slot`` the first queued item it takes (the queue's order is the caller's)."""
            gpu_run_queued = self.mixed and any(map(needs_gpu, queue))  # once per feed, not per item
            for position, item in enumerate(queue):
                if self.takes(slot, item, gpu_run_queued):
                    del queue[position]
                    try:
                        future = self.pools[slot].submit(fn, item)
                    except BrokenProcessPool:  # died while idle
                        self.restart(slot)
                        future = self.pools[slot].submit(fn, item)
                    running[future], started[future] = (item, slot), time.monotonic()
                    return

        for slot in range(self.workers):
            feed(slot)
        try:
            while running:
                done, _ = futures.wait(running, timeout=tick_s, return_when=futures.FIRST_COMPLETED)
                if not done:
                    now = time.monotonic()
                    yield Heartbeat([(item, now - started[f]) for f, (item, _) in running.items()])
                for future in done:
                    item, slot = running.pop(future)
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        where = "" if self.slots[slot] is None else f" on GPU {self.slots[slot]}"
                        error = JobFailed(
                            f"the worker process training this run{where} died without its result "
                            "(killed, out of host memory, or a crash in native code); its slot "
                            "goes on with a fresh worker")
                        self.restart(slot)
                    elif device_error(error) or (error is None and any(
                            device_error(failure) for failure in run_failures(future.result()))):
                        self.restart(slot)
                    feed(slot)
                    yield item, (None if error else future.result()), error
            for item in queue:  # unreachable while every item has a slot of its kind; said if not
                yield item, None, ExecutorError(f"no slot of this executor takes {item!r}")
        finally:
            for future in running:
                future.cancel()

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown(wait=True, cancel_futures=True)
        self.pools = []


class ProcessPoolExecutor(SlotsExecutor):
    """``workers`` local CPU worker processes (``--executor=local --workers=N``)."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ExecutorError(f"workers must be at least 1; got {workers}")
        super().__init__([None] * workers)


class GpuSlotsExecutor(SlotsExecutor):
    """``runs_per_gpu`` slots per GPU, each pinned to its GPU (``--executor=gpus``): small runs do
    not fill a large GPU, so several share one.

    Slots are interleaved across GPUs (``[0, 1, 0, 1]``, not ``[0, 0, 1, 1]``): runs go longest
    first, so the first runs to start are the heaviest (the Hessian spectra), and they should
    not all share the first card.

    Parameters
    ----------
    gpus : sequence of str or int
        GPU ids as ``CUDA_VISIBLE_DEVICES`` names them.
    runs_per_gpu : int
        Concurrent runs per GPU (at least 1).
    cpu_workers : int
        CPU worker processes beside the GPU slots, for runs that do not train on a GPU (0: every
        run takes a GPU slot).
    """

    def __init__(self, gpus: Sequence, runs_per_gpu: int = 1, cpu_workers: int = 0):
        if runs_per_gpu < 1:
            raise ExecutorError(f"--runs-per-gpu must be at least 1; got {runs_per_gpu}")
        if not gpus:
            raise ExecutorError("the gpus executor needs at least one GPU")
        gpu_slots = [str(g) for _ in range(runs_per_gpu) for g in gpus]
        super().__init__(gpu_slots + [None] * cpu_workers)


# ----------------------------------------------------------------------------------- submitit

def run_chunk(fn: Callable, items: list, spool: str, first: int) -> int:
    """Job body: train ``items`` one after another; item ``first + i``'s outcome goes to
    ``spool/<first + i>.pkl`` the moment it finishes (written whole, then renamed)."""
    for offset, item in enumerate(items):
        index = first + offset
        print(f"[harness] run {index}: {getattr(item, 'describe', lambda: item)()}", flush=True)
        started = time.time()
        try:
            outcome = ("ok", fn(item))
        except Exception as err:  # noqa: BLE001 - sent back to the driver with the traceback
            outcome = ("error", f"{type(err).__name__}: {err}", traceback.format_exc())
            print(outcome[2], flush=True)
        print(f"[harness] run {index}: {outcome[0]} after {time.time() - started:.1f}s", flush=True)
        target = Path(spool) / f"{index}.pkl"
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            pickle.dump(outcome, handle)
        os.replace(tmp, target)
    return len(items)


class RunError(RuntimeError):
    """A run raised inside a job; the message has its error and the job's log path."""


class SubmititExecutor:
    """Job arrays through submitit: on Slurm (``cluster="slurm"``) or locally (``"local"``).

    Parameters
    ----------
    folder : path
        Where submitit keeps job pickles and logs (``<folder>/<job id>_<task>_log.{out,err}``).
    cluster : {"slurm", "local"}
    partition : str, optional
        Slurm partition.
    gpus_per_job, cpus_per_job : int
        Resources of each array task. A task whose runs do not train on a GPU (:func:`needs_gpu`:
        tabular, toy) asks for no GPU.
    time_min : int
        Time limit of each array task, minutes.
    array_parallelism : int
        Most array tasks running at once.
    runs_per_job : int, optional
        Runs each array task trains one after another. Default: 1 on Slurm (a log per run); for
        ``local`` one job per parallel slot, since each job starts a fresh Python (~3 s).
    """

    def __init__(self, folder, cluster: str = "slurm", partition: str | None = None,
                 gpus_per_job: int = 1, cpus_per_job: int = 8, time_min: int = 240,
                 array_parallelism: int = 64, runs_per_job: int | None = None,
                 visible_gpus: tuple[int, ...] = ()):
        try:
            import submitit
        except ImportError:
            raise ExecutorError(f"--executor={'slurm' if cluster == 'slurm' else 'slurm-local'} "
                                "needs submitit, which is an optional extra: pip install -e "
                                "\".[slurm]\" (or pip install submitit)") from None
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise ExecutorError("--executor=slurm: no `sbatch` on this machine's PATH; run the suite "
                                "on a Slurm login node, or use --executor=slurm-local to try the "
                                "same code path with local processes")
        for name, value in (("gpus per job", gpus_per_job), ("cpus per job", cpus_per_job),
                            ("time limit (min)", time_min), ("array parallelism", array_parallelism)):
            if value < (0 if name == "gpus per job" else 1):
                raise ExecutorError(f"--slurm {name} must be positive; got {value}")
        if runs_per_job is not None and runs_per_job < 1:
            raise ExecutorError(f"--slurm-runs-per-job must be at least 1; got {runs_per_job}")
        self.folder = Path(folder)
        self.cluster = cluster
        self.reaches_gpus = cluster == "slurm"  # the cluster's GPUs, not this machine's
        self.gpus_per_job = gpus_per_job
        self.runs_per_job = runs_per_job
        self.workers = array_parallelism
        self.threads_per_run = cpus_per_job
        self.executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=cluster)
        params = {"timeout_min": time_min, "gpus_per_node": gpus_per_job,
                  "cpus_per_task": cpus_per_job, "slurm_array_parallelism": array_parallelism}
        if partition:
            params["slurm_partition"] = partition
        self.executor.update_parameters(**params)
        if cluster == "local" and visible_gpus:
            # Which of this machine's GPUs the jobs get (without it submitit numbers them from
            # 0, wrong under CUDA_VISIBLE_DEVICES=2,3). The auto executor does not pass this
            # local-only parameter through, so it goes to the local executor it wraps.
            getattr(self.executor, "_executor", self.executor).update_parameters(
                visible_gpus=tuple(visible_gpus))
        # How often the driver looks for results in the spool, and asks whether jobs ended (on
        # Slurm that is a sacct call: do not hammer the controller; locally it costs CPU the
        # runs share).
        self.poll_s = 0.2 if cluster == "local" else 5.0
        self.state_every_s = 2.0 if cluster == "local" else 30.0
        # How long after a job is seen over its missing results count as lost: none locally (one
        # disk); on Slurm, one state check (the spool may be on a network file system).
        self.spool_grace_s = 0.0 if cluster == "local" else self.state_every_s
        self.jobs: list = []
        self.delivered: list = []
        self.slurm_states: dict[str, str] = {}  # array task id -> its state, as squeue last said
        if cluster == "slurm":
            quiet_sacct_errors()

    def chunks(self, items: list, packed: bool = False) -> list[list]:
        """``items`` split into array tasks: ``runs_per_job`` each when given; else one per task
        on Slurm (a log per run) and one task per parallel slot locally. ``packed``: at most one
        task per parallel slot on Slurm too (CPU-only runs take seconds: a task each would
        flood the queue)."""
        size = self.runs_per_job or (1 if self.cluster == "slurm" and not packed
                                     else math.ceil(len(items) / self.workers))
        return [items[i:i + size] for i in range(0, len(items), size)]

    @contextlib.contextmanager
    def asking_no_gpu(self):
        """Within the block, array tasks ask for no GPU: no one-second XGBoost run holds one.
        On Slurm the flag is left out of the job script (some sites refuse
        ``--gpus-per-node=0``); submitit's local executor reads 0 as "hide every GPU"."""
        if self.cluster == "local":
            self.executor.update_parameters(gpus_per_node=0)
        else:  # submitit ignores None in update_parameters: drop the parameter itself
            getattr(self.executor, "_executor", self.executor).parameters.pop("gpus_per_node", None)
        try:
            yield
        finally:
            self.executor.update_parameters(gpus_per_node=self.gpus_per_job)

    def submit_all(self, fn: Callable, items: Iterable, tick_s: float | None = None) -> Iterator:
        items = list(items)
        if not items:
            return
        spool = self.folder / "spool" / f"{os.getpid()}-{time.time_ns()}"
        spool.mkdir(parents=True)
        split = bool(self.gpus_per_job)  # GPU runs first, then the CPU-only ones in tasks of their own
        if split:
            items = [i for i in items if needs_gpu(i)] + [i for i in items if not needs_gpu(i)]
        gpu_runs = sum(map(needs_gpu, items)) if split else len(items)
        jobs, owner = [], {}  # owner: item index -> its job's index in jobs
        try:
            # cpu_only: the part after the GPU runs. Said apart, not read off ``first > 0``: a
            # selection without a GPU run (tabular only) starts its CPU part at 0, and its tasks
            # then asked for a GPU (refused by a cluster without GRES: "Invalid generic resource").
            for cpu_only, first, part in ((False, 0, items[:gpu_runs]),
                                          (split, gpu_runs, items[gpu_runs:])):
                if not part:
                    continue
                chunks = self.chunks(part, packed=cpu_only)
                starts = [first + sum(len(c) for c in chunks[:i]) for i in range(len(chunks))]
                owner.update({starts[j] + k: len(jobs) + j for j, chunk in enumerate(chunks)
                              for k in range(len(chunk))})
                with self.asking_no_gpu() if cpu_only else contextlib.nullcontext():
                    part_jobs = self.executor.map_array(run_chunk, [fn] * len(chunks), chunks,
                                                        [str(spool)] * len(chunks), starts)
                jobs += part_jobs
                self.jobs += part_jobs  # close() cancels them even if the next part is refused
        except BaseException:
            self.close()  # nothing of a half-submitted session keeps running untracked
            raise
        pending = set(range(len(items)))
        last_event = time.monotonic()
        finished_jobs, checked = set(), 0.0
        ended_since: dict[int, float] = {}  # job index -> when it was first seen over
        while pending:
            if time.monotonic() - checked >= self.state_every_s:  # before reading the spool
                now = time.monotonic()
                for j in self.ended(jobs, exclude=finished_jobs):
                    ended_since.setdefault(j, now)
                # A job over is taken as finished only after the grace: its last results may
                # still be on their way to the spool (a network file system shows a file
                # written on a compute node to the login node seconds later).
                finished_jobs = {j for j, t in ended_since.items() if now - t >= self.spool_grace_s}
                checked = now
            for index in sorted(pending):
                path = spool / f"{index}.pkl"
                if path.is_file():
                    with open(path, "rb") as handle:
                        outcome = pickle.load(handle)
                    pending.discard(index)
                    last_event = time.monotonic()
                    if outcome[0] == "ok":
                        yield items[index], outcome[1], None
                    else:
                        log = jobs[owner[index]].paths.stdout
                        yield items[index], None, RunError(f"{outcome[1]} (log: {log})")
                elif owner[index] in finished_jobs:
                    job = jobs[owner[index]]
                    pending.discard(index)
                    last_event = time.monotonic()
                    yield items[index], None, JobFailed(
                        f"job {job.job_id} ended without this run's result ({self.failure(job)}); "
                        f"log: {job.paths.stderr}")
            if pending:
                if tick_s is not None and time.monotonic() - last_event >= tick_s:
                    last_event = time.monotonic()
                    yield Heartbeat()  # which array tasks run is Slurm's to say (squeue)
                time.sleep(self.poll_s)
        self.delivered += jobs  # every result is in; close() lets these end on their own
        shutil.rmtree(spool, ignore_errors=True)

    def close(self) -> None:
        # Jobs that delivered every result are ending by themselves: wait for them (submitit's
        # local controller, interrupted at exit, prints a traceback). Cancel the others (an
        # interrupted session).
        delivered = {id(job) for job in self.delivered}
        undelivered = [job for job in self.jobs if id(job) not in delivered]
        ended = self.ended(undelivered) if undelivered else set()
        for j, job in enumerate(undelivered):
            if j not in ended:
                job.cancel(check=False)
        deadline = time.monotonic() + 30
        while (len(self.ended(self.delivered)) < len(self.delivered)
               and time.monotonic() < deadline):
            time.sleep(self.poll_s)
        self.jobs, self.delivered = [], []

    def ended(self, jobs: list, exclude=()) -> set[int]:
        """Indices of ``jobs`` that are over (``exclude``: indices known to be, not asked again).

        Locally, submitit's ``job.done()``. On Slurm, its result file or ``squeue``, never
        submitit's ``job.done()``: that asks ``sacct``, which on a cluster without accounting
        (``AccountingStorageType=accounting_storage/none``, common on small clusters) fails on
        every call; submitit then reads the state as UNKNOWN, which is never done, so a job
        that died without its result (cancelled, killed, out of memory) was waited for forever.
        ``squeue --states=all`` lists finished jobs for the controller's ``MinJobAge`` (300 s by
        default, far more than the 30 s between checks); a job it no longer lists is over.
        When ``squeue`` itself fails (the controller unreachable a moment), no job is taken
        for over this time: the next check asks again."""
        todo = [j for j in range(len(jobs)) if j not in exclude]
        if self.cluster != "slurm":
            return set(exclude) | {j for j in todo if jobs[j].done()}
        done = {j for j in todo if jobs[j].paths.result_pickle.exists()}
        asked = [j for j in todo if j not in done]
        states = slurm_states({str(jobs[j].job_id).split("_")[0] for j in asked}) if asked else {}
        if states is None:
            return set(exclude) | done
        self.slurm_states.update(states)
        return set(exclude) | done | {j for j in asked if states.get(str(jobs[j].job_id), "GONE")
                                      not in SLURM_ACTIVE}

    def failure(self, job) -> str:
        """Why ``job`` ended without a result, as far as can be told without waiting."""
        if self.cluster == "slurm" and not job.paths.result_pickle.exists():
            # job.exception() would wait for submitit's done(): forever without accounting.
            state = self.slurm_states.get(str(job.job_id))
            return f"state {state}" if state else "no longer in Slurm's queue"
        return job_failure(job)


# Slurm job states (squeue's %T) of a job that is not over yet; any other state is an end
# (COMPLETED, CANCELLED, FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL, DEADLINE, ...).
# PREEMPTED counts as not over, as for submitit: the job may be requeued.
SLURM_ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                          "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING",
                          "STAGE_OUT", "STOPPED", "PREEMPTED", "RESV_DEL_HOLD", "SPECIAL_EXIT"})


def slurm_states(job_ids) -> dict[str, str] | None:
    """``squeue``'s state of every array task of the jobs ``job_ids`` (``"<job>_<task>"`` ->
    state; finished ones for the controller's ``MinJobAge``), or None when squeue fails."""
    try:
        out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T",
                              "--jobs=" + ",".join(sorted(job_ids))],
                             check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        # A job id the controller has purged makes squeue fail ("Invalid job id specified")
        # when it is the only one asked for: every job asked is then over.
        return {} if "Invalid job id" in out.stderr else None
    states = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        states[job_id] = state.strip()
    return states


class QuietSacctErrors(logging.Filter):
    """A logging filter dropping submitit's "Bypassing sacct error ..." warnings."""

    def filter(self, record) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


def quiet_sacct_errors() -> None:
    """Drop submitit's warning that ``sacct`` failed, on Slurm, once per process.

    Why it is harmless here: on a cluster without accounting (``AccountingStorageType=
    accounting_storage/none``) every ``sacct`` call fails, and each time submitit's job-state
    watcher logged "Bypassing sacct error ..., status may be inaccurate" twice (its logger has a
    stdout and a stderr handler). :meth:`SubmititExecutor.ended` reads job states from
    ``squeue``, never from that watcher; only submitit's own calls (``repr(job)``,
    ``job.state``) still reach ``sacct``, and their warning says nothing the session needs."""
    logger = logging.getLogger("submitit")
    if not any(isinstance(f, QuietSacctErrors) for f in logger.filters):
        logger.addFilter(QuietSacctErrors())


def job_failure(job) -> str:
    try:
        error = job.exception()
    except Exception as err:  # noqa: BLE001 - submitit raises for jobs it cannot read back
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return f"{type(error).__name__}: {str(error).splitlines()[0]}" if error else f"state {job.state}"


# ------------------------------------------------------------------------------------ factory

def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else torch's count.

    Where no GPU device node exists (``/dev/nvidia<N>``, or ``/dev/kfd`` for ROCm) the answer is
    none without importing torch, which costs the driver ~2 s on a CPU-only machine."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if not gpu_device_nodes():
        return []
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_device_nodes() -> list[str]:
    import glob

    return glob.glob("/dev/nvidia[0-9]*") + glob.glob("/dev/kfd")


def runs_sharing_a_gpu(name: str, workers: int | str, runs_per_gpu: int) -> int:
    """How many runs :func:`make_executor` lets share one GPU on a machine with GPUs:
    ``runs_per_gpu`` for ``gpus``, and for ``local`` with ``workers="auto"`` (GPU slots);
    one for Slurm (one GPU per array task) and for a number of local workers (which all use the
    default GPU, however many there are: nothing measured says how fast that is)."""
    return runs_per_gpu if name == "gpus" or (name == "local" and workers == "auto") else 1


def make_executor(name: str = "local", workers: int | str = 1, runs_per_gpu: int = 1,
                  folder=None, **slurm):
    """The executor ``name`` (one of :data:`EXECUTORS`), checked before anything is submitted.

    ``workers="auto"`` (``--workers=auto``) with ``local``: on a machine with visible GPUs,
    ``runs_per_gpu`` slots per GPU for the runs that train on a GPU plus a CPU worker for each
    remaining core for the others (:class:`GpuSlotsExecutor` with ``cpu_workers``), so one
    session mixes networks and tabular runs without oversubscribing either; without a GPU, one
    worker per core.

    Raises
    ------
    ExecutorError
        Unknown name, ``runs_per_gpu`` < 1, ``gpus`` with no GPU visible, submitit missing, no
        ``sbatch`` for ``slurm``.
    """
    if runs_per_gpu < 1:
        raise ExecutorError(f"--runs-per-gpu must be at least 1; got {runs_per_gpu}")
    cores = os.cpu_count() or 1
    if name == "local":
        if workers == "auto":
            gpus = visible_gpus()
            if gpus:
                gpu_slots = len(gpus) * runs_per_gpu
                # Each GPU run drives its card from one core; the other cores take CPU-only runs.
                return GpuSlotsExecutor(gpus, runs_per_gpu, cpu_workers=max(1, cores - gpu_slots))
            workers = cores
        return InProcessExecutor() if workers <= 1 else ProcessPoolExecutor(workers)
    if workers == "auto":
        workers = cores
    if name == "gpus":
        gpus = visible_gpus()
        if not gpus:
            raise ExecutorError("--executor=gpus: no GPU is visible (torch.cuda.device_count() is 0 "
                                "or CUDA_VISIBLE_DEVICES is empty); use --executor=local on this "
                                "machine, or run on a GPU machine")
        return GpuSlotsExecutor(gpus, runs_per_gpu)
    if name in ("slurm", "slurm-local"):
        if folder is None:
            raise ExecutorError(f"--executor={name} needs a folder for job logs")
        if name == "slurm-local":
            slurm.setdefault("array_parallelism", workers)
            slurm.setdefault("cpus_per_job", threads_per_worker(workers))
            # submitit's local jobs get CUDA_VISIBLE_DEVICES set to the GPUs they ask for: 0
            # would hide every GPU of a GPU machine, and each neural job would then fail in
            # resolve_device("cuda"). Each job sees the GPUs this process sees.
            gpus = visible_gpus()
            slurm["gpus_per_job"] = len(gpus)
            if gpus and all(g.strip().isdigit() for g in gpus):
                slurm["visible_gpus"] = tuple(int(g) for g in gpus)
        return SubmititExecutor(folder, cluster="slurm" if name == "slurm" else "local", **slurm)
    raise ExecutorError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


def threads_per_worker(workers: int) -> int:
    """Split the machine's cores between workers so that parallel runs do not oversubscribe."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
