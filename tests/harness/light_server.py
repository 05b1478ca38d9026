"""A minimal stand-in for jupyterhub-singleuser, for tests that spawn dozens of servers at once.

It listens where the hub says (JUPYTERHUB_SERVICE_URL) and answers every GET with 200, which is
all the hub needs to call a server started. Tests that exercise the notebook use the real one.
"""

import http.server
import os
from urllib.parse import urlparse


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"started": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
http.server.ThreadingHTTPServer((url.hostname, url.port), Handler).serve_forever()
