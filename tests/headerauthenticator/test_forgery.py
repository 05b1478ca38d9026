"""Attacks on the header login from inside the hub machine: forged, repeated or malformed headers.

Every notebook on the hub machine (and every SSH reverse tunnel) connects from 127.0.0.1, the front
proxy's own address, so the peer address proves nothing: only the front proxy's shared secret does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.hub import spawn
from tests.headerauthenticator.conftest import (
    HEADER_CONFIG,
    SECRET,
    SECRET_HEADER,
    FrontedHub,
    hub_server_environment,
    start_fronted,
)

HubHeaders = list[tuple[str | bytes, str | bytes]]
LIGHT_SERVER = Path(__file__).resolve().parents[1] / "harness" / "light_server.py"
LIMIT = 12000  # under the 16 KiB of headers configurable-http-proxy (node) accepts
CRASH_MAIL = "crash@example.org"
CRASH_ON_MAIL = f"""
import sys
c.Spawner.cmd = [sys.executable, {str(LIGHT_SERVER)!r}]
c.Spawner.args = []

def crash_on_mail(spawner):
    # A spawn that fails when the login's MAIL says so (after the authenticator's pre-spawn step).
    if spawner.environment.get("MAIL") == {CRASH_MAIL!r}:
        raise RuntimeError("this spawn fails, as the test asked")

c.Spawner.pre_spawn_hook = crash_on_mail
"""


@pytest.fixture(scope="module")
def fronted(tmp_path_factory) -> Iterator[FrontedHub]:
    """The shared fronted hub, with room for header values deep enough to exhaust recursion."""
    config = HEADER_CONFIG + CRASH_ON_MAIL + f"c.HeaderAuthenticator.max_header_length = {LIMIT}\n"
    front = start_fronted(tmp_path_factory.mktemp("forgery"), config)
    try:
        yield front
    finally:
        front.nginx.stop()
        front.hub.stop()


def straight_to_hub(fronted: FrontedHub, headers: HubHeaders, port: int | None = None):
    """GET /hub/login straight to the hub (its proxy port, or ``port``) from 127.0.0.1."""
    url = f"http://127.0.0.1:{port}" if port else fronted.hub.url
    return httpx.get(f"{url}/hub/login", headers=headers, timeout=30)


def assert_not_logged_in(response: httpx.Response, fronted: FrontedHub, user: str) -> None:
    assert "jupyterhub-session-id" not in response.headers.get("set-cookie", "")
    assert "jupyterhub-hub-login" not in response.headers.get("set-cookie", "")
    assert fronted.hub.api().get(f"/users/{user}").status_code == 404


def test_local_process_cannot_log_in_through_the_proxy_port(fronted: FrontedHub) -> None:
    # What any notebook on this machine can do: curl the hub's public port from 127.0.0.1.
    response = straight_to_hub(fronted, [("Remote-User", "forged-admin")])
    assert response.status_code == 403
    assert "did not carry the front proxy" in response.text
    assert_not_logged_in(response, fronted, "forged-admin")


def test_forged_forwarded_for_to_the_hub_port_needs_the_secret(fronted: FrontedHub) -> None:
    # Straight to the hub's own port, claiming to come through its proxy from a trusted address.
    response = straight_to_hub(
        fronted,
        [("Remote-User", "forged-xff"), ("X-Forwarded-For", "127.0.0.1")],
        port=fronted.hub.hub_port,
    )
    assert response.status_code == 403
    assert_not_logged_in(response, fronted, "forged-xff")


@pytest.mark.parametrize(
    "secrets",
    [["guess-guess-guess-guess"], [SECRET, SECRET], [SECRET[:-1]], [SECRET + "0"]],
    ids=["wrong", "repeated", "prefix", "longer"],
)
def test_only_the_exact_secret_once_is_believed(fronted: FrontedHub, secrets: list[str]) -> None:
    headers: HubHeaders = [("Remote-User", "forged-secret")]
    headers += [(SECRET_HEADER, secret) for secret in secrets]
    response = straight_to_hub(fronted, headers)
    assert response.status_code == 403
    assert_not_logged_in(response, fronted, "forged-secret")


@pytest.mark.parametrize(
    "users",
    [[("Remote-User", "victim"), ("Remote-User", "alice")], [("Remote-User", "victim,alice")]],
    ids=["two-headers", "comma-joined"],
)
def test_repeated_username_is_refused_not_joined(fronted: FrontedHub, users: HubHeaders) -> None:
    # A front proxy that appends instead of replacing would pass a client's header along.
    response = straight_to_hub(fronted, [(SECRET_HEADER, SECRET), *users])
    assert response.status_code == 400
    assert "more than" in response.text
    for name in ("victim", "victim,alice", "alice,victim"):
        assert fronted.hub.api().get(f"/users/{name}").status_code == 404


MARK = "leak-marker-7f3a91"
DEEP = "[" * 5000 + f'"{MARK}"' + "]" * 5000


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("Remote-User", "dana"), ("Auth-Data", DEEP)], "nested"),
        ([("Remote-User", "dana"), ("Auth-Data", "[" * 60 + "]" * 60)], "nested"),
        ([("Remote-User", b"dana\xff\xfe" + MARK.encode())], "not valid UTF-8"),
        ([("Remote-User", "dana"), ("Mail", b"\xc3(" + MARK.encode())], "not valid UTF-8"),
        ([("Remote-User", "dana"), ("Mail", MARK * 700)], f"longer than {LIMIT}"),
        ([("Remote-User", "dana"), ("Groups", "g," + "x" * 300 + MARK)], "longer than 255"),
        ([("Remote-User", b"dana\xc2\x85" + MARK.encode())], "control characters"),
        ([("Remote-User", "dana"), ("Auth-Data", MARK), ("Auth-Data", MARK)], "more than once"),
    ],
    ids=["deep-json", "nested-json", "utf8-user", "utf8-mail", "huge", "group", "ctrl", "twice"],
)
def test_malformed_values_are_a_400_and_never_logged(
    fronted: FrontedHub, headers: HubHeaders, reason: str
) -> None:
    # To the hub's own port: its proxy would join a repeated header, and refuses huge ones itself.
    response = straight_to_hub(fronted, [(SECRET_HEADER, SECRET), *headers], fronted.hub.hub_port)
    assert response.status_code == 400, response.text
    assert reason in response.text
    assert MARK not in response.text
    log = fronted.hub.log()
    assert MARK not in log
    assert SECRET not in log
    assert "500 GET /hub/login" not in log and "Uncaught exception GET /hub/login" not in log


def test_missing_groups_header_keeps_the_groups(fronted: FrontedHub) -> None:
    fronted.login("bob", **{"X-Portal-Groups": "lab-1, lab-2"})
    fronted.login("bob")  # this login's portal data has no groups
    assert sorted(fronted.hub.api().get("/users/bob").json()["groups"]) == ["lab-1", "lab-2"]


def stop(api: httpx.Client, user: str, timeout: float = 60) -> None:
    """Stop ``user``'s server and wait until the hub has no server for them."""
    assert api.delete(f"/users/{user}/server").status_code in (202, 204)
    deadline = time.monotonic() + timeout
    while api.get(f"/users/{user}").json()["servers"]:
        assert time.monotonic() < deadline, f"{user}'s server did not stop"
        time.sleep(0.2)


