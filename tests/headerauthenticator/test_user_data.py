"""POST /hub/set-user-data stores allowed attributes in auth_state, validated and persistent."""

from __future__ import annotations

import httpx

from tests.headerauthenticator.conftest import FrontedHub


def user_token(fronted: FrontedHub, user: str) -> str:
    response = fronted.hub.api().post(f"/users/{user}/tokens", json={"note": "test"})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def set_user_data(fronted: FrontedHub, token: str, body: bytes | dict) -> httpx.Response:
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return httpx.post(
        f"{fronted.hub.url}/hub/set-user-data",
        content=content,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )


DN = "/C=DK/ST=NA/L=NA/O=NBI/OU=NA/CN=Alice Doe/emailAddress=alice@nbi.ku.dk"


def test_user_data_is_stored_and_survives_login_and_restart(fronted: FrontedHub) -> None:
    fronted.login("alice")
    token = user_token(fronted, "alice")
    response = set_user_data(fronted, token, {"PersonalDistinguishedName": DN})
    assert response.status_code == 200, response.text
    state = fronted.hub.api().get("/users/alice").json()["auth_state"]
    assert state["user_data"] == {"PersonalDistinguishedName": DN}

    fronted.login("alice", **{"X-Portal-Mail": "new@example.org"})  # a new login keeps it
    fronted.hub.restart()
    state = fronted.hub.api().get("/users/alice").json()["auth_state"]
    assert state["user_data"] == {"PersonalDistinguishedName": DN}
    assert state["mail"] == "new@example.org"


def test_unknown_attribute_is_refused_and_nothing_is_stored(fronted: FrontedHub) -> None:
    fronted.login("bob")
    token = user_token(fronted, "bob")
    response = set_user_data(fronted, token, {"quota": 5, "uidNumber": 0})
    assert response.status_code == 400
    assert "Not allowed to set uidNumber" in response.json()["message"]
    state = fronted.hub.api().get("/users/bob").json()["auth_state"] or {}
    assert "user_data" not in state


def test_malformed_and_oversized_bodies_are_refused(fronted: FrontedHub) -> None:
    fronted.login("bob")
    token = user_token(fronted, "bob")
    assert set_user_data(fronted, token, b"[1, 2]").status_code == 400
    assert set_user_data(fronted, token, b"{not json").status_code == 400
    big = {"quota": "x" * 2000}
    response = set_user_data(fronted, token, big)
    assert response.status_code == 413
    assert "larger than 1024 bytes" in response.json()["message"]


def test_anonymous_and_foreign_credentials_are_refused(fronted: FrontedHub) -> None:
    anonymous = httpx.post(f"{fronted.hub.url}/hub/set-user-data", json={"quota": 1})
    assert anonymous.status_code == 403
    fronted.login("alice")
    fronted.login("bob")
    # A token of bob's that may only read: it cannot change bob's data.
    response = fronted.hub.api().post(
        "/users/bob/tokens", json={"note": "read-only", "scopes": ["read:users:name!user"]}
    )
    assert response.status_code == 201, response.text
    readonly = response.json()["token"]
    assert set_user_data(fronted, readonly, {"quota": 1}).status_code == 403
