"""Concurrent first spawns: uidNumbers are never shared, POSIX names never get two entries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.harness.hub import spawn
from tests.ldap_hooks.conftest import (
    LIGHT_SPAWNER,
    counter,
    listing_7,
    login,
    posix_accounts,
    server_env,
)

USERS = [f"student{i:02d}" for i in range(50)]


def test_fifty_concurrent_first_spawns_get_distinct_uid_numbers(slapd, hub_factory):
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    for user in USERS:  # the front proxy's logins, with each student's certificate DN
        login(hub, user, f"/C=DK/O=KU/CN=Student {user}/emailAddress={user}@ku.dk")
    with ThreadPoolExecutor(len(USERS)) as pool:
        results = list(pool.map(lambda user: spawn(hub, user, timeout=120), USERS))
    assert all(ok for ok, _ in results), [message for ok, message in results if not ok]

    accounts = posix_accounts(slapd)
    numbers = sorted(int(accounts[user]["uidNumber"][0]) for user in USERS)
    assert numbers == list(range(10000, 10050))
    assert counter(slapd) == 10049
    env_numbers = {server_env(hub, user)["NB_UID"] for user in USERS}
    assert len(env_numbers) == 50


# Hub names that all become the POSIX name "ann_e".
CLASHING = ["ann.e", "ann*e", "ann@e", "ann~e", "ann!e", "ann+e"]


def test_names_with_the_same_posix_name_spawning_at_once_get_one_entry(slapd, hub_factory):
    # Rule: the first spawn to create the entry owns the POSIX name; every other hub user whose name
    # maps to it gets "belongs to another hub user" (creations of one POSIX name take turns).
    hub = hub_factory(listing_7(slapd.url, slapd.password, LIGHT_SPAWNER))
    for number, user in enumerate(CLASHING):
        login(hub, user, f"/O=KU/CN=Ann Number {number}")
    with ThreadPoolExecutor(len(CLASHING)) as pool:
        results = dict(
            zip(CLASHING, pool.map(lambda user: spawn(hub, user), CLASHING), strict=True)
        )

    winners = [user for user, (ok, _) in results.items() if ok]
    assert len(winners) == 1, results
    for user, (ok, message) in results.items():
        if not ok:
            assert "belongs to another hub user" in message, (user, message)
    accounts = posix_accounts(slapd)
    assert list(accounts) == ["ann_e"]
    assert accounts["ann_e"]["description"] == [f"jupyterhub-user:{winners[0]}"]
    assert counter(slapd) == 10000  # one number spent: losers never allocated one
