"""Prometheus metrics on /hub/metrics: spawn durations, failures by step, live resources and age."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.multiplespawner.conftest import (
    DEPLOYMENTS,
    LOCAL,
    hub_config,
    login,
    make_setup,
    templates,
    wait_stopped,
)
from tests.multiplespawner.test_spawn import start

BROKEN = {"provider": "elsewhere", "resource_type": "bare_metal", "deployment": "broken_machine"}
METRICS_ROLE = """
c.MultipleSpawner.providers["elsewhere"] = {"corc": None, "display_name": "Elsewhere"}
c.JupyterHub.load_roles.append(
    {"name": "metrics-reader", "scopes": ["read:metrics"], "services": ["test-admin"]}
)
"""


def samples(hub) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /hub/metrics as {(name, sorted labels): value}."""
    response = httpx.get(
        f"{hub.url}/hub/metrics", headers={"Authorization": f"token {hub.api_token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_spawns_failures_and_live_resources_are_measured(tmp_path: Path, hub_factory) -> None:
    setup = make_setup(tmp_path / "ms")
    broken = {
        "name": "Broken machine",
        "resource_type": "bare_metal",
        "providers": ["elsewhere"],
        "spawner": {
            "class": "jupyterhub.spawner.SimpleLocalProcessSpawner",
            "kwargs": {"cmd": [str(tmp_path / "no-such-singleuser")]},
        },
    }
    setup.write_templates([*templates(tmp_path / "ms" / "home"), broken])
    deployments = {
        **DEPLOYMENTS,
        "bare_metal": [
            *DEPLOYMENTS["bare_metal"],
            {"name": "broken_machine", "provider": "elsewhere", "display_name": "Broken"},
        ],
    }
    setup.deployment_file.write_text(yaml.safe_dump(deployments))
    hub = hub_factory(hub_config(setup, METRICS_ROLE))
    local = {"provider": "local", "resource_type": "bare_metal"}

    before = samples(hub)
    assert value(before, "multiplespawner_spawn_duration_seconds_count", **local) in (None, 0)
    assert value(before, "multiplespawner_live_resources", **local) is None

    login(hub, "alice")
    ok, message = start(hub, "alice", {**LOCAL, "cpu": 1})
    assert ok, message + "\n" + hub.log()[-3000:]
    login(hub, "bob")
    ok, message = start(hub, "bob", BROKEN)
    assert not ok and "no-such-singleuser" in message, message

    found = samples(hub)
    assert value(found, "multiplespawner_spawn_duration_seconds_count", **local) == 1
    total = value(found, "multiplespawner_spawn_duration_seconds_sum", **local)
    assert total is not None and 0 < total < 120
    elsewhere = {"provider": "elsewhere", "resource_type": "bare_metal"}
    assert value(found, "multiplespawner_spawn_failures_total", step="start", **elsewhere) == 1
    assert value(found, "multiplespawner_spawn_failures_total", step="start", **local) is None
    assert value(found, "multiplespawner_spawn_duration_seconds_count", **elsewhere) in (None, 0)
    # alice's server is live; bob's failed start left nothing behind.
    assert value(found, "multiplespawner_live_resources", **local) == 1
    assert value(found, "multiplespawner_live_resources", **elsewhere) is None
    age = value(
        found, "multiplespawner_live_resource_age_seconds", user="alice", server="", **local
    )
    assert age is not None and age > 0
    assert not any(
        name == "multiplespawner_live_resource_age_seconds" and ("user", "bob") in labels
        for name, labels in found
    )

    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")
    after = samples(hub)
    assert value(after, "multiplespawner_live_resources", **local) is None
    assert value(after, "multiplespawner_spawn_duration_seconds_count", **local) == 1
