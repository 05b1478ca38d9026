"""Spawning through the MultipleSpawner with a real hub: this machine and a sandbox VM."""

from __future__ import annotations

import os
from pathlib import Path

from tests.harness.hub import spawn
from tests.harness.process import server_environment
from tests.multiplespawner.conftest import (
    LOCAL,
    VM,
    hub_config,
    login,
    make_setup,
    server_status,
    wait_stopped,
)


def start(hub, user: str, options: dict, server: str = "", events: list | None = None):
    """POST the options and follow the progress stream: (ok, message). VMs get 180 s."""
    return spawn(hub, user, timeout=180, events=events, options=options, server=server)


def test_this_machine_with_a_gpu_from_the_pool(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms")
    # POST returns at once, so the progress stream sees every step (not just "ready").
    hub = hub_factory(
        hub_config(setup, "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}")
    )
    user = f"gpu{os.getpid()}"  # other tests on this machine run servers for "alice" too
    login(hub, user)
    events: list[str] = []
    ok, message = start(hub, user, {**LOCAL, "gpus": 1, "cpu": 2}, events=events)
    assert ok, message + "\n" + hub.log()[-3000:]
    assert server_status(hub, user).status_code == 200
    env = server_environment(user, api_url=hub.api_url)
    assert env["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    assert any(e.startswith("Ordering 2 CPU, 1 GB, 1 GPU from This machine") for e in events), (
        events
    )
    assert any(e.startswith("Starting the notebook server") for e in events), events
    assert setup.live_records() == [("local", user, "running")]
    model = hub.api().get(f"/users/{user}").json()["servers"][""]
    assert model["user_options"]["gpus"] == 1

    assert hub.api().delete(f"/users/{user}/server").status_code in (202, 204)
    wait_stopped(hub, user)
    assert setup.live_records() == []


def test_a_local_server_and_a_vm_server_at_once(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms")
    # POST returns at once, so the progress stream sees every step even when the VM is quick.
    hub = hub_factory(
        hub_config(setup, "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}")
    )
    login(hub, "alice")
    ok, message = start(hub, "alice", LOCAL)
    assert ok, message
    events: list[str] = []
    ok, message = start(hub, "alice", {**VM, "cpu": 1, "minutes": 30}, server="vm", events=events)
    assert ok, message + "\n" + hub.log()[-4000:]
    assert server_status(hub, "alice").status_code == 200
    assert server_status(hub, "alice", "vm").status_code == 200
    # The VM server runs inside the sandbox host's namespace, reached over SSH only.
    assert len(setup.sandbox_hosts_alive()) == 1
    assert sorted(setup.live_records()) == [
        ("local", "alice", "running"),
        ("sandbox", "alice:vm", "running"),
    ]
    host = events[events.index(next(e for e in events if e.startswith("Starting the notebook")))]
    assert "10.200." in host or "127.0.0.1" in host, events
    assert any("Connecting to" in e for e in events), events  # the child's own progress
    state = hub.api().get("/users/alice").json()["servers"]["vm"]
    assert state["user_options"]["deployment"] == "sandbox_debian"

    assert hub.api().delete("/users/alice/servers/vm").status_code in (202, 204)
    wait_stopped(hub, "alice", "vm")
    assert setup.sandbox_hosts_alive() == []
    assert setup.live_records() == [("local", "alice", "running")]
    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")
    assert setup.live_records() == []


def test_hub_restart_mid_session_then_stop_tears_the_vm_down(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup))
    login(hub, "bob")
    ok, message = start(hub, "bob", VM)
    assert ok, message + "\n" + hub.log()[-4000:]
    assert server_status(hub, "bob").status_code == 200
    hub.restart()
    response = server_status(hub, "bob", timeout=60)
    assert response.status_code == 200, hub.log()[-4000:]
    assert hub.api().get("/users/bob").json()["servers"][""]["ready"]
    assert len(setup.sandbox_hosts_alive()) == 1
    assert hub.api().delete("/users/bob/server").status_code in (202, 204)
    wait_stopped(hub, "bob")
    assert setup.sandbox_hosts_alive() == []
    assert setup.live_records() == []
