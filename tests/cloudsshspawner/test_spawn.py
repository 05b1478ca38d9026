"""Spawning on a remote host: reachable only through the tunnels, and nothing secret exposed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.cloudsshspawner.conftest import (
    SINGLEUSER,
    Remote,
    cloudssh_config,
    login,
    set_spawner_state,
    spawner_state,
    status,
    wait_for,
)
from tests.harness.hub import spawn


def processes(remote: Remote, marker: bytes) -> list[int]:
    """Processes of the remote host whose command line contains ``marker``. Namespaces share this
    machine's PIDs, so only those inside the host's own namespace count."""
    if remote.host.namespace:
        listing = subprocess.run(
            ["ip", "netns", "pids", remote.host.namespace], capture_output=True, text=True
        ).stdout.split()
    else:
        listing = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    found = []
    for pid in listing:
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def cut_ssh_connections(remote: Remote) -> None:
    """SIGKILL the host's sshd processes that serve connections (the hub's control connection and
    the tunnel's ssh processes alike); one that died with another is no error."""
    for pid in processes(remote, b"sshd: root"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def notebook_pid(remote: Remote) -> int:
    pids = processes(remote, b"jupyterhub-singleuser")
    assert len(pids) == 1, pids
    return pids[0]


def listening(remote: Remote, pid: int) -> list[str]:
    """The local addresses (``ip:port``) the remote process ``pid`` listens on over TCP."""
    lines = remote.host.run(f"ss -ltnpH | grep 'pid={pid},' || true").splitlines()
    return [line.split()[3] for line in lines if line.strip()]


def nothing_left(remote: Remote) -> bool:
    """No agent, notebook or server directory of any user on the remote host."""
    return not (
        processes(remote, b"agent.py")
        or processes(remote, b"jupyterhub-singleuser")
        or remote.servers()
    )


def test_spawn_reaches_the_notebook_and_the_notebook_reaches_the_hub(remote, hub_factory):
    hub = hub_factory(cloudssh_config(remote))
    login(hub, "alice")
    events: list[str] = []
    ok, message = spawn(hub, "alice", events=events)
    assert ok, message
    response = status(hub, "alice")
    assert response.status_code == 200, response.text
    assert "started" in response.json()
    host = remote.host.address
    for expected in (
        f"Connecting to {host}",
        f"Starting the notebook server on {host}",
        f"Waiting for the notebook server on {host}",
    ):
        assert any(event.startswith(expected) for event in events), events

    # The notebook's activity reports reach the hub through the reverse forward.
    deadline = time.monotonic() + 20
    while "POST /hub/api/users/alice/activity" not in hub.log():
        assert time.monotonic() < deadline, "no activity from the notebook"
        time.sleep(0.5)

    # The notebook listens on the remote host's loopback only.
    pid = notebook_pid(remote)
    addresses = listening(remote, pid)
    assert addresses, "the notebook listens nowhere"
    for address in addresses:
        assert address.startswith("127.0.0.1:"), address
    port = int(addresses[0].rsplit(":", 1)[1])
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex((remote.host.address, port)) != 0

    # The API token is on no command line, on either side.
    token = remote.host.run(f"tr '\\0' '\\n' < /proc/{pid}/environ | grep ^JUPYTERHUB_API_TOKEN=")
    token = token.strip().split("=", 1)[1]
    assert len(token) >= 32
    everything = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert token not in everything
    assert token not in remote.host.run("ps -eo args")
    # ... and its files are private.
    mode = remote.host.run(f"stat -c %a {remote.root}/alice-default").strip()
    assert mode == "700"

    # The hub's route leads to the local forward, which reaches the notebook ...
    local_port = spawner_state(hub, "alice")["local_port"]
    assert local_port > 0
    answer = httpx.get(
        f"http://127.0.0.1:{local_port}/user/alice/api/status",
        headers={"Authorization": f"token {hub.api_token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert "started" in answer.json()
    # ... and stopping ends the remote process and closes the local forward.
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    wait_for(lambda: nothing_left(remote), 30, "the notebook, its agent and its files gone")
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", local_port)) != 0


def test_two_users_at_once_on_one_host_each_get_a_notebook_on_its_own_unprivileged_port(
    remote, hub_factory
):
    """A shared SSH host serves many students: notebooks started together there must not fight
    over one port, and none may need root to bind it (ports below 1024). Each binds a port below
    the host's ephemeral range, so no outgoing connection can take it before the notebook does."""
    hub = hub_factory(cloudssh_config(remote))
    users = ("alice", "bob")
    for user in users:
        login(hub, user)
    with ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(lambda user: spawn(hub, user), users))
    assert all(ok for ok, _ in results), results
    for user in users:
        assert status(hub, user).status_code == 200, user
    ephemeral = int(remote.host.run("cat /proc/sys/net/ipv4/ip_local_port_range").split()[0])
    ports = set()
    for pid in processes(remote, b"jupyterhub-singleuser"):
        port = int(listening(remote, pid)[0].rsplit(":", 1)[1])
        assert 1024 <= port < ephemeral, port
        ports.add(port)
    assert len(ports) == len(users), ports
    for user in users:
        assert hub.api().delete(f"/users/{user}/server").status_code in (202, 204)


def test_a_changed_host_key_fails_the_spawn_clearly(remote, hub_factory, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    public = " ".join((tmp_path / "other_key.pub").read_text().split()[:2])
    remote.known_hosts.write_text(f"{remote.host.address} {public}\n")
    hub = hub_factory(cloudssh_config(remote))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "does not match the expected key" in message
    assert processes(remote, b"jupyterhub-singleuser") == []


def test_a_notebook_that_dies_without_its_log_is_reported_as_dead(remote, hub_factory):
    """Its files gone too (another stop removed them): the spawn still says the notebook died,
    not that some command on the host exited with 1."""
    script = 'rm -f "$(dirname "$JUPYTER_RUNTIME_DIR")/notebook.log"; exit 3'
    extra = f"c.CloudSSHSpawner.remote_command = ['/bin/sh', '-c', {script!r}]"
    hub = hub_factory(cloudssh_config(remote, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "the notebook server exited while starting" in message, message
    assert "no notebook.log" in message, message


def test_a_notebook_that_dies_at_start_leaves_nothing_behind(remote, hub_factory):
    extra = 'c.CloudSSHSpawner.remote_command = ["/bin/sh", "-c", "echo broken >&2; exit 3"]'
    hub = hub_factory(cloudssh_config(remote, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "the notebook server exited while starting" in message
    assert "broken" in message
    assert remote.servers() == []
    # No SSH connection is left open from the hub.
    time.sleep(0.5)
    assert processes(remote, b"sshd: root") == []


def test_dropped_ssh_connection_is_recovered(remote, hub_factory):
    hub = hub_factory(cloudssh_config(remote))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    assert status(hub, "alice").status_code == 200
    pid = notebook_pid(remote)
    cut_ssh_connections(remote)
    time.sleep(1)
    response = status(hub, "alice", timeout=40)
    assert response.status_code == 200, response.text
    assert notebook_pid(remote) == pid
    assert "re-established" in hub.log()


def test_hub_restart_keeps_the_session(remote, hub_factory):
    hub = hub_factory(cloudssh_config(remote))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    assert status(hub, "alice").status_code == 200
    pid = notebook_pid(remote)
    hub.restart()
    response = status(hub, "alice", timeout=40)
    assert response.status_code == 200, response.text
    assert notebook_pid(remote) == pid
    assert hub.api().get("/users/alice").json()["servers"][""]["ready"]
    # The notebook still reaches the hub after the restart.
    before = hub.log().count("POST /hub/api/users/alice/activity")
    deadline = time.monotonic() + 20
    while hub.log().count("POST /hub/api/users/alice/activity") <= before:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    hub.api().delete("/users/alice/server")


def slow_python(tmp_path: Path, seconds: float) -> str:
    """A ``remote_python`` whose start takes ``seconds``: the launcher waits for the agent meanwhile."""
    wrapper = tmp_path / "slow-python"
    wrapper.write_text(f'#!/bin/sh\nsleep {seconds}\nexec python3 "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_spawn_stopped_while_the_notebook_launches_leaves_nothing_behind(
    remote, hub_factory, tmp_path
):
    """The user stops a pending spawn while the launcher runs on the host (before the hub knows
    any pid). The launcher goes on without the hub; the stop must still find what it starts (it
    did not: agent and notebook ran on, unknown to the hub, holding its token)."""
    extra = f"c.CloudSSHSpawner.remote_python = {slow_python(tmp_path, 3)!r}"
    hub = hub_factory(cloudssh_config(remote, extra))
    login(hub, "alice")
    api = hub.api()
    assert api.post("/users/alice/server").status_code == 202
    wait_for(lambda: processes(remote, b"agent.py"), 30, "the launcher starting the agent")
    response = api.delete("/users/alice/server")
    assert response.status_code in (202, 204), hub.log()[-6000:]
    wait_for(lambda: nothing_left(remote), 60, "no agent, notebook or files left")
    time.sleep(4)  # past the slow start: nothing comes up late either
    assert nothing_left(remote)
    # The hub's own bookkeeping of the stop (route, database) may finish a moment later.
    wait_for(lambda: api.get("/users/alice").json()["servers"] == {}, 30, "the server stopped")
    assert spawn(hub, "alice")[0]  # and the next spawn works
    assert status(hub, "alice").status_code == 200


def test_what_an_earlier_launch_left_in_the_servers_directory_is_stopped_and_ignored(
    remote, hub_factory
):
    """A hub killed while the launcher ran never learned the pids, and left the directory with a
    live agent and notebook and their port files. The next launch of that server stops them and
    does not take the stale ports for its own."""
    directory = remote.root / "alice-default"
    directory.mkdir(parents=True, mode=0o700)
    old = [  # an agent and a notebook of this directory, as the launcher starts them
        subprocess.Popen(
            ["sh", "-c", "sleep 300; :", f"{directory}/agent.py"], start_new_session=True
        ),
        subprocess.Popen(
            ["sleep", "300"],
            env={**os.environ, "JUPYTER_RUNTIME_DIR": f"{directory}/runtime"},
            start_new_session=True,
        ),
    ]
    try:
        (directory / "agent.pid").write_text(f"{old[0].pid}\n")
        (directory / "notebook.pid").write_text(f"{old[1].pid}\n")
        (directory / "agent_port").write_text("1\n")
        (directory / "notebook_port").write_text("1\n")
        hub = hub_factory(cloudssh_config(remote))
        login(hub, "alice")
        ok, message = spawn(hub, "alice")
        assert ok, message
        assert status(hub, "alice").status_code == 200
        assert [process.poll() for process in old] == [-signal.SIGKILL] * 2
        (address,) = listening(remote, notebook_pid(remote))
        assert not address.endswith(":1"), address
    finally:
        for process in old:
            process.kill()
            process.wait()


def test_pids_that_now_name_other_processes_are_never_signalled(remote, hub_factory):
    """The host rebooted (or the old processes ended) and their pids went to other processes:
    the pid files left in the server's directory, and the pid in the hub's state, now name
    processes that are not this server's. The launch and the stop leave them alone (a root login
    SIGKILLed whatever process group had the pid), and poll() does not take them for the
    notebook."""
    directory = remote.root / "alice-default"
    directory.mkdir(parents=True, mode=0o700)
    others = [subprocess.Popen(["sleep", "300"], start_new_session=True) for _ in range(3)]
    try:
        (directory / "agent.pid").write_text(f"{others[0].pid}\n")
        (directory / "notebook.pid").write_text(f"{others[1].pid}\n")
        hub = hub_factory(cloudssh_config(remote))
        login(hub, "alice")
        ok, message = spawn(hub, "alice")
        assert ok, message
        assert status(hub, "alice").status_code == 200
        # The hub's state now names another process as the notebook (its pid was reused).
        real = notebook_pid(remote)
        os.kill(real, signal.SIGKILL)
        hub.stop()
        set_spawner_state(hub, "alice", pid=others[2].pid)
        hub.start()
        # poll() at the hub's start finds no notebook of this server behind that pid, and cleans up.
        wait_for(lambda: hub.api().get("/users/alice").json()["servers"] == {}, 60, "stopped")
        wait_for(lambda: nothing_left(remote), 60, "the agent and the files gone")
        assert [process.poll() for process in others] == [None] * 3
    finally:
        for process in others:
            process.kill()
            process.wait()


def test_stopping_ends_the_notebooks_whole_process_group(remote, hub_factory):
    """A kernel started by the notebook goes with it. The stop's group kill used ``kill -- -pid``,
    which dash (Debian's sh) rejects, so only the notebook itself was signalled."""
    extra = (
        "c.CloudSSHSpawner.remote_command ="
        f" ['/bin/sh', '-c', 'sleep 3217 & exec \"$@\"', 'sh', {SINGLEUSER!r}]"
    )
    hub = hub_factory(cloudssh_config(remote, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert ok, message
    (kernel,) = processes(remote, b"sleep\x003217")
    assert os.getpgid(kernel) == notebook_pid(remote)
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    wait_for(lambda: nothing_left(remote), 60, "the notebook, its agent and its files gone")
    assert processes(remote, b"sleep\x003217") == []
