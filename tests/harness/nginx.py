"""nginx as the front proxy, with a per-test ``server`` block."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

from .process import Daemon, free_port, port_open

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """An nginx master in the foreground, listening on 127.0.0.1:``port``.

    ``server`` is the body of the ``server { }`` block; the ``listen`` line is added. Use
    ``proxy_headers()`` for the lines every hub location needs.
    """

    def __init__(self, workdir: Path, server: str, port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = self.dir / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        temp = self.dir / "tmp"
        temp.mkdir(exist_ok=True)
        self.conf.write_text(
            textwrap.dedent(
                f"""
                {user}
                daemon off;
                worker_processes 1;
                pid {self.dir / "nginx.pid"};
                error_log {self.dir / "error.log"} warn;
                events {{ worker_connections 1024; }}
                http {{
                    access_log off;
                    client_body_temp_path {temp}/body;
                    proxy_temp_path {temp}/proxy;
                    fastcgi_temp_path {temp}/fastcgi;
                    uwsgi_temp_path {temp}/uwsgi;
                    scgi_temp_path {temp}/scgi;
                    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
                    server {{
                        listen 127.0.0.1:{self.port};
                {textwrap.indent(textwrap.dedent(server), " " * 24)}
                    }}
                }}
                """
            )
        )
        self.daemon = Daemon(
            "nginx",
            [NGINX, "-c", str(self.conf), "-e", str(self.dir / "error.log")],
            self.dir / "nginx.log",
        )

    def start(self) -> None:
        self.daemon.start(lambda: port_open("127.0.0.1", self.port), timeout=10)

    def stop(self) -> None:
        self.daemon.stop()


def proxy_headers(upstream: str) -> str:
    """The proxy lines for a location that forwards to JupyterHub (websockets included)."""
    return textwrap.dedent(
        f"""
        proxy_pass {upstream};
        proxy_http_version 1.1;
        proxy_bind 127.0.0.1;
        proxy_set_header Host $http_host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-Forwarded-Proto $scheme;
        """
    )
