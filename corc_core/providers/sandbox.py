"""``sandbox``: real lightweight hosts on this machine (network namespace + sshd), no cloud needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..credentials import SSHCredentials
from ..errors import ProviderError, ResourceNotFound
from ..orchestrator import TAG_DEPLOYMENT, TAG_RECORD, Orchestrator
from ..resources import Resource, ResourceConfig, ResourceType
from ..sandbox import SandboxHost

DEPLOYMENT_FILE = "deployment"


class SandboxOrchestrator(Orchestrator):
    """Each resource is a ``SandboxHost``: the whole VM path (create, SSH, Ansible, notebook,
    tear-down) runs for real, on this machine. Its host key is pinned from the start.

    Options: ``directory`` (default ``~/.corc/sandbox``), ``use_netns`` (default true),
    ``username`` (the login user on the host; default ``root``). Each host's directory is named
    for its record and holds the store's deployment id (its "tags"), written before the host is.
    """

    provider = "sandbox"
    resource_types = (ResourceType.VIRTUAL_MACHINE, ResourceType.CONTAINER)
    option_names: ClassVar[tuple[str, ...]] = ("directory", "use_netns", "username")
    eventually_consistent = False

    def _directory(self) -> Path:
        return Path(self.options.get("directory") or "~/.corc/sandbox").expanduser()

    async def create_resource(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        record_id = tags[TAG_RECORD]
        host = SandboxHost(directory=str(self._directory() / record_id), name=record_id[:8])
        keys = [credentials.public_key] if credentials else []
        try:
            await self.call_blocking(self._make, host, keys, tags.get(TAG_DEPLOYMENT, ""))
        except OSError as error:
            raise ProviderError(f"sandbox: could not create a host: {error}") from None
        return self._to_resource(record_id, host, tags)

    def _make(self, host: SandboxHost, keys: list[str], deployment: str) -> None:
        host.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        (host.path / DEPLOYMENT_FILE).write_text(deployment)
        host.create(keys, None, self.options.get("use_netns", True))

    def _to_resource(self, record_id: str, host: SandboxHost, tags: dict[str, str]) -> Resource:
        return Resource(
            provider=self.provider,
            id=record_id,
            state="running" if host.alive() else "terminated",
            addresses=[host.address],
            ssh_port=host.port,
            host_key=host.host_public_key if host.alive() else None,
            username=self.options.get("username", "root"),
            details={"host": host.to_dict(), "tags": tags},
        )

    async def _host(self, resource_id: str) -> SandboxHost:
        if self.resource is not None and self.resource.id == resource_id:
            return SandboxHost(**self.resource.details["host"])
        info = _host_info(await self.store.get(resource_id))
        if info is not None:
            return SandboxHost(**info)
        directory = self._directory() / resource_id
        if "/" in resource_id or not (directory / "sshd_config").exists():
            raise ResourceNotFound(f"sandbox has no host {resource_id}")
        return _host_in(directory)  # made by a process that died before recording it

    async def get_resource_state(self, resource_id: str) -> Resource:
        host = await self._host(resource_id)
        self.api_calls += 1
        if not host.alive():
            raise ResourceNotFound(f"sandbox host {resource_id} is not running")
        tags = (self.resource.details.get("tags") if self.resource else None) or {}
        return self._to_resource(resource_id, host, tags)

    async def delete_resource(self, resource_id: str) -> None:
        host = await self._host(resource_id)
        alive = host.alive()
        await self.call_blocking(host.destroy)
        if not alive:
            raise ResourceNotFound(f"sandbox host {resource_id} was not running")

    async def list_resources(self, tags: dict[str, str] | None = None) -> list[Resource]:
        directory = self._directory()
        found = []
        for path in sorted(directory.glob("*/sshd_config")) if directory.exists() else []:
            record_id = path.parent.name
            try:
                deployment = (path.parent / DEPLOYMENT_FILE).read_text().strip()
            except OSError:
                deployment = ""
            own = {TAG_RECORD: record_id, TAG_DEPLOYMENT: deployment}
            if any(own.get(k) != v for k, v in (tags or {}).items() if k in own):
                continue
            info = _host_info(await self.store.get(record_id))
            host = SandboxHost(**info) if info is not None else _host_in(path.parent)
            if host.alive():
                found.append(self._to_resource(record_id, host, own))
        return found


def _host_in(directory: Path) -> SandboxHost:
    """The host in ``directory``, from its files (sshd pid) alone."""
    host = SandboxHost(directory=str(directory), name=directory.name[:8])
    namespace = f"corc-{host.name}"[:30]  # as SandboxHost names it
    if Path("/run/netns", namespace).exists():
        host.namespace = namespace
    try:
        host.pid = int((directory / "sshd.pid").read_text().strip())
    except (OSError, ValueError):
        host.pid = None
    return host


def _host_info(record: Any) -> dict[str, Any] | None:
    """The SandboxHost fields kept in a record (as the resource's details)."""
    if record is None:
        return None
    return (record.details.get("details") or {}).get("host")
