"""A throwaway SLURM cluster (munged, slurmctld, one slurmd) on free loopback ports.

All three daemons run in the foreground as children of the test process, with their keys, state,
spool, sockets and logs in one temporary directory. Clients (``sbatch``, ``squeue``, ``scancel``,
and so batchspawner) find the cluster through ``SLURM_CONF``: see :attr:`SlurmCluster.env`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from .process import Daemon, free_port, port_open

NODE = "node1"


class SlurmCluster:
    """One controller and one compute node (``node1``, partition ``debug``) running as root.

    No cgroups are used (``proctrack/linuxproc``, ``task/none``, ``CgroupPlugin=cgroup/v1``, whose
    init touches no files), so it runs in a container or on a cgroup-v2 host alike.
    """

    def __init__(self, workdir: Path, cpus: int = 2, memory_mb: int = 2000) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.ctld_port = free_port()
        self.slurmd_port = free_port()
        self.munge_dir = self.dir / "munge"
        self.run_dir = self.dir / "run"
        self.munge_socket = self.run_dir / "munge.sock"
        self.conf = self.dir / "slurm.conf"
        self.daemons: list[Daemon] = []
        self._configure()

    @property
    def env(self) -> dict[str, str]:
        """Environment additions that point SLURM clients at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _configure(self) -> None:
        self.munge_dir.mkdir(mode=0o700, exist_ok=True)
        self.run_dir.mkdir(mode=0o755, exist_ok=True)
        for name in ("state", "spool"):
            (self.dir / name).mkdir(exist_ok=True)
        key = self.munge_dir / "munge.key"
        if not key.exists():
            _run(["mungekey", "--create", f"--keyfile={key}"])
        key.chmod(0o600)
        host = socket.gethostname().split(".")[0]
        # Ports for srun's step I/O must not clash with another cluster on this machine.
        srun_low = 20000 + (self.ctld_port % 20000)
        lines = [
            "ClusterName=gridhubtest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            f"SrunPortRange={srun_low}-{srun_low + 50}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={self.dir / 'state'}",
            f"SlurmdSpoolDir={self.dir / 'spool'}",
            f"SlurmctldPidFile={self.run_dir / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.run_dir / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.dir / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "PropagateResourceLimits=NONE",
            "SchedulerParameters=sched_interval=1",
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (self.dir / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, **self.env}
        munged = Daemon(
            "munged",
            [
                "/usr/sbin/munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={self.munge_dir / 'munge.key'}",
                f"--pid-file={self.run_dir / 'munged.pid'}",
                f"--seed-file={self.munge_dir / 'munged.seed'}",
                f"--log-file={self.dir / 'munged.log'}",
                "--force",
            ],
            self.dir / "munged.out",
        )
        self.daemons.append(munged)
        munged.start(self.munge_socket.exists, timeout)
        ctld = Daemon(
            "slurmctld",
            ["/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf)],
            self.dir / "slurmctld.out",
            env=env,
        )
        self.daemons.append(ctld)
        ctld.start(lambda: port_open("127.0.0.1", self.ctld_port), timeout)
        slurmd = Daemon(
            "slurmd",
            ["/usr/sbin/slurmd", "-D", "-N", NODE, "-f", str(self.conf)],
            self.dir / "slurmd.out",
            env=env,
        )
        self.daemons.append(slurmd)
        slurmd.start(self._node_ready, timeout)

    def _node_ready(self) -> bool:
        state = self.run(["sinfo", "-h", "-n", NODE, "-o", "%t"], check=False).strip()
        return state in ("idle", "mix", "alloc")

    def run(self, argv: list[str], check: bool = True) -> str:
        """Run a SLURM client command against this cluster and return its stdout."""
        done = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, **self.env}, timeout=30
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    def jobs(self) -> dict[str, str]:
        """Job id -> state of every job the controller still knows about."""
        out = self.run(["squeue", "-h", "-o", "%i %T"])
        return dict(line.split() for line in out.splitlines() if line.strip())

    def wait_no_jobs(self, timeout: float = 30.0) -> None:
        """Wait until the queue holds no pending or running job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.jobs():
                return
            time.sleep(0.2)
        raise AssertionError(f"jobs still queued after {timeout} s: {self.jobs()}")

    def stop(self) -> None:
        """Cancel every job left (its processes outlive slurmd otherwise), then stop the daemons."""
        if self.daemons:
            try:
                ids = list(self.jobs())
                if ids:
                    self.run(["scancel", *ids], check=False)
                    self.wait_no_jobs(timeout=15)
            except (RuntimeError, AssertionError, subprocess.TimeoutExpired):
                pass  # the daemons are stopped below either way
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")


class SystemUser:
    """A throwaway system account (batchspawner looks users up with ``getpwnam``), removed at stop.

    Its home is a directory of the test; the SLURM job log lands there.
    """

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/bin/bash",
                name,
            ]
        )

    def remove(self) -> None:
        subprocess.run(["userdel", self.name], capture_output=True)
