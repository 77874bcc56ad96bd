"""Plan a selection before training it: unique runs per arm, how many the store holds, and cost.

Cost comes from throughput figures, one per (model, device kind): images per second for the
networks (forward + backward, as the engine's training log reports them) and seconds per
10,000-row run for the tabular models. Figures measured on this hardware
(``python -m harness throughput`` or ``python -m harness gpucheck``) are kept in a calibration
file (default ``.cache/calibration.json``, or ``$IMBALANCE_CALIBRATION``) and override the
defaults below, which are labelled *assumed* with their source.

A run's cost is its work in image passes (its method's training and post-training passes, which
each method declares: SAM's second pass, SimCLR's two views; Hessian-vector products, the test
sets) over that throughput. Runs that share one trained
model (:func:`harness.runs.spec.training_key`: a post-hoc method and ERM, or runs differing only
in their test sets or measurements) pay for its training once. The figures are estimates for
planning, not promises: the progress display rescales its ETA by the speed it observes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
from pathlib import Path

from ..data import DEFAULT_CACHE_DIR
from .. import methods
from ..runs.spec import RunSpec, base_settings, training_key
from ..runs.store import ResultStore, atomic_write_json

CALIBRATION_ENV = "IMBALANCE_CALIBRATION"
DEFAULT_CALIBRATION = DEFAULT_CACHE_DIR / "calibration.json"

# (model, device kind) -> figure: "images_per_second" for the image networks,
# "seconds_per_10k_rows" for the tabular models (cost grows with the rows), "seconds_per_run"
# for the toy MLP (fixed size).
ASSUMED = {
    ("resnet34", "cuda"): {"images_per_second": 11_000, "source": "assumed: published CIFAR "
                           "ResNet-34 throughput, ~3.5 A100-minutes per 12,000-image 200-epoch run"},
    ("resnet34", "cpu"): {"images_per_second": 20, "source": "assumed: measured once on a 2-core "
                          "AMD EPYC VM (64-image batches, 2 threads)"},
    ("small_cnn", "cuda"): {"images_per_second": 40_000, "source": "assumed: small CNN at 16 px, "
                            "bounded by per-step overhead on any GPU"},
    ("small_cnn", "cpu"): {"images_per_second": 9_000, "source": "assumed: measured on the "
                           "project's 2-core CI machine (16 px, width 16, 1 thread per run)"},
    ("airbench_cnn", "cpu"): {"images_per_second": 1_480, "source": "assumed: measured on the "
                              "project's 2-core AMD EPYC Zen 4 VM on 2026-12-07, two runs at once "
                              "as --workers=auto trains them, 1 thread each (python -m harness "
                              "throughput --arch airbench_cnn --threads 1; a Zen 3 VM gave 750)"},
    ("airbench_cnn", "cuda"): {"images_per_second": 20_000, "source": "assumed: not measured; a "
                               "small CNN on a GPU, bounded by per-step overhead"},
    ("mlp2d", "cpu"): {"seconds_per_run": 3.0, "source": "assumed: toy MLP on 420 points"},
    ("xgboost", "cpu"): {"seconds_per_10k_rows": 0.45, "source": "assumed: measured on a 2-core AMD "
                         "EPYC VM (100 trees on 10,000 Adult rows, 1 thread; tests/bench_executors.py)"},
    ("linear_svm", "cpu"): {"seconds_per_10k_rows": 0.8, "source": "assumed: LinearSVC primal on 10,000 rows"},
}
RUN_OVERHEAD_S = 0.5  # building the model and writing the record, per run (data is cached per process)
EVAL_PASSES = 3_000   # test-set predictions, in training-image equivalents (forward only ~ 1/3)


def calibration_path(path=None) -> Path:
    return Path(path or os.environ.get(CALIBRATION_ENV) or DEFAULT_CALIBRATION)


def load_calibration(path=None) -> dict:
    """Throughput figures: the defaults, overridden by the calibration file's measured ones.
    Keys are ``"model/device"``; each value has its figure, ``source``, ``measured`` and, for a
    measured one, its ``kind`` (:func:`figure_kind`)."""
    figures = {f"{m}/{d}": dict(v, measured=False) for (m, d), v in ASSUMED.items()}
    file = calibration_path(path)
    if file.is_file():
        try:
            stored = json.loads(file.read_text())
        except ValueError as err:
            raise ValueError(f"calibration file {file} is not JSON ({err}); delete it or rerun "
                             "python -m harness throughput") from None
        for key, value in stored.get("throughput", {}).items():
            if per_slot_threads_differ(key, value):
                kept = figures.get(key)
                if kept is not None:  # else the key has no figure and its runs are flagged
                    figures[key] = dict(kept, source=f"{kept['source']}; the calibration file's "
                                        f"{value['images_per_second']:,.0f} images/s was measured at "
                                        f"{value['threads']} threads, not the one per CPU slot the "
                                        "suite trains with: not used (rerun python -m harness "
                                        "throughput with --threads 1)")
                continue
            figures[key] = dict(value, measured=True, kind=figure_kind(value))
    return figures


# The local executor gives each CPU slot one thread (--workers=auto: one per core), so a CPU
# network's images/s prices the suite only if it was measured at one thread; a 2-thread figure
# on a 2-core machine is ~1.8x one slot's and would price the run that much too low.
CPU_SLOT_THREADS = 1


def per_slot_threads_differ(key: str, figure: dict) -> bool:
    """True for a CPU images/s figure recorded at a thread count other than one CPU slot's."""
    return (key.endswith("/cpu") and "images_per_second" in figure
            and figure.get("threads", CPU_SLOT_THREADS) != CPU_SLOT_THREADS)


