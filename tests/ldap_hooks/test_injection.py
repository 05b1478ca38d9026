"""Nobody can reach, change or squat another person's entry with crafted names, headers or posts."""

from __future__ import annotations

import pytest

from tests.harness.hub import spawn
from tests.ldap_hooks.conftest import (
    LIGHT_SPAWNER,
    counter,
    listing_7,
    login,
    posix_accounts,
    post_user_data,
)

VICTIM_DN = "/C=DK/O=NBI/CN=Victor Tim/emailAddress=victim@nbi.ku.dk"


@pytest.fixture
def hub_with_victim(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    login(hub, "victim", VICTIM_DN)
    ok, message = spawn(hub, "victim")
    assert ok, message
    return hub, posix_accounts(slapd)["victim"]


@pytest.mark.parametrize(
    ("header_dn", "expected"),
    [
        ("/CN=x+uid=victim", "may not set 'uid'"),
        ("/CN=x/uid=victim", "may not set 'uid'"),
        ("/CN=x/uidNumber=0", "may not set 'uidNumber'"),
        ("/CN=x/objectClass=top", "may not set 'objectClass'"),
        ("/CN=x/CN=y", "sets 'CN' twice"),
        ("/CN=x\u0000y", "control characters"),
        (VICTIM_DN, "already belongs to another hub user"),
    ],
)
def test_forwarded_dn_cannot_claim_or_change_another_entry(
    slapd, hub_with_victim, header_dn, expected
):
    hub, victim_before = hub_with_victim
    login(hub, "mallory", header_dn)
    ok, message = spawn(hub, "mallory")
    assert not ok
    assert expected in message
    accounts = posix_accounts(slapd)
    assert accounts["victim"] == victim_before
    assert "mallory" not in accounts
    assert counter(slapd) == 10000  # refused before a uidNumber was spent


def test_a_dn_owned_by_another_user_is_refused_clearly(slapd, hub_with_victim):
    # Two hub users whose front-proxy logins carry the same certificate DN: the second is refused.
    hub, victim_before = hub_with_victim
    login(hub, "victim2", VICTIM_DN)
    ok, message = spawn(hub, "victim2")
    assert not ok
    assert "already belongs to another hub user" in message
    assert "one certificate identity cannot open two accounts" in message
    assert posix_accounts(slapd) == {"victim": victim_before}


@pytest.mark.parametrize(
    "keys", [("User", "CERT"), ("PersonalDistinguishedName",)], ids=["listing7", "flat-key"]
)
def test_posted_dn_cannot_squat_a_victims_identity(slapd, hub_factory, keys):
    # mallory posts the victim's DN to /hub/set-user-data before the victim's first spawn.
    extra = LIGHT_SPAWNER + f"LDAP.submit_spawner_attribute_keys = {keys!r}\n"
    extra += 'c.HeaderAuthenticator.user_external_allow_attributes = ["User", "CERT",'
    extra += ' "PersonalDistinguishedName"]\n'
    extra += 'c.HeaderAuthenticator.allowed_headers["PersonalDistinguishedName"] = "PDN"\n'
    hub = hub_factory(listing_7(slapd.url, slapd.password, extra))
    login(hub, "mallory", dn=None)
    posted = {"User": {"CERT": VICTIM_DN}} if len(keys) == 2 else {keys[0]: VICTIM_DN}
    post_user_data(hub, "mallory", posted)
    ok, message = spawn(hub, "mallory")
    assert not ok
    assert f"user data has no {'.'.join(keys)} from the front proxy" in message
    assert "cannot choose which LDAP entry or certificate identity you get" in message
    assert posix_accounts(slapd) == {}
    assert counter(slapd) == 9999

    # The victim's front proxy forwards the DN: the victim gets their own entry.
    if len(keys) == 2:
        login(hub, "victim", VICTIM_DN)
    else:
        login(hub, "victim", dn=None, extra={"PDN": VICTIM_DN})
    ok, message = spawn(hub, "victim")
    assert ok, message
    victim = posix_accounts(slapd)["victim"]
    assert victim["description"] == ["jupyterhub-user:victim"]
    assert "cn=victor tim" in victim["dn"].lower()

    # A post after the victim's spawn changes nothing either.
    ok, message = spawn(hub, "mallory")
    assert not ok
    assert list(posix_accounts(slapd)) == ["victim"]


def test_posted_data_with_a_trusted_dn_is_ignored_for_the_name(slapd, hub_factory):
    # mallory has a certificate of her own and also posts the victim's: her own names her entry.
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    login(hub, "mallory", "/O=KU/CN=Mallory")
    post_user_data(hub, "mallory", {"User": {"CERT": VICTIM_DN}})
    ok, message = spawn(hub, "mallory")
    assert ok, message
    assert (
        posix_accounts(slapd)["mallory"]["dn"]
        .lower()
        .startswith(("cn=mallory+o=ku", "o=ku+cn=mallory"))
    )
    login(hub, "victim", VICTIM_DN)
    ok, message = spawn(hub, "victim")
    assert ok, message


@pytest.mark.parametrize(
    "name", ["*", "vic*", "victim)(uid=*", "victim\\", "a;uid=victim", "v=x+uid=victim", "(victim)"]
)
def test_special_characters_in_user_names_match_only_their_own_entry(slapd, hub_with_victim, name):
    hub, victim_before = hub_with_victim
    login(hub, name, "/CN=Crafted Name")
    ok, message = spawn(hub, name)
    assert ok, message
    accounts = posix_accounts(slapd)
    assert accounts["victim"] == victim_before
    mine = [a for a in accounts.values() if a["description"] == [f"jupyterhub-user:{name}"]]
    assert len(mine) == 1
    assert mine[0]["uidNumber"] != victim_before["uidNumber"]
    assert mine[0]["uid"][0] != "victim"


def test_colliding_posix_names_do_not_share_an_entry(slapd, hub_with_victim):
    hub, _ = hub_with_victim
    login(hub, "ann.e", "/CN=Ann E")
    assert spawn(hub, "ann.e")[0]
    login(hub, "ann*e", "/CN=Ann Star")  # also becomes the POSIX name ann_e
    ok, message = spawn(hub, "ann*e")
    assert not ok
    assert "belongs to another hub user" in message
    assert posix_accounts(slapd)["ann_e"]["description"] == ["jupyterhub-user:ann.e"]


def test_identity_is_never_taken_from_posted_data(slapd, hub_factory):
    # An admin who sources uid from submitted data gets it from trusted headers only.
    extra = LIGHT_SPAWNER + 'LDAP.dynamic_attributes["uid"] = SPAWNER_SUBMIT_DATA\n'
    extra += 'c.HeaderAuthenticator.allowed_headers["uid"] = "Portal-Uid"\n'
    extra += 'c.HeaderAuthenticator.user_external_allow_attributes = ["CERT", "uid"]\n'
    hub = hub_factory(listing_7(slapd.url, slapd.password, extra))
    login(hub, "eve", "/CN=Eve")
    post_user_data(hub, "eve", {"uid": "victim"})
    ok, message = spawn(hub, "eve")
    assert not ok
    assert "must come from the hub identity or trusted headers" in message
    login(hub, "frank", "/CN=Frank", extra={"Portal-Uid": "fjones"})
    ok, message = spawn(hub, "frank")
    assert ok, message
    assert posix_accounts(slapd)["fjones"]["description"] == ["jupyterhub-user:frank"]
