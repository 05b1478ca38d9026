"""``Orchestrator``: order a machine, wait until it is usable, and remove it again. Leak-proof.

A provider plugin subclasses ``Orchestrator`` and implements five small coroutines (create, get,
delete, list, shapes). The flow around them lives here, once:

1. a record is written to the local store before the provider is called;
2. the resource is created, tagged with that record's id, and its id recorded;
3. we wait until the provider says it is running and its SSH port answers;
4. any failure, timeout or cancellation on the way tears down whatever was created (found by id, or
   by the record tag when the create call itself failed midway).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import Any, ClassVar

from .credentials import SSHCredentials
from .errors import ConfigError, CorcError, ResourceNotFound, SetupFailed
from .resources import Resource, ResourceConfig, ResourceType
from .shapes import Shape
from .store import Record, RecordStore

log = logging.getLogger("corc_core")

TAG = "gridhub"
TAG_RECORD = "gridhub-record"
TAG_OWNER = "gridhub-owner"


class Orchestrator(abc.ABC):
    """Orders one resource from one provider for one owner (e.g. a hub user's spawn).

    Async and cancellable: cancelling ``setup()`` tears down what it made. ``get_state()`` returns a
    JSON-able dict from which ``from_state()`` rebuilds the orchestrator after a restart.
    """

    provider: ClassVar[str]
    resource_types: ClassVar[tuple[ResourceType, ...]] = (ResourceType.VIRTUAL_MACHINE,)
    option_names: ClassVar[tuple[str, ...]] = ()
    # Options every provider takes: check_reachable (default true) waits for SSH to answer.
    common_options: ClassVar[tuple[str, ...]] = ("check_reachable",)
    ready_states: ClassVar[tuple[str, ...]] = ("running",)
    gone_states: ClassVar[tuple[str, ...]] = ("terminated", "deleted")

    def __init__(
        self,
        options: dict[str, Any] | None = None,
        *,
        store: RecordStore,
        owner: str,
        ready_timeout: float = 900,
        poll_interval: float = 2,
    ) -> None:
        self.options = self.validate_options(options or {})
        self.store = store
        self.owner = owner
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        self.record: Record | None = None
        self.resource: Resource | None = None
        self.api_calls = 0

    # -- what a provider implements ---------------------------------------------------------------

    @abc.abstractmethod
    async def create_resource(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        """Ask the provider for the resource; return as soon as it has an id."""

    @abc.abstractmethod
    async def get_resource_state(self, resource_id: str) -> Resource:
        """The resource as the provider sees it now; ResourceNotFound when it is gone."""

    @abc.abstractmethod
    async def delete_resource(self, resource_id: str) -> None:
        """Ask the provider to remove the resource (ResourceNotFound when already gone)."""

    @abc.abstractmethod
    async def list_resources(self, tags: dict[str, str] | None = None) -> list[Resource]:
        """Resources of this provider carrying all ``tags`` (all of ours when None)."""

    async def list_shapes(self) -> list[Shape]:
        """The shapes (sizes) the provider offers; providers without shapes return []."""
        return []

    # -- options and configuration ----------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Check provider options; unknown names are an error that lists the known ones."""
        if not isinstance(options, dict):
            raise ConfigError(f"{cls.provider} options must be a mapping")
        known = (*cls.option_names, *cls.common_options)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown {cls.provider} option(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return dict(options)

    @classmethod
    def is_configured(cls, options: dict[str, Any]) -> bool:
        """True when ``options`` name an account to use (``corc reap`` skips the others)."""
        return True

    @classmethod
    def load_config_options(cls, config: dict[str, Any]) -> dict[str, Any]:
        """This provider's options from a corc YAML config (``providers.<name>``)."""
        section = (config.get("corc", config).get("providers") or {}).get(cls.provider) or {}
        known = (*cls.option_names, *cls.common_options)
        return cls.validate_options({k: v for k, v in section.items() if k in known})

    @classmethod
    def make_resource_config(
        cls,
        cpu: int = 1,
        memory_gb: float = 1.0,
        gpus: int = 0,
        image: str = "",
        resource_type: ResourceType | str = ResourceType.VIRTUAL_MACHINE,
        **extra: Any,
    ) -> ResourceConfig:
        """A validated request; refuses resource types this provider cannot make."""
        config = ResourceConfig(
            cpu=cpu,
            memory_gb=memory_gb,
            gpus=gpus,
            image=image,
            resource_type=resource_type,
            **extra,
        )
        if config.resource_type not in cls.resource_types:
            kinds = ", ".join(t.value for t in cls.resource_types)
            raise ConfigError(
                f"{cls.provider} cannot make a {config.resource_type.value} (it makes: {kinds})"
            )
        return config

    # -- the flow ---------------------------------------------------------------------------------

    async def setup(
        self, resource_config: ResourceConfig, credentials: SSHCredentials | None = None
    ) -> Resource:
        """Create the resource and wait until it runs and answers on SSH; tear down on failure."""
        self.record = await self.store.create(
            self.provider, self.owner, {"config": resource_config.to_dict()}
        )
        tags = {
            **resource_config.tags,
            TAG: "true",
            TAG_RECORD: self.record.record_id,
            TAG_OWNER: self.owner,
        }
        try:
            self.resource = await self.create_resource(resource_config, credentials, tags)
            await self.store.update(self.record.record_id, resource_id=self.resource.id)
            await asyncio.wait_for(self._wait_usable(), self.ready_timeout)
            await self.store.update(
                self.record.record_id, state="running", details=self.resource.to_dict()
            )
            return self.resource
        except BaseException as error:
            what = self.resource.id if self.resource else f"record {self.record.record_id}"
            log.warning("%s: setup of %s failed (%r); tearing down", self.provider, what, error)
            await asyncio.shield(self._tear_down_quietly())
            if isinstance(error, TimeoutError):
                raise SetupFailed(
                    f"{self.provider}: the resource was not usable within {self.ready_timeout:g} s;"
                    " it has been removed"
                ) from None
            if isinstance(error, CorcError):
                raise SetupFailed(f"{self.provider}: {error}; nothing was left behind") from error
            raise

    async def _wait_usable(self) -> None:
        assert self.resource is not None
        while True:
            self._refresh(await self.get_resource_state(self.resource.id))
            if self.resource.state in self.gone_states:
                raise CorcError(f"the resource {self.resource.id} ended while starting")
            if self.resource.state in self.ready_states and await self.is_reachable():
                return
            await asyncio.sleep(self.poll_interval)

    async def _tear_down_quietly(self) -> None:
        try:
            await self.tear_down()
        except Exception:
            log.exception("%s: tear-down after a failed setup failed", self.provider)

    async def poll(self) -> Resource:
        """Refresh the resource from the provider."""
        if self.resource is None:
            raise ResourceNotFound("nothing has been set up")
        self._refresh(await self.get_resource_state(self.resource.id))
        return self.resource

    def _refresh(self, fresh: Resource) -> None:
        """Take the provider's view, keeping what only setup knew (shape, GPUs, host key)."""
        if self.resource is not None:
            fresh.details = {**self.resource.details, **fresh.details}
            fresh.host_key = fresh.host_key or self.resource.host_key
        self.resource = fresh

    async def is_ready(self) -> bool:
        try:
            return (await self.poll()).state in self.ready_states
        except ResourceNotFound:
            return False

    async def is_reachable(self, timeout: float = 3) -> bool:
        """True when the resource's SSH port accepts a TCP connection (or checks are off)."""
        if not self.options.get("check_reachable", True):
            return True
        if self.resource is None or not self.resource.addresses:
            return False
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.resource.addresses[0], self.resource.ssh_port), timeout
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def get_resource(self) -> Resource | None:
        return self.resource

    def resource_id(self) -> str | None:
        return self.resource.id if self.resource else None

    def endpoints(self) -> list[str]:
        return list(self.resource.addresses) if self.resource else []

    def endpoint(self) -> str | None:
        addresses = self.endpoints()
        return addresses[0] if addresses else None

    async def tear_down(self) -> None:
        """Remove the resource (and anything tagged with our record); idempotent."""
        ids = {self.resource.id} if self.resource else set()
        if self.record is not None and self.resource is None:
            # The create call may have succeeded at the provider without telling us the id.
            ids |= {r.id for r in await self.list_resources({TAG_RECORD: self.record.record_id})}
        if self.record is not None:
            await self.store.update(self.record.record_id, state="deleting")
        for resource_id in ids:
            try:
                await self.delete_resource(resource_id)
            except ResourceNotFound:
                pass
        if self.record is not None:
            await self.store.update(self.record.record_id, state="deleted")

    # -- state ------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "options": self.options,
            "record_id": self.record.record_id if self.record else None,
            "resource": self.resource.to_dict() if self.resource else None,
        }

    @classmethod
    async def from_state(
        cls, state: dict[str, Any], *, store: RecordStore, owner: str
    ) -> Orchestrator:
        orchestrator = cls(state.get("options") or {}, store=store, owner=owner)
        if state.get("record_id"):
            orchestrator.record = await store.get(state["record_id"])
        if state.get("resource"):
            orchestrator.resource = Resource.from_dict(state["resource"])
        return orchestrator
