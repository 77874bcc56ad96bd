"""``--executor=slurm`` against a real one-node Slurm cluster on this machine.

A session fixture starts Slurm on localhost (:mod:`tests.slurm_cluster`: munged, slurmctld and
slurmd on a config of their own in a temporary directory, no cgroups, no accounting) and stops
the daemons it started at the end. Where Slurm cannot be started (not root, not installed: run
``.ci/install-slurm`` as root) every test here skips with the reason, except under
``IMBALANCE_REQUIRE_SLURM=1`` (``.ci/run`` sets it), where that is a failure.

The tests run the real claims in a subprocess, a small tabular selection: takeaway 3's quick
Adult arm (``claims/test_takeaway3_minority_fitting.py -m quick -k adult``: two claims on the arm
``t3-adult-xgboost``) at ``--seeds=3``, i.e. 45 XGBoost runs (5 ratios x 3 methods x 3 seeds;
at the quick profile's 5 seeds, 75 runs took 3 min here, too long to run four times; at 2 seeds
the arm's sanity gate cannot pass, so the claims would not be green even when nothing failed).
They check that

* the Slurm session (job arrays of ``--slurm-runs-per-job`` runs, one CPU each, no GPU asked
  for) gives per-run records identical to the local executor's, the same verdicts, and no
  submitit/sacct noise;
* a job cancelled with ``scancel`` mid-run does not hang the session: its missing runs are
  reported (``JobFailed``: "ended without this run's result"), the claims needing them end in
  errors, not verdicts, and the next session on the same store trains exactly the missing runs,
  after which the records match the local executor's.

Measured with Slurm 22.05.8 (Debian 12's ``slurmctld slurmd munge slurm-client``, packages
22.05.8-4+deb12u3, munge 0.5.15) and submitit 1.5.4, on 2 cores: the cluster starts in ~2 s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import slurm_cluster

REPO = Path(__file__).resolve().parents[1]
SELECTION = ["claims/test_takeaway3_minority_fitting.py", "-m", "quick", "-k", "adult"]
SEEDS = 3
RUNS = 5 * 3 * SEEDS  # t3-adult-xgboost at the quick profile: 5 ratios x 3 methods x seeds
SESSION_TIMEOUT_S = 420
# What a session must not print: submitit's job-state watcher failing on sacct (no accounting).
NOISE = re.compile(r"sacct|Bypassing|accounting storage is disabled|submitit (WARNING|ERROR)")


# --------------------------------------------------------------- without a cluster (fake tools)

def fake_slurm(tmp: Path, monkeypatch, squeue: str) -> Path:
    """``sbatch``, ``squeue`` and ``sacct`` on PATH as shell scripts: sbatch accepts every job
    (id 7), squeue runs ``squeue``, sacct fails as it does without accounting (and leaves a mark)."""
    fake = tmp / "bin"
    fake.mkdir()
    tools = {"sbatch": 'echo "Submitted batch job 7"',
             "squeue": squeue,
             "sacct": f'touch {tmp / "sacct-called"}; echo "Slurm accounting storage is disabled" >&2; exit 1',
             "scancel": "exit 0"}
    for tool, body in tools.items():
        (fake / tool).write_text(f"#!/bin/sh\n{body}\n")
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    return fake


@pytest.mark.parametrize("squeue, why", [
    # squeue lists finished jobs for MinJobAge: 7_0 holds "a" and "bb", 7_1 "ccc"
    ("printf '7_0|CANCELLED\\n7_1|TIMEOUT\\n'",
     {"a": "state CANCELLED", "bb": "state CANCELLED", "ccc": "state TIMEOUT"}),
    # ... and forgets them after: asked only about forgotten jobs, it fails
    ("echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
     dict.fromkeys(["a", "bb", "ccc"], "no longer in Slurm's queue")),
], ids=["listed-as-ended", "purged"])
def test_a_job_that_ended_without_results_fails_its_runs_without_sacct(tmp_path, monkeypatch, capfd,
                                                                        squeue, why):
    """Without accounting, submitit's ``job.done()`` asks sacct, which fails: the state stays
    UNKNOWN and a cancelled job was waited for forever (``job.exception()`` waits the same way).
    Job states come from squeue. Also: a tabular-only selection asks for no GPU (its CPU part
    starts at index 0, which the GPU split took for the GPU part)."""
    from harness.runs import executors

    fake_slurm(tmp_path, monkeypatch, squeue)
    executor = executors.SubmititExecutor(tmp_path / "jobs", cluster="slurm", gpus_per_job=1,
                                          cpus_per_job=1, runs_per_job=2)
    executor.poll_s, executor.state_every_s, executor.spool_grace_s = 0.05, 0.0, 0.2
    started = time.monotonic()
    try:
        outcomes = list(executor.submit_all(len, ["a", "bb", "ccc"]))
    finally:
        executor.close()
    assert time.monotonic() - started < 20
    errors = {item: error for item, _, error in outcomes}
    assert set(errors) == set(why)
    for item, error in errors.items():
        assert isinstance(error, executors.JobFailed), error
        assert f"ended without this run's result ({why[item]})" in str(error), error
    assert not (tmp_path / "sacct-called").exists()
    scripts = list((tmp_path / "jobs").glob("**/.submission_file_*.sh"))
    assert scripts and not any("--gpus" in s.read_text() for s in scripts)
    captured = capfd.readouterr()
    assert not NOISE.findall(captured.out + captured.err)


def test_a_result_that_reaches_the_spool_after_its_job_ended_is_not_lost(tmp_path, monkeypatch):
    """On a network file system a result written on a compute node shows on the login node
    seconds after squeue says the job is over: within the grace it is delivered, not failed."""
    import pickle
    import threading

    from harness.runs import executors

    fake_slurm(tmp_path, monkeypatch, "printf '7_0|COMPLETED\\n'")
    executor = executors.SubmititExecutor(tmp_path / "jobs", cluster="slurm", gpus_per_job=0,
                                          cpus_per_job=1, runs_per_job=1)
    executor.poll_s, executor.state_every_s, executor.spool_grace_s = 0.05, 0.0, 2.0

    def late_result():  # the job's result, a second after the job is over
        time.sleep(1.0)
        [spool] = (tmp_path / "jobs" / "spool").iterdir()
        with open(spool / "0.pkl.tmp", "wb") as handle:
            pickle.dump(("ok", 42), handle)
        os.replace(spool / "0.pkl.tmp", spool / "0.pkl")

    writer = threading.Thread(target=late_result)
    writer.start()
    try:
        [(item, value, error)] = list(executor.submit_all(len, ["a"]))
    finally:
        executor.close()
        writer.join()
    assert (item, value, error) == ("a", 42, None)


def test_without_slurm_the_cluster_says_why(monkeypatch):
    monkeypatch.setattr(slurm_cluster, "which", lambda name: None if name == "slurmd" else "/bin/true")
    monkeypatch.setattr(os, "getuid", lambda: 0)
    reason = slurm_cluster.start()
    assert isinstance(reason, str) and "slurmd not found" in reason and ".ci/install-slurm" in reason
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    assert "root" in slurm_cluster.start()


# ----------------------------------------------------------------------------- a real cluster

# Set by .ci/run, which installs Slurm: there a cluster that cannot start is a failure, not a skip.
REQUIRE_ENV = "IMBALANCE_REQUIRE_SLURM"


@pytest.fixture(scope="session")
def cluster():
    started = slurm_cluster.start()
    if isinstance(started, str):
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"no Slurm cluster ({REQUIRE_ENV} is set, as .ci/run sets it): {started}")
        pytest.skip(f"no Slurm cluster: {started}")
    try:
        yield started
    finally:
        started.stop()


def claims_session(tmp: Path, name: str, *args: str, env: dict | None = None, background=False):
    """Run the selection as its own pytest session with store ``tmp/name``; the finished process
    (or, with ``background``, the running one) with its output in ``tmp/name.out``."""
    argv = [sys.executable, "-m", "pytest", *SELECTION, "-p", "no:cacheprovider", "-p", "no:randomly",
            "-q", f"--seeds={SEEDS}", f"--store={tmp / name}", f"--report-dir={tmp / ('rep-' + name)}",
            f"--job-logs={tmp / ('jobs-' + name)}", f"--progress-log={tmp / ('p-' + name + '.log')}",
            *args]
    with open(tmp / f"{name}.out", "w") as out:  # the child keeps its own copy of the file
        proc = subprocess.Popen(argv, cwd=REPO, env=env or dict(os.environ), stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    if background:
        return proc
    try:
        proc.wait(timeout=SESSION_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"session {name} ran past {SESSION_TIMEOUT_S} s:\n{output(tmp, name)[-3000:]}")
    return proc


def output(tmp: Path, name: str) -> str:
    return (tmp / f"{name}.out").read_text(errors="replace")


def records(store: Path) -> dict[str, dict]:
    """Run key -> what a run measured (metrics, data fingerprints, class names, the spec), without
    where and when it ran."""
    found = {}
    for path in (store / "runs").glob("*/*.json"):
        record = json.loads(path.read_text())
        found[record["key"]] = {k: record[k] for k in ("spec", "metrics", "fingerprints", "class_names")}
    return found


def claim_outcomes(store: Path) -> dict[str, str]:
    """Claim test id -> its outcome, for the one session in ``store`` that wrote claims last."""
    sessions = sorted((store / "sessions").iterdir())
    found = {}
    for path in (sessions[-1] / "claims").glob("*/*.json"):
        claim = json.loads(path.read_text())
        found[claim["nodeid"].split("::")[-1]] = claim["outcome"]
    return found


def verdicts(text: str) -> list[str]:
    """The verdict lines of a session's summary, without p-values' last digits."""
    section = text.split("imbalance-claims verdicts", 1)[-1]
    return sorted(line.split(" p_holm")[0].strip() for line in section.splitlines()
                  if line.startswith("  ") and "quick-t3-adult" in line)


def summary_counts(text: str) -> tuple[int, int]:
    """``(trained, loaded)`` from the session's "N runs trained, M loaded" line."""
    match = re.search(r"(\d+) runs trained, (\d+) loaded", text)
    assert match, text[-2000:]
    return int(match.group(1)), int(match.group(2))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("slurm-claims")


