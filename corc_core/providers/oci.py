"""``oci``: VMs at Oracle Cloud Infrastructure through the oci SDK."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, ClassVar

from ..credentials import SSHCredentials
from ..errors import ConfigError, ProviderError, ResourceNotFound
from ..orchestrator import TAG, Orchestrator
from ..resources import Resource, ResourceConfig
from ..shapes import Shape, choose_shape
from ..threads import run_slow

_STATES = {
    "PROVISIONING": "pending",
    "STARTING": "pending",
    "RUNNING": "running",
    "STOPPING": "stopping",
    "STOPPED": "stopped",
    "TERMINATING": "terminating",
    "TERMINATED": "terminated",
}


class OCIOrchestrator(Orchestrator):
    """VMs at OCI: the smallest shape that fits (fixed, or Flex with a ``shape_config`` granting
    the requested CPUs and memory), the image by OS name and version, the configured VCN and subnet
    reused (made only if absent, never deleted), instances tagged for leak detection.

    Options follow the corc config (appendix H): ``profile`` (``name``, ``compartment_id``,
    ``config_file``), ``instance`` (``availability_domain``, ``operating_system``,
    ``operating_system_version``), ``vcn`` (``display_name``, ``cidr_block``, ``dns_label``,
    ``subnet``). ``sdk_config`` (an inline oci config dict) and ``service_endpoint`` override the
    config file and OCI's endpoints; ``check_reachable`` (default true) waits for SSH.
    """

    provider = "oci"
    option_names: ClassVar[tuple[str, ...]] = (
        "profile",
        "instance",
        "vcn",
        "sdk_config",
        "service_endpoint",
        "ssh_username",
        "cluster",
    )

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        options = super().validate_options(options)
        if not (options.get("profile") or {}).get("compartment_id"):
            raise ConfigError("oci: profile.compartment_id is required")
        return options

    @classmethod
    def is_configured(cls, options: dict[str, Any]) -> bool:
        return bool((options.get("profile") or {}).get("compartment_id"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[str, Any] = {}

    # -- SDK plumbing -----------------------------------------------------------------------------

    def _sdk_config(self) -> dict[str, Any]:
        import oci

        if self.options.get("sdk_config"):
            config = dict(self.options["sdk_config"])
        else:
            profile = self.options.get("profile") or {}
            path = Path(profile.get("config_file") or "~/.oci/config").expanduser()
            try:
                config = oci.config.from_file(str(path), profile.get("name") or "DEFAULT")
            except oci.exceptions.ClientError as error:
                raise ConfigError(f"oci: cannot load {path}: {error}") from None
        try:
            oci.config.validate_config(config)
        except oci.exceptions.InvalidConfig as error:
            raise ConfigError(f"oci: the SDK configuration is invalid: {error}") from None
        return config

    def _client(self, kind: str) -> Any:
        if kind not in self._clients:
            import oci

            classes = {
                "compute": oci.core.ComputeClient,
                "network": oci.core.VirtualNetworkClient,
                "identity": oci.identity.IdentityClient,
            }
            extra = {}
            if self.options.get("service_endpoint"):
                extra["service_endpoint"] = self.options["service_endpoint"]
            self._clients[kind] = classes[kind](self._sdk_config(), **extra)
        return self._clients[kind]

    async def _call(
        self, kind: str, method: str, *args: Any, paginate: bool = False, **kwargs: Any
    ):
        """One SDK call (all pages with ``paginate``) in a worker thread; errors become ours."""
        import oci

        client = self._client(kind)

        def call() -> Any:
            if paginate:
                return oci.pagination.list_call_get_all_results(
                    getattr(client, method), *args, **kwargs
                ).data
            return getattr(client, method)(*args, **kwargs).data

        try:
            return await self.call_blocking(call)
        except oci.exceptions.ServiceError as error:
            if error.status == 404:
                raise ResourceNotFound(f"oci: {method}: {error.message}") from None
            raise ProviderError(
                f"oci: {method} failed ({error.status} {error.code}): {error.message}"
            ) from None
        except (oci.exceptions.RequestException, OSError) as error:
            raise ProviderError(f"oci: {method} failed: {error}") from None

    @property
    def _compartment(self) -> str:
        return self.options["profile"]["compartment_id"]

    # -- provider hooks ---------------------------------------------------------------------------

    async def _availability_domain(self) -> str:
        configured = (self.options.get("instance") or {}).get("availability_domain")
        if configured:
            return configured
        domains = await self._call("identity", "list_availability_domains", self._compartment)
        if not domains:
            raise ProviderError("oci: the compartment has no availability domains")
        return domains[0].name

    async def list_shapes(self) -> list[Shape]:
        domain = await self._availability_domain()
        shapes = await self._call(
            "compute", "list_shapes", self._compartment, availability_domain=domain, paginate=True
        )
        result = []
        for shape in shapes:
            flexible = bool(shape.is_flexible)
            memory = shape.memory_options
            ocpu = shape.ocpu_options
            result.append(
                Shape(
                    name=shape.shape,
                    cpu=float(ocpu.min if flexible and ocpu else shape.ocpus or 0),
                    memory_gb=float(
                        memory.min_in_g_bs if flexible and memory else shape.memory_in_gbs or 0
                    ),
                    gpus=int(shape.gpus or 0),
                    flexible=flexible,
                    max_cpu=float(ocpu.max) if flexible and ocpu else 0,
                    max_memory_gb=float(memory.max_in_g_bs) if flexible and memory else 0,
                    memory_per_cpu_gb=(
                        (float(memory.min_per_ocpu_in_gbs), float(memory.max_per_ocpu_in_gbs))
                        if flexible and memory
                        else (0, 0)
                    ),
                )
            )
        return result

    async def _image(self, shape: str, wanted: str) -> str:
        instance = self.options.get("instance") or {}
        images = await self._call(
            "compute",
            "list_images",
            self._compartment,
            operating_system=instance.get("operating_system") or None,
            operating_system_version=instance.get("operating_system_version") or None,
            shape=shape,
            paginate=True,
        )
        if wanted:
            images = [i for i in images if wanted in (i.id, i.display_name)]
        if not images:
            raise ConfigError(
                f"oci: no image {wanted or ''} for {instance.get('operating_system')}"
                f" {instance.get('operating_system_version')} on {shape}".replace("  ", " ")
            )
        return images[0].id

    async def _subnet(self) -> str:
        """The configured VCN and subnet, made only when absent (and never deleted by us)."""
        import oci

        vcn_options = self.options.get("vcn") or {}
        subnet_options = vcn_options.get("subnet") or {}
        vcn_name = vcn_options.get("display_name") or "gridhub"
        vcns = [
            v
            for v in await self._call("network", "list_vcns", self._compartment, paginate=True)
            if v.display_name == vcn_name
        ]
        if vcns:
            vcn_id = vcns[0].id
        else:
            vcn_id = (
                await self._call(
                    "network",
                    "create_vcn",
                    oci.core.models.CreateVcnDetails(
                        compartment_id=self._compartment,
                        display_name=vcn_name,
                        cidr_block=vcn_options.get("cidr_block") or "10.0.0.0/16",
                        dns_label=vcn_options.get("dns_label") or None,
                    ),
                )
            ).id
        subnet_name = subnet_options.get("display_name") or "gridhub"
        subnets = [
            s
            for s in await self._call(
                "network", "list_subnets", self._compartment, vcn_id=vcn_id, paginate=True
            )
            if s.display_name == subnet_name
        ]
        if subnets:
            return subnets[0].id
        return (
            await self._call(
                "network",
                "create_subnet",
                oci.core.models.CreateSubnetDetails(
                    compartment_id=self._compartment,
                    vcn_id=vcn_id,
                    display_name=subnet_name,
                    cidr_block=subnet_options.get("cidr_block") or "10.0.1.0/24",
                    dns_label=subnet_options.get("dns_label") or None,
                ),
            )
        ).id

    async def create_resource(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        import oci

        choice = choose_shape(await self.list_shapes(), config.cpu, config.memory_gb, config.gpus)
        domain = await self._availability_domain()
        image_id = await self._image(choice.shape.name, config.image)
        subnet_id = await self._subnet()
        details = oci.core.models.LaunchInstanceDetails(
            availability_domain=domain,
            compartment_id=self._compartment,
            display_name=config.name,
            shape=choice.shape.name,
            shape_config=oci.core.models.LaunchInstanceShapeConfigDetails(
                ocpus=choice.cpu, memory_in_gbs=choice.memory_gb
            )
            if choice.shape.flexible
            else None,
            source_details=oci.core.models.InstanceSourceViaImageDetails(image_id=image_id),
            create_vnic_details=oci.core.models.CreateVnicDetails(
                subnet_id=subnet_id, assign_public_ip=True
            ),
            metadata={"ssh_authorized_keys": credentials.public_key} if credentials else {},
            freeform_tags=tags,
        )
        instance = await self._call("compute", "launch_instance", details)
        self.note_created(instance.id)
        resource = self._to_resource(instance, [])
        resource.details.update(
            shape=choice.shape.name,
            ocpus=choice.cpu,
            memory_gb=choice.memory_gb,
            subnet_id=subnet_id,
        )
        return resource

    def _to_resource(self, instance: Any, addresses: list[str]) -> Resource:
        return Resource(
            provider=self.provider,
            id=instance.id,
            state=_STATES.get(instance.lifecycle_state, str(instance.lifecycle_state).lower()),
            addresses=addresses,
            username=self.options.get("ssh_username", "opc"),
            details={"tags": dict(instance.freeform_tags or {}), "shape": instance.shape},
        )

    async def get_resource_state(self, resource_id: str) -> Resource:
        instance = await self._call("compute", "get_instance", resource_id)
        addresses: list[str] = []
        if instance.lifecycle_state == "RUNNING":
            attachments = await self._call(
                "compute",
                "list_vnic_attachments",
                self._compartment,
                instance_id=resource_id,
                paginate=True,
            )
            for attachment in attachments:
                vnic = await self._call("network", "get_vnic", attachment.vnic_id)
                addresses += [ip for ip in (vnic.public_ip, vnic.private_ip) if ip]
        return self._to_resource(instance, addresses)

    async def delete_resource(self, resource_id: str) -> None:
        """Terminate the instance and wait (the SDK's waiter) until OCI says it is gone."""
        import oci

        instance = await self._call("compute", "get_instance", resource_id)
        if instance.lifecycle_state == "TERMINATED":
            raise ResourceNotFound(f"oci: {resource_id} is already terminated")
        await self._call("compute", "terminate_instance", resource_id)
        compute = self._client("compute")

        def wait() -> None:
            oci.wait_until(
                compute,
                compute.get_instance(resource_id),
                "lifecycle_state",
                "TERMINATED",
                max_wait_seconds=600,
                max_interval_seconds=max(1, int(self.poll_interval)),
                succeed_on_not_found=True,
            )

        self.api_calls += 1
        await run_slow(wait)

    # -- host keys --------------------------------------------------------------------------------

    def host_key_required(self) -> bool:
        return bool(self.options.get("check_reachable", True))

    async def fetch_host_key(self, resource: Resource) -> str | None:
        """The host key cloud-init printed on the serial console at first boot (None: not yet)."""
        import oci

        if resource.host_key:
            return resource.host_key
        history = await self._call(
            "compute",
            "capture_console_history",
            oci.core.models.CaptureConsoleHistoryDetails(instance_id=resource.id),
        )
        for _ in range(50):
            if history.lifecycle_state in ("SUCCEEDED", "FAILED"):
                break
            await asyncio.sleep(min(self.poll_interval, 1))
            history = await self._call("compute", "get_console_history", history.id)
        content = b""
        if history.lifecycle_state == "SUCCEEDED":
            content = await self._call("compute", "get_console_history_content", history.id)
        try:
            await self._call("compute", "delete_console_history", history.id)
        except ProviderError:
            pass  # histories expire on their own
        text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
        return host_key_from_console(text)

    async def list_resources(self, tags: dict[str, str] | None = None) -> list[Resource]:
        wanted = tags or {TAG: "true"}
        instances = await self._call("compute", "list_instances", self._compartment, paginate=True)
        return [
            self._to_resource(i, [])
            for i in instances
            if i.lifecycle_state != "TERMINATED"
            and all((i.freeform_tags or {}).get(k) == v for k, v in wanted.items())
        ]


_KEYS = re.compile(
    r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.DOTALL
)
_KEY = re.compile(r"((?:ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+)")
_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa")


def host_key_from_console(text: str) -> str | None:
    """The preferred host key in the first block cloud-init printed (printed at first boot, by
    root, before any user could write to the console)."""
    block = _KEYS.search(text)
    if block is None:
        return None
    keys = {key.split()[0]: key for key in _KEY.findall(block.group(1))}
    for kind in _PREFERENCE:
        if kind in keys:
            return keys[kind]
    return next(iter(keys.values()), None)
