"""``libcloud``: any Apache libcloud compute driver (ec2, openstack, gce, azure_arm, ...).

The provider uses libcloud's common compute API (``list_sizes``, ``list_images``,
``list_locations``, ``create_node``, ``destroy_node``, ``list_nodes``); what differs between
drivers (where tags live, how one node is read, GPU counts, zones, console output) is kept in one
place: a ``DriverExtras`` per driver name in ``EXTRAS``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import asyncssh

from ..credentials import SSHCredentials
from ..errors import ConfigError, ProviderError, ResourceNotFound
from ..orchestrator import TAG, Orchestrator
from ..resources import Resource, ResourceConfig
from ..shapes import Shape, choose_shape
from ..validation import validate_image, validate_resource_name

_STATES = {
    "running": "running",
    "pending": "pending",
    "starting": "pending",
    "rebooting": "pending",
    "reconfiguring": "pending",
    "migrating": "pending",
    "terminated": "terminated",
    "stopped": "stopped",
    "stopping": "stopping",
    "suspended": "stopped",
    "paused": "stopped",
    "error": "error",
}

HOST_KEY_SOURCES = ("user_data", "console", "none")

# How long after a create a "no such node" answer may be the provider's eventual consistency.
CONSISTENCY_WINDOW = 30.0
#: DescribeInstances page size: AWS's maximum (moto honours it too). One page per 1,000 instances
#: instead of one per 100: fewer round trips, and moto, which filters every instance again for
#: each page, stays linear up to that many.
EC2_PAGE_SIZE = 1000

_MISSING = object()


class Catalogue:
    """What provider accounts offer (sizes, size choices, images, locations, key pairs), kept for
    ``ttl`` seconds and at most ``max_entries`` entries (the least recently used go first).

    Sizes and images change rarely but cost a lot to fetch and to choose from (EC2's
    ``list_sizes`` builds ~800 sizes from pricing data): one process-wide catalogue lets every
    orchestrator of the same account (one per spawn) reuse them. Keys name the driver, its
    keyword arguments (region, endpoint) and the account, so accounts never share entries.
    """

    def __init__(
        self,
        ttl: float = 600.0,
        max_entries: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        """The value, or ``_MISSING`` when absent or older than ``ttl``."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return _MISSING
            if self._clock() - hit[0] >= self.ttl:
                del self._entries[key]
                return _MISSING
            self._entries.move_to_end(key)
            return hit[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: The process-wide catalogue of every libcloud account in use.
CATALOGUE = Catalogue()


@functools.lru_cache(maxsize=64)
def _create_parameters(driver_class: type) -> frozenset[str]:
    """The keyword arguments a driver class's ``create_node`` takes (inspected once per class)."""
    return frozenset(inspect.signature(driver_class.create_node).parameters)


_HOST_KEYS = re.compile(
    r"-----BEGIN SSH HOST KEY KEYS-----\s*(.*?)\s*-----END SSH HOST KEY KEYS-----", re.S
)
_KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa")


def host_key_from_console(output: str | None) -> str | None:
    """The preferred host key (``"<type> <base64>"``) in cloud-init's console block, if any."""
    match = _HOST_KEYS.search(output or "")
    if not match:
        return None
    keys: dict[str, str] = {}
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) >= 2:
            try:
                asyncssh.import_public_key(f"{parts[0]} {parts[1]}")
            except (asyncssh.KeyImportError, ValueError):
                continue
            keys.setdefault(parts[0], f"{parts[0]} {parts[1]}")
    for kind in _KEY_PREFERENCE:
        if kind in keys:
            return keys[kind]
    return next(iter(keys.values()), None)