# The kinds of measured figure. A steady-state figure (python -m harness gpucheck: images/s over
# a synchronized window after a warm-up epoch) is what a 200-epoch run sustains; a cold one
# (python -m harness throughput: the first epoch(s) of a freshly built model, start-up, cuDNN
# and allocator warm-up included) understates it, so it never replaces a steady one unless forced.
FIGURE_KINDS = {"steady": "steady state after a warm-up epoch (gpucheck)",
                "cold": "first epochs from cold, start-up included (throughput)"}


class SteadyFigureKept(ValueError):
    """A cold figure was not recorded over a steady-state one (see :func:`record_throughput`)."""


def figure_kind(figure: dict) -> str:
    """``"steady"`` or ``"cold"``: the figure's ``kind``; for one written before kinds were
    recorded, steady if gpucheck wrote it (it alone records ``aggregate_images_per_second``)."""
    kind = figure.get("kind")
    if kind in FIGURE_KINDS:
        return kind
    return "steady" if "aggregate_images_per_second" in figure else "cold"


def record_throughput(model: str, device: str, figure: dict, path=None, kind: str = "steady",
                      force: bool = False) -> Path:
    """Add a measured figure (``images_per_second``, ``seconds_per_10k_rows`` or
    ``seconds_per_run``) to the calibration file under ``"model/device"``, with its ``kind``
    (``"steady"`` or ``"cold"``, :data:`FIGURE_KINDS`), the device name, host and date.

    A cold figure does not replace a steady-state one (gpucheck's) of the same key unless
    ``force``: it raises :class:`SteadyFigureKept` and leaves the file as it was. Any other
    combination replaces the stored figure."""
    if kind not in FIGURE_KINDS:
        raise ValueError(f"calibration figure kind must be one of {sorted(FIGURE_KINDS)}; got {kind!r}")
    file = calibration_path(path)
    stored = json.loads(file.read_text()) if file.is_file() else {}
    key = f"{model}/{device}"
    old = stored.get("throughput", {}).get(key)
    if old is not None and kind == "cold" and figure_kind(old) == "steady" and not force:
        rate = old.get("images_per_second")
        raise SteadyFigureKept(
            f"calibration file {file} keeps {key}'s steady-state figure"
            f"{f' ({rate:,} images/s)' if rate is not None else ''}, {old.get('source', '')}; a cold "
            "first-epoch figure does not replace it (force it: python -m harness throughput "
            "--force-calibration)")
    stored.setdefault("throughput", {})[key] = {
        **figure, "kind": kind,
        "source": f"measured on {platform.node()} ({figure.get('device_name', device)}) "
                  f"{dt.date.today().isoformat()}, {FIGURE_KINDS[kind]}"}
    atomic_write_json(file, stored)
    return file


