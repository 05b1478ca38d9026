"""Throwaway OpenSSH hosts for tests: corc_core's SandboxHost, started and stopped by PID.

Where network namespaces work, each host is a namespace with its own address (10.200.N.2);
elsewhere the sshd listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import itertools
import os
import subprocess
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
        if self.namespace:
            subprocess.run(["ip", "link", "del", self._blackhole], capture_output=True)
        self.destroy()

    # -- network faults (namespace hosts only) ----------------------------------------------------

    @property
    def veth(self) -> str:
        """This machine's end of the host's veth pair (named as SandboxHost names it)."""
        assert self.namespace, "network faults need a namespace host"
        return f"vc{self.name}"[:15]

    def set_link(self, up: bool) -> None:
        """Take the host's link down (silence, no FIN or RST either way) or up again."""
        subprocess.run(["ip", "link", "set", self.veth, "up" if up else "down"], check=True)

    def ssh_client_ports(self) -> list[int]:
        """Source ports of the SSH connections established to this host."""
        out = self.run(f"ss -tnH state established '( sport = :{self.port} )'")
        return [int(line.split()[-1].rsplit(":", 1)[1]) for line in out.splitlines() if line]

    def silence_connection(self, client_port: int) -> None:
        """Drop every packet of one SSH connection, both ways, as if its client had vanished
        (crashed, or changed address): neither end hears anything more, other connections flow.

        tc's drop action cannot be loaded here, so matching packets are redirected to a veth
        that is down (which drops them), on each side's ingress."""
        ns = ("ip", "netns", "exec", str(self.namespace))
        for prefix, dev, hole, match in (
            ((), self.veth, self._blackhole, ("sport", self.port, "dport", client_port)),
            (ns, "eth0", "bh0", ("dport", self.port, "sport", client_port)),
        ):
            if subprocess.run(
                [*prefix, "ip", "link", "show", hole], capture_output=True
            ).returncode:
                subprocess.run(
                    [
                        *prefix,
                        "ip",
                        "link",
                        "add",
                        hole,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        hole + "p",
                    ],
                    check=True,
                )
            subprocess.run(
                [*prefix, "tc", "qdisc", "add", "dev", dev, "ingress"], capture_output=True
            )
            subprocess.run(
                [
                    *prefix, "tc", "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "ip",
                    "prio", "1", "u32", "match", "ip", match[0], str(match[1]), "0xffff",
                    "match", "ip", match[2], str(match[3]), "0xffff",
                    "action", "mirred", "egress", "redirect", "dev", hole,
                ],
                check=True,
            )  # fmt: skip

    @property
    def _blackhole(self) -> str:
        return f"bh{self.name}"[:15]


def host_with_key(directory: Path) -> tuple[SSHHost, Path, Path]:
    """A started host that authorizes a new key: (host, private key, known_hosts with its key)."""
    host = SSHHost(directory / "host")
    key = keygen(directory / "id_ed25519")
    host.authorize(Path(f"{key}.pub"))
    host.start()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(host.known_hosts_line())
    return host, key, known_hosts
