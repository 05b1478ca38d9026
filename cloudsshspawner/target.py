"""``SSHTarget``: where and as whom to connect, and how to know the host is the right one.

This is the whole interface between the spawner and whoever provides credentials: an admin's
config (``remote_hosts``), or the MultipleSpawner handing in a VM that corc_core ordered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SSHTarget:
    """An SSH endpoint with its login credentials and host-key policy.

    ``key_file`` is an OpenSSH private key (mode 0600); ``certificate_file`` an optional OpenSSH user
    certificate for it. The host is verified against ``host_key`` (a pinned public key,
    ``ssh-ed25519 AAAA...``) when given, otherwise against ``known_hosts`` (a file path). One of the
    two is required: host-key checking is never off. ``gpu_ids`` are the GPUs the machine's
    resource owns (the notebook gets ``CUDA_VISIBLE_DEVICES`` for exactly those). No field is a
    secret: a target is kept in the spawner's state, which JupyterHub stores unencrypted.
    """

    host: str
    username: str
    key_file: str
    port: int = 22
    certificate_file: str | None = None
    host_key: str | None = None
    known_hosts: str | None = None
    gpu_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("SSHTarget needs a host")
        if not 0 < int(self.port) < 65536:
            raise ValueError(f"SSHTarget port {self.port} is out of range")
        if not self.host_key and not self.known_hosts:
            raise ValueError(
                f"no way to verify the host key of {self.host}: give host_key or known_hosts"
            )
        object.__setattr__(self, "gpu_ids", tuple(str(gpu) for gpu in self.gpu_ids))

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SSHTarget:
        return cls(**{key: state[key] for key in cls.__dataclass_fields__ if key in state})
