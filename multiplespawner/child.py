"""The sub-spawner ("child"): built from a template, owned fully, given what the hub gives us.

The hub builds a spawner with the arguments of ``User._new_spawner`` and later sets a few more
attributes in ``User.spawn``; a wrapper must pass on all of them or the child breaks in ways that
are hard to see (empty server names, lost ports, no progress). The lists here are checked against
JupyterHub's own code by the tests.

Precedence of the child's settings: ``c.Spawner`` < ``c.<ChildClass>`` (both through ``config``)
< the template's ``kwargs`` < the validated user choices. Nothing else is linked, so child-class
defaults (KubeSpawner's ``ip``, a template's ``cmd``) are never overwritten.
"""

from __future__ import annotations

import inspect
from typing import Any, get_args, get_type_hints

from jupyterhub.spawner import Spawner

from .config import Deployment
from .options import Choice

#: What ``User._new_spawner`` passes to a spawner's constructor.
CONSTRUCTOR_ATTRIBUTES = (
    "user",
    "orm_spawner",
    "hub",
    "authenticator",
    "config",
    "proxy_spec",
    "_deprecated_db_session",
    "oauth_client_id",
    "cookie_options",
    "cookie_host_prefix_enabled",
    "trusted_alt_names",
    "user_options",
    "internal_ssl",
    "internal_trust_bundles",
    "internal_certs_location",
    "public_url",
    "public_hub_url",
)

#: What ``User.spawn`` (and the spawn handler) set on the spawner after construction; pushed on.
LATER_ATTRIBUTES = ("api_token", "admin_access", "handler", "cert_paths", "_spawn_future")

#: What the hub sets on the parent that the child gets another way (and why).
NOT_COPIED = {
    "server": "the child reads it from the shared orm_spawner, which the hub updates",
    "user_options": "the child gets its own (empty) options; the parent validated ours",
    "_start_pending": "the parent's own bookkeeping of the hub's spawn",
    "_spawn_pending": "the parent's own bookkeeping of the hub's spawn",
    "_stop_pending": "the parent's own bookkeeping of the hub's spawn",
    "_check_pending": "the parent's own bookkeeping of the hub's spawn",
    "_proxy_pending": "the parent's own bookkeeping of the hub's spawn",
    "_waiting_for_response": "the parent's own bookkeeping of the hub's spawn",
    "_jupyterhub_version": "read by the hub from the parent",
    "orm_spawner": "passed to the constructor",
}


def settable(cls: type[Spawner]) -> set[str]:
    """Names a template's ``kwargs`` may set on ``cls``: its traits and constructor arguments."""
    names = set(cls.class_trait_names())
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {
                name
                for name, parameter in inspect.signature(init).parameters.items()
                if name != "self" and parameter.kind is not parameter.VAR_KEYWORD
            }
    return names


def configured(config: Any, cls: type, trait: str) -> bool:
    """True when ``c.<cls or a base class>.<trait>`` is set in ``config``."""
    for klass in cls.__mro__:
        name = klass.__name__
        if name in config and trait in config[name]:
            return True
    return False


def choice_kwargs(cls: type[Spawner], choice: Choice, deployment: Deployment) -> dict[str, Any]:
    """The user's choices as settings of the child class (the last word on them)."""
    traits = set(cls.class_trait_names())
    kwargs: dict[str, Any] = {
        "cpu_limit": float(choice.cpu),
        "mem_limit": int(choice.memory_gb * 1024**3),
    }
    if "image" in traits and deployment.image and choice.resource_type != "virtual_machine":
        kwargs["image"] = deployment.image  # DockerSpawner, KubeSpawner
    if "req_nprocs" in traits:  # batchspawner (SlurmSpawner, ...)
        kwargs["req_nprocs"] = str(choice.cpu)
        kwargs["req_memory"] = f"{choice.memory_gb:g}G"
        kwargs["req_runtime"] = f"{choice.minutes // 60:02d}:{choice.minutes % 60:02d}:00"
        if "req_ngpus" in traits:
            kwargs["req_ngpus"] = str(choice.gpus)
    if "extra_resource_limits" in traits and choice.gpus:  # KubeSpawner
        kwargs["extra_resource_limits"] = {"nvidia.com/gpu": str(choice.gpus)}
        kwargs["extra_resource_guarantees"] = {"nvidia.com/gpu": str(choice.gpus)}
    return kwargs


def build_child(parent: Spawner, cls: type[Spawner], kwargs: dict[str, Any]) -> Spawner:
    """A child constructed exactly as ``User._new_spawner`` would, then given ``kwargs``.

    Traits in ``kwargs`` are set once the constructor has loaded ``config``: traitlets sets
    constructor keywords *before* config, so an observer reading another setting would see its
    class default (DockerSpawner names its container from ``name_template`` when ``image`` is
    set, and ``c.DockerSpawner.name_template`` would be ignored). Other keywords (constructor
    arguments such as CloudSSHSpawner's ``target``) go to the constructor.
    """
    traits = set(cls.class_trait_names())
    init = {name: getattr(parent, name) for name in CONSTRUCTOR_ATTRIBUTES}
    init["user_options"] = {}
    init.update({name: value for name, value in kwargs.items() if name not in traits})
    child = cls(**init)
    for name, value in kwargs.items():
        if name in traits:
            setattr(child, name, value)
    push_later_attributes(parent, child)
    return child


def push_later_attributes(parent: Spawner, child: Spawner) -> None:
    """Copy what the hub set on the parent after construction (token, handler, certs, ...)."""
    for name in LATER_ATTRIBUTES:
        setattr(child, name, getattr(parent, name))


def target_class(child: Spawner) -> type | None:
    """The class of the ``target`` a child accepts (CloudSSHSpawner's SSHTarget), if any."""
    for klass in type(child).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or "target" not in inspect.signature(init).parameters:
            continue
        try:
            hint = get_type_hints(init).get("target")
        except (NameError, TypeError):
            return None
        for candidate in (hint, *get_args(hint)):
            if isinstance(candidate, type) and candidate is not type(None):
                return candidate
    return None
