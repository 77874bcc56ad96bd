"""The result store: atomic writes, corrupt entries set aside, concurrent writers, JSON only."""

import json
import multiprocessing

import pytest

from harness.runs import store as store_module
from harness.runs.spec import make_spec
from harness.runs.store import ResultStore


def fake_record(spec, value=0.5):
    return {"key": spec.key, "spec": spec.to_dict(), "metrics": {"value": value}}


@pytest.fixture
def spec(synthetic):
    return make_spec("synthetic", "spy", "erm", (100, 20), (1.0,), seed=0)


def test_put_get_round_trip(tmp_path, spec):
    store = ResultStore(tmp_path)
    assert store.get(spec) is None
    store.put(fake_record(spec))
    assert store.get(spec)["metrics"] == {"value": 0.5}
    assert json.loads(store.run_path(spec.key).read_text())["key"] == spec.key  # plain JSON


def test_nan_is_stored_as_null(tmp_path, spec):
    store = ResultStore(tmp_path)
    store.put(fake_record(spec, value=float("nan")))
    assert store.get(spec)["metrics"]["value"] is None


def test_crash_during_write_leaves_no_entry(tmp_path, spec, monkeypatch):
    store = ResultStore(tmp_path)

    def broken_dump(obj, handle, **kwargs):
        handle.write('{"key": "half')
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(store_module.json, "dump", broken_dump)
    with pytest.raises(KeyboardInterrupt):
        store.put(fake_record(spec))
    monkeypatch.undo()
    assert store.get(spec) is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupt_or_mismatched_entry_is_set_aside(tmp_path, spec):
    store = ResultStore(tmp_path)
    path = store.run_path(spec.key)
    path.parent.mkdir(parents=True)
    path.write_text('{"key": "trunc')
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert store.get(spec) is None
    assert path.with_name(path.name + ".corrupt").exists() and not path.exists()
    other = dict(fake_record(spec), key="0" * 24)
    path.write_text(json.dumps(other))
    with pytest.warns(RuntimeWarning, match="does not match"):
        assert store.get(spec) is None


def write_many(root, spec_dict, n):
    from harness.runs.spec import RunSpec

    spec = RunSpec.from_dict(spec_dict)
    store = ResultStore(root)
    for i in range(n):
        store.put({"key": spec.key, "spec": spec_dict, "metrics": {"writer": i}})


def test_two_processes_writing_the_same_key(tmp_path, spec):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=write_many, args=(tmp_path, spec.to_dict(), 200)) for _ in range(2)]
    for p in procs:
        p.start()
    reads = 0
    store = ResultStore(tmp_path)
    while any(p.is_alive() for p in procs):
        record = store.get(spec)  # never a partial file while both write
        reads += record is not None
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert store.get(spec)["metrics"]["writer"] == 199
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.corrupt"))


def test_claims_and_session_round_trip(tmp_path):
    store = ResultStore(tmp_path)
    store.put_claim({"profile": "quick", "nodeid": "claims/test_x.py::test_y[quick]", "verdict": {}})
    assert store.claims("quick")[0]["nodeid"] == "claims/test_x.py::test_y[quick]"
    assert store.claims("full") == []
    store.put_session({"seeds": [0, 1]})
    assert store.session() == {"seeds": [0, 1]}


@pytest.mark.parametrize("content", ["[]", "null", "3", '"text"'])
def test_valid_json_that_is_not_an_object_is_set_aside(tmp_path, spec, content):
    store = ResultStore(tmp_path)
    path = store.run_path(spec.key)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.warns(RuntimeWarning, match="not"):
        assert store.get(spec) is None
    assert path.with_name(path.name + ".corrupt").exists() and not path.exists()
    assert store.records() == []


def test_read_only_store_lends_its_runs_and_refuses_to_train(tmp_path, spec, monkeypatch):
    from harness.runs.runner import Runner
    from harness.runs.store import ReadOnlyStoreError

    writable = ResultStore(tmp_path)
    writable.put(fake_record(spec))
    monkeypatch.setattr(store_module, "writable", lambda root: False)
    store = ResultStore(tmp_path)
    assert store.read_only
    assert store.get(spec)["metrics"] == {"value": 0.5}
    store.put_claim({"profile": "quick", "nodeid": "x"})  # skipped, no error
    store.put_session({"a": 1})
    assert not (tmp_path / "claims").exists() and not (tmp_path / "sessions").exists()
    other = make_spec("synthetic", "spy", "erm", (100, 20), (1.0,), seed=1)
    runner = Runner(store)
    assert runner.run([spec]) and runner.loaded == 1
    with pytest.raises(ReadOnlyStoreError, match="read-only and lacks 1 of the 2 runs"):
        runner.run([spec, other])
    assert runner.trained == 0


def test_a_really_unwritable_directory_is_detected(tmp_path):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.geteuid() == 0:
            pytest.skip("root writes through permission bits; covered by the test above")
        assert ResultStore(locked / "store").read_only
    finally:
        locked.chmod(0o755)
    assert not ResultStore(tmp_path / "fresh").read_only
