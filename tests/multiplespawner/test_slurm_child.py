"""batchspawner's SlurmSpawner on a real local SLURM cluster: alone, then as a MultipleSpawner child."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.hub import Hub, spawn
from tests.harness.slurm import SlurmCluster, SystemUser


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[SlurmCluster]:
    cluster = SlurmCluster(tmp_path / "slurm")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def student(tmp_path: Path) -> Iterator[SystemUser]:
    user = SystemUser(f"ghs{secrets.token_hex(3)}", tmp_path / "home")
    try:
        yield user
    finally:
        user.remove()


def slurm_settings(slurm: SlurmCluster, cls: str = "MultiSlurmSpawner") -> str:
    """Config lines for batchspawner against ``slurm`` (the hub submits as root; jobs run here).

    The hub itself needs ``slurm.env`` too: batchspawner queries and cancels with the hub's own
    environment, and submits with the spawner's.
    """
    return f"""
import batchspawner  # registers POST /hub/api/batchspawner
c.{cls}.exec_prefix = ""
c.{cls}.batchspawner_singleuser_cmd = {BATCH_SINGLEUSER!r}
c.{cls}.daemon_resolver = {{"node1": "127.0.0.1"}}
c.{cls}.startup_poll_interval = 0.2
c.{cls}.environment = {{"SLURM_CONF": {str(slurm.conf)!r}}}
"""


BATCH_SINGLEUSER = str(Path(sys.executable).with_name("batchspawner-singleuser"))
LOGIN_SECRET = secrets.token_hex(16)


def base_config() -> str:
    return f"""
