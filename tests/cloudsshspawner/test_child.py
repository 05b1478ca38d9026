"""CloudSSHSpawner as the child of another spawner, built as its docstring says."""

from __future__ import annotations

import socket
import time

from tests.cloudsshspawner.conftest import (
    AUTH_CONFIG,
    SINGLEUSER,
    Remote,
    login,
    spawner_state,
    status,
)
from tests.cloudsshspawner.test_security import notebook_env
from tests.cloudsshspawner.test_spawn import notebook_pid, processes
from tests.harness.hub import spawn

PARENT = """
from jupyterhub.spawner import Spawner
from cloudsshspawner import CloudSSHSpawner, SSHTarget


class ParentSpawner(Spawner):
    # Stands for the MultipleSpawner: it ordered a machine with two GPUs and runs the notebook there.
    child = None

    def _make_child(self):
        self.child = CloudSSHSpawner(
            target=SSHTarget(**TARGET),
            parent=self,
            config=self.config,
            user=self.user,
            hub=self.hub,
            authenticator=self.authenticator,
            orm_spawner=self.orm_spawner,
            api_token=self.api_token,
            oauth_client_id=self.oauth_client_id,
            hub_connect_url=self.hub_connect_url,
            cert_paths=self.cert_paths,
            start_timeout=self.start_timeout,
            proxy_spec=self.proxy_spec,
            public_url=self.public_url,
            user_options=self.user_options,
        )
        return self.child

    def load_state(self, state):
        super().load_state(state)
        if state.get("child"):
            self._make_child().load_state(state["child"])

    def get_state(self):
        state = super().get_state()
        if self.child is not None:
            state["child"] = self.child.get_state()
        return state

    def clear_state(self):
        super().clear_state()
        if self.child is not None:
            self.child.clear_state()

    async def start(self):
        self._make_child()  # the api_token is known only now
        self._events.append({"progress": 5, "message": "Parent: ordered a machine"})
        return await self.child.start()

    async def poll(self):
        return 0 if self.child is None else await self.child.poll()

    async def stop(self, now=False):
        if self.child is not None:
            await self.child.stop(now)

    _events = []

    async def progress(self):
        for event in self._events:
            yield event
        if self.child is not None:
            self.child._spawn_future = self._spawn_future
            async for event in self.child.progress():
                yield event


c.JupyterHub.spawner_class = ParentSpawner
c.CloudSSHSpawner.remote_command = [SINGLEUSER]
c.CloudSSHSpawner.remote_root = REMOTE_ROOT
c.CloudSSHSpawner.local_forward_ip = "127.0.0.2"
c.CloudSSHSpawner.remote_environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "1"}
c.Spawner.args = ["--allow-root"]
c.JupyterHub.cleanup_servers = False
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
"""


def test_a_parent_spawner_runs_the_notebook_through_a_child(remote: Remote, hub_factory) -> None:
    target = {
        "host": remote.host.address,
        "port": remote.host.port,
        "username": "root",
        "key_file": str(remote.key),
        "host_key": remote.host.host_public_key,
        "gpu_ids": ["0", "2"],
    }
    config = (
        f"TARGET = {target!r}\nREMOTE_ROOT = {str(remote.root)!r}\nSINGLEUSER = {SINGLEUSER!r}\n"
        + AUTH_CONFIG
        + PARENT
    )
    hub = hub_factory(config)
    login(hub, "alice")
    events: list[str] = []
    ok, message = spawn(hub, "alice", events=events)
    assert ok, message
    # The child's progress streams through the parent's.
    assert "Parent: ordered a machine" in events, events
    assert any(
        e.startswith(f"Waiting for the notebook server on {remote.host.address}") for e in events
    )
    assert status(hub, "alice").status_code == 200
    env = notebook_env(remote, notebook_pid(remote))
    assert env["CUDA_VISIBLE_DEVICES"] == "0,2"
    # The local forward listens where it was told to (the proxy may be in another container).
    local_port = spawner_state(hub, "alice")["child"]["local_port"]
    with socket.create_connection(("127.0.0.2", local_port), timeout=5):
        pass
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", local_port)) != 0
    # A hub restart keeps the session (the parent reloads the child from its state).
    hub.restart()
    assert status(hub, "alice", timeout=40).status_code == 200
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 30
    while processes(remote, b"jupyterhub-singleuser") or remote.servers():
        assert time.monotonic() < deadline, "the child did not stop the notebook"
        time.sleep(0.3)
