"""The child is built as JupyterHub builds a spawner, and gets what the hub gives the parent.

The forwarded lists are checked against JupyterHub's own code (``User._new_spawner`` and
``User.spawn``), so a JupyterHub that starts passing something new fails here first.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

from jupyterhub.handlers.base import BaseHandler
from jupyterhub.spawner import Spawner
from jupyterhub.user import User
from traitlets import Unicode
from traitlets.config import Config

from multiplespawner.child import (
    CONSTRUCTOR_ATTRIBUTES,
    LATER_ATTRIBUTES,
    NOT_COPIED,
    build_child,
    choice_kwargs,
)
from multiplespawner.config import Deployment
from multiplespawner.options import Choice


def _tree(function) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


def constructor_arguments_of_new_spawner() -> set[str]:
    """Every keyword User._new_spawner puts into the spawner's constructor arguments."""
    names: set[str] = set()
    for node in ast.walk(_tree(User._new_spawner)):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if isinstance(call.func, ast.Name) and call.func.id == "dict":
                names |= {keyword.arg for keyword in call.keywords if keyword.arg}
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "spawn_kwargs"
                    and isinstance(target.slice, ast.Constant)
                ):
                    names.add(target.slice.value)
    return names


def attributes_set_on_the_spawner(function) -> set[str]:
    """``spawner.<name> = ...`` (and ``spawner._spawn_future = ...``) in a hub function."""
    names = set()
    for node in ast.walk(_tree(function)):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            for item in ast.walk(target):
                if (
                    isinstance(item, ast.Attribute)
                    and isinstance(item.value, ast.Name)
                    and item.value.id == "spawner"
                    and isinstance(item.ctx, ast.Store)
                ):
                    names.add(item.attr)
    return names


def test_the_child_gets_every_constructor_argument_jupyterhub_passes() -> None:
    expected = constructor_arguments_of_new_spawner()
    assert "orm_spawner" in expected and "oauth_client_id" in expected  # the parse works
    assert expected == set(CONSTRUCTOR_ATTRIBUTES)


def test_every_attribute_the_hub_sets_later_is_pushed_on_or_explained() -> None:
    later = attributes_set_on_the_spawner(User.spawn) | attributes_set_on_the_spawner(
        BaseHandler.spawn_single_user
    )
    assert {"api_token", "handler", "_spawn_future"} <= later  # the parse works
    unexplained = later - set(LATER_ATTRIBUTES) - set(NOT_COPIED)
    assert not unexplained, f"set by the hub, not forwarded: {sorted(unexplained)}"


class Recorder(Spawner):
    """A child that remembers how it was constructed."""

    ip = Unicode("0.0.0.0", config=True)  # noqa: S104 - a child-class default, like KubeSpawner's
    seen: dict = {}

    def __init__(self, **kwargs):
        Recorder.seen = dict(kwargs)
        super().__init__(**kwargs)

    async def start(self):
        return ("127.0.0.1", 1)

    async def stop(self, now=False):
        return None

    async def poll(self):
        return 0


class Parent(Spawner):
    async def start(self):
        return None

    async def stop(self, now=False):
        return None

    async def poll(self):
        return 0


