"""Allow-lists for the values that reach a cloud API, a playbook or a remote shell.

Values that come from a user, a login header or a spawn option (usernames, image names, paths,
resource names) are checked here *before* they are used, each against the characters it may hold,
so that nothing can smuggle template syntax (``{{ ... }}``), shell metacharacters or extra lines
into what corc runs. Each check raises ``ConfigError`` with one sentence naming the value's role
and what is allowed; on success it returns the value unchanged.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from .errors import ConfigError

# Account names as useradd accepts them by default (no upper case, no leading '-' or digit).
_USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
# Image ids or names: ami-…, OCI OCIDs, OpenStack UUIDs, "Ubuntu 22.04 LTS", registry/ns/img:tag@sha256:….
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/@+-]{0,254}$")
# Machine names (libcloud node names, OCI display names): what every provider accepts.
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PATH_PART = re.compile(r"^[A-Za-z0-9._+@-]+$")
_COMMAND = re.compile(r"^[A-Za-z0-9._+-]{1,128}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_KEY_TYPE = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+)$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_COMMENT = re.compile(r"^[A-Za-z0-9 ._:@+=/-]{0,200}$")


def _shown(value: object) -> str:
    """The value for an error message: quoted, and cut so a huge value cannot flood a log."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be text, not {type(value).__name__}")
    return value


def validate_username(value: object, what: str = "the user name") -> str:
    """A POSIX account name: 1-32 of a-z 0-9 _ . -, starting with a letter or '_'."""
    text = _string(value, what)
    if not _USERNAME.match(text):
        raise ConfigError(
            f"{what} {_shown(text)} is not a valid account name: use 1-32 lower-case letters,"
            " digits, '_', '.' or '-', starting with a letter or '_'"
        )
    return text


def validate_image(value: object, what: str = "the image") -> str:
    """An image id or name: letters, digits, spaces and ``._:/@+-``, at most 255 characters."""
    text = _string(value, what)
    if not _IMAGE.match(text) or text != text.strip():
        raise ConfigError(
            f"{what} {_shown(text)} is not a valid image id or name: use letters, digits,"
            " spaces and ._:/@+- (at most 255, starting with a letter or digit)"
        )
    return text


def validate_resource_name(value: object, what: str = "the machine name") -> str:
    """A machine name every provider accepts: 1-63 of letters, digits and ``._-``."""
    text = _string(value, what)
    if not _RESOURCE_NAME.match(text):
        raise ConfigError(
            f"{what} {_shown(text)} is not a valid machine name: use 1-63 letters, digits,"
            " '.', '_' or '-', starting with a letter or digit"
        )
    return text


def resource_name(*parts: str) -> str:
    """A valid machine name made from arbitrary parts (e.g. user and server name).

    Safe characters are kept for readability; if anything had to change, a short hash of the
    original parts is appended so that two different inputs never map to the same name.
    """
    joined = "-".join(parts)
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", joined).strip("-._") or "corc"
    if cleaned == joined and len(cleaned) <= 63:
        return cleaned
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]
    return f"{cleaned[:52].rstrip('-._')}-{digest}"


def validate_path(value: object, what: str = "the path") -> str:
    """An absolute path of plain names (letters, digits, ``._+@-``), without ``..``."""
    text = _string(value, what)
    parts = text.split("/")
    if (
        not text.startswith("/")
        or len(text) > 1024
        or any(p in (".", "..") or (p and not _PATH_PART.match(p)) for p in parts)
    ):
        raise ConfigError(
            f"{what} {_shown(text)} is not a valid path: use an absolute path of letters,"
            " digits and ._+@- without '..'"
        )
    return text


def validate_search_path(value: object, what: str = "the search path") -> str:
    """A ``PATH``-style list of absolute directories separated by ':' (may be empty)."""
    text = _string(value, what)
    for part in filter(None, text.split(":")):
        validate_path(part, f"a directory in {what}")
    return text


def validate_command(value: object, what: str = "the command") -> str:
    """A command name looked up on PATH: letters, digits and ``._+-``, no path, no spaces."""
    text = _string(value, what)
    if not _COMMAND.match(text) or text.startswith("-"):
        raise ConfigError(
            f"{what} {_shown(text)} is not a valid command name: use letters, digits and ._+-"
        )
    return text


def validate_host(value: object, what: str = "the host") -> str:
    """An IP address or a DNS name."""
    text = _string(value, what)
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _HOSTNAME.match(text):
        raise ConfigError(f"{what} {_shown(text)} is not an IP address or a host name")
    return text


def validate_public_key(value: object, what: str = "the public key") -> str:
    """One OpenSSH public key line: ``<type> <base64> [comment]``, nothing else."""
    text = _string(value, what)
    parts = text.strip().split(" ", 2)
    if (
        "\n" in text.strip()
        or len(parts) < 2
        or not _KEY_TYPE.match(parts[0])
        or not _BASE64.match(parts[1])
        or (len(parts) == 3 and not _COMMENT.match(parts[2]))
    ):
        raise ConfigError(f"{what} {_shown(text)} is not a single OpenSSH public key line")
    return text


def validate_known_hosts_line(value: object, what: str = "the known_hosts line") -> str:
    """One ``known_hosts`` line: ``<host patterns> <type> <base64>`` (empty allowed)."""
    text = _string(value, what)
    if not text:
        return text
    hosts, _, key = text.strip().partition(" ")
    if not hosts or not re.match(r"^[A-Za-z0-9.:\[\],*?|=/+-]+$", hosts):
        raise ConfigError(f"{what} {_shown(text)} does not start with host names")
    validate_public_key(key, what)
    return text