def device_kind(spec: RunSpec) -> str:
    return "cuda" if spec.device == "cuda" else "cpu"


def image_passes(spec: RunSpec, trains: bool = True) -> float:
    """Work of one network run in training-image passes (forward + backward of one image);
    without the training itself when ``trains`` is False (its model is trained by another run).

    The method declares its training and post-training work
    (:meth:`harness.methods.Method.training_passes`, ``post_training_passes``); the network's
    measurements and the test sets are added here."""
    hp, settings, measured = (dict(section) for section in (spec.hyperparameters, spec.settings,
                                                            spec.measurements))
    n = sum(spec.train_counts)
    # a method defined outside the harness is imported by its path (plan reads specs collected
    # in a child pytest, which registered it)
    method = methods.for_spec(spec.method, spec.method_version, spec.method_path)
    if trains:  # a post-hoc method's model trains as its base method
        base = methods.get(method.trains_like) if method.trains_like else None
        work = (base.training_passes(n, hp["epochs"], base_settings(spec, base)) if base
                else method.training_passes(n, hp["epochs"], settings))
    else:
        work = 0.0
    work += method.post_training_passes(n, settings)
    if measured.get("hessian_top_k"):
        samples = min(measured["hessian_samples"], n)
        # ~30 Lanczos Hessian-vector products, each ~3 training passes (a backward pass through
        # the retained gradient graph: 0.23 s for 500 quick images against 0.086 s per pass)
        work += 3 * 30 * samples
        work += measured["loss_directions"] * 11 * samples / 3
    return work + EVAL_PASSES


def estimate_seconds(spec: RunSpec, figures: dict, trains: bool = True) -> tuple[float, str]:
    """Seconds one run takes on one slot of its device, and the figure used (``"model/device"``);
    ``trains=False``: a run whose model another run trains (what it adds to that run)."""
    kind = device_kind(spec)
    key = f"{spec.model}/{kind}"
    figure = figures.get(key)
    if figure is None or (not trains and "images_per_second" not in figure):
        return RUN_OVERHEAD_S, key  # a user's model without a figure, or prediction only
    if "images_per_second" in figure:
        return RUN_OVERHEAD_S + image_passes(spec, trains) / figure["images_per_second"], key
    if "seconds_per_10k_rows" in figure:
        rows = sum(spec.train_counts)
        return RUN_OVERHEAD_S + figure["seconds_per_10k_rows"] * max(rows, 1_000) / 10_000, key
    return figure["seconds_per_run"], key


def gpu_sharing(figures: dict, runs_per_gpu: int, used: set[str]) -> dict:
    """How much faster one GPU gets through the GPU runs with ``runs_per_gpu`` of them at once
    (``--executor=gpus --runs-per-gpu K``): the measured aggregate images/s at K concurrent runs
    (``gpucheck`` records 1, 2 and 4) over the single-run figure, for each GPU model's figure in
    ``used``; 1 (one at a time) where K is 1 or no aggregate was measured at K. Returns
    ``runs_per_gpu``, ``speedup`` (the smallest over the models used: a plan must not promise
    more than its slowest model gets) and ``source``."""
    speedups, missing = [], []
    for key in sorted(k for k in used if k.endswith("/cuda") and k in figures):
        figure = figures[key]
        aggregate = (figure.get("aggregate_images_per_second") or {}).get(str(runs_per_gpu))
        if runs_per_gpu > 1 and aggregate and figure.get("images_per_second"):
            speedups.append(aggregate / figure["images_per_second"])
        elif runs_per_gpu > 1:
            missing.append(key)
    # the concurrency with the most aggregate images/s, per GPU model: the --runs-per-gpu to use
    best = {key: max(agg, key=agg.get)
            for key, agg in ((k, figures[k].get("aggregate_images_per_second") or {})
                             for k in sorted(used) if k.endswith("/cuda") and k in figures) if agg}
    speedup = min(speedups) if speedups and not missing else 1.0
    if runs_per_gpu == 1:
        source = "one run at a time per GPU (--runs-per-gpu 1)"
    elif missing:
        source = (f"--runs-per-gpu {runs_per_gpu}: no aggregate figure measured at {runs_per_gpu} "
                  f"concurrent runs for {', '.join(missing)} (python -m harness gpucheck measures "
                  "1, 2 and 4); counted as one run at a time")
    else:
        source = (f"--runs-per-gpu {runs_per_gpu}: {speedup:.2f}x the single-run throughput, the "
                  "aggregate gpucheck measured at that many concurrent runs")
    return {"runs_per_gpu": runs_per_gpu, "speedup": round(speedup, 3), "source": source,
            "best_measured": {k: int(v) for k, v in best.items()}}


