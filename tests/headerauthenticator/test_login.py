"""Logging in through the front proxy, the way a person's browser does."""

from __future__ import annotations

import httpx

from tests.headerauthenticator.conftest import FrontedHub


def test_login_through_nginx_lands_on_home(fronted: FrontedHub) -> None:
    client = fronted.login("alice")
    assert "alice" in client.get("/hub/home").text
    user = fronted.hub.api().get("/users/alice").json()
    assert user["name"] == "alice"
    assert user["admin"] is False


def test_client_cannot_choose_the_username_through_the_proxy(fronted: FrontedHub) -> None:
    client = fronted.client("bob", follow_redirects=True)
    response = client.get("/hub/login", headers={"Remote-User": "carol"})
    assert response.url.path == "/hub/home"
    whoami = client.get("/hub/api/user", headers={"Referer": f"{fronted.nginx.url}/hub/home"})
    assert whoami.json()["name"] == "bob"


def test_admin_users_is_honoured(fronted: FrontedHub) -> None:
    fronted.login("carol")
    assert fronted.hub.api().get("/users/carol").json()["admin"] is True


def test_next_is_followed_within_the_hub_only(fronted: FrontedHub) -> None:
    client = fronted.client("alice")
    inside = client.get("/hub/login", params={"next": "/hub/token"})
    assert inside.status_code == 302
    assert inside.headers["location"] == "/hub/token"
    outside = client.get("/hub/login", params={"next": "https://evil.example/steal"})
    assert outside.status_code == 302
    assert "evil.example" not in outside.headers["location"]
    scheme_relative = client.get("/hub/login", params={"next": "//evil.example/x"})
    assert "evil.example" not in scheme_relative.headers["location"]


def test_missing_username_header_explains_how_to_log_in(fronted: FrontedHub) -> None:
    # Straight to the hub from a trusted address, but without the header: a 401 with a hint.
    response = httpx.get(f"{fronted.hub.url}/hub/login")
    assert response.status_code == 401
    assert "No Remote-User header was received" in response.text


def test_logged_in_user_without_header_is_sent_on(fronted: FrontedHub) -> None:
    client = fronted.login("alice")
    cookies = client.cookies
    response = httpx.get(
        f"{fronted.hub.url}/hub/login", cookies=cookies, params={"next": "/hub/token"}
    )
    assert response.status_code == 302
    assert response.headers["location"] == "/hub/token"


def test_over_long_header_is_refused_with_400(fronted: FrontedHub) -> None:
    client = fronted.client("alice")
    response = client.get("/hub/login", headers={"X-Portal-Mail": "m" * 2000})
    assert response.status_code == 400
    assert "Mail header is longer than 1024 characters" in response.text


def test_groups_header_manages_group_membership(fronted: FrontedHub) -> None:
    fronted.login("alice", **{"X-Portal-Groups": "course-a, course-b"})
    assert sorted(fronted.hub.api().get("/users/alice").json()["groups"]) == [
        "course-a",
        "course-b",
    ]
    fronted.login("alice", **{"X-Portal-Groups": "course-b"})
    assert fronted.hub.api().get("/users/alice").json()["groups"] == ["course-b"]
