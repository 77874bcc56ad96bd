"""Command line of the imbalance-claims harness: plan, dry-run, merge, report, measure.

Examples:

    python -m harness plan -m full                   # runs, stored, cost of the full profile
    python -m harness plan -m full -k adult --json   # same selection options as pytest
    python -m harness dryrun                         # every full- and medium-profile training path, shrunk
    python -m harness evidence 'claims/test_takeaway1_train_test_ratio.py::test_training_at_test_ratio_is_near_optimal[quick-t1-adult-xgboost]' --scale "full 9-ratio grid" --from-profile full
    python -m harness merge /mnt/a/store /mnt/b/store --into .cache/store-v2
    python -m harness compare reports/base reports/latest   # regression gate (exit 1 on a flip)
    python -m harness report                         # the latest session, default store
    python -m harness report --list                  # the store's sessions
    python -m harness report --session ID            # another session (--all: every session)
    python -m harness verdicts reports/latest        # the paper's claims as a Markdown table
    python -m harness throughput --arch resnet34 --epochs 1 --device cuda   # one CIFAR-10 epoch
    python -m harness gpucheck --minutes 8           # on a GPU: throughput, MFU, every method
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .judging.compare import FAIL_ON
from .judging.report import DEFAULT_REPORT_DIR, write_report
from .runs.store import DEFAULT_STORE_DIR, ResultStore


def report_command(args) -> int:
    """Re-render one session's claims (default: the latest; ``--session ID``), or every
    session's (``--all``), from the store; or list the sessions (``--list``). Trains nothing."""
    from .judging.report import new_run_id
    from .runs.store import IncompatibleStoreError, StoreLocationError

    try:
        store = ResultStore(args.store)
    except (StoreLocationError, IncompatibleStoreError) as err:
        print(f"report: {err}", file=sys.stderr)
        return 2
    sessions = store.sessions()
    if args.list:
        return list_sessions(store, sessions)
    if args.all:
        claims = store.claims(args.profile)
        chosen = sorted({c["session"] for c in claims if c["session"]})
    else:
        session = args.session or (sessions[-1] if sessions else None)
        if session is None:
            older = store.claims(args.profile)
            print(f"no session in {store.root / 'sessions'}" + (
                f"; its {len(older)} claims were written before sessions had ids (an older "
                "store): render them with --all" if older else
                "; run `pytest claims/ -m quick` (or -m full) first"), file=sys.stderr)
            return 2
        if session not in sessions:
            print(f"no session {session!r} in {store.root / 'sessions'}; the latest are: "
                  + ", ".join(sessions[-5:]) + " (--list shows them all)", file=sys.stderr)
            return 2
        claims, chosen = store.claims(args.profile, session=session), [session]
    if not claims:
        print(f"no claim results in {store.root}"
              f"{' for profile ' + args.profile if args.profile else ''}"
              f"{' in session ' + chosen[0] if chosen and not args.all else ''}; run "
              "`pytest claims/ -m quick` (or -m full) first", file=sys.stderr)
        return 2
    keys = {k for c in claims for k in c.get("record_keys", [])}
    records = [r for r in store.records() if r.get("key") in keys]
    missing = len(keys) - len(records)
    if missing:
        print(f"warning: {missing} run records named by claims are not in the store", file=sys.stderr)
    # The environment shown is the latest chosen session's (its own command kept); each shows
    # which zoo members its profiles left out.
    metas = [store.session(s) for s in chosen]
    session = dict(metas[-1] if metas else store.session(), rendered_by=" ".join(
        ["python -m harness"] + sys.argv[1:]))
    session["zoo_left_out"] = {p: r for meta in metas for p, r in (meta.get("zoo_left_out") or {}).items()}
    label = "all-sessions" if args.all else f"{chosen[0]}-rerendered"
    # reports/latest keeps pointing at the latest session: at this rendering only when it is one.
    latest = not args.all and bool(sessions) and chosen == [sessions[-1]]
    out = write_report(claims, records, session, Path(args.report_dir),
                       run_id=f"{label}-{new_run_id()}", repoint_latest=latest)
    older = sum(1 for c in claims if c["session"] is None)
    whose = (f"{len(chosen)} session(s)" if args.all else f"session {chosen[0]}") + (
        f", {older} without a session id (an older store)" if older else "")
    print(f"report: {out / 'index.html'} ({len(claims)} claims: {whose}; {len(records)} runs, "
          "nothing trained; reports/latest " + ("points at it)" if latest else "not moved)"))
    return 0


