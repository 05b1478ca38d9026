"""The filter behind the reverse forward: only the hub's API, and nobody's auth headers."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cloudsshspawner.apifilter import ApiFilter, Rejected, filter_request

PREFIX = "/hub/api/"


def head(request_line: str, *headers: str) -> bytes:
    return ("\r\n".join([request_line, *headers]) + "\r\n\r\n").encode()


def test_api_requests_pass_with_only_the_allowed_headers() -> None:
    rewritten, length = filter_request(
        head(
            "POST /hub/api/users/alice/activity HTTP/1.1",
            "Host: 127.0.0.1:4000",
            "Authorization: token abc",
            "Content-Type: application/json",
            "Content-Length: 12",
            "Remote-User: admin",
            "X-Gridhub-Secret: front-proxy-secret",
            "X-Forwarded-For: 10.0.0.1",
            "X-Real-IP: 10.0.0.1",
            "Cookie: jupyterhub-session-id=x",
        ),
        PREFIX,
    )
    assert length == 12
    text = rewritten.decode()
    assert text.startswith("POST /hub/api/users/alice/activity HTTP/1.1\r\n")
    assert "Authorization: token abc" in text
    assert "Connection: close" in text
    for gone in ("Remote-User", "X-Gridhub-Secret", "front-proxy-secret", "Forwarded", "Real-IP"):
        assert gone not in text
    assert "Cookie" not in text
    assert filter_request(head("GET /hub/api HTTP/1.1", "Host: x"), PREFIX)[1] == 0


@pytest.mark.parametrize(
    "target",
    [
        "/hub/login",
        "/hub/login?next=/hub/api/",
        "/hub/spawn",
        "/user/alice/api/status",
        "/hub/api/../login",
        "/hub/api/%2e%2e/login",
        "/hub/api/%252e%252e/login",
        "/hub/api/.%2E/login",
        "/hub/api//..//login",
        "/hub/api\\..\\login",
        "http://127.0.0.1/hub/login",
        "/hub/apix",
        "*",
    ],
)
def test_everything_outside_the_api_is_refused(target: str) -> None:
    with pytest.raises(Rejected) as refused:
        filter_request(head(f"GET {target} HTTP/1.1", "Remote-User: admin"), PREFIX)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    "request_head",
    [
        head("GET /hub/api/ HTTP/1.1", "Transfer-Encoding: chunked"),
        head("POST /hub/api/ HTTP/1.1", "Content-Length: 1", "Content-Length: 2"),
        head("POST /hub/api/ HTTP/1.1", "Content-Length: -1"),
        head("GET /hub/api/ HTTP/1.1", "Host: x", " folded: header"),
        head("GET /hub/api/ HTTP/1.1", "Bad Header: x"),
        head("GET /hub/api/ HTTP/2.0"),
        head("GET  /hub/api/ HTTP/1.1"),
        head("CONNECT /hub/api/ HTTP/1.1"),
        "GET /hub/api/ HTTP/1.1\r\nHost: \u00e9\r\n\r\n".encode(),
    ],
)
def test_malformed_or_smuggling_requests_are_refused(request_head: bytes) -> None:
    with pytest.raises(Rejected) as refused:
        filter_request(request_head, PREFIX)
    assert refused.value.status in (400, 405, 411)


def test_a_live_filter_passes_one_request_and_nothing_behind_it() -> None:
    """Through real sockets: the 'hub' sees exactly one request, without the auth headers, and a
    second request smuggled after the body never reaches it."""

    async def scenario() -> tuple[list[bytes], bytes, bytes]:
        seen: list[bytes] = []

        async def hub_waiting_for_close(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            # Read the head and the body it announces, then wait for anything more.
            head_data = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head_data.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            body = await reader.readexactly(length)
            seen.append(head_data + body)
            await asyncio.sleep(0.2)  # anything smuggled would arrive now
            try:
                extra = await asyncio.wait_for(reader.read(65536), 0.2)
            except TimeoutError:
                extra = b""
            seen.append(extra)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()

        hub_server = await asyncio.start_server(hub_waiting_for_close, "127.0.0.1", 0)
        hub_port = hub_server.sockets[0].getsockname()[1]
        api_filter = ApiFilter("127.0.0.1", hub_port, "/hub/api", logging.getLogger("test"))
        front = await asyncio.start_server(api_filter.handle, "127.0.0.1", 0)
        front_port = front.sockets[0].getsockname()[1]

        async def ask(data: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", front_port)
            writer.write(data)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer

        body = b'{"a": 1}'
        smuggled = b"GET /hub/login HTTP/1.1\r\nRemote-User: admin\r\n\r\n"
        answer = await ask(
            b"POST /hub/api/users/alice/activity HTTP/1.1\r\nHost: hub\r\n"
            b"Authorization: token t\r\nRemote-User: admin\r\nX-Gridhub-Secret: s3cret\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
            + smuggled
        )
        refused = await ask(b"GET /hub/login HTTP/1.1\r\nRemote-User: admin\r\n\r\n")
        front.close()
        hub_server.close()
        return seen, answer, refused

    seen, answer, refused = asyncio.run(scenario())
    assert answer.endswith(b"ok")
    request, extra = seen
    assert request.endswith(b'{"a": 1}')
    assert b"Authorization: token t" in request
    assert b"Remote-User" not in request and b"s3cret" not in request
    assert extra == b"", "bytes after the announced body reached the hub"
    assert refused.startswith(b"HTTP/1.1 403 ")
    assert len(seen) == 2, "the refused request reached the hub"
