"""Another spawner hands in the machine: corc's credentials, a pinned host key, a certificate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from corc_core import SSHAuthenticator
from tests.cloudsshspawner.conftest import AUTH_CONFIG, SINGLEUSER, login, status
from tests.harness.hub import spawn
from tests.harness.sshd import SSHHost

HANDED = """
from cloudsshspawner import CloudSSHSpawner, SSHTarget

class HandedTargetSpawner(CloudSSHSpawner):
    # Stands for the MultipleSpawner: it ordered the machine and knows how to reach it.
    def __init__(self, **kwargs):
        super().__init__(target=SSHTarget(**TARGET), **kwargs)

c.JupyterHub.spawner_class = HandedTargetSpawner
c.CloudSSHSpawner.remote_command = [{singleuser!r}]
c.CloudSSHSpawner.remote_root = REMOTE_ROOT
c.Spawner.args = ["--allow-root"]
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
"""


def handed_config(target: dict, remote_root: Path) -> str:
    return (
        f"TARGET = {target!r}\nREMOTE_ROOT = {str(remote_root)!r}\n"
        + AUTH_CONFIG
        + HANDED.format(singleuser=SINGLEUSER)
    )


def test_certificate_login_with_a_pinned_host_key(tmp_path: Path, hub_factory) -> None:
    ssh = SSHAuthenticator(tmp_path / "corc-ssh", use_certificates=True)
    host = SSHHost(tmp_path / "vm")  # trusts corc's CA only: no authorized keys at all
    host.trust_user_ca(ssh.ca_public_key())
    host.start()
    try:
        credentials = asyncio.run(ssh.credentials_for("alice", remote_user="root"))
        target = {
            "host": host.address,
            "port": host.port,
            "username": credentials.username,
            "key_file": credentials.key_file,
            "certificate_file": credentials.certificate_file,
            "host_key": host.host_public_key,
        }
        hub = hub_factory(handed_config(target, tmp_path / "remote-servers"))
        login(hub, "alice")
        ok, message = spawn(hub, "alice")
        assert ok, message
        assert status(hub, "alice").status_code == 200
        hub.api().delete("/users/alice/server")
    finally:
        host.stop()


def test_a_wrong_pinned_host_key_is_refused(tmp_path: Path, hub_factory) -> None:
    ssh = SSHAuthenticator(tmp_path / "corc-ssh")
    host = SSHHost(tmp_path / "vm")
    credentials = asyncio.run(ssh.credentials_for("alice", remote_user="root"))
    host.authorize_key(credentials.public_key)
    host.start()
    try:
        impostor = asyncio.run(SSHAuthenticator(tmp_path / "other").credentials_for("x"))
        target = {
            "host": host.address,
            "port": host.port,
            "username": "root",
            "key_file": credentials.key_file,
            "host_key": impostor.public_key,
        }
        hub = hub_factory(handed_config(target, tmp_path / "remote-servers"))
        login(hub, "alice")
        ok, message = spawn(hub, "alice")
        assert not ok
        assert "does not match the expected key" in message
    finally:
        host.stop()
