"""A GPU check ready to run: throughput, MFU, every full-profile method once, calibration for plan.

``python -m harness gpucheck --minutes 8`` on one GPU runs these stages, in order:

1. ``flops``: counts the FLOPs of one ResNet-34 training image (forward + backward, CIFAR stem,
   32 px) with ``torch.utils.flop_counter``;
2. ``throughput/<n>``: trains ResNet-34 with the harness's own engine (the same step the runs
   use: bf16 autocast, channels_last, augmentation on the device) on synthetic images, 1, 2 and 4
   runs at once in separate processes, and reports images/s per run and in aggregate, MFU against
   the card's dense bf16 peak, and each run's peak memory (allocated by tensors, and reserved by
   torch's caching allocator: what the card must have free);
3. ``calibration``: writes the single-run throughput (the lowest concurrency level that
   succeeded) to the calibration file that ``python -m harness plan`` reads, as a steady-state
   figure (see :func:`harness.experiments.plan.record_throughput`);
4. ``method_cells/<path>``: runs one full-shape cell of every device-bound training path of the
   full profile (the dry run's paths whose model is device-bound,
   :func:`harness.learners.models.device_bound`, at the arm's own training-set size, one epoch) and
   records seconds and peak memory of each; the tabular and toy paths train on the CPU and are
   ``python -m harness dryrun``'s to check;
5. ``variants``: ``torch.backends.cudnn.benchmark`` and ``torch.compile``, each on and off, at one
   run for a short window each; images/s of each and which wins. The training defaults do not
   change: the JSON says which won so that a later change can turn it on (skipped on the CPU).

Each stage records its result or its error (type, message, the traceback's last lines) and the
check goes on to the next one; the result names the stages that failed (``failed``) and the
command exits non-zero if any did. With ``out`` the JSON is written to disk after every stage
(atomically: a temporary file, then ``os.replace``), so that even a killed check leaves the
stages it finished (``"complete": false`` until the last stage has run).

Concurrent runs start together and each measures its own steady state after one warm-up epoch;
the aggregate is the sum of those rates over windows that overlap (all start together and run
equally long).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import platform
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets (half the "with sparsity"
# figures). The longest name that occurs in torch.cuda.get_device_name() wins ("H200 NVL" over
# "H200", "GH200" over "H200", "A100" over "A10"), so the order here does not matter.
BF16_PEAK_TFLOPS = {
    "H200 NVL": 835.0, "H200": 989.4, "GH200": 989.4,
    "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4,
    "A100": 312.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0,
    "RTX 4090": 165.2, "RTX 3090": 71.0, "A6000": 154.8,
}
TRACEBACK_LINES = 8  # the last lines of an error's traceback kept in the JSON
# (name, cudnn.benchmark, torch.compile) of the variants stage; the first is the engine's default
VARIANTS = (("default", False, False), ("cudnn_benchmark", True, False),
            ("compile", False, True), ("cudnn_benchmark+compile", True, True))
VARIANTS_SHARE = 0.15  # of the time budget, for the variants' timed windows (compiling not counted)


def bf16_peak(name: str) -> float | None:
    """The dense bf16 peak of the card called ``name``: the longest table name in it wins."""
    matches = [key for key in BF16_PEAK_TFLOPS if key in name]
    return BF16_PEAK_TFLOPS[max(matches, key=len)] if matches else None


def default_out_path() -> Path:
    """Where the command writes its JSON by default: ``<cache>/gpucheck/<UTC time>.json``
    (``$IMBALANCE_CACHE_DIR`` or ``.cache``)."""
    from ..data import cache_dir

    return cache_dir() / "gpucheck" / f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"


def error_record(err: BaseException) -> dict:
    """An error as the JSON reports it: type, message and the traceback's last lines (a worker
    process's own traceback when the error came from one)."""
    remote = getattr(err.__cause__, "tb", None)  # concurrent.futures' _RemoteTraceback
    text = remote if isinstance(remote, str) else "".join(
        traceback.format_exception(type(err), err, err.__traceback__))
    return {"type": type(err).__name__, "message": str(err),
            "traceback_tail": [line for line in text.rstrip().splitlines() if line.strip()][-TRACEBACK_LINES:]}


def environment(device: str) -> dict:
    """Versions and paths of what the check ran with."""
    import torch

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "torch_file": torch.__file__,
           "torch_cuda": torch.version.cuda, "numpy": np.__version__, "host": platform.node()}
    try:
        env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception as err:  # noqa: BLE001 - a broken cuDNN is reported, not fatal
        env["cudnn"] = f"unavailable: {type(err).__name__}: {err}"
    if device == "cuda":
        env["device_capability"] = list(torch.cuda.get_device_capability())
    return env


