"""Attacks from a remote notebook host, and secrets where the hub's DB could show them."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncssh

from corc_core import SSHAuthenticator
from tests.cloudsshspawner.conftest import (
    AUTH_CONFIG,
    SECRET,
    SINGLEUSER,
    Remote,
    cloudssh_config,
    login,
    remote_http,
    spawner_state,
    status,
)
from tests.cloudsshspawner.test_spawn import cut_ssh_connections, notebook_pid, processes
from tests.harness.hub import spawn
from tests.harness.sshd import SSHHost


def notebook_env(remote: Remote, pid: int) -> dict[str, str]:
    text = remote.host.run(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_a_notebook_host_reaches_only_the_hub_api(remote, hub_factory):
    hub = hub_factory(cloudssh_config(remote))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    pid = notebook_pid(remote)
    env = notebook_env(remote, pid)
    agent_port = int(env["JUPYTERHUB_API_URL"].split(":")[2].split("/")[0])
    forward_port = int((remote.root / "alice-default" / "hub_port").read_text())
    forged = ("Remote-User: admin", f"X-Gridhub-Secret: {SECRET}", "X-Forwarded-For: 127.0.0.1")
    for port in (agent_port, forward_port):  # what the notebook uses, and the raw forward
        for path in (
            "/hub/login",
            "/hub/login?next=%2Fhub%2Fapi%2F",
            "/hub/api/../login",
            "/hub/api/%2e%2e/login",
            "/hub/spawn",
            "/user/alice/api/status",
        ):
            code, head = remote_http(remote, port, path, *forged)
            assert code == 403, (port, path, head)
            assert "set-cookie" not in head.lower(), (port, path, head)
        # The API itself answers, but the forged headers log nobody in.
        assert remote_http(remote, port, "/hub/api/", *forged)[0] == 200
        assert remote_http(remote, port, "/hub/api/user", *forged)[0] == 403
    assert "User logged in: admin" not in hub.log()
    assert "Refused a request from a notebook host" in hub.log()
    # The notebook's own calls still work: its token check (GET /hub/api/user, which the hub
    # answers for the notebook's token) and its activity reports.
    code, _ = remote_http(
        remote, agent_port, "/hub/api/user", f"Authorization: token {env['JUPYTERHUB_API_TOKEN']}"
    )
    assert code == 200
    assert status(hub, "alice").status_code == 200  # the notebook checked our token with the hub
    before = hub.log().count("POST /hub/api/users/alice/activity")
    deadline = time.monotonic() + 20
    while hub.log().count("POST /hub/api/users/alice/activity") <= before:
        assert time.monotonic() < deadline, "no activity from the notebook"
        time.sleep(0.5)


@contextmanager
def ca_trusting_host(tmp_path: Path) -> Iterator[tuple[SSHHost, Path, Path]]:
    """A host that trusts only corc's user CA: (host, corc's SSH directory, a known_hosts for it)."""
    corc_dir = tmp_path / "corc-ssh"
    ca = SSHAuthenticator(corc_dir, use_certificates=True)
    host = SSHHost(tmp_path / "vm")
    host.trust_user_ca(ca.ca_public_key())
    host.start()
    try:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(host.known_hosts_line())
        yield host, corc_dir, known_hosts
    finally:
        host.stop()


def certificate_hub_config(
    host: SSHHost, corc_dir: Path, known_hosts: Path, remote_root: Path, extra: str = ""
) -> str:
    """A hub whose CloudSSHSpawner logs in to ``host`` with corc-issued certificates."""
    return (
        AUTH_CONFIG
        + f"""
c.JupyterHub.spawner_class = "cloudssh"
c.CloudSSHSpawner.remote_hosts = ["{host.address}:{host.port}"]
c.CloudSSHSpawner.remote_user = "root"
c.CloudSSHSpawner.corc_ssh_directory = {str(corc_dir)!r}
c.CloudSSHSpawner.known_hosts = {str(known_hosts)!r}
c.CloudSSHSpawner.remote_command = [{SINGLEUSER!r}]
c.CloudSSHSpawner.remote_root = {str(remote_root)!r}
c.Spawner.args = ["--allow-root"]
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
"""
        + extra
    )


def secrets_of(path: Path) -> list[str]:
    """The base64 body of an OpenSSH private key file, in pieces that would show in any dump."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("-----")]
    body = "".join(lines)
    raw = base64.b64decode(body)
    return [lines[1], body[100:160], raw[-64:].hex()]


def test_the_hub_database_holds_no_secret_and_keys_go_at_stop(tmp_path, hub_factory):
    """corc issues the (user, server) key and certificate; the hub's DB keeps paths only."""
    remote_root = tmp_path / "remote-servers"
    with ca_trusting_host(tmp_path) as (host, corc_dir, known_hosts):
        hub = hub_factory(certificate_hub_config(host, corc_dir, known_hosts, remote_root))
        login(hub, "alice")
        ok, message = spawn(hub, "alice")
        assert ok, message
        state = spawner_state(hub, "alice")
        key_file = Path(state["target"]["key_file"])
        assert key_file.exists() and state["target"]["certificate_file"]
        assert set(state) <= {
            "target",
            "pid",
            "agent_pid",
            "remote_dir",
            "notebook_port",
            "local_port",
            "unfinished",
        }
        remote = Remote(host, key_file, known_hosts, remote_root)
        token = notebook_env(remote, notebook_pid(remote))["JUPYTERHUB_API_TOKEN"]
        secrets = [
            token,
            *secrets_of(key_file),
            *secrets_of(corc_dir / "ca" / "ca_ed25519"),
        ]
        database = (hub.dir / "jupyterhub.sqlite").read_bytes()
        for wal in hub.dir.glob("jupyterhub.sqlite-*"):
            database += wal.read_bytes()
        for secret in secrets:
            assert secret.encode() not in database, "a secret is in the hub's database"
        assert b"PRIVATE KEY" not in database
        assert status(hub, "alice").status_code == 200

        assert hub.api().delete("/users/alice/server").status_code in (202, 204)
        deadline = time.monotonic() + 30
        while key_file.exists() or processes(remote, b"jupyterhub-singleuser"):
            assert time.monotonic() < deadline, "the key or the notebook outlived the stop"
            time.sleep(0.3)
        assert not Path(f"{key_file}-cert.pub").exists()


def certificate_expiry(path: str) -> float:
    return float(asyncssh.read_certificate(path)._valid_before)


def test_an_expiring_certificate_is_renewed_when_the_tunnel_reconnects(tmp_path, hub_factory):
    remote_root = tmp_path / "remote-servers"
    validity = (
        "c.CloudSSHSpawner.certificate_validity = 20\nc.CloudSSHSpawner.certificate_margin = 5\n"
    )
    with ca_trusting_host(tmp_path) as (host, corc_dir, known_hosts):
        hub = hub_factory(
            certificate_hub_config(host, corc_dir, known_hosts, remote_root, extra=validity)
        )
        login(hub, "alice")
        ok, message = spawn(hub, "alice")
        assert ok, message
        certificate = spawner_state(hub, "alice")["target"]["certificate_file"]
        first = certificate_expiry(certificate)
        time.sleep(max(0.0, first - time.time() + 1))  # the certificate has expired now
        remote = Remote(host, Path(certificate), known_hosts, remote_root)
        cut_ssh_connections(remote)
        response = status(hub, "alice", timeout=40)
        assert response.status_code == 200, response.text
        assert certificate_expiry(certificate) > first
        assert "Renewed the SSH certificate" in hub.log()
        hub.api().delete("/users/alice/server")
