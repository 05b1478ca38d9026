"""A failure at each step of a spawn leaves nothing behind, and the page says why in one sentence."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import yaml

from tests.corc_core.conftest import live_nodes
from tests.harness.clouds import ec2_options, start_moto
from tests.multiplespawner.conftest import (
    LOCAL,
    VM,
    hub_config,
    login,
    make_setup,
    wait_stopped,
)
from tests.multiplespawner.test_spawn import start

FAKES = "tests.multiplespawner.fakes"


def nothing_left(setup) -> None:
    deadline = time.monotonic() + 20
    while setup.sandbox_hosts_alive() or setup.live_records():
        assert time.monotonic() < deadline, (setup.sandbox_hosts_alive(), setup.live_records())
        time.sleep(0.3)


def test_ordering_fails(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms", gpus=0)
    # Two hosts: 2 CPUs without a GPU, 1 CPU with one. The form allows 2 CPUs and 1 GPU (each host
    # has one of them), but no host has both: corc's order fails.
    config = yaml.safe_load(setup.corc_config.read_text())
    config["corc"]["providers"]["local"]["hosts"].append(
        {"name": "gpu-host", "address": "127.0.0.1", "cpu": 1, "memory_gb": 4, "gpus": 1}
    )
    setup.corc_config.write_text(yaml.safe_dump(config))
    hub = hub_factory(hub_config(setup))
    login(hub, "alice")
    ok, message = start(hub, "alice", {**LOCAL, "cpu": 2, "gpus": 1})
    assert not ok
    assert "This machine could not provide the machine: " in message, message
    assert "GPU" in message and "\n" not in message
    nothing_left(setup)


def test_configuring_fails(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms", configurer={"class": f"{FAKES}.FailingConfigurer"})
    hub = hub_factory(hub_config(setup))
    login(hub, "alice")
    ok, message = start(hub, "alice", VM)
    assert not ok
    assert "Configuring the machine failed" in message and "install packages" in message, message
    nothing_left(setup)


def test_the_notebook_fails_to_start_on_the_vm(tmp_path: Path, hub_factory) -> None:
    broken = {"remote_command": ["/bin/sh", "-c", "echo no-notebook-here >&2; exit 3"]}
    setup = make_setup(tmp_path / "ms", vm_kwargs=broken)
    hub = hub_factory(hub_config(setup))
    login(hub, "alice")
    ok, message = start(hub, "alice", VM)
    assert not ok
    assert "no-notebook-here" in message, message
    nothing_left(setup)
    assert "removing the resource (start failed" in hub.log()


def test_start_timeout_mid_provisioning_releases_the_vm(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms", configurer={"class": f"{FAKES}.HangingConfigurer"})
    extra = """
