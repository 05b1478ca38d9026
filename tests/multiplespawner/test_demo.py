"""`make demo`: demo/demo logs in through nginx and gets this machine and a sandbox VM to choose
from; a VM server runs over a real SSH tunnel, and stopping the demo removes the VM. When a SLURM
cluster answers, the demo offers it too and runs JupyterLab as a job there."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.harness.nginx import NGINX
from tests.harness.process import Daemon, free_port, port_open
from tests.multiplespawner.test_slurm_child import slurm  # noqa: F401 - the cluster fixture

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


@contextmanager
def running_demo(state: Path) -> Iterator[tuple[httpx.Client, Daemon]]:
    """deploy/demo as `make demo` runs it (run.prepare, the hub, nginx) on free ports; a client
    logged in as demo/demo through nginx. The hub stops its servers on the way out."""
    port, hub_port = free_port(), free_port()
    env = demo_run_module().prepare(
        state, port=port, hub_port=hub_port, proxy_api_port=free_port(), hub_api_port=free_port()
    )
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
        yield client, hub
    finally:
        nginx.stop()
        hub.stop(timeout=120)


def spawn_from_form(client: httpx.Client, hub: Daemon, server: str, fields: dict) -> None:
    """Post the spawn form for demo's ``server`` and wait until the hub says it is ready."""
    page = client.get(f"/hub/spawn/demo/{server}")
    assert page.status_code == 200, page.text[-500:]
    action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert client.post(action, data=fields).status_code == 302
    xsrf = re.search(r"_xsrf=([^&]+)", action).group(1)
    deadline = time.monotonic() + 240
    while True:
        servers = client.get("/hub/api/users/demo", params={"_xsrf": xsrf}).json()["servers"]
        if servers.get(server, {}).get("ready"):
            return
        assert time.monotonic() < deadline, (servers, hub.tail(60))
        time.sleep(1)


def test_the_demo_offers_this_machine_and_a_sandbox_vm(tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "demo"
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-slurm.conf"))  # no cluster answers
    with running_demo(state) as (client, hub):
        page = client.get("/hub/spawn/demo/vm")
        assert page.status_code == 200, page.text[-500:]
        assert "This machine" in page.text and "Sandbox VM" in page.text
        assert "SLURM" not in page.text
        fields = {
            "provider": "sandbox",
            "resource_type": "virtual_machine",
            "deployment": "sandbox_vm",
            "cpu": "1",
            "memory_gb": "1",
            "gpus": "0",
            "minutes": "30",
        }
        spawn_from_form(client, hub, "vm", fields)
        lab = client.get("/user/demo/vm/lab", follow_redirects=True)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code
        with sqlite3.connect(state / "corc" / "records.sqlite") as db:
            owners = db.execute("SELECT owner, state FROM records").fetchall()
        assert ("demo:vm", "running") in owners
    # The hub stopped its servers on the way out: the VM went too.
    with sqlite3.connect(state / "corc" / "records.sqlite") as db:
        states = {row[0] for row in db.execute("SELECT state FROM records")}
    assert states == {"deleted"}, states


def test_the_demo_offers_a_slurm_cluster_that_answers(tmp_path: Path, monkeypatch, slurm) -> None:  # noqa: F811
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    state = tmp_path / "demo"
    cluster = demo_run_module().slurm_cluster(dict(os.environ))
    assert cluster is not None
    assert cluster["resolver"] == {"node1": "127.0.0.1"} and cluster["cpu"] == slurm.cpus
    with running_demo(state) as (client, hub):
        page = client.get("/hub/spawn/demo/job")
        assert "SLURM cluster" in page.text and "Sandbox VM" in page.text, page.text[-800:]
        fields = {
            "provider": "slurm",
            "resource_type": "bare_metal",
            "deployment": "slurm_job",
            "cpu": "1",
            "memory_gb": "1",
            "gpus": "0",
            "minutes": "20",
        }
        spawn_from_form(client, hub, "job", fields)
        (job,) = slurm.jobs()
        assert slurm.jobs()[job] == "RUNNING"
        shown = slurm.run(["scontrol", "show", "job", job])
        assert "TimeLimit=00:20:00" in shown, shown
        assert f"WorkDir={state / 'home' / 'demo'}" in shown, shown
        lab = client.get("/user/demo/job/lab", follow_redirects=True)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code
    slurm.wait_no_jobs()  # stopping the demo ended the job
