"""ldap_hooks: pre_spawn_hooks that find or create the user's POSIX account in LDAP."""

from .errors import LDAPHookError
from .hooks import hello_hook, provision, setup_ldap_entry_hook
from .settings import (
    INCREMENT_ATTRIBUTE,
    LDAP,
    LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
    LDAP_SEARCH_ATTRIBUTE_QUERY,
    SPAWNER_ATTRIBUTE,
    SPAWNER_SUBMIT_DATA,
    SPAWNER_USER_ATTRIBUTE,
    LDAPHooks,
)

__all__ = [
    "INCREMENT_ATTRIBUTE",
    "LDAP",
    "LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY",
    "LDAP_SEARCH_ATTRIBUTE_QUERY",
    "SPAWNER_ATTRIBUTE",
    "SPAWNER_SUBMIT_DATA",
    "SPAWNER_USER_ATTRIBUTE",
    "LDAPHookError",
    "LDAPHooks",
    "hello_hook",
    "provision",
    "setup_ldap_entry_hook",
]
