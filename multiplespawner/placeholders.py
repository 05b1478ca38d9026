"""Per-spawn placeholders in template strings: ``{JUPYTERHUB_USER}``, ``{endpoint}``, ...

Placeholders are checked when the configuration is loaded (an unknown name is a config error) and
filled at spawn time. A string that is exactly one placeholder takes the value's own type, so
``"{gpus}"`` gives the integer 2, not the string ``"2"``. ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import string
from typing import Any

from .errors import ConfigError

#: Known at the start of every spawn (who asks, and what they chose).
SPAWN_PLACEHOLDERS: dict[str, str] = {
    "JUPYTERHUB_USER": "the hub user's name",
    "username": "the hub user's name",
    "JUPYTERHUB_SERVER_NAME": "the server's name ('' for the default server)",
    "provider": "the chosen provider",
    "resource_type": "the chosen resource type",
    "deployment": "the chosen deployment's name",
    "image": "the chosen deployment's image",
    "cpu": "the chosen number of CPU cores",
    "memory_gb": "the chosen memory in GB",
    "gpus": "the chosen number of GPUs",
    "minutes": "the chosen session length in minutes",
}

#: Known only once a resource was ordered (and credentials made) for the spawn.
RESOURCE_PLACEHOLDERS: dict[str, str] = {
    "endpoint": "the resource's address",
    "server_public_ip": "the resource's address",
    "ssh_port": "the resource's SSH port",
    "ssh_user": "the user the hub logs in as on the resource",
    "server_host_key": "the resource's SSH host key",
    "auth_key": "the public key the hub logs in with",
    "ssh_key_file": "the private key file the hub logs in with",
    "ssh_certificate_file": "the certificate file the hub logs in with ('' if none)",
    "gpu_ids": "the GPU ids the resource owns, comma-separated",
    "resource_id": "the provider's id of the resource",
}

KNOWN = {**SPAWN_PLACEHOLDERS, **RESOURCE_PLACEHOLDERS}

_FORMATTER = string.Formatter()


def fields(text: str) -> list[str]:
    """The placeholder names in ``text``; a malformed string raises ValueError."""
    names = []
    for _literal, name, spec, conversion in _FORMATTER.parse(text):
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise ValueError(f"'{{{name}...}}' is not a plain placeholder")
        names.append(name)
    return names


def check(value: Any, where: str) -> set[str]:
    """Check every string in ``value`` (nested dicts and lists); return the names used.

    Raises ConfigError naming the key (``where``) of an unknown or malformed placeholder.
    """
    used: set[str] = set()
    if isinstance(value, str):
        try:
            names = fields(value)
        except ValueError as error:
            raise ConfigError(f"{where}: {error} (write {{{{ and }}}} for braces)") from None
        for name in names:
            if name not in KNOWN:
                raise ConfigError(
                    f"{where}: unknown placeholder {{{name}}}; known: {', '.join(sorted(KNOWN))}"
                )
        used.update(names)
    elif isinstance(value, dict):
        for key, item in value.items():
            used |= check(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            used |= check(item, f"{where}[{index}]")
    return used


def fill(value: Any, values: dict[str, Any]) -> Any:
    """``value`` with every placeholder replaced from ``values`` (nested dicts and lists)."""
    if isinstance(value, str):
        names = fields(value)
        if len(names) == 1 and value == "{" + names[0] + "}":
            return values[names[0]]
        return value.format_map(values) if names else value.replace("{{", "{").replace("}}", "}")
    if isinstance(value, dict):
        return {key: fill(item, values) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill(item, values) for item in value]
    return value


def uses_resource(value: Any) -> bool:
    """True when ``value`` needs a placeholder only known once a resource exists."""
    return bool(check(value, "value") & set(RESOURCE_PLACEHOLDERS))
