"""The pre_spawn_hooks: find or create the user's POSIX entry, then configure the spawner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .directory import Directory
from .entry import build_dn, fill, missing_fields, parse_submitted_dn, posix_name
from .errors import LDAPHookError
from .settings import (
    INCREMENT_ATTRIBUTE,
    LDAP,
    LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
    LDAP_SEARCH_ATTRIBUTE_QUERY,
    SOURCES,
    SPAWNER_ATTRIBUTE,
    SPAWNER_SUBMIT_DATA,
    SPAWNER_USER_ATTRIBUTE,
    LDAPHooks,
)

OWNER_PREFIX = "jupyterhub-user:"
_MISSING = object()


@dataclass
class Submitted:
    """Data submitted for the user: ``trusted`` (authenticator headers) and ``posted`` (the user)."""

    trusted: dict[str, Any] = field(default_factory=dict)
    posted: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    """Everything the blocking part needs, gathered on the event loop."""

    hub_name: str
    submitted: Submitted
    spawner_values: dict[str, Any]


def hello_hook(spawner: Any) -> None:
    """Make the spawner log "Hello World" (thesis listing 6)."""
    spawner.log.info("Hello World")


async def setup_ldap_entry_hook(spawner: Any) -> None:
    """pre_spawn_hook: find or create the user's LDAP entry and set spawner attributes from it.

    Settings come from ``c.LDAPHooks`` and ``LDAP.<name>``. Any failure raises ``LDAPHookError``,
    which stops the spawn with its message on the spawn page.
    """
    hooks = LDAPHooks(config=spawner.config, **LDAP.settings())
    await provision(hooks, spawner)


async def provision(hooks: LDAPHooks, spawner: Any) -> dict[str, str]:
    """Find or create the entry for ``spawner.user``; set spawner attributes; return the entry."""
    check_settings(hooks)
    request = Request(
        hub_name=spawner.user.name,
        submitted=await _submitted(hooks, spawner),
        spawner_values=_spawner_values(hooks, spawner),
    )
    try:
        entry = await asyncio.to_thread(_find_or_create, hooks, request)
    except LDAPHookError as error:
        spawner.log.error("ldap_hooks: %s (user %s, server %s)", error, request.hub_name, hooks.url)
        raise
    _set_spawner_attributes(hooks, spawner, entry)
    spawner.log.info(
        "ldap_hooks: %s is %s in LDAP", request.hub_name, entry.get("dn", "(unknown dn)")
    )
    return entry


def check_settings(hooks: LDAPHooks) -> None:
    for attribute, source in hooks.dynamic_attributes.items():
        if source not in SOURCES:
            raise LDAPHookError(f"dynamic_attributes[{attribute!r}]: unknown source {source!r}")
    for attribute, operation in hooks.search_result_operations.items():
        if operation.get("action") != INCREMENT_ATTRIBUTE or not operation.get("modify_dn"):
            raise LDAPHookError(
                f"search_result_operations[{attribute!r}] needs action INCREMENT_ATTRIBUTE"
                " and a modify_dn"
            )
    if not hooks.unique_object_attributes:
        raise LDAPHookError("unique_object_attributes is empty: entries could not be told apart")


async def _submitted(hooks: LDAPHooks, spawner: Any) -> Submitted:
    submitted = Submitted()
    attribute = _dotted(spawner, hooks.submit_spawner_attribute)
    if isinstance(attribute, dict):
        submitted.posted.update(attribute)
    auth_state = await spawner.user.get_auth_state() or {}
    posted = auth_state.get(hooks.untrusted_auth_state_key)
    if isinstance(posted, dict):
        submitted.posted.update(posted)
    submitted.trusted = {k: v for k, v in auth_state.items() if k != hooks.untrusted_auth_state_key}
    return submitted


def _dotted(obj: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _spawner_values(hooks: LDAPHooks, spawner: Any) -> dict[str, Any]:
    values = {}
    for attribute, source in hooks.dynamic_attributes.items():
        target = spawner if source == SPAWNER_ATTRIBUTE else spawner.user
        if source in (SPAWNER_ATTRIBUTE, SPAWNER_USER_ATTRIBUTE):
            value = getattr(target, attribute, None)
            if isinstance(value, str | int) and str(value):
                values[attribute] = value
    return values


# -- the blocking part (worker thread) -----------------------------------------------------------


def _find_or_create(hooks: LDAPHooks, request: Request) -> dict[str, str]:
    with Directory(
        hooks.url,
        hooks.user,
        hooks.password,
        start_tls=hooks.start_tls,
        ca_file=hooks.ca_file,
        timeout=hooks.timeout,
    ) as directory:
        identity = {
            attribute: _identity_value(hooks, directory, request, attribute)
            for attribute in hooks.unique_object_attributes
        }
        existing = directory.find_entry(hooks.base_dn, hooks.object_classes, identity)
        if existing is None:
            existing = _create(hooks, directory, request, identity)
        _check_owner(hooks, existing, request.hub_name)
        return {key: str(values[0]) for key, values in existing.items() if values}


def _identity_value(
    hooks: LDAPHooks, directory: Directory, request: Request, attribute: str
) -> str:
    """A value that decides which entry is the user's: never from data the user posted."""
    source = hooks.dynamic_attributes.get(attribute)
    value: Any = None
    if source in (LDAP_SEARCH_ATTRIBUTE_QUERY, LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY):
        found = _search_values(hooks, directory, request.hub_name, attribute)
        value = found[0] if found else None
    elif source in (SPAWNER_ATTRIBUTE, SPAWNER_USER_ATTRIBUTE):
        value = request.spawner_values.get(attribute)
    elif source == SPAWNER_SUBMIT_DATA:
        value = _submitted_value(hooks, request.submitted, attribute, trusted_only=True)
        if value is None and _submitted_value(hooks, request.submitted, attribute) is not None:
            raise LDAPHookError(
                f"{attribute} identifies the user's entry, so it must come from the hub identity"
                " or trusted headers, not from data the user posted"
            )
    if value is None and attribute.lower() == "uid":
        value = request.hub_name
    if value is None or not str(value).strip():
        raise LDAPHookError(f"no value for {attribute}, which identifies the user's entry")
    return posix_name(str(value)) if attribute.lower() == "uid" else str(value)


