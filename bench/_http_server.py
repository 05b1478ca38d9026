"""A keep-alive HTTP/1.1 server on 127.0.0.1 for the tunnel benchmark.

/big streams BIG_MB megabytes; /small returns 1 KiB. Headers and body are written separately, as
web servers (Tornado, for the notebook) commonly do: the pattern that makes Nagle's algorithm and
delayed ACKs stall a forward that does not set TCP_NODELAY. Like Tornado, which serves the notebook,
the server itself sets TCP_NODELAY, so any stall measured is the tunnel's.
"""

import http.server
import socket
import sys

BIG_MB = int(sys.argv[2]) if len(sys.argv) > 2 else 100
CHUNK = b"x" * (1 << 20)
SMALL = b"y" * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        size = BIG_MB * len(CHUNK) if self.path == "/big" else len(SMALL)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()  # the headers go out on their own
        if self.path == "/big":
            for _ in range(BIG_MB):
                self.wfile.write(CHUNK)
        else:
            self.wfile.write(SMALL)

    def log_message(self, *args: object) -> None:
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
