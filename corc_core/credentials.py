"""SSH credentials for the machines corc orders: user keys, CA certificates, and host keys.

- Each user gets an ed25519 key pair in ``<dir>/users/<user>/`` (private key 0600, directory 0700).
- With a CA (``<dir>/ca/ca_ed25519``), each login also gets an OpenSSH user certificate signed by it,
  valid for the remote user's name only and for a limited time.
- Host keys: a key the provider reports is *pinned*; otherwise the first key seen is recorded, and
  every later connection must present the same one. Entries are exact (``[host]:port key``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from .errors import ConfigError, HostKeyMismatch

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class SSHCredentials:
    """How to log in to a resource: remote user, private key file, its public key, certificate."""

    username: str
    key_file: str
    public_key: str
    certificate_file: str | None = None


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file (replacing any old one)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _dir_name(user: str) -> str:
    return (
        user
        if _SAFE_NAME.match(user) and user not in (".", "..")
        else ("u-" + hashlib.sha256(user.encode()).hexdigest()[:32])
    )


def _host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class SSHAuthenticator:
    """Keys, certificates and host keys under one directory (default ``~/.corc/ssh``)."""

    def __init__(
        self,
        directory: Path | str = "~/.corc/ssh",
        *,
        use_certificates: bool = False,
        certificate_validity: float = 12 * 3600,
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.use_certificates = use_certificates
        self.certificate_validity = certificate_validity
        self.known_hosts = self.directory / "known_hosts"
        self._lock = asyncio.Lock()

    # -- user keys and certificates ---------------------------------------------------------------

    async def credentials_for(self, user: str, remote_user: str | None = None) -> SSHCredentials:
        """The user's key pair (made on first use) and, with a CA, a fresh certificate."""
        remote_user = remote_user or user
        return await asyncio.to_thread(self._credentials_sync, user, remote_user)

    def _credentials_sync(self, user: str, remote_user: str) -> SSHCredentials:
        folder = self.directory / "users" / _dir_name(user)
        key_file = folder / "id_ed25519"
        if not key_file.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment=f"corc:{user}")
            _write_private(key_file, key.export_private_key())
            (folder / "id_ed25519.pub").write_bytes(key.export_public_key())
        key = asyncssh.read_private_key(key_file)
        public = key.export_public_key().decode().strip()
        certificate_file = None
        if self.use_certificates:
            certificate_file = str(self._sign(key, user, remote_user, folder))
        return SSHCredentials(remote_user, str(key_file), public, certificate_file)

    def _ca_key(self) -> asyncssh.SSHKey:
        ca_file = self.directory / "ca" / "ca_ed25519"
        if not ca_file.exists():
            ca = asyncssh.generate_private_key("ssh-ed25519", comment="corc user CA")
            _write_private(ca_file, ca.export_private_key())
            (ca_file.parent / "ca_ed25519.pub").write_bytes(ca.export_public_key())
        return asyncssh.read_private_key(ca_file)

    def ca_public_key(self) -> str:
        """The CA's public key, for ``TrustedUserCAKeys`` on the hosts."""
        return self._ca_key().export_public_key().decode().strip()

    def _sign(self, key: asyncssh.SSHKey, user: str, remote_user: str, folder: Path) -> Path:
        now = int(time.time())
        certificate = self._ca_key().generate_user_certificate(
            key,
            key_id=f"corc:{user}",
            principals=[remote_user],
            valid_after=now - 300,
            valid_before=now + int(self.certificate_validity),
        )
        path = folder / "id_ed25519-cert.pub"
        path.write_bytes(certificate.export_certificate())
        return path

    # -- host keys --------------------------------------------------------------------------------

    def _entries(self) -> dict[str, str]:
        entries = {}
        if self.known_hosts.exists():
            for line in self.known_hosts.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and not line.startswith("#"):
                    entries[parts[0]] = f"{parts[1]} {parts[2]}"
        return entries

    def _write_entries(self, entries: dict[str, str]) -> None:
        text = "".join(f"{host} {key}\n" for host, key in sorted(entries.items()))
        _write_private(self.known_hosts, text.encode())

    def host_key_for(self, host: str, port: int = 22) -> str | None:
        return self._entries().get(_host_entry(host, port))

    async def pin_host_key(self, host: str, port: int, key: str) -> None:
        """Record the key the provider reported for a new resource (replacing any old entry)."""
        try:
            parsed = asyncssh.import_public_key(key)
        except (asyncssh.KeyImportError, ValueError):
            raise ConfigError(
                f"the host key reported for {host} is not an SSH public key"
            ) from None
        line = parsed.export_public_key().decode().split()
        async with self._lock:
            entries = await asyncio.to_thread(self._entries)
            entries[_host_entry(host, port)] = f"{line[0]} {line[1]}"
            await asyncio.to_thread(self._write_entries, entries)

    async def verify_host(self, host: str, port: int = 22, timeout: float = 15) -> str:
        """The host's key; recorded on first contact, and it must match on every later one."""
        try:
            key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port), timeout)
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise ConfigError(f"cannot read the SSH host key of {host}:{port}: {error}") from None
        if key is None:
            raise ConfigError(f"{host}:{port} presented no SSH host key")
        parts = key.export_public_key().decode().split()
        seen = f"{parts[0]} {parts[1]}"
        async with self._lock:
            entries = await asyncio.to_thread(self._entries)
            recorded = entries.get(_host_entry(host, port))
            if recorded is None:
                entries[_host_entry(host, port)] = seen
                await asyncio.to_thread(self._write_entries, entries)
            elif recorded != seen:
                raise HostKeyMismatch(
                    f"{host}:{port} presented a different SSH host key than the one recorded;"
                    " refusing to trust it (the machine may have been replaced or the connection"
                    " intercepted)"
                )
        return seen

    async def forget_host(self, host: str, port: int = 22) -> None:
        """Drop the entry of a resource that was torn down (its address may be reused)."""
        async with self._lock:
            entries = await asyncio.to_thread(self._entries)
            if entries.pop(_host_entry(host, port), None) is not None:
                await asyncio.to_thread(self._write_entries, entries)
