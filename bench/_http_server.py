"""A keep-alive HTTP/1.1 server for the tunnel benchmark, fast enough not to be the bottleneck.

Usage: _http_server.py ADDRESS PORT BIG_FILE
/big sends BIG_FILE with sendfile(2) (no copies through Python: several GB/s here); /small returns
1 KiB. Headers and body are written separately, as web servers (Tornado, for the notebook) commonly
do: the pattern that makes Nagle's algorithm and delayed ACKs stall a forward that does not set
TCP_NODELAY. Like Tornado, the server itself sets TCP_NODELAY, so any stall measured is the tunnel's.
"""

import http.server
import os
import socket
import sys

ADDRESS, PORT, BIG_FILE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
SIZE = os.path.getsize(BIG_FILE)
SMALL = b"y" * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        size = SIZE if self.path == "/big" else len(SMALL)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()  # the headers go out on their own
        if self.path == "/big":
            with open(BIG_FILE, "rb") as big:
                self.connection.sendfile(big)
        else:
            self.wfile.write(SMALL)

    def log_message(self, *args: object) -> None:
        pass


http.server.ThreadingHTTPServer((ADDRESS, PORT), Handler).serve_forever()