def test_server_gets_the_data_of_the_latest_login(fronted: FrontedHub) -> None:
    user = "fresh-data"

    def login(**headers: str) -> None:
        sent = [(SECRET_HEADER, SECRET), ("Remote-User", user), *headers.items()]
        assert straight_to_hub(fronted, sent).status_code == 302

    data_a, data_b = {"mount": "old-mount-A"}, {"mount": "new-mount-B"}
    login(**{"Auth-Data": json.dumps(data_a)})
    login(**{"Auth-Data": json.dumps(data_b)})
    api = fronted.hub.api()
    try:
        ok, message = spawn(fronted.hub, user)
        assert ok, message
        assert json.loads(hub_server_environment(fronted.hub, user)["AUTH_DATA"]) == data_b
        stop(api, user)
        # A spawn that fails keeps its spawner (for the error page), with that login's data...
        login(**{"Auth-Data": json.dumps(data_a), "Mail": CRASH_MAIL})
        ok, _message = spawn(fronted.hub, user)
        assert not ok
        # ...and the next login sends none: its server must not be handed the old copy.
        login(Mail="fresh@example.org")
        ok, message = spawn(fronted.hub, user)
        assert ok, message
        env = hub_server_environment(fronted.hub, user)
        assert "AUTH_DATA" not in env
        assert env["MAIL"] == "fresh@example.org"
    finally:
        api.delete(f"/users/{user}/server")


def test_posted_user_data_never_replaces_header_values(fronted: FrontedHub) -> None:
    fronted.login("carol", **{"X-Portal-Mail": "carol@portal.example"})
    token = fronted.hub.api().post("/users/carol/tokens", json={"note": "t"}).json()["token"]
    response = httpx.post(
        f"{fronted.hub.url}/hub/set-user-data",
        json={"mail": "mallory@evil.example"},
        headers={"Authorization": f"token {token}"},
    )
    assert response.status_code == 200, response.text
    state = fronted.hub.api().get("/users/carol").json()["auth_state"]
    assert state["mail"] == "carol@portal.example"  # what the portal said
    assert state["user_data"] == {"mail": "mallory@evil.example"}  # kept apart, marked as posted


def test_login_headers_sent_to_another_hub_page_never_reach_the_log(fronted: FrontedHub) -> None:
    user, mark = "crash-log", "other-page-marker-51c2"
    sent = [(SECRET_HEADER, SECRET), ("Remote-User", user), ("Mail", CRASH_MAIL)]
    assert straight_to_hub(fronted, sent).status_code == 302
    # A proxy that (wrongly) sends the login headers on every path, and a request that fails with a
    # 500, for which JupyterHub writes all request headers to its log.
    response = httpx.post(
        f"{fronted.hub.url}/hub/api/users/{user}/server",
        headers={
            "Authorization": f"token {fronted.hub.api_token}",
            SECRET_HEADER: SECRET,
            "Remote-User": mark,
            "Auth-Data": mark,
        },
        timeout=60,
    )
    assert response.status_code == 500, response.text
    log = fronted.hub.wait_log(f'"{SECRET_HEADER}": "[removed]"')  # the 500's header dump
    assert SECRET not in log
    assert mark not in log