@pytest.fixture(scope="module")
def local_records(cluster, work):
    """The selection's records under the local executor (the reference)."""
    proc = claims_session(work, "local", "--executor=local", "--workers=2")
    text = output(work, "local")
    assert proc.returncode == 0, text[-3000:]
    found = records(work / "local")
    assert len(found) == RUNS, text[-3000:]
    return found, verdicts(text)


def slurm_args(runs_per_job: int) -> list[str]:
    return ["--executor=slurm", "--slurm-cpus-per-job=1", f"--slurm-runs-per-job={runs_per_job}",
            "--slurm-time-min=15"]


def test_slurm_session_matches_the_local_executor(cluster, work, local_records):
    reference, reference_verdicts = local_records
    proc = claims_session(work, "slurm", *slurm_args(4), env=cluster.env)
    text = output(work, "slurm")
    assert proc.returncode == 0, text[-3000:]
    assert records(work / "slurm") == reference  # every run key, identical metrics
    assert verdicts(text) == reference_verdicts and len(reference_verdicts) == 2
    assert all(v.startswith("PASSED") for v in reference_verdicts), reference_verdicts
    assert summary_counts(text) == (RUNS, 0)
    assert not NOISE.findall(text), [line for line in text.splitlines() if NOISE.search(line)]
    # job arrays: ceil(45 / 4) = 12 array tasks of one job, each asked for no GPU
    tasks = [p.name for p in (work / "jobs-slurm").iterdir() if re.fullmatch(r"\d+_\d+", p.name)]
    assert len(tasks) == -(-RUNS // 4) and len({t.split("_")[0] for t in tasks}) == 1, tasks
    scripts = list((work / "jobs-slurm").glob(".submission_file_*.sh"))
    assert scripts and not any("--gpus" in s.read_text() for s in scripts)


# A cancelled task trains on for KillWait (5 s: submitit's job ignores SIGTERM) before Slurm kills
# it. The victim is taken while it has at most this many results, so that it still has far more
# runs left than it can train in those 5 s (a tabular run takes 0.5-1 s): otherwise, on an idle
# machine, it finished every run before the kill and nothing went missing (a flaky test).
MOST_DONE_AT_CANCEL = 3


def running_task_with_results(cluster, work, name: str, runs_per_job: int) -> str | None:
    """A running array task that has spooled some of its runs' results, but few."""
    done = {int(p.stem) for p in (work / f"jobs-{name}").glob("spool/*/*.pkl")}
    for job_id, state in cluster.jobs():
        if state == "RUNNING" and "_" in job_id:
            task = int(job_id.split("_")[1])
            mine = set(range(task * runs_per_job, min(RUNS, (task + 1) * runs_per_job)))
            if 0 < len(done & mine) <= MOST_DONE_AT_CANCEL:
                return job_id
    return None


def test_a_cancelled_job_is_reported_and_its_runs_retrained(cluster, work, local_records):
    reference, _ = local_records
    runs_per_job = 23  # two array tasks, both at once on two cores: 10-25 s each
    proc = claims_session(work, "cancel", *slurm_args(runs_per_job), env=cluster.env, background=True)
    try:
        deadline, victim = time.monotonic() + 240, None
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            victim = running_task_with_results(cluster, work, "cancel", runs_per_job)
        assert victim, f"no running task with results to cancel:\n{output(work, 'cancel')[-3000:]}"
        cluster.run("scancel", victim)
        # The session must notice the job is over (no accounting: sacct has nothing) and end.
        proc.wait(timeout=SESSION_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output(work, "cancel")
    kept = records(work / "cancel")
    missing = set(reference) - set(kept)
    assert missing and len(kept) + len(missing) == RUNS, text[-3000:]
    assert {k: reference[k] for k in kept} == kept  # what the cancelled session kept is right
    assert proc.returncode == 1, text[-3000:]  # claims failed, not a crash or a usage error
    assert f"job {victim} ended without this run's result (state CANCELLED)" in text, text[-3000:]
    assert f"{len(missing)} failed" in text  # the progress line counts them
    # Not judged on missing runs: both claims end in an error naming the failed runs.
    assert claim_outcomes(work / "cancel") == {
        "test_minority_training_error_exceeds_majority[quick-t3-adult-xgboost]": "error",
        "test_oversampling_improves_xgboost_balanced_error[quick-t3-adult-xgboost]": "error"}
    failed = re.findall(r"RunFailed: (\d+) of \d+ runs failed", text)
    assert failed and all(int(n) == len(missing) for n in failed), text[-3000:]
    assert not NOISE.findall(text), [line for line in text.splitlines() if NOISE.search(line)]

    again = claims_session(work, "cancel", *slurm_args(runs_per_job), env=cluster.env)
    text = output(work, "cancel")
    assert again.returncode == 0, text[-3000:]
    assert summary_counts(text) == (len(missing), len(kept))  # exactly the missing runs trained
    assert records(work / "cancel") == reference
    assert all(outcome == "passed" for outcome in claim_outcomes(work / "cancel").values())
