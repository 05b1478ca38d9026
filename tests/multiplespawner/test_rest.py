"""The REST API: the same validation as the form (400 with the reason, nothing ordered), defaults
for ``{}``, a schema endpoint, saved options that outlive their deployment, and config files
edited while the hub runs."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.multiplespawner.conftest import (
    DEPLOYMENTS,
    LOCAL,
    VM,
    hub_config,
    login,
    make_setup,
    server_status,
    wait_stopped,
    write_json,
)

RULES = """
c.JupyterHub.load_groups = {"course-a": {"users": ["bob"]}}
c.MultipleSpawner.access_rules = {
    "course-a": {"deployments": ["local_machine"], "limits": {"cpu": 1, "gpus": 0, "minutes": 90}},
}
"""


def user_token(hub, user: str) -> str:
    response = hub.api().post(f"/users/{user}/tokens", json={"note": "test"})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def schema(hub, token: str | None = None, **params) -> dict:
    response = hub.api(token).get("/multiplespawner/options", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_rest_options_are_validated_before_anything_is_ordered(tmp_path: Path, hub_factory):
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup, RULES))
    for user in ("alice", "bob", "admin"):
        login(hub, user)

    # What each may choose, discoverable: bob only what course-a allows, admin everything.
    bob = user_token(hub, "bob")
    bobs = schema(hub, bob)
    assert bobs["properties"]["deployment"]["enum"] == ["local_machine"]
    assert bobs["properties"]["cpu"]["maximum"] == 1
    assert hub.api(bob).get("/multiplespawner/options", params={"user": "admin"}).status_code == 403
    admins = schema(hub, user="admin")
    assert admins["properties"]["deployment"]["enum"] == ["local_machine", "sandbox_debian"]
    # alice is in no group: with rules, she may start nothing, and is told why.
    response = hub.api().get("/multiplespawner/options", params={"user": "alice"})
    assert response.status_code == 403 and "no provider" in response.json()["message"]

    for options, reason in [
        ({**LOCAL, "cpu": 2}, "Number of CPU cores (cpu) must be from 1 to 1"),
        ({**VM}, "is unknown or not open to you"),
        ({**LOCAL, "gpus": 1}, "must be from 0 to 0"),
        ({"colour": "red"}, "Unknown option 'colour'"),
        ({**LOCAL, "minutes": "ten"}, "must be a whole number"),
    ]:
        response = hub.api().post("/users/bob/server", json={"user_options": options})
        assert response.status_code == 400, (options, response.text)
        assert reason in response.json()["message"], response.json()
    response = hub.api().post("/users/alice/server", json={"user_options": {}})
    assert response.status_code == 403, response.text
    assert setup.live_records() == [] and setup.sandbox_hosts_alive() == []
    assert not setup.records.exists() or setup.live_records() == []

    # {} (the admin page's start button) gets the defaults.
    response = hub.api().post("/users/bob/server", json={})
    assert response.status_code in (201, 202), response.text
    assert server_status(hub, "bob", timeout=90).status_code == 200
    saved = hub.api().get("/users/bob").json()["servers"][""]["user_options"]
    assert saved == {**LOCAL, "cpu": 1, "memory_gb": 1.0, "gpus": 0, "minutes": 60}
    hub.api().delete("/users/bob/server")
    wait_stopped(hub, "bob")


def test_config_files_edited_while_the_hub_runs(tmp_path: Path, hub_factory):
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup))
    login(hub, "carol")
    response = hub.api().post("/users/carol/server", json={"user_options": LOCAL})
    assert response.status_code in (201, 202), response.text
    assert server_status(hub, "carol", timeout=90).status_code == 200
    hub.api().delete("/users/carol/server")
    wait_stopped(hub, "carol")

    # The deployment carol used is renamed: the next form and spawn see the new file at once.
    renamed = {**DEPLOYMENTS, "bare_metal": [{"name": "local_box", "provider": "local"}]}
    setup.deployment_file.write_text(yaml.safe_dump(renamed))
    assert schema(hub, user="carol")["properties"]["deployment"]["enum"] == [
        "local_box",
        "sandbox_debian",
    ]
    # Her saved options name the vanished deployment: a start without options falls back.
    response = hub.api().post("/users/carol/server")
    assert response.status_code in (201, 202), response.text
    assert server_status(hub, "carol", timeout=90).status_code == 200
    assert "no longer fit" in hub.log()
    hub.api().delete("/users/carol/server")
    wait_stopped(hub, "carol")

    # An invalid edit is rejected with the bad key in the log; the last good one stays.
    setup.write_templates([{"name": "broken", "resource_type": "bare_metal"}])
    assert schema(hub, user="carol")["properties"]["deployment"]["enum"] == [
        "local_box",
        "sandbox_debian",
    ]
    deadline = time.monotonic() + 10
    while "templates[0].providers: missing" not in hub.log():
        assert time.monotonic() < deadline, hub.log()[-2000:]
        time.sleep(0.2)
    assert "keeping the last good one" in hub.log()


def test_an_invalid_config_stops_the_hub_at_start(tmp_path: Path, hub_factory):
    setup = make_setup(tmp_path / "ms")
    write_json(
        setup.template_file,
        [
            {
                "name": "x",
                "resource_type": "bare_metal",
                "providers": ["local"],
                "spawner": {
                    "class": "jupyterhub.spawner.LocalProcessSpawner",
                    "kwargs": {"cmd": ["{nope}"]},
                },
            }
        ],
    )
    hub = hub_factory(hub_config(setup), start=False)
    try:
        hub.start(timeout=60)
    except RuntimeError as error:
        message = str(error)
    else:
        raise AssertionError("the hub started with an invalid template")
    assert "MultipleSpawner configuration is invalid" in message
    assert "templates[0].spawner.kwargs.cmd[0]: unknown placeholder {nope}" in message


def local_limits(hub) -> dict:
    offers = schema(hub, user="admin")["x-offers"]
    return next(o["limits"] for o in offers if o["deployment"] == "local_machine")


def test_the_local_providers_limits_come_from_corcs_pool_inventory(tmp_path: Path, hub_factory):
    setup = make_setup(tmp_path / "ms", gpus=2)  # one host: 2 CPUs, 4 GB, 2 GPUs
    hub = hub_factory(hub_config(setup))  # the spawner's own ceiling is 8 CPUs, 64 GB, 8 GPUs
    login(hub, "admin")
    assert local_limits(hub) == {"cpu": 2, "memory_gb": 4.0, "gpus": 2, "minutes": 1440}
    response = hub.api().post("/users/admin/server", json={"user_options": {**LOCAL, "cpu": 3}})
    assert response.status_code == 400
    assert "Number of CPU cores (cpu) must be from 1 to 2" in response.json()["message"]

    # The pool grows (a second host): the next request sees it, no hub restart.
    config = yaml.safe_load(setup.corc_config.read_text())
    hosts = config["corc"]["providers"]["local"]["hosts"]
    hosts.append({"name": "big", "address": "127.0.0.2", "cpu": 6, "memory_gb": 3, "gpus": 0})
    setup.corc_config.write_text(yaml.safe_dump(config))
    assert local_limits(hub) == {"cpu": 6, "memory_gb": 4.0, "gpus": 2, "minutes": 1440}
    # The sandbox VM's limits are not the pool's.
    offers = schema(hub, user="admin")["x-offers"]
    vm = next(o["limits"] for o in offers if o["deployment"] == "sandbox_debian")
    assert vm["cpu"] == 8 and vm["gpus"] == 8
    assert setup.live_records() == []
