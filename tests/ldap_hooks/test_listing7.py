"""Thesis listing 7 end to end: header login, nested user data, LDAP entry at spawn, NB_UID."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.harness.hub import spawn
from tests.harness.nginx import proxy_headers
from tests.harness.slapd import Slapd
from tests.ldap_hooks.conftest import (
    FRONT_SECRET,
    HEADER_LOGIN,
    LIGHT_SPAWNER,
    counter,
    listing_7,
    login,
    posix_accounts,
    server_env,
)

ALICE_DN = "/C=DK/ST=NA/L=NA/O=NBI/OU=NA/CN=Alice Doe/emailAddress=alice@nbi.ku.dk"

# Thesis listing 7 as printed, from its ldap_hooks import on. Left out: the lines that place the
# hub itself (JupyterHub.ip/hub_ip/port, spawner_class = DockerSpawner, DummyAuthenticator): the test
# hub has its own ports, HeaderAuthenticator, and a local spawner class named DockerSpawner. Changed:
# LDAP.url (the test's slapd). The text's OCR slips ("qet_config", "SPAWNER SUBMIT DATA", "1" for
# "]") are read as what they stand for.
LISTING_7 = """\
from ldap_hooks import setup_ldap_entry_hook
from ldap_hooks import (
    LDAP,
    LDAP_SEARCH_ATTRIBUTE_QUERY,
    SPAWNER_SUBMIT_DATA,
    INCREMENT_ATTRIBUTE,
    LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
)
c = get_config()
# Spawner setup
c.DockerSpawner.image = "nielsbohr/base-notebook:latest"
c.DockerSpawner.pre_spawn_hook = setup_ldap_entry_hook
# Define LDAP connection options
LDAP.url = "openldap"
LDAP.user = "cn=admin, dc=migrid, dc=org"
LDAP.password = "dummyldap_password"
LDAP.base_dn = "dc=migrid,dc=org"
# LDAP get dn to submit to the DIT
LDAP.submit_spawner_attribute = "user.data"
LDAP.submit_spawner_attribute_keys = ("User", "CERT")
# Prepare LDAP object
LDAP.replace_object_with = {"/": "+"}
# Dynamic attributes and where to find the value
LDAP.dynamic_attributes = {
    "uid": LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
    "emailAddress": SPAWNER_SUBMIT_DATA,
    "uidNumber": LDAP_SEARCH_ATTRIBUTE_QUERY,
}
LDAP.set_spawner_attributes = {
    "environment": {"NB_USER": "{uid}", "NB_UID": "{uidNumber}"},
}
# Attributes used to check whether the ldap data
# of type object_classes already exists
LDAP.unique_object_attributes = ["uid"]
LDAP.search_attribute_queries = [
    {
        "search_base": LDAP.base_dn,
        "search_filter": "(objectclass=X-nextUserIdentifier)",
        "attributes": ["uidNumber"],
    }
]
#
modify_dn = "cn=uidNext" + "," + LDAP.base_dn
LDAP.search_result_operations = {
    "uidNumber": {"action": INCREMENT_ATTRIBUTE, "modify_dn": modify_dn}
}
# Submit object settings
LDAP.object_classes = ["X-certsDistinguishedName", "PosixAccount"]
LDAP.object_attributes = {
    "uid": "{uid}",
    "uidNumber": "{uidNumber}",
    "gidNumber": "100",
    "homeDirectory": "/home/{uid}",
}
"""


class ListingSlapd(Slapd):
    """The test slapd with the listing's admin password."""

    def _configure(self) -> None:
        self.password = "dummyldap_password"
        super()._configure()


@pytest.fixture
def listing_slapd(tmp_path: Path):
    server = ListingSlapd(tmp_path / "slapd")
    server.start()
    yield server
    server.stop()


def test_listing_7_verbatim_with_nested_header_data(listing_slapd, hub_factory):
    listing = LISTING_7.replace('LDAP.url = "openldap"', f"LDAP.url = {listing_slapd.url!r}")
    assert listing.count("\n") == LISTING_7.count("\n")
    spawner = LIGHT_SPAWNER + (
        "class DockerSpawner(UniquePortSpawner):\n    pass\n\n"
        "c.JupyterHub.spawner_class = DockerSpawner\n"
    )
    hub = hub_factory(HEADER_LOGIN + spawner + listing)
    login(hub, "alice", ALICE_DN)
    state = hub.api().get("/users/alice", params={"include_stored_state": "1"}).json()
    assert state["auth_state"] == {"User": {"CERT": ALICE_DN}}  # exactly the listing's path

    ok, message = spawn(hub, "alice")
    assert ok, message
    env = server_env(hub, "alice")
    assert (env["NB_USER"], env["NB_UID"]) == ("alice", "10000")
    account = posix_accounts(listing_slapd)["alice"]
    assert "cn=alice doe" in account["dn"].lower()
    assert (account.get("emailAddress") or account["email"])[0] == "alice@nbi.ku.dk"
    assert counter(listing_slapd) == 10000


def test_listing_7_creates_then_reuses_the_posix_account(slapd, hub_factory, nginx_factory):
    # The portal authenticates the person and sends the user data as one JSON header; nginx
    # forwards it to the hub as the "User" header that JSONParser reads.
    hub = hub_factory(listing_7(slapd.url, slapd.password))
    front = nginx_factory(
        f"""
        location / {{
            proxy_set_header Remote-User $http_x_portal_user;
            proxy_set_header User $http_x_portal_user_data;
            proxy_set_header X-Gridhub-Secret {FRONT_SECRET};
            {proxy_headers(hub.url)}
        }}
        """
    )
    login = httpx.get(
        f"{front.url}/hub/login",
        headers={"X-Portal-User": "alice", "X-Portal-User-Data": json.dumps({"CERT": ALICE_DN})},
    )
    assert login.status_code == 302, login.text

    ok, message = spawn(hub, "alice")
    assert ok, message
    env = server_env(hub, "alice")
    assert env["NB_USER"] == "alice"
    assert env["NB_UID"] == "10000"
    account = posix_accounts(slapd)["alice"]
    assert int(account["uidNumber"][0]) == 10000
    assert account["homeDirectory"][0] == "/home/alice"
    assert str(account["gidNumber"][0]) == "100"
    assert (account.get("emailAddress") or account["email"])[0] == "alice@nbi.ku.dk"
    rdn, base = account["dn"].split(",", 1)
    assert base == "dc=migrid,dc=org"
    assert {part.lower() for part in rdn.split("+")} == {
        "c=dk",
        "st=na",
        "l=na",
        "o=nbi",
        "ou=na",
        "cn=alice doe",
        "email=alice@nbi.ku.dk",
    }
    assert not any("{" in str(value) for values in account.values() for value in values)
    assert counter(slapd) == 10000

    # A second spawn reuses the entry: same uidNumber, no new entry, the counter untouched.
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    ok, message = spawn(hub, "alice")
    assert ok, message
    assert server_env(hub, "alice")["NB_UID"] == "10000"
    assert list(posix_accounts(slapd)) == ["alice"]
    assert counter(slapd) == 10000
    hub.api().delete("/users/alice/server")
