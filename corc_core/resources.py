"""What is asked for (``ResourceConfig``) and what was made (``Resource``)."""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError

_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/=+@-]{1,64}$")


class ResourceType(enum.StrEnum):
    VIRTUAL_MACHINE = "virtual_machine"
    CONTAINER = "container"
    BARE_METAL = "bare_metal"


@dataclass(frozen=True)
class ResourceConfig:
    """The minimum a user asked for: CPUs, memory, GPUs, an image, a resource type."""

    cpu: int = 1
    memory_gb: float = 1.0
    gpus: int = 0
    image: str = ""
    resource_type: ResourceType = ResourceType.VIRTUAL_MACHINE
    name: str = "corc-instance"
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.cpu, int) or isinstance(self.cpu, bool) or not 1 <= self.cpu <= 1024:
            raise ConfigError(f"cpu must be a whole number from 1 to 1024, not {self.cpu!r}")
        if not isinstance(self.memory_gb, int | float) or not 0 < self.memory_gb <= 16384:
            raise ConfigError(f"memory_gb must be a number above 0, not {self.memory_gb!r}")
        if (
            not isinstance(self.gpus, int)
            or isinstance(self.gpus, bool)
            or not 0 <= self.gpus <= 64
        ):
            raise ConfigError(f"gpus must be a whole number from 0 to 64, not {self.gpus!r}")
        try:
            object.__setattr__(self, "resource_type", ResourceType(self.resource_type))
        except ValueError:
            kinds = ", ".join(t.value for t in ResourceType)
            raise ConfigError(
                f"resource_type {self.resource_type!r} is not one of {kinds}"
            ) from None
        for key, value in self.tags.items():
            if not _TAG_KEY.match(str(key)) or len(str(value)) > 256:
                raise ConfigError(f"tag {key!r} is not a valid tag (letters, digits, _.:/=+@-)")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["resource_type"] = self.resource_type.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceConfig:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


@dataclass
class Resource:
    """A machine the provider made: its id, state, addresses, SSH host key (when the provider can
    report one) and the GPUs it owns exclusively (``gpu_ids``, e.g. for ``CUDA_VISIBLE_DEVICES``)."""

    provider: str
    id: str
    state: str
    addresses: list[str] = field(default_factory=list)
    ssh_port: int = 22
    host_key: str | None = None
    username: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    gpu_ids: list[str] = field(default_factory=list)

    @property
    def tags(self) -> dict[str, str]:
        """The tags the provider reported (kept in ``details["tags"]``)."""
        return dict(self.details.get("tags") or {})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Resource:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
