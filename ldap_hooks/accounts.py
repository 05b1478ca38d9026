"""Finding and creating a user's POSIX entry: the blocking part, run in a worker thread.

Rules:
- The ``unique_object_attributes`` (``identity``) decide which entry is the user's. Their values come
  from the hub identity, trusted header data, the spawner or LDAP, never from data the user posted.
- A new entry is named (its DN) after the certificate DN found in the trusted data at
  ``submit_spawner_attribute_keys``; a DN that already names an entry is refused before a
  uidNumber is spent.
- Templates are checked before a uidNumber is spent.
- Each entry records its hub user; an entry recorded for another hub user is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .directory import Directory
from .entry import build_dn, fill, missing_fields, parse_submitted_dn, posix_name
from .errors import LDAPHookError
from .settings import (
    LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
    LDAP_SEARCH_ATTRIBUTE_QUERY,
    SPAWNER_ATTRIBUTE,
    SPAWNER_SUBMIT_DATA,
    SPAWNER_USER_ATTRIBUTE,
    LDAPHooks,
)
from .submitted import Submitted, submit_path, submitted_dn, submitted_value

OWNER_PREFIX = "jupyterhub-user:"
Entry = dict[str, list[Any]]


@dataclass
class Request:
    """Everything the blocking part needs, gathered on the event loop."""

    hub_name: str
    submitted: Submitted
    spawner_values: dict[str, Any]


def lookup(hooks: LDAPHooks, request: Request, directory: Directory) -> tuple[dict, Entry | None]:
    """The user's identity values and their entry, if there is one (no writes)."""
    identity = {
        attribute: _identity_value(hooks, directory, request, attribute)
        for attribute in hooks.unique_object_attributes
    }
    return identity, directory.find_entry(hooks.base_dn, hooks.object_classes, identity)


def find_or_create(
    hooks: LDAPHooks, request: Request, identity: dict[str, str], directory: Directory
) -> Entry:
    """The entry with ``identity``: found (another spawn may just have made it) or created."""
    existing = directory.find_entry(hooks.base_dn, hooks.object_classes, identity)
    return existing if existing is not None else _create(hooks, directory, request, identity)


def check_owner(hooks: LDAPHooks, entry: Entry, hub_name: str) -> None:
    """Refuse an entry that records another hub user as its owner."""
    owners = _owners(hooks, entry)
    if owners and hub_name not in owners:
        raise LDAPHookError(
            f"the LDAP entry {entry['dn'][0]} belongs to another hub user; ask an admin to resolve"
            " the clash of user names"
        )


# -- identity ------------------------------------------------------------------------------------


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
        value = _submitted(hooks, request.submitted.trusted, attribute)
        if value is None and _submitted(hooks, request.submitted.posted, attribute) is not None:
            raise LDAPHookError(
                f"{attribute} identifies the user's entry, so it must come from the hub identity"
                " or trusted headers, not from data the user posted"
            )
    if value is None and attribute.lower() == "uid":
        value = request.hub_name
    if value is None or not str(value).strip():
        raise LDAPHookError(f"no value for {attribute}, which identifies the user's entry")
    return posix_name(str(value)) if attribute.lower() == "uid" else str(value)


def _submitted(hooks: LDAPHooks, data: dict[str, Any], attribute: str) -> Any:
    return submitted_value(
        submit_path(hooks.submit_spawner_attribute_keys),
        data,
        attribute,
        hooks.replace_object_with,
        hooks.dn_attributes,
    )


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


# -- creation ------------------------------------------------------------------------------------


