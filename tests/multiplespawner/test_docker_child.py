"""DockerSpawner as the MultipleSpawner's ``container`` child, on a confined local Docker engine.

The image is built here from the locally made Debian base (no registry is reachable); the
notebook inside runs this checkout's Python environment, mounted read-only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.docker import DockerEngine
from tests.multiplespawner.conftest import SECRET, login, server_status, wait_stopped
from tests.multiplespawner.test_spawn import start

IMAGE = "gridhub-test/notebook:1"
VENV = Path(sys.prefix)
PYTHON_HOME = Path(sys.base_prefix)
DOCKERFILE = """FROM gridhub/bookworm-base:12
ARG APT_MIRROR
ARG APT_SECURITY_MIRROR
ARG APT_PROXY
# The shared libraries the mounted Python needs; Python itself comes from the host, read-only.
RUN if [ -n "$APT_PROXY" ]; then echo "Acquire::http::Proxy \\"$APT_PROXY\\";" \\
        > /etc/apt/apt.conf.d/01proxy; fi \\
 && apt-get update -q \\
 && apt-get install -y -q --no-install-recommends libssl3 libsqlite3-0 libffi8 libexpat1 \\
        libbz2-1.0 liblzma5 libreadline8 libncursesw6 libuuid1 zlib1g ca-certificates \\
 && rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/01proxy
LABEL org.gridhub.test="multiplespawner container child"
"""
CONTAINER = {"provider": "engine", "resource_type": "container", "deployment": "py_container"}


@dataclass
class Engine:
    engine: DockerEngine
    network: str
    gateway: str


@pytest.fixture
def docker_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = DockerEngine(tmp_path / "docker")
    engine.start()
    try:
        engine.base_image()
        context = tmp_path / "image"
        context.mkdir()
        (context / "Dockerfile").write_text(DOCKERFILE)
        engine.build(IMAGE, context)
        network = engine.network("gridhub-test")
        gateway = engine.docker(
            "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", network
        ).stdout.strip()
        yield Engine(engine, network, gateway)
    finally:
        engine.stop()


def docker_config(engine: Engine) -> str:
    read_only = {
        str(VENV): {"bind": str(VENV), "mode": "ro"},
        str(PYTHON_HOME): {"bind": str(PYTHON_HOME), "mode": "ro"},
    }
    kwargs = {
        "network_name": engine.network,
        "use_internal_ip": True,
        "remove": True,
        "pull_policy": "never",
        "volumes": read_only,
        "cmd": [str(VENV / "bin" / "jupyterhub-singleuser")],
        # Importing the server from the bind mounts takes minutes on a loaded 2-core machine.
        "http_timeout": 600,
    }
    templates = [
        {
            "name": "Container",
            "resource_type": "container",
            "providers": ["engine"],
            "spawner": {"class": "dockerspawner.DockerSpawner", "kwargs": kwargs},
        }
    ]
    deployments = {"container": [{"name": "py_container", "image": IMAGE}]}
    return f"""
c.JupyterHub.authenticator_class = "header"
c.HeaderAuthenticator.shared_secret = {SECRET!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "multiple"
# Containers reach the hub on the engine network's gateway (this machine's side of the bridge).
c.JupyterHub.hub_ip = {engine.gateway!r}
# The hub's proxy reaches the hub on that address too, so its requests come from there.
c.HeaderAuthenticator.hub_proxy_ips = ["127.0.0.1", {engine.gateway!r}]
c.MultipleSpawner.templates = {templates!r}
c.MultipleSpawner.deployments = {deployments!r}
c.MultipleSpawner.providers = {{"engine": {{"corc": None, "display_name": "Docker engine"}}}}
"""


def test_a_container_child_runs_the_notebook_with_the_chosen_limits(docker_engine, hub_factory):
    engine = docker_engine.engine
    hub = hub_factory(docker_config(docker_engine), env={"DOCKER_HOST": engine.host}, start=False)
    hub.start(timeout=180)  # right after an image build this 2-core machine is slow to import
    login(hub, "alice")

    # No image outside the admin's deployments can be asked for.
    response = hub.api().post(
        "/users/alice/server", json={**CONTAINER, "image": "docker.io/evil/miner"}
    )
    assert response.status_code == 400, response.text
    assert engine.docker("ps", "-aq").stdout.strip() == ""

    # (The progress steps are checked in test_spawn.py: a container that starts within the hub's
    # slow_spawn_timeout answers the POST as started, and the stream then shows only "ready".)
    ok, message = start(hub, "alice", {**CONTAINER, "cpu": 1, "memory_gb": 1})
    assert ok, message + "\n" + hub.log()[-3000:]
    assert server_status(hub, "alice").status_code == 200
    (info,) = json.loads(engine.docker("inspect", "jupyter-alice").stdout)
    assert info["Config"]["Image"] == IMAGE
    # DockerSpawner sets cpu_quota = cpu_limit * cpu_period (100 ms): one core.
    assert (info["HostConfig"]["CpuQuota"], info["HostConfig"]["CpuPeriod"]) == (100_000, 100_000)
    assert info["HostConfig"]["Memory"] == 1024**3
    assert docker_engine.network in info["NetworkSettings"]["Networks"]
    # The session's end reaches the container; our Jupyter paths do not (the image keeps its own).
    names = {entry.split("=", 1)[0] for entry in info["Config"]["Env"]}
    assert "GRIDHUB_SESSION_END" in names
    assert not names & {"JUPYTER_PATH", "JUPYTER_CONFIG_PATH"}, names

    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")
    assert engine.docker("ps", "-aq").stdout.strip() == ""
