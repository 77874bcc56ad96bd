"""A GPU check ready to run: throughput, MFU, every full-profile method once, calibration for plan.

``python -m harness gpucheck --minutes 8`` on one GPU:

1. counts the FLOPs of one ResNet-34 training image (forward + backward, CIFAR stem, 32 px) with
   ``torch.utils.flop_counter``;
2. trains ResNet-34 with the harness's own engine (the same step the runs use: bf16 autocast,
   channels_last, augmentation on the device) on synthetic images, 1, 2 and 4 runs at once in
   separate processes, and reports images/s per run and in aggregate, MFU against the card's
   dense bf16 peak, and each run's peak memory;
3. runs one full-shape cell of every training path of the full profile (the dry run's paths, at
   the arm's own training-set size, one epoch) and records seconds and peak memory of each;
4. writes the single-run throughput to the calibration file that ``python -m harness plan``
   reads, and prints everything as one JSON.

Concurrent runs start together and each measures its own steady state after one warm-up epoch;
the aggregate is the sum of those rates over windows that overlap (all start together and run
equally long).
"""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets; the first name that occurs in
# torch.cuda.get_device_name() wins, so more specific names come first.
BF16_PEAK_TFLOPS = [
    ("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("GH200", 989.4),
    ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0),
    ("RTX 4090", 165.2), ("RTX 3090", 71.0), ("A6000", 154.8),
]


def bf16_peak(name: str) -> float | None:
    for key, peak in BF16_PEAK_TFLOPS:
        if key in name:
            return peak
    return None


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
                      start_at: float) -> dict:
    """Train ``arch`` with the engine on synthetic images for ``seconds`` after a warm-up epoch;
    images/s and peak memory. Runs in its own process."""
    import torch

    from ..learners import engine, models
    from ..nn.networks import build_network

    torch.set_num_threads(threads)
    hp = dict(models.DEFAULTS[arch])
    generator = torch.Generator(device=device).manual_seed(0)
    data = torch.randint(0, 256, (images, hp["image_size"], hp["image_size"], 3),
                         dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).to(device)
    labels = torch.randint(0, 10, (images,), generator=torch.Generator().manual_seed(1)).to(device)
    net = build_network(arch, 10, hp.get("width")).to(device, memory_format=torch.channels_last)
    engine.train(net, data, labels, None, hp, 1, hp["lr"], generator, epoch_size=min(images, 2048))
    while time.time() < start_at:  # start the timed window together with the other runs
        time.sleep(0.01)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seen, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        log = engine.train(net, data, labels, None, hp, 1, hp["lr"], generator)
        seen += log["images_seen"]
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"images_per_second": seen / elapsed, "peak_memory_gib": peak}


def measure_concurrency(arch: str, device: str, level: int, seconds: float, images: int,
                        warmup_s: float = 30.0) -> dict:
    context = multiprocessing.get_context("spawn")
    import os

    threads = max(1, (os.cpu_count() or 1) // level)
    start_at = time.time() + warmup_s * (1 + level / 4)  # time to start, build and warm up every process
    with context.Pool(level) as pool:
        results = pool.starmap(throughput_worker,
                               [(arch, device, seconds, images, threads, start_at)] * level)
    return {"concurrent_runs": level,
            "images_per_second_per_run": [round(r["images_per_second"], 1) for r in results],
            "images_per_second_total": round(sum(r["images_per_second"] for r in results), 1),
            "peak_memory_gib_per_run": [None if r["peak_memory_gib"] is None
                                        else round(r["peak_memory_gib"], 2) for r in results]}


def run_cells(device: str, deadline: float, data_dir=None) -> dict:
    """One full-shape cell of each full-profile training path, one epoch each, until ``deadline``."""
    import torch

    from . import dryrun
    from ..runs import training

    cells = {}
    runs = dryrun.dry_runs(data_dir, device=device, train_images=None, test_per_class=None,
                           network_budget={"epochs": 1, "simclr_epochs": 1})
    for run in runs:
        if time.time() > deadline:
            cells[run.path] = {"skipped": "out of time (raise --minutes)"}
            continue
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        try:
            record = training.execute(run.spec, data_dir=data_dir, n_jobs=4, budget=dict(run.budget))
            problems = dryrun.missing_fields(run.spec, record)
        except Exception as err:  # noqa: BLE001 - reported in the JSON, the check goes on
            problems = [f"crashed: {type(err).__name__}: {err}"]
        cells[run.path] = {
            "seconds": round(time.perf_counter() - started, 2),
            "train_images": sum(run.spec.train_counts),
            "peak_memory_gib": (round(torch.cuda.max_memory_allocated() / 2**30, 2)
                                if device == "cuda" else None),
            "problems": problems}
    return cells


def gpucheck(minutes: float = 8.0, device: str = "cuda", arch: str = "resnet34",
             levels=(1, 2, 4), images: int = 12_000, cells: bool = True, data_dir=None,
             calibration=None, warmup_s: float = 30.0) -> dict:
    """Everything above, within about ``minutes``; returns the JSON-ready result."""
    import torch

    from ..learners import models
    from . import plan

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("gpucheck: torch sees no CUDA GPU here; run it on the GPU machine "
                           "(or --device cpu for a smoke test of the script itself)")
    began = time.time()
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = bf16_peak(name) if device == "cuda" else None
    hp = models.DEFAULTS[arch]
    flops = training_flops_per_image(arch, hp["image_size"], hp.get("width"))
    budget_s = minutes * 60
    seconds = max(2.0, 0.45 * budget_s / max(1, len(levels)) - warmup_s)
    throughput = []
    for level in levels:
        result = measure_concurrency(arch, device, level, seconds, images, warmup_s)
        achieved = result["images_per_second_total"] * flops / 1e12
        result["tflops"] = round(achieved, 2)
        result["mfu_bf16"] = round(achieved / peak, 4) if peak else None
        throughput.append(result)
    single = throughput[0]["images_per_second_per_run"][0]
    calibration_file = plan.record_throughput(
        arch, device, {"images_per_second": single, "device_name": name,
                       "aggregate_images_per_second": {str(t["concurrent_runs"]): t["images_per_second_total"]
                                                       for t in throughput}}, calibration)
    result = {"device_name": name, "device": device, "arch": arch,
              "bf16_peak_tflops": peak, "training_flops_per_image": flops,
              "throughput": throughput,
              "best_mfu_bf16": max((t["mfu_bf16"] or 0) for t in throughput) if peak else None,
              "calibration_file": str(calibration_file)}
    if cells:
        result["method_cells"] = run_cells(device, began + budget_s, data_dir)
    result["minutes_used"] = round((time.time() - began) / 60, 2)
    result["torch"] = torch.__version__
    result["numpy"] = np.__version__
    return result
