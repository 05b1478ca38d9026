"""A user's server that records what it is sent: every request's headers, one JSON line each.

It listens where the hub says (JUPYTERHUB_SERVICE_URL), answers every GET with the headers it
received and its own environment (as JSON) and appends the same to $ECHO_LOG, so a test can prove
what reached a user's server.
"""

import http.server
import json
import os
from urllib.parse import urlparse


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        seen = {
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "environment": dict(os.environ),
        }
        with open(os.environ["ECHO_LOG"], "a") as log:
            log.write(json.dumps(seen) + "\n")
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
http.server.ThreadingHTTPServer((url.hostname, url.port), Handler).serve_forever()