def list_sessions(store: ResultStore, sessions: list[str]) -> int:
    """Print the store's sessions, oldest first: id, claims, profiles, wall time, command."""
    older = [c for c in store.claims() if c["session"] is None]
    if not sessions and not older:
        print(f"no sessions in {store.root}", file=sys.stderr)
        return 2
    for session in sessions:
        meta = store.session(session)
        claims = store.claims(session=session)
        what = (f"{len(claims)} claims, profiles {','.join(meta.get('profiles', [])) or '-'}, "
                f"{meta.get('wall_time_s', '?')} s, {meta.get('command', '')}" if meta else
                f"{len(claims)} claims, no session record (killed before its end, or still running)")
        print(f"{session}{' (latest)' if session == sessions[-1] else ''}: {what}")
    if older:
        print(f"{len(older)} claims without a session id (an older store, from before sessions had ids; --all "
              "shows them)")
    return 0


def cpucheck_command(args) -> int:
    """Print the CPU's ceiling and the engine's training MFU (:mod:`harness.experiments.cpucheck`)."""
    import json

    from .experiments import cpucheck

    print(json.dumps(cpucheck.check(side=args.matmul_side), indent=1))
    return 0


def frontier_command(args) -> int:
    """Train the frontier's candidates on balanced CIFAR-10 (:mod:`harness.experiments.frontier`)."""
    from pathlib import Path

    from .experiments import frontier

    candidates = frontier.CANDIDATES
    if args.only:
        candidates = [c for c in candidates if c.arch in args.only]
        if not candidates:
            print(f"error: --only {args.only} matches no candidate; the candidates' architectures "
                  f"are {sorted({c.arch for c in frontier.CANDIDATES})}", file=sys.stderr)
            return 2
    frontier.run(candidates, Path(args.out), args.data_dir, args.images, tuple(range(args.seeds)),
                 args.threads, args.floor)
    return 0


def throughput_command(args) -> int:
    """Train ``--arch`` on the CIFAR-10 training set with the engine; print images/s and accuracy.

    Its images/s is a cold figure: the first ``--epochs`` of a freshly built model, start-up and
    cuDNN/allocator warm-up included. It is recorded as such (``kind="cold"``) and does not
    replace a steady-state figure that ``gpucheck`` wrote for the same model and device
    (:func:`harness.experiments.plan.record_throughput`); ``--force-calibration`` replaces it."""
    import json

    import numpy as np

    from . import data
    from .learners import models

    cifar = data.load("cifar10", args.data_dir)
    n = args.images or len(cifar.y_train)
    subset = np.random.default_rng(0).permutation(len(cifar.y_train))[:n]  # files are class-sorted
    model = models.build(args.arch, seed=0, n_jobs=args.threads, epochs=args.epochs,
                         device=args.device)
    from .runs.training import standardized_as

    with standardized_as("cifar10"):  # the statistics CIFAR-10's runs standardize with
        model.fit(cifar.x_train[subset], cifar.y_train[subset])
        accuracy = float(np.mean(model.predict(cifar.x_test) == cifar.y_test))
    result = {"arch": args.arch, "device": str(model.device), "images": n,
              "data_source": cifar.source.get("variant"), **model.log, "test_accuracy": accuracy}
    if not args.no_record:
        from .experiments import plan
        from .runs.training import device_name

        try:
            result["calibration_file"] = str(plan.record_throughput(
                args.arch, model.device.type,
                {"images_per_second": round(model.log["images_per_second"], 1),
                 "device_name": device_name(model.device.type), "images": n,
                 "epochs": args.epochs, "threads": args.threads},
                args.calibration, kind="cold", force=args.force_calibration))
        except plan.SteadyFigureKept as kept:
            result["calibration_kept"] = str(kept)
    print(json.dumps(result, indent=1))
    return 0


def verdicts_command(args) -> int:
    """Print the paper's claims of the given sessions as one Markdown table (claim x profile)."""
    from .experiments.protocols import PROFILES
    from .judging.compare import BaselineError, load_claims
    from .judging.overview import verdict_table

    try:
        rows = [row for path in args.files for row in load_claims(path)]
        print(verdict_table(rows, tuple(PROFILES)))
    except (BaselineError, ValueError) as err:
        print(f"verdicts: {err}", file=sys.stderr)
        return 2
    return 0


