"""A one-node Slurm cluster on localhost, for tests of ``--executor=slurm`` (no harness imports).

:func:`start` writes a munge key and a ``slurm.conf`` into a temporary directory, starts
``munged``, ``slurmctld`` and ``slurmd`` from them (each in the foreground of a child process of
ours), and waits until ``sinfo`` shows the node idle. Nothing of the system's setup is used or
changed: munged listens on a socket in that directory (``AuthInfo=socket=...`` points Slurm at
it), the daemons read the file given with ``-f`` and the clients the one named by ``SLURM_CONF``
(:attr:`Cluster.env`), and the ports are free ones picked here, so ``/etc/slurm``,
``/etc/munge`` and any packaged daemons are left alone. :meth:`Cluster.stop` stops exactly the
processes it started.

The node is configured the way a machine without cgroup delegation (a container, a VM without
systemd) can run it: ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``, no
``cgroup.conf``, no accounting (``AccountingStorageType=accounting_storage/none``, so ``sacct``
has nothing to say), the machine's real CPUs and memory (``slurmd -C``).

Where the daemons cannot run here (not root, binaries missing, a daemon that dies or a node that
never comes up) :func:`start` returns the reason as a string instead of raising, for a test to
skip with. ``.ci/install-slurm`` installs the binaries (Debian's ``slurmctld slurmd munge
slurm-client``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")  # daemons live here, often off a user's PATH


def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def free_ports(n: int) -> tuple[int, ...]:
    """``n`` distinct free ports (all sockets held open while picking, so no two are equal)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in sockets)


@dataclass
class Cluster:
    """A running one-node cluster: its directory, config and the daemons we started."""

    root: Path
    conf: Path
    node: str
    cpus: int
    processes: dict = field(default_factory=dict)  # name -> subprocess.Popen, in start order
    started_s: float = 0.0  # how long start() took

    @property
    def env(self) -> dict:
        """Environment for Slurm's clients (sbatch, squeue, scancel, sinfo, sacct) and for
        anything that calls them: ``os.environ`` plus ``SLURM_CONF``, with the daemons' ``sbin``
        on ``PATH``."""
        env = dict(os.environ, SLURM_CONF=str(self.conf))
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), *SBIN])
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              check=check, timeout=timeout)

    def log(self, name: str, lines: int = 30) -> str:
        path = self.root / "log" / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {path})"

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    def jobs(self) -> list[tuple[str, str]]:
        """``(job id, state)`` of every job the controller knows (array tasks one per line)."""
        out = self.run("squeue", "-h", "-r", "--states=all", "-o", "%i|%T")
        return [tuple(line.split("|", 1)) for line in out.stdout.splitlines() if "|" in line]

    def stop(self, keep_files: bool = False) -> None:
        """Cancel what is queued, stop the daemons we started (last started first), and remove
        the cluster's directory unless ``keep_files`` (its logs, for a post-mortem)."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--user", str(os.getuid()), check=False, timeout=10)
        for name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.processes.clear()
        reap_job_steps(self.root)
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)


def reap_job_steps(root: Path) -> None:
    """Kill any ``slurmstepd`` of this cluster left behind (stepd outlives slurmd by design)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if cmdline.startswith("slurmstepd") and str(root).encode() in environ:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


