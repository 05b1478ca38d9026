"""A hub running the MultipleSpawner with two offers: this machine (corc's ``local`` pool, a
SimpleLocalProcessSpawner) and a sandbox VM (corc's ``sandbox`` provider: a network namespace with
its own sshd, reached by CloudSSHSpawner over a real SSH tunnel)."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.harness.hub import Hub

REPO = Path(__file__).resolve().parents[2]
SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
SECRET = "multiplespawner-test-secret-8d0c2a71f5e94b3c"
LOCAL = {"provider": "local", "resource_type": "bare_metal", "deployment": "local_machine"}
VM = {"provider": "sandbox", "resource_type": "virtual_machine", "deployment": "sandbox_debian"}


def templates(home: Path, vm_kwargs: dict | None = None, configurer: dict | None = None) -> list:
    vm = {
        "name": "Sandbox VM",
        "resource_type": "virtual_machine",
        "providers": ["sandbox"],
        "spawner": {
            "class": "cloudsshspawner.CloudSSHSpawner",
            "kwargs": {
                "remote_command": [SINGLEUSER],
                "remote_environment": {"JUPYTERHUB_ACTIVITY_INTERVAL": "1"},
                **(vm_kwargs or {}),
            },
        },
        "authenticator": {"class": "corc_core.SSHAuthenticator", "kwargs": {}},
    }
    if configurer:
        vm["configurer"] = configurer
    return [
        {
            "name": "This machine",
            "resource_type": "bare_metal",
            "providers": ["local"],
            "spawner": {
                "class": "jupyterhub.spawner.SimpleLocalProcessSpawner",
                "kwargs": {"home_dir_template": str(home / "{username}")},
            },
        },
        vm,
    ]


DEPLOYMENTS = {
    "bare_metal": [{"name": "local_machine", "provider": "local", "display_name": "This machine"}],
    "virtual_machine": [
        {"name": "sandbox_debian", "provider": "sandbox", "image": "Debian 12 (sandbox)"}
    ],
}


@dataclass
class Setup:
    """Where a test's MultipleSpawner configuration lives."""

    dir: Path
    template_file: Path
    deployment_file: Path
    corc_config: Path

    @property
    def records(self) -> Path:
        return self.dir / "corc" / "records.sqlite"

    @property
    def sandbox(self) -> Path:
        return self.dir / "corc" / "sandbox"

    def live_records(self) -> list[tuple[str, str, str]]:
        """(provider, owner, state) of every record corc has not finished deleting."""
        if not self.records.exists():
            return []
        with sqlite3.connect(self.records) as db:
            rows = db.execute("SELECT provider, owner, state FROM records").fetchall()
        return [row for row in rows if row[2] != "deleted"]

    def sandbox_hosts_alive(self) -> list[str]:
        alive = []
        for pidfile in self.sandbox.glob("*/sshd.pid"):
            try:
                pid = int(pidfile.read_text())
                Path(f"/proc/{pid}").stat()
            except (OSError, ValueError):
                continue
            alive.append(pidfile.parent.name)
        return alive

    def write_templates(self, data) -> None:
        write_json(self.template_file, data)


def write_json(path: Path, data) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(json.dumps(data, indent=2))
    if path.stat().st_mtime_ns == before:  # same clock tick: make the change visible
        stamp = before + 1_000_000
        import os

        os.utime(path, ns=(stamp, stamp))


def make_setup(directory: Path, gpus: int = 2, vm_kwargs=None, configurer=None) -> Setup:
    directory.mkdir(parents=True, exist_ok=True)
    corc = directory / "corc"
    corc.mkdir(exist_ok=True)
    config = {
        "corc": {
            "store": {"path": str(corc / "records.sqlite")},
            "ssh": {"directory": str(corc / "ssh")},
            "providers": {
                "sandbox": {
                    "directory": str(corc / "sandbox"),
                    "use_netns": True,
                    "username": "root",
                },
                "local": {
                    "hosts": [
                        {
                            "name": "localhost",
                            "address": "127.0.0.1",
                            "cpu": 2,
                            "memory_gb": 4,
                            "gpus": gpus,
                        }
                    ],
                    "check_reachable": False,
                },
            },
        }
    }
    setup = Setup(
        directory, directory / "templates.json", directory / "deployments.yaml", corc / "config"
    )
    setup.corc_config.write_text(yaml.safe_dump(config))
    setup.write_templates(templates(directory / "home", vm_kwargs, configurer))
    setup.deployment_file.write_text(yaml.safe_dump(DEPLOYMENTS))
    return setup


def hub_config(setup: Setup, extra: str = "") -> str:
    return f"""
import sys
sys.path.insert(0, {str(REPO)!r})
c.JupyterHub.authenticator_class = "header"
c.HeaderAuthenticator.shared_secret = {SECRET!r}
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"admin"}}
c.JupyterHub.spawner_class = "multiple"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.cleanup_servers = False
# The MultipleSpawner's own timeouts per resource type, not the harness's 60 s for everything.
c.Spawner.pop("start_timeout", None)
c.Spawner.pop("http_timeout", None)
c.MultipleSpawner.template_file = {str(setup.template_file)!r}
c.MultipleSpawner.deployment_file = {str(setup.deployment_file)!r}
c.MultipleSpawner.corc_config_file = {str(setup.corc_config)!r}
c.MultipleSpawner.providers = {{"local": {{"display_name": "This machine"}}}}
# Sandbox VMs log in as this machine's root: by default their notebooks' files would all be in
# /root/.gridhub/servers/<user>-<server>, shared with any other test run on the machine (whose
# stop removed them under a starting notebook). Each test gets its own, as each VM has its own disk.
c.CloudSSHSpawner.remote_root = {str(setup.dir / "remote-servers")!r}
{extra}
"""


def login(hub: Hub, user: str) -> None:
    headers = {"Remote-User": user, "X-Gridhub-Secret": SECRET}
    assert httpx.get(f"{hub.url}/hub/login", headers=headers).status_code == 302


def server_status(hub: Hub, user: str, server: str = "", timeout: float = 30) -> httpx.Response:
    """GET the server's /api/status through the hub's proxy, retrying while the route settles."""
    path = f"/user/{user}/{server + '/' if server else ''}api/status"
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(
                f"{hub.url}{path}", headers={"Authorization": f"token {hub.api_token}"}, timeout=10
            )
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)


def wait_stopped(hub: Hub, user: str, server: str = "", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = hub.api().get(f"/users/{user}").json()["servers"]
        if server not in servers:
            return
        time.sleep(0.3)
    raise AssertionError(f"{user}:{server} did not stop")
