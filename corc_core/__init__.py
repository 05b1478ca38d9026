"""corc_core: async cloud orchestration: order a machine that fits, reach it, configure it, remove it."""

from .credentials import SSHAuthenticator, SSHCredentials
from .errors import (
    ConfigError,
    CorcError,
    HostKeyMismatch,
    NoMatchingShape,
    ProviderError,
    ResourceNotFound,
    SetupFailed,
)
from .orchestrator import Orchestrator
from .registry import get_provider, provider_names
from .resources import Resource, ResourceConfig, ResourceType
from .shapes import Choice, Shape, choose_shape
from .store import Record, RecordStore

__all__ = [
    "Choice",
    "ConfigError",
    "CorcError",
    "HostKeyMismatch",
    "NoMatchingShape",
    "Orchestrator",
    "ProviderError",
    "Record",
    "RecordStore",
    "Resource",
    "ResourceConfig",
    "ResourceNotFound",
    "ResourceType",
    "SSHAuthenticator",
    "SSHCredentials",
    "SetupFailed",
    "Shape",
    "choose_shape",
    "get_provider",
    "provider_names",
]
