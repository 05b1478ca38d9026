"""The tunnel's local forward carried by OpenSSH: the data path never crosses Python.

A few OpenSSH ``ssh`` processes run as ControlMasters, each with its own SSH connection to the
host. The hub accepts each local connection itself, then hands the accepted socket to the least
busy master over its control socket (OpenSSH's multiplexing protocol, ``MUX_C_NEW_STDIO_FWD``,
the socket passed with ``SCM_RIGHTS``), and closes its own copy. From then on the master reads and
writes that socket directly: bytes are encrypted and copied in C (AES-GCM by default), and
downloads through different masters use different cores. The hub keeps only the control
connection of each forwarded connection, which ends when the connection does.

Each master runs ``exec cat >/dev/null`` on the host with its stdin a pipe from the hub, so:
- sshd turns on TCP_NODELAY for the connection (it does so once a session runs a command; a
  forward-only connection keeps Nagle's algorithm, and a response written in two pieces then waits
  ~40 ms for a delayed ACK);
- a master ends when the hub process does, even on SIGKILL: the pipe closes, ``cat`` ends, and the
  master leaves once its last forwarded connection is closed.

Host keys are verified by ``ssh`` itself (``StrictHostKeyChecking=yes``) against the target's
pinned key or known_hosts file; the key and certificate are read from their 0600 files, nothing
secret is on a command line, and ``-F /dev/null`` keeps any ssh_config of the hub user out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .localforward import listen_on
from .target import SSHTarget

MUX_MSG_HELLO = 0x00000001
MUX_C_NEW_STDIO_FWD = 0x10000008
MUX_S_SESSION_OPENED = 0x80000006
MUX_VERSION = 4
_HOST_ALIAS = "gridhub-target"


class MuxError(Exception):
    """A master could not be started or refused a forwarded connection; the message says why."""


def openssh_available() -> bool:
    """Whether OpenSSH's ``ssh`` client is on PATH."""
    return shutil.which("ssh") is not None


def _packet(*fields: int | str | bytes) -> bytes:
    body = b""
    for field in fields:
        if isinstance(field, int):
            body += struct.pack(">I", field)
        else:
            data = field.encode() if isinstance(field, str) else field
            body += struct.pack(">I", len(data)) + data
    return struct.pack(">I", len(body)) + body


