"""Nobody can reach or change another person's entry with crafted names or posted DNs."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.hub import Hub, spawn
from tests.ldap_hooks.conftest import LIGHT_SPAWNER, listing_7, posix_accounts

VICTIM_DN = "/C=DK/O=NBI/CN=Victor Tim/emailAddress=victim@nbi.ku.dk"


def login(hub: Hub, user: str, dn: str | None = None) -> None:
    headers = {"Remote-User": user} | ({"Cert-DN": dn} if dn else {})
    response = httpx.get(f"{hub.url}/hub/login", headers=headers)
    assert response.status_code == 302, response.text


def post_user_data(hub: Hub, user: str, data: dict) -> None:
    token = hub.api().post(f"/users/{user}/tokens", json={"note": "t"}).json()["token"]
    response = httpx.post(
        f"{hub.url}/hub/set-user-data", json=data, headers={"Authorization": f"token {token}"}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def hub_with_victim(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    login(hub, "victim", VICTIM_DN)
    ok, message = spawn(hub, "victim")
    assert ok, message
    return hub, posix_accounts(slapd)["victim"]


@pytest.mark.parametrize(
    ("posted_dn", "expected"),
    [
        ("/CN=x+uid=victim", "may not set 'uid'"),
        ("/CN=x/uid=victim", "may not set 'uid'"),
        ("/CN=x/uidNumber=0", "may not set 'uidNumber'"),
        ("/CN=x/objectClass=top", "may not set 'objectClass'"),
        ("/CN=x/CN=y", "sets 'CN' twice"),
        ("/CN=x\u0000y", "control characters"),
        (VICTIM_DN, "already exists and belongs to someone else"),
    ],
)
def test_posted_dn_cannot_claim_or_change_another_entry(
    slapd, hub_with_victim, posted_dn, expected
):
    hub, victim_before = hub_with_victim
    login(hub, "mallory")
    post_user_data(hub, "mallory", {"CERT": posted_dn})
    ok, message = spawn(hub, "mallory")
    assert not ok
    assert expected in message
    accounts = posix_accounts(slapd)
    assert accounts["victim"] == victim_before
    assert "mallory" not in accounts


@pytest.mark.parametrize(
    "name", ["*", "vic*", "victim)(uid=*", "victim\\", "a,uid=victim", "v=x+uid=victim", "(victim)"]
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
    response = httpx.get(
        f"{hub.url}/hub/login",
        headers={"Remote-User": "frank", "Cert-DN": "/CN=Frank", "Portal-Uid": "fjones"},
    )
    assert response.status_code == 302
    ok, message = spawn(hub, "frank")
    assert ok, message
    assert posix_accounts(slapd)["fjones"]["description"] == ["jupyterhub-user:frank"]