c.Spawner.start_timeout = 5
c.MultipleSpawner.timeouts = {"virtual_machine": {"provision": 25}}
c.MultipleSpawner.patience_after = 3
"""
    hub = hub_factory(hub_config(setup, extra))
    login(hub, "alice")
    started = time.monotonic()
    events: list[str] = []
    ok, message = start(hub, "alice", VM, events=events)
    assert not ok, message
    assert any(e.startswith("Still working on it: Configuring") for e in events), events
    assert time.monotonic() - started < 60
    assert "30 seconds" in hub.log() or "failed to start in 30" in hub.log(), hub.log()[-3000:]
    nothing_left(setup)
    # A second stop (the admin's button after a failure) is harmless.
    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")
    nothing_left(setup)


def test_hub_restart_while_the_vm_is_being_prepared(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms", configurer={"class": f"{FAKES}.HangingConfigurer"})
    hub = hub_factory(
        hub_config(setup, "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}")
    )
    login(hub, "alice")
    assert hub.api().post("/users/alice/server", json={"user_options": VM}).status_code == 202
    deadline = time.monotonic() + 60
    while not setup.sandbox_hosts_alive():
        assert time.monotonic() < deadline, hub.log()[-3000:]
        time.sleep(0.3)
    time.sleep(1)  # the resource id is committed to the hub's database before configuring
    hub.daemon.proc.kill()  # a crash: nothing gets cleaned up on the way out
    hub.daemon.proc.wait()
    hub.stop()
    assert setup.sandbox_hosts_alive()  # the VM outlived the hub...
    hub.start()
    nothing_left(setup)  # ...and the restarted hub found it and removed it
    assert "its spawn never finished" in hub.log() or "exited with status" in hub.log()
    assert hub.api().get("/users/alice").json()["servers"] == {}


def stop_pending_spawn(hub, options: dict, when) -> None:
    """Alice POSTs a spawn; once ``when()`` holds, she DELETEs it. JupyterHub waits about 1 s for
    the cancelled start, then stops the server: the answer must be 202/204 (not 500), and the
    server must stop."""
    api = hub.api()
    assert api.post("/users/alice/server", json={"user_options": options}).status_code == 202
    deadline = time.monotonic() + 120
    while not when():
        assert time.monotonic() < deadline, hub.log()[-3000:]
        time.sleep(0.05)
    response = api.delete("/users/alice/server")
    assert response.status_code in (202, 204), hub.log()[-6000:]
    wait_stopped(hub, "alice")


def launching(setup) -> bool:
    """Whether the VM's launcher has got as far as starting the gridhub agent."""
    marker = str(setup.dir / "remote-servers").encode()
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"agent.py" in command and marker in command:
            return True
    return False


def test_the_user_stops_a_spawn_while_the_notebook_launches_on_the_vm(
    tmp_path: Path, hub_factory
) -> None:
    """The user's DELETE of a pending spawn answers at once and the VM goes. Tearing down (the
    notebook's launch on the VM, then the VM) takes seconds; JupyterHub waits about 1 s for a
    cancelled start before it stops the server, and answered 500 while the start still ran."""
    slow = tmp_path / "slow-python"
    slow.write_text('#!/bin/sh\nsleep 3\nexec python3 "$@"\n')
    slow.chmod(0o755)
    setup = make_setup(tmp_path / "ms", vm_kwargs={"remote_python": str(slow)})
    hub = hub_factory(
        hub_config(setup, "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}")
    )
    login(hub, "alice")
    stop_pending_spawn(hub, VM, when=lambda: launching(setup))
    nothing_left(setup)
    assert not launching(setup)
    assert "Traceback" not in hub.log(), hub.log()[-6000:]
    ok, message = start(hub, "alice", VM)  # and the next spawn works
    assert ok, message


def test_the_user_stops_a_spawn_while_the_cloud_creates_the_vm(tmp_path: Path, hub_factory) -> None:
    """RunInstances has taken effect but its answer is late (corc waits for it, to tear down what
    it made). The user's DELETE answers at once all the same; the instance goes once the answer
    comes, and the record with it."""
    daemon, port = start_moto(tmp_path)
    try:
        options = ec2_options(port)
        setup = make_setup(tmp_path / "ms")
        config = yaml.safe_load(setup.corc_config.read_text())
        config["corc"]["providers"]["libcloud"] = options
        setup.corc_config.write_text(yaml.safe_dump(config))
        data = json.loads(setup.template_file.read_text())
        data[1]["providers"].append("libcloud")
        setup.write_templates(data)
        deployments = yaml.safe_load(setup.deployment_file.read_text())
        deployments["virtual_machine"].append(
            {"name": "ec2_image", "provider": "libcloud", "image": options["image"]}
        )
        setup.deployment_file.write_text(yaml.safe_dump(deployments))
        moto = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{moto}/_control", json={"create_delay": 6}).status_code == 200
        hub = hub_factory(
            hub_config(setup, "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}")
        )
        login(hub, "alice")
        ec2 = {
            "provider": "libcloud",
            "resource_type": "virtual_machine",
            "deployment": "ec2_image",
        }
        stop_pending_spawn(hub, ec2, when=lambda: live_nodes(options))
        assert live_nodes(options) == [] and setup.live_records() == []
        assert "Traceback" not in hub.log(), hub.log()[-6000:]
    finally:
        daemon.stop()
