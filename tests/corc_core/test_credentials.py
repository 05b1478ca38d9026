"""Per-user keys, CA-signed certificates that a real sshd accepts, and host-key checking."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncssh
import pytest

from corc_core import ConfigError, HostKeyMismatch, SSHAuthenticator
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


async def test_twenty_concurrent_spawns_share_one_complete_key(tmp_path) -> None:
    """The same user spawning 20 times at once: no error, one key, every certificate matches it."""
    ssh = SSHAuthenticator(tmp_path / "ssh", use_certificates=True)
    results = await asyncio.gather(
        *(ssh.credentials_for("alice", "root") for _ in range(20)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert len({r.public_key for r in results}) == 1
    key = asyncssh.read_private_key(results[0].key_file)
    assert key.export_public_key().decode().strip() == results[0].public_key
    certificate = asyncssh.read_certificate(results[0].certificate_file)
    assert certificate.key.public_data == key.public_data
    folder = Path(results[0].key_file).parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "id_ed25519",
        "id_ed25519-cert.pub",
        "id_ed25519.pub",
    ]  # no temporary file left behind


def _credentials_in_a_thread(directory: Path, server: str) -> str:
    ssh = SSHAuthenticator(directory, use_certificates=True)
    return asyncio.run(ssh.credentials_for("alice", "root", server_name=server)).public_key


async def test_concurrent_processes_threads_and_servers(tmp_path) -> None:
    """20 threads with their own authenticators and loops: one key per (user, server)."""
    with ThreadPoolExecutor(20) as pool:
        keys = list(
            pool.map(
                _credentials_in_a_thread,
                [tmp_path / "ssh"] * 20,
                ["" if i % 2 else "gpu" for i in range(20)],
            )
        )
    assert len(set(keys[0::2])) == 1
    assert len(set(keys[1::2])) == 1
    assert keys[0] != keys[1]  # the named server has a key of its own


async def test_files_are_0600_from_creation(tmp_path, monkeypatch) -> None:
    """Even with a permissive umask, nothing secret is ever readable by others."""
    old = os.umask(0)
    try:
        ssh = SSHAuthenticator(tmp_path / "ssh", use_certificates=True)
        creds = await ssh.credentials_for("alice", server_name="two")
        await ssh.pin_host_key("10.0.0.9", 22, creds.public_key)
    finally:
        os.umask(old)
    for path in (tmp_path / "ssh").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


async def test_named_servers_get_their_own_keys_and_remove_deletes_only_theirs(tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh", use_certificates=True)
    default = await ssh.credentials_for("alice", "root")
    gpu = await ssh.credentials_for("alice", "root", server_name="gpu")
    other = await ssh.credentials_for("alice", "root", server_name="my server/../x")
    assert len({default.key_file, gpu.key_file, other.key_file}) == 3
    assert len({default.public_key, gpu.public_key, other.public_key}) == 3
    users = (tmp_path / "ssh" / "users").resolve()
    assert Path(other.key_file).resolve().is_relative_to(users / "alice" / "servers")

    await ssh.remove("alice", "gpu")
    assert not Path(gpu.key_file).exists() and not Path(gpu.certificate_file).exists()
    assert Path(default.key_file).exists() and Path(other.key_file).exists()
    await ssh.remove("alice")
    assert not Path(default.key_file).exists()
    assert not Path(default.certificate_file).exists()
    assert Path(other.key_file).exists()
    await ssh.remove("alice")  # twice is harmless
    again = await ssh.credentials_for("alice", "root")
    assert again.public_key != default.public_key  # a new key after removal


async def test_a_crafted_name_never_reaches_another_users_key(tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh")
    victim = await ssh.credentials_for("bob smith")
    hashed = Path(victim.key_file).parent.name
    attacker = await ssh.credentials_for(hashed)  # the victim's directory name as a username
    assert attacker.key_file != victim.key_file
    assert attacker.public_key != victim.public_key


async def test_refresh_reissues_a_certificate_close_to_expiry(tmp_path) -> None:
    ssh = SSHAuthenticator(
        tmp_path / "ssh", use_certificates=True, certificate_validity=3600, refresh_margin=600
    )
    creds = await ssh.credentials_for("alice", "root")
    first = Path(creds.certificate_file).read_bytes()
    assert await ssh.refresh(creds) == creds
    assert Path(creds.certificate_file).read_bytes() == first  # still valid: kept

    short = SSHAuthenticator(
        tmp_path / "ssh", use_certificates=True, certificate_validity=60, refresh_margin=600
    )
    near = await short.credentials_for("alice", "root")  # expires in 60 s < margin
    renewed = await ssh.refresh(near)
    certificate = asyncssh.read_certificate(renewed.certificate_file)
    assert certificate.principals == ["root"]
    assert certificate._valid_before > time.time() + 3000
    key = asyncssh.read_private_key(renewed.key_file)
    assert certificate.key.public_data == key.public_data

    Path(creds.certificate_file).unlink()  # a missing certificate is re-issued too
    assert Path((await ssh.refresh(creds)).certificate_file).exists()
    await ssh.remove("alice")
    with pytest.raises(ConfigError, match="is gone"):
        await ssh.refresh(creds)
    no_ca = SSHAuthenticator(tmp_path / "plain")
    plain = await no_ca.credentials_for("alice")
    assert await no_ca.refresh(plain) == plain


async def test_refreshed_certificate_logs_in(tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh", use_certificates=True, certificate_validity=1)
    host = SSHHost(tmp_path / "host")
    host.trust_user_ca(ssh.ca_public_key())
    host.start()
    try:
        await ssh.verify_host(host.address, host.port)
        creds = await ssh.credentials_for("alice", "root")
        await asyncio.sleep(1.5)  # the 1 s certificate has expired
        with pytest.raises(asyncssh.PermissionDenied):
            await login(host, "root", creds, ssh.known_hosts)
        ssh.certificate_validity = 3600
        assert await login(host, "root", await ssh.refresh(creds), ssh.known_hosts) == "root"
    finally:
        host.stop()


async def test_forget_host_and_concurrent_pins(tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh")
    keys = [
        asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode() for _ in range(20)
    ]
    await asyncio.gather(*(ssh.pin_host_key("10.1.0.1", 2200 + i, k) for i, k in enumerate(keys)))
    for i, key in enumerate(keys):  # no update was lost
        assert ssh.host_key_for("10.1.0.1", 2200 + i) == " ".join(key.split()[:2])
    await ssh.forget_host("10.1.0.1", 2203)
    assert ssh.host_key_for("10.1.0.1", 2203) is None
    assert ssh.host_key_for("10.1.0.1", 2204) is not None
    await ssh.forget_host("10.1.0.1", 2203)  # twice is harmless
    with pytest.raises(ConfigError, match="not an SSH public key"):
        await ssh.pin_host_key("10.1.0.1", 22, "ssh-ed25519 AAAA$(id)")
