"""The demo's nginx hands the login headers and the shared secret to the hub's login page only.

A user's server is user code: whatever reaches it (headers, environment), the user can read. The test runs the demo's own
nginx.conf (as run.py renders it) in front of a real hub whose users' servers record every header
they are sent, and tries the ways a user could get the secret or a forged name passed along.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import socket
import stat
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness.hub import Hub, spawn
from tests.harness.nginx import NGINX
from tests.harness.process import Daemon, free_port, port_open
from tests.headerauthenticator.conftest import START_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
ECHO_SERVER = Path(__file__).with_name("echo_server.py")
LOGIN_HEADERS = {"remote-user", "x-gridhub-secret", "authorization"}


def demo_run_module():
    spec = importlib.util.spec_from_file_location("demo_run", ROOT / "deploy" / "demo" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DemoFront:
    def __init__(self, tmp: Path) -> None:
        self.echo_log = tmp / "echo.jsonl"
        self.hub = Hub(
            tmp / "hub",
            f"""
            c.JupyterHub.authenticator_class = "header"
            c.Authenticator.allow_all = True
            c.JupyterHub.default_url = "/hub/home"
            c.HeaderAuthenticator.trusted_proxy_ips = ["127.0.0.1"]
            c.HeaderAuthenticator.shared_secret_header = "X-Gridhub-Secret"
            c.Spawner.cmd = [{sys.executable!r}, {str(ECHO_SERVER)!r}]
            c.Spawner.args = []
            c.Spawner.environment = {{"ECHO_LOG": {str(self.echo_log)!r}}}
            """,
        )
        self.state = tmp / "demo"
        self.port = free_port()
        env = demo_run_module().prepare(
            self.state, port=self.port, hub_port=self.hub.port, proxy_api_port=free_port()
        )
        self.secret = env["GRIDHUB_HEADER_SECRET"]
        self.hub.extra_env = {"GRIDHUB_HEADER_SECRET": self.secret}
        self.url = f"http://127.0.0.1:{self.port}"
        self.nginx = Daemon(
            "nginx",
            [
                NGINX,
                "-c",
                str(self.state / "nginx.conf"),
                "-e",
                str(self.state / "nginx-error.log"),
            ],
            self.state / "nginx.log",
        )

    def start(self) -> None:
        self.hub.start(timeout=START_TIMEOUT)
        self.nginx.start(lambda: port_open("127.0.0.1", self.port), timeout=10)

    def stop(self) -> None:
        self.nginx.stop()
        self.hub.stop()

    def seen_by_servers(self) -> list[dict]:
        lines = self.echo_log.read_text().splitlines() if self.echo_log.exists() else []
        return [json.loads(line) for line in lines]


@pytest.fixture
def demo(tmp_path: Path):
    front = DemoFront(tmp_path)
    try:
        front.start()
        yield front
    finally:
        front.stop()


def raw_get(port: int, path: str, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 GET with ``path`` exactly as written (no client-side dot-segment removal)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_users_server_never_sees_login_headers_or_the_secret(demo: DemoFront) -> None:
    client = httpx.Client(
        base_url=demo.url, auth=("demo", "demo"), follow_redirects=True, timeout=30
    )
    assert client.get("/hub/login").url.path == "/hub/home"
    ok, message = spawn(demo.hub, "demo")
    assert ok, message
    basic = "Basic " + base64.b64encode(b"demo:demo").decode()
    forged = {"Remote-User": "admin", "X-Gridhub-Secret": "guess-guess-guess-guess"}
    # The plain way, with forged login headers of the user's own.
    response = client.get("/user/demo/lab", headers=forged)
    assert response.status_code == 200
    assert response.json()["path"].startswith("/user/demo/")
    # Paths nginx normalises to its login location but a proxy behind it may route to the server.
    for path in (
        "/user/demo/../../hub/login",
        "/user/demo/%2e%2e/%2e%2e/hub/login",
        "/hub/login/../../user/demo/x",
    ):
        raw_get(demo.port, path, {"Authorization": basic, **forged})
    seen = demo.seen_by_servers()
    assert seen, "the user's server got no request at all"
    for request in seen:
        names = {name.lower() for name, _ in request["headers"]}
        assert not names & LOGIN_HEADERS, request
        assert demo.secret not in json.dumps(request)
        assert request["environment"]["JUPYTERHUB_USER"] == "demo"  # (its environment too)
    assert demo.secret not in demo.hub.log()


def test_demo_secrets_are_private_files_made_once(tmp_path: Path) -> None:
    run = demo_run_module()
    state = tmp_path / "demo"
    first = run.prepare(state, port=free_port(), hub_port=free_port(), proxy_api_port=free_port())
    second = run.prepare(state, port=free_port(), hub_port=free_port(), proxy_api_port=free_port())
    assert len(first["GRIDHUB_HEADER_SECRET"]) >= 32
    assert first["GRIDHUB_HEADER_SECRET"] == second["GRIDHUB_HEADER_SECRET"]
    for name in ("header_secret", "crypt_key", "nginx.conf"):
        mode = stat.S_IMODE(os.stat(state / name).st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    assert first["GRIDHUB_HEADER_SECRET"] in (state / "nginx.conf").read_text()
    tracked = (ROOT / ".gitignore").read_text().splitlines()
    assert ".demo/" in tracked  # the state directory (and its secrets) is never committed
