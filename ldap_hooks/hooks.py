"""The pre_spawn_hooks: find or create the user's POSIX entry, then configure the spawner."""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any

from .accounts import Request, check_owner, entry_values, find_or_create, lookup
from .directory import ServerSettings, check_url, connection_pool
from .entry import fill
from .errors import LDAPHookError
from .settings import (
    INCREMENT_ATTRIBUTE,
    LDAP,
    SOURCES,
    SPAWNER_ATTRIBUTE,
    SPAWNER_USER_ATTRIBUTE,
    LDAPHooks,
)
from .submitted import Submitted

_MISSING = object()
# One creation at a time per identity (e.g. per POSIX name) in this hub process, so two hub users
# whose names map to the same POSIX name cannot both get an entry. Lookups never wait for it.
_CREATION_LOCKS: weakref.WeakValueDictionary[tuple, asyncio.Lock] = weakref.WeakValueDictionary()


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
    """Find or create the entry for ``spawner.user``; set spawner attributes; return the entry.

    An existing user costs one search on a pooled connection. A new user's entry is created under a
    per-identity lock, after every template has been checked.
    """
    request = Request(hub_name=spawner.user.name, submitted=Submitted(), spawner_values={})
    try:
        check_settings(hooks)
        request.submitted = await _submitted(hooks, spawner)
        request.spawner_values = _spawner_values(hooks, spawner)
        entry = await _find_or_create(hooks, request)
    except LDAPHookError as error:
        spawner.log.error("ldap_hooks: %s (user %s, server %s)", error, request.hub_name, hooks.url)
        raise
    _set_spawner_attributes(hooks, spawner, entry)
    spawner.log.info(
        "ldap_hooks: %s is %s in LDAP", request.hub_name, entry.get("dn", "(unknown dn)")
    )
    return entry


def check_settings(hooks: LDAPHooks) -> None:
    """Raise ``LDAPHookError`` for settings that cannot work (or would bind in cleartext)."""
    check_url(hooks.url, hooks.start_tls, hooks.ca_file)
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


async def _find_or_create(hooks: LDAPHooks, request: Request) -> dict[str, str]:
    settings = ServerSettings(
        url=hooks.url,
        user=hooks.user,
        password=hooks.password,
        start_tls=hooks.start_tls,
        ca_file=hooks.ca_file,
        timeout=hooks.timeout,
    )
    pool = connection_pool(settings)
    identity, entry = await asyncio.to_thread(pool.run, functools.partial(lookup, hooks, request))
    if entry is None:
        key = (
            id(asyncio.get_running_loop()),  # an asyncio lock serves one event loop
            settings,
            hooks.base_dn.lower(),
            *sorted((k.lower(), v.lower()) for k, v in identity.items()),
        )
        lock = _CREATION_LOCKS.get(key)
        if lock is None:
            lock = _CREATION_LOCKS[key] = asyncio.Lock()
        async with lock:
            entry = await asyncio.to_thread(
                pool.run, functools.partial(find_or_create, hooks, request, identity)
            )
    check_owner(hooks, entry, request.hub_name)
    return entry_values(entry)


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


def _set_spawner_attributes(hooks: LDAPHooks, spawner: Any, entry: dict[str, str]) -> None:
    for name, template in hooks.set_spawner_attributes.items():
        if isinstance(template, dict):
            merged = dict(getattr(spawner, name, None) or {})
            for key, value in template.items():
                merged[key] = fill(str(value), entry, f"set_spawner_attributes[{name!r}][{key!r}]")
            setattr(spawner, name, merged)
        else:
            setattr(spawner, name, fill(str(template), entry, f"set_spawner_attributes[{name!r}]"))
