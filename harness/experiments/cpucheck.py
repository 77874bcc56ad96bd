"""The CPU's ceiling, and how near to it the engine trains (CPU MFU).

``python -m harness cpucheck`` prints one JSON:

* ``cpu``: model name, cores torch may use, the nominal clock, the vector ISA torch dispatches
  to (``torch.backends.cpu.get_cpu_capability()``) and whether the chip has native bf16 (the
  ``avx512_bf16`` or ``amx_bf16`` flag);
* ``peak_gflops``: the theoretical fp32 peak, cores x clock x FLOPs per cycle
  (:func:`flops_per_cycle`), and the bf16 one where the chip has native bf16 (None otherwise:
  torch then emulates bf16 and is two orders of magnitude slower, so the engine trains in fp32);
* ``matmul_gflops``: a large ``torch.matmul`` (``MATMUL_SIDE`` square, all cores, median of
  ``MATMUL_REPEATS``) in fp32 and in bf16: the measured ceiling that CPU MFU divides by;
* ``training``: per network, its training FLOPs per image (forward + backward, counted by
  torch), the engine's images/s on synthetic images, achieved GFLOP/s and MFU against the
  measured fp32 matmul ceiling.

Measured on the project's machine (docs/timings.md, "The CPU engine against the chip"); ``tests/test_engine_benchmarks.py``
keeps the MFU figure as a pytest-benchmark benchmark.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

MATMUL_SIDE = 2048      # rows = columns of the timed matmul: large enough to reach the ceiling
MATMUL_REPEATS = 5      # timed matmuls per dtype (after two warm-ups); the median is the figure
# Without native bf16, torch emulates it at ~1 GFLOP/s: a 2048 matmul would take a minute, and a
# 512 one shows the same rate in a fraction of a second.
EMULATED_BF16_SIDE = 512
# FP32 FLOPs per cycle per core: 2 FMA pipes x lanes x 2 (multiply and add). AMD Zen 2-4 have
# two 256-bit FMA pipes whether or not the ISA is AVX-512 (Zen 4 runs 512-bit ops as two
# halves): 2 x 8 x 2 = 32. Intel server cores with two 512-bit FMA units: 64. Generic AVX2: 32.
FP32_FLOPS_PER_CYCLE = {("AMD", "AVX2"): 32, ("AMD", "AVX512"): 32,
                        ("Intel", "AVX2"): 32, ("Intel", "AVX512"): 64}
# Native bf16 dot products (VDPBF16PS) run at twice the fp32 FMA rate.
BF16_RATE = 2


def cpuinfo(path: str = "/proc/cpuinfo") -> dict:
    """Model name, vendor, nominal MHz and flags of the first processor (empty where the file
    is absent, e.g. not Linux)."""
    info: dict = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return info
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return {"model": info.get("model name", "unknown"), "vendor": info.get("vendor_id", ""),
            "mhz": float(info["cpu MHz"]) if info.get("cpu MHz") else None,
            "flags": set(info.get("flags", "").split())}


def flops_per_cycle(vendor: str, capability: str) -> int | None:
    """FP32 FLOPs per cycle per core for the vendor (``AuthenticAMD``/``GenuineIntel``) and
    torch's CPU capability (``AVX2``, ``AVX512``, ...); None where the table has no entry."""
    brand = "AMD" if "AMD" in vendor else "Intel" if "Intel" in vendor else vendor
    isa = "AVX512" if capability.startswith("AVX512") else capability
    return FP32_FLOPS_PER_CYCLE.get((brand, isa))


def describe_cpu() -> dict:
    import torch

    info = cpuinfo()
    capability = torch.backends.cpu.get_cpu_capability()
    flags = info.get("flags", set())
    return {"model": info.get("model", "unknown"), "vendor": info.get("vendor", ""),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "nominal_mhz": info.get("mhz"), "torch_capability": capability,
            "native_bf16": bool({"avx512_bf16", "amx_bf16"} & flags),
            "avx512": "avx512f" in flags}


def theoretical_peak(cpu: dict) -> dict:
    """GFLOP/s at the nominal clock: cores x GHz x FLOPs per cycle, fp32 and (native only) bf16."""
    per_cycle = flops_per_cycle(cpu["vendor"], cpu["torch_capability"])
    if per_cycle is None or not cpu["nominal_mhz"]:
        return {"fp32": None, "bf16": None, "flops_per_cycle_fp32": per_cycle}
    fp32 = cpu["cores"] * cpu["nominal_mhz"] / 1e3 * per_cycle
    return {"fp32": round(fp32, 1), "bf16": round(fp32 * BF16_RATE, 1) if cpu["native_bf16"] else None,
            "flops_per_cycle_fp32": per_cycle}


def matmul_gflops(dtype: str = "float32", side: int = MATMUL_SIDE, repeats: int = MATMUL_REPEATS,
                  threads: int | None = None) -> float:
    """Median GFLOP/s of ``side`` x ``side`` matmuls in ``dtype`` on ``threads`` threads (all
    the process may use by default)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(side, side, generator=generator).to(getattr(torch, dtype))
    b = torch.randn(side, side, generator=generator).to(getattr(torch, dtype))
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * side ** 3 / statistics.median(times) / 1e9


def training_gflops(arch: str, width: int | None, image_size: int, batch_size: int = 128,
                    steps: int = 12, threads: int | None = None) -> dict:
    """The engine's training rate of ``arch`` on synthetic images: images/s (after one warm-up
    epoch of the same size) and achieved GFLOP/s."""
    import numpy as np
    import torch

    from ..learners import engine
    from ..nn.networks import build_network
    from .frontier import training_settings
    from .gpucheck import training_flops_per_image

    if threads is not None:
        torch.set_num_threads(threads)
    flops = training_flops_per_image(arch, image_size, width)
    rng = np.random.default_rng(0)
    n = batch_size * steps
    x = torch.from_numpy(rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, n))
    hp = dict(training_settings(image_size), batch_size=batch_size)  # the frontier's recipe
    torch.manual_seed(0)
    net = build_network(arch, 10, width).to(memory_format=torch.channels_last)
    engine.train(net, x, y, None, hp, 1, hp["lr"], torch.Generator().manual_seed(0))  # warm-up
    log = engine.train(net, x, y, None, hp, 1, hp["lr"], torch.Generator().manual_seed(1))
    ips = log["images_per_second"]
    return {"arch": arch, "width": width, "image_size": image_size, "batch_size": batch_size,
            "training_flops_per_image": flops, "images_per_second": round(ips, 1),
            "gflops": round(ips * flops / 1e9, 2)}


# The networks the check times: today's quick CNN and the laptop profile's network.
TRAINING_CASES = (("small_cnn", 16, 16), ("airbench_cnn", 16, 32))


def check(cases=TRAINING_CASES, side: int = MATMUL_SIDE) -> dict:
    """The whole check as one dict (module docstring)."""
    cpu = describe_cpu()
    bf16_side = side if cpu["native_bf16"] else min(side, EMULATED_BF16_SIDE)
    measured = {"float32": round(matmul_gflops("float32", side), 1),
                "bfloat16": round(matmul_gflops("bfloat16", bf16_side), 1)}
    training = []
    for arch, width, image_size in cases:
        row = training_gflops(arch, width, image_size)
        row["mfu_vs_fp32_matmul"] = round(row["gflops"] / measured["float32"], 3)
        training.append(row)
    return {"cpu": cpu, "peak_gflops": theoretical_peak(cpu), "matmul_gflops": measured,
            "matmul_side": {"float32": side, "bfloat16": bf16_side}, "training": training}
