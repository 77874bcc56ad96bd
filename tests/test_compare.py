"""The regression gate: flips and drifts between two sessions' claims.json, and bad baselines."""

import json
import subprocess
import sys

import pytest

from harness.judging.compare import BaselineError, compare, load_claims
from harness.data import REPO_ROOT


def row(nodeid, verdict, effect=0.05, ci=(0.03, 0.07), profile="quick"):
    return {"nodeid": nodeid, "profile": profile, "verdict": verdict, "effect": effect, "ci": list(ci)}


BASE = [row("a", "supported"), row("b", "supported"), row("c", "inconclusive", 0.0, (-0.01, 0.01)),
        row("gone", "supported")]


def test_an_identical_session_passes_every_gate():
    result = compare(BASE, BASE)
    assert not result.flips and not result.drifts and result.unchanged == 4
    assert not result.failed("flip") and not result.failed("drift")


def test_a_flipped_verdict_fails_and_a_drift_fails_only_on_drift():
    new = [row("a", "inconclusive"), row("b", "supported", effect=0.2), row("c", "inconclusive", 0.0, (-0.01, 0.01)),
           row("new", "supported")]
    result = compare(BASE, new)
    assert result.flips == [{"nodeid": "a", "base": "supported", "new": "inconclusive"}]
    assert [d["nodeid"] for d in result.drifts] == ["b"]
    assert result.only_in_base == ["gone"] and result.only_in_new == ["new"]
    assert result.failed("flip") and result.failed("drift")
    drift_only = compare(BASE, [row("a", "supported"), row("b", "supported", effect=0.2)] + BASE[2:])
    assert not drift_only.failed("flip") and drift_only.failed("drift")
    assert any("DRIFT  b" in line for line in drift_only.lines())


def test_a_baseline_from_another_profile_is_refused():
    with pytest.raises(BaselineError, match="same profile"):
        compare(BASE, [row("a", "supported", profile="full")])


@pytest.mark.parametrize("content", ["{not json", json.dumps({"nodeid": "a"}), json.dumps([{"x": 1}])])
def test_a_malformed_baseline_is_a_clear_error(tmp_path, content):
    file = tmp_path / "claims.json"
    file.write_text(content)
    with pytest.raises(BaselineError, match="claims.json"):
        load_claims(file)


def test_a_report_directory_is_read_through_its_claims_json(tmp_path):
    (tmp_path / "claims.json").write_text(json.dumps(BASE))
    assert load_claims(tmp_path) == BASE
    with pytest.raises(BaselineError, match="no claims.json"):
        load_claims(tmp_path / "absent")


def test_compare_command_exit_codes(tmp_path):
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    base.write_text(json.dumps(BASE))
    new.write_text(json.dumps([row("a", "refuted")] + BASE[1:]))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "harness", "compare", *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    assert run(str(base), str(base)).returncode == 0
    (tmp_path / "other.json").write_text(json.dumps([dict(r, nodeid=r["nodeid"] + "x") for r in BASE]))
    missing = run(str(base), str(tmp_path / "other.json"))
    assert missing.returncode == 1 and "MISSING gone" in missing.stdout and "FAILED" in missing.stdout
    assert run(str(base), str(tmp_path / "other.json"), "--allow-missing").returncode == 1
    (tmp_path / "fewer.json").write_text(json.dumps(BASE[:2]))
    assert run(str(base), str(tmp_path / "fewer.json"), "--allow-missing").returncode == 0
    flipped = run(str(base), str(new))
    assert flipped.returncode == 1 and "FLIP   a: supported -> refuted" in flipped.stdout
    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = run(str(tmp_path / "bad.json"), str(new))
    assert bad.returncode == 2 and "not a list of claim rows" in bad.stderr


def test_a_baseline_claim_missing_from_the_session_fails_unless_allowed():
    """Issue 20: a renamed method (or another method's baseline) matched nothing and passed."""
    renamed = [dict(r, nodeid=r["nodeid"] + "-v2") for r in BASE]
    result = compare(BASE, renamed)
    assert result.only_in_base == sorted(r["nodeid"] for r in BASE) and result.unchanged == 0
    assert result.failed("flip") and result.failed("drift")
    lines = "\n".join(result.lines())
    assert "MISSING a (supported in the baseline): not in this session" in lines
    assert "--allow-missing" in lines and "NEW    a-v2: supported (not in the baseline, not gated)" in lines
    # One missing claim among unchanged ones fails too, unless allowed.
    assert compare(BASE, BASE[:3]).failed("flip")
    allowed = compare(BASE, BASE[:3], allow_missing=True)
    assert not allowed.failed("flip") and allowed.to_dict()["missing_allowed"]
    # A gate that matched nothing fails even when missing claims are allowed: it vouches for
    # nothing (the auditor's "any unrelated baseline plus --allow-missing turns CI green").
    nothing = compare(BASE, renamed, allow_missing=True)
    assert nothing.failed("flip") and "matched no claim" in "\n".join(nothing.lines())


def test_an_empty_baseline_gates_nothing_and_is_refused(tmp_path):
    with pytest.raises(BaselineError, match="holds no claims"):
        compare([], BASE)
    (tmp_path / "claims.json").write_text("[]")
    with pytest.raises(BaselineError, match="holds no claims"):
        load_claims(tmp_path)


def test_a_different_stopping_n_with_the_same_verdict_is_no_flip():
    """Sequential seeds: the same verdict reached at 10 seeds and at 40 is unchanged; another
    verdict at another n is a flip that names both."""
    base = [dict(row("a", "supported"), seeds=list(range(10))), dict(row("b", "inconclusive", 0.0, (-0.01, 0.01)), seeds=list(range(5)))]
    new = [dict(row("a", "supported", effect=0.04), seeds=list(range(40))),
           dict(row("b", "refuted", 0.0, (-0.01, 0.01)), seeds=list(range(80)))]
    result = compare(base, new)
    assert result.unchanged == 1 and [f["nodeid"] for f in result.flips] == ["b"]
    assert any("FLIP   b: inconclusive -> refuted (at 5 -> 80 seeds)" in line for line in result.lines())
