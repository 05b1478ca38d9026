"""Persistent homes: a hub-side directory mounted on the remote host over the existing SSH connection.

The user's files live on the hub side, in ``<persistent_home_root>/<username>`` (mode 0700). On the
hub, OpenSSH's ``sftp-server`` serves that one directory from inside a bubblewrap sandbox that holds
nothing else (the server binary, its libraries, a one-line passwd file and the directory, bound at
``/home``; no network): ``..``, absolute paths and symlinks all resolve inside the sandbox, so a
user can reach no other user's files, whatever SFTP requests their host sends. On the remote host,
``sshfs -o passive`` runs in an exec channel of the spawner's SSH connection, as the notebook user,
and speaks SFTP on its stdin/stdout; the hub pumps those bytes to and from the sandboxed server. No
key, password or port for the mount exists on the remote host: the storage is reachable only
through this one channel, and the FUSE mount (without ``allow_other``) only by the mounting user.

The home can also live on an external SFTP service the institution runs (ERDA, say): then the hub
logs in to that service itself (with the user's forwarded credential, checking the service's pinned
host key), opens its ``sftp`` subsystem and pumps that channel to the same passive sshfs. The
credential stays in the hub's memory; the remote host never sees it.

When the SSH connection drops, sshfs sees EOF and unmounts; the spawner mounts again after the
reconnect. ``unmount()`` removes the mount at stop, after the notebook has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from .connect import ssh_connect

SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")
# Where the user's directory appears inside the sandbox (and the path sshfs mounts).
SANDBOX_HOME = "/home"
CHUNK = 256 * 1024

# $1: the mount point (absolute, or relative to $HOME). Clears a mount a crash left behind, makes
# the directory (0700) and prints its absolute path.
PREPARE = r"""
cd || exit 4
command -v sshfs >/dev/null 2>&1 || { echo "sshfs is not installed on this host" >&2; exit 3; }
[ -e /dev/fuse ] || { echo "this host has no /dev/fuse (FUSE is not available)" >&2; exit 3; }
fusermount3 -uz "$1" 2>/dev/null || fusermount -uz "$1" 2>/dev/null
mkdir -p "$1" && chmod 700 "$1" || exit 3
cd "$1" && pwd
"""

# $1: absolute mount point, $2: the server's path, $3: extra sshfs options. SFTP on stdin/stdout.
MOUNT = r'exec sshfs ":$2" "$1" -o "passive,idmap=user$3"'

# $1: absolute mount point. Exits 0 once it is a FUSE mount.
IS_MOUNTED = r"""case "$(stat -f -c %T "$1" 2>/dev/null)" in fuse*) exit 0;; esac; exit 1"""

# $1: absolute mount point.
UNMOUNT = r"""fusermount3 -u "$1" 2>/dev/null || fusermount -u "$1" 2>/dev/null || \
  fusermount3 -uz "$1" 2>/dev/null || fusermount -uz "$1" 2>/dev/null; exit 0"""

_SAFE_NAME = re.compile(r"^[^/\x00]+$")


class HomeError(RuntimeError):
    """The persistent home could not be set up; the message says what to fix."""


def shell(script: str, *args: str) -> str:
    return " ".join(["sh", "-c", shlex.quote(script), "gridhub", *map(shlex.quote, args)])


def user_directory(root: str, username: str) -> Path:
    """``root/username``; refuses names that would leave ``root``."""
    if not _SAFE_NAME.match(username) or username in (".", ".."):
        raise HomeError(f"the user name {username!r} cannot name a home directory")
    return Path(root) / username


def _sftp_server() -> str:
    for path in SFTP_SERVER_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise HomeError("OpenSSH's sftp-server is not installed on the hub (package openssh-server)")


def _libraries(binary: str) -> list[str]:
    """The shared libraries (and loader) ``binary`` needs, from ``ldd``."""
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    return sorted(set(re.findall(r"(/\S+)", output)))


def prepare_server(root: str, username: str) -> list[str]:
    """Create the user's directory (0700) and return the sandboxed SFTP server's argv.

    Blocking (file system, ``ldd``): call it in a thread.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise HomeError("bubblewrap (bwrap) is not installed on the hub")
    directory = user_directory(root, username)
    Path(root).mkdir(mode=0o711, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    # sftp-server looks its own uid up; the sandbox's passwd file names only that one account.
    passwd = Path(root) / ".sftp-passwd"
    if not passwd.exists():
        tmp = passwd.with_suffix(f".{os.getpid()}")
        tmp.write_text(
            f"gridhub:x:{os.getuid()}:{os.getgid()}:gridhub:{SANDBOX_HOME}:/nonexistent\n"
        )
        tmp.chmod(0o644)
        tmp.replace(passwd)
    server = _sftp_server()
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--dev", "/dev", "--ro-bind", server, "/sftp-server"]
    for library in _libraries(server):
        argv += ["--ro-bind", library, library]
    argv += ["--ro-bind", str(passwd), "/etc/passwd", "--bind", str(directory), SANDBOX_HOME]
    argv += ["--chdir", SANDBOX_HOME, "/sftp-server", "-d", SANDBOX_HOME, "-e", "-l", "ERROR"]
    return argv


@dataclass(frozen=True)
class ExternalSFTP:
    """An external SFTP service holding the user's home, and the credential the hub logs in with.

    Exactly one of ``password`` and ``private_key`` (OpenSSH or PEM text) is given; neither is
    shown by ``repr``. ``path`` is the directory to mount on the service (empty: the login
    directory). The service's host key must be in ``known_hosts``.
    """

    host: str
    port: int
    known_hosts: str
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    path: str = ""
    connect_timeout: float = 30

    def __post_init__(self) -> None:
        if (self.password is None) == (self.private_key is None):
            raise HomeError("give the storage service exactly one of a password and a private key")


#: Keys of ``CloudSSHSpawner.persistent_home_sftp`` and their defaults (None: required).
SFTP_SETTINGS: dict[str, Any] = {
    "host": None,
    "port": 22,
    "known_hosts": None,
    "username": "{username}",
    "username_key": "",
    "password_key": "",
    "private_key_key": "",
    "path": "",
}


def check_sftp_setting(setting: dict[str, Any]) -> dict[str, Any]:
    """``setting`` with its defaults filled in; a ValueError naming the bad key otherwise."""
    unknown = sorted(set(setting) - set(SFTP_SETTINGS))
    if unknown:
        raise ValueError(
            f"persistent_home_sftp has unknown keys {unknown}; allowed: {sorted(SFTP_SETTINGS)}"
        )
    checked = {key: setting.get(key, default) for key, default in SFTP_SETTINGS.items()}
    for key, value in checked.items():
        if value is None:
            raise ValueError(f"persistent_home_sftp needs {key!r}")
        expected, kind = (int, "an integer") if key == "port" else (str, "a string")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ValueError(f"persistent_home_sftp[{key!r}] must be {kind}, got {value!r}")
    if not checked["host"].strip():
        raise ValueError("persistent_home_sftp['host'] is empty")
    if not 0 < checked["port"] < 65536:
        raise ValueError(f"persistent_home_sftp['port'] {checked['port']} is not a TCP port")
    if not os.path.isabs(checked["known_hosts"]):
        raise ValueError(
            "persistent_home_sftp['known_hosts'] must be the absolute path of a known_hosts file"
            " holding the service's host key"
        )
    if bool(checked["password_key"]) == bool(checked["private_key_key"]):
        raise ValueError(
            "persistent_home_sftp needs exactly one of 'password_key' and 'private_key_key' (the"
            " auth_state key the login stores the user's credential for the service under)"
        )
    return checked


_STARTUP_CHECK_INSTALLED = False


def install_startup_check() -> None:
    """Make the hub check ``c.CloudSSHSpawner.persistent_home_sftp`` when it starts (once).

    JupyterHub builds spawners only for users, so a bad setting would otherwise surface at the
    first spawn. This wraps ``JupyterHub.init_spawners`` (run after the config is loaded): an invalid
    setting stops the hub with one line naming the bad key. Whichever spawner class the hub uses
    (a MultipleSpawner's CloudSSHSpawner children read the same section).
    """
    global _STARTUP_CHECK_INSTALLED
    if _STARTUP_CHECK_INSTALLED:
        return
    from jupyterhub.app import JupyterHub

    original = JupyterHub.init_spawners

    async def init_spawners(self: Any) -> Any:
        section = self.config.get("CloudSSHSpawner", {})
        if section.get("persistent_home_sftp"):
            try:
                check_sftp_setting(dict(section["persistent_home_sftp"]))
            except ValueError as error:
                self.log.critical("CloudSSHSpawner configuration is invalid: %s", error)
                raise SystemExit(1) from None
        return await original(self)

    init_spawners.__doc__ = original.__doc__
    JupyterHub.init_spawners = init_spawners  # type: ignore[method-assign]
    _STARTUP_CHECK_INSTALLED = True


def _lookup(auth_state: dict[str, Any], key: str) -> Any:
    """``auth_state[key]``; a dotted key reaches into nested objects (``mount.PASSWORD``)."""
    value: Any = auth_state
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def external_sftp(
    setting: dict[str, Any], username: str, auth_state: dict[str, Any] | None
) -> ExternalSFTP:
    """The service of a checked ``setting`` for ``username``, with the credential its login
    stored in ``auth_state``; a HomeError saying what is missing otherwise."""
    state = auth_state or {}
    credential_key = setting["password_key"] or setting["private_key_key"]
    credential = _lookup(state, credential_key)
    if not isinstance(credential, str) or not credential:
        raise HomeError(
            f"no credential for the storage service {setting['host']} came with your login"
            f" ({credential_key!r} is missing): sign in again through the front page"
        )
    login = setting["username"].replace("{username}", username)
    if setting["username_key"]:
        login = _lookup(state, setting["username_key"])
        if not isinstance(login, str) or not login:
            raise HomeError(
                f"no user name for the storage service {setting['host']} came with your login"
                f" ({setting['username_key']!r} is missing): sign in again through the front page"
            )
    return ExternalSFTP(
        host=setting["host"],
        port=setting["port"],
        known_hosts=setting["known_hosts"],
        username=login,
        password=credential if setting["password_key"] else None,
        private_key=credential if setting["private_key_key"] else None,
        path=setting["path"].replace("{username}", username),
    )


class _Source:
    """An SFTP server's byte stream: ``reader`` (its replies), ``writer`` (our requests)."""

    reader: Any
    writer: Any

    def end_input(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _SandboxedServer(_Source):
    """OpenSSH's sftp-server serving one hub-side directory from a bubblewrap sandbox."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.reader, self.writer = process.stdout, process.stdin

    @classmethod
    async def start(cls, root: str, username: str) -> _SandboxedServer:
        argv = await asyncio.to_thread(prepare_server, root, username)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def end_input(self) -> None:
        self.writer.close()

    async def close(self) -> None:
        server = self.process
        with contextlib.suppress(ProcessLookupError):
            if server.returncode is None and server.stdin is not None:
                server.stdin.close()
        try:
            await asyncio.wait_for(server.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                server.kill()
            await server.wait()


class _ExternalServer(_Source):
    """The ``sftp`` subsystem of an external SFTP service, opened by the hub."""

    def __init__(
        self, conn: asyncssh.SSHClientConnection, process: asyncssh.SSHClientProcess[bytes]
    ) -> None:
        self.conn, self.process = conn, process
        self.reader, self.writer = process.stdout, process.stdin

    @classmethod
    async def open(cls, service: ExternalSFTP) -> _ExternalServer:
        where = f"{service.host}:{service.port}"
        try:
            keys = [asyncssh.import_private_key(service.private_key)] if service.private_key else []
        except (asyncssh.KeyImportError, ValueError):
            raise HomeError(
                f"the private key forwarded for the storage service {where} cannot be read"
            ) from None
        try:
            conn = await ssh_connect(
                service.host,
                service.connect_timeout,
                port=service.port,
                username=service.username,
                password=service.password,
                client_keys=keys or None,  # [] would load ~/.ssh's keys
                preferred_auth="publickey" if keys else "password,keyboard-interactive",
                known_hosts=service.known_hosts,
                agent_path=None,
                config=[],
            )
        except asyncssh.HostKeyNotVerifiable:
            raise HomeError(
                f"the host key of the storage service {where} does not match"
                f" {service.known_hosts}; refusing to send it your credentials"
            ) from None
        except asyncssh.PermissionDenied:
            raise HomeError(
                f"the storage service {where} refused the login of {service.username!r}"
                " (wrong or expired credentials: sign in again)"
            ) from None
        except (OSError, asyncssh.Error, TimeoutError) as error:
            reason = str(error) or type(error).__name__
            raise HomeError(f"cannot reach the storage service {where}: {reason}") from None
        try:
            process = await conn.create_process(subsystem="sftp", encoding=None)
        except (OSError, asyncssh.Error) as error:
            conn.close()
            raise HomeError(f"the storage service {where} offers no SFTP: {error}") from None
        except BaseException:  # cancelled: the user's logged-in session must not outlive it
            conn.close()
            raise
        return cls(conn, process)

    def end_input(self) -> None:
        self.writer.write_eof()

    async def close(self) -> None:
        self.process.close()
        self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.wait_closed(), 5)


async def _pump(read: object, write: object, end: object) -> None:
    """Copy ``read`` to ``write`` until EOF, then call ``end`` (``write_eof``/``close``)."""
    try:
        while data := await read.read(CHUNK):  # type: ignore[attr-defined]
            write.write(data)  # type: ignore[attr-defined]
            await write.drain()  # type: ignore[attr-defined]
    except (OSError, asyncssh.Error, ConnectionError):
        pass
    finally:
        with contextlib.suppress(Exception):
            end()  # type: ignore[operator]


class PersistentHome:
    """One user's home, mounted on one remote host through one SSH connection.

    The home is ``root/username`` on the hub side, or the ``external`` SFTP service when given.
    """

    def __init__(
        self,
        root: str,
        username: str,
        mount_point: str,
        log: logging.Logger | logging.LoggerAdapter,
        *,
        sshfs_options: str = "",
        mount_timeout: float = 30,
        external: ExternalSFTP | None = None,
    ) -> None:
        self.root = root
        self.username = username
        self.mount_point = mount_point
        self.log = log
        self.sshfs_options = sshfs_options
        self.mount_timeout = mount_timeout
        self.external = external
        self.path = ""  # the absolute mount point on the remote host, once mounted
        self._server: _Source | None = None
        self._client: asyncssh.SSHClientProcess[bytes] | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        #: Called when a mount ends that nobody unmounted (sshfs exited, the storage's connection
        #: or the SSH connection dropped), so its owner can mount again.
        self.on_lost: Callable[[], None] | None = None

    @property
    def directory(self) -> Path:
        return user_directory(self.root, self.username)

    @property
    def description(self) -> str:
        if self.external is not None:
            return f"the storage service {self.external.host}:{self.external.port}"
        return "the hub's storage"

    @property
    def mounted(self) -> bool:
        return self._client is not None and self._client.exit_status is None

    async def mount(self, conn: asyncssh.SSHClientConnection) -> str:
        """Mount the home at ``mount_point`` on ``conn``'s host; its absolute path there."""
        await self.close()
        result = await self._run(conn, shell(PREPARE, self.mount_point))
        path = result.strip().splitlines()[-1] if result.strip() else ""
        if not path.startswith("/"):
            raise HomeError(f"cannot resolve the mount point {self.mount_point!r}")
        if self.external is not None:
            self._server = await _ExternalServer.open(self.external)
            served = self.external.path
        else:
            self._server = await _SandboxedServer.start(self.root, self.username)
            served = SANDBOX_HOME
        try:
            options = f",{self.sshfs_options}" if self.sshfs_options else ""
            self._client = await conn.create_process(
                shell(MOUNT, path, served, options), encoding=None
            )
            server, client = self._server, self._client
            self._pumps = [
                asyncio.ensure_future(_pump(client.stdout, server.writer, server.end_input)),
                asyncio.ensure_future(_pump(server.reader, client.stdin, client.stdin.write_eof)),
            ]
            await self._wait_mounted(conn, path)
        except BaseException:
            await self.close()
            raise
        self.path = path
        self._watcher = asyncio.ensure_future(self._watch(self._client))
        self.log.info(
            "Mounted %s's persistent home (%s) at %s", self.username, self.description, path
        )
        return path

    async def _watch(self, client: asyncssh.SSHClientProcess[bytes]) -> None:
        await client.wait_closed()
        if self._client is client:  # not closed by us
            self.log.warning(
                "%s's persistent home at %s is no longer mounted (%s or the SSH connection ended)",
                self.username,
                self.path,
                self.description,
            )
            if self.on_lost is not None:
                self.on_lost()

    async def _run(self, conn: asyncssh.SSHClientConnection, command: str) -> str:
        try:
            result = await asyncio.wait_for(conn.run(command, check=False), self.mount_timeout)
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise HomeError(str(error) or type(error).__name__) from None
        if result.exit_status != 0:
            raise HomeError(str(result.stderr or "").strip() or f"exit status {result.exit_status}")
        return str(result.stdout or "")

    async def _wait_mounted(self, conn: asyncssh.SSHClientConnection, path: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.mount_timeout
        assert self._client is not None
        while loop.time() < deadline:
            if self._client.exit_status is not None or self._client.is_closing():
                stderr = b""
                with contextlib.suppress(Exception):
                    stderr = await asyncio.wait_for(self._client.stderr.read(4096), 2)
                message = stderr.decode(errors="replace").strip()
                raise HomeError(f"sshfs exited: {message or 'no message'}")
            try:
                await self._run(conn, shell(IS_MOUNTED, path))
                return
            except HomeError:
                if conn.is_closed():
                    raise HomeError("the SSH connection closed while mounting") from None
            await asyncio.sleep(0.2)
        raise HomeError(f"sshfs did not mount {path} within {self.mount_timeout:.0f} s")

    async def unmount(self, conn: asyncssh.SSHClientConnection | None) -> None:
        """Unmount on the remote host (when reachable), then end sshfs and the server."""
        if conn is not None and self.path:
            try:
                await self._run(conn, shell(UNMOUNT, self.path))
            except HomeError as error:
                self.log.warning("Could not unmount %s: %s", self.path, error)
        await self.close()

    async def close(self) -> None:
        """End the channel, the pumps and the hub-side server (the remote mount dies with them)."""
        client, self._client = self._client, None
        server, self._server = self._server, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
        if client is not None:
            client.close()
        for task in self._pumps:
            task.cancel()
        self._pumps = []
        if server is not None:
            await server.close()
        self.path = ""
