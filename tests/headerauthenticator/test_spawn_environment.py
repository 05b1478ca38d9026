"""The server's environment carries the latest login's data, even when a spawner object is reused.

JupyterHub 6 makes a new spawner for each start, but wrapper spawners and older hubs keep one: what
an earlier login exported must not outlive the login that sent it.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.spawner import LocalProcessSpawner

from headerauthenticator import HeaderAuthenticator


class LoggedInUser:
    """What pre_spawn_start reads from the hub's user: the auth_state of the latest login."""

    def __init__(self, auth_state: dict[str, Any]) -> None:
        self.auth_state = auth_state

    async def get_auth_state(self) -> dict[str, Any]:
        return self.auth_state


async def test_a_reused_spawner_is_not_handed_the_previous_logins_data() -> None:
    authenticator = HeaderAuthenticator(
        shared_secret="s" * 32,
        shared_secret_header="X-Gridhub-Secret",
        spawner_shared_headers=["auth_data", "mail"],
    )
    spawner = LocalProcessSpawner()
    spawner.environment = {"SITE": "configured", "MAIL": "configured@example.org"}
    first = LoggedInUser({"auth_data": {"mount": "A"}, "mail": "a@example.org"})
    await authenticator.pre_spawn_start(first, spawner)
    assert spawner.environment == {
        "SITE": "configured",
        "MAIL": "a@example.org",
        "AUTH_DATA": '{"mount": "A"}',
    }
    # The next login sent no data: nothing of the first login's stays; the configured value is back.
    await authenticator.pre_spawn_start(LoggedInUser({}), spawner)
    assert spawner.environment == {"SITE": "configured", "MAIL": "configured@example.org"}
    second = LoggedInUser({"auth_data": {"mount": "B"}})
    await authenticator.pre_spawn_start(second, spawner)
    assert spawner.environment == {
        "SITE": "configured",
        "MAIL": "configured@example.org",
        "AUTH_DATA": '{"mount": "B"}',
    }
