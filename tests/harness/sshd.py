"""Throwaway OpenSSH hosts: an sshd with its own host key and authorized keys.

Where network namespaces work, each host is a namespace with its own address (10.200.N.2) joined
to this machine by a veth pair; elsewhere the sshd listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

from .process import Daemon, free_port, port_open

_NEXT_SUBNET = itertools.count((os.getpid() % 200) + 20)


def _ip(*args: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


def netns_available() -> bool:
    probe = f"gh-probe-{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    if done.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True


def keygen(path: Path, kind: str = "ed25519", comment: str = "gridhub-test") -> Path:
    """Write an OpenSSH key pair (private key mode 0600) and return the private key's path."""
    if path.exists():
        path.unlink()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


class SSHHost:
    """An sshd accepting ``authorized_keys`` for every user (root included)."""

    def __init__(self, workdir: Path, use_netns: bool = True) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(self.dir / "ssh_host_ed25519_key")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.touch(mode=0o600)
        self.namespace: str | None = None
        if use_netns and netns_available():
            subnet = next(_NEXT_SUBNET)
            self.namespace = f"gh-{os.getpid()}-{subnet}"
            self.address = f"10.200.{subnet}.2"
            self._gateway = f"10.200.{subnet}.1"
            self.port = 22
        else:
            self.address = "127.0.0.1"
            self.port = free_port()
        self.daemon: Daemon | None = None

    @property
    def host_public_key(self) -> str:
        """The host's public key, ``ssh-ed25519 AAAA...``."""
        return " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    def known_hosts_line(self) -> str:
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{host} {self.host_public_key}\n"

    def authorize(self, public_key_file: Path) -> None:
        with self.authorized_keys.open("a") as keys:
            keys.write(public_key_file.read_text())

    def _network(self) -> None:
        if not self.namespace:
            return
        ns, host_if = self.namespace, f"vh{self.namespace[-9:]}"[:15]
        _ip("netns", "add", ns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("addr", "add", f"{self._gateway}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", f"{self.address}/24", "dev", "eth0", namespace=ns)
        _ip("link", "set", "eth0", "up", namespace=ns)
        _ip("link", "set", "lo", "up", namespace=ns)
        _ip("route", "add", "default", "via", self._gateway, namespace=ns)

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._network()
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.address}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    f"TrustedUserCAKeys {self.dir / 'user_ca.pub'}",
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
                ]
            )
            + "\n"
        )
        (self.dir / "user_ca.pub").touch()
        argv = ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]
        if self.namespace:
            argv = ["ip", "netns", "exec", self.namespace, *argv]
        self.daemon = Daemon("sshd", argv, self.dir / "sshd.log")
        self.daemon.start(lambda: port_open(self.address, self.port), timeout=15)

    def trust_user_ca(self, ca_public_key: Path) -> None:
        (self.dir / "user_ca.pub").write_text(ca_public_key.read_text())

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        if self.namespace:
            subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)

    def run(self, command: str) -> str:
        """Run a command *on* the host (inside its namespace), as the test's own user."""
        argv = ["sh", "-c", command]
        if self.namespace:
            argv = ["ip", "netns", "exec", self.namespace, *argv]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout
