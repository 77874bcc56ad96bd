"""The result store: one JSON file per run, keyed by the run spec's hash.

Layout under the store root::

    runs/<key[:2]>/<key>.json      one run record per spec
    claims/<profile>/<slug>.json   the latest outcome of each claim test (verdict + figure data)
    sessions/latest.json           environment of the latest suite session

Every write goes to a temporary file in the same directory, is flushed to disk, then renamed over
the target. A rename is atomic on POSIX, so a reader sees the old file or the new one, never half
of one; two processes writing the same key both write a complete record of the same spec; a
killed run leaves at most a ``.tmp`` file, which is never read. JSON only: no pickle.

A record that cannot be parsed, or whose content does not match its key, is moved aside to
``<key>.json.corrupt`` (kept for inspection) and treated as missing, so the run trains again.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

from .data import DEFAULT_CACHE_DIR
from .spec import RunSpec

DEFAULT_STORE_DIR = DEFAULT_CACHE_DIR / "store"


def strict_json(value):
    """``value`` with NaN and infinities replaced by None, so the file is standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def atomic_write_json(path: Path, payload) -> None:
    """Write ``payload`` as standard JSON to ``path`` so that no reader ever sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(strict_json(payload), handle, indent=1, sort_keys=True, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:180]


class ResultStore:
    """Run records and claim outcomes on disk.

    Parameters
    ----------
    root : path
        Directory of the store; created on first write.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def run_path(self, key: str) -> Path:
        return self.root / "runs" / key[:2] / f"{key}.json"

    def get(self, spec: RunSpec) -> dict | None:
        """The stored record of ``spec``, or None if it has not run (or its file was corrupt)."""
        path = self.run_path(spec.key)
        try:
            with open(path) as handle:
                record = json.load(handle)
            if record.get("key") != spec.key or RunSpec.from_dict(record["spec"]).key != spec.key:
                raise ValueError("content does not match its key")
            return record
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(f"result store: {path} was unreadable ({err}); moved to {aside} and "
                          "the run will train again", RuntimeWarning, stacklevel=2)
            return None

    def put(self, record: dict) -> dict:
        """Store ``record``; returns it as it reads back (lists for tuples, None for NaN)."""
        normalized = strict_json(record)
        atomic_write_json(self.run_path(record["key"]), normalized)
        return normalized

    def records(self) -> list[dict]:
        """Every stored run record (for re-rendering a report)."""
        found = []
        for path in sorted((self.root / "runs").glob("*/*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except ValueError:
                continue
        return found

    def claim_path(self, profile: str, nodeid: str) -> Path:
        return self.root / "claims" / slug(profile) / f"{slug(nodeid)}.json"

    def put_claim(self, outcome: dict) -> None:
        atomic_write_json(self.claim_path(outcome["profile"], outcome["nodeid"]), outcome)

    def claims(self, profile: str | None = None) -> list[dict]:
        pattern = f"{slug(profile)}/*.json" if profile else "*/*.json"
        return [json.loads(p.read_text()) for p in sorted((self.root / "claims").glob(pattern))]

    def put_session(self, meta: dict) -> None:
        atomic_write_json(self.root / "sessions" / "latest.json", meta)

    def session(self) -> dict:
        path = self.root / "sessions" / "latest.json"
        return json.loads(path.read_text()) if path.is_file() else {}
