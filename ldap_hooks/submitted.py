"""Data submitted for a user: what the front proxy said (trusted) and what the user posted.

``submit_spawner_attribute_keys`` is a path into that data: ``("User", "CERT")`` names
``data["User"]["CERT"]``, as in the original ldap-hooks. The value there is the certificate DN the new
entry is named after; ``SPAWNER_SUBMIT_DATA`` attributes are read from it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .entry import parse_submitted_dn
from .errors import LDAPHookError

_MISSING = object()


@dataclass
class Submitted:
    """``trusted``: values from the front proxy's headers; ``posted``: what the user posted.

    Posted data (HeaderAuthenticator's ``/hub/set-user-data``, or the ``submit_spawner_attribute``
    object) is user-controlled: it never names the entry (its DN) nor identifies it.
    """

    trusted: dict[str, Any] = field(default_factory=dict)
    posted: dict[str, Any] = field(default_factory=dict)


def submit_path(keys: str | Iterable[str]) -> tuple[str, ...]:
    """The configured path as a tuple: a string is a path of one key."""
    return (keys,) if isinstance(keys, str) else tuple(keys)


def value_at(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """``data[path[0]][path[1]]...``, or ``_MISSING`` when a key is absent or not a dict."""
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def submitted_dn(path: tuple[str, ...], submitted: Submitted) -> str | None:
    """The DN at ``path`` in the trusted data; None when no path is configured.

    A missing value is an error that says where the path breaks, and that posted data does not count.
    """
    if not path:
        return None
    where = ".".join(path)
    value = value_at(submitted.trusted, path)
    if value is not _MISSING:
        if not isinstance(value, str):
            raise LDAPHookError(
                f"user data {where} is a {type(value).__name__}, not a distinguished name string"
            )
        return value
    if value_at(submitted.posted, path) is not _MISSING:
        raise LDAPHookError(
            f"user data has no {where} from the front proxy; a value posted to"
            " /hub/set-user-data cannot choose which LDAP entry or certificate identity you get"
        )
    raise LDAPHookError(f"user data has no {where}: {_where_it_breaks(submitted.trusted, path)}")


def _where_it_breaks(data: Mapping[str, Any], path: tuple[str, ...]) -> str:
    value: Any = data
    for depth, key in enumerate(path):
        if not isinstance(value, Mapping):
            parent = ".".join(path[:depth])
            return (
                f"{parent} is a {type(value).__name__}, not an object (is its header parsed with"
                " JSONParser?)"
            )
        if key not in value:
            if depth == 0:
                return f"the login's headers gave no {key!r} (check HeaderAuthenticator.allowed_headers)"
            return f"{'.'.join(path[:depth])} has no {key!r}"
        value = value[key]
    return "unknown reason"  # pragma: no cover - value_at found it


def submitted_value(
    path: tuple[str, ...],
    data: Mapping[str, Any],
    attribute: str,
    replace_with: Mapping[str, str],
    allowed: Iterable[str],
) -> Any:
    """``attribute`` from one set of submitted data, or None.

    Read from the value at ``path`` (a DN string: its ``attribute=`` part; an object: its key), else
    from a top-level key of that name holding a string or a number.
    """
    value = value_at(data, path) if path else _MISSING
    if isinstance(value, Mapping):
        found = value.get(attribute)
        if isinstance(found, str | int):
            return found
    elif isinstance(value, str):
        pairs = parse_submitted_dn(value, replace_with, allowed)
        found = next((v for a, v in pairs if a.lower() == attribute.lower()), None)
        if found is not None:
            return found
    top = data.get(attribute)
    return top if isinstance(top, str | int) else None
