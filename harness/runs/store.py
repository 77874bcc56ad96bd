"""The result store: one JSON file per run, keyed by the run spec's hash.

Layout under the store root::

    store.json                     the store's layout version (written with the first run)
    runs/<key[:2]>/<key>.json      one run record per spec
    sessions/<id>/session.json     one suite session's environment (id: its report's run id)
    sessions/<id>/claims/<profile>/<slug>.json
                                   the outcome of each claim test that session ran (verdict +
                                   figure data); every session is kept, so an old one re-renders
    claims/<profile>/<slug>.json   stores of harness 0.5 and older: the latest outcome of each
                                   claim test, with no session (read as claims without one)
    sessions/latest.json           stores of harness 0.5 and older: the latest session's environment

Every write goes to a temporary file in the same directory, is flushed to disk, then renamed over
the target. A rename is atomic on POSIX, so a reader sees the old file or the new one, never half
of one; two processes writing the same key both write a complete record of the same spec; a
killed run leaves at most a ``.tmp`` file, which is never read. JSON only: no pickle.

A record that cannot be parsed, is not a JSON object, or whose content does not match its key,
is moved aside to ``<key>.json.corrupt`` (kept for inspection) and treated as missing, so the run
trains again.

Two processes on one store never train the same run: before training, a process takes an
exclusive ``flock`` on ``runs/<key[:2]>/<key>.lock`` (:meth:`ResultStore.claim_run`). The
operating system drops the lock when its holder exits, however it exits, so a crashed process
never leaves a run blocked; the next process to take the lock checks the store again first.

A store the process cannot write to (a shared, read-only results directory) is used read-only:
its runs load, claims and reports still come out, and a run it lacks is a
:class:`ReadOnlyStoreError` before anything trains. A root that cannot be a store at all (a
file, or a directory that does not exist and cannot be created) is a
:class:`StoreLocationError` when the store is opened, before anything trains.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

from ..data import DEFAULT_CACHE_DIR
from ..runs.spec import RunSpec

# Named by layout, so that a checkout of another layout keeps its own default store.
DEFAULT_STORE_DIR = DEFAULT_CACHE_DIR / "store-v2"


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


class ReadOnlyStoreError(RuntimeError):
    """The store is read-only and lacks runs that would have to be trained."""


class IncompatibleStoreError(RuntimeError):
    """The store was written in a layout this harness does not read."""


class StoreLocationError(RuntimeError):
    """The store's root cannot hold a store: a file, or a directory that does not exist and
    cannot be created. The message names the path and the fix."""


# The store's on-disk layout. Bumped only when the layout or the record format changes in a way
# older code cannot read; a new harness version alone only changes run keys (old runs are
# ignored, never misread). Stores without store.json predate the file and have layout 1.
# 2 (harness 0.4): specs carry the method's version and import path; methods own their settings.
STORE_FORMAT = 2


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:180]


class ResultStore:
    """Run records and claim outcomes on disk.

    Parameters
    ----------
    root : path
        Directory of the store; created on first write.

    Raises
    ------
    StoreLocationError
        ``root`` is a file, or does not exist and cannot be created.
    IncompatibleStoreError
        The store was written in another layout.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        check_location(self.root)
        self.read_only = not writable(self.root)
        found = self.format()
        if found != STORE_FORMAT:
            raise IncompatibleStoreError(
                f"result store {self.root} has layout version {found}; this harness reads layout "
                f"{STORE_FORMAT}. Use the harness version that wrote it (see "
                f"{self.root / 'store.json'}), or point --store at another directory")

    def format(self):
        """The layout version in ``store.json`` (1 when the file is absent)."""
        path = self.root / "store.json"
        if not path.is_file():
            return STORE_FORMAT
        meta = read_json_object(path, "store description") or {}
        return meta.get("format", "unreadable")

    def mark_format(self) -> None:
        if not (self.root / "store.json").is_file():
            from .. import __version__

            atomic_write_json(self.root / "store.json",
                              {"format": STORE_FORMAT, "created_by_harness": __version__})

    def run_path(self, key: str) -> Path:
        return self.root / "runs" / key[:2] / f"{key}.json"

    def get(self, spec: RunSpec) -> dict | None:
        """The stored record of ``spec``, or None if it has not run (or its file was corrupt)."""
        path = self.run_path(spec.key)
        try:
            with open(path) as handle:
                record = json.load(handle)
            if not isinstance(record, dict):
                raise ValueError(f"a run record is a JSON object, not {type(record).__name__}")
            if record.get("key") != spec.key or RunSpec.from_dict(record["spec"]).key != spec.key:
                raise ValueError("content does not match its key")
            return record
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            if self.read_only:
                warnings.warn(f"result store: {path} is unreadable ({err}); the store is read-only, "
                              "so it stays where it is and the run counts as missing",
                              RuntimeWarning, stacklevel=2)
                return None
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(f"result store: {path} was unreadable ({err}); moved to {aside} and "
                          "the run will train again", RuntimeWarning, stacklevel=2)
            return None

    def claim_run(self, key: str, wait: bool):
        """An exclusive lock on training run ``key``: an open file to close when the run is stored,
        or None when another process holds it and ``wait`` is False. With ``wait`` True, blocks
        until the other process finishes (or dies). The caller checks the store again after
        taking it: the holder may have stored the run meanwhile."""
        path = self.run_path(key).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def put(self, record: dict) -> dict:
        """Store ``record``; returns it as it reads back (lists for tuples, None for NaN)."""
        if self.read_only:
            raise ReadOnlyStoreError(f"result store {self.root} is read-only; cannot store a run")
        if record.get("dry_run"):
            raise ValueError("a dry-run record (shrunk budget) is not its spec's result; "
                             "it is never stored")
        self.mark_format()
        normalized = strict_json(record)
        atomic_write_json(self.run_path(record["key"]), normalized)
        return normalized

    def records(self) -> list[dict]:
        """Every stored run record (for re-rendering a report)."""
        found = []
        for path in sorted((self.root / "runs").glob("*/*.json")):
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def session_dir(self, session: str) -> Path:
        """The directory of session ``session`` (an id such as ``20261130-194208-1fbc``)."""
        if not session or slug(session) != session:
            raise ValueError(f"not a session id: {session!r} (letters, digits, '.', '_', '-')")
        return self.root / "sessions" / session

    def claim_path(self, profile: str, nodeid: str, session: str | None = None) -> Path:
        base = self.session_dir(session) if session else self.root
        return base / "claims" / slug(profile) / f"{slug(nodeid)}.json"

    def put_claim(self, outcome: dict, session: str | None = None) -> None:
        """Keep a claim's outcome as session ``session`` wrote it (without one: as the latest
        outcome of its claim, as stores of harness 0.5 and older did). Skipped, with nothing
        lost, on a read-only store: the session's report holds it."""
        if not self.read_only:
            atomic_write_json(self.claim_path(outcome["profile"], outcome["nodeid"], session),
                              dict(outcome, session=session))

    def claims(self, profile: str | None = None, session: str | None = None) -> list[dict]:
        """Stored claim outcomes, each with ``session``: the id of the session that wrote it, or
        None for a claim of an older store, which kept no session. ``session`` given: only that
        session's; else every session's and the older claims. A file that is not a readable
        claim is skipped with a warning naming it."""
        pattern = f"{slug(profile)}/*.json" if profile else "*/*.json"
        if session is not None:
            folders = [(session, self.session_dir(session) / "claims")]
        else:
            folders = [(None, self.root / "claims")] + [
                (s, self.session_dir(s) / "claims") for s in self.sessions()]
        found = []
        for wrote, folder in folders:
            for path in sorted(folder.glob(pattern)):
                claim = read_json_object(path, "claim outcome")
                if claim is not None and "nodeid" in claim and "profile" in claim:
                    found.append(dict(claim, session=wrote))
                elif claim is not None:
                    warnings.warn(f"result store: {path} is not a claim outcome (no "
                                  "nodeid/profile); skipped", RuntimeWarning, stacklevel=2)
        return found

    def sessions(self) -> list[str]:
        """Ids of the sessions in the store, oldest first (an id begins with its UTC start
        time). A session that wrote claims and no session file (killed, or still running) is
        one too."""
        folder = self.root / "sessions"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and slug(p.name) == p.name)

    def put_session(self, meta: dict, session: str | None = None) -> None:
        """Keep a session's environment: as session ``session`` (default ``meta["session_id"]``);
        without an id, as the latest session, as stores of harness 0.5 and older did."""
        session = session or meta.get("session_id")
        if self.read_only:
            return
        path = (self.session_dir(session) / "session.json" if session
                else self.root / "sessions" / "latest.json")
        atomic_write_json(path, meta)

    def session(self, session: str | None = None) -> dict:
        """The environment session ``session`` recorded (default: the latest session; in a
        store written before sessions had ids, its one ``sessions/latest.json``); {} when it recorded
        none (killed before its end, or still running)."""
        if session is None:
            ids = self.sessions()
            path = (self.session_dir(ids[-1]) / "session.json" if ids
                    else self.root / "sessions" / "latest.json")
        else:
            path = self.session_dir(session) / "session.json"
        return (read_json_object(path, "session file") or {}) if path.is_file() else {}


