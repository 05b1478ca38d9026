"""Settings: the ``LDAPHooks`` traitlets class, and the thesis-style ``LDAP.<name> = value`` object."""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, Dict, Float, Integer, List, Unicode, Union, default
from traitlets.config import Configurable

# Where a dynamic attribute's value comes from (values of ``dynamic_attributes``).
SPAWNER_SUBMIT_DATA = "spawner_submit_data"
SPAWNER_ATTRIBUTE = "spawner_attribute"
SPAWNER_USER_ATTRIBUTE = "spawner_user_attribute"
LDAP_SEARCH_ATTRIBUTE_QUERY = "ldap_search_attribute_query"
LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY = "ldap_first_search_attribute_query"
SOURCES = (
    SPAWNER_SUBMIT_DATA,
    SPAWNER_ATTRIBUTE,
    SPAWNER_USER_ATTRIBUTE,
    LDAP_SEARCH_ATTRIBUTE_QUERY,
    LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
)
# Operations on a searched value (``search_result_operations[attr]["action"]``).
INCREMENT_ATTRIBUTE = "increment_attribute"


class LDAPHooks(Configurable):
    """How ``setup_ldap_entry_hook`` finds or creates a user's POSIX entry in LDAP.

    Configure as ``c.LDAPHooks.<name>`` in jupyterhub_config.py, or as ``LDAP.<name>`` the way the
    thesis listings do; values set on ``LDAP`` take precedence.
    """

    url = Unicode(
        "ldap://127.0.0.1",
        config=True,
        help="LDAP server: ``ldap://host[:port]``, ``ldaps://host[:port]`` or a bare host name.",
    )
    user = Unicode("", config=True, help="DN to bind as, e.g. ``cn=admin,dc=migrid,dc=org``.")
    password = Unicode(
        config=True,
        help="Bind password. Defaults to $LDAP_HOOKS_PASSWORD; never logged.",
    )

    @default("password")
    def _password_default(self) -> str:
        return os.environ.get("LDAP_HOOKS_PASSWORD", "")

    base_dn = Unicode("", config=True, help="Where user entries live, e.g. ``dc=migrid,dc=org``.")
    start_tls = Bool(False, config=True, help="Upgrade ``ldap://`` connections with StartTLS.")
    ca_file = Unicode(
        "",
        config=True,
        help="""CA certificate (PEM) that signed the server's certificate, for ``ldaps://`` or
        StartTLS. With a plain ``ldap://`` url and ``start_tls`` off it would never be used, so
        that combination is refused rather than binding in cleartext.""",
    )
    timeout = Float(10, config=True, help="Seconds to wait for the server to connect and answer.")
    max_retries = Integer(
        50, config=True, help="Attempts at an atomic counter update before giving up."
    )

    submit_spawner_attribute = Unicode(
        "user.data",
        config=True,
        help="""Dotted path, on the spawner, of a dict with the submitted data (thesis: ``user.data``).

        Where the attribute is absent, the same keys are read from the user's auth_state: header
        values first (trusted), then ``auth_state[untrusted_auth_state_key]`` (posted by the user).
        """,
    )
    submit_spawner_attribute_keys = Union(
        [List(Unicode()), Unicode()],
        default_value=[],
        config=True,
        help="""Path to the user's certificate DN in the submitted data.

        ``("User", "CERT")`` (thesis listing 7) reads ``data["User"]["CERT"]``; a string is a path
        of one key. The DN names a new entry (``/`` parts become a multi-valued RDN with
        ``replace_object_with``) and ``SPAWNER_SUBMIT_DATA`` attributes are read from it. It is
        taken only from trusted header data (auth_state), never from data the user posted.
        Empty: new entries are named after the first unique object attribute.""",
    )
    untrusted_auth_state_key = Unicode(
        "user_data",
        config=True,
        help="auth_state key holding data the user posted (HeaderAuthenticator's set-user-data).",
    )
    replace_object_with = Dict(
        config=True,
        help="Replacements turning the submitted DN into ``attr=value+attr=value``, e.g. {'/': '+'}.",
    )
    dn_attributes = List(
        Unicode(),
        ["cn", "c", "st", "l", "o", "ou", "emailAddress"],
        config=True,
        help="Attributes a submitted DN may set (those of x-certsDistinguishedName).",
    )
    dynamic_attributes = Dict(
        config=True,
        help="""{attribute: source}: where each attribute's value comes from.

        Sources: SPAWNER_SUBMIT_DATA, SPAWNER_ATTRIBUTE (``spawner.<attribute>``),
        SPAWNER_USER_ATTRIBUTE (``spawner.user.<attribute>``), LDAP_SEARCH_ATTRIBUTE_QUERY and
        LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY (``search_attribute_queries``).
        """,
    )
    set_spawner_attributes = Dict(
        config=True,
        help="""Spawner attributes set from the entry, e.g.
        ``{"environment": {"NB_USER": "{uid}", "NB_UID": "{uidNumber}"}}``; dicts are merged.""",
    )
    unique_object_attributes = List(
        Unicode(),
        ["uid"],
        config=True,
        help="""Attributes that identify a user's entry. Their values come from the hub identity,
        trusted headers, the spawner or LDAP, never from data the user posted.""",
    )
    search_attribute_queries = List(
        Dict(),
        config=True,
        help="""LDAP searches for dynamic attributes: dicts with ``search_base``,
        ``search_filter`` (may contain ``{username}``, escaped) and ``attributes``.""",
    )
    search_result_operations = Dict(
        config=True,
        help="""{attribute: {"action": INCREMENT_ATTRIBUTE, "modify_dn": DN}}: allocate the value
        by atomically incrementing the counter at ``modify_dn``.""",
    )
    object_classes = List(
        Unicode(), config=True, help="objectClass values of a new entry (and of the lookup)."
    )
    object_attributes = Dict(
        config=True,
        help="Attributes of a new entry: {name: template}, e.g. {'homeDirectory': '/home/{uid}'}.",
    )
    owner_attribute = Unicode(
        "description",
        config=True,
        help="""Attribute that records which hub user an entry belongs to
        (``jupyterhub-user:<name>``); an entry owned by another hub user is never reused.
        Empty: not recorded.""",
    )


SETTING_NAMES = frozenset(LDAPHooks.class_trait_names(config=True))


class ListingSettings:
    """``LDAP.url = ...`` as in the thesis listings; each value overrides ``c.LDAPHooks``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in SETTING_NAMES:
            raise AttributeError(
                f"LDAP has no setting {name!r}; settings are: {', '.join(sorted(SETTING_NAMES))}"
            )
        self.__dict__[name] = value

    def __getattr__(self, name: str) -> Any:
        if name in SETTING_NAMES:
            return LDAPHooks.class_traits()[name].default()
        raise AttributeError(name)

    def settings(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def clear(self) -> None:
        self.__dict__.clear()


LDAP = ListingSettings()
