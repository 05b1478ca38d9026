"""Throwaway OpenSSH hosts for tests: corc_core's SandboxHost, started and stopped by PID.

Where network namespaces work, each host is a namespace with its own address (10.200.N.2);
elsewhere the sshd listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from corc_core.sandbox import SandboxHost, keygen

__all__ = ["SSHHost", "keygen"]

_COUNTER = itertools.count(1)


class SSHHost(SandboxHost):
    """A sandbox host whose authorized keys and user CA are set before ``start()``."""

    def __init__(self, workdir: Path, use_netns: bool = True) -> None:
        super().__init__(directory=str(workdir), name=f"t{os.getpid()}-{next(_COUNTER)}")
        self.use_netns = use_netns
        self._keys: list[str] = []
        self._user_ca: str | None = None

    def authorize(self, public_key_file: Path) -> None:
        self._keys.append(public_key_file.read_text())
        if self.pid is not None:
            with self.authorized_keys.open("a") as keys:
                keys.write(public_key_file.read_text())

    def authorize_key(self, public_key: str) -> None:
        """Authorize a public key given as text (on a running host too)."""
        self._keys.append(public_key)
        if self.pid is not None:
            with self.authorized_keys.open("a") as keys:
                keys.write(public_key.strip() + "\n")

    def trust_user_ca(self, ca_public_key: str) -> None:
        self._user_ca = ca_public_key

    def start(self) -> None:
        self.create(self._keys, self._user_ca, self.use_netns)

    def stop(self) -> None:
        self.destroy()


def host_with_key(directory: Path) -> tuple[SSHHost, Path, Path]:
    """A started host that authorizes a new key: (host, private key, known_hosts with its key)."""
    host = SSHHost(directory / "host")
    key = keygen(directory / "id_ed25519")
    host.authorize(Path(f"{key}.pub"))
    host.start()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(host.known_hosts_line())
    return host, key, known_hosts