def _submitted_dn(hooks: LDAPHooks, submitted: Submitted) -> tuple[Any, bool] | None:
    keys = hooks.submit_spawner_attribute_keys
    keys = [keys] if isinstance(keys, str) else list(keys)
    for data, trusted in ((submitted.trusted, True), (submitted.posted, False)):
        for key in keys:
            if key in data:
                return data[key], trusted
    return None


def _submitted_value(
    hooks: LDAPHooks, submitted: Submitted, attribute: str, trusted_only: bool = False
) -> Any:
    sources = [submitted.trusted] if trusted_only else [submitted.trusted, submitted.posted]
    for data in sources:
        if attribute in data and isinstance(data[attribute], str | int):
            return data[attribute]
    found = _submitted_dn(hooks, submitted)
    if found is None or (trusted_only and not found[1]):
        return None
    pairs = parse_submitted_dn(found[0], hooks.replace_object_with, hooks.dn_attributes)
    return next((v for a, v in pairs if a.lower() == attribute.lower()), None)


def _search_values(
    hooks: LDAPHooks, directory: Directory, hub_name: str, attribute: str
) -> list[Any]:
    from ldap3.utils.conv import escape_filter_chars

    found: list[Any] = []
    for query in hooks.search_attribute_queries:
        if attribute not in query.get("attributes", []):
            continue
        search_filter = query.get("search_filter", "(objectClass=*)").replace(
            "{username}", escape_filter_chars(hub_name)
        )
        for entry in directory.search(
            query.get("search_base", hooks.base_dn), search_filter, [attribute]
        ):
            found.extend(entry.get(attribute, []))
    return found


