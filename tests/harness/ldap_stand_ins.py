"""Stand-ins for the JupyterHub user and spawner that ldap_hooks reads, and listing 7's hooks.

For code that calls ``ldap_hooks.provision`` directly, without a hub: the two-hub race test and
``bench/ldap_hooks.py``.
"""

from __future__ import annotations

import logging

from ldap_hooks import INCREMENT_ATTRIBUTE, LDAP_SEARCH_ATTRIBUTE_QUERY, LDAPHooks
from tests.harness.slapd import Slapd


class User:
    """The part of a JupyterHub user the hook reads: its name and auth_state (listing 7's User.CERT)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def get_auth_state(self) -> dict:
        return {"User": {"CERT": f"/O=KU/CN=Person {self.name}"}}


class Spawner:
    """The part of a JupyterHub spawner the hook reads and writes."""

    log = logging.getLogger("ldap_hooks.stand_in")

    def __init__(self, name: str) -> None:
        self.user = User(name)
        self.environment: dict[str, str] = {}


def listing_7_hooks(slapd: Slapd) -> LDAPHooks:
    """Listing 7's hooks on ``slapd``: a posixAccount per certificate DN, uidNumber from uidNext."""
    base = slapd.suffix
    return LDAPHooks(
        url=slapd.url,
        user=slapd.rootdn,
        password=slapd.password,
        base_dn=base,
        submit_spawner_attribute_keys=["User", "CERT"],
        replace_object_with={"/": "+"},
        dynamic_attributes={"uidNumber": LDAP_SEARCH_ATTRIBUTE_QUERY},
        search_attribute_queries=[
            {
                "search_base": base,
                "search_filter": "(objectclass=x-nextUserIdentifier)",
                "attributes": ["uidNumber"],
            }
        ],
        search_result_operations={
            "uidNumber": {"action": INCREMENT_ATTRIBUTE, "modify_dn": f"cn=uidNext,{base}"}
        },
        object_classes=["x-certsDistinguishedName", "posixAccount"],
        object_attributes={
            "uid": "{uid}",
            "uidNumber": "{uidNumber}",
            "gidNumber": "100",
            "homeDirectory": "/home/{uid}",
        },
        set_spawner_attributes={"environment": {"NB_UID": "{uidNumber}"}},
    )
