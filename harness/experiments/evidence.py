"""The evidence behind an expected failure at quick scale: the claim's numbers at each scale searched.

A quick-profile claim marked as expected not to hold (``expect_failure_at_quick_scale`` in
``fixtures/claims.py``) says in words which scales were searched for one where it could hold.
The numbers of those searches are data in the repository, one file per claim and arm,
``claims/evidence/<test>--<arm>.json``: a list of entries, one per scale, each with the seeds,
the three-way verdict, the headline effect and its CI, the Holm p-value, the reason, the
statistic, every comparison of the family (effect, CI, Holm p, whether it held or was refuted),
the commit it ran at and the command that reproduces it. The report shows them under
the claim; a quick-scale expected failure without its file is an error.

``python -m harness evidence NODEID --scale NAME`` runs one claim test in a child pytest (quick
profile; this module never imports pytest) with the arm's config changed as asked, and writes
the entry, replacing an earlier one of the same scale name:

* ``--from-profile full``: the arm's config from the full profile (e.g. the 9-ratio grid);
* ``--set key=value`` (repeatable): model hyperparameters over the arm's (e.g. ``epochs=15``);
* ``--seeds N`` / ``--seed-offset K``: the seeds, as for pytest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ..data import REPO_ROOT
from ..runs.training import code_commit

EVIDENCE_DIR = REPO_ROOT / "claims" / "evidence"
SCALE_ENV = "IMBALANCE_SCALE"  # JSON scale a child pytest applies (fixtures/evidence.py)
FIELDS = ("scale", "seeds", "verdict", "effect", "ci", "p_holm", "effect_unit", "statistic",
          "reason", "comparisons", "from_profile", "hyperparameters", "commit", "date", "command")


class EvidenceError(RuntimeError):
    """An evidence file that is missing or malformed, or a search run that reached no verdict."""


def evidence_path(test: str, arm: str) -> Path:
    return EVIDENCE_DIR / f"{test}--{arm}.json"


def shown(path: Path) -> str:
    """``path`` relative to the checkout (how the report links it and messages name it)."""
    return os.path.relpath(path, REPO_ROOT)


def read_evidence(test: str, arm: str) -> list[dict]:
    """The entries of a claim's evidence file; :class:`EvidenceError` naming the fix when the
    file is missing or not a list of entries."""
    path = evidence_path(test, arm)
    if not path.is_file():
        raise EvidenceError(f"{shown(path)} is missing: an expected failure at quick "
                            "scale keeps the numbers of the scales searched. Run python -m harness "
                            f"evidence 'claims/...::{test}[quick-{arm}]' --scale quick (and once per "
                            "scale searched)")
    try:
        entries = json.loads(path.read_text())
    except ValueError as err:
        raise EvidenceError(f"{shown(path)}: not JSON ({err})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "scale" in e for e in entries):
        raise EvidenceError(f"{shown(path)}: expected a list of entries, each with a 'scale'")
    return entries


def apply_scale(scale: dict) -> None:
    """Change the quick profile's config of ``scale["arm"]`` as the scale says (called in the
    child pytest by ``fixtures/evidence.py`` before anything is collected)."""
    from . import protocols

    arm, cfg = scale["arm"], scaled_config(scale)
    owner = protocols.METHOD_ARMS["quick"] if arm in protocols.METHOD_ARMS["quick"] else protocols.PROFILES["quick"]
    owner[arm] = cfg


def scaled_config(scale: dict):
    """The arm's config as ``scale`` changes it: ``hyperparameters`` entries ``"epochs"`` are
    the model's, ``"simclr.epochs"`` a method's setting.

    Raises
    ------
    EvidenceError
        A setting for a method the arm does not run, or a bare name that is no hyperparameter of
        the model but a method's setting (the message gives ``method.setting``)."""
    from .. import methods
    from ..learners import models
    from . import protocols

    arm = scale["arm"]
    try:
        cfg = protocols.arm_config(scale.get("from_profile") or "quick", arm)
    except KeyError as err:
        raise EvidenceError(str(err).strip('"')) from None
    hyperparameters, settings = dict(cfg.hyperparameters), dict(cfg.method_settings)
    for key, value in scale.get("hyperparameters", {}).items():
        method, dot, name = key.rpartition(".")
        if dot:  # "simclr.epochs": a method's setting
            if method not in cfg.methods:
                raise EvidenceError(f"--set {key}: arm {arm} runs no method {method!r}; it runs "
                                    f"{', '.join(cfg.methods)}")
            settings[method] = tuple(sorted({**dict(settings.get(method, ())), name: value}.items()))
        else:  # "epochs": the model's
            owners = [m for m in cfg.methods if key in methods.get(m).settings or
                      key.startswith(m + "_") and key.removeprefix(m + "_") in methods.get(m).settings]
            if key not in models.DEFAULTS[cfg.model] and owners:
                setting = key.removeprefix(owners[0] + "_")
                raise EvidenceError(f"--set {key}: {cfg.model} has no hyperparameter {key!r}; a "
                                    f"method's setting is --set {owners[0]}.{setting}=... (since "
                                    "harness 0.6 settings carry no method prefix)")
            hyperparameters[name] = value
    return replace(cfg, hyperparameters=tuple(sorted(hyperparameters.items())),
                   method_settings=tuple(sorted(settings.items())))


