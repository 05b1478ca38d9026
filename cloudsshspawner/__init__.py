"""cloudsshspawner: notebooks on remote hosts, reached only through SSH tunnels."""

from .spawner import CloudSSHSpawner
from .target import SSHTarget
from .tunnel import Tunnel, TunnelError

__all__ = ["CloudSSHSpawner", "SSHTarget", "Tunnel", "TunnelError"]