def slurm_conf(root: Path, node: str, hardware: str, ports: tuple[int, int]) -> str:
    state, spool, log = root / "state", root / "spool", root / "log"
    return f"""\
# One-node test cluster written by tests/slurm_cluster.py
ClusterName=harness-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "munge" / "munge.socket"}
StateSaveLocation={state}
SlurmdSpoolDir={spool}/%n
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={log / "slurmctld.log"}
SlurmdLogFile={log / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=300
# Seconds between a cancelled job's SIGTERM and its SIGKILL (default 30). submitit's job ignores
# SIGTERM ("Bypassing signal SIGTERM", it waits for USR2 or the kill), so a job cancelled by a
# test would otherwise train on for 30 s.
KillWait=5
SlurmdTimeout=60
{hardware} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def start(timeout_s: float = 60) -> Cluster | str:
    """Start a one-node cluster on localhost; the :class:`Cluster`, or why it cannot run here."""
    began = time.monotonic()
    if os.name != "posix" or not hasattr(os, "getuid"):
        return "Slurm runs on Linux only"
    if os.getuid() != 0:
        return "starting slurmd needs root (it runs jobs as their users); run as root"
    missing = [b for b in BINARIES if which(b) is None]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} not found); run .ci/install-slurm "
                "as root (Debian: slurmctld slurmd munge slurm-client)")
    node = socket.gethostname().split(".")[0]
    hw = subprocess.run([which("slurmd"), "-C"], check=False, capture_output=True, text=True,
                        timeout=30)
    hardware = hw.stdout.splitlines()[0] if hw.returncode == 0 and hw.stdout.startswith("NodeName=") else ""
    if not hardware:
        return f"`slurmd -C` could not describe this machine: {hw.stderr.strip()[:300]}"
    fields = dict(part.split("=", 1) for part in hardware.split() if "=" in part)
    cpus = int(fields.get("CPUs", "1"))
    hardware = " ".join(f"{k}={v}" for k, v in fields.items() if k != "NodeName")
    hardware = f"NodeName={node} {hardware}"

    root = Path(tempfile.mkdtemp(prefix="slurm-test-"))
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir(mode=0o700)
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, node, hardware, free_ports(2)))
    cluster = Cluster(root=root, conf=conf, node=node, cpus=cpus)
    try:
        reason = start_daemons(cluster, timeout_s)
    except (OSError, subprocess.SubprocessError) as err:
        reason = f"{type(err).__name__}: {err}"
    if reason:
        cluster.stop()
        return reason
    cluster.started_s = time.monotonic() - began
    return cluster


def start_daemons(cluster: Cluster, timeout_s: float) -> str:
    """Start munged, slurmctld and slurmd; "" once the node is idle, else why not."""
    root, munge = cluster.root, cluster.root / "munge"
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    daemons = [
        # --force: munged refuses to run as root, and checks the whole path of its socket and
        # key for directories others could write (/tmp is one, however sticky)
        ("munged", [which("munged"), "--foreground", "--force", f"--key-file={key}",
                    f"--socket={munge / 'munge.socket'}", f"--pid-file={munge / 'munged.pid'}",
                    f"--seed-file={munge / 'munged.seed'}", f"--log-file={root / 'log' / 'munged.log'}"]),
        ("slurmctld", [which("slurmctld"), "-D", "-i", "-f", str(cluster.conf)]),
        ("slurmd", [which("slurmd"), "-D", "-f", str(cluster.conf)]),
    ]
    for name, argv in daemons:
        with open(root / "log" / f"{name}.out", "wb") as out:
            # A session of its own: a test's Ctrl-C does not reach the daemons before stop() does
            cluster.processes[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                       stdin=subprocess.DEVNULL, env=cluster.env,
                                                       start_new_session=True)
        proc = cluster.processes[name]
        wait_for(lambda p=proc, n=name: p.poll() is not None or daemon_ready(cluster, n), 20)
        if proc.poll() is not None or not daemon_ready(cluster, name):
            what = "exited" if proc.poll() is not None else "did not come up"
            out = (root / "log" / f"{name}.out").read_text(errors="replace").strip()[-800:]
            return (f"{name} {what} (exit {proc.returncode}); its output: {out or '(none)'}; "
                    f"its log: {cluster.log(name, 10)}")
    if not wait_for(lambda: cluster.node_state() == "idle", timeout_s):
        return (f"node {cluster.node} not idle after {timeout_s:.0f} s (sinfo: "
                f"{cluster.node_state() or 'no answer'}); slurmd log: {cluster.log('slurmd', 10)}")
    return ""


def daemon_ready(cluster: Cluster, name: str) -> bool:
    if name == "munged":
        return (cluster.root / "munge" / "munge.socket").exists()
    if name == "slurmctld":
        return cluster.run("sinfo", "-h", check=False, timeout=10).returncode == 0
    return True  # slurmd: the node's state says (the caller waits for idle)


def wait_for(ready, timeout_s: float, every_s: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(every_s)
    return False
