"""Persistent homes for the MultipleSpawner's ephemeral children (VMs and containers).

With ``c.MultipleSpawner.persistent_home_root`` set, every user's files live on the hub side in
``<root>/<username>`` (mode 0700), whichever resource their notebook runs on:

- a CloudSSHSpawner child (a VM) mounts that directory over its SSH connection (its own
  ``persistent_home_root``, which this sets unless the template or ``c.CloudSSHSpawner`` chose a
  home already);
- a DockerSpawner child (a container) gets it as a bind mount at ``persistent_home_container_path``,
  which is also the notebook's directory and ``$HOME``, so a removed container loses nothing.

Children of other classes (this machine, batch systems) are left alone: their homes are not
ephemeral, or are the site's shared file system.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jupyterhub.spawner import Spawner
from traitlets import TraitError, Unicode, validate
from traitlets.config import Configurable

DOCKER_CLASS = "DockerSpawner"


class HomeError(RuntimeError):
    """A persistent home could not be prepared; the message says why."""


def user_directory(root: str, username: str) -> Path:
    """``root/username``; refuses a name that would leave ``root`` (JupyterHub allows ``/``)."""
    if not username or "/" in username or "\0" in username or username in (".", ".."):
        raise HomeError(f"the user name {username!r} cannot name a home directory")
    return Path(root) / username


def is_docker(spawner: Spawner) -> bool:
    """True for DockerSpawner and its subclasses (SwarmSpawner, SystemUserSpawner)."""
    return any(klass.__name__ == DOCKER_CLASS for klass in type(spawner).__mro__)


def has_own_home(spawner: Spawner) -> bool:
    """True for a spawner that mounts a persistent home itself (CloudSSHSpawner)."""
    return "persistent_home_root" in spawner.trait_names()


def prepare_directory(root: str, username: str, owner: tuple[int, int] | None) -> Path:
    """Create ``root/username`` (0700, given to ``owner`` if set). Blocking: run it in a thread."""
    directory = user_directory(root, username)
    Path(root).mkdir(mode=0o711, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    if owner is not None:
        os.chown(directory, *owner)
    os.chmod(directory, 0o700)
    return directory


class PersistentHomes(Configurable):
    """Mixed into a parent spawner: gives its ephemeral children one persistent home per user."""

    user: Any  # set by JupyterHub on the spawner

    persistent_home_root = Unicode(
        "",
        config=True,
        help="""Hub-side directory holding each user's persistent home in ``<root>/<username>``
        (mode 0700), offered to every child that runs on a VM (CloudSSHSpawner: mounted over SSH)
        or in a container (DockerSpawner: a bind mount). Empty: children keep their own
        settings.""",
    )
    persistent_home_container_path = Unicode(
        "/home/jovyan",
        config=True,
        help="""Where a container sees the persistent home; it is also the notebook's directory
        and ``$HOME`` there.""",
    )
    persistent_home_owner = Unicode(
        "",
        config=True,
        help="""``uid:gid`` the home directory is given before a container starts: the uid the
        container's notebook runs as (e.g. ``1000:100`` for the Jupyter Docker Stacks' jovyan).
        Empty: it stays owned by the hub's uid, which containers running as that uid can use.
        A VM's mount serves the directory as the hub's uid (a user namespace maps no other), so a
        home shared by VMs and containers must keep the hub's uid.""",
    )

    @validate("persistent_home_owner")
    def _check_owner(self, proposal: Any) -> str:
        value = proposal["value"].strip()
        if value and self._owner_ids(value) is None:
            raise TraitError(
                f"MultipleSpawner.persistent_home_owner must be 'uid:gid' numbers, got {value!r}"
            )
        return value

    @staticmethod
    def _owner_ids(value: str) -> tuple[int, int] | None:
        uid, _, gid = value.partition(":")
        if not (uid.isdigit() and gid.isdigit()):
            return None
        return int(uid), int(gid)

    def persistent_home_apply(self, child: Spawner) -> None:
        """Point a just-built child at the user's persistent home (no I/O)."""
        if not self.persistent_home_root:
            return
        if has_own_home(child):
            if not (child.persistent_home_root or child.persistent_home_sftp):
                child.persistent_home_root = self.persistent_home_root  # type: ignore[attr-defined]
        elif is_docker(child):
            directory = str(user_directory(self.persistent_home_root, self.user.name))
            # DockerSpawner formats volume names with str.format: keep braces in a name literal.
            source = directory.replace("{", "{{").replace("}", "}}")
            path = self.persistent_home_container_path
            volumes = dict(child.volumes)  # type: ignore[attr-defined]
            volumes[source] = {"bind": path, "mode": "rw"}
            child.volumes = volumes  # type: ignore[attr-defined]
            child.notebook_dir = path
            child.environment = {**child.environment, "HOME": path}

    async def persistent_home_prepare(self, child: Spawner) -> None:
        """Before a container child starts: create the user's directory on the hub side."""
        if not self.persistent_home_root or not is_docker(child):
            return
        owner = self._owner_ids(self.persistent_home_owner) if self.persistent_home_owner else None
        try:
            await asyncio.to_thread(
                prepare_directory, self.persistent_home_root, self.user.name, owner
            )
        except (OSError, HomeError) as error:
            raise HomeError(f"your persistent home could not be prepared: {error}") from None
