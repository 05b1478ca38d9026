"""corc's exceptions: each message says what failed and what to do about it."""


class CorcError(Exception):
    """Base class of every corc failure."""


class ConfigError(CorcError):
    """A configuration value or a requested option is invalid."""


class NoMatchingShape(CorcError):
    """No shape (size) offered by the provider meets the requested CPU, memory and GPUs."""


class ProviderError(CorcError):
    """The provider's API refused or failed a call."""


class ResourceNotFound(CorcError):
    """The provider has no resource with that id (any more)."""


class SetupFailed(CorcError):
    """Setting up a resource failed; whatever had been created was torn down."""


class HostKeyMismatch(CorcError):
    """A host presented a different SSH host key than the one recorded for it."""
