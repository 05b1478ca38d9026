"""The network fails under a running notebook: the tunnel heals, or the pieces are cleaned up."""

from __future__ import annotations

import time

from tests.cloudsshspawner.conftest import Remote, cloudssh_config, login, spawner_state, status
from tests.cloudsshspawner.test_spawn import notebook_pid, processes
from tests.cloudsshspawner.test_tunnel import sessions
from tests.harness.hub import Hub, spawn

# Quicker than the defaults (5 s x 3), not so quick that a loaded 2-core machine trips it.
FAST = """
c.CloudSSHSpawner.keepalive_interval = 2
c.CloudSSHSpawner.keepalive_count = 3
c.CloudSSHSpawner.reconnect_max_delay = 1
"""


def activity_after(hub: Hub, timeout: float = 20) -> None:
    """Wait for a new activity report from the notebook (it goes through the reverse forward)."""
    before = hub.log().count("POST /hub/api/users/alice/activity")
    deadline = time.monotonic() + timeout
    while hub.log().count("POST /hub/api/users/alice/activity") <= before:
        assert time.monotonic() < deadline, "no activity from the notebook"
        time.sleep(0.3)


def test_the_session_comes_back_with_the_link(remote: Remote, hub_factory) -> None:
    hub = hub_factory(cloudssh_config(remote, FAST))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    pid = notebook_pid(remote)
    remote.host.set_link(False)
    time.sleep(9)  # longer than the keepalive bound: the tunnel has given the connection up
    remote.host.set_link(True)
    restored = time.monotonic()
    response = status(hub, "alice", timeout=30)
    assert response.status_code == 200, response.text
    assert time.monotonic() - restored < 15
    assert notebook_pid(remote) == pid
    assert "re-established" in hub.log()
    activity_after(hub)


def test_a_vanished_old_session_does_not_block_the_new_one(remote: Remote, hub_factory) -> None:
    """All packets of the hub's SSH connection are dropped, as when the hub's address changes:
    sshd keeps the old session and its port, and the reconnect works at once regardless."""
    hub = hub_factory(cloudssh_config(remote, FAST))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    pid = notebook_pid(remote)
    hub_port_file = remote.root / "alice-default" / "hub_port"
    old_port = hub_port_file.read_text().strip()
    old_sessions = set(sessions(remote))
    for client_port in remote.host.ssh_client_ports():  # the hub's and its ssh processes'
        remote.host.silence_connection(client_port)
    deadline = time.monotonic() + 20
    while hub_port_file.read_text().strip() == old_port:
        assert time.monotonic() < deadline, "the tunnel did not reconnect"
        time.sleep(0.1)
    assert status(hub, "alice", timeout=20).status_code == 200
    activity_after(hub)  # through the agent, to the new connection's port
    assert old_sessions & set(sessions(remote)), "the old session is gone: nothing was proven"
    assert f"127.0.0.1:{old_port} " in remote.host.run("ss -ltnH")
    assert notebook_pid(remote) == pid


def test_the_remote_agent_stops_a_notebook_whose_hub_is_gone(remote: Remote, hub_factory) -> None:
    extra = FAST + "c.CloudSSHSpawner.remote_grace_period = 8\n"
    extra += "c.CloudSSHSpawner.remote_check_interval = 1\n"
    hub = hub_factory(cloudssh_config(remote, extra))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    time.sleep(10)  # a healthy hub is never given up on
    assert processes(remote, b"jupyterhub-singleuser")
    remote.host.set_link(False)
    try:
        deadline = time.monotonic() + 40
        while processes(remote, b"jupyterhub-singleuser") or remote.servers():
            assert time.monotonic() < deadline, "the notebook outlived the grace period"
            time.sleep(0.3)
    finally:
        remote.host.set_link(True)


def test_stopping_an_unreachable_host_is_bounded_and_finished_later(
    remote: Remote, hub_factory
) -> None:
    hub = hub_factory(cloudssh_config(remote, FAST))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    old = notebook_pid(remote)
    remote.host.set_link(False)
    try:
        start = time.monotonic()
        assert hub.api().delete("/users/alice/server").status_code in (202, 204)
        while hub.api().get("/users/alice").json()["servers"]:
            assert time.monotonic() - start < 30, "the stop did not end"
            time.sleep(0.3)
        (record,) = spawner_state(hub, "alice")["unfinished"]
        assert record["pid"] == old and record["target"]["host"] == remote.host.address
        assert processes(remote, b"jupyterhub-singleuser") == [old]  # still running there
    finally:
        remote.host.set_link(True)
    # The next start finishes the job: the old notebook is stopped, the new one runs.
    assert spawn(hub, "alice")[0]
    assert processes(remote, b"jupyterhub-singleuser") != [old]
    assert old not in processes(remote, b"jupyterhub-singleuser")
    assert "unfinished" not in spawner_state(hub, "alice")
    assert "left from an earlier stop" in hub.log()
