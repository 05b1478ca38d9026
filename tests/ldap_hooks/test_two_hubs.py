"""Two hubs on one directory: names with the same POSIX name never both get an entry.

Each "hub" is an event loop of its own in its own thread (so the per-hub creation lock does not
apply) calling ``provision`` at the same moment; the directory is a real slapd.
"""

from __future__ import annotations

import asyncio
import threading

from ldap_hooks import LDAPHookError, provision
from tests.harness.ldap_stand_ins import Spawner, listing_7_hooks
from tests.ldap_hooks.conftest import posix_accounts


def one_hub(slapd, name: str, barrier: threading.Barrier, outcomes: dict[str, str]) -> None:
    """One hub's spawn of ``name``, in an event loop of its own, started with the others."""

    async def spawn() -> None:
        barrier.wait()  # this loop has nothing else to do
        await provision(listing_7_hooks(slapd), Spawner(name))

    try:
        asyncio.run(spawn())
        outcomes[name] = "ok"
    except LDAPHookError as error:
        outcomes[name] = str(error)


def test_two_hubs_never_leave_two_entries_for_one_posix_name(slapd):
    rounds = 8
    for round_number in range(rounds):
        names = [f"p{round_number}.x", f"p{round_number}*x"]  # both become p<n>_x
        barrier = threading.Barrier(len(names))
        outcomes: dict[str, str] = {}

        threads = [
            threading.Thread(target=one_hub, args=(slapd, name, barrier, outcomes))
            for name in names
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        accounts = [a for a in posix_accounts(slapd).values() if a["uid"] == [f"p{round_number}_x"]]
        assert len(accounts) <= 1, (round_number, outcomes)
        winners = [name for name, outcome in outcomes.items() if outcome == "ok"]
        assert len(winners) == len(accounts), outcomes
        if winners:
            assert accounts[0]["description"] == [f"jupyterhub-user:{winners[0]}"]
        for name, outcome in outcomes.items():
            if outcome != "ok":
                assert (
                    "belongs to another hub user" in outcome
                    or "was created at the same moment; try again" in outcome
                ), (name, outcome)
