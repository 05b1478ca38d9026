"""``local``: a pool of existing machines (bare metal), with exclusive GPU allocation."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from ..credentials import SSHCredentials
from ..errors import ConfigError, NoMatchingShape, ResourceNotFound
from ..orchestrator import TAG_DEPLOYMENT, TAG_RECORD, Orchestrator
from ..resources import Resource, ResourceConfig, ResourceType
from ..shapes import Shape
from ..store import LIVE_STATES

POOL = "local"


class LocalOrchestrator(Orchestrator):
    """Hands out hosts from ``hosts``, the institution's own machines (``localhost`` is valid).

    Each host is ``{"name", "address", "port", "username", "cpu", "memory_gb", "gpus",
    "host_key"}``. GPUs are allocated exclusively and recorded in the store, so two users never
    get the same GPU; the resource's ``gpu_ids`` name them (for ``CUDA_VISIBLE_DEVICES``).
    CPU-only requests share hosts.
    """

    provider = "local"
    resource_types = (ResourceType.BARE_METAL,)
    option_names: ClassVar[tuple[str, ...]] = ("hosts",)
    eventually_consistent = False  # the pool is our own store

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        options = super().validate_options(options)
        hosts = options.get("hosts") or []
        if not isinstance(hosts, list) or not hosts:
            raise ConfigError("local: 'hosts' must list at least one host")
        names = set()
        for host in hosts:
            if not isinstance(host, dict) or not host.get("name") or not host.get("address"):
                raise ConfigError(f"local: each host needs a name and an address, got {host!r}")
            if host["name"] in names:
                raise ConfigError(f"local: host name {host['name']!r} appears twice")
            names.add(host["name"])
            for key in ("cpu", "memory_gb", "gpus", "port"):
                if key in host and (not isinstance(host[key], int | float) or host[key] < 0):
                    raise ConfigError(f"local: {host['name']}: {key} must be a number >= 0")
        return options

    @classmethod
    def inventory_limits(cls, options: dict[str, Any]) -> dict[str, float]:
        """The most one request can get from the pool: per key, the largest host's ``cpu``,
        ``memory_gb`` and ``gpus`` (one request runs on one host). ``options`` as validated."""
        hosts = options.get("hosts") or []
        return {
            key: max((float(host.get(key, default)) for host in hosts), default=0.0)
            for key, default in (("cpu", 1), ("memory_gb", 1), ("gpus", 0))
        }

    def _hosts(self) -> dict[str, dict[str, Any]]:
        return {host["name"]: host for host in self.options["hosts"]}

    async def list_shapes(self) -> list[Shape]:
        return [
            Shape(h["name"], h.get("cpu", 1), h.get("memory_gb", 1), h.get("gpus", 0))
            for h in self.options["hosts"]
        ]

    async def create_resource(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        record_id = tags[TAG_RECORD]
        fitting = {
            name: int(host.get("gpus", 0))
            for name, host in self._hosts().items()
            if host.get("cpu", 1) >= config.cpu
            and host.get("memory_gb", 1) >= config.memory_gb
            and host.get("gpus", 0) >= config.gpus
        }
        if not fitting:
            raise NoMatchingShape(
                f"no host in the pool has {config.cpu} CPUs, {config.memory_gb:g} GB and"
                f" {config.gpus} GPUs"
            )
        # Prefer the least used host; GPU-less hosts first for CPU-only requests.
        used = await self.call_blocking(self.store.hosts_in_use_sync, POOL)
        order = sorted(
            fitting,
            key=lambda name: (fitting[name] if not config.gpus else 0, used.get(name, 0), name),
        )
        candidates = {name: fitting[name] for name in order}
        allocated = await self.call_blocking(
            self.store.allocate_gpus_sync, POOL, candidates, config.gpus, record_id
        )
        if allocated is None:
            raise NoMatchingShape(
                f"all {config.gpus}-GPU capacity in the pool is in use; try later"
            )
        name, gpus = allocated
        return self._to_resource(name, record_id, gpus)

    def _to_resource(self, name: str, record_id: str, gpus: list[int]) -> Resource:
        host = self._hosts().get(name) or {"address": ""}
        return Resource(
            provider=self.provider,
            id=f"{name}/{record_id}",
            state="running",
            addresses=[host["address"]] if host["address"] else [],
            ssh_port=int(host.get("port", 22)),
            host_key=host.get("host_key"),
            username=host.get("username", ""),
            details={
                "host": name,
                "gpus": gpus,
                "tags": {TAG_RECORD: record_id, TAG_DEPLOYMENT: self.store.deployment_id},
            },
            gpu_ids=[str(gpu) for gpu in gpus],
        )

    async def get_resource_state(self, resource_id: str) -> Resource:
        record = await self.store.get(resource_id.rsplit("/", 1)[-1])
        if record is None or record.state in ("deleted",) or record.resource_id != resource_id:
            raise ResourceNotFound(f"local has no allocation {resource_id}")
        if self.resource is not None and self.resource.id == resource_id:
            return self.resource
        if record.details.get("id"):
            return Resource.from_dict(record.details)
        return Resource(self.provider, resource_id, "running")

    async def delete_resource(self, resource_id: str) -> None:
        await self.store.release(resource_id.rsplit("/", 1)[-1])

    async def list_resources(self, tags: dict[str, str] | None = None) -> list[Resource]:
        """Allocations and live records of this store's pool (all of them carry its tags)."""
        records = {r.record_id: r for r in await self.store.list(self.provider)}
        allocations = await asyncio.to_thread(self.store.allocations_sync, POOL)
        ids = set(allocations) | {
            r.record_id for r in records.values() if r.state in LIVE_STATES and r.resource_id
        }
        found = []
        for record_id in sorted(ids):
            record = records.get(record_id)
            host, gpus = allocations.get(record_id, ("", []))
            if record is not None and record.resource_id:
                host = record.resource_id.rsplit("/", 1)[0]
            resource = self._to_resource(host, record_id, gpus)
            if all(resource.tags.get(k) == v for k, v in (tags or {}).items()):
                found.append(resource)
        return found