def parse_settings(pairs: list[str]) -> dict:
    """``["epochs=15", "simclr.epochs=100"]`` -> ``{"epochs": 15, "simclr.epochs": 100}``: the
    model's hyperparameters by name, a method's settings as ``method.setting`` (values read as
    JSON when they parse, else kept as strings)."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EvidenceError(f"--set {pair!r}: expected key=value, e.g. epochs=15")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return settings


def collect(nodeid: str, scale: str, from_profile: str | None = None, hyperparameters=None,
            seeds: int = 5, seed_offset: int = 0, store: str | None = None, workers: str = "auto",
            command: str = "") -> dict:
    """Run the claim test ``nodeid`` (``path::test[quick-<arm>]``) at ``scale`` and add its entry
    to the claim's evidence file; return the entry."""
    test, _, params = nodeid.split("::")[-1].partition("[")
    profile, _, arm = params.rstrip("]").partition("-")
    if profile != "quick" or not arm:
        raise EvidenceError(f"{nodeid}: give a quick-profile claim test, path::test[quick-<arm>]")
    spec = {"arm": arm, "from_profile": from_profile, "hyperparameters": dict(hyperparameters or {})}
    scaled_config(spec)  # a setting that cannot apply: said here, before the child pytest
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "pytest", nodeid, "-q", "-p", "no:cacheprovider",
                "-p", "fixtures.evidence", "-m", "quick", f"--seeds={seeds}",
                f"--seed-offset={seed_offset}", f"--store={store or Path(tmp) / 'store'}",
                f"--report-dir={Path(tmp) / 'reports'}", f"--workers={workers}"]
        done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True,
                              env=dict(os.environ, **{SCALE_ENV: json.dumps(spec)}))
        claims_file = Path(tmp) / "reports" / "latest" / "claims.json"
        rows = json.loads(claims_file.read_text()) if claims_file.is_file() else []
    row = next((r for r in rows if r["nodeid"].endswith(nodeid.split("/")[-1])), None)
    if row is None or row.get("error") or "effect" not in row:
        raise EvidenceError(f"{nodeid} at scale {scale!r} reached no verdict: "
                            + (row.get("error", "") if row else done.stdout[-3000:] + done.stderr[-2000:]))
    entry = {"scale": scale, "seeds": row["seeds"], "verdict": row["verdict"],
             # The deciding test's effect, CI and Holm p (p_kind: supporting, or refuting for a
             # refuted verdict; entries written before p_kind hold the weakest supporting test's).
             "effect": row["effect"], "ci": row["ci"], "p_holm": row["p_value"],
             "p_kind": row.get("p_kind", "supporting"),
             "effect_unit": row["effect_unit"], "statistic": row["statistic"],
             "reason": row.get("reason", ""),
             "comparisons": [{"label": c["label"], "effect": c["effect"], "ci": c["ci"],
                              "p_holm": c["p_adjusted"], "holds": c["rejected"],
                              "refuted": c["refuted"], "degenerate": c.get("degenerate", False)}
                             for c in row["comparisons"]],
             "from_profile": from_profile or "quick",
             "hyperparameters": spec["hyperparameters"], "commit": code_commit(12, ignoring=[EVIDENCE_DIR]),
             "date": dt.datetime.now(dt.timezone.utc).date().isoformat(), "command": command}
    path = evidence_path(test, arm)
    entries = read_evidence(test, arm) if path.is_file() else []
    entries = [e for e in entries if e["scale"] != scale] + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # written whole or not at all
    tmp_path.write_text(json.dumps(entries, indent=1) + "\n")
    os.replace(tmp_path, path)
    return entry