def _create(
    hooks: LDAPHooks, directory: Directory, request: Request, identity: dict[str, str]
) -> Entry:
    dn_text = submitted_dn(submit_path(hooks.submit_spawner_attribute_keys), request.submitted)
    if dn_text is not None:
        rdn = parse_submitted_dn(dn_text, hooks.replace_object_with, hooks.dn_attributes)
    else:
        first = hooks.unique_object_attributes[0]
        rdn = [(first, identity[first])]
    dn = build_dn(rdn, hooks.base_dn)
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
    _check_templates(hooks, set(values) | set(allocations), [a for a, _ in rdn])
    taken = directory.read(dn)
    if taken is not None:  # refused before a counter value is spent
        raise _taken(hooks, dn, taken, request.hub_name)

    for attribute, counter_dn in allocations.items():
        values[attribute] = directory.increment(counter_dn, attribute, hooks.max_retries)
    attributes: dict[str, Any] = dict(rdn)
    for name, template in hooks.object_attributes.items():
        attributes[name] = fill(str(template), values, f"object_attributes[{name!r}]")
    if hooks.owner_attribute:
        attributes[hooks.owner_attribute] = OWNER_PREFIX + request.hub_name
    if not directory.add(dn, list(hooks.object_classes), attributes):
        raise _taken(hooks, dn, directory.read(dn), request.hub_name)
    # Another hub on the same directory may have made an entry with the same identity meanwhile:
    # whoever sees two entries after its own add removes its own and fails, so two never remain.
    created = directory.find_entries(hooks.base_dn, hooks.object_classes, identity)
    if len(created) != 1:
        if created:
            directory.delete(dn)
        raise LDAPHookError(
            f"another account with the same {', '.join(identity)} ({', '.join(identity.values())})"
            " was created at the same moment; try again"
            if created
            else f"the new LDAP entry {dn} cannot be found by {', '.join(identity)}"
        )
    return created[0]


def _check_templates(hooks: LDAPHooks, known: set[str], rdn_attributes: list[str]) -> None:
    """Every placeholder of every template has a value: checked before anything is written."""
    for name, template in hooks.object_attributes.items():
        if missing := missing_fields(str(template), known):
            source = hooks.dynamic_attributes.get(missing[0], "none configured")
            raise LDAPHookError(
                f"object_attributes[{name!r}]: no value for {{{missing[0]}}} (source: {source})"
            )
    entry_attributes = {"dn", *rdn_attributes, *hooks.object_attributes}
    if hooks.owner_attribute:
        entry_attributes.add(hooks.owner_attribute)
    for name, template in hooks.set_spawner_attributes.items():
        templates = template.items() if isinstance(template, dict) else [(None, template)]
        for key, text in templates:
            if missing := missing_fields(str(text), entry_attributes):
                where = f"[{name!r}]" + (f"[{key!r}]" if key is not None else "")
                raise LDAPHookError(
                    f"set_spawner_attributes{where}: no value for {{{missing[0]}}}; the new entry"
                    f" has only {', '.join(sorted(entry_attributes))}"
                )


def _taken(hooks: LDAPHooks, dn: str, entry: Entry | None, hub_name: str) -> LDAPHookError:
    owners = _owners(hooks, entry or {})
    if owners and hub_name not in owners:
        return LDAPHookError(
            f"the distinguished name {dn} already belongs to another hub user; one certificate"
            " identity cannot open two accounts (ask an admin)"
        )
    return LDAPHookError(
        f"the LDAP entry {dn} already exists but is not this user's account; ask an admin"
    )


def _owners(hooks: LDAPHooks, entry: Entry) -> list[str]:
    if not hooks.owner_attribute:
        return []
    values = next((v for k, v in entry.items() if k.lower() == hooks.owner_attribute.lower()), [])
    return [str(v)[len(OWNER_PREFIX) :] for v in values if str(v).startswith(OWNER_PREFIX)]


def _dynamic_value(
    hooks: LDAPHooks, directory: Directory, request: Request, attribute: str, source: str
) -> Any:
    if source == SPAWNER_SUBMIT_DATA:  # not identifying: header data first, then posted data
        value = _submitted(hooks, request.submitted.trusted, attribute)
        return (
            value if value is not None else _submitted(hooks, request.submitted.posted, attribute)
        )
    if source in (SPAWNER_ATTRIBUTE, SPAWNER_USER_ATTRIBUTE):
        return request.spawner_values.get(attribute)
    found = _search_values(hooks, directory, request.hub_name, attribute)
    if not found:
        return None
    return found[0] if source == LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY or len(found) == 1 else found


def entry_values(entry: Entry) -> dict[str, str]:
    """The first value of each attribute, as strings (what templates see)."""
    return {key: str(values[0]) for key, values in entry.items() if values}