def plan_command(args, pytest_args: list[str]) -> int:
    """Collect the claims pytest would run with ``pytest_args`` and print their plan.

    pytest collects in a child process (``-p fixtures.plan_export``), which writes the selected
    arms and their specs as JSON. What the selection trains is the session's to decide
    (:meth:`harness.experiments.session.Session.selection`, the same object a suite session
    uses); the child is there only for pytest's own collection (``-m``, ``-k``, paths), which
    the harness cannot run in this process since it never imports pytest."""
    import json
    import subprocess
    import tempfile

    from .data import REPO_ROOT
    from .experiments import plan
    from .runs.spec import RunSpec
    from .runs.store import ResultStore

    paths = [a for a in pytest_args if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "selection.json"
        argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                "-p", "fixtures.plan_export", f"--plan-out={out}", "--rootdir", str(REPO_ROOT),
                *pytest_args, *([] if paths else [str(REPO_ROOT / "claims")])]
        # The child runs in the checkout: a method module the caller reaches from its own
        # directory (PYTHONPATH=. or its working directory) must stay importable there.
        import os

        paths = [os.getcwd()] + [os.path.abspath(p) for p in
                                 os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))
        done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
        if done.returncode not in (0, 5) or not out.is_file():
            print(done.stdout[-4000:] + done.stderr[-4000:], file=sys.stderr)
            print(f"plan: pytest could not collect the selection (exit {done.returncode}); see above",
                  file=sys.stderr)
            return 2
        selection = json.loads(out.read_text())
    arms = [(a["profile"], a["arm"], [RunSpec.from_dict(s) for s in a["specs"]])
            for a in selection["arms"]]
    figures = plan.load_calibration(args.calibration)
    looks = {(a["profile"], a["arm"]): (a["looks"], a["expected_seeds"])
             for a in selection["arms"] if "looks" in a}
    result = plan.sequential_plan(arms, looks, selection.get("seed_offset", 0),
                                  ResultStore(selection["store"]), figures, selection["errors"],
                                  selection.get("runs_per_gpu", 1))
    plan.add_skips(result, selection.get("cannot_train", {}), selection.get("skipped_claims", {}))
    result["selection"] = " ".join(pytest_args)
    print(json.dumps(result, indent=1) if args.json else plan.format_plan(result))
    return 0


def evidence_command(args) -> int:
    """Run one quick claim at a scale and record its numbers in claims/evidence/."""
    from .experiments.evidence import EvidenceError, collect, parse_settings

    import json

    command = "python -m harness evidence " + " ".join(
        a if " " not in a and "[" not in a else repr(a) for a in sys.argv[2:])
    try:
        entry = collect(args.nodeid, args.scale, args.from_profile, parse_settings(args.set),
                        args.seeds, args.seed_offset, args.store, args.workers, command)
    except EvidenceError as err:
        print(f"evidence: {err}", file=sys.stderr)
        return 1
    print(json.dumps(entry, indent=1))
    return 0


def merge_command(args) -> int:
    from .runs.merge import MergeError, merge_stores
    from .runs.store import IncompatibleStoreError, ReadOnlyStoreError, StoreLocationError

    try:
        report = merge_stores(args.stores, args.into)
    except (MergeError, IncompatibleStoreError, ReadOnlyStoreError, StoreLocationError) as err:
        print(f"merge: {err}", file=sys.stderr)
        return 2
    for conflict in report.conflicts:
        print(conflict.describe())
    for invalid in report.invalid:
        print(f"skipped {invalid}")
    print(report.summary() + f" -> {args.into}")
    if report.conflicts:
        print("conflicts: the --into store kept its record for each; GPU runs are not "
              "bit-reproducible, so decide which to keep (delete one file and merge again)",
              file=sys.stderr)
        return 1
    return 0


