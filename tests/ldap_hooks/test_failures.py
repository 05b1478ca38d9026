"""A failing directory stops the spawn with a message the user and the admin can act on."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.hub import spawn
from tests.harness.slapd import Slapd
from tests.harness.tls import make_tls
from tests.ldap_hooks.conftest import LIGHT_SPAWNER, listing_7, posix_accounts


def login(hub, user: str, dn: str | None = "/CN=Some One") -> None:
    headers = {"Remote-User": user} | ({"Cert-DN": dn} if dn else {})
    assert httpx.get(f"{hub.url}/hub/login", headers=headers).status_code == 302


def test_server_down_fails_the_spawn_clearly(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    login(hub, "alice")
    slapd.stop()
    ok, message = spawn(hub, "alice")
    assert not ok
    assert f"cannot reach the LDAP server at {slapd.url}" in message
    assert hub.api().get("/users/alice").json()["servers"] == {}
    log = hub.log()
    assert "ldap_hooks: cannot reach the LDAP server" in log
    assert slapd.password not in log


def test_refused_bind_names_the_bind_dn(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, "wrong-password", LIGHT_SPAWNER))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "refused the bind as cn=admin,dc=migrid,dc=org (invalidCredentials)" in message
    assert "wrong-password" not in hub.log()


def test_no_submitted_data_fails_and_creates_nothing(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    login(hub, "alice", dn=None)
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "no data was submitted for alice: expected User or CERT" in message
    assert posix_accounts(slapd) == {}


def test_missing_schema_fails_without_a_half_made_identity(slapd, hub_factory):
    extra = LIGHT_SPAWNER + 'LDAP.object_classes = ["X-certsDistinguishedName", "noSuchClass"]\n'
    hub = hub_factory(listing_7(slapd.url, slapd.password, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert ("failed" in message and "noSuchClass" in message) or "objectClass" in message
    assert posix_accounts(slapd) == {}


def test_unresolved_placeholder_never_reaches_ldap(slapd, hub_factory):
    extra = LIGHT_SPAWNER + 'LDAP.object_attributes["loginShell"] = "{shell}"\n'
    hub = hub_factory(listing_7(slapd.url, slapd.password, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "object_attributes['loginShell']: no value for {shell}" in message
    assert posix_accounts(slapd) == {}


@pytest.fixture
def tls_slapd(tmp_path):
    files = make_tls(tmp_path / "tls")
    server = Slapd(tmp_path / "slapd-tls", tls=files)
    server.start()
    yield server, files
    server.stop()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_tls_connections_verify_the_server(tls_slapd, hub_factory, mode):
    server, files = tls_slapd
    url = server.ldaps_url if mode == "ldaps" else server.url
    extra = LIGHT_SPAWNER + f"LDAP.ca_file = {str(files.ca)!r}\n"
    extra += "LDAP.start_tls = True\n" if mode == "starttls" else ""
    hub = hub_factory(listing_7(url, server.password, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert ok, message
    assert "alice" in posix_accounts(server)


def test_tls_with_an_unknown_ca_is_refused(tls_slapd, hub_factory, tmp_path):
    server, _ = tls_slapd
    other_ca = make_tls(tmp_path / "other", ca_name="someone else").ca
    extra = LIGHT_SPAWNER + f"LDAP.ca_file = {str(other_ca)!r}\n"
    hub = hub_factory(listing_7(server.ldaps_url, server.password, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert f"cannot reach the LDAP server at {server.ldaps_url}" in message
    assert posix_accounts(server) == {}
