"""Providers are plugins: entry points in the ``corc_core.providers`` group."""

from __future__ import annotations

from importlib.metadata import entry_points

from .errors import ConfigError
from .orchestrator import Orchestrator

GROUP = "corc_core.providers"


def provider_names() -> list[str]:
    return sorted(entry.name for entry in entry_points(group=GROUP))


def get_provider(name: str) -> type[Orchestrator]:
    """The Orchestrator class registered as ``name``; a ConfigError lists the known names."""
    matches = [entry for entry in entry_points(group=GROUP) if entry.name == name]
    if not matches:
        raise ConfigError(
            f"unknown provider {name!r}; installed providers: {', '.join(provider_names())}"
        )
    provider = matches[0].load()
    if not (isinstance(provider, type) and issubclass(provider, Orchestrator)):
        raise ConfigError(f"provider {name!r} ({matches[0].value}) is not an Orchestrator")
    return provider
