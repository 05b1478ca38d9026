"""A failing directory stops the spawn with a message the user and the admin can act on."""

from __future__ import annotations

import pytest

from tests.harness.hub import spawn
from tests.harness.slapd import Slapd
from tests.harness.tls import make_tls
from tests.ldap_hooks.conftest import (
    LIGHT_SPAWNER,
    counter,
    listing_7,
    login,
    posix_accounts,
)


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
    assert "user data has no User.CERT: the login's headers gave no 'User'" in message
    assert posix_accounts(slapd) == {}


def test_user_data_that_is_not_nested_names_the_broken_step(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    login(hub, "alice", dn=None, extra={"User": '"/CN=Alice"'})  # a JSON string, not an object
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "user data has no User.CERT: User is a str, not an object" in message
    login(hub, "bob", dn=None, extra={"User": '{"cert": "/CN=Bob"}'})
    ok, message = spawn(hub, "bob")
    assert not ok
    assert "user data has no User.CERT: User has no 'CERT'" in message
    assert posix_accounts(slapd) == {}
    assert counter(slapd) == 9999


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
    assert counter(slapd) == 9999


def test_bad_spawner_attribute_template_spends_no_uid_number(slapd, hub_factory):
    extra = LIGHT_SPAWNER + 'LDAP.set_spawner_attributes["environment"]["SHELL"] = "{loginShell}"\n'
    hub = hub_factory(listing_7(slapd.url, slapd.password, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "set_spawner_attributes['environment']['SHELL']: no value for {loginShell}" in message
    assert posix_accounts(slapd) == {}
    assert counter(slapd) == 9999  # the counter was never touched


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


def test_ca_file_without_tls_is_refused_before_any_bind(tls_slapd, hub_factory):
    # ldap:// + ca_file and no StartTLS would send the bind password in cleartext: refused.
    server, files = tls_slapd
    extra = LIGHT_SPAWNER + f"LDAP.ca_file = {str(files.ca)!r}\n"
    hub = hub_factory(listing_7(server.url, server.password, extra))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "LDAP.ca_file is set but LDAP.url" in message
    assert "set LDAP.start_tls = True or use an ldaps:// url" in message
    assert posix_accounts(server) == {}


def test_a_restarted_server_is_reconnected_to(slapd, hub_factory):
    # Connections are pooled across spawns; one the server dropped is replaced, not reported.
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    login(hub, "alice")
    assert spawn(hub, "alice")[0]
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    slapd.stop()
    slapd.start()
    ok, message = spawn(hub, "alice")
    assert ok, message
    assert list(posix_accounts(slapd)) == ["alice"]