def _create(
    hooks: LDAPHooks, directory: Directory, request: Request, identity: dict[str, str]
) -> dict[str, list[Any]]:
    submitted_dn = _submitted_dn(hooks, request.submitted)
    if hooks.submit_spawner_attribute_keys and submitted_dn is None:
        keys = hooks.submit_spawner_attribute_keys
        raise LDAPHookError(
            f"no data was submitted for {request.hub_name}: expected "
            f"{' or '.join([keys] if isinstance(keys, str) else keys)}"
            f" in {hooks.submit_spawner_attribute} or the login's auth_state"
        )
    if submitted_dn is not None:
        rdn = parse_submitted_dn(submitted_dn[0], hooks.replace_object_with, hooks.dn_attributes)
    else:
        first = hooks.unique_object_attributes[0]
        rdn = [(first, identity[first])]
    values: dict[str, Any] = dict(rdn)
    values.update(identity)
    allocations = {}
    for attribute, source in hooks.dynamic_attributes.items():
        if attribute in identity:
            continue
        if attribute in hooks.search_result_operations:
            allocations[attribute] = hooks.search_result_operations[attribute]["modify_dn"]
            continue
        value = _dynamic_value(hooks, directory, request, attribute, source)
        if value is not None:
            values[attribute] = value
    # Check every template before a counter value is spent.
    pending = set(values) | set(allocations)
    for name, template in hooks.object_attributes.items():
        if missing := missing_fields(str(template), pending):
            source = hooks.dynamic_attributes.get(missing[0], "none configured")
            raise LDAPHookError(
                f"object_attributes[{name!r}]: no value for {{{missing[0]}}} (source: {source})"
            )
    for attribute, counter_dn in allocations.items():
        values[attribute] = directory.increment(counter_dn, attribute, hooks.max_retries)
    attributes: dict[str, Any] = dict(rdn)
    for name, template in hooks.object_attributes.items():
        attributes[name] = fill(str(template), values, f"object_attributes[{name!r}]")
    if hooks.owner_attribute:
        attributes[hooks.owner_attribute] = OWNER_PREFIX + request.hub_name
    dn = build_dn(rdn, hooks.base_dn)
    if not directory.add(dn, list(hooks.object_classes), attributes):
        # A concurrent spawn of the same user made it; use theirs if it is this user's.
        existing = directory.find_entry(hooks.base_dn, hooks.object_classes, identity)
        if existing is None:
            raise LDAPHookError(f"the LDAP entry {dn} already exists and belongs to someone else")
        return existing
    created = directory.find_entry(hooks.base_dn, hooks.object_classes, identity)
    if created is None:
        raise LDAPHookError(f"the new LDAP entry {dn} cannot be found by {', '.join(identity)}")
    return created


def _dynamic_value(
    hooks: LDAPHooks, directory: Directory, request: Request, attribute: str, source: str
) -> Any:
    if source == SPAWNER_SUBMIT_DATA:
        return _submitted_value(hooks, request.submitted, attribute)
    if source in (SPAWNER_ATTRIBUTE, SPAWNER_USER_ATTRIBUTE):
        return request.spawner_values.get(attribute)
    found = _search_values(hooks, directory, request.hub_name, attribute)
    if not found:
        return None
    return found[0] if source == LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY or len(found) == 1 else found


def _check_owner(hooks: LDAPHooks, entry: dict[str, list[Any]], hub_name: str) -> None:
    if not hooks.owner_attribute:
        return
    owners = [
        str(value)[len(OWNER_PREFIX) :]
        for value in entry.get(hooks.owner_attribute, [])
        if str(value).startswith(OWNER_PREFIX)
    ]
    if owners and hub_name not in owners:
        raise LDAPHookError(
            f"the LDAP entry {entry['dn'][0]} belongs to another hub user; ask an admin to resolve"
            " the clash of user names"
        )


def _set_spawner_attributes(hooks: LDAPHooks, spawner: Any, entry: dict[str, str]) -> None:
    for name, template in hooks.set_spawner_attributes.items():
        if isinstance(template, dict):
            merged = dict(getattr(spawner, name, None) or {})
            for key, value in template.items():
                merged[key] = fill(str(value), entry, f"set_spawner_attributes[{name!r}][{key!r}]")
            setattr(spawner, name, merged)
        else:
            setattr(spawner, name, fill(str(template), entry, f"set_spawner_attributes[{name!r}]"))
