"""Per-user keys, CA-signed certificates that a real sshd accepts, and host-key checking."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncssh
import pytest

from corc_core import HostKeyMismatch, SSHAuthenticator
from tests.harness.sshd import SSHHost


async def login(host: SSHHost, user: str, credentials, known_hosts: Path) -> str:
    key = asyncssh.read_private_key(credentials.key_file)
    if credentials.certificate_file:
        key = (key, asyncssh.read_certificate(credentials.certificate_file))
    async with asyncssh.connect(
        host.address,
        port=host.port,
        username=user,
        client_keys=[key],
        known_hosts=str(known_hosts),
        agent_path=None,
        config=[],
    ) as conn:
        return (await conn.run("whoami", check=True)).stdout.strip()


async def test_keys_are_private_and_stable(tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh")
    first = await ssh.credentials_for("alice")
    again = await ssh.credentials_for("alice")
    assert first == again
    key = Path(first.key_file)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    other = await ssh.credentials_for("../../etc/evil")
    assert Path(other.key_file).resolve().is_relative_to((tmp_path / "ssh" / "users").resolve())


async def test_certificate_login_to_a_real_sshd(tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh", use_certificates=True)
    host = SSHHost(tmp_path / "host")  # no authorized keys at all: only certificates work
    host.trust_user_ca(ssh.ca_public_key())
    host.start()
    try:
        await ssh.verify_host(host.address, host.port)  # first contact: recorded
        root = await ssh.credentials_for("alice", remote_user="root")
        assert root.certificate_file
        assert await login(host, "root", root, ssh.known_hosts) == "root"
        # The certificate names its principal: it does not open another account.
        nobody = await ssh.credentials_for("bob", remote_user="nobody")
        with pytest.raises(asyncssh.PermissionDenied):
            await login(host, "root", nobody, ssh.known_hosts)
        # Without the certificate the key alone is refused.
        bare = SSHAuthenticator(tmp_path / "ssh")
        with pytest.raises(asyncssh.PermissionDenied):
            await login(host, "root", await bare.credentials_for("alice", "root"), ssh.known_hosts)
    finally:
        host.stop()


async def test_host_key_recorded_then_enforced(tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh")
    host = SSHHost(tmp_path / "host")
    host.start()
    try:
        seen = await ssh.verify_host(host.address, host.port)
        assert seen == host.host_public_key
        assert ssh.host_key_for(host.address, host.port) == seen
        assert await ssh.verify_host(host.address, host.port) == seen
        impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        await ssh.pin_host_key(host.address, host.port, impostor)
        with pytest.raises(HostKeyMismatch, match="different SSH host key"):
            await ssh.verify_host(host.address, host.port)
    finally:
        host.stop()