def build_plan(arms: list[tuple[str, str, list[RunSpec]]], store: ResultStore,
               figures: dict, errors: dict | None = None, runs_per_gpu: int = 1) -> dict:
    """The plan of a selection.

    Parameters
    ----------
    arms : list of (profile, arm, specs)
        In selection order; a run listed by several arms is counted once, in the first.
    store : ResultStore
    figures : dict
        From :func:`load_calibration`.
    errors : dict, optional
        ``"profile/arm"`` -> why its specs could not be built (missing data, ...).
    runs_per_gpu : int
        GPU runs sharing one GPU (``--runs-per-gpu``): GPU time is divided by the speedup
        measured for it (:func:`gpu_sharing`; none without a measured aggregate figure).
    """
    seen: set[str] = set()
    trained: set[str] = set()  # training keys of the runs to train so far: each model trains once
    by_arm, used = {}, set()
    arm_seconds = {}  # "profile/arm" -> seconds by device kind, one run at a time
    totals = {"cuda": 0.0, "cpu": 0.0}
    runs_stored = 0
    for profile, arm, specs in arms:
        unique = {s.key: s for s in specs}
        new = [s for k, s in unique.items() if k not in seen]
        seen.update(unique)
        stored = [s for s in new if store.run_path(s.key).is_file()]
        runs_stored += len(stored)
        todo = [s for s in new if not store.run_path(s.key).is_file()]
        seconds = {"cuda": 0.0, "cpu": 0.0}
        for spec in todo:
            model = training_key(spec)
            s, key = estimate_seconds(spec, figures, trains=model not in trained)
            trained.add(model)
            seconds[device_kind(spec)] += s
            used.add(key)
        for kind in totals:
            totals[kind] += seconds[kind]
        arm_seconds[f"{profile}/{arm}"] = seconds
        first = unique[next(iter(unique))] if unique else None
        by_arm[f"{profile}/{arm}"] = {
            "profile": profile, "arm": arm,
            "dataset": first.dataset if first else "", "model": first.model if first else "",
            "device": device_kind(first) if first else "",
            "runs": len(unique), "shared_with_earlier_arms": len(unique) - len(new),
            "stored": len(stored), "to_train": len(todo),
        }
    # GPU time shares the GPU as the whole selection does (the speedup of the models it uses)
    sharing = gpu_sharing(figures, runs_per_gpu, used)
    for name, seconds in arm_seconds.items():
        by_arm[name]["estimated_gpu_hours"] = round(seconds["cuda"] / sharing["speedup"] / 3600, 3)
        by_arm[name]["estimated_cpu_hours"] = round(seconds["cpu"] / 3600, 3)
    totals["cuda"] /= sharing["speedup"]
    for key, why in (errors or {}).items():
        by_arm[key] = {"error": why}
    return {
        "runs_total": len(seen), "runs_stored": runs_stored, "runs_to_train": len(seen) - runs_stored,
        # GPU and CPU time apart: an hour of one is not an hour of the other
        "estimated_gpu_hours": round(totals["cuda"] / 3600, 3),
        "estimated_cpu_hours": round(totals["cpu"] / 3600, 3),
        "by_arm": by_arm,
        "gpu_sharing": sharing,
        "throughput": {k: figures[k] for k in sorted(used) if k in figures},
        # a model (e.g. one registered by a user) with no figure for its device: 0.5 s per run
        "without_figure": sorted(k for k in used if k not in figures),
        "store": str(store.root),
    }


