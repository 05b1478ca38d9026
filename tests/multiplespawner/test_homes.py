"""Persistent homes through the MultipleSpawner: nothing a user writes goes with the resource.

``c.MultipleSpawner.persistent_home_root`` keeps every user's files on the hub side; a VM child
(CloudSSHSpawner) mounts them over SSH, a container child (DockerSpawner) gets a bind mount.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.cloudsshspawner.test_persistent_home import contents
from tests.multiplespawner.conftest import VM, hub_config, login, make_setup, wait_stopped
from tests.multiplespawner.test_docker_child import (  # noqa: F401 - the fixture
    CONTAINER,
    docker_config,
    docker_engine,
)
from tests.multiplespawner.test_expiry import expiry_config, saved_end
from tests.multiplespawner.test_spawn import start

TEXT = {"type": "file", "format": "text"}


def homes_config(homes: Path) -> str:
    return f"\nc.MultipleSpawner.persistent_home_root = {str(homes)!r}\n"


def test_a_vm_session_expires_and_the_next_vm_finds_every_file(tmp_path: Path, hub_factory):
    homes, mount = tmp_path / "homes", tmp_path / "mnt"
    # The VMs share this machine's file system: the mount point is the test's own.
    setup = make_setup(tmp_path / "ms", vm_kwargs={"persistent_home_mount": str(mount)})
    hub = hub_factory(hub_config(setup, expiry_config(unit=15) + homes_config(homes)))  # 75 s
    login(hub, "dave")
    ok, message = start(hub, "dave", {**VM, "minutes": 5})
    assert ok, message + "\n" + hub.log()[-3000:]
    end = saved_end(hub, "dave")
    (first_vm,) = setup.sandbox_hosts_alive()
    saved = contents(hub, "dave", "PUT", "notes.txt", json={**TEXT, "content": "kept"})
    assert saved.status_code in (200, 201), saved.text
    assert time.time() < end, "the write came after the session's end; make the unit longer"
    assert (homes / "dave" / "notes.txt").read_text() == "kept"
    assert "Mounted dave's persistent home (the hub's storage)" in hub.log()

    # The session ends: the server stops and the VM goes; the files stay on the hub side.
    wait_stopped(hub, "dave", timeout=end - time.time() + 60)
    assert time.time() >= end
    assert "dave: session ended at" in hub.log()
    assert setup.sandbox_hosts_alive() == []
    assert setup.live_records() == []
    assert (homes / "dave" / "notes.txt").read_text() == "kept"
    assert not (mount / "notes.txt").exists()  # nothing was written to the VM's own disk

    # A new session on a new VM finds them.
    ok, message = start(hub, "dave", {**VM, "minutes": 5})
    assert ok, message + "\n" + hub.log()[-3000:]
    (second_vm,) = setup.sandbox_hosts_alive()
    assert second_vm != first_vm
    read = contents(hub, "dave", "GET", "notes.txt")
    assert read.status_code == 200 and read.json()["content"] == "kept", read.text
    hub.api().delete("/users/dave/server")
    wait_stopped(hub, "dave")
    assert setup.sandbox_hosts_alive() == []


def test_a_removed_container_loses_nothing(docker_engine, hub_factory, tmp_path: Path):  # noqa: F811
    engine = docker_engine.engine
    homes = tmp_path / "homes"
    hub = hub_factory(
        docker_config(docker_engine) + homes_config(homes),
        env={"DOCKER_HOST": engine.host},
        start=False,
    )
    hub.start(timeout=180)  # right after an image build this 2-core machine is slow to import
    login(hub, "alice")
    login(hub, "bob")
    (homes / "bob").mkdir(parents=True)
    (homes / "bob" / "secret").write_text("bob's")

    ok, message = start(hub, "alice", {**CONTAINER, "cpu": 1, "memory_gb": 1})
    assert ok, message + "\n" + hub.log()[-3000:]
    (info,) = json.loads(engine.docker("inspect", "jupyter-alice").stdout)
    binds = {m["Source"]: m["Destination"] for m in info["Mounts"] if m["Type"] == "bind"}
    # Her own directory only (not the root of everyone's homes), as the container's home.
    assert binds[str(homes / "alice")] == "/home/jovyan", binds
    assert not [
        source for source in binds if source.startswith(str(homes)) and "alice" not in source
    ]
    assert "HOME=/home/jovyan" in info["Config"]["Env"]
    assert (homes / "alice").stat().st_mode & 0o777 == 0o700

    saved = contents(hub, "alice", "PUT", "notes.txt", json={**TEXT, "content": "kept"})
    assert saved.status_code in (200, 201), saved.text
    assert (homes / "alice" / "notes.txt").read_text() == "kept"
    listing = {item["name"] for item in contents(hub, "alice", "GET", "").json()["content"]}
    assert "secret" not in listing

    # The container is removed at stop; the next one finds the file.
    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")
    assert engine.docker("ps", "-aq").stdout.strip() == ""
    ok, message = start(hub, "alice", {**CONTAINER, "cpu": 1, "memory_gb": 1})
    assert ok, message + "\n" + hub.log()[-3000:]
    read = contents(hub, "alice", "GET", "notes.txt")
    assert read.status_code == 200 and read.json()["content"] == "kept", read.text
    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")


def test_children_get_the_home_unless_their_template_chose_one(tmp_path: Path):
    from types import SimpleNamespace

    import pytest
    from dockerspawner import DockerSpawner
    from jupyterhub.spawner import SimpleLocalProcessSpawner
    from traitlets import TraitError

    from cloudsshspawner import CloudSSHSpawner
    from multiplespawner.homes import PersistentHomes

    homes = PersistentHomes(persistent_home_root=str(tmp_path / "homes"))
    homes.user = SimpleNamespace(name="we{ird}")  # type: ignore[attr-defined]

    vm = CloudSSHSpawner()
    homes.persistent_home_apply(vm)
    assert vm.persistent_home_root == str(tmp_path / "homes")
    erda = {"host": "erda.example", "known_hosts": "/k", "password_key": "pw"}
    chosen = CloudSSHSpawner(persistent_home_sftp=erda)
    homes.persistent_home_apply(chosen)
    assert chosen.persistent_home_root == ""  # the template's external home stays

    container = DockerSpawner(volumes={"/srv/data": "/data"}, environment={"A": "1"})
    homes.persistent_home_apply(container)
    (source,) = set(container.volumes) - {"/srv/data"}
    # DockerSpawner formats volume names with str.format: the braces in the name survive it.
    assert source.format() == str(tmp_path / "homes" / "we{ird}")
    assert container.volumes[source] == {"bind": "/home/jovyan", "mode": "rw"}
    assert container.notebook_dir == "/home/jovyan"
    assert container.environment == {"A": "1", "HOME": "/home/jovyan"}

    local = SimpleLocalProcessSpawner()
    homes.persistent_home_apply(local)
    assert local.notebook_dir == "" and local.environment == {}

    with pytest.raises(TraitError, match="'uid:gid' numbers"):
        PersistentHomes(persistent_home_owner="jovyan")
    for name in ("..", "a/b"):
        homes.user = SimpleNamespace(name=name)  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="cannot name a home directory"):
            homes.persistent_home_apply(DockerSpawner())
