"""``Tunnel`` on its own against a real sshd: one connection per tunnel, bounded failure detection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from bench._http_server import download
from cloudsshspawner import SSHTarget, Tunnel, TunnelError
from cloudsshspawner.tunnel import Forwards
from tests.cloudsshspawner.conftest import SERVER_PORT, Remote, wait_for
from tests.harness.process import port_open

LOG = logging.getLogger("test-tunnel")


def target(remote: Remote) -> SSHTarget:
    return SSHTarget(
        host=remote.host.address,
        port=remote.host.port,
        username="root",
        key_file=str(remote.key),
        known_hosts=str(remote.known_hosts),
    )


def sessions(remote: Remote) -> list[int]:
    """PIDs of the sshd processes serving connections (not the listener)."""
    pids = subprocess.run(
        ["ip", "netns", "pids", remote.host.namespace], capture_output=True, text=True
    ).stdout.split()
    found = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd: root"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_concurrent_connects_share_one_connection(remote: Remote) -> None:
    async def scenario() -> tuple[int, int]:
        tunnel = Tunnel(target(remote), LOG)
        await asyncio.gather(*(tunnel.connect() for _ in range(5)))
        outputs = await asyncio.gather(*(tunnel.run("echo hi") for _ in range(5)))
        assert outputs == ["hi\n"] * 5
        during = len(remote.host.ssh_client_ports())
        await tunnel.close()
        return during, tunnel.connections

    during, made = asyncio.run(scenario())
    assert (during, made) == (1, 1)
    wait_for(lambda: not remote.host.ssh_client_ports(), 5, "all connections closed")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 0.5, 1.0])
def test_close_racing_the_reconnect_leaves_no_connection(remote: Remote, delay: float) -> None:
    async def scenario() -> None:
        tunnel = Tunnel(target(remote), LOG, reconnect_max_delay=0.5)
        await tunnel.open(Forwards(hub_port=9))
        for pid in sessions(remote):  # the connection drops: the supervisor reconnects
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(delay)
        await tunnel.close()
        with pytest.raises(TunnelError):
            await tunnel.connect()  # a closed tunnel stays closed
        await asyncio.sleep(2)  # nothing reconnects behind our back

    asyncio.run(scenario())
    assert remote.host.ssh_client_ports() == []


def test_a_connection_attempt_that_outlives_close_closes_its_connection(remote: Remote) -> None:
    """A cancel can be lost (Python 3.11's wait_for returns a connection that completed as the
    cancel arrived): the attempt must then close what it made instead of returning it to no one.
    Here the attempt is one close() does not know of, as if its cancel had been lost."""

    async def scenario() -> None:
        tunnel = Tunnel(target(remote), LOG)
        attempt = asyncio.ensure_future(tunnel._open_connection())
        await tunnel.close()
        with pytest.raises(TunnelError, match="is closed"):
            await attempt

    asyncio.run(scenario())
    wait_for(lambda: not remote.host.ssh_client_ports(), 5, "the late connection closed")


def connect_cancelled_leaves_nothing(
    remote: Remote, caller: list[asyncio.Task[None]], patch: Callable[[Tunnel], None]
) -> None:
    """Run connect() as ``caller[0]``, which the code ``patch`` puts in its way cancels; then
    close(). No SSH connection may stay open."""

    async def scenario() -> None:
        tunnel = Tunnel(target(remote), LOG)
        patch(tunnel)
        caller.append(asyncio.ensure_future(tunnel.connect()))
        with pytest.raises(asyncio.CancelledError):
            await caller[0]
        assert not tunnel.connected
        await tunnel.close()

    asyncio.run(scenario())
    wait_for(lambda: not remote.host.ssh_client_ports(), 5, "the cancelled attempt's connection")


def test_a_connect_cancelled_as_its_connection_completes_closes_that_connection(
    remote: Remote,
) -> None:
    """The caller of connect() is cancelled in the very step its attempt finishes (close() or a
    stopped spawn at the wrong moment, seen under load): the finished connection must not stay
    open with no one to close it."""
    caller: list[asyncio.Task[None]] = []

    def patch(tunnel: Tunnel) -> None:
        real = tunnel._open_connection

        async def racing():  # type: ignore[no-untyped-def]
            conn = await real()
            caller[0].cancel()  # cancels this attempt too: Python drops the result it returns
            return conn

        tunnel._open_connection = racing  # type: ignore[method-assign]

    connect_cancelled_leaves_nothing(remote, caller, patch)


def test_a_connect_returned_despite_its_cancel_is_closed(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncssh.connect bounds itself with wait_for, which on Python 3.11 returns its connection
    when it is cancelled in the step the connection arrives (seen under load: a tunnel closed
    while it reconnected kept one SSH connection open). A deadline of our own around it must not
    then drop that connection open."""
    real = asyncssh.connect
    caller: list[asyncio.Task[None]] = []

    async def returns_anyway(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = await real(*args, **kwargs)
        caller[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)  # the cancel arrives here, and is swallowed as wait_for does
        return conn

    monkeypatch.setattr(asyncssh, "connect", returns_anyway)
    connect_cancelled_leaves_nothing(remote, caller, lambda tunnel: None)


def test_a_silent_connection_is_noticed_within_the_keepalive_bound(remote: Remote) -> None:
    """Link down (no FIN, no RST): the tunnel notices within interval x count (+ one interval),
    and reconnects soon after the link comes back."""

    async def scenario() -> tuple[float, float]:
        tunnel = Tunnel(
            target(remote), LOG, keepalive_interval=1, keepalive_count=2, reconnect_max_delay=1
        )
        await tunnel.open(Forwards(hub_port=9))
        first_port = tunnel.forwards.api_port
        remote.host.set_link(False)
        try:
            start = time.monotonic()
            while tunnel.connected:
                await asyncio.sleep(0.05)
            noticed = time.monotonic() - start
        finally:
            remote.host.set_link(True)
        start = time.monotonic()
        while not tunnel.connected:
            assert time.monotonic() - start < 15, "no reconnect after the link came back"
            await asyncio.sleep(0.05)
        back = time.monotonic() - start
        assert await tunnel.run("echo back") == "back\n"
        assert tunnel.forwards.api_port  # the reverse forward was re-made
        assert tunnel.reconnects == 1 and first_port
        await tunnel.close()
        return noticed, back

    noticed, back = asyncio.run(scenario())
    assert noticed < 1 * 2 + 1 + 1.5, noticed
    assert back < 8, back


def test_a_new_connection_gets_a_remote_port_while_the_old_session_holds_its_own(
    remote: Remote,
) -> None:
    """The old connection's packets are all dropped (its client 'vanished'): sshd keeps that
    session and its listening port; the reconnect takes a fresh port at once."""

    async def scenario() -> None:
        tunnel = Tunnel(
            target(remote), LOG, keepalive_interval=1, keepalive_count=2, reconnect_max_delay=1
        )
        await tunnel.open(Forwards(hub_port=9))
        old_port = tunnel.forwards.api_port
        (client_port,) = remote.host.ssh_client_ports()
        old_sessions = set(sessions(remote))
        remote.host.silence_connection(client_port)
        start = time.monotonic()
        while tunnel.reconnects == 0:
            assert time.monotonic() - start < 15, "no reconnect"
            await asyncio.sleep(0.05)
        new_port = tunnel.forwards.api_port
        assert new_port != old_port
        listening = remote.host.run("ss -ltnH")
        assert f"127.0.0.1:{old_port} " in listening, "the old session let go of its port"
        assert f"127.0.0.1:{new_port} " in listening
        assert old_sessions & set(sessions(remote)), "the old session is gone already"
        assert await tunnel.run("echo new") == "new\n"
        await tunnel.close()

    asyncio.run(scenario())


def test_downloads_through_the_local_forward_arrive_whole(remote: Remote, source: str) -> None:
    """Four downloads at once (batched writes, flow control both ways) and small keep-alive
    requests: every byte arrives, in order."""

    async def scenario() -> None:
        tunnel = Tunnel(target(remote), LOG)
        forwards = await tunnel.open(Forwards(notebook_port=SERVER_PORT, hub_port=9))
        address = ("127.0.0.1", forwards.local_port)
        results = await asyncio.gather(
            *(asyncio.to_thread(download, address, True) for _ in range(4))
        )
        assert [r.sha256 for r in results] == [source] * 4
        assert {r.size for r in results} == {24 << 20}

        def small_requests() -> None:
            conn = http.client.HTTPConnection(*address, timeout=10)
            for _ in range(50):
                conn.request("GET", "/small")
                assert conn.getresponse().read() == b"y" * 1024
            conn.close()

        await asyncio.to_thread(small_requests)
        await tunnel.close()

    asyncio.run(scenario())


def test_a_slow_reader_still_gets_every_byte(remote: Remote, source: str) -> None:
    """The reader stops reading for a while (the tunnel must hold back, not drop or reorder)."""

    async def scenario() -> None:
        tunnel = Tunnel(target(remote), LOG)
        forwards = await tunnel.open(Forwards(notebook_port=SERVER_PORT, hub_port=9))

        def slow_download() -> str:
            hasher = hashlib.sha256()
            with socket.create_connection(("127.0.0.1", forwards.local_port), timeout=20) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
                sock.shutdown(socket.SHUT_WR)  # half close: the answer must still come
                time.sleep(2)  # everything the tunnel has waits (its window fills)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                body = data[data.index(b"\r\n\r\n") + 4 :]
                hasher.update(body)
                received = len(body)
                while chunk := sock.recv(1 << 20):
                    hasher.update(chunk)
                    received += len(chunk)
                assert received == 24 << 20
            return hasher.hexdigest()

        assert await asyncio.to_thread(slow_download) == source
        await tunnel.close()

    asyncio.run(scenario())


def test_a_refused_notebook_port_closes_the_local_connection(remote: Remote) -> None:
    async def scenario() -> None:
        tunnel = Tunnel(target(remote), LOG)
        forwards = await tunnel.open(Forwards(notebook_port=SERVER_PORT + 1, hub_port=9))

        def attempt() -> bytes:
            with socket.create_connection(("127.0.0.1", forwards.local_port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
                try:
                    return sock.recv(100)
                except ConnectionResetError:  # closed with the request unread
                    return b""

        assert await asyncio.to_thread(attempt) == b""  # closed, not hanging
        assert await tunnel.run("echo still") == "still\n"  # the connection lives on
        await tunnel.close()

    asyncio.run(scenario())


def test_the_local_forward_comes_back_on_its_port_after_a_reconnect(
    remote: Remote, source: str
) -> None:
    async def scenario() -> None:
        tunnel = Tunnel(target(remote), LOG, reconnect_max_delay=0.5)
        forwards = await tunnel.open(Forwards(notebook_port=SERVER_PORT, hub_port=9))
        port = forwards.local_port
        for pid in sessions(remote):
            os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        while tunnel.reconnects == 0:
            assert time.monotonic() - start < 15, "no reconnect"
            await asyncio.sleep(0.05)
        assert forwards.local_port == port
        result = await asyncio.to_thread(download, ("127.0.0.1", port), True)
        assert result.sha256 == source
        await tunnel.close()
        assert not port_open("127.0.0.1", port), "the local forward outlived close()"

    asyncio.run(scenario())