c.JupyterHub.authenticator_class = "header"
c.HeaderAuthenticator.shared_secret = {LOGIN_SECRET!r}
c.Authenticator.allow_all = True
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
"""


def login(hub: Hub, user: str) -> None:
    assert (
        httpx.get(
            f"{hub.url}/hub/login", headers={"Remote-User": user, "X-Gridhub-Secret": LOGIN_SECRET}
        ).status_code
        == 302
    )


def notebook_status(hub: Hub, user: str, timeout: float = 30) -> httpx.Response:
    """GET /user/<name>/api/status through the proxy with the admin token."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(
            f"{hub.url}/user/{user}/api/status",
            headers={"Authorization": f"token {hub.api_token}"},
            timeout=10,
        )
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def wait_stopped(hub: Hub, user: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with hub.api() as api:
        while api.get(f"/users/{user}").json()["servers"]:
            assert time.monotonic() < deadline, f"{user}'s server did not stop"
            time.sleep(0.3)


def test_slurm_spawner_alone_runs_a_notebook_as_a_cluster_job(slurm, student, hub_factory):
    """The fixture is a real cluster: the notebook is a SLURM job and its port comes back by POST."""
    hub = hub_factory(
        base_config()
        + 'c.JupyterHub.spawner_class = "batchspawner.MultiSlurmSpawner"\n'
        + slurm_settings(slurm),
        env=slurm.env,
    )
    login(hub, student.name)
    events: list[str] = []
    ok, message = spawn(hub, student.name, events=events)
    assert ok, f"{message}\n{hub.log()[-4000:]}"
    jobs = slurm.jobs()
    assert list(jobs.values()) == ["RUNNING"], jobs
    assert "POST /hub/api/batchspawner" in hub.log()
    assert notebook_status(hub, student.name).status_code == 200
    assert any("Cluster job running" in event for event in events), events

    with hub.api() as api:
        assert api.delete(f"/users/{student.name}/server").status_code in (202, 204)
    wait_stopped(hub, student.name)
    slurm.wait_no_jobs()


def multiple_config(slurm: SlurmCluster) -> str:
    """The MultipleSpawner offering the SLURM cluster as a bare-metal provider."""
    kwargs = {
        "exec_prefix": "",
        "batchspawner_singleuser_cmd": BATCH_SINGLEUSER,
        "daemon_resolver": {"node1": "127.0.0.1"},
        "startup_poll_interval": 0.2,
        "environment": {"SLURM_CONF": str(slurm.conf)},
    }
    return f"""
import batchspawner  # registers POST /hub/api/batchspawner
c.JupyterHub.spawner_class = "multiple"
c.JupyterHub.cleanup_servers = False
c.MultipleSpawner.templates = [{{
    "name": "slurm",
    "resource_type": "bare_metal",
    "providers": ["cluster"],
    "spawner": {{"class": "batchspawner.MultiSlurmSpawner", "kwargs": {kwargs!r}}},
}}]
c.MultipleSpawner.providers = {{
    "cluster": {{
        "corc": None,
        "display_name": "SLURM cluster",
        "limits": {{"cpu": {slurm.cpus}, "memory_gb": 1.5, "gpus": 0}},
    }},
}}
c.MultipleSpawner.deployments = {{
    "bare_metal": [{{"name": "slurm-python", "display_name": "Python on the cluster"}}],
}}
"""


def job_field(slurm: SlurmCluster, job: str, field: str) -> str:
    shown = slurm.run(["scontrol", "show", "job", job])
    match = next(part for part in shown.split() if part.startswith(f"{field}="))
    return match.split("=", 1)[1]


def test_slurm_spawner_as_a_multiplespawner_child(slurm, student, hub_factory):
    """The user's choice becomes the job's resources, the posted port reaches the child, and the
    job survives a hub restart until the server is stopped."""
    hub = hub_factory(base_config() + multiple_config(slurm), env=slurm.env)
    login(hub, student.name)
    options = {
        "provider": "cluster",
        "resource_type": "bare_metal",
        "deployment": "slurm-python",
        "cpu": 2,
        "memory_gb": 1,
        "minutes": 30,
    }
    with hub.api() as api:
        response = api.post(f"/users/{student.name}/server", json=options)
        assert response.status_code in (201, 202), response.text
    events: list[str] = []
    ok, message = spawn_progress(hub, student.name, events)
    assert ok, f"{message}\n{hub.log()[-4000:]}"

    (job,) = slurm.jobs()
    assert slurm.jobs()[job] == "RUNNING"
    assert job_field(slurm, job, "TimeLimit") == "00:30:00"  # the session length
    assert job_field(slurm, job, "NumCPUs") == "2"
    assert job_field(slurm, job, "MinMemoryNode") == "1G"
    # batchspawner-singleuser posted its port to the parent (the token's owner); it reached the
    # child, which returned it to the hub: the proxy reaches the notebook.
    assert "POST /hub/api/batchspawner" in hub.log()
    assert notebook_status(hub, student.name).status_code == 200
    assert any(event.startswith("Starting the notebook server") for event in events), events
    assert any("Cluster job running" in event for event in events), events

    # A hub restart rebuilds the child from the saved state: the job is still the server.
    hub.restart()
    assert slurm.jobs() == {job: "RUNNING"}
    with hub.api() as api:
        server = api.get(f"/users/{student.name}").json()["servers"][""]
        assert server["ready"], server
        assert server["state"]["multiplespawner"]["child_state"]["job_id"] == job
    assert notebook_status(hub, student.name).status_code == 200

    with hub.api() as api:
        assert api.delete(f"/users/{student.name}/server").status_code in (202, 204)
    wait_stopped(hub, student.name)
    slurm.wait_no_jobs()


def spawn_progress(hub: Hub, user: str, events: list[str], timeout: float = 120):
    """Follow the progress stream of a spawn already requested; (ready, failure message)."""
    import json

    deadline = time.monotonic() + timeout
    with hub.api() as api:
        while time.monotonic() < deadline:
            with api.stream("GET", f"/users/{user}/server/progress", timeout=timeout) as stream:
                for line in stream.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if event.get("message"):
                        events.append(event["message"])
                    if event.get("ready"):
                        return True, ""
                    if event.get("failed"):
                        return False, event.get("message", "")
            time.sleep(0.2)
    raise TimeoutError(f"{user}'s spawn neither finished nor failed in {timeout} s")
