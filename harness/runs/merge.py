"""Merge result stores from several machines into one, never overwriting a result silently.

Runs are keyed by their spec's hash, so the same key in two stores is the same run. On the CPU
it gives the same record everywhere; GPU runs are not bit-reproducible, so two machines that both
trained a key may hold different metrics. Such a key is a *conflict*: the target keeps the record
it has (or the first source's), and the merge reports every metric that differs, with both
values and the provenance (host, device) of each, and exits non-zero so a script notices.

Everything is checked before anything is copied: a source that is not a result store, one
written in another layout, a target that is also a source, or a read-only target is an error
with nothing written. A record whose content does not match its key is skipped and named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..runs.spec import RunSpec
from ..runs.store import ReadOnlyStoreError, ResultStore


class MergeError(ValueError):
    """The merge cannot start; the message names the problem and the fix."""


@dataclass
class Conflict:
    key: str
    run: str
    kept_from: str
    other_from: str
    differences: list[tuple[str, object, object]]  # (metric path, kept value, other value)
    kept_provenance: str
    other_provenance: str

    def describe(self, limit: int = 6) -> str:
        numeric = [abs(a - b) for _, a, b in self.differences
                   if isinstance(a, (int, float)) and isinstance(b, (int, float))]
        lines = [f"conflict {self.key} ({self.run}): {len(self.differences)} metric(s) differ"
                 + (f", largest |difference| {max(numeric):.4g}" if numeric else "")
                 + f"; kept {self.kept_from} [{self.kept_provenance}], not "
                   f"{self.other_from} [{self.other_provenance}]"]
        for path, a, b in self.differences[:limit]:
            lines.append(f"    {path}: kept {a!r}, other {b!r}")
        if len(self.differences) > limit:
            lines.append(f"    ... {len(self.differences) - limit} more")
        return "\n".join(lines)


@dataclass
class MergeReport:
    copied: int = 0
    identical: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # "path: why"

    def summary(self) -> str:
        return (f"merged: {self.copied} runs copied, {self.identical} already present with the "
                f"same metrics, {len(self.conflicts)} conflicts, {len(self.invalid)} invalid "
                "records skipped")


def leaves(value, prefix: str = ""):
    """``(path, value)`` for every leaf of nested dicts and lists."""
    if isinstance(value, dict):
        for k in sorted(value):
            yield from leaves(value[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def metric_differences(kept: dict, other: dict) -> list[tuple[str, object, object]]:
    a, b = dict(leaves(kept.get("metrics", {}))), dict(leaves(other.get("metrics", {})))
    return [(path, a.get(path), b.get(path)) for path in sorted(set(a) | set(b))
            if a.get(path) != b.get(path)]


def provenance(record: dict) -> str:
    return f"host {record.get('host', '?')}, {record.get('device_name') or record.get('device', '?')}"


def read_record(path: Path) -> tuple[dict | None, str]:
    """The record in ``path`` and "" , or None and why it is not a valid record."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"unreadable ({err})"
    if not isinstance(record, dict) or "key" not in record or "spec" not in record:
        return None, "not a run record"
    try:
        key = RunSpec.from_dict(record["spec"]).key
    except (KeyError, TypeError, ValueError) as err:
        return None, f"spec unreadable ({err})"
    if key != record["key"] or path.stem != key:
        return None, "content does not match its key"
    return record, ""


def merge_stores(sources, into) -> MergeReport:
    """Copy every run of ``sources`` into the store ``into``; see the module docstring.

    Raises
    ------
    MergeError
        No sources, a source that is missing or not a store, a source that is the target.
    harness.runs.store.IncompatibleStoreError
        A store in another layout.
    harness.runs.store.ReadOnlyStoreError
        The target cannot be written.
    harness.runs.store.StoreLocationError
        The target is a file, or a directory that cannot be created.
    """
    if not sources:
        raise MergeError("give at least one store to merge: python -m harness merge STORE... --into STORE")
    target_path = Path(into).resolve()
    for source in sources:
        path = Path(source).resolve()
        if path == target_path:
            raise MergeError(f"{source} is the --into store itself; merge other stores into it "
                             "(or pick another --into directory)")
        if not (path / "runs").is_dir():
            raise MergeError(f"{source} is not a result store (it has no runs/ folder); give the "
                             "directory passed as --store to pytest")
    stores = [ResultStore(s) for s in sources]  # raises IncompatibleStoreError before any copy
    target = ResultStore(into)
    if target.read_only:
        raise ReadOnlyStoreError(f"the --into store {into} is not writable; pick a writable directory")
    report = MergeReport()
    origin = {}
    for source, store in zip(sources, stores):
        for path in sorted((store.root / "runs").glob("*/*.json")):
            record, why = read_record(path)
            if record is None:
                report.invalid.append(f"{path}: {why}")
                continue
            key = record["key"]
            existing_path = target.run_path(key)
            if not existing_path.is_file():
                target.put(record)
                origin[key] = str(source)
                report.copied += 1
                continue
            existing, why = read_record(existing_path)
            if existing is None:
                report.invalid.append(f"{existing_path}: {why} (kept; fix or delete it, then merge again)")
                continue
            differences = metric_differences(existing, record)
            if not differences:
                report.identical += 1
                continue
            report.conflicts.append(Conflict(
                key, RunSpec.from_dict(record["spec"]).describe(), origin.get(key, str(into)),
                str(source), differences, provenance(existing), provenance(record)))
    return report
