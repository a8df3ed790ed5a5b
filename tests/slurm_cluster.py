"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd from Debian's
slurm-wlm, with all state in a temporary directory, stopped when the session ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


class SlurmUnavailable(Exception):
    """Slurm cannot run on this machine; the message says why."""


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    node: str
    cpus: int
    pids: list[int] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str, timeout: float = 60, check: bool = True, **kw):
        return subprocess.run(
            list(args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            **kw,
        )

    def job_state(self, job_id: str) -> str:
        out = self.run("scontrol", "show", "job", job_id, check=False).stdout
        for token in out.split():
            if token.startswith("JobState="):
                return token.split("=", 1)[1]
        return "UNKNOWN"

    def wait_job(self, job_id: str, timeout: float = 60) -> str:
        """Wait until a job leaves PENDING/RUNNING/COMPLETING; return its final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "UNKNOWN"):
                return state
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} still {self.job_state(job_id)} after {timeout}s")


# The test node claims more CPUs and GPUs than this machine has (slurmd accepts that with
# SlurmdParameters=config_overrides), so rank layouts of real sites (12 ranks on Aurora) can be
# launched by the real srun. The ranks only print their binding; they need no real cores.
TEST_CPUS = 16
TEST_GPUS = 12


def _node_line() -> tuple[str, int]:
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(t.split("=", 1) for t in out.splitlines()[0].split())
    line = (
        f"NodeName={fields['NodeName']} CPUs={TEST_CPUS} Boards=1 SocketsPerBoard=1 "
        f"CoresPerSocket={TEST_CPUS} ThreadsPerCore=1 RealMemory={fields['RealMemory']} "
        f"Gres=gpu:{TEST_GPUS}"
    )
    return line, TEST_CPUS


def _start_munge() -> list[int]:
    if MUNGE_SOCKET.exists():
        probe = subprocess.run(["munge", "-n"], capture_output=True)
        if probe.returncode == 0:
            return []
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
        MUNGE_KEY.write_bytes(os.urandom(1024))
    shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_KEY.chmod(0o400)
    MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
    for d in ("/var/lib/munge", "/var/log/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    subprocess.run(
        ["runuser", "-u", "munge", "--", "munged", "--force"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    pid_file = Path("/run/munge/munged.pid")
    for _ in range(50):
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return [int(pid_file.read_text())] if pid_file.exists() else []
        time.sleep(0.1)
    raise SlurmUnavailable("munged did not start")


def start_cluster(root: Path) -> SlurmCluster:
    """Write slurm.conf under ``root`` and start the daemons; raise SlurmUnavailable."""
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "srun", "scontrol"):
        if shutil.which(tool) is None:
            raise SlurmUnavailable(f"{tool} not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting slurmd needs root")
    node_line, cpus = _node_line()
    node = node_line.split()[0].split("=", 1)[1]
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=siteagent-test",
                f"SlurmctldHost={node}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                "MpiDefault=none",
                "SlurmdParameters=config_overrides",
                "GresTypes=gpu",
                "SchedulerType=sched/backfill",
                "SlurmctldTimeout=30",
                "SlurmdTimeout=30",
                "InactiveLimit=0",
                "KillWait=5",
                "MinJobAge=300",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                node_line + " State=UNKNOWN",
                f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    # slurmd counts GPUs from device files: regular files stand in for /dev/nvidia*
    (root / "dev").mkdir(exist_ok=True)
    for i in range(TEST_GPUS):
        (root / "dev" / f"gpu{i}").touch()
    (root / "gres.conf").write_text(
        f"NodeName={node} Name=gpu File={root / 'dev'}/gpu[0-{TEST_GPUS - 1}]\n"
    )
    cluster = SlurmCluster(root=root, conf=conf, node=node, cpus=cpus)
    try:
        cluster.pids += _start_munge()
        env = cluster.env
        subprocess.run(
            ["slurmctld", "-f", str(conf)], env=env, check=True, timeout=30, capture_output=True
        )
        subprocess.run(
            ["slurmd", "-f", str(conf)], env=env, check=True, timeout=30, capture_output=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = cluster.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if out in ("idle", "mixed", "allocated"):
                return cluster
            time.sleep(0.3)
        log = (
            (root / "log" / "slurmd.log").read_text()[-500:]
            if (root / "log" / "slurmd.log").exists()
            else ""
        )
        raise SlurmUnavailable(f"node did not become idle (sinfo: {out!r}); slurmd log: {log}")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        stop_cluster(cluster)
        raise SlurmUnavailable(
            f"{' '.join(map(str, err.cmd))} failed: {getattr(err, 'stderr', '')}"
        ) from err
    except SlurmUnavailable:
        stop_cluster(cluster)
        raise


def stop_cluster(cluster: SlurmCluster) -> None:
    """Stop slurmd and slurmctld (and munged if we started it); leave no daemon behind."""
    for name in ("slurmd.pid", "slurmctld.pid"):
        pid_file = cluster.root / name
        if pid_file.exists():
            _kill(int(pid_file.read_text().strip()))
    for pid in cluster.pids:
        _kill(pid)


def _kill(pid: int, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def hostname() -> str:
    return socket.gethostname().split(".")[0]