def host_key_user_data() -> tuple[str, str]:
    """(cloud-init user data installing a new ed25519 host key, that key's public half)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment="corc host key")
    public = " ".join(key.export_public_key().decode().split()[:2])
    config = {
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {
            "ed25519_private": key.export_private_key().decode(),
            "ed25519_public": public,
        },
    }
    # JSON is YAML (cloud-init reads it as such), and json.dumps is ~50x faster than PyYAML's
    # emitter, which cost a few milliseconds on the event loop per create.
    return "#cloud-config\n" + json.dumps(config, indent=1) + "\n", public


class DriverExtras:
    """How corc uses one libcloud driver beyond the common compute API.

    The defaults use only the common API: tags in ``ex_metadata`` when ``create_node`` takes it,
    nodes found in ``list_nodes()``, no GPUs, locations from ``list_locations()``.
    """

    #: The key of ``node.extra`` holding the node's tags.
    tag_field = "tags"

    def describe_sizes(self, driver: Any, sizes: list[Any]) -> list[tuple[Any, float, int]]:
        """(size, CPUs, GPUs) for each size (CPUs 0 when unknown)."""
        described = []
        for size in sizes:
            extra = size.extra or {}
            try:
                cpu = float(
                    extra.get("vcpu")
                    or extra.get("cpu")
                    or extra.get("cores")
                    or getattr(size, "vcpus", 0)
                    or 0
                )
                gpus = int(extra.get("gpu") or extra.get("gpus") or 0)
            except (TypeError, ValueError):
                continue
            described.append((size, cpu, gpus))
        return described

    def locations(self, driver: Any) -> list[tuple[str, Any]]:
        """(name, what create_node needs) for each location the account can use."""
        return [
            (location.name or str(location.id), location) for location in driver.list_locations()
        ]

    def create_kwargs(
        self,
        driver: Any,
        tags: dict[str, str],
        key_name: str | None,
        location: Any,
        user_data: str | None,
    ) -> dict[str, Any]:
        accepted = _create_parameters(type(driver))
        kwargs: dict[str, Any] = {}
        if "ex_metadata" in accepted:
            kwargs["ex_metadata"] = tags
        if key_name and "ex_keyname" in accepted:
            kwargs["ex_keyname"] = key_name
        if location is not None:
            kwargs["location"] = location
        if user_data and "ex_userdata" in accepted:
            kwargs["ex_userdata"] = user_data
        return kwargs

    def takes_user_data(self, driver: Any) -> bool:
        return "ex_userdata" in _create_parameters(type(driver))

    def images_named(self, driver: Any, name: str) -> list[Any]:
        """The images called ``name``."""
        return [image for image in driver.list_images() if image.name == name]

    def get_node(self, driver: Any, node_id: str) -> Any:
        """The node, or None when the provider does not know it."""
        return next((node for node in driver.list_nodes() if node.id == node_id), None)

    def list_nodes(self, driver: Any, tags: dict[str, str]) -> list[Any]:
        return [node for node in driver.list_nodes() if self._has_tags(node, tags)]

    def _has_tags(self, node: Any, tags: dict[str, str]) -> bool:
        held = self.tags(node)
        return all(held.get(key) == value for key, value in tags.items())

    def tags(self, node: Any) -> dict[str, str]:
        return dict((node.extra or {}).get(self.tag_field) or {})

    def console_output(self, driver: Any, node: Any) -> str | None:
        if not hasattr(driver, "ex_get_console_output"):
            return None
        return (driver.ex_get_console_output(node) or {}).get("output")

    def is_not_found(self, error: Exception) -> bool:
        return getattr(error, "code", None) == 404 or "NotFound" in str(error)


class EC2Extras(DriverExtras):
    """EC2: tags go into RunInstances' TagSpecifications (libcloud's ``ex_metadata``), so an
    instance is never untagged; nodes are read and filtered server-side."""

    def images_named(self, driver: Any, name: str) -> list[Any]:
        # Filtered by EC2: listing every public image of a region would take minutes.
        images = driver.list_images(ex_filters={"name": name})
        return [image for image in images if image.name == name]

    def get_node(self, driver: Any, node_id: str) -> Any:
        """One DescribeInstances (libcloud's ``list_nodes`` adds a DescribeAddresses, a second
        round trip for what the instance's public IP already says)."""
        from libcloud.compute.drivers.ec2 import NAMESPACE
        from libcloud.utils.xml import findall

        params = {"Action": "DescribeInstances", "InstanceId.1": node_id}
        page = driver.connection.request(driver.path, params=params).object
        for reservation in findall(page, "reservationSet/item", NAMESPACE):
            for node in driver._to_nodes(reservation, "instancesSet/item"):
                if node.id == node_id:
                    return node
        return None

    def list_nodes(self, driver: Any, tags: dict[str, str]) -> list[Any]:
        """Every page: DescribeInstances answers ``EC2_PAGE_SIZE`` reservations at a time with a
        ``nextToken`` (AWS and moto), and libcloud's ``list_nodes`` reads only the first page.
        No DescribeAddresses: an instance's public IP already is its Elastic IP when it has one
        (libcloud's own matching also parsed every address once per node)."""
        from libcloud.compute.drivers.ec2 import NAMESPACE
        from libcloud.utils.xml import findall, findtext

        params = {"Action": "DescribeInstances", "MaxResults": str(EC2_PAGE_SIZE)}
        params.update(driver._build_filters({f"tag:{k}": v for k, v in tags.items()}))
        nodes: list[Any] = []
        while True:
            page = driver.connection.request(driver.path, params=params).object
            for reservation in findall(page, "reservationSet/item", NAMESPACE):
                nodes += driver._to_nodes(reservation, "instancesSet/item")
            token = findtext(page, "nextToken", NAMESPACE)
            if not token:
                break
            params["NextToken"] = token
        return nodes

    def locations(self, driver: Any) -> list[tuple[str, Any]]:
        return [(location.name, location) for location in driver.list_locations()]


class OpenStackExtras(DriverExtras):
    """OpenStack Nova: tags are server metadata (sent in the create request), GPUs come from the
    flavor's extra specs (``pci_passthrough:alias`` or ``resources:VGPU``/``PGPU``), locations
    are availability zones."""

    tag_field = "metadata"

    def describe_sizes(self, driver: Any, sizes: list[Any]) -> list[tuple[Any, float, int]]:
        return [
            (size, float(getattr(size, "vcpus", 0) or 0), self._gpus(driver, size))
            for size in sizes
        ]

    @staticmethod
    def _gpus(driver: Any, size: Any) -> int:
        specs = driver.ex_get_size_extra_specs(size.id) or {}
        count = 0
        for alias in str(specs.get("pci_passthrough:alias") or "").split(","):
            if ":" in alias:
                count += int(alias.rsplit(":", 1)[1] or 0)
        for kind in ("resources:VGPU", "resources:PGPU"):
            count += int(specs.get(kind) or 0)
        return count

    def locations(self, driver: Any) -> list[tuple[str, Any]]:
        zones = driver.connection.request("/os-availability-zone").object
        return [
            (zone["zoneName"], zone["zoneName"])
            for zone in zones.get("availabilityZoneInfo", [])
            if (zone.get("zoneState") or {}).get("available")
        ]

    def create_kwargs(
        self,
        driver: Any,
        tags: dict[str, str],
        key_name: str | None,
        location: Any,
        user_data: str | None,
    ) -> dict[str, Any]:
        kwargs = super().create_kwargs(driver, tags, key_name, None, user_data)
        if location is not None:
            kwargs["ex_availability_zone"] = location
        return kwargs

    def get_node(self, driver: Any, node_id: str) -> Any:
        return driver.ex_get_node_details(node_id)


#: Per-driver behaviour; drivers not listed use the common compute API only.
EXTRAS: dict[str, DriverExtras] = {"ec2": EC2Extras(), "openstack": OpenStackExtras()}


class LibcloudOrchestrator(Orchestrator):
    """VMs from a libcloud compute driver: size chosen from ``list_sizes()``, tagged at creation.

    Options: ``driver`` (e.g. ``ec2``, ``openstack``), ``key`` and ``secret`` (the driver's
    credentials), the driver's own keyword arguments in ``driver_kwargs`` (``region``, ``host``,
    ``port``, ``ex_force_auth_url``, ...). ``image`` is an image id or name; ``ssh_username`` the
    image's login user; ``size`` a size id or name to use instead of choosing one; ``location`` a
    location (EC2, OpenStack: availability zone) name or id. ``host_key``: ``user_data`` (default:
    corc makes the VM's SSH host key and installs it through cloud-init, and pins it), ``console``
    (read the host key cloud-init prints to the console; the VM counts as booting until it does)
    or ``none`` (trust on first use). ``check_reachable`` (default true) waits for SSH to answer.
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
        "host_key",
    )

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        options = super().validate_options(options)
        if not options.get("driver"):
            raise ConfigError(
                "libcloud: the 'driver' option is required (e.g. ec2, gce, openstack)"
            )
        if options.get("host_key", "user_data") not in HOST_KEY_SOURCES:
            raise ConfigError(
                f"libcloud: host_key must be one of {', '.join(HOST_KEY_SOURCES)},"
                f" not {options['host_key']!r}"
            )
        if not isinstance(options.get("driver_kwargs") or {}, dict):
            raise ConfigError("libcloud: driver_kwargs must be a mapping")
        return options

    @classmethod
    def is_configured(cls, options: dict[str, Any]) -> bool:
        return bool(options.get("key"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._driver: Any = None
        self._node_created: dict[str, float] = {}
        self.extras = EXTRAS.get(self.options["driver"], DriverExtras())

    async def _call(self, method: str, *args: Any, not_found: bool = False, **kwargs: Any) -> Any:
        """One driver call on corc's slow pool (``call_blocking``: libcloud blocks); errors
        become ours.

        ``method`` names a driver method or, with a ``extras.`` prefix, a DriverExtras method
        (called with the driver first). With ``not_found``, the provider's "no such node" answer
        becomes ResourceNotFound.
        """
        driver = await self._get_driver()
        if method.startswith("extras."):
            func = getattr(self.extras, method.removeprefix("extras."))
            args = (driver, *args)
        else:
            func = getattr(driver, method)
        try:
            return await self.call_blocking(func, *args, **kwargs)
        except Exception as error:  # drivers raise many LibcloudError/BaseHTTPError variants
            if not_found and self.extras.is_not_found(error):
                raise ResourceNotFound(
                    f"libcloud {self.options['driver']} has no such node ({_short(error)})"
                ) from None
            raise ProviderError(
                f"libcloud {self.options['driver']} {method.removeprefix('extras.')} failed:"
                f" {_short(error)}"
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
            try:
                self._driver = driver_class(
                    self.options.get("key"),
                    self.options.get("secret"),
                    **(self.options.get("driver_kwargs") or {}),
                )
            except TypeError as error:
                raise ConfigError(f"libcloud {self.options['driver']}: {error}") from None
        return self._driver

    async def list_shapes(self) -> list[Shape]:
        return [shape for shape, _ in await self._sizes()]

    def _cache_key(self, what: str, *args: Any) -> str:
        """A catalogue key: ``what`` and ``args`` for this driver, endpoint and account."""
        return json.dumps(
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

    async def _cached(self, what: str, method: str, *args: Any) -> Any:
        key = self._cache_key(what, *args)
        value = CATALOGUE.get(key)
        if value is _MISSING:
            value = await self._call(method, *args)
            CATALOGUE.put(key, value)
        return value

    async def _sizes(self) -> list[tuple[Shape, Any]]:
        """(shape, libcloud size) for every size with a known CPU count and memory."""
        key = self._cache_key("shapes")
        pairs = CATALOGUE.get(key)
        if pairs is not _MISSING:
            return pairs
        sizes = await self._cached("sizes", "list_sizes")
        pairs = []
        for size, cpu, gpus in await self._call("extras.describe_sizes", sizes):
            if cpu <= 0 or not size.ram:
                continue
            shape = Shape(size.id, cpu, size.ram / 1024, gpus, price=size.price or None)
            pairs.append((shape, size))
        CATALOGUE.put(key, pairs)
        return pairs

    async def _choose_size(self, config: ResourceConfig) -> tuple[Shape, Any]:
        """The smallest size that fits; the choice is kept in the catalogue with the sizes (the
        same request from the same account gets the same size without going over ~800 again)."""
        wanted = self.options.get("size") or ""
        key = self._cache_key("choice", config.cpu, config.memory_gb, config.gpus, wanted)
        chosen = CATALOGUE.get(key)
        if chosen is not _MISSING:
            return chosen
        sizes = await self._sizes()
        if wanted:
            sizes = [(s, z) for s, z in sizes if wanted in (z.id, z.name)]
            if not sizes:
                raise ConfigError(f"libcloud: the provider has no size {wanted!r} (option 'size')")
        choice = choose_shape(
            [shape for shape, _ in sizes], config.cpu, config.memory_gb, config.gpus
        )
        chosen = next((shape, size) for shape, size in sizes if shape is choice.shape)
        CATALOGUE.put(key, chosen)
        return chosen

    async def _location(self) -> Any:
        wanted = self.options.get("location")
        if not wanted:
            return None
        locations = await self._cached("locations", "extras.locations")
        for name, location in locations:
            if wanted in (name, str(getattr(location, "id", name))):
                return location
        known = ", ".join(name for name, _ in locations) or "none"
        raise ConfigError(f"libcloud: no location {wanted!r} (option 'location'); known: {known}")

    async def _image(self, wanted: str) -> Any:
        """The image by id (one cheap call), else by name."""
        if not wanted:
            raise ConfigError("libcloud: no image given (option 'image' or the request's image)")
        validate_image(wanted)
        try:
            image = await self._cached("image", "get_image", wanted)
            if image is not None:
                return image
        except ProviderError:
            pass
        matches = await self._cached("images_named", "extras.images_named", wanted)
        if not matches:
            raise ConfigError(f"libcloud: no image with id or name {wanted!r}")
        return matches[0]

    async def _key_pair(self, credentials: SSHCredentials) -> str:
        name = "corc-" + hashlib.sha256(credentials.public_key.encode()).hexdigest()[:16]
        key = self._cache_key("key_pair", name)
        if CATALOGUE.get(key) is not _MISSING:
            return name
        existing = {pair.name for pair in await self._call("list_key_pairs")}
        if name not in existing:
            await self._call("import_key_pair_from_string", name, credentials.public_key)
        CATALOGUE.put(key, True)
        return name

    async def create_resource(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        validate_resource_name(config.name, "the machine name")
        _, size = await self._choose_size(config)
        image = await self._image(config.image or self.options.get("image") or "")
        location = await self._location()
        key_name = await self._key_pair(credentials) if credentials is not None else None
        driver = await self._get_driver()
        user_data, host_key = None, None
        if self.options.get("host_key", "user_data") == "user_data":
            if not self.extras.takes_user_data(driver):
                raise ConfigError(
                    f"libcloud {self.options['driver']} cannot pass user data: set host_key to"
                    " 'console' or 'none'"
                )
            user_data, host_key = host_key_user_data()
        kwargs = self.extras.create_kwargs(driver, tags, key_name, location, user_data)
        # One call: tags travel with the create request, so nothing exists untagged.
        node = await self._call("create_node", name=config.name, size=size, image=image, **kwargs)
        self._node_created[node.id] = time.monotonic()
        self.note_created(node.id)
        resource = self._to_resource(node)
        resource.host_key = host_key
        resource.details["shape"] = size.id
        if location is not None:
            resource.details["location"] = self.options["location"]
        return resource

    def _to_resource(self, node: Any) -> Resource:
        state = _STATES.get(str(node.state).lower(), str(node.state).lower())
        return Resource(
            provider=self.provider,
            id=node.id,
            state=state,
            addresses=list(node.public_ips or []) + list(node.private_ips or []),
            username=self.options.get("ssh_username", ""),
            details={"name": node.name, "tags": self.extras.tags(node)},
        )

    async def get_resource_state(self, resource_id: str) -> Resource:
        node = await self._call("extras.get_node", resource_id, not_found=True)
        if node is None:
            raise ResourceNotFound(f"libcloud has no node {resource_id}")
        resource = self._to_resource(node)
        if self.resource is not None and self.resource.id == resource_id:
            resource.host_key = self.resource.host_key
        return resource

    def host_key_required(self) -> bool:
        return self.options.get("host_key", "user_data") != "none"

    async def fetch_host_key(self, resource: Resource) -> str | None:
        """The key corc installed (``user_data``) or the one cloud-init printed to the console
        (``console``; None until it has)."""
        if resource.host_key or self.options.get("host_key", "user_data") != "console":
            return resource.host_key
        node = await self._call("extras.get_node", resource.id, not_found=True)
        if node is None:
            raise ResourceNotFound(f"libcloud has no node {resource.id}")
        return host_key_from_console(await self._call("extras.console_output", node))

    async def delete_resource(self, resource_id: str) -> None:
        """Destroy the node by id (one call). A "not found" for a node this orchestrator created
        moments ago is the provider's eventual consistency, not absence: retried for up to
        ``CONSISTENCY_WINDOW`` seconds after the create."""
        from libcloud.compute.base import Node
        from libcloud.compute.types import NodeState

        driver = await self._get_driver()
        node = Node(resource_id, None, NodeState.UNKNOWN, [], [], driver)
        delay = 0.1
        while True:
            try:
                await self._call("destroy_node", node, not_found=True)
                return
            except ResourceNotFound:
                created = self._node_created.get(resource_id)
                if created is None or time.monotonic() - created > CONSISTENCY_WINDOW:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def list_resources(self, tags: dict[str, str] | None = None) -> list[Resource]:
        nodes = await self._call("extras.list_nodes", tags or {TAG: "true"})
        return [r for r in map(self._to_resource, nodes) if r.state != "terminated"]


def _short(error: Exception) -> str:
    """An SDK error as one line of at most 300 characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