SEQUENTIAL_ASSUMPTION = ("expected: each arm at the expected seeds of one claim whose true "
                         "effect is the fixed 5-seed design's minimal detectable effect (80% "
                         "power); worst case: every claim to its arm's maximum")


def sequential_plan(arms: list[tuple[str, str, list[RunSpec]]], looks: dict, seed_offset: int,
                    store: ResultStore, figures: dict, errors: dict | None = None,
                    runs_per_gpu: int = 1) -> dict:
    """The plan of a selection some of whose arms have sequential seeds (``--seeds=auto``).

    ``arms`` hold every spec up to each arm's maximum; ``looks`` maps ``(profile, arm)`` of the
    sequential ones to ``(looks, expected_seeds)``. The plan's own figures are the first look's
    (what a session costs at least, and what fixed seeds cost); ``sequential`` adds the
    expected and the worst case (:data:`SEQUENTIAL_ASSUMPTION`) and each arm's looks. Without
    sequential arms it is :func:`build_plan`'s."""
    def up_to(seeds_of):
        return [(p, a, [s for s in specs if s.seed < seed_offset + seeds_of((p, a))])
                for p, a, specs in arms]

    first = build_plan(up_to(lambda key: looks[key][0][0] if key in looks else math.inf),
                       store, figures, errors, runs_per_gpu)
    if not looks:
        return first
    expected = build_plan(up_to(lambda key: math.ceil(looks[key][1]) if key in looks else math.inf),
                          store, figures, errors, runs_per_gpu)
    worst = build_plan(arms, store, figures, errors, runs_per_gpu)

    def totals(plan):
        return {k: plan[k] for k in ("runs_total", "runs_to_train", "estimated_gpu_hours",
                                     "estimated_cpu_hours")}

    first["sequential"] = {
        "assumption": SEQUENTIAL_ASSUMPTION, "first_look": totals(first),
        "expected": totals(expected), "worst_case": totals(worst),
        "arms": {f"{p}/{a}": {"looks": list(lk), "expected_seeds": round(e, 1)}
                 for (p, a), (lk, e) in looks.items()}}
    first["throughput"], first["gpu_sharing"] = worst["throughput"], worst["gpu_sharing"]
    first["without_figure"] = worst["without_figure"]
    return first


def duration(hours: float, unit: str = "") -> str:
    """``hours`` as a person reads them: hours from one hour up, minutes below (a quick plan's
    arms take minutes, which "0.01 hours" hides). ``unit`` names what is counted: "GPU" gives
    "20.43 GPU-hours" / "14.1 GPU-minutes"; without it, "20.43 h" / "14.1 min"."""
    if hours >= 1:
        return f"{hours:.2f} {unit}-hours" if unit else f"{hours:.2f} h"
    minutes = hours * 60
    text = f"{minutes:.1f}" if minutes >= 0.05 or minutes == 0 else "< 0.1"
    return f"{text} {unit}-minutes" if unit else f"{text} min"


def cost_text(totals: dict) -> str:
    """A plan's (or one of its cases') GPU and CPU cost, e.g. "38.6 GPU-minutes + 6.7
    CPU-minutes". A part that costs nothing is left out ("0.00 GPU-hours" on a CPU-only plan
    says nothing)."""
    costs = [duration(hours, kind) for kind, hours in (("GPU", totals["estimated_gpu_hours"]),
                                                       ("CPU", totals["estimated_cpu_hours"]))
             if hours > 0]
    return " + ".join(costs) or "nothing to train"


