"""corc's exceptions: each message is one line that says what failed and what to do about it."""

MAX_MESSAGE = 500


def one_line(text: object) -> str:
    """``text`` on one line (whitespace collapsed), cut to a length a person reads."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


class CorcError(Exception):
    """Base class of every corc failure; the message is always a single line."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(message), *args)


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


class TearDownFailed(CorcError):
    """A resource could not be deleted; its record stays so that ``corc reap`` retries."""


class HostKeyMismatch(CorcError):
    """A host presented a different SSH host key than the one recorded for it."""
