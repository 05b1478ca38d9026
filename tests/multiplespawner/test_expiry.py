"""Session length is enforced: the server stops and its resource goes, across hub restarts too.

``session_unit_seconds`` shortens a minute for the tests; everything else is the real path.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from multiplespawner.expiry import NOTICE_PATHS, iso
from tests.harness.process import server_environment
from tests.multiplespawner.conftest import LOCAL, VM, hub_config, login, make_setup, wait_stopped
from tests.multiplespawner.test_spawn import start


def expiry_config(unit: float, warning_minutes: float = 2) -> str:
    return f"""
c.MultipleSpawner.session_unit_seconds = {unit}
c.MultipleSpawner.session_warning_minutes = {warning_minutes}
"""


def saved_end(hub, user: str) -> float:
    state = hub.api().get(f"/users/{user}").json()["servers"][""]["state"]
    return state["session_end"]["end"]


def test_a_session_stops_at_its_end_and_the_server_was_told_when(tmp_path: Path, hub_factory):
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup, expiry_config(unit=10)))  # 5 minutes = 50 s
    login(hub, "alice")
    ok, message = start(hub, "alice", {**LOCAL, "minutes": 5})
    assert ok, message + "\n" + hub.log()[-3000:]
    end = saved_end(hub, "alice")
    env = server_environment("alice", api_url=hub.api_url)
    assert env["GRIDHUB_SESSION_END"] == iso(end)
    assert datetime.fromisoformat(env["GRIDHUB_SESSION_WARNING"]).timestamp() == end - 20
    assert end - time.time() <= 50
    # JupyterLab finds the session notice (extension and its server config) first on its paths.
    for variable, directory in NOTICE_PATHS.items():
        assert env[variable].split(":")[0] == directory
    assert setup.live_records() == [("local", "alice", "running")]

    wait_stopped(hub, "alice", timeout=end - time.time() + 30)
    stopped_at = time.time()
    assert stopped_at >= end, "stopped before the session's end"
    log = hub.log()
    assert "alice: session ends at" in log  # the warning came first
    assert log.index("alice: session ends at") < log.index("alice: session ended at")
    assert setup.live_records() == []  # the resource went with it
    model = hub.api().get("/users/alice").json()
    assert model["servers"] == {}


def test_a_vm_session_expires_after_a_hub_restart_and_the_vm_is_gone(tmp_path: Path, hub_factory):
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup, expiry_config(unit=30)))  # 5 minutes = 150 s
    login(hub, "bob")
    ok, message = start(hub, "bob", {**VM, "minutes": 5})
    assert ok, message + "\n" + hub.log()[-3000:]
    end = saved_end(hub, "bob")
    assert len(setup.sandbox_hosts_alive()) == 1

    hub.restart()  # mid-session: the new hub re-arms the timer from the saved state
    assert time.time() < end, "the restart took longer than the session; make the unit longer"
    assert hub.api().get("/users/bob").json()["servers"][""]["ready"]
    wait_stopped(hub, "bob", timeout=end - time.time() + 60)
    assert time.time() >= end
    assert "bob: session ended at" in hub.log().split("JupyterHub is now running")[-1]
    assert setup.sandbox_hosts_alive() == []
    assert setup.live_records() == []


def test_a_session_that_ended_while_the_hub_was_down_stops_when_it_is_back(
    tmp_path: Path, hub_factory
):
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup, expiry_config(unit=2)))  # 5 minutes = 10 s
    login(hub, "carol")
    ok, message = start(hub, "carol", {**LOCAL, "minutes": 5})
    assert ok, message + "\n" + hub.log()[-3000:]
    end = saved_end(hub, "carol")
    hub.stop()
    while time.time() < end + 1:
        time.sleep(0.5)
    hub.start()
    wait_stopped(hub, "carol", timeout=60)
    assert setup.live_records() == []
    try:
        server_environment("carol", timeout=2, api_url=hub.api_url)
    except AssertionError:
        pass  # no notebook process is left
    else:
        raise AssertionError("carol's notebook still runs after her session ended")
