"""``libcloud``: any Apache libcloud compute driver (ec2, gce, azure_arm, openstack, ...)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any, ClassVar

from ..credentials import SSHCredentials
from ..errors import ConfigError, ProviderError, ResourceNotFound
from ..orchestrator import TAG, Orchestrator
from ..resources import Resource, ResourceConfig
from ..shapes import Shape, choose_shape

_STATES = {
    "running": "running",
    "pending": "pending",
    "starting": "pending",
    "rebooting": "pending",
    "terminated": "terminated",
    "stopped": "stopped",
    "stopping": "stopping",
    "suspended": "stopped",
}


# Sizes and images change rarely but cost a lot to fetch (EC2's list_sizes builds ~800 sizes from
# pricing data, ~18 ms): they are kept per driver, region and account for CATALOGUE_TTL seconds.
CATALOGUE_TTL = 600.0
_catalogue: dict[str, tuple[float, Any]] = {}


class LibcloudOrchestrator(Orchestrator):
    """VMs from a libcloud compute driver: size chosen from ``list_sizes()``, tags for leak checks.

    Options: ``driver`` (e.g. ``ec2``), ``key`` and ``secret`` (the driver's credentials), and the
    driver's own keyword arguments in ``driver_kwargs`` (``region``, ``host``, ``port``,
    ``secure``, ...). ``image`` is an image id or name; ``ssh_username`` the image's login user;
    ``check_reachable`` (default true) waits for SSH to answer on the node's public address.
    """

    provider = "libcloud"
    option_names: ClassVar[tuple[str, ...]] = (
        "driver",
        "key",
        "secret",
        "driver_kwargs",
        "image",
        "ssh_username",
        "size",
        "location",
    )

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        options = super().validate_options(options)
        if not options.get("driver"):
            raise ConfigError(
                "libcloud: the 'driver' option is required (e.g. ec2, gce, openstack)"
            )
        return options

    @classmethod
    def is_configured(cls, options: dict[str, Any]) -> bool:
        return bool(options.get("key"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._driver: Any = None

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One driver call, in a worker thread (libcloud is blocking); errors become ours."""
        from libcloud.common.types import LibcloudError

        driver = await self._get_driver()
        self.api_calls += 1
        try:
            return await asyncio.to_thread(getattr(driver, method), *args, **kwargs)
        except (LibcloudError, OSError) as error:
            raise ProviderError(
                f"libcloud {self.options['driver']} {method} failed: {error}"
            ) from None
        except Exception as error:  # drivers raise many BaseHTTPError/ValueError variants
            raise ProviderError(
                f"libcloud {self.options['driver']} {method} failed: {error}"
            ) from None

    async def _get_driver(self) -> Any:
        if self._driver is None:
            from libcloud.compute.providers import get_driver

            try:
                driver_class = get_driver(self.options["driver"])
            except AttributeError:
                raise ConfigError(
                    f"libcloud has no compute driver {self.options['driver']!r}"
                ) from None
            self._driver = driver_class(
                self.options.get("key"),
                self.options.get("secret"),
                **(self.options.get("driver_kwargs") or {}),
            )
        return self._driver

    async def list_shapes(self) -> list[Shape]:
        return [shape for shape, _ in await self._sizes()]

    async def _cached(self, what: str, method: str, *args: Any) -> Any:
        key = json.dumps(
            [
                what,
                self.options["driver"],
                self.options.get("key"),
                self.options.get("driver_kwargs"),
                args,
            ],
            sort_keys=True,
            default=str,
        )
        hit = _catalogue.get(key)
        if hit is not None and time.monotonic() - hit[0] < CATALOGUE_TTL:
            return hit[1]
        value = await self._call(method, *args)
        _catalogue[key] = (time.monotonic(), value)
        return value

    async def _sizes(self) -> list[tuple[Shape, Any]]:
        """(shape, libcloud size) for every size with a known CPU count and memory."""
        pairs = []
        for size in await self._cached("sizes", "list_sizes"):
            extra = size.extra or {}
            cpu = extra.get("vcpu") or extra.get("cpu") or extra.get("cores") or 0
            try:
                cpu, gpus = float(cpu), int(extra.get("gpu") or extra.get("gpus") or 0)
            except (TypeError, ValueError):
                continue
            if cpu <= 0 or not size.ram:
                continue
            pairs.append(
                (Shape(size.id, cpu, size.ram / 1024, gpus, price=size.price or None), size)
            )
        return pairs

    async def _image(self, wanted: str) -> Any:
        """The image by id (one cheap call), else by name among all images."""
        if not wanted:
            raise ConfigError("libcloud: no image given (option 'image' or the request's image)")
        try:
            image = await self._cached("image", "get_image", wanted)
            if image is not None:
                return image
        except ProviderError:
            pass
        images = await self._cached("images", "list_images")
        matches = [image for image in images if image.name == wanted]
        if not matches:
            raise ConfigError(f"libcloud: no image with id or name {wanted!r}")
        return matches[0]

    async def _key_pair(self, credentials: SSHCredentials) -> str:
        name = "corc-" + hashlib.sha256(credentials.public_key.encode()).hexdigest()[:16]
        existing = {pair.name for pair in await self._call("list_key_pairs")}
        if name not in existing:
            await self._call("import_key_pair_from_string", name, credentials.public_key)
        return name

    async def create_resource(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        sizes = await self._sizes()
        choice = choose_shape(
            [shape for shape, _ in sizes], config.cpu, config.memory_gb, config.gpus
        )
        size = next(size for shape, size in sizes if shape == choice.shape)
        image = await self._image(config.image or self.options.get("image") or "")
        kwargs: dict[str, Any] = {"ex_metadata": tags}
        if credentials is not None:
            kwargs["ex_keyname"] = await self._key_pair(credentials)
        node = await self._call("create_node", name=config.name, size=size, image=image, **kwargs)
        resource = self._to_resource(node)
        resource.details["shape"] = choice.shape.name
        return resource

    def _to_resource(self, node: Any) -> Resource:
        state = _STATES.get(str(node.state).lower(), str(node.state).lower())
        return Resource(
            provider=self.provider,
            id=node.id,
            state=state,
            addresses=list(node.public_ips or []) + list(node.private_ips or []),
            username=self.options.get("ssh_username", ""),
            details={"name": node.name, "tags": dict((node.extra or {}).get("tags") or {})},
        )

    async def get_resource_state(self, resource_id: str) -> Resource:
        nodes = await self._call("list_nodes", ex_node_ids=[resource_id])
        if not nodes:
            raise ResourceNotFound(f"libcloud has no node {resource_id}")
        return self._to_resource(nodes[0])

    async def delete_resource(self, resource_id: str) -> None:
        nodes = await self._call("list_nodes", ex_node_ids=[resource_id])
        if not nodes or self._to_resource(nodes[0]).state == "terminated":
            raise ResourceNotFound(f"libcloud has no node {resource_id}")
        await self._call("destroy_node", nodes[0])

    async def list_resources(self, tags: dict[str, str] | None = None) -> list[Resource]:
        wanted = tags or {TAG: "true"}
        filters = {f"tag:{key}": value for key, value in wanted.items()}
        nodes = await self._call("list_nodes", ex_filters=filters)
        return [r for r in map(self._to_resource, nodes) if r.state != "terminated"]