def training_flops_per_image(arch: str, image_size: int, width=None) -> float:
    """FLOPs of one training image (forward + backward) of ``arch``, counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..nn.networks import build_network

    net = build_network(arch, 10, width)
    x = torch.randn(4, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(x), torch.zeros(4, dtype=torch.long)).backward()
    return counter.get_total_flops() / 4


def throughput_worker(arch: str, device: str, seconds: float, images: int, threads: int,
                      start_at: float, cudnn_benchmark: bool | None = None,
                      compile: bool = False) -> dict:
    """Train ``arch`` with the engine on synthetic images for ``seconds`` after a warm-up epoch;
    images/s and peak memory. Runs in its own process. ``cudnn_benchmark`` and ``compile`` set
    ``torch.backends.cudnn.benchmark`` (None: torch's default, as the runs have it) and wrap the
    network in ``torch.compile`` (the variants stage); their warm-up is a whole epoch, so that every batch shape is tuned or compiled
    before the timed window."""
    import torch

    from ..learners import engine, models
    from ..nn.networks import build_network
    from ..runs import training

    torch.set_num_threads(threads)
    if cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    hp = dict(models.DEFAULTS[arch])
    generator = torch.Generator(device=device).manual_seed(0)
    data = torch.randint(0, 256, (images, hp["image_size"], hp["image_size"], 3),
                         dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).to(device)
    labels = torch.randint(0, 10, (images,), generator=torch.Generator().manual_seed(1)).to(device)
    net = build_network(arch, 10, hp.get("width")).to(device, memory_format=torch.channels_last)
    if compile:
        net = torch.compile(net)
    warmup = images if (compile or cudnn_benchmark) else min(images, 2048)
    engine.train(net, data, labels, None, hp, 1, hp["lr"], generator, epoch_size=warmup)
    while time.time() < start_at:  # start the timed window together with the other runs
        time.sleep(0.01)
    if device == "cuda":
        torch.cuda.synchronize()
    training.reset_peak_memory(device)
    seen, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        log = engine.train(net, data, labels, None, hp, 1, hp["lr"], generator)
        seen += log["images_seen"]
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - began
    peak = training.peak_memory_gib(device) or {}  # the runs' own counter: the same figures
    return {"images_per_second": seen / elapsed, "peak_memory_gib": peak.get("allocated"),
            "peak_memory_reserved_gib": peak.get("reserved")}


def measure_concurrency(arch: str, device: str, level: int, seconds: float, images: int,
                        warmup_s: float = 30.0, cudnn_benchmark: bool | None = None,
                        compile: bool = False) -> dict:
    """``level`` runs at once, each in its own process; raises if any of them fails (a worker
    that dies, e.g. killed by the OS, raises ``BrokenProcessPool`` rather than hanging)."""
    threads = max(1, (os.cpu_count() or 1) // level)
    start_at = time.time() + warmup_s * (1 + level / 4)  # time to start, build and warm up every process
    pool = ProcessPoolExecutor(level, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(throughput_worker, arch, device, seconds, images, threads, start_at,
                               cudnn_benchmark, compile) for _ in range(level)]
        results = [future.result() for future in futures]
    finally:
        # done with the workers: end them now rather than wait for each to tear torch down
        # (as multiprocessing.Pool's exit does); a failed level frees its GPU memory for the next
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
    return {"concurrent_runs": level,
            "images_per_second_per_run": [round(r["images_per_second"], 1) for r in results],
            "images_per_second_total": round(sum(r["images_per_second"] for r in results), 1),
            "peak_memory_gib_per_run": [None if r["peak_memory_gib"] is None
                                        else round(r["peak_memory_gib"], 2) for r in results],
            "peak_memory_reserved_gib_per_run": [None if r["peak_memory_reserved_gib"] is None
                                                 else round(r["peak_memory_reserved_gib"], 2)
                                                 for r in results]}


def measure_variants(arch: str, device: str, seconds: float, images: int, progress=None) -> dict:
    """Images/s of one run under each of :data:`VARIANTS` (cudnn.benchmark and torch.compile on
    and off), a window of ``seconds`` each after a warm-up epoch; a variant that fails (e.g.
    torch.compile without a compiler) is reported with its error and left out of the choice.
    ``winner``: the fastest; ``speedup_over_default``: its rate over the default's. The engine's
    defaults are not changed here."""
    variants = {}
    for name, benchmark, compiled in VARIANTS:
        started = time.perf_counter()
        try:
            rate = measure_concurrency(arch, device, 1, seconds, images, warmup_s=0.0,
                                       cudnn_benchmark=benchmark, compile=compiled)
            variants[name] = {"cudnn_benchmark": benchmark, "compile": compiled,
                              "images_per_second": rate["images_per_second_total"],
                              "peak_memory_gib": rate["peak_memory_gib_per_run"][0],
                              "peak_memory_reserved_gib": rate["peak_memory_reserved_gib_per_run"][0]}
        except Exception as err:  # noqa: BLE001 - reported in the JSON, the other variants go on
            variants[name] = {"cudnn_benchmark": benchmark, "compile": compiled, "error": error_record(err)}
        variants[name]["seconds_with_warmup"] = round(time.perf_counter() - started, 1)
        if progress:
            progress(variants)
    measured = {k: v["images_per_second"] for k, v in variants.items() if "images_per_second" in v}
    winner = max(measured, key=measured.get) if measured else None
    default = measured.get(VARIANTS[0][0])
    return {"window_seconds": round(seconds, 1), "variants": variants, "winner": winner,
            "speedup_over_default": (round(measured[winner] / default, 3)
                                     if winner and default else None)}


def run_cells(device: str, deadline: float, data_dir=None, progress=None) -> dict:
    """One full-shape cell of each device-bound full-profile training path,
    one epoch each, until ``deadline``. A cell that crashes is reported with its error
    (``"error"``) and the next one runs; ``progress(cells)`` is called after each cell."""
    from . import dryrun, protocols
    from ..runs import training

    cells = {}
    # The GPU profiles' paths only: the laptop profile's network trains on CPUs.
    gpu_profiles = tuple(p for p in dryrun.DRY_RUN_PROFILES if p in protocols.GPU_PROFILES)
    runs = dryrun.dry_runs(data_dir, device=device, profiles=gpu_profiles, train_images=None,
                           test_per_class=None, network_budget={"epochs": 1}, device_bound_only=True)
    for run in runs:
        if time.time() > deadline:
            cells[run.path] = {"skipped": "out of time (raise --minutes)"}
            continue
        training.release_device_memory()  # the reserved peak is this cell's, not its predecessors' cache
        training.reset_peak_memory(device)
        started, cell = time.perf_counter(), {}
        try:
            record = training.execute(run.spec, data_dir=data_dir, n_jobs=4, evaluation=run.evaluation)
            problems = dryrun.missing_fields(run.spec, record)
        except Exception as err:  # noqa: BLE001 - reported in the JSON, the check goes on
            problems = [f"crashed: {type(err).__name__}: {err}"]
            cell["error"] = error_record(err)
        peak = training.peak_memory_gib(device) or {}
        cells[run.path] = {
            "seconds": round(time.perf_counter() - started, 2),
            "train_images": sum(run.spec.train_counts),
            "peak_memory_gib": None if peak.get("allocated") is None else round(peak["allocated"], 2),
            "peak_memory_reserved_gib": None if peak.get("reserved") is None else round(peak["reserved"], 2),
            "problems": problems, **cell}
        if progress:
            progress(cells)
    return cells


class _Check:
    """The result being built, its failed stages, and the file it is saved to after each stage."""

    def __init__(self, result: dict, out, began: float):
        self.result, self.out, self.began = result, Path(out) if out else None, began
        result["failed"], result["complete"] = [], False  # complete: every stage has run
        if self.out:
            result["out_file"] = str(self.out)

    def save(self) -> None:
        """Write the result so far; a file that cannot be written (no space, no permission) is
        said once in the result and on stderr, and the check goes on (its JSON is still
        printed at the end)."""
        if self.out and "out_file_error" not in self.result:
            from ..runs.store import atomic_write_json

            try:
                atomic_write_json(self.out, self.result)
            except OSError as err:
                self.result["out_file_error"] = f"{type(err).__name__}: {err}"
                print(f"gpucheck: cannot write {self.out} ({err}); the JSON is printed at the end",
                      file=sys.stderr, flush=True)

    def fail(self, stage: str, err: BaseException) -> dict:
        self.result["failed"].append(stage)
        return {"error": error_record(err)}

    def stage(self, stage: str, fn):
        """``fn()``'s value, or None when it raises (the error is recorded under ``errors``)."""
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - reported in the JSON, the check goes on
            self.result.setdefault("errors", {})[stage] = self.fail(stage, err)["error"]
            return None
        finally:
            self.save()


def gpucheck(minutes: float = 8.0, device: str = "cuda", arch: str = "resnet34",
             levels=(1, 2, 4), images: int = 12_000, cells: bool = True, data_dir=None,
             calibration=None, warmup_s: float = 30.0, out=None, variants: bool = True) -> dict:
    """Every stage above, within about ``minutes``; returns the JSON-ready result, also written
    to ``out`` (a path; None: not written) after each stage. ``result["failed"]`` names the
    stages that failed, each with its error in the JSON (``throughput`` levels and cells in
    place, the others under ``errors``). Raises only when ``device`` is cuda and torch sees no GPU."""
    import torch

    from ..learners import models
    from . import plan

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("gpucheck: torch sees no CUDA GPU here; run it on the GPU machine "
                           "(or --device cpu for a smoke test of the script itself)")
    began = time.time()
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = bf16_peak(name) if device == "cuda" else None
    result = {"device_name": name, "device": device, "arch": arch, "bf16_peak_tflops": peak,
              "environment": environment(device)}
    check = _Check(result, out, began)
    check.save()

    hp = models.DEFAULTS[arch]
    flops = check.stage("flops", lambda: training_flops_per_image(arch, hp["image_size"], hp.get("width")))
    result["training_flops_per_image"] = flops

    budget_s = minutes * 60
    seconds = max(2.0, 0.45 * budget_s / max(1, len(levels)) - warmup_s)
    throughput = result["throughput"] = []
    for level in levels:
        try:
            measured = measure_concurrency(arch, device, level, seconds, images, warmup_s)
            achieved = measured["images_per_second_total"] * flops / 1e12 if flops else None
            measured["tflops"] = round(achieved, 2) if achieved is not None else None
            measured["mfu_bf16"] = round(achieved / peak, 4) if peak and achieved is not None else None
        except Exception as err:  # noqa: BLE001 - reported in the JSON, the next level runs
            measured = {"concurrent_runs": level, **check.fail(f"throughput/{level}", err)}
        throughput.append(measured)
        mfus = [t["mfu_bf16"] for t in throughput if t.get("mfu_bf16") is not None]
        result["best_mfu_bf16"] = max(mfus) if mfus else None
        check.save()

    succeeded = [t for t in throughput if "error" not in t]
    if device == "cpu" and calibration is None:
        # A CPU check is a smoke test of the script, on a machine busy with other things: its
        # figure would stand as a steady-state one in the file plan reads by default.
        result["calibration_file"] = None
        result["calibration_skipped"] = ("--device cpu is a smoke test of the script: its figure is "
                                         "not written to the default calibration file (pass "
                                         "--calibration FILE to keep it)")
        check.save()
    elif succeeded:
        single = min(succeeded, key=lambda t: t["concurrent_runs"])
        figure = {"images_per_second": single["images_per_second_per_run"][0], "device_name": name,
                  "concurrent_runs": single["concurrent_runs"],
                  "aggregate_images_per_second": {str(t["concurrent_runs"]): t["images_per_second_total"]
                                                  for t in succeeded}}
        file = check.stage("calibration", lambda: plan.record_throughput(
            arch, device, figure, calibration, kind="steady"))
        result["calibration_file"] = str(file) if file else None
    else:
        result["calibration_file"] = None
        result["calibration_skipped"] = "no throughput level succeeded; the calibration file is unchanged"
        check.save()

    variants_s = max(2.0, VARIANTS_SHARE * budget_s / len(VARIANTS))
    if cells:
        def cells_progress(done):
            result["method_cells"] = done
            check.save()

        # the variants' windows come after the cells: leave them their share of the budget
        deadline = began + budget_s - (len(VARIANTS) * variants_s if variants and device == "cuda" else 0)
        done = check.stage("method_cells", lambda: run_cells(device, deadline, data_dir, cells_progress))
        if done is not None:
            result["method_cells"] = done
            for path, cell in done.items():
                if cell.get("problems"):
                    result["failed"].append(f"method_cells/{path}")
                elif "skipped" in cell:  # not a failure, but not measured either: listed
                    result.setdefault("skipped", []).append(f"method_cells/{path}")
            check.save()

    if variants and device != "cuda":
        result["variants"] = {"skipped": "cudnn.benchmark and torch.compile are measured on the GPU "
                                         "only (--device cuda); on the CPU torch.compile needs a C++ "
                                         "compiler and minutes, and cuDNN is not used"}
        check.save()
    elif variants:
        def variants_progress(done):
            result["variants"] = {"variants": done}
            check.save()

        chosen = check.stage("variants", lambda: measure_variants(arch, device, variants_s, images,
                                                                  variants_progress))
        if chosen is not None:
            result["variants"] = chosen
            if chosen["winner"] is None:
                result["failed"].append("variants")
            check.save()

    result["minutes_used"] = round((time.time() - began) / 60, 2)
    result["complete"] = True
    check.save()
    return result
