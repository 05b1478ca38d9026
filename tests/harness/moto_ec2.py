"""moto's EC2 server on 127.0.0.1, with the XML namespace libcloud expects.

moto 5 answers with ``xmlns="http://ec2.amazonaws.com/doc/2016-11-15"``; libcloud's EC2 driver
looks for the same namespace with a trailing slash. This WSGI wrapper adds it to every response.
Usage: python moto_ec2.py PORT
"""

import sys

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

WITHOUT = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"'
WITH = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'


class NamespaceFix:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, capture)).replace(WITHOUT, WITH)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


if __name__ == "__main__":
    app = NamespaceFix(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
