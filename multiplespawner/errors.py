"""The MultipleSpawner's exceptions; each message is one sentence a person can act on."""

from __future__ import annotations

from tornado import web


class ConfigError(ValueError):
    """The templates, deployments or providers configuration is invalid; names the bad key."""


class OptionsError(web.HTTPError):
    """A spawn request asked for something unknown, out of range or not allowed (HTTP 400)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(status_code, log_message=message.replace("%", "%%"), reason=None)
        self.message = message

    @property
    def jupyterhub_message(self) -> str:
        return self.message

    def __str__(self) -> str:
        return self.message


class SpawnFailed(RuntimeError):
    """A start that failed (and was torn down); the hub shows ``jupyterhub_message``."""

    @property
    def jupyterhub_message(self) -> str:
        return str(self)