def format_plan(plan: dict) -> str:
    """The plan as a table a person reads before launching."""
    rows = [("arm", "device", "runs", "shared", "stored", "to train", "est. time")]
    errors = []
    for name, arm in plan["by_arm"].items():
        if "error" in arm:
            errors.append(f"  {name}: {arm['error']}")
            continue
        rows.append((name, arm["device"], str(arm["runs"]), str(arm["shared_with_earlier_arms"]),
                     str(arm["stored"]), str(arm["to_train"]),
                     duration(arm["estimated_gpu_hours" if arm["device"] == "cuda" else "estimated_cpu_hours"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("-" * len(lines[0]))
    lines.append(f"unique runs: {plan['runs_total']} ({plan['runs_stored']} in the store "
                 f"{plan['store']}, {plan['runs_to_train']} to train)")
    sharing = plan.get("gpu_sharing", {"runs_per_gpu": 1, "speedup": 1.0, "best_measured": {}})
    per_gpu = ("one run at a time per GPU" if sharing["speedup"] == 1.0 else
               f"{sharing['runs_per_gpu']} runs at a time per GPU, {sharing['speedup']:.2f}x measured")
    lines.append(f"estimated cost: {cost_text(plan)} ({per_gpu}, one run "
                 "per CPU slot; divide by the GPUs and slots you run)")
    if sharing["runs_per_gpu"] > 1 and sharing["speedup"] == 1.0:
        lines.append(f"  ({sharing['source']})")
    for key, k in sharing.get("best_measured", {}).items():
        lines.append(f"  {key}: gpucheck measured the most images/s at --runs-per-gpu {k}")
    sequential = plan.get("sequential")
    if sequential:
        lines.append(f"sequential seeds on {len(sequential['arms'])} arm(s); the "
                     "figures above are the first look's:")
        for name, case in (("expected", "expected"), ("worst case", "worst_case")):
            c = sequential[case]
            lines.append(f"  {name}: {c['runs_total']} unique runs ({c['runs_to_train']} to train), "
                         f"{cost_text(c)}")
        lines.append(f"  ({sequential['assumption']})")
        for arm, a in sequential["arms"].items():
            lines.append(f"  {arm}: looks at {', '.join(map(str, a['looks']))} seeds, expected "
                         f"{a['expected_seeds']:g}")
    if plan["throughput"]:
        lines.append("throughput figures used:")
        for key, fig in plan["throughput"].items():
            value = (f"{fig['images_per_second']:,.0f} images/s" if "images_per_second" in fig
                     else f"{fig['seconds_per_10k_rows']:.2f} s per 10,000 rows"
                     if "seconds_per_10k_rows" in fig else f"{fig['seconds_per_run']:.2f} s per run")
            lines.append(f"  {key}: {value} ({'measured' if fig['measured'] else 'assumed'}; "
                         f"{fig['source'].removeprefix('assumed: ')})")
    for key in plan.get("without_figure", []):
        lines.append(f"  {key}: no throughput figure; its runs are counted at {RUN_OVERHEAD_S} s "
                     "each (measure one: python -m harness throughput, or add it to the "
                     "calibration file)")
    if errors:
        lines.append("arms that could not be planned:")
        lines += errors
    skips = plan.get("skips_here", {})
    if skips.get("arms") or skips.get("claims"):
        lines.append("what will skip in this session (priced above all the same: run it where it can train):")
        lines += [f"  {arm}: {why}" for arm, why in skips.get("arms", {}).items()]
        lines += [f"  {claim}: {why}" for claim, why in skips.get("claims", {}).items()]
    return "\n".join(lines)


def add_skips(plan: dict, cannot_train: dict, skipped_claims: dict) -> dict:
    """Note in ``plan`` what will skip in the session it prices, and why: each arm that cannot
    train here (``cannot_train``: ``"profile/arm"`` -> the session's reason) and still has runs
    to train (with all its runs stored it is judged from the store), and each claim that skips
    at collection (``skipped_claims``: node id -> reason, e.g. ``--simclr-weights`` absent)."""
    arms = {name: why for name, why in cannot_train.items()
            if why and plan["by_arm"].get(name, {}).get("to_train")}
    plan["skips_here"] = {"arms": arms, "claims": dict(skipped_claims)}
    return plan
