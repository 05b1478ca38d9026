"""``Tunnel``: one SSH connection with a local and a reverse forward, kept alive and re-made.

- local forward: ``<local_bind>:local_port`` on the hub host reaches the notebook at
  ``127.0.0.1:notebook_port`` on the remote host;
- reverse forward: ``127.0.0.1:api_port`` on the remote host reaches the hub's REST API only,
  through an ``ApiFilter`` (see ``apifilter``).

Keepalives bound how long a silent (half-open) connection goes unnoticed: ``keepalive_interval`` x
``keepalive_count`` seconds. When the connection drops, the tunnel reconnects with a capped
exponential backoff. The local forward comes back on the same port (the hub's route stays valid);
the reverse forward takes a fresh remote port on every connection, so an old sshd session that
still holds the previous one never blocks it, and ``on_established`` tells the remote side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from .apifilter import ApiFilter
from .connect import ssh_connect
from .localforward import MAX_PACKET, WINDOW, LocalForward
from .muxforward import MuxError, MuxForward, openssh_available
from .target import SSHTarget

# AES-GCM first: with AES-NI it is the fastest cipher asyncssh has (OpenSSH's default,
# chacha20-poly1305, costs asyncssh about 30% of its throughput).
DEFAULT_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
__all__ = ["MAX_PACKET", "WINDOW", "Forwards", "Tunnel", "TunnelError"]


class TunnelError(Exception):
    """The SSH connection or a forward could not be made; the message says what to check."""


@dataclass
class Forwards:
    """The ports of the two forwards (0: let the system choose)."""

    notebook_port: int = 0
    local_port: int = 0
    hub_host: str = "127.0.0.1"
    hub_port: int = 8081
    api_port: int = 0
    api_prefix: str = "/hub/api/"
    local_bind: str = "127.0.0.1"


# Called with a target whose certificate expires soon; returns one with a fresh certificate.
Refresher = Callable[[SSHTarget], Awaitable[SSHTarget]]
# Called after each connection is made and its forwards are open.
Established = Callable[["Tunnel"], Awaitable[None]]


class Tunnel:
    """An SSH connection to ``target`` that can run commands and carry the two forwards.

    ``connect()`` is serialized: concurrent callers share one connection. ``close()`` ends the
    connection, the reconnect task and any connection attempt in flight.
    """

    def __init__(
        self,
        target: SSHTarget,
        log: logging.Logger | logging.LoggerAdapter,
        *,
        keepalive_interval: float = 5,
        keepalive_count: int = 3,
        connect_timeout: float = 20,
        reconnect_max_delay: float = 4,
        ciphers: tuple[str, ...] = DEFAULT_CIPHERS,
        refresh: Refresher | None = None,
        certificate_margin: float = 60,
        on_established: Established | None = None,
        forward_processes: int = 2,
    ) -> None:
        self.target = target
        self.log = log
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.connect_timeout = connect_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.ciphers = ciphers
        self.refresh = refresh
        self.certificate_margin = certificate_margin
        self.on_established = on_established
        self.forward_processes = forward_processes
        self.forwards: Forwards | None = None
        self.api_filter: ApiFilter | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._local_forward: LocalForward | MuxForward | None = None
        self._lock = asyncio.Lock()
        self._attempt: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self._made: asyncssh.SSHClientConnection | None = None  # made, not yet adopted
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.connections = 0  # SSH connections made over this tunnel's life
        self.reconnects = 0
        self.lost_since: float | None = None  # loop time the connection was lost, while it is

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    # -- connection -------------------------------------------------------------------------------

    def _known_hosts(self) -> object:
        if self.target.host_key:
            try:
                key = asyncssh.import_public_key(self.target.host_key)
            except (asyncssh.KeyImportError, ValueError):
                raise TunnelError(
                    f"the pinned host key of {self.target.host} is not a public key"
                ) from None
            return ([key], [], [])
        return self.target.known_hosts

    def _read_key(self) -> tuple[object, float | None]:
        """The client key (with its certificate) and the certificate's expiry (epoch seconds)."""
        key = asyncssh.read_private_key(self.target.key_file)
        if not self.target.certificate_file:
            return key, None
        certificate = asyncssh.read_certificate(self.target.certificate_file)
        # asyncssh keeps the validity window in an attribute without a public accessor.
        expires = float(getattr(certificate, "_valid_before", 0) or 0)
        return (key, certificate), expires

    async def _client_key(self) -> object:
        """The key to log in with; a certificate that expires soon is re-issued (``refresh``)."""
        host = self.target.host
        try:
            key, expires = await asyncio.to_thread(self._read_key)
            if expires is not None and expires - time.time() < self.certificate_margin:
                if self.refresh is None:
                    if expires <= time.time():
                        raise TunnelError(
                            f"the SSH certificate for {host} ({self.target.certificate_file})"
                            " has expired and nothing can renew it"
                        )
                else:
                    self.target = await self.refresh(self.target)
                    self.log.info("Renewed the SSH certificate for %s", host)
                    key, _ = await asyncio.to_thread(self._read_key)
        except (OSError, asyncssh.KeyImportError, ValueError) as error:
            raise TunnelError(f"cannot read the SSH key for {host}: {error}") from None
        return key

    async def connect(self) -> None:
        """Connect (verifying the host key) unless connected; concurrent callers share one."""
        async with self._lock:
            if self._closing:
                raise TunnelError(f"the SSH tunnel to {self.target.host} is closed")
            if self.connected:
                return
            self._attempt = asyncio.ensure_future(self._open_connection())
            try:
                await self._attempt
            except BaseException:
                # Cancelled as the attempt finished: its connection is in _made, owned by no one.
                self._drop_made()
                raise
            finally:
                self._attempt = None
            conn, self._made = self._made, None
            assert conn is not None
            if self._closing:  # close() ran while we connected
                conn.close()
                raise TunnelError(f"the SSH tunnel to {self.target.host} is closed")
            self._conn = conn
            self.connections += 1
            self.lost_since = None

    async def _open_connection(self) -> asyncssh.SSHClientConnection:
        target = self.target
        key = await self._client_key()
        try:
            conn = await ssh_connect(
                target.host,
                self.connect_timeout,
                port=target.port,
                username=target.username,
                client_keys=[key],
                known_hosts=self._known_hosts(),
                encryption_algs=list(self.ciphers),
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=self.keepalive_count,
                agent_path=None,
                config=[],
                window=WINDOW,
                max_pktsize=MAX_PACKET,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise TunnelError(
                f"the SSH host key of {target.host}:{target.port} does not match the expected key;"
                " refusing to connect (the host may have been replaced, or the connection is"
                " being intercepted)"
            ) from None
        except asyncssh.PermissionDenied:
            raise TunnelError(
                f"{target.host}:{target.port} refused the SSH login of {target.username}"
            ) from None
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise TunnelError(
                f"cannot connect to {target.host}:{target.port} over SSH:"
                f" {str(error) or type(error).__name__}"
            ) from None
        try:
            sock = conn.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # OpenSSH's sshd turns on TCP_NODELAY for a connection only when a session is first
            # exec'd; a forward-only connection (like `ssh -N -L`) keeps Nagle's algorithm, and
            # every response written in two pieces then waits ~40 ms for a delayed ACK. One no-op
            # command makes sshd set it.
            await asyncio.wait_for(conn.run("true", check=False), self.connect_timeout)
        except (OSError, asyncssh.Error, TimeoutError) as error:
            conn.close()
            raise TunnelError(
                f"{target.host} accepted the SSH login but runs no commands:"
                f" {str(error) or type(error).__name__}"
            ) from None
        except BaseException:
            conn.close()
            raise
        if self._closing:
            # close() ran meanwhile. Its cancel can be lost: Python 3.11's wait_for returns a result
            # that completed as the cancel arrived, and nobody would own this connection then.
            conn.close()
            raise TunnelError(f"the SSH tunnel to {target.host} is closed")
        # Kept here until connect() adopts it: a result can be lost between this task and its
        # awaiter (Python 3.11 drops the result of a task cancelled just as it returns).
        self._made = conn
        return conn

    def _drop_made(self) -> None:
        """Close a connection an attempt made that nobody adopted."""
        conn, self._made = self._made, None
        if conn is not None:
            conn.close()

    async def run(self, command: str, stdin: str | None = None, timeout: float = 30) -> str:
        """Run ``command`` on the host; its stdout, or TunnelError with its stderr."""
        await self.connect()
        conn = self._conn
        assert conn is not None
        try:
            result = await asyncio.wait_for(conn.run(command, input=stdin, check=False), timeout)
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise TunnelError(
                f"running a command on {self.target.host} failed: {str(error) or type(error).__name__}"
            ) from None
        if result.exit_status != 0:
            stderr = str(result.stderr or "").strip()
            raise TunnelError(
                f"a command on {self.target.host} exited with {result.exit_status}"
                + (f": {stderr}" if stderr else "")
            )
        return str(result.stdout or "")

    # -- forwards ---------------------------------------------------------------------------------

    async def open(self, forwards: Forwards) -> Forwards:
        """Connect and open the reverse forward, and the local one once ``notebook_port`` is set.

        Ports chosen here are written back into ``forwards``; a dropped connection is re-made
        with the same local port and a fresh remote (API) port.
        """
        self.forwards = forwards
        self.api_filter = ApiFilter(
            forwards.hub_host, forwards.hub_port, forwards.api_prefix, self.log
        )
        await self._establish()
        if self._supervisor is None and not self._closing:
            self._supervisor = asyncio.ensure_future(self._supervise())
        return forwards

    async def open_local(self) -> int:
        """Open the local forward to ``forwards.notebook_port``; returns the local port."""
        assert self._conn is not None and self.forwards is not None
        await self._forward(self._conn, "local")
        return self.forwards.local_port

    async def _establish(self) -> None:
        await self.connect()
        conn, forwards = self._conn, self.forwards
        assert conn is not None and forwards is not None
        await self._forward(conn, "reverse")
        if forwards.notebook_port:
            await self._forward(conn, "local")
        if self.on_established is not None:
            await self.on_established(self)

    async def _forward(self, conn: asyncssh.SSHClientConnection, kind: str) -> None:
        forwards, api_filter = self.forwards, self.api_filter
        assert forwards is not None and api_filter is not None
        try:
            if kind == "reverse":  # a fresh port on every connection
                listener = await conn.start_server(api_filter.handler, "127.0.0.1", 0)
                forwards.api_port = listener.get_port()
            else:
                if self._local_forward is not None:
                    self._local_forward.close()
                self._local_forward = self._make_local_forward(conn, forwards.notebook_port)
                forwards.local_port = await self._local_forward.listen(
                    forwards.local_bind, forwards.local_port
                )
        except (OSError, asyncssh.Error, MuxError) as error:
            conn.close()
            raise TunnelError(
                f"cannot open the {kind} SSH forward with {self.target.host}: {error}"
            ) from None

    def _make_local_forward(
        self, conn: asyncssh.SSHClientConnection, notebook_port: int
    ) -> LocalForward | MuxForward:
        """OpenSSH processes carry the local forward when there is an ``ssh`` client (the data
        path then stays in C); otherwise this process does, over ``conn``."""
        if self.forward_processes > 0 and openssh_available():
            return MuxForward(
                self.target,
                "127.0.0.1",
                notebook_port,
                self.log,
                processes=self.forward_processes,
                ciphers=self.ciphers,
                keepalive_interval=self.keepalive_interval,
                keepalive_count=self.keepalive_count,
                connect_timeout=self.connect_timeout,
            )
        if self.forward_processes > 0:
            self.log.warning(
                "no OpenSSH ssh client on PATH: the hub process carries the local forward"
            )
        return LocalForward(conn, "127.0.0.1", notebook_port, self.log)

    async def _supervise(self) -> None:
        """Re-make the connection and the forwards whenever the connection drops."""
        loop = asyncio.get_running_loop()
        while not self._closing:
            conn = self._conn
            if conn is not None:
                await conn.wait_closed()
            if self._closing:
                return
            if self._local_forward is not None:  # re-made with the connection, on the same port
                self._local_forward.close()
            if self.lost_since is None:
                self.lost_since = loop.time()
            self.log.warning("SSH connection to %s lost; reconnecting", self.target.host)
            delay = 0.25
            while not self._closing:
                try:
                    await self._establish()
                    self.reconnects += 1
                    self.log.info("SSH tunnel to %s re-established", self.target.host)
                    break
                except TunnelError as error:
                    self.log.warning("%s; retrying in %.1f s", error, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.reconnect_max_delay)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the connection is up again (after a drop); False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.connected:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def close(self, timeout: float = 3) -> None:
        """End the reconnect task, any connection attempt and the connection; bounded."""
        self._closing = True
        tasks = [task for task in (self._supervisor, self._attempt) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), timeout)
        self._supervisor = None
        self._drop_made()
        local_forward, self._local_forward = self._local_forward, None
        if local_forward is not None:
            local_forward.close()
            await local_forward.wait_closed()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), timeout)
