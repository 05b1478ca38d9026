"""SSH credentials for the machines corc orders: user keys, CA certificates, and host keys.

- Each (user, server name) gets its own ed25519 key pair: ``<dir>/users/<user>/`` for the default
  server, ``<dir>/users/<user>/servers/<name>/`` for a named one (private key 0600 from the moment
  it exists, directories 0700). Two spawns at once share the first key written, never a half one.
- With a CA (``<dir>/ca/ca_ed25519``), each login also gets an OpenSSH user certificate signed by it,
  valid for the remote user's name only and for a limited time; ``refresh()`` re-issues it before it
  expires.
- Host keys: a key the provider reports is *pinned*; otherwise the first key seen is recorded, and
  every later connection must present the same one. Entries are exact (``[host]:port key``);
  ``forget_host()`` drops one at teardown so a recycled address starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncssh

from .errors import ConfigError, HostKeyMismatch

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
KEY_NAME = "id_ed25519"
CERT_NAME = "id_ed25519-cert.pub"


@dataclass(frozen=True)
class SSHCredentials:
    """How to log in to a resource: remote user, private key file, its public key, certificate."""

    username: str
    key_file: str
    public_key: str
    certificate_file: str | None = None


def _make_dirs(path: Path) -> None:
    """``path`` and its missing parents, each created 0700."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)


