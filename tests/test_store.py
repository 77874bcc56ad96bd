"""The result store: atomic writes, corrupt entries set aside, concurrent writers, JSON only."""

import json
import multiprocessing

import pytest

from harness import store as store_module
from harness.spec import make_spec
from harness.store import ResultStore


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
    from harness.spec import RunSpec

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