def compare_command(args) -> int:
    from .judging.compare import BaselineError, compare, load_claims

    try:
        result = compare(load_claims(args.base), load_claims(args.new), args.base,
                         allow_missing=args.allow_missing)
    except BaselineError as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2
    for line in result.lines():
        print(line)
    failed = result.failed(args.fail_on)
    print(f"regression gate (fail on {args.fail_on}): {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


def dryrun_command(args) -> int:
    """Every distinct training path of the GPU profiles (full, medium) once, at full shape, on a
    shrunk budget."""
    import json

    from .experiments import dryrun
    from .runs.executors import make_executor

    runs = dryrun.dry_runs(args.data_dir, device=args.device)
    executor = make_executor("local", workers=args.workers)
    try:
        outcome = dryrun.run_all(runs, executor, args.data_dir)
    finally:
        executor.close()
    bad = {path: o for path, o in outcome.items() if o["problems"]}
    print(json.dumps(outcome, indent=1))
    print(f"dry run: {len(outcome) - len(bad)} of {len(outcome)} training paths hold every field "
          "the claims read" + (f"; problems in {sorted(bad)}" if bad else ""), file=sys.stderr)
    return 1 if bad else 0


def gpucheck_command(args) -> int:
    """Run the GPU check; print its JSON (every stage that finished, and the errors of those
    that failed). Exit 1 if any stage failed, 2 if it could not start (no GPU)."""
    import json

    from .experiments.gpucheck import default_out_path, gpucheck

    out = args.out or default_out_path()
    print(f"gpucheck: writing the result to {out} as each stage finishes", file=sys.stderr)
    try:
        result = gpucheck(args.minutes, args.device, args.arch, tuple(args.concurrency),
                          args.images, not args.no_cells, args.data_dir, args.calibration,
                          args.warmup_seconds, out=out, variants=not args.no_variants)
    except RuntimeError as err:
        print(json.dumps({"error": str(err)}))
        return 2
    print(json.dumps(result, indent=1))
    if result["failed"]:
        print(f"gpucheck: failed stages: {', '.join(result['failed'])}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .experiments.protocols import PROFILES  # the profiles' owner names them

    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="plan, dryrun, evidence, merge, compare, report, throughput or "
                                          "gpucheck; "
                                      "COMMAND --help for its options")
    planner = commands.add_parser(
        "plan", help="unique runs, runs stored and estimated cost of a pytest selection",
        description="Print, per arm and in total, the unique runs a pytest selection needs, how "
                    "many the store holds and an estimated cost, without training anything. "
                    "Every other option is passed to pytest's selection: -m, -k, test paths, "
                    "--seeds, --seed-offset, --store, --device, --data-dir.")
    planner.add_argument("--json", action="store_true",
                         help="print JSON (runs_total, runs_stored, by_arm, estimated_gpu_hours, "
                              "estimated_cpu_hours, skips_here, ...)")
    planner.add_argument("--calibration", default=None,
                         help="throughput calibration file (default $IMBALANCE_CALIBRATION or "
                              ".cache/calibration.json; assumed figures where it has none)")
    planner.set_defaults(func=plan_command, passes_pytest_args=True)
    dry = commands.add_parser(
        "dryrun", help="train every full- and medium-profile training path once on a shrunk budget",
        description="Every distinct (dataset, model, method, measurement) of the full and medium profiles at "
                    "full shape (ResNet-34, 32 px, Hessian top-10, ...), one epoch on a few dozen "
                    "images; checks each record holds every field the claims read. Nothing is "
                    "stored. Exit 1 if any path crashed or lacks a field.")
    dry.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                     help="device for the networks (default: cpu)")
    dry.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    dry.add_argument("--data-dir", default=None, help="directory searched first for the datasets")
    dry.set_defaults(func=dryrun_command)
    evidence = commands.add_parser(
        "evidence", help="run a quick claim at a searched scale and record its numbers",
        description="Run one quick-profile claim test (path::test[quick-<arm>]) in a child pytest "
                    "with its arm changed to a scale searched for one where it could hold, and "
                    "write the verdict, effect, CI, Holm p, seeds and commit to "
                    "claims/evidence/<test>--<arm>.json (replacing an entry of the same --scale).")
    evidence.add_argument("nodeid", help="the claim test, e.g. "
                          "'claims/test_takeaway1_train_test_ratio.py::test_x[quick-t1-adult-xgboost]'")
    evidence.add_argument("--scale", required=True, help="name of the scale, e.g. '15 epochs'")
    evidence.add_argument("--from-profile", default=None, choices=tuple(PROFILES),
                          help="take the arm's config from this profile (default: quick)")
    evidence.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="a model hyperparameter over the arm's (repeatable), e.g. epochs=15, or "
                               "a method's setting as method.setting, e.g. simclr.epochs=100")
    evidence.add_argument("--seeds", type=int, default=5, help="seeds (default: 5)")
    evidence.add_argument("--seed-offset", type=int, default=0, help="first seed (default: 0)")
    evidence.add_argument("--store", default=None,
                          help="result store (default: a fresh temporary one)")
    evidence.add_argument("--workers", default="auto", help="training processes (default: auto)")
    evidence.set_defaults(func=evidence_command)
    merger = commands.add_parser(
        "merge", help="combine result stores from several machines",
        description="Copy every run of the STOREs into --into. A key present in both with "
                    "different metrics is a conflict: reported with the differences, never "
                    "overwritten (exit 1). Exit 2 if the merge cannot start (nothing written).")
    merger.add_argument("stores", nargs="+", metavar="STORE", help="stores to merge from")
    merger.add_argument("--into", required=True, help="store to merge into (created if missing)")
    merger.set_defaults(func=merge_command)
    gate = commands.add_parser(
        "compare", help="regression gate: verdicts that flipped between two sessions",
        description="Compare two sessions' claims (claims.json files or report directories): "
                    "list verdicts that flipped, effects that left the baseline's CI and "
                    "baseline claims missing from NEW. Exit 1 on a flip or a missing claim "
                    "(--fail-on flip), also on drift (--fail-on drift); 2 on a malformed or "
                    "empty file or profiles that do not match.")
    gate.add_argument("base", metavar="BASE", help="the baseline claims.json or report directory")
    gate.add_argument("new", metavar="NEW", help="the new claims.json or report directory")
    gate.add_argument("--fail-on", default="flip", choices=FAIL_ON,
                      help="what fails the gate (default: flip)")
    gate.add_argument("--allow-missing", action="store_true",
                      help="baseline claims absent from NEW are listed but do not fail the gate")
    gate.set_defaults(func=compare_command)
    report = commands.add_parser(
        "report", help="re-render a session's HTML report from the result store",
        description="Re-render the latest session's claims (or --session ID's, or --all "
                    "sessions') and runs from a result store into reports/<id>-rerendered-<run "
                    "id>/; trains nothing. reports/latest moves only to a rendering of the latest "
                    "session.")
    report.add_argument("--store", default=str(DEFAULT_STORE_DIR),
                        help="result store to read (default: %(default)s)")
    report.add_argument("--report-dir", default=str(DEFAULT_REPORT_DIR),
                        help="where reports/<run-id>/ is written (default: %(default)s)")
    report.add_argument("--profile", default=None, choices=tuple(PROFILES),
                        help="only this profile's claims (default: every profile's)")
    chosen = report.add_mutually_exclusive_group()
    chosen.add_argument("--session", default=None, metavar="ID",
                        help="render this session (default: the latest; --list shows the ids)")
    chosen.add_argument("--all", action="store_true",
                        help="render every session's claims, each row naming its session (and "
                             "those of an older store, which kept no session)")
    chosen.add_argument("--list", action="store_true",
                        help="list the store's sessions (id, claims, profiles, time, command)")
    report.set_defaults(func=report_command)
    table = commands.add_parser(
        "verdicts", help="the paper's claims of one or more sessions as a Markdown table",
        description="Print one Markdown table of the paper's claim tests (rows) by profile "
                    "(columns): verdict, effect and seeds, from each session's claims.json (or "
                    "report directory). A claim judged in two of the files keeps the last.")
    table.add_argument("files", nargs="+", metavar="CLAIMS",
                       help="claims.json files or report directories (reports/latest, ...)")
    table.set_defaults(func=verdicts_command)
    speed = commands.add_parser("throughput", help="train a network on CIFAR-10 and time it",
                                description="Train a network on CIFAR-10 with the harness's "
                                            "engine and print images/s and test accuracy as JSON.")
    from .learners import models

    speed.add_argument("--arch", default="small_cnn", choices=sorted(models.DEVICE_BOUND),
                       help="network to train, with its profile's recipe (default: %(default)s; "
                            "airbench_cnn is the laptop profile's: calibrate plan -m laptop with "
                            "it at --threads 1, one thread per worker as the suite runs)")
    speed.add_argument("--epochs", type=int, default=1, help="epochs to train (default: 1)")
    speed.add_argument("--images", type=int, default=None,
                       help="train on N random training images (default: all 50,000)")
    speed.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="auto picks CUDA when torch sees a GPU (default: auto)")
    speed.add_argument("--threads", type=int, default=1,
                       help="CPU threads (default: %(default)s, as each CPU slot of the suite "
                            "trains; plan uses a CPU figure measured at 1 thread only)")
    speed.add_argument("--data-dir", default=None,
                       help="directory searched first for CIFAR-10 (then $IMBALANCE_DATA_DIR, "
                            "../shared/data, a checksummed download)")
    speed.add_argument("--calibration", default=None,
                       help="calibration file the measured images/s is written to, for plan, as "
                            "a cold figure (default $IMBALANCE_CALIBRATION or "
                            ".cache/calibration.json)")
    speed.add_argument("--no-record", action="store_true",
                       help="only print; do not write the calibration file")
    speed.add_argument("--force-calibration", action="store_true",
                       help="write this cold (first-epoch) figure even over a steady-state one "
                            "that gpucheck measured (by default gpucheck's is kept)")
    speed.set_defaults(func=throughput_command)
    cpu = commands.add_parser(
        "cpucheck", help="the CPU's measured matmul ceiling and the engine's training MFU",
        description="Print one JSON: the CPU (ISA, cores, native bf16), its theoretical fp32/bf16 "
                    "peak, a large matmul's GFLOP/s in fp32 and bf16, and the engine's training "
                    "GFLOP/s and MFU for the quick and laptop networks.")
    cpu.add_argument("--matmul-side", type=int, default=2048,
                     help="side of the timed square matmul (default: %(default)s)")
    cpu.set_defaults(func=cpucheck_command)
    front = commands.add_parser(
        "frontier", help="accuracy vs CPU seconds of the CPU-sized networks, balanced CIFAR-10",
        description="Train each candidate network (harness.experiments.frontier.CANDIDATES) with "
                    "standard training on a balanced CIFAR-10 subset; write every point to a "
                    "JSON file and the accuracy-vs-seconds figure beside it (.png).")
    front.add_argument("--out", default="reports/frontier.json", help="JSON file (default: %(default)s)")
    front.add_argument("--images", type=int, default=5_000,
                       help="balanced training images (default: %(default)s)")
    front.add_argument("--seeds", type=int, default=1, help="seeds per candidate (default: 1)")
    front.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    front.add_argument("--only", nargs="+", default=None, metavar="ARCH",
                       help="only the candidates of these architectures")
    front.add_argument("--floor", type=float, default=0.65,
                       help="balanced-accuracy floor drawn on the figure (default: %(default)s)")
    front.add_argument("--data-dir", default=None, help="directory searched first for CIFAR-10")
    front.set_defaults(func=frontier_command)
    check = commands.add_parser(
        "gpucheck", help="on a GPU: throughput and MFU at 1, 2, 4 runs, every method once",
        description="Measure ResNet-34 training throughput (images/s, MFU against the card's "
                    "bf16 peak) at several concurrent runs, write the steady-state figure to "
                    "the calibration file for plan, run one full-shape cell of every "
                    "device-bound (neural) training path of the GPU profiles for one epoch, record peak "
                    "memory, time cudnn.benchmark and torch.compile on/off, and print one JSON. "
                    "Each stage records its result or its error and the check goes on; the "
                    "exit status is 1 if any stage failed, 2 if it could not start (no GPU). "
                    "Cells left out for lack of time are listed under 'skipped' (exit 0).")
    check.add_argument("--minutes", type=float, default=8.0, help="time budget (default: 8)")
    check.add_argument("--device", default="cuda", choices=("cpu", "cuda"),
                       help="cuda (default); cpu only to smoke-test the script")
    check.add_argument("--arch", default="resnet34", choices=("small_cnn", "resnet34"),
                       help="network of the throughput measurement (default: %(default)s)")
    check.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4],
                       help="concurrent runs to measure (default: 1 2 4)")
    check.add_argument("--images", type=int, default=12_000,
                       help="synthetic training images per run (default: 12000, the full arm size)")
    check.add_argument("--warmup-seconds", type=float, default=30.0,
                       help="time allowed for starting and warming up each level (default: 30)")
    check.add_argument("--no-cells", action="store_true", help="skip the per-method cells")
    check.add_argument("--no-variants", action="store_true",
                       help="skip measuring cudnn.benchmark and torch.compile on/off")
    check.add_argument("--out", default=None,
                       help="JSON file written as each stage finishes, so that a killed check "
                            "keeps what it measured (default .cache/gpucheck/<UTC time>.json)")
    check.add_argument("--data-dir", default=None, help="directory searched first for the datasets")
    check.add_argument("--calibration", default=None,
                       help="calibration file to write (default .cache/calibration.json)")
    check.set_defaults(func=gpucheck_command)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plan"]:  # everything plan does not know goes to pytest's selection
        args, pytest_args = parser.parse_known_args(argv)
        return args.func(args, pytest_args)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
