"""moto's EC2 server on 127.0.0.1, with the XML namespace libcloud expects and injectable faults.

moto 5 answers with ``xmlns="http://ec2.amazonaws.com/doc/2016-11-15"``; libcloud's EC2 driver
looks for the same namespace with a trailing slash. This WSGI wrapper adds it to every response.

Faults are set at run time by ``POST /_control`` with a JSON object (see ``Control``): a slow
RunInstances (the instance exists at once, the answer comes ``create_delay`` seconds later, as when
a hub is cancelled or killed mid-create), ``InvalidInstanceID.NotFound`` for the first reads of a
new instance (EC2's eventual consistency), failing TerminateInstances calls.

Usage: python moto_ec2.py PORT
"""

import io
import json
import re
import sys
import threading
import time
from urllib.parse import parse_qs

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

WITHOUT = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"'
WITH = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'
ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>gridhub-fault</RequestID></Response>"
)


class Control:
    """Fault settings, changed through ``POST /_control``."""

    create_delay = 0.0  # seconds between RunInstances taking effect and its answer
    not_found_reads = 0  # DescribeInstances by id answers NotFound this often per new instance
    terminate_failures = 0  # the next N TerminateInstances calls fail (500 InternalError)


_lock = threading.Lock()
_hidden: dict[str, int] = {}  # instance id -> reads still answered "not found"


class NamespaceFix:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_control" and environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            for key, value in json.loads(environ["wsgi.input"].read(length) or b"{}").items():
                setattr(Control, key, value)
            body = json.dumps({k: getattr(Control, k) for k in vars(Control) if k[0] != "_"})
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body.encode()]
        params = self._params(environ)
        action = params.get("Action", [""])[0]
        fault = self._fault(action, params)
        if fault is not None:
            status, code, message = fault
            body = ERROR.format(code=code, message=message).encode()
            start_response(
                status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))]
            )
            return [body]

        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, capture)).replace(WITHOUT, WITH)
        if b"<Errors>" in body:  # EC2's error responses carry no namespace (libcloud needs that)
            body = body.replace(b"<Response " + WITH + b">", b"<Response>")
        if action == "RunInstances":
            with _lock:
                for instance_id in re.findall(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body):
                    if Control.not_found_reads:
                        _hidden[instance_id.decode()] = Control.not_found_reads
            if Control.create_delay:
                time.sleep(Control.create_delay)  # the instance exists; the answer is late
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _params(environ) -> dict:
        """The query's parameters (libcloud sends them in the URL, others in a form body)."""
        params = parse_qs(environ.get("QUERY_STRING", ""))
        if environ["REQUEST_METHOD"] == "POST" and "form" in environ.get("CONTENT_TYPE", ""):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            params.update(parse_qs(raw.decode()))
            environ["wsgi.input"] = io.BytesIO(raw)
        return params

    @staticmethod
    def _fault(action: str, params: dict):
        ids = [v[0] for k, v in params.items() if k.startswith("InstanceId.")]
        with _lock:
            if action == "DescribeInstances":
                for instance_id in ids:
                    if _hidden.get(instance_id, 0) > 0:
                        _hidden[instance_id] -= 1
                        return (
                            "400 Bad Request",
                            "InvalidInstanceID.NotFound",
                            f"The instance ID '{instance_id}' does not exist",
                        )
            if action == "TerminateInstances" and Control.terminate_failures > 0:
                Control.terminate_failures -= 1
                return "500 Internal Server Error", "InternalError", "injected: terminate failed"
        return None


if __name__ == "__main__":
    app = NamespaceFix(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
