"""corc's part of a spawn: order the resource, make SSH credentials, configure it, remove it.

Nothing here knows JupyterHub: the spawner hands in what to order and callbacks for progress and
for persisting state the moment a resource id exists (so a hub restart cannot orphan it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corc_core import (
    CorcError,
    Orchestrator,
    RecordStore,
    Resource,
    SSHAuthenticator,
    SSHCredentials,
    get_provider,
)
from corc_core.config import load_config, section

from .config import ClassSpec, Provider, import_class
from .errors import SpawnFailed
from .placeholders import fill

Progress = Callable[[int, str], None]
OnOrdered = Callable[[dict[str, Any]], Awaitable[None]]

#: Names the thesis's listing 12 uses for the old corc authenticator, and what they mean now.
_AUTHENTICATOR_ALIASES = {"create_certificate": "use_certificates"}
_AUTHENTICATOR_IGNORED = {"key_name", "load_existing"}  # keys are always per (user, server)

_stores: dict[Path, RecordStore] = {}


def _expand(path: str | Path) -> Path:
    return Path(path).expanduser()  # reads $HOME only


async def record_store(path: str | Path) -> RecordStore:
    """One RecordStore per database file in this process (opened in a worker thread)."""
    path = _expand(path)
    if path not in _stores:
        store = await asyncio.to_thread(RecordStore, path)
        _stores.setdefault(path, store)
    return _stores[path]


def _truthy(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "1")


def resource_name(owner: str) -> str:
    """A name every cloud accepts (letters, digits, dashes), saying whose server it is."""
    return ("gridhub-" + re.sub(r"[^a-z0-9-]+", "-", owner.lower())).strip("-")[:63]


@dataclass
class CorcSettings:
    """Where corc keeps its records and keys, and each provider's options (corc's config)."""

    config_file: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def load(cls, config_file: str) -> CorcSettings:
        path = _expand(config_file) if config_file else None
        data = await asyncio.to_thread(load_config, path)
        return cls(config_file, data)

    @property
    def store_path(self) -> str:
        return section(self.data, "store").get("path") or "~/.corc/records.sqlite"

    @property
    def ssh(self) -> dict[str, Any]:
        return section(self.data, "ssh")

    def provider_options(self, provider: Provider, cls: type[Orchestrator]) -> dict[str, Any]:
        if provider.options is not None:
            return cls.validate_options(provider.options)
        return cls.load_config_options(self.data)

    def inventory_limits(self, provider: Provider) -> dict[str, float]:
        """The most the provider's corc inventory holds for one request (``cpu``,
        ``memory_gb``, ``gpus``; e.g. the local pool's largest host); {} when it does not say.
        Blocking (imports the provider, validates its options): run it in a thread."""
        if provider.corc is None:
            return {}
        cls = get_provider(provider.corc)
        inventory = getattr(cls, "inventory_limits", None)
        if inventory is None:
            return {}
        return dict(inventory(self.provider_options(provider, cls)))


class Provisioning:
    """One spawn's resource: ordered by corc, reached over SSH, removed again (idempotently)."""

    def __init__(
        self,
        provider: Provider,
        settings: CorcSettings,
        store: RecordStore,
        *,
        user: str,
        server_name: str,
        log: logging.Logger | logging.LoggerAdapter,
        authenticator: ClassSpec | None = None,
        ready_timeout: float = 900,
    ) -> None:
        assert provider.corc is not None
        self.provider = provider
        self.settings = settings
        self.store = store
        self.user = user
        self.server_name = server_name
        self.log = log
        self.authenticator_spec = authenticator
        self.cls = get_provider(provider.corc)
        self.options = settings.provider_options(provider, self.cls)
        self.orchestrator: Orchestrator = self.cls(
            self.options, store=store, owner=self.owner, ready_timeout=ready_timeout
        )
        self.credentials: SSHCredentials | None = None
        self.host_key: str | None = None
        self._torn_down = False

    @property
    def owner(self) -> str:
        return f"{self.user}:{self.server_name}" if self.server_name else self.user

    def ssh_authenticator(self, values: dict[str, Any] | None = None) -> SSHAuthenticator:
        kwargs: dict[str, Any] = {
            "directory": self.settings.ssh.get("directory") or "~/.corc/ssh",
            "use_certificates": bool(self.settings.ssh.get("use_certificates", False)),
        }
        spec = self.authenticator_spec
        cls: type = SSHAuthenticator
        if spec is not None:
            cls = import_class(spec.path, "authenticator.class")
            for key, value in fill(spec.kwargs, values or {}).items():
                if key in _AUTHENTICATOR_IGNORED:
                    continue
                key = _AUTHENTICATOR_ALIASES.get(key, key)
                kwargs[key] = _truthy(value) if key == "use_certificates" else value
        return cls(**kwargs)

    # -- the steps --------------------------------------------------------------------------------

    async def order(
        self,
        *,
        cpu: int,
        memory_gb: float,
        gpus: int,
        image: str,
        resource_type: str,
        progress: Progress,
        on_ordered: OnOrdered,
        values: dict[str, Any],
    ) -> Resource:
        """Make credentials (if the template has an authenticator), order, wait until usable."""
        if self.authenticator_spec is not None:
            remote_user = (
                self.provider.ssh_user
                or self.options.get("username")
                or self.options.get("ssh_username")
                or self.user
            )
            ssh = self.ssh_authenticator(values)
            self.credentials = await ssh.credentials_for(
                self.user, remote_user=fill(remote_user, values), server_name=self.server_name
            )
        config = self.cls.make_resource_config(
            cpu=cpu,
            memory_gb=memory_gb,
            gpus=gpus,
            image=image,
            resource_type=resource_type,
            name=resource_name(self.owner),
            tags={"gridhub-user": self.user, "gridhub-server": self.server_name or "default"},
        )
        progress(
            10,
            f"Ordering {cpu} CPU, {memory_gb:g} GB, {gpus} GPU from {self.provider.display_name}",
        )
        setup = self.orchestrator.setup
        parameters = inspect.signature(setup).parameters
        kwargs: dict[str, Any] = {}
        if "progress" in parameters:
            kwargs["progress"] = lambda percent, message: progress(
                10 + percent * 50 // 100, message
            )
        if "on_ordered" in parameters:
            kwargs["on_ordered"] = lambda _state: on_ordered(self.state())
        try:
            resource = await setup(config, self.credentials, **kwargs)
        except CorcError as error:
            raise SpawnFailed(
                f"{self.provider.display_name} could not provide the machine: {error}"
            ) from None
        await on_ordered(self.state())
        if resource.host_key:
            self.host_key = resource.host_key
        elif self.credentials is not None and resource.addresses:
            ssh = self.ssh_authenticator(values)
            self.host_key = await ssh.verify_host(resource.addresses[0], resource.ssh_port)
        if self.host_key and resource.addresses and self.credentials is not None:
            await self.ssh_authenticator(values).pin_host_key(
                resource.addresses[0], resource.ssh_port, self.host_key
            )
        return resource

    async def configure(self, spec: ClassSpec, values: dict[str, Any]) -> None:
        """Run the template's configurer (e.g. corc's AnsibleConfigurer) against the resource."""
        resource = self.orchestrator.get_resource()
        if resource is None or not resource.addresses or self.credentials is None:
            raise SpawnFailed(
                "the configurer needs a machine reached over SSH (add an authenticator)"
            )
        cls = import_class(spec.path, "configurer.class")
        options = fill(spec.kwargs, values)
        variables = {
            "notebook_user": values.get("ssh_user", ""),
            "authorized_key": values.get("auth_key", ""),
            **(options.get("host_variables") or options.get("variables") or {}),
        }
        apply = options.get("apply_kwargs") or {}
        playbooks = apply.get("playbook_paths") or (
            [apply["playbook_path"]] if apply.get("playbook_path") else [None]
        )
        ctor = {
            k: v for k, v in options.items() if k in ("playbook", "timeout", "python_interpreter")
        }
        known_hosts = self.ssh_authenticator(values).known_hosts
        for playbook in playbooks:
            kwargs = dict(ctor)
            if playbook:
                kwargs["playbook"] = str(_expand(playbook))
            configurer = cls(**kwargs)
            try:
                await configurer.configure(
                    resource.addresses[0],
                    resource.ssh_port,
                    self.credentials,
                    known_hosts,
                    variables,
                )
            except CorcError as error:
                raise SpawnFailed(f"Configuring the machine failed: {error}") from None

    async def tear_down(self) -> None:
        """Remove the resource and forget its host key and the spawn's SSH key; idempotent."""
        resource = self.orchestrator.get_resource()
        await self.orchestrator.tear_down()
        if resource is not None and resource.addresses and self.authenticator_spec is not None:
            ssh = self.ssh_authenticator()
            await ssh.forget_host(resource.addresses[0], resource.ssh_port)
            remove = getattr(ssh, "remove", None)
            if remove is not None:
                await remove(self.user, server_name=self.server_name)
        self._torn_down = True

    # -- state ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What a restarted hub needs to find the resource again (no options, keys or secrets)."""
        state = dict(self.orchestrator.get_state())
        state.pop("options", None)
        return state

    async def restore(self, state: dict[str, Any]) -> None:
        """Point this provisioning at a resource recorded before a hub restart."""
        kwargs: dict[str, Any] = {"store": self.store, "owner": self.owner}
        if "options" in inspect.signature(self.cls.from_state).parameters:
            kwargs["options"] = self.options
        else:
            state = {**state, "options": self.options}
        self.orchestrator = await self.cls.from_state(state, **kwargs)

    def resource(self) -> Resource | None:
        return self.orchestrator.get_resource()

    def gpu_ids(self) -> list[str]:
        resource = self.resource()
        if resource is None:
            return []
        ids = getattr(resource, "gpu_ids", None) or resource.details.get("gpus") or []
        return [str(gpu) for gpu in ids]