async def _read_packet(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    async def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = await loop.sock_recv(sock, count - len(data))
            if not chunk:
                raise MuxError("the ssh master closed its control connection")
            data += chunk
        return data

    (length,) = struct.unpack(">I", await exactly(4))
    if length > 65536:
        raise MuxError("the ssh master sent an oversized control message")
    return await exactly(length)


async def _listening(path: str) -> bool:
    """Whether a master listens on the control socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(probe, path)
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    finally:
        probe.close()
    return True


def _reason(reply: bytes) -> str:
    """The reason string of a refusal (MUX_S_FAILURE or MUX_S_PERMISSION_DENIED)."""
    if len(reply) < 12:
        return "no reason given"
    (length,) = struct.unpack(">I", reply[8:12])
    return reply[12 : 12 + length].decode(errors="replace")


class Master:
    """One ``ssh`` ControlMaster process with its own SSH connection to the target."""

    def __init__(self, path: str, process: asyncio.subprocess.Process) -> None:
        self.path = path
        self.process = process
        self.active = 0  # forwarded connections it carries now

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def stop(self) -> None:
        """Close its stdin and terminate it; ``MuxForward.wait_closed`` reaps it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()


class MuxForward:
    """A listener on ``bind:port`` whose connections ``processes`` OpenSSH masters carry to
    ``dest_host:dest_port`` on the target; the same interface as ``LocalForward``."""

    def __init__(
        self,
        target: SSHTarget,
        dest_host: str,
        dest_port: int,
        log: logging.Logger | logging.LoggerAdapter,
        *,
        processes: int = 2,
        ciphers: tuple[str, ...] = (),
        keepalive_interval: float = 5,
        keepalive_count: int = 3,
        connect_timeout: float = 20,
    ) -> None:
        self.target = target
        self.dest_host = dest_host
        self.dest_port = dest_port
        self.log = log
        self.processes = max(1, processes)
        self.ciphers = ciphers
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.connect_timeout = connect_timeout
        self.masters: list[Master] = []
        self._dir = Path(tempfile.mkdtemp(prefix="gh-mux-"))  # 0700: control sockets, pins
        self._names = itertools.count()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # hand-overs
        self._watchers: set[asyncio.Task[None]] = set()  # one per master, until it exits
        self._starting: asyncio.Task[None] | None = None
        self.closed = False

    # -- masters ----------------------------------------------------------------------------------

    def _argv(self, path: str) -> list[str]:
        target = self.target
        options = {
            "BatchMode": "yes",
            "StrictHostKeyChecking": "yes",
            "CheckHostIP": "no",
            "UpdateHostKeys": "no",
            "GlobalKnownHostsFile": "/dev/null",
            "IdentitiesOnly": "yes",
            "IdentityAgent": "none",
            "IdentityFile": target.key_file,
            "ControlMaster": "yes",
            "ControlPath": path,
            "ControlPersist": "no",
            "ClearAllForwardings": "yes",
            "ForwardAgent": "no",
            "ForwardX11": "no",
            "PermitLocalCommand": "no",
            "ServerAliveInterval": str(max(1, round(self.keepalive_interval))),
            "ServerAliveCountMax": str(self.keepalive_count),
            "ConnectTimeout": str(max(1, round(self.connect_timeout))),
            "LogLevel": "ERROR",
        }
        if self.ciphers:
            options["Ciphers"] = ",".join(self.ciphers)
        if target.certificate_file:
            options["CertificateFile"] = target.certificate_file
        if target.host_key:
            pins = self._dir / "pinned_host_key"
            pins.write_text(f"{_HOST_ALIAS} {target.host_key.strip()}\n")
            options["UserKnownHostsFile"] = str(pins)
            options["HostKeyAlias"] = _HOST_ALIAS
        else:
            options["UserKnownHostsFile"] = str(target.known_hosts)
        argv = ["ssh", "-F", "/dev/null", "-T", "-e", "none"]
        for name, value in options.items():
            argv += ["-o", f"{name}={value}"]
        argv += ["-p", str(target.port), "-l", target.username, "--", target.host]
        return [*argv, "exec cat >/dev/null"]

    async def _start_master(self) -> Master:
        path = str(self._dir / f"c{next(self._names)}")
        process = await asyncio.create_subprocess_exec(
            *self._argv(path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a ^C at the hub's terminal is the hub's to handle
        )
        master = Master(path, process)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout + 5
        try:
            while not await _listening(path):  # the control socket appears once logged in
                if process.returncode is not None or loop.time() > deadline:
                    master.stop()
                    assert process.stderr is not None
                    stderr = (await process.stderr.read()).decode(errors="replace").strip()
                    raise MuxError(
                        f"ssh to {self.target.host}:{self.target.port} for the local forward"
                        " failed: "
                        + (stderr.splitlines()[-1] if stderr else "no control socket in time")
                    )
                await asyncio.sleep(0.01)
        except BaseException:  # failed, or cancelled (close() during start): reaped all the same
            master.stop()
            self._track(master)
            raise
        self._track(master)
        if self.closed:
            master.stop()
            raise MuxError("the local forward is closed")
        # Adopted here, not by start(): a cancel of start() may land after this master logged in
        # but before its siblings did, and close() must still find it.
        self.masters.append(master)
        return master

    def _track(self, master: Master) -> None:
        watcher = asyncio.ensure_future(self._watch(master))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, master: Master) -> None:
        """Log what a master says on stderr, and reap it (killed when cancelled)."""
        process = master.process
        assert process.stderr is not None
        try:
            async for line in process.stderr:
                self.log.warning(
                    "ssh (local forward to %s): %s", self.target.host, line.decode().strip()
                )
            await process.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()  # reaped, not left a zombie; SIGKILL makes this prompt
            raise
        finally:
            if master in self.masters:
                self.masters.remove(master)

    async def start(self) -> None:
        """Start the masters (in parallel); MuxError when none could be started."""
        self.masters = [master for master in self.masters if master.alive]
        results = await asyncio.gather(
            *(self._start_master() for _ in range(self.processes - len(self.masters))),
            return_exceptions=True,
        )
        errors = [result for result in results if isinstance(result, BaseException)]
        if not self.masters:
            raise errors[0] if errors else MuxError("the local forward is closed")
        for error in errors:
            self.log.warning("%s (running with %d ssh processes)", error, len(self.masters))

    async def _candidates(self) -> list[Master]:
        """Live masters, least busy first; lost ones are replaced in the background."""
        alive = [master for master in self.masters if master.alive]
        if len(alive) < self.processes and not self.closed and self._starting is None:
            self._starting = asyncio.ensure_future(self.start())
            self._starting.add_done_callback(self._started)
        if not alive and self._starting is not None:
            await asyncio.shield(self._starting)
            alive = [master for master in self.masters if master.alive]
        return sorted(alive, key=lambda master: master.active)

    def _started(self, task: asyncio.Task[None]) -> None:
        self._starting = None
        if not task.cancelled() and task.exception() is not None:
            self.log.warning("%s", task.exception())

    # -- listening --------------------------------------------------------------------------------

    async def listen(self, bind: str, port: int) -> int:
        """Start the masters and listen (``""``: every address; port 0: a free port, the same on
        every address); returns the port."""
        try:
            await self.start()
            server = self._server = await listen_on(lambda: _Accepted(self), bind, port)
            await server.start_serving()
        except BaseException:
            self.close()
            raise
        return server.sockets[0].getsockname()[1]

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_master(self) -> tuple[Master, socket.socket] | None:
        """A control connection to the least busy live master, past its hello; the master
        counts the connection as its own from the moment it is chosen.

        A master that died a moment ago (not yet reaped) refuses it: the next one is tried.
        """
        loop = asyncio.get_running_loop()
        for master in await self._candidates():
            master.active += 1
            control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            control.setblocking(False)
            try:
                await loop.sock_connect(control, master.path)
                await _read_packet(loop, control)  # the master's hello
            except (OSError, MuxError) as error:
                master.active -= 1
                control.close()
                self.log.debug("ssh process for the local forward unreachable: %s", error)
                continue
            except BaseException:
                master.active -= 1
                control.close()
                raise
            return master, control
        return None

    async def _hand_over(self, sock: socket.socket) -> None:
        """Give the accepted ``sock`` to a master; hold its control connection while it lasts."""
        loop = asyncio.get_running_loop()
        try:
            connected = await self._connect_master()
            if connected is None:
                self.log.warning(
                    "no ssh process carries the local forward to %s: connection dropped",
                    self.target.host,
                )
                return
            master, control = connected
            try:
                await loop.sock_sendall(
                    control,
                    _packet(MUX_MSG_HELLO, MUX_VERSION)
                    + _packet(MUX_C_NEW_STDIO_FWD, 1, b"", self.dest_host, self.dest_port),
                )
                # The socket twice: as the channel's input, then as its output. Two one-byte
                # messages on an idle Unix socket: never blocks.
                socket.send_fds(control, [b"\0"], [sock.fileno()])
                socket.send_fds(control, [b"\0"], [sock.fileno()])
                sock.close()  # the master has its own copies
                reply = await _read_packet(loop, control)
                if struct.unpack(">I", reply[:4])[0] != MUX_S_SESSION_OPENED:
                    self.log.debug(
                        "forwarded connection to port %s refused: %s",
                        self.dest_port,
                        _reason(reply),
                    )
                    return
                while await loop.sock_recv(control, 4096):  # until the master ends the session
                    pass
            except (OSError, MuxError) as error:
                self.log.debug("forwarded connection to port %s ended: %s", self.dest_port, error)
            finally:
                control.close()
                master.active -= 1
        finally:
            sock.close()

    def close(self) -> None:
        """Stop listening and stop the masters (their forwarded connections end with them)."""
        self.closed = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._starting is not None:
            self._starting.cancel()
        for master in self.masters:
            master.stop()
        self.masters = []
        shutil.rmtree(self._dir, ignore_errors=True)

    async def wait_closed(self, timeout: float = 3) -> None:
        """After ``close()``: wait for the masters to exit; kill those still there at ``timeout``."""
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=timeout)
        left = list(self._watchers)
        for watcher in left:
            watcher.cancel()
        await asyncio.gather(*left, return_exceptions=True)


class _Accepted(asyncio.Protocol):
    """Takes an accepted connection's socket away from asyncio before it reads a byte."""

    def __init__(self, forward: MuxForward) -> None:
        self._forward = forward

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # asyncio has not started reading: it never will
        own = transport.get_extra_info("socket")
        sock = socket.socket(own.family, own.type, own.proto, os.dup(own.fileno()))
        transport.abort()  # closes asyncio's copy; the connection lives on in ``sock``
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._forward.closed:
            sock.close()
        else:
            self._forward._spawn(self._forward._hand_over(sock))
