"""Command line of the imbalance-claims harness: re-render reports, time the training engine.

Examples:

    python -m harness report                         # default store and reports/ directory
    python -m harness report --profile quick         # only the quick profile's claims
    python -m harness report --store /data/store --report-dir /tmp/reports
    python -m harness throughput --arch resnet34 --epochs 1 --device cuda   # one CIFAR-10 epoch
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .report import DEFAULT_REPORT_DIR, write_report
from .store import DEFAULT_STORE_DIR, ResultStore


def report_command(args) -> int:
    store = ResultStore(args.store)
    claims = store.claims(args.profile)
    if not claims:
        print(f"no claim results in {store.root / 'claims'}"
              f"{' for profile ' + args.profile if args.profile else ''}; run "
              "`pytest claims/ -m quick` (or -m full) first", file=sys.stderr)
        return 2
    keys = {k for c in claims for k in c.get("record_keys", [])}
    records = [r for r in store.records() if r.get("key") in keys]
    missing = len(keys) - len(records)
    if missing:
        print(f"warning: {missing} run records named by claims are not in the store", file=sys.stderr)
    session = dict(store.session(), command=" ".join(["python -m harness"] + sys.argv[1:]))
    out = write_report(claims, records, session, Path(args.report_dir))
    print(f"report: {out / 'index.html'} ({len(claims)} claims, {len(records)} runs, nothing trained)")
    return 0


def throughput_command(args) -> int:
    """Train ``--arch`` on the CIFAR-10 training set with the engine; print images/s and accuracy."""
    import json

    import numpy as np

    from . import data, models

    cifar = data.load("cifar10", args.data_dir)
    n = args.images or len(cifar.y_train)
    subset = np.random.default_rng(0).permutation(len(cifar.y_train))[:n]  # files are class-sorted
    model = models.build(args.arch, seed=0, n_jobs=args.threads, epochs=args.epochs,
                         device=args.device)
    model.fit(cifar.x_train[subset], cifar.y_train[subset])
    accuracy = float(np.mean(model.predict(cifar.x_test) == cifar.y_test))
    print(json.dumps({"arch": args.arch, "device": str(model.device), "images": n,
                      "data_source": cifar.source.get("variant"), **model.log,
                      "test_accuracy": accuracy}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="report or throughput; COMMAND --help for its options")
    report = commands.add_parser("report", help="re-render the HTML report from the result store",
                                 description="Re-render reports/<run-id>/ from the claims and runs "
                                             "in a result store; trains nothing.")
    report.add_argument("--store", default=str(DEFAULT_STORE_DIR),
                        help="result store to read (default: %(default)s)")
    report.add_argument("--report-dir", default=str(DEFAULT_REPORT_DIR),
                        help="where reports/<run-id>/ is written (default: %(default)s)")
    report.add_argument("--profile", default=None, choices=("quick", "full"),
                        help="only this profile's claims (default: both)")
    report.set_defaults(func=report_command)
    speed = commands.add_parser("throughput", help="train a network on CIFAR-10 and time it",
                                description="Train a network on CIFAR-10 with the harness's "
                                            "engine and print images/s and test accuracy as JSON.")
    speed.add_argument("--arch", default="small_cnn", choices=("small_cnn", "resnet34"),
                       help="network to train (default: %(default)s)")
    speed.add_argument("--epochs", type=int, default=1, help="epochs to train (default: 1)")
    speed.add_argument("--images", type=int, default=None,
                       help="train on N random training images (default: all 50,000)")
    speed.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="auto picks CUDA when torch sees a GPU (default: auto)")
    speed.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    speed.add_argument("--data-dir", default=None,
                       help="directory searched first for CIFAR-10 (then $IMBALANCE_DATA_DIR, "
                            "../shared/data, a checksummed download)")
    speed.set_defaults(func=throughput_command)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
