"""Command line: ``python -m harness report`` re-renders a report from the store, training nothing.

Examples::

    python -m harness report                         # default store and reports/ directory
    python -m harness report --profile quick         # only the quick profile's claims
    python -m harness report --store /data/store --report-dir /tmp/reports
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="re-render the HTML report from the result store")
    report.add_argument("--store", default=str(DEFAULT_STORE_DIR))
    report.add_argument("--report-dir", default=str(DEFAULT_REPORT_DIR))
    report.add_argument("--profile", default=None, choices=("quick", "full"))
    report.set_defaults(func=report_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
