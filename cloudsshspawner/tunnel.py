"""``Tunnel``: one SSH connection with a local and a reverse forward, kept alive and re-made.

- local forward: ``127.0.0.1:local_port`` on the hub host reaches the notebook at
  ``127.0.0.1:notebook_port`` on the remote host;
- reverse forward: ``127.0.0.1:api_port`` on the remote host reaches the hub's API.

When the connection drops, the tunnel reconnects with exponential backoff and re-creates both
forwards on the same ports, so the hub's route and the notebook's API URL stay valid.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

import asyncssh

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
# A larger window and packets cut asyncssh's per-packet Python overhead on bulk transfers.
WINDOW = 8 * 1024 * 1024
MAX_PACKET = 256 * 1024


class TunnelError(Exception):
    """The SSH connection or a forward could not be made; the message says what to check."""


@dataclass
class Forwards:
    """The ports of the two forwards (0: let the system choose on first use)."""

    notebook_port: int = 0
    local_port: int = 0
    hub_host: str = "127.0.0.1"
    hub_port: int = 8081
    api_port: int = 0


class Tunnel:
    """An SSH connection to ``target`` that can run commands and carry the two forwards."""

    def __init__(
        self,
        target: SSHTarget,
        log: logging.Logger | logging.LoggerAdapter,
        *,
        keepalive_interval: float = 10,
        connect_timeout: float = 20,
        ciphers: tuple[str, ...] = DEFAULT_CIPHERS,
    ) -> None:
        self.target = target
        self.log = log
        self.keepalive_interval = keepalive_interval
        self.connect_timeout = connect_timeout
        self.ciphers = ciphers
        self.forwards: Forwards | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.reconnects = 0

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

    def _read_key(self) -> object:
        key = asyncssh.read_private_key(self.target.key_file)
        if self.target.certificate_file:
            return (key, asyncssh.read_certificate(self.target.certificate_file))
        return key

    async def connect(self) -> None:
        """Connect (verifying the host key) if not connected."""
        if self.connected:
            return
        target = self.target
        try:
            key = await asyncio.to_thread(self._read_key)
        except (OSError, asyncssh.KeyImportError) as error:
            raise TunnelError(f"cannot read the SSH key for {target.host}: {error}") from None
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(
                    target.host,
                    port=target.port,
                    username=target.username,
                    client_keys=[key],
                    known_hosts=self._known_hosts(),
                    encryption_algs=list(self.ciphers),
                    keepalive_interval=self.keepalive_interval,
                    keepalive_count_max=3,
                    agent_path=None,
                    config=[],
                    connect_timeout=self.connect_timeout,
                    window=WINDOW,
                    max_pktsize=MAX_PACKET,
                ),
                self.connect_timeout + 5,
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
                f"cannot connect to {target.host}:{target.port} over SSH: {error or type(error).__name__}"
            ) from None
        sock = conn.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # OpenSSH's sshd turns on TCP_NODELAY for a connection only when a session is first
        # exec'd; a forward-only connection (like `ssh -N -L`) keeps Nagle's algorithm, and every
        # response written in two pieces then waits ~40 ms for a delayed ACK. One no-op command
        # makes sshd set it.
        try:
            await asyncio.wait_for(conn.run("true", check=False), self.connect_timeout)
        except (OSError, asyncssh.Error, TimeoutError) as error:
            conn.close()
            raise TunnelError(
                f"{target.host} accepted the SSH login but runs no commands: {error}"
            ) from None
        self._conn = conn

    async def run(self, command: str, stdin: str | None = None, timeout: float = 30) -> str:
        """Run ``command`` on the host; its stdout, or TunnelError with its stderr."""
        await self.connect()
        assert self._conn is not None
        try:
            result = await asyncio.wait_for(
                self._conn.run(command, input=stdin, check=False), timeout
            )
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise TunnelError(f"running a command on {self.target.host} failed: {error}") from None
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

        Ports chosen here are written back into ``forwards``; a dropped connection is re-made with
        the same ports from then on.
        """
        self.forwards = forwards
        await self._establish()
        if self._supervisor is None:
            self._supervisor = asyncio.ensure_future(self._supervise())
        return forwards

    async def open_local(self) -> int:
        """Open the local forward to ``forwards.notebook_port``; returns the local port."""
        assert self._conn is not None and self.forwards is not None
        await self._forward("local")
        return self.forwards.local_port

    async def _establish(self) -> None:
        await self.connect()
        assert self._conn is not None and self.forwards is not None
        await self._forward("reverse")
        if self.forwards.notebook_port:
            await self._forward("local")

    async def _forward(self, kind: str) -> None:
        conn, forwards = self._conn, self.forwards
        assert conn is not None and forwards is not None
        try:
            if kind == "reverse":
                listener = await conn.forward_remote_port(
                    "127.0.0.1", forwards.api_port, forwards.hub_host, forwards.hub_port
                )
                forwards.api_port = listener.get_port()
            else:
                listener = await conn.forward_local_port(
                    "127.0.0.1", forwards.local_port, "127.0.0.1", forwards.notebook_port
                )
                forwards.local_port = listener.get_port()
        except (OSError, asyncssh.Error) as error:
            conn.close()
            raise TunnelError(
                f"cannot open the {kind} SSH forward with {self.target.host}: {error}"
            ) from None

    async def _supervise(self) -> None:
        """Re-make the connection and the forwards whenever the connection drops."""
        while not self._closing:
            assert self._conn is not None
            await self._conn.wait_closed()
            if self._closing:
                return
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
                    delay = min(delay * 2, 30)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the connection is up again (after a drop); False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.connected:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 5)
            except TimeoutError:
                pass
            self._conn = None
