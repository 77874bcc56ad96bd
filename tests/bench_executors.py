"""Executor benchmarks (a timed script, not a test: run it on an idle machine).

    python -m tests.bench_executors [--rounds 3] [--runs 20] [--model xgboost|small_cnn]

1. Overhead per run of the ``gpus`` and ``slurm-local`` executors against ``local`` on a grid of
   quick runs (XGBoost on Adult, the quick profile's tabular runs, ~0.4 s each; or with
   ``--model small_cnn`` the quick CIFAR-10 CNN runs of takeaway 1, ~7 s each), two slots each (``gpus``
   pins slot processes to GPU "0", which does nothing on the CPU), every executor started fresh
   in each round (process start-up included).
2. Scaling of independent single-thread tabular runs: a pool of 2 workers against a pool of 1
   on 2 cores, both warmed up first (each worker has imported the harness and loaded Adult), so
   the ratio measures the runs, not process start-up.

Prints the median and the range over rounds, and the ratios the issue's targets name (overhead
within 10% of local; 2 workers >= 1.7x over 1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial

from harness.data import imbalance
from harness.runs.executors import GpuSlotsExecutor, ProcessPoolExecutor, make_executor
from harness.runs.runner import execute_spec
from harness.runs.spec import make_spec


def grid(runs: int, model: str = "xgboost"):
    if model == "small_cnn":  # the quick profile's takeaway-1 CNN cells
        from harness.experiments import protocols

        cfg = protocols.arm_config("quick", "t1-cifar10-nn")
        seeds = range(runs // len(cfg.train_ratios) + 1)
        return list(protocols.grid_specs(cfg, seeds, device="cpu").values())[:runs]
    ratios = (0.02, 0.05, 0.1, 0.3, 1.0)
    return [make_spec("adult", "xgboost", "erm", imbalance.binary_counts(10_000, r), ratios, seed)
            for seed in range(runs // len(ratios) + 1) for r in ratios][:runs]


def timed(build, specs, warm_up: int = 0) -> float:
    executor = build()
    if warm_up:  # one short run per worker first, untimed
        list(executor.submit_all(partial(execute_spec, n_jobs=1), specs[:warm_up]))
    started = time.perf_counter()
    try:
        outcomes = list(executor.submit_all(partial(execute_spec, n_jobs=1), specs))  # no heartbeats
    finally:
        executor.close()
    assert all(error is None for _, _, error in outcomes), outcomes
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--scaling-runs", type=int, default=40)
    parser.add_argument("--model", default="xgboost", choices=("xgboost", "small_cnn"))
    args = parser.parse_args()
    specs = grid(args.runs, args.model)
    jobs = tempfile.mkdtemp(prefix="bench-jobs-")
    overhead = {  # fresh executors: process start-up is part of what each one costs
        "local (2 workers)": lambda: make_executor("local", workers=2),
        "gpus (2 slots)": lambda: GpuSlotsExecutor(["0"], runs_per_gpu=2),
        "slurm-local (2 jobs)": lambda: make_executor("slurm-local", workers=2, folder=jobs),
    }
    scaling = {"pool of 1 worker": lambda: ProcessPoolExecutor(1),
               "pool of 2 workers": lambda: ProcessPoolExecutor(2)}
    scaling_specs = grid(args.scaling_runs)
    times = {name: [] for name in [*overhead, *scaling]}
    for _ in range(args.rounds):
        for name, build in overhead.items():  # interleaved, so drift hits every executor alike
            times[name].append(timed(build, specs))
        for name, build in scaling.items():
            times[name].append(timed(build, scaling_specs, warm_up=2))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"overhead grid: {args.model} quick runs; scaling grid: XGBoost on Adult, 10,000 rows; "
          f"1 thread per run; {args.rounds} rounds; medians")
    for name, t in times.items():
        n = len(specs) if name in overhead else len(scaling_specs)
        print(f"  {name:22} {n} runs: median {median[name]:6.2f} s  range {min(t):.2f}-{max(t):.2f} s"
              f"  ({median[name] / n:.3f} s per run)")
    base = median["local (2 workers)"]
    for name in ("gpus (2 slots)", "slurm-local (2 jobs)"):
        print(f"  overhead of {name} over local (2 workers): {100 * (median[name] / base - 1):+.1f}% "
              "(target: within 10%)")
    print(f"  2 workers over 1: {median['pool of 1 worker'] / median['pool of 2 workers']:.2f}x "
          "(target: >= 1.7x)")


if __name__ == "__main__":
    main()
