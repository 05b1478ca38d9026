"""uidNumber allocation is atomic: concurrent first spawns never share a uidNumber."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.harness.hub import spawn
from tests.harness.process import server_environment
from tests.ldap_hooks.conftest import LIGHT_SPAWNER, counter, listing_7, posix_accounts

USERS = [f"student{i:02d}" for i in range(50)]


def test_fifty_concurrent_first_spawns_get_distinct_uid_numbers(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    for user in USERS:  # the front proxy's logins, with each student's certificate DN
        dn = f"/C=DK/O=KU/CN=Student {user}/emailAddress={user}@ku.dk"
        response = httpx.get(f"{hub.url}/hub/login", headers={"Remote-User": user, "Cert-DN": dn})
        assert response.status_code == 302, response.text
    with ThreadPoolExecutor(len(USERS)) as pool:
        results = list(pool.map(lambda user: spawn(hub, user, timeout=120), USERS))
    assert all(ok for ok, _ in results), [message for ok, message in results if not ok]

    accounts = posix_accounts(slapd)
    numbers = sorted(int(accounts[user]["uidNumber"][0]) for user in USERS)
    assert numbers == list(range(10000, 10050))
    assert counter(slapd) == 10049
    env_numbers = {server_environment(user)["NB_UID"] for user in USERS}
    assert len(env_numbers) == 50