def read_json_object(path: Path, what: str) -> dict | None:
    """The JSON object in ``path``, or None with a warning naming the file when it is not one."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        warnings.warn(f"result store: {what} {path} is unreadable ({err}); skipped",
                      RuntimeWarning, stacklevel=3)
        return None
    if not isinstance(value, dict):
        warnings.warn(f"result store: {what} {path} holds {type(value).__name__}, not a JSON "
                      "object; skipped", RuntimeWarning, stacklevel=3)
        return None
    return value


def check_location(root: Path) -> None:
    """Raise :class:`StoreLocationError` unless ``root`` is a directory or can be created as
    one. An existing directory this process cannot write is fine: it is used read-only."""
    fix = "point --store at a directory (it is created if missing)"
    try:
        if root.exists():
            if not root.is_dir():
                raise StoreLocationError(f"result store {root} is a file, not a directory; {fix}")
            return
        existing = root.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as err:  # e.g. a parent this process may not search
        raise StoreLocationError(f"result store {root} cannot be read ({err}); {fix}") from None
    if not existing.is_dir():
        raise StoreLocationError(f"result store {root} cannot be created: {existing} is a file, "
                                 f"not a directory; {fix}")
    if not writable(existing):
        raise StoreLocationError(f"result store {root} does not exist and cannot be created: "
                                 f"this process cannot write {existing}; point --store at a "
                                 "writable directory, or at an existing store to read it")


def writable(root: Path) -> bool:
    """Whether this process can create files in ``root`` (or in its nearest existing parent, when
    ``root`` does not exist yet): tried, not inferred from permission bits, which root ignores."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-probe.")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True
