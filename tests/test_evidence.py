"""Evidence behind quick-scale expected failures: the files, the scale a search applies, and
``python -m harness evidence`` end to end."""

from __future__ import annotations

import json

import pytest

from harness.experiments import evidence, protocols

from .conftest import shared_data_available

VERDICTS = {"supported", "refuted", "inconclusive"}


def test_every_evidence_file_names_a_claim_and_holds_whole_entries():
    files = sorted(evidence.EVIDENCE_DIR.glob("*.json"))
    assert files, "no evidence files: every quick expected failure keeps its numbers"
    for path in files:
        test, _, arm = path.stem.partition("--")
        assert arm in protocols.arms("quick"), path.name
        module = next(m for m in (evidence.REPO_ROOT / "claims").glob("test_*.py") if f"def {test}(" in m.read_text())
        assert module, path.name
        entries = evidence.read_evidence(test, arm)
        assert any(e["scale"] == "quick" for e in entries), f"{path.name}: no entry at the quick scale itself"
        for entry in entries:
            assert set(evidence.FIELDS) <= set(entry), (path.name, set(evidence.FIELDS) - set(entry))
            assert entry["verdict"] in VERDICTS and len(entry["seeds"]) >= 2
            assert entry["command"].startswith("python -m harness evidence ")


def test_a_missing_or_malformed_file_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "EVIDENCE_DIR", tmp_path)
    with pytest.raises(evidence.EvidenceError, match="python -m harness evidence"):
        evidence.read_evidence("test_x", "t1-adult-xgboost")
    (tmp_path / "test_x--t1-adult-xgboost.json").write_text('{"scale": "quick"}')
    with pytest.raises(evidence.EvidenceError, match="list of entries"):
        evidence.read_evidence("test_x", "t1-adult-xgboost")


def test_a_scale_changes_one_quick_arm_only(monkeypatch):
    monkeypatch.setitem(protocols.PROFILES, "quick", dict(protocols.PROFILES["quick"]))
    before = protocols.PROFILES["quick"]["t4-cifar10-binary-ssl"]
    evidence.apply_scale({"arm": "t4-cifar10-binary-ssl",
                          "hyperparameters": {"simclr.epochs": 100, "epochs": 25}})
    after = protocols.PROFILES["quick"]["t4-cifar10-binary-ssl"]
    assert dict(after.hyperparameters) == {**dict(before.hyperparameters), "epochs": 25}
    assert after.settings_for("simclr") == {**before.settings_for("simclr"), "epochs": 100}
    evidence.apply_scale({"arm": "t1-adult-xgboost", "from_profile": "full", "hyperparameters": {}})
    assert protocols.PROFILES["quick"]["t1-adult-xgboost"].train_ratios == protocols.FULL_RATIOS
    evidence.apply_scale({"arm": "t2-cifar10-binary-nn", "hyperparameters": {"epochs": 15}})
    assert dict(protocols.PROFILES["quick"]["t2-cifar10-binary-nn"].hyperparameters) == {"epochs": 15}
    assert protocols.PROFILES["quick"]["t1-cifar10-nn"] is not None  # the others as they were


def test_settings_parse_as_json_values():
    assert evidence.parse_settings(["epochs=15", "laplace.subset=all", "lr=0.005"]) == {
        "epochs": 15, "laplace.subset": "all", "lr": 0.005}


def test_a_scale_names_a_method_s_setting_with_its_method():
    for scale, match in [({"sghmc_cycles": 1}, r"--set sghmc.cycles=\.\.\. \(since harness 0.6"),
                         ({"finetune_lr_scale": 0.1}, r"--set simclr.finetune_lr_scale"),
                         ({"sam.rho": 0.1}, "runs no method 'sam'")]:
        arm = "t5-cifar10-bayesian" if "sghmc" in str(scale) else "t4-cifar10-binary-ssl"
        with pytest.raises(evidence.EvidenceError, match=match):
            evidence.scaled_config({"arm": arm, "hyperparameters": scale})
    with pytest.raises(evidence.EvidenceError, match="has no arm"):
        evidence.scaled_config({"arm": "t9-nothing", "hyperparameters": {}})
    with pytest.raises(evidence.EvidenceError, match="key=value"):
        evidence.parse_settings(["epochs"])


@pytest.mark.skipif(not shared_data_available("covtype/covtype-sample.csv.gz"), reason="Forest Cover not present")
def test_collect_runs_the_claim_at_the_scale_and_writes_its_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "EVIDENCE_DIR", tmp_path / "evidence")
    nodeid = ("claims/test_takeaway1_train_test_ratio.py::test_training_at_test_ratio_is_near_optimal"
              "[quick-t1-covtype-linear_svm]")
    entry = evidence.collect(nodeid, "C = 0.5, 2 seeds", None, {"C": 0.5}, seeds=2,
                             store=str(tmp_path / "store"), command="python -m harness evidence ...")
    assert entry["seeds"] == [0, 1] and entry["verdict"] in VERDICTS and entry["hyperparameters"] == {"C": 0.5}
    written = json.loads((tmp_path / "evidence" / "test_training_at_test_ratio_is_near_optimal--"
                          "t1-covtype-linear_svm.json").read_text())
    assert written == [entry]
    runs = [json.loads(p.read_text()) for p in (tmp_path / "store").rglob("*.json") if "runs" in p.parts]
    assert runs and all(dict(map(tuple, r["spec"]["hyperparameters"]))["C"] == 0.5 for r in runs)
    with pytest.raises(evidence.EvidenceError, match="quick-profile claim"):
        evidence.collect(nodeid.replace("quick-", "full-"), "x")
