"""`make demo`: demo/demo logs in through nginx and gets this machine and a sandbox VM to choose
from; a VM server runs over a real SSH tunnel, and stopping the demo removes the VM."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
import time
from pathlib import Path

import httpx

from tests.harness.nginx import NGINX
from tests.harness.process import Daemon, free_port, port_open

ROOT = Path(__file__).resolve().parents[2]


def demo_run_module():
    spec = importlib.util.spec_from_file_location("demo_run", ROOT / "deploy" / "demo" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hub_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/hub/api/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_demo_offers_this_machine_and_a_sandbox_vm(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    port, hub_port = free_port(), free_port()
    env = demo_run_module().prepare(state, port=port, hub_port=hub_port, proxy_api_port=free_port())
    hub = Daemon(
        "jupyterhub",
        [sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "deploy/demo/jupyterhub_config.py")],
        state / "hub.log",
        env=env,
        cwd=state,
    )
    nginx = Daemon(
        "nginx",
        [NGINX, "-c", str(state / "nginx.conf"), "-e", str(state / "nginx-error.log")],
        state / "nginx.log",
    )
    hub.start(lambda: hub_ready(f"http://127.0.0.1:{hub_port}"), timeout=90)
    try:
        nginx.start(lambda: port_open("127.0.0.1", port), timeout=10)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", auth=("demo", "demo"), timeout=60
        )
        assert client.get("/hub/login", follow_redirects=True).url.path == "/hub/home"
        page = client.get("/hub/spawn/demo/vm")
        assert page.status_code == 200, page.text[-500:]
        assert "This machine" in page.text and "Sandbox VM" in page.text
        action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        fields = {
            "provider": "sandbox",
            "resource_type": "virtual_machine",
            "deployment": "sandbox_vm",
            "cpu": "1",
            "memory_gb": "1",
            "gpus": "0",
            "minutes": "30",
        }
        assert client.post(action, data=fields).status_code == 302
        xsrf = re.search(r"_xsrf=([^&]+)", action).group(1)
        deadline = time.monotonic() + 240
        while True:
            servers = client.get("/hub/api/users/demo", params={"_xsrf": xsrf}).json()["servers"]
            if servers.get("vm", {}).get("ready"):
                break
            assert time.monotonic() < deadline, (servers, hub.tail(60))
            time.sleep(1)
        lab = client.get("/user/demo/vm/lab", follow_redirects=True)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code
        with sqlite3.connect(state / "corc" / "records.sqlite") as db:
            owners = db.execute("SELECT owner, state FROM records").fetchall()
        assert ("demo:vm", "running") in owners
    finally:
        nginx.stop()
        hub.stop(timeout=120)  # the hub stops its servers on the way out: the VM goes too
    with sqlite3.connect(state / "corc" / "records.sqlite") as db:
        states = {row[0] for row in db.execute("SELECT state FROM records")}
    assert states == {"deleted"}, states
