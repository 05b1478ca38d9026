"""Pure helpers: submitted DN strings, POSIX names, ``{placeholder}`` templates, DN building."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ldap3.utils.dn import escape_rdn

from .errors import LDAPHookError

_FIELD = re.compile(r"\{([^{}]*)\}")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
POSIX_NAME_MAX = 32


def posix_name(hub_name: str) -> str:
    """A valid POSIX user name for a hub user name (lower case, ``[a-z0-9_-]``, <= 32 chars)."""
    name = re.sub(r"[^a-z0-9_-]", "_", hub_name.lower())
    if not name or not re.match(r"[a-z_]", name[0]):
        name = "u" + name
    return name[:POSIX_NAME_MAX]


def parse_submitted_dn(
    value: Any, replace_with: Mapping[str, str], allowed: Iterable[str]
) -> list[tuple[str, str]]:
    """Split a submitted Distinguished Name string into (attribute, value) pairs.

    ``replace_with`` first maps the submitted separators onto ``+`` (the thesis uses
    ``{"/": "+"}`` for ``/C=DK/O=NBI/CN=Jane``). Only attributes in ``allowed`` are accepted (case
    insensitive, returned with the allowed spelling), each at most once, so a submitted string cannot
    name attributes of its own (``uid``, ``uidNumber``, ``objectClass``, ...).
    """
    if not isinstance(value, str) or not value.strip():
        raise LDAPHookError("the submitted distinguished name is empty or not a string")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise LDAPHookError("the submitted distinguished name contains control characters")
    canonical = {name.lower(): name for name in allowed}
    text = value
    for old, new in replace_with.items():
        text = text.replace(old, new)
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for component in filter(None, (part.strip() for part in text.split("+"))):
        attribute, sep, attribute_value = component.partition("=")
        key = attribute.strip().lower()
        if not sep or not attribute_value.strip():
            raise LDAPHookError(
                f"the submitted distinguished name has a part without a value: {attribute.strip()!r}"
            )
        if key not in canonical:
            raise LDAPHookError(
                f"the submitted distinguished name may not set {attribute.strip()!r}"
                f" (accepted: {', '.join(canonical.values())})"
            )
        if key in seen:
            raise LDAPHookError(f"the submitted distinguished name sets {attribute!r} twice")
        seen.add(key)
        pairs.append((canonical[key], attribute_value.strip()))
    if not pairs:
        raise LDAPHookError("the submitted distinguished name has no attribute=value parts")
    return pairs


def build_dn(rdn: Iterable[tuple[str, str]], base_dn: str) -> str:
    """An escaped (RFC 4514) DN: the (multi-valued) RDN from ``rdn`` under ``base_dn``."""
    parts = []
    for attribute, value in rdn:
        if "\0" in value:
            raise LDAPHookError(f"the value of {attribute} contains a NUL character")
        parts.append(f"{attribute}={escape_rdn(value)}")
    return "+".join(parts) + ("," + base_dn if base_dn else "")


def template_fields(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template; anything else in braces is an error."""
    fields = _FIELD.findall(template)
    for field in fields:
        if not _FIELD_NAME.match(field):
            raise LDAPHookError(f"template {template!r}: {{{field}}} is not a valid placeholder")
    return fields


def missing_fields(template: str, names: Iterable[str]) -> list[str]:
    """The placeholders of ``template`` that none of ``names`` provides (case-insensitive)."""
    known = {name.lower() for name in names}
    return [field for field in template_fields(template) if field.lower() not in known]


def fill(template: str, values: Mapping[str, Any], what: str) -> str:
    """Replace each ``{name}`` with its value; a missing value is an error naming it."""
    lowered = {key.lower(): value for key, value in values.items()}
    if missing := missing_fields(template, values):
        raise LDAPHookError(f"{what}: no value for {{{missing[0]}}}; check dynamic_attributes")

    def value_of(match: re.Match[str]) -> str:
        field = match.group(1)
        return str(values[field] if field in values else lowered[field.lower()])

    return _FIELD.sub(value_of, template)
