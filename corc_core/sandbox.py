"""``SandboxHost``: a real, lightweight SSH host on this machine, for development and tests.

Where network namespaces work (root, iproute2), a host is a namespace with its own address
(``10.200.N.2``) joined to this machine by a veth pair, running its own ``sshd``; elsewhere it is an
``sshd`` on ``127.0.0.1`` and a free port. Blocking: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def netns_available() -> bool:
    probe = f"corc-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True


def keygen(path: Path, comment: str = "corc") -> Path:
    """An ed25519 key pair at ``path`` (private 0600) and ``path.pub``."""
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    return path


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class SandboxHost:
    """One host: its directory, address, port, namespace (if any) and sshd pid."""

    directory: str
    name: str
    address: str = ""
    port: int = 22
    namespace: str | None = None
    pid: int | None = None
    subnet: int | None = None
    extra_config: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.directory)

    @property
    def host_key_file(self) -> Path:
        return self.path / "ssh_host_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self.path / "authorized_keys"

    @property
    def host_public_key(self) -> str:
        return " ".join(Path(f"{self.host_key_file}.pub").read_text().split()[:2])

    def known_hosts_line(self) -> str:
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{host} {self.host_public_key}\n"

    # -- lifecycle --------------------------------------------------------------------------------

    def create(
        self,
        authorized_keys: list[str] = (),  # type: ignore[assignment]
        trusted_user_ca: str | None = None,
        use_netns: bool = True,
    ) -> None:
        """Make the host and start its sshd; on failure nothing is left behind."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        keygen(self.host_key_file, f"corc-sandbox-{self.name}")
        self.authorized_keys.write_text("".join(f"{key.strip()}\n" for key in authorized_keys))
        (self.path / "user_ca.pub").write_text((trusted_user_ca or "").strip() + "\n")
        try:
            if use_netns and netns_available():
                self._network()
            else:
                self.address, self.port = "127.0.0.1", self._free_port()
            self._start_sshd()
        except BaseException:
            self.destroy()
            raise

    def _free_port(self) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def _network(self) -> None:
        # One lock for all creators on this machine, so two hosts never take the same subnet.
        lock_path = Path("/run/corc-sandbox.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _run("ip", "-o", "-4", "addr", "show")
            subnet = next(n for n in range(20, 250) if f" 10.200.{n}.1/24" not in used)
            self.subnet = subnet
            self.namespace = f"corc-{self.name}"[:30]
            veth = f"vc{self.name}"[:15]
            _run("ip", "netns", "add", self.namespace)
            _run(
                "ip",
                "link",
                "add",
                veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.namespace,
            )
            _run("ip", "addr", "add", f"10.200.{subnet}.1/24", "dev", veth)
            _run("ip", "link", "set", veth, "up")
        ns = ("ip", "netns", "exec", self.namespace)
        self.address, self.port = f"10.200.{subnet}.2", 22
        _run(*ns, "ip", "addr", "add", f"{self.address}/24", "dev", "eth0")
        _run(*ns, "ip", "link", "set", "eth0", "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        _run(*ns, "ip", "route", "add", "default", "via", f"10.200.{subnet}.1")

    def _start_sshd(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = self.path / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.address}",
                    f"HostKey {self.host_key_file}",
                    f"PidFile {self.path / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys} .ssh/authorized_keys",
                    f"TrustedUserCAKeys {self.path / 'user_ca.pub'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "AllowTcpForwarding yes",
                    "AllowStreamLocalForwarding yes",
                    "ClientAliveInterval 5",
                    "ClientAliveCountMax 2",
                    "MaxStartups 100",
                    "LogLevel VERBOSE",
                    # A sandbox host logs in as one of this machine's users, whose ~/.bashrc may do
                    # slow or locking work (e.g. `pyenv init` rehashes under a lock file that a
                    # killed session leaves behind, making every later login wait 60 s). Bash skips
                    # ~/.bashrc for ssh commands below shell level 2, so sessions start at level 2.
                    "SetEnv SHLVL=1",
                    *self.extra_config,
                ]
            )
            + "\n"
        )
        argv = [SSHD, "-D", "-e", "-f", str(config)]
        if self.namespace:
            argv = ["ip", "netns", "exec", self.namespace, *argv]
        with open(self.path / "sshd.log", "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = proc.pid
        deadline = time.monotonic() + 15
        while not _port_open(self.address, self.port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (self.path / "sshd.log").read_text(errors="replace")[-2000:]
                raise OSError(f"sshd of sandbox host {self.name} did not start:\n{log_text}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.pid is not None and self._ours(self.pid)

    def _ours(self, pid: int) -> bool:
        """True when ``pid`` is still our sshd (not a recycled pid)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.path / "sshd_config").encode() in cmdline

    def destroy(self) -> None:
        """Stop the sshd (by its pid), remove the namespace and the directory. Idempotent."""
        if self.pid is not None and self._ours(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while self._ours(self.pid) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.pid, os.WNOHANG)
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        if self.namespace:
            # Anything else left in the namespace goes with it.
            pids = subprocess.run(
                ["ip", "netns", "pids", self.namespace], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)
        subprocess.run(["rm", "-rf", self.directory], capture_output=True)

    def run(self, command: str) -> str:
        """Run a shell command *on* the host (inside its namespace), as this process's user."""
        argv = ["sh", "-c", command]
        if self.namespace:
            argv = ["ip", "netns", "exec", self.namespace, *argv]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def to_dict(self) -> dict:
        return asdict(self)
