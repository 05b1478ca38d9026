"""Configurers that fail on purpose, to inject failures at the configuring step of a spawn."""

from __future__ import annotations

import asyncio
from typing import Any

from corc_core.configurer import ConfigurationFailed


class FailingConfigurer:
    """Fails as a broken playbook would."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    async def configure(self, host: str, port: int, *args: Any) -> None:
        raise ConfigurationFailed(f"configuring {host} failed at 'install packages': injected")


class HangingConfigurer:
    """Never finishes (a stuck playbook): only the start timeout ends it."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    async def configure(self, host: str, port: int, *args: Any) -> None:
        await asyncio.sleep(3600)
