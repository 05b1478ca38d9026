"""An SSH host (its own network namespace where possible) and a hub that spawns on it."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness.hub import Hub
from tests.harness.process import port_open
from tests.harness.sshd import SSHHost, host_with_key

HTTP_SERVER = Path(__file__).resolve().parents[2] / "bench" / "_http_server.py"
SERVER_PORT = 18000  # the HTTP source's port, inside the host's namespace
SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
# What the front proxy would send with every login; the tunnel must never let it through.
SECRET = "front-proxy-secret-" + "0123456789abcdef"
AUTH_CONFIG = f"""
c.JupyterHub.authenticator_class = "header"
c.HeaderAuthenticator.shared_secret = {SECRET!r}
c.Authenticator.allow_all = True
"""


@dataclass
class Remote:
    host: SSHHost
    key: Path
    known_hosts: Path
    root: Path  # the servers' files on the remote host (hosts share this machine's filesystem)

    def servers(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()) if self.root.exists() else []


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    host, key, known_hosts = host_with_key(tmp_path)
    try:
        yield Remote(host, key, known_hosts, tmp_path / "remote-servers")
    finally:
        host.stop()  # also ends whatever a test left running inside the host's namespace


def wait_for(condition, timeout: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"{what} not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def source(remote: Remote, tmp_path: Path) -> Iterator[str]:
    """An HTTP server in the remote host's namespace serving 24 MB of random bytes; their SHA-256."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(24 << 20))
    netns = ["ip", "netns", "exec", str(remote.host.namespace)]
    listen = "0.0.0.0"  # noqa: S104 - inside the namespace
    server = subprocess.Popen(
        [*netns, sys.executable, str(HTTP_SERVER), listen, str(SERVER_PORT), str(big)]
    )
    try:
        wait_for(lambda: port_open(remote.host.address, SERVER_PORT), 20, "the HTTP server")
        yield hashlib.sha256(big.read_bytes()).hexdigest()
    finally:
        server.terminate()
        server.wait(10)


def cloudssh_config(remote: Remote, extra: str = "") -> str:
    return (
        AUTH_CONFIG
        + f"""
c.JupyterHub.spawner_class = "cloudssh"
c.CloudSSHSpawner.remote_hosts = ["{remote.host.address}:{remote.host.port}"]
c.CloudSSHSpawner.remote_user = "root"
c.CloudSSHSpawner.ssh_key_file = {str(remote.key)!r}
c.CloudSSHSpawner.known_hosts = {str(remote.known_hosts)!r}
c.CloudSSHSpawner.remote_command = [{SINGLEUSER!r}]
c.CloudSSHSpawner.remote_root = {str(remote.root)!r}
c.CloudSSHSpawner.remote_environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "1"}}
c.Spawner.args = ["--allow-root"]
c.JupyterHub.cleanup_servers = False
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # POST returns at once, as for the page
{extra}
"""
    )


def login(hub: Hub, user: str) -> None:
    headers = {"Remote-User": user, "X-Gridhub-Secret": SECRET}
    assert httpx.get(f"{hub.url}/hub/login", headers=headers).status_code == 302


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


def spawner_state(hub: Hub, user: str, server: str = "") -> dict:
    """The spawner state JupyterHub keeps for ``user``'s ``server`` in its (unencrypted) DB."""
    with sqlite3.connect(hub.dir / "jupyterhub.sqlite") as db:
        row = db.execute(
            "SELECT spawners.state FROM spawners JOIN users ON users.id = spawners.user_id"
            " WHERE users.name = ? AND spawners.name = ?",
            (user, server),
        ).fetchone()
    assert row is not None, f"no spawner {user}/{server} in the hub's DB"
    return json.loads(row[0] or "{}")


def set_spawner_state(hub: Hub, user: str, **changes) -> None:
    """Change keys of ``user``'s default spawner state in the DB of a stopped hub."""
    state = {**spawner_state(hub, user), **changes}
    with sqlite3.connect(hub.dir / "jupyterhub.sqlite") as db:
        db.execute(
            "UPDATE spawners SET state = ? WHERE name = '' AND user_id ="
            " (SELECT id FROM users WHERE name = ?)",
            (json.dumps(state), user),
        )


def remote_http(remote: Remote, port: int, path: str, *headers: str) -> tuple[int, str]:
    """(status, response head) of a GET sent from *inside* the remote host to its 127.0.0.1:port."""
    argv = ["curl", "-s", "-i", "--max-time", "10", "--path-as-is"]
    for header in headers:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{port}{path}")
    output = remote.host.run(" ".join(shlex.quote(a) for a in argv) + " || true")
    head = output.split("\r\n\r\n", 1)[0]
    first = head.split("\r\n", 1)[0].split()
    return (int(first[1]) if len(first) > 1 else 0), head
