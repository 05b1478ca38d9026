"""A keep-alive HTTP/1.1 server for tunnel benchmarks and tests, and the client that downloads from it.

Run: _http_server.py ADDRESS PORT BIG_FILE
/big sends BIG_FILE with sendfile(2) (no copies through Python: several GB/s here); /small returns
1 KiB. Headers and body are written separately, as web servers (Tornado, for the notebook) commonly
do: the pattern that makes Nagle's algorithm and delayed ACKs stall a forward that does not set
TCP_NODELAY. Like Tornado, the server itself sets TCP_NODELAY, so any stall measured is the tunnel's.

Import: ``download(address)`` fetches /big (bench/cloudssh_tunnel.py, tests/cloudsshspawner).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import sys
import time
from dataclasses import dataclass

SMALL = b"y" * 1024


@dataclass
class Download:
    """One /big download: its size, duration and (when asked for) SHA-256."""

    size: int
    seconds: float
    sha256: str | None


def download(address: tuple[str, int], digest: bool = False, timeout: float = 60) -> Download:
    """GET /big over a raw socket into one reused buffer (cheap for the reader: 4 MiB reads)."""
    buffer = bytearray(4 << 20)
    view = memoryview(buffer)
    hasher = hashlib.sha256() if digest else None
    with socket.create_connection(address, timeout=timeout) as sock:
        start = time.perf_counter()
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the response headers")
            head += chunk
        end = head.index(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head[:end].split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = head[end + 4 :]
        if hasher is not None:
            hasher.update(body)
        received = len(body)
        while received < length:
            count = sock.recv_into(view, min(len(buffer), length - received))
            if not count:
                raise RuntimeError(f"connection closed after {received} of {length} bytes")
            if hasher is not None:
                hasher.update(view[:count])
            received += count
        return Download(length, time.perf_counter() - start, hasher and hasher.hexdigest())


def serve(address: str, port: int, big_file: str) -> None:
    """Serve /big and /small until killed."""
    size = os.path.getsize(big_file)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            big = self.path == "/big"
            self.send_response(200)
            self.send_header("Content-Length", str(size if big else len(SMALL)))
            self.end_headers()
            self.wfile.flush()  # the headers go out on their own
            if big:
                with open(big_file, "rb") as data:
                    self.connection.sendfile(data)
            else:
                self.wfile.write(SMALL)

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer((address, port), Handler).serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
