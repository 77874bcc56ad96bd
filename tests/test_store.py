"""The result store: atomic writes, corrupt entries set aside, concurrent writers, JSON only."""

import json
import multiprocessing

import pytest

from harness.runs import store as store_module
from harness.runs.spec import make_spec
from harness.runs.store import ResultStore, StoreLocationError


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


def test_each_session_keeps_its_claims_and_older_claims_have_none(tmp_path):
    store = ResultStore(tmp_path)
    claim = {"profile": "quick", "nodeid": "claims/test_x.py::test_y[quick]", "verdict": {}}
    store.put_claim(claim)  # as harness 0.5 wrote it: no session
    store.put_claim(dict(claim, outcome="error"), "20261130-100000-aaaa")
    store.put_claim(dict(claim, outcome="passed"), "20261130-110000-bbbb")
    store.put_session({"session_id": "20261130-100000-aaaa", "seeds": [0]})
    store.put_session({"seeds": [1]}, "20261130-110000-bbbb")
    assert store.sessions() == ["20261130-100000-aaaa", "20261130-110000-bbbb"]  # oldest first
    assert [c["outcome"] for c in store.claims(session="20261130-100000-aaaa")] == ["error"]
    assert sorted((c["session"] or "", c.get("outcome", "")) for c in store.claims("quick")) == [
        ("", ""), ("20261130-100000-aaaa", "error"), ("20261130-110000-bbbb", "passed")]
    assert store.session() == {"seeds": [1]}  # the latest session's
    assert store.session("20261130-100000-aaaa")["seeds"] == [0]
    assert store.session("20261130-120000-cccc") == {}  # no record: killed, or still running
    with pytest.raises(ValueError, match="not a session id"):
        store.claims(session="../runs")


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
    store.put_claim({"profile": "quick", "nodeid": "x"}, "s1")
    store.put_session({"a": 1})
    store.put_session({"a": 1, "session_id": "s1"})
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
        assert ResultStore(locked).read_only  # an existing store: read-only
        with pytest.raises(StoreLocationError, match="cannot be created"):
            ResultStore(locked / "store")  # a new one it could never write
    finally:
        locked.chmod(0o755)
    assert not ResultStore(tmp_path / "fresh").read_only


def test_a_store_at_a_file_or_beneath_one_is_an_error_naming_the_path(tmp_path):
    """Not a NotADirectoryError at the first run stored: an error when the store is opened."""
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreLocationError, match=f"result store {tmp_path / 'file'} is a file, "
                                                 "not a directory; point --store at a directory"):
        ResultStore(tmp_path / "file")
    with pytest.raises(StoreLocationError, match=f"cannot be created: {tmp_path / 'file'} is a file"):
        ResultStore(tmp_path / "file" / "store" / "v2")


def test_a_new_store_where_nothing_can_be_written_is_an_error(tmp_path, monkeypatch):
    """An existing directory this process cannot write is a read-only store; a directory that
    does not exist there could never hold anything, so it is an error."""
    (tmp_path / "existing").mkdir()
    monkeypatch.setattr(store_module, "writable", lambda root: False)
    assert ResultStore(tmp_path / "existing").read_only
    with pytest.raises(StoreLocationError, match=f"this process cannot write {tmp_path}"):
        ResultStore(tmp_path / "absent")


def test_the_command_line_says_what_is_wrong_with_a_store_path(tmp_path, capsys):
    from harness.__main__ import main

    (tmp_path / "file").write_text("")
    assert main(["report", "--store", str(tmp_path / "file")]) == 2
    assert f"report: result store {tmp_path / 'file'} is a file" in capsys.readouterr().err
    (tmp_path / "a" / "runs").mkdir(parents=True)
    assert main(["merge", str(tmp_path / "a"), "--into", str(tmp_path / "file" / "b")]) == 2
    assert "merge: result store" in capsys.readouterr().err
