"""A real JupyterHub subprocess with configurable-http-proxy, on free loopback ports."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import textwrap
import time
from pathlib import Path

import httpx

from .process import Daemon, free_port, kill_pidfile

ADMIN_SERVICE = "test-admin"


class Hub:
    """One JupyterHub (plus its proxy) in its own directory, with a config written by the test.

    ``config`` is Python appended to a base config that fixes the ports, the SQLite database, the
    PID files and an admin service token (``api_token``). ``restart()`` keeps the database, the
    cookie secret and the encryption key.
    """

    def __init__(self, workdir: Path, config: str, env: dict[str, str] | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_token = secrets.token_hex(32)
        self.crypt_key = secrets.token_hex(32)
        self.config_file = self.dir / "jupyterhub_config.py"
        self.config_file.write_text(self._base_config() + "\n" + textwrap.dedent(config))
        self.extra_env = env or {}
        self.daemon: Daemon | None = None

    def _base_config(self) -> str:
        beside = Path(sys.executable).with_name("configurable-http-proxy")
        chp = str(beside) if beside.exists() else shutil.which("configurable-http-proxy")
        if chp is None:
            raise RuntimeError("configurable-http-proxy is not on PATH: run `make install`")
        singleuser = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
        root_args = ["--allow-root"] if os.geteuid() == 0 else []
        return textwrap.dedent(
            f"""
            c = get_config()  # noqa
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {self.port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {self.hub_port}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
            c.ConfigurableHTTPProxy.command = [{chp!r}]
            c.ConfigurableHTTPProxy.pid_file = {str(self.dir / "proxy.pid")!r}
            c.JupyterHub.pid_file = {str(self.dir / "hub.pid")!r}
            c.JupyterHub.db_url = "sqlite:///{self.dir / "jupyterhub.sqlite"}"
            c.JupyterHub.cookie_secret_file = {str(self.dir / "cookie_secret")!r}
            c.JupyterHub.log_level = "DEBUG"
            c.JupyterHub.services = [{{"name": {ADMIN_SERVICE!r}, "api_token": {self.api_token!r}}}]
            c.JupyterHub.load_roles = [{{
                "name": "test-admin-role",
                "scopes": ["admin:users", "admin:servers", "admin:auth_state", "tokens",
                           "access:servers", "read:hub"],
                "services": [{ADMIN_SERVICE!r}],
            }}]
            c.JupyterHub.spawner_class = "simple"
            c.Spawner.cmd = [{singleuser!r}]
            c.Spawner.args = {root_args!r}
            c.Spawner.start_timeout = 60
            c.Spawner.http_timeout = 60
            """
        )

    @property
    def api_url(self) -> str:
        """The hub's own API URL, as its servers see it (``JUPYTERHUB_API_URL``)."""
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["JUPYTERHUB_CRYPT_KEY"] = self.crypt_key
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.daemon = Daemon(
            "jupyterhub",
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config_file)],
            self.dir / "hub.log",
            env=self.env,
            cwd=self.dir,
        )
        self.daemon.start(self._ready, timeout)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/hub/api/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        kill_pidfile(self.dir / "proxy.pid")

    def stop_servers(self, timeout: float = 60.0) -> None:
        """Stop every user's servers through the REST API, waiting until the hub says they stopped.

        Hubs that keep servers across restarts (``cleanup_servers = False``) would otherwise leave
        a failed test's notebooks (and the VMs under them) running after the hub is gone.
        """

        if self.daemon is None or self.daemon.proc is None or self.daemon.proc.poll() is not None:
            return
        try:
            with self.api(timeout=10) as api:
                users = api.get("/users", params={"state": "active"}).json()
                if not isinstance(users, list):
                    users = users.get("items", [])
                for user in users:
                    for name in user.get("servers", {}):
                        path = (
                            f"/users/{user['name']}/servers/{name}"
                            if name
                            else (f"/users/{user['name']}/server")
                        )
                        api.delete(path)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    active = api.get("/users", params={"state": "active"}).json()
                    if not isinstance(active, list):
                        active = active.get("items", [])
                    if not any(user.get("servers") for user in active):
                        return
                    time.sleep(0.2)
        except (httpx.HTTPError, ValueError):
            pass  # the hub is not answering: nothing more can be asked of it

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return (self.dir / "hub.log").read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20) -> str:
        """The log once it contains ``text``: the hub writes a request's log line after the
        response has gone out, so a client can be faster than the log."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            assert time.monotonic() < deadline, f"{text!r} not in the hub's log within {timeout} s"
            time.sleep(0.1)
        return log

    def api(self, token: str | None = None, **kwargs) -> httpx.Client:
        """A REST client for ``/hub/api`` authenticated with ``token`` (default: the admin service)."""
        return httpx.Client(
            base_url=f"{self.url}/hub/api",
            headers={"Authorization": f"token {token or self.api_token}"},
            timeout=kwargs.pop("timeout", 30),
            **kwargs,
        )


def spawn(
    hub: Hub,
    user: str,
    timeout: float = 90,
    events: list[str] | None = None,
    options: dict | None = None,
    server: str = "",
) -> tuple[bool, str]:
    """Start ``user``'s server through the REST API; (True, "") when ready, else (False, message).

    ``options`` are sent as the ``user_options`` (none: the saved ones), ``server`` names a named
    server. The message is the one the spawn page shows (the REST error, or the progress stream's
    failure event); the progress messages the page shows on the way are appended to ``events``.
    """
    import json
    import time
    from urllib.parse import quote

    api = hub.api()
    user = quote(user, safe="")
    path = f"/users/{user}/servers/{quote(server, safe='')}" if server else f"/users/{user}/server"
    if options is None:
        response = api.post(path)
    else:
        response = api.post(path, json={"user_options": options})
    if response.status_code >= 400:
        return False, response.json().get("message", response.text)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with api.stream("GET", f"{path}/progress", timeout=timeout) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if events is not None and event.get("message"):
                    events.append(event["message"])
                if event.get("ready"):
                    return True, ""
                if event.get("failed"):
                    return False, event.get("message", "")
        time.sleep(0.2)
    raise TimeoutError(f"{user}'s server was neither ready nor failed after {timeout} s")