def _temp_file(path: Path, data: bytes) -> Path:
    """``data`` in a new uniquely named 0600 file next to ``path`` (0600 from its creation)."""
    _make_dirs(path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``data``."""
    tmp = _temp_file(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_private(path: Path, data: bytes) -> bool:
    """Create ``path`` (0600) holding ``data`` unless it exists; True when this call created it.

    A hard link never replaces a file, so of two concurrent creators exactly one wins and the
    other reads the winner's complete file.
    """
    tmp = _temp_file(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _dir_name(name: str) -> str:
    """A directory name for a user or server name; unusual names are hashed ('+' marks them, so
    no plain name can equal a hashed one)."""
    if _SAFE_NAME.match(name) and name not in (".", ".."):
        return name
    return "u+" + hashlib.sha256(name.encode()).hexdigest()[:40]


def _host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _valid_before(certificate_file: str) -> float:
    """When the certificate expires (0 when it cannot be read)."""
    try:
        certificate = asyncssh.read_certificate(certificate_file)
    except (OSError, ValueError, asyncssh.KeyImportError):
        return 0
    # asyncssh keeps the validity window in attributes without a public accessor.
    return float(getattr(certificate, "_valid_before", 0) or 0)


class SSHAuthenticator:
    """Keys, certificates and host keys under one directory (default ``~/.corc/ssh``).

    Safe to use from several tasks, threads and processes at once: files are written under unique
    temporary names and renamed into place; ``known_hosts`` updates hold a file lock.
    """

    def __init__(
        self,
        directory: Path | str = "~/.corc/ssh",
        *,
        use_certificates: bool = False,
        certificate_validity: float = 12 * 3600,
        refresh_margin: float | None = None,
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.use_certificates = use_certificates
        self.certificate_validity = certificate_validity
        #: ``refresh()`` re-issues a certificate that expires within this many seconds
        #: (default: a quarter of the validity, at most an hour).
        self.refresh_margin = (
            refresh_margin if refresh_margin is not None else min(3600.0, certificate_validity / 4)
        )
        self.known_hosts = self.directory / "known_hosts"
        self._thread_lock = threading.Lock()

    # -- user keys and certificates ---------------------------------------------------------------

    def folder_for(self, user: str, server_name: str = "") -> Path:
        """The directory holding the key (and certificate) of ``user``'s server ``server_name``."""
        folder = self.directory / "users" / _dir_name(user)
        if server_name:
            folder = folder / "servers" / _dir_name(server_name)
        return folder

    async def credentials_for(
        self, user: str, remote_user: str | None = None, server_name: str = ""
    ) -> SSHCredentials:
        """The key pair of (user, server) (made on first use) and, with a CA, a fresh certificate."""
        remote_user = remote_user or user
        return await asyncio.to_thread(self._credentials_sync, user, remote_user, server_name)

    def _credentials_sync(self, user: str, remote_user: str, server_name: str) -> SSHCredentials:
        folder = self.folder_for(user, server_name)
        key_file = folder / KEY_NAME
        if not key_file.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment=f"corc:{user}")
            _create_private(key_file, key.export_private_key())
        key = asyncssh.read_private_key(key_file)
        public = key.export_public_key()
        pub_file = folder / (KEY_NAME + ".pub")
        if not pub_file.exists():
            _write_private(pub_file, public)
        certificate_file = None
        if self.use_certificates:
            certificate_file = str(self._sign(key, user, remote_user, folder))
        return SSHCredentials(remote_user, str(key_file), public.decode().strip(), certificate_file)

    async def refresh(self, credentials: SSHCredentials) -> SSHCredentials:
        """``credentials`` with a certificate valid for at least ``refresh_margin`` more seconds:
        the same one while it is, a new one (same key, same principal) when it is not.

        Raises ConfigError when the key is gone (its server was stopped and ``remove()``d).
        """
        if not credentials.certificate_file:
            return credentials
        return await asyncio.to_thread(self._refresh_sync, credentials)

    def _refresh_sync(self, credentials: SSHCredentials) -> SSHCredentials:
        assert credentials.certificate_file
        if _valid_before(credentials.certificate_file) - time.time() > self.refresh_margin:
            return credentials
        key_file = Path(credentials.key_file)
        try:
            key = asyncssh.read_private_key(key_file)
        except (OSError, ValueError, asyncssh.KeyImportError):
            raise ConfigError(
                f"the SSH key {key_file} is gone; start the server again to get a new one"
            ) from None
        owner = key.get_comment() or "corc"
        user = owner.removeprefix("corc:")
        path = self._sign(key, user, credentials.username, key_file.parent)
        return replace(credentials, certificate_file=str(path))

    async def remove(self, user: str, server_name: str = "") -> None:
        """Delete the key and certificate of (user, server) (at stop); a no-op when there are none.

        Named servers' keys of the same user are kept when the default server's are removed.
        """
        await asyncio.to_thread(self._remove_sync, user, server_name)

    def _remove_sync(self, user: str, server_name: str) -> None:
        folder = self.folder_for(user, server_name)
        if server_name:
            shutil.rmtree(folder, ignore_errors=True)
            return
        for name in (KEY_NAME, KEY_NAME + ".pub", CERT_NAME):
            (folder / name).unlink(missing_ok=True)

    def _ca_key(self) -> asyncssh.SSHKey:
        ca_file = self.directory / "ca" / "ca_ed25519"
        if not ca_file.exists():
            ca = asyncssh.generate_private_key("ssh-ed25519", comment="corc user CA")
            _create_private(ca_file, ca.export_private_key())
        ca = asyncssh.read_private_key(ca_file)
        pub_file = ca_file.parent / "ca_ed25519.pub"
        if not pub_file.exists():
            _write_private(pub_file, ca.export_public_key())
        return ca

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
        path = folder / CERT_NAME
        _write_private(path, certificate.export_certificate())
        return path

    # -- host keys --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _hosts_locked(self) -> Iterator[None]:
        """Hold the known_hosts lock (threads of this process, then other processes)."""
        with self._thread_lock:
            _make_dirs(self.directory)
            fd = os.open(self.directory / ".known_hosts.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

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
        """The recorded or pinned key of ``host:port`` (``"<type> <base64>"``), or None."""
        return self._entries().get(_host_entry(host, port))

    def _set_entry(self, host: str, port: int, key: str | None) -> None:
        with self._hosts_locked():
            entries = self._entries()
            entry = _host_entry(host, port)
            if key is None:
                if entries.pop(entry, None) is None:
                    return
            else:
                entries[entry] = key
            self._write_entries(entries)

    async def pin_host_key(self, host: str, port: int, key: str) -> None:
        """Record the key the provider reported for a new resource (replacing any old entry)."""
        try:
            parsed = asyncssh.import_public_key(key)
        except (asyncssh.KeyImportError, ValueError):
            raise ConfigError(
                f"the host key reported for {host} is not an SSH public key"
            ) from None
        line = parsed.export_public_key().decode().split()
        await asyncio.to_thread(self._set_entry, host, port, f"{line[0]} {line[1]}")

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
        await asyncio.to_thread(self._record_or_check, host, port, seen)
        return seen

    def _record_or_check(self, host: str, port: int, seen: str) -> None:
        with self._hosts_locked():
            entries = self._entries()
            recorded = entries.get(_host_entry(host, port))
            if recorded is None:
                entries[_host_entry(host, port)] = seen
                self._write_entries(entries)
            elif recorded != seen:
                raise HostKeyMismatch(
                    f"{host}:{port} presented a different SSH host key than the one recorded;"
                    " refusing to trust it (the machine may have been replaced or the connection"
                    " intercepted)"
                )

    async def forget_host(self, host: str, port: int = 22) -> None:
        """Drop the entry of a resource that was torn down (its address may be reused)."""
        await asyncio.to_thread(self._set_entry, host, port, None)
