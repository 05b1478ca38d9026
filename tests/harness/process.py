"""Start a daemon as a child of the test process, wait for it, and stop it by PID."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Ports for the services tests start, below the kernel's ephemeral range (32768 and up): a port
# taken there can be given to any outgoing connection on this busy machine between the pick and the
# service's bind ("Address already in use", seen with five suites at once). 10000-19999 is disjoint
# from the ports the spawners in the ldap_hooks and multiplespawner configs pick (20000 and up).
# Each process walks the range from a random point, so no port is handed out twice in a run.
_PORTS = range(10000, 20000)
_start = random.randrange(len(_PORTS))  # noqa: S311 - spreads concurrent runs; not a secret
_next_port = (_PORTS[(_start + i) % len(_PORTS)] for i in itertools.count())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody uses right now (it can be bound), below the ephemeral range."""
    for _ in _PORTS:
        port = next(_next_port)
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {_PORTS}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Daemon:
    """A foreground daemon with its output in a log file, stopped by PID at teardown."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} while starting:\n{self.tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {timeout} s:\n{self.tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the process is reaped either way."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid)
            self.proc.wait(5)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def children_named(pid: int, name: str) -> list[int]:
    """PIDs of the processes called ``name`` (their ``comm``) whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm, rest = (entry / "stat").read_text()[:-1].split(" (", 1)[1].rsplit(") ", 1)
            except (OSError, ValueError):
                continue
            if comm == name and int(rest.split()[1]) == pid:
                found.append(int(entry.name))
    return found


def kill_group(pid: int) -> None:
    """SIGKILL a process group (our daemons lead their own sessions)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_pidfile(path: Path) -> None:
    """Kill the process named by a PID file, if it is still alive."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def server_environment(user: str, timeout: float = 10, api_url: str = "") -> dict[str, str]:
    """The environment of the running single-user server process of ``user``.

    With ``api_url`` (a hub's ``http://127.0.0.1:PORT/hub/api``), only a server of that hub counts:
    other test runs on this machine have users of the same names.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                raw = environ.read_bytes()
            except OSError:
                continue
            entries = dict(
                item.split("=", 1)
                for item in raw.decode(errors="replace").split("\0")
                if "=" in item
            )
            if entries.get("JUPYTERHUB_USER") != user or "JUPYTERHUB_API_TOKEN" not in entries:
                continue
            if entries.get("JUPYTERHUB_API_URL", "").startswith(api_url):
                return entries
        time.sleep(0.2)
    where = f" for the hub at {api_url}" if api_url else ""
    raise AssertionError(f"no single-user server process of {user}{where}")
