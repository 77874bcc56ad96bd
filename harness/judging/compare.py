"""The regression gate: compare two sessions' claim verdicts and flag what moved.

``python -m harness compare BASE NEW`` (two ``claims.json`` files or report directories) and
``pytest ... --baseline=PATH`` both use :func:`compare`. Claims are matched by node id.

* A **flip** is a claim whose verdict changed (supported / refuted / inconclusive, or error /
  skipped for a claim that reached none). Under sequential seeds (``--seeds=auto``) a claim
  that stopped at another number of seeds with the same verdict did not flip: the design
  decides when to stop, the verdict is what is gated (the lines show both stopping points).
* A **drift** is a claim whose verdict held but whose effect left the baseline's confidence
  interval.
* A **missing** claim is in the baseline and not in the new session (a renamed method, another
  method's baseline, a narrower selection): the gate cannot vouch for it, so it fails the gate
  unless ``allow_missing`` (``--allow-missing``) says it is expected. A gate that matched no
  claim fails whatever the options: it would vouch for nothing.
* A **new** claim is in the new session only: listed, not gated (refresh the baseline to gate
  it; with ``--baseline``, pytest fails a new claim that is not supported, since nothing vouches
  for it).

``--fail-on flip`` (default) fails on flips; ``--fail-on drift`` on flips and drifts. A baseline
that is not a list of claim rows, holds none, or is from another profile than the new session,
is an error naming the file, with nothing written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FAIL_ON = ("flip", "drift")


class BaselineError(ValueError):
    """A baseline file cannot be compared; the message names the file and the fix."""


def load_claims(path) -> list[dict]:
    """Claim rows from a ``claims.json`` file or a report directory holding one."""
    path = Path(path)
    file = path / "claims.json" if path.is_dir() else path
    if not file.is_file():
        raise BaselineError(f"{path}: no claims.json there; give a report directory "
                            "(reports/<run-id> or reports/latest) or its claims.json")
    try:
        rows = json.loads(file.read_text())
    except ValueError as err:
        raise BaselineError(f"{file} is not JSON ({err}); give a claims.json a session wrote") from None
    if not isinstance(rows, list) or not all(
            isinstance(r, dict) and {"nodeid", "profile", "verdict"} <= set(r) for r in rows):
        raise BaselineError(f"{file} is not a list of claim rows (each with nodeid, profile and "
                            "verdict); give a claims.json a session wrote")
    if not rows:
        raise BaselineError(f"{file} holds no claims (its session judged none); give the "
                            "claims.json of a session that judged claims")
    return rows


@dataclass
class Comparison:
    flips: list[dict] = field(default_factory=list)    # {nodeid, base, new}
    drifts: list[dict] = field(default_factory=list)   # {nodeid, verdict, base_effect, base_ci, new_effect}
    unchanged: int = 0
    only_in_base: list[str] = field(default_factory=list)   # missing from the new session
    only_in_new: list[str] = field(default_factory=list)
    missing_allowed: bool = False   # --allow-missing: claims only in the baseline do not fail
    base_verdicts: dict = field(default_factory=dict)        # nodeid -> verdict, for the lines
    new_verdicts: dict = field(default_factory=dict)

    @property
    def matched(self) -> int:
        """Claims in both sessions: what the gate vouches for."""
        return self.unchanged + len(self.flips) + len(self.drifts)

    def failed(self, fail_on: str = "flip") -> bool:
        return (bool(self.flips) or (fail_on == "drift" and bool(self.drifts))
                or (bool(self.only_in_base) and not self.missing_allowed) or not self.matched)

    def lines(self) -> list[str]:
        out = [f"{len(self.flips)} verdict(s) flipped, {len(self.drifts)} effect(s) drifted outside "
               f"the baseline's CI, {self.unchanged} unchanged, {len(self.only_in_base)} missing "
               f"(in the baseline, not in this session{', allowed' if self.missing_allowed else ''}), "
               f"{len(self.only_in_new)} new (not gated)"]
        out += [f"  FLIP   {f['nodeid']}: {f['base']} -> {f['new']}" + seeds_moved(f) for f in self.flips]
        out += [f"  DRIFT  {d['nodeid']} ({d['verdict']}): effect {d['new_effect']:+.4g} outside the "
                f"baseline's [{d['base_ci'][0]:+.4g}, {d['base_ci'][1]:+.4g}] (was {d['base_effect']:+.4g})"
                for d in self.drifts]
        out += [f"  MISSING {n} ({self.base_verdicts.get(n, '?')} in the baseline): not in this session"
                for n in self.only_in_base]
        if self.only_in_base and not self.missing_allowed:
            out.append(f"  {len(self.only_in_base)} baseline claim(s) missing fail the gate: a renamed "
                       "method, another method's baseline or a narrower selection (-k, -m, paths) "
                       "gates nothing for them. Select them, refresh the baseline, or pass "
                       "--allow-missing when leaving them out is intended")
        if not self.matched:
            out.append("  the gate matched no claim of the baseline: it vouches for nothing, so it "
                       "fails (even with --allow-missing)")
        out += [f"  NEW    {n}: {self.new_verdicts.get(n, '?')} (not in the baseline, not gated)"
                for n in self.only_in_new]
        return out

    def to_dict(self) -> dict:
        return {"flips": self.flips, "drifts": self.drifts, "unchanged": self.unchanged,
                "only_in_base": self.only_in_base, "only_in_new": self.only_in_new,
                "missing_allowed": self.missing_allowed}


def compare(base: list[dict], new: list[dict], base_name: str = "baseline",
            allow_missing: bool = False) -> Comparison:
    """Flips, drifts and missing claims of ``new`` against ``base`` (claim rows as
    ``claims.json`` holds them).

    Parameters
    ----------
    allow_missing : bool
        Claims of ``base`` absent from ``new`` do not fail the gate (they are still listed).

    Raises
    ------
    BaselineError
        The baseline holds no claim (it could gate nothing), or the two share no profile (a
        quick baseline for a full session, or the reverse).
    """
    if not base:
        raise BaselineError(f"{base_name} holds no claims: a gate against it would pass whatever "
                            "happened; give the claims.json of a session that judged claims")
    base_profiles = {r["profile"] for r in base}
    new_profiles = {r["profile"] for r in new}
    if base and new and not base_profiles & new_profiles:
        raise BaselineError(f"{base_name} holds the {'/'.join(sorted(base_profiles))} profile and "
                            f"this session the {'/'.join(sorted(new_profiles))} profile; compare "
                            "sessions of the same profile")
    result = Comparison(missing_allowed=allow_missing,
                        base_verdicts={r["nodeid"]: r["verdict"] for r in base},
                        new_verdicts={r["nodeid"]: r["verdict"] for r in new})
    base_by_id = {r["nodeid"]: r for r in base}
    new_by_id = {r["nodeid"]: r for r in new}
    result.only_in_base = sorted(set(base_by_id) - set(new_by_id))
    result.only_in_new = sorted(set(new_by_id) - set(base_by_id))
    for nodeid in sorted(set(base_by_id) & set(new_by_id)):
        b, n = base_by_id[nodeid], new_by_id[nodeid]
        if b["verdict"] != n["verdict"]:
            flip = {"nodeid": nodeid, "base": b["verdict"], "new": n["verdict"]}
            if b.get("seeds") or n.get("seeds"):
                flip["seeds"] = [len(b.get("seeds") or []), len(n.get("seeds") or [])]
            result.flips.append(flip)
        elif outside(n.get("effect"), b.get("ci")):
            result.drifts.append({"nodeid": nodeid, "verdict": n["verdict"], "base_effect": b["effect"],
                                  "base_ci": b["ci"], "new_effect": n["effect"]})
        else:
            result.unchanged += 1
    return result


def seeds_moved(flip: dict) -> str:
    """" (at 5 -> 40 seeds)" for a flip between sessions judged on different numbers of seeds."""
    before, after = flip.get("seeds", (0, 0))
    return f" (at {before} -> {after} seeds)" if before != after else ""


def outside(effect, ci) -> bool:
    if effect is None or not ci or ci[0] is None or ci[1] is None:
        return False
    return not ci[0] <= effect <= ci[1]
