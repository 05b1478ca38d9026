"""Extra headers land in the encrypted auth_state and reach the spawned server's environment."""

from __future__ import annotations

import json
import time

from tests.headerauthenticator.conftest import FrontedHub, hub_server_environment

DATA = {"erda_mount": {"user": "alice@ku.dk", "key": "very-private-mount-key-81f2"}}


def test_extra_headers_are_kept_encrypted(fronted: FrontedHub) -> None:
    fronted.login(
        "alice",
        **{"X-Portal-Auth-Data": json.dumps(DATA), "X-Portal-Mail": "alice@example.org"},
    )
    state = fronted.hub.api().get("/users/alice").json()["auth_state"]
    assert state["auth_data"] == DATA
    assert state["mail"] == "alice@example.org"
    database = (fronted.hub.dir / "jupyterhub.sqlite").read_bytes()
    assert b"very-private-mount-key-81f2" not in database
    assert b"alice@example.org" not in database
    assert "very-private-mount-key-81f2" not in fronted.hub.log()


def test_shared_headers_reach_the_spawned_server(fronted: FrontedHub) -> None:
    client = fronted.login(
        "bob", **{"X-Portal-Auth-Data": json.dumps(DATA), "X-Portal-Mail": "bob@example.org"}
    )
    api = fronted.hub.api()
    response = api.post("/users/bob/server")
    assert response.status_code in (201, 202), response.text
    try:
        deadline = time.monotonic() + 60
        while not api.get("/users/bob").json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, fronted.hub.log()[-3000:]
            time.sleep(0.3)
        env = hub_server_environment(fronted.hub, "bob")
        assert json.loads(env["AUTH_DATA"]) == DATA
        assert env["MAIL"] == "bob@example.org"
        # The user reaches JupyterLab through the front proxy (OAuth with the hub included).
        lab = client.get("/user/bob/lab")
        assert lab.status_code == 200
        assert lab.url.path == "/user/bob/lab"
        assert "JupyterLab" in lab.text
    finally:
        api.delete("/users/bob/server")
