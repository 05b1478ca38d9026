"""The tunnel's local forward: a local TCP port whose connections become SSH direct-tcpip channels.

asyncssh's own ``forward_local_port`` writes every SSH packet it receives to the local socket at
once. OpenSSH's sshd sends forwarded data in packets of at most 32 KiB, so a download costs one
``send()`` per 32 KiB on the hub host (and as many wake-ups of the reader). Here the data of all
packets decoded from one read of the SSH socket (up to 256 KiB) is written with a single
``send()``, at the end of the event-loop step: a third of the tunnel client's CPU per GB and half
of the local reader's (``bench/cloudssh_tunnel.py``). A small response is never held back longer
than that one loop step.

Flow control runs both ways: a local reader that does not keep up pauses the SSH channel (which
then stops opening its window), and a full SSH window pauses reading from the local socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

import asyncssh

# Per-channel receive window and largest packet we accept from the server.
WINDOW = 8 * 1024 * 1024
MAX_PACKET = 256 * 1024


class _ChannelSide(asyncssh.SSHTCPSession[bytes]):
    """The SSH channel end of one forwarded connection: batches its data to the local socket."""

    def __init__(self, local: _LocalSide) -> None:
        self._local = local
        self._pending: list[bytes] = []

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Write what the channel delivered since the last flush in one piece."""
        pending, self._pending = self._pending, []
        transport = self._local.transport
        if pending and transport is not None and not transport.is_closing():
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def eof_received(self) -> bool:
        self.flush()
        transport = self._local.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
            return True  # keep the channel half open: the local side may still send
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.flush()
        self._local.close()

    def pause_writing(self) -> None:
        if self._local.transport is not None:
            self._local.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._local.transport is not None and not self._local.transport.is_closing():
            self._local.transport.resume_reading()


class _LocalSide(asyncio.Protocol):
    """The local end of one forwarded connection; opens its SSH channel when accepted."""

    def __init__(self, forward: LocalForward) -> None:
        self._forward = forward
        self.transport: asyncio.Transport | None = None
        self._channel: asyncssh.SSHTCPChannel[bytes] | None = None
        self._opening: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.pause_reading()  # until the channel is open
        self._opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        forward = self._forward
        try:
            channel, _ = await forward.conn.create_connection(
                lambda: _ChannelSide(self),
                forward.dest_host,
                forward.dest_port,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
            )
        except Exception as error:  # whatever the reason, this connection cannot be forwarded
            forward.log.debug(
                "forwarded connection to port %s refused: %s", forward.dest_port, error
            )
            self.close()
            return
        if self.transport is None or self.transport.is_closing():
            channel.close()
            return
        self._channel = channel
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._channel is not None:
            self._channel.write(data)

    def eof_received(self) -> bool:
        if self._channel is not None:
            self._channel.write_eof()
        return True  # half close: the answer may still come

    def pause_writing(self) -> None:
        if self._channel is not None:
            self._channel.pause_reading()

    def resume_writing(self) -> None:
        if self._channel is not None:
            self._channel.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def listen_on(
    factory: Callable[[], asyncio.Protocol], bind: str, port: int
) -> asyncio.Server:
    """A server on ``bind:port`` (``""``: every address; port 0: a free port, the same one on every
    address), not serving yet: the caller keeps it, then awaits ``start_serving()``. (Serving at
    once, ``create_server`` awaits again after it starts, and a cancel landing there would lose a
    listening server.)"""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, bind or None, port, start_serving=False)
    if len({sock.getsockname()[1] for sock in server.sockets}) > 1:
        port = server.sockets[0].getsockname()[1]  # port 0 on several addresses: the first's
        server.close()
        server = await loop.create_server(factory, bind or None, port, start_serving=False)
    return server


class LocalForward:
    """A listener on ``bind:port`` forwarding each connection to ``dest_host:dest_port`` over ``conn``.

    It lives as long as the SSH connection: ``close()`` (or the connection ending) stops it.
    """

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        dest_host: str,
        dest_port: int,
        log: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.conn = conn
        self.dest_host = dest_host
        self.dest_port = dest_port
        self.log = log
        self._server: asyncio.Server | None = None
        self._watch: asyncio.Task[None] | None = None

    async def listen(self, bind: str, port: int) -> int:
        """Start listening (``""``: every address; port 0: a free port, the same on every
        address); returns the port."""
        server = self._server = await listen_on(lambda: _LocalSide(self), bind, port)
        try:
            await server.start_serving()
        except BaseException:
            self.close()
            raise
        self._watch = asyncio.ensure_future(self._close_with_connection())
        return server.sockets[0].getsockname()[1]

    async def _close_with_connection(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()
        self._close_server()

    def _close_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def close(self) -> None:
        """Stop listening (connections already forwarded end with the SSH connection)."""
        self._close_server()
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()

    async def wait_closed(self) -> None:
        """Nothing to wait for: this forward has no process of its own."""
