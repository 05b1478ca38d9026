"""The hub end of the reverse forward: the hub's REST API only, with nobody's auth headers.

Everything on a remote notebook host can connect to the reverse forward, and the hub sees those
connections arrive from the hub's own machine. So the forward does not lead to the hub's port as
such: each connection is handed to ``ApiFilter``, which reads one HTTP request and passes it on only
when its path is the hub's API (``/hub/api``) or lies under it (``/hub/api/...``). Only an allow-list of headers goes
through (``Authorization`` carries the notebook's token); ``Remote-User``, shared secrets,
``X-Forwarded-*`` and cookies never reach the hub from a notebook host. One request per connection
(``Connection: close``), with an exact ``Content-Length`` body, so nothing can be smuggled behind it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import asyncssh

ALLOWED_HEADERS = frozenset(
    {
        "host",
        "authorization",
        "content-type",
        "content-length",
        "accept",
        "accept-encoding",
        "accept-language",
        "user-agent",
        "x-requested-with",
    }
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_HEAD = 16 * 1024
MAX_BODY = 8 * 1024 * 1024
HEAD_TIMEOUT = 30.0
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_REASONS = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 411: "Length Required"}


class Rejected(Exception):
    """A request the filter does not pass on; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _path_is_safe(path: str, prefix: str) -> bool:
    if not (path.startswith(prefix) or path == prefix.rstrip("/")):
        return False
    decoded = unquote(path)
    if "\\" in decoded or "%" in decoded or "//" in decoded or "\x00" in decoded:
        return False  # double encoding, Windows separators, empty segments: not from a real client
    return not any(segment in (".", "..") for segment in decoded.split("/"))


def filter_request(head: bytes, prefix: str) -> tuple[bytes, int]:
    """The request head to send to the hub and the body length; ``Rejected`` if it may not pass.

    ``head`` is everything up to and including the blank line that ends the headers.
    """
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise Rejected(400, "the request head is not ASCII") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise Rejected(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise Rejected(400, "unsupported HTTP version")
    if method not in METHODS:
        raise Rejected(405, "method not allowed")
    if not _path_is_safe(target.split("?", 1)[0], prefix):
        raise Rejected(403, f"a notebook host may reach only {prefix}")
    kept = [f"{method} {target} HTTP/1.1"]
    length: int | None = None
    for line in lines[1:]:
        if not line:
            break
        if line[0] in " \t":
            raise Rejected(400, "folded header lines are not accepted")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise Rejected(400, "malformed header line")
        lower, value = name.lower(), value.strip()
        if lower == "transfer-encoding":
            raise Rejected(411, "send a Content-Length, not a chunked body")
        if lower == "content-length":
            if length is not None or not value.isdigit() or int(value) > MAX_BODY:
                raise Rejected(400, "bad Content-Length")
            length = int(value)
        if lower in ALLOWED_HEADERS:
            kept.append(f"{name}: {value}")
    kept.append("Connection: close")
    return ("\r\n".join(kept) + "\r\n\r\n").encode("ascii"), length or 0


def rejection(status: int, reason: str) -> bytes:
    body = (reason + "\n").encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class ApiFilter:
    """Serves connections from the reverse forward: passes API requests to ``hub_host:hub_port``."""

    def __init__(
        self, hub_host: str, hub_port: int, prefix: str, log: logging.Logger | logging.LoggerAdapter
    ) -> None:
        self.hub_host = hub_host
        self.hub_port = hub_port
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.log = log
        self.refused = 0

    def handler(self, _orig_host: str, _orig_port: int) -> Callable[..., Awaitable[None]]:
        """The ``handler_factory`` for ``SSHClientConnection.start_server``."""
        return self.handle

    async def handle(
        self, reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]
    ) -> None:
        hub_writer: asyncio.StreamWriter | None = None
        try:
            try:
                head, rest = await asyncio.wait_for(self._read_head(reader), HEAD_TIMEOUT)
                request, length = filter_request(head, self.prefix)
            except Rejected as refused:
                self.refused += 1
                self.log.warning("Refused a request from a notebook host: %s", refused.reason)
                writer.write(rejection(refused.status, refused.reason))
                return
            hub_reader, hub_writer = await asyncio.open_connection(self.hub_host, self.hub_port)
            hub_writer.write(request + rest[:length])  # anything after the body is dropped
            length -= min(length, len(rest))
            while length > 0:
                chunk = await reader.read(min(length, 65536))
                if not chunk:
                    return
                hub_writer.write(chunk)
                length -= len(chunk)
                await hub_writer.drain()
            await hub_writer.drain()
            while chunk := await hub_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError):
            return
        except Exception as error:  # an asyncssh channel error: this one connection ends
            self.log.debug("API filter connection ended: %s", type(error).__name__)
        finally:
            if hub_writer is not None:
                hub_writer.close()
            writer.close()

    async def _read_head(self, reader: asyncssh.SSHReader[bytes]) -> tuple[bytes, bytes]:
        """The request head, and whatever of the body came with it."""
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(MAX_HEAD)
            if not chunk:
                raise Rejected(400, "the request ended before its headers did")
            head += chunk
            if len(head) > MAX_HEAD and b"\r\n\r\n" not in head:
                raise Rejected(400, "request headers too large")
        end = head.index(b"\r\n\r\n") + 4
        return head[:end], head[end:]
