"""Thesis listing 7 end to end: header login, LDAP entry at spawn, NB_UID in the server."""

from __future__ import annotations

import httpx

from tests.harness.hub import spawn
from tests.harness.nginx import proxy_headers
from tests.harness.process import server_environment
from tests.ldap_hooks.conftest import counter, listing_7, posix_accounts

ALICE_DN = "/C=DK/ST=NA/L=NA/O=NBI/OU=NA/CN=Alice Doe/emailAddress=alice@nbi.ku.dk"


def test_listing_7_creates_then_reuses_the_posix_account(slapd, hub_factory, nginx_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password))
    front = nginx_factory(
        f"""
        location / {{
            proxy_set_header Remote-User $http_x_portal_user;
            proxy_set_header Cert-DN $http_x_portal_dn;
            {proxy_headers(hub.url)}
        }}
        """
    )
    login = httpx.get(
        f"{front.url}/hub/login", headers={"X-Portal-User": "alice", "X-Portal-DN": ALICE_DN}
    )
    assert login.status_code == 302, login.text

    ok, message = spawn(hub, "alice")
    assert ok, message
    env = server_environment("alice")
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
    assert server_environment("alice")["NB_UID"] == "10000"
    assert list(posix_accounts(slapd)) == ["alice"]
    assert counter(slapd) == 10000
    hub.api().delete("/users/alice/server")