def test_values_reach_the_child_and_precedence_holds() -> None:
    config = Config()
    config.Spawner.cmd = ["from-c-Spawner"]
    config.Spawner.mem_limit = "1G"
    config.Recorder.cmd = ["from-c-Recorder"]
    config.Recorder.default_url = "/lab"
    parent = Parent(config=config, oauth_client_id="jupyterhub-user-alice-gpu", ip="127.0.0.1")
    parent.api_token = "t" * 32
    parent.admin_access = True
    parent.cert_paths = {"keyfile": "/k"}
    parent._spawn_future = object()

    child = build_child(parent, Recorder, {"default_url": "/tree"})
    assert set(Recorder.seen) >= set(CONSTRUCTOR_ATTRIBUTES)
    assert child.oauth_client_id == "jupyterhub-user-alice-gpu"
    assert child.cmd == ["from-c-Recorder"]  # c.Recorder beats c.Spawner
    assert child.default_url == "/tree"  # template kwargs beat c.Recorder
    assert child.ip == "0.0.0.0"  # noqa: S104 - the child class default stays
    assert (child.api_token, child.admin_access, child.cert_paths) == (
        "t" * 32,
        True,
        {"keyfile": "/k"},
    )
    assert child._spawn_future is parent._spawn_future
    assert child.user_options == {}

    choice = Choice("p", "container", "img", cpu=2, memory_gb=1.5, gpus=1, minutes=90)
    kwargs = choice_kwargs(Recorder, choice, Deployment("img", "container", image="x/y:1"))
    child = build_child(parent, Recorder, {"cpu_limit": 8.0, **kwargs})
    assert child.cpu_limit == 2.0  # the user's validated choice has the last word
    assert child.mem_limit == int(1.5 * 1024**3)


def test_batch_and_kubernetes_children_get_the_choice_in_their_own_terms() -> None:
    from batchspawner import SlurmSpawner
    from kubespawner import KubeSpawner

    choice = Choice("p", "bare_metal", "d", cpu=4, memory_gb=8, gpus=1, minutes=90)
    kwargs = choice_kwargs(SlurmSpawner, choice, Deployment("d", "bare_metal"))
    assert (kwargs["req_nprocs"], kwargs["req_memory"], kwargs["req_runtime"]) == (
        "4",
        "8G",
        "01:30:00",
    )
    assert kwargs["req_ngpus"] == "1"

    choice = Choice("p", "container", "py", cpu=2, memory_gb=4, gpus=1, minutes=60)
    kwargs = choice_kwargs(KubeSpawner, choice, Deployment("py", "container", image="jupyter/x:1"))
    assert kwargs["image"] == "jupyter/x:1"
    assert kwargs["cpu_limit"] == 2.0 and kwargs["mem_limit"] == 4 * 1024**3
    assert kwargs["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    for name in kwargs:  # each is a real KubeSpawner setting
        assert KubeSpawner.class_traits()[name].metadata.get("config"), name


class Delegate(Recorder):
    calls: list = []

    async def rename(self, old_name, new_name):
        Delegate.calls.append(("rename", old_name, new_name))

    def delete_forever(self):
        Delegate.calls.append(("delete_forever",))

    async def get_url(self):
        return "http://127.0.0.1:4321/user/alice/"


async def test_the_parent_delegates_to_its_child() -> None:
    from multiplespawner import MultipleSpawner

    parent = MultipleSpawner(config=Config())
    parent.child = build_child(parent, Delegate, {"will_resume": True})
    parent.port = 4321  # as batchspawner's API sets it on the spawner that owns the token
    assert parent.child.port == 4321
    await parent.rename("old", "new")
    await parent.delete_forever()
    assert Delegate.calls == [("rename", "old", "new"), ("delete_forever",)]
    assert await parent.get_url() == "http://127.0.0.1:4321/user/alice/"
    # With no child (nothing started or restored) nothing is held: poll says stopped.
    parent.child = None
    assert await parent.poll() == 0


def test_class_config_is_loaded_before_template_values_reach_the_child() -> None:
    """DockerSpawner names its container when ``image`` is set, from ``name_template``: set in
    the constructor (before config), ``c.DockerSpawner.name_template`` would be ignored."""
    from types import SimpleNamespace

    from dockerspawner import DockerSpawner

    config = Config()
    config.DockerSpawner.name_template = "course-{username}"
    parent = Parent(config=config, user=SimpleNamespace(name="alice", id=7), orm_spawner=None)
    choice = Choice("p", "container", "hpc", cpu=1, memory_gb=1, gpus=0, minutes=60)
    kwargs = choice_kwargs(DockerSpawner, choice, Deployment("hpc", "container", image="x/hpc:1"))
    child = build_child(parent, DockerSpawner, kwargs)
    assert child.image == "x/hpc:1"
    assert child.object_name == "course-alice"
