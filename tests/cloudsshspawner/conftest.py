"""An SSH host (its own network namespace where possible) and a hub that spawns on it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness.hub import Hub
from tests.harness.sshd import SSHHost, host_with_key

SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))


@dataclass
class Remote:
    host: SSHHost
    key: Path
    known_hosts: Path


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    host, key, known_hosts = host_with_key(tmp_path)
    try:
        yield Remote(host, key, known_hosts)
    finally:
        host.stop()  # also ends whatever a test left running inside the host's namespace


def cloudssh_config(remote: Remote, extra: str = "") -> str:
    return f"""
c.JupyterHub.authenticator_class = "header"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "cloudssh"
c.CloudSSHSpawner.remote_hosts = ["{remote.host.address}:{remote.host.port}"]
c.CloudSSHSpawner.remote_user = "root"
c.CloudSSHSpawner.ssh_key_file = {str(remote.key)!r}
c.CloudSSHSpawner.known_hosts = {str(remote.known_hosts)!r}
c.CloudSSHSpawner.remote_command = [{SINGLEUSER!r}]
c.CloudSSHSpawner.remote_environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "1"}}
c.Spawner.args = ["--allow-root"]
c.JupyterHub.cleanup_servers = False
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # POST returns at once, as for the page
{extra}
"""


def login(hub: Hub, user: str) -> None:
    assert httpx.get(f"{hub.url}/hub/login", headers={"Remote-User": user}).status_code == 302


def status(hub: Hub, user: str, timeout: float = 30) -> httpx.Response:
    """GET /user/<name>/api/status through the hub's proxy, retrying while the route settles."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(
                f"{hub.url}/user/{user}/api/status",
                headers={"Authorization": f"token {hub.api_token}"},
                timeout=10,
            )
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)
