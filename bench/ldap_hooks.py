"""ldap_hooks against a real slapd: first-time users per second and hook latency for known users.

For 1 and for 50 concurrent spawns it measures:
- first-time users/s: the hook creates the entry and allocates a uidNumber;
- p50/p99 of the hook for existing users (one search on a pooled, bound connection; no lock);
- the baseline: p50/p99 of a bare ldap3 bind + search + unbind in a worker thread, the floor any hook
  pays, and the ratio of the hook's p50 to it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This script shares its name with the package it measures: keep bench/ off the import path.
HERE = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import ldap3  # noqa: E402

from ldap_hooks import provision  # noqa: E402
from tests.harness.ldap_stand_ins import Spawner, listing_7_hooks  # noqa: E402
from tests.harness.slapd import Slapd  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_batch(make_call, names: list[str], concurrency: int) -> list[float]:
    semaphore = asyncio.Semaphore(concurrency)
    durations: list[float] = []

    async def one(name: str) -> None:
        async with semaphore:
            start = time.perf_counter()
            await make_call(name)
            durations.append(time.perf_counter() - start)

    await asyncio.gather(*(one(name) for name in names))
    return durations


async def measure(slapd: Slapd, concurrency: int, count: int, prefix: str) -> None:
    hooks = listing_7_hooks(slapd)
    names = [f"{prefix}{i}" for i in range(count)]

    async def hook(name: str) -> None:
        spawner = Spawner(name)
        await provision(hooks, spawner)
        assert spawner.environment["NB_UID"]

    def bare(name: str) -> None:
        conn = ldap3.Connection(
            ldap3.Server(slapd.url, get_info=ldap3.NONE), slapd.rootdn, slapd.password
        )
        conn.bind()
        conn.search(slapd.suffix, f"(uid={name})", attributes=["*"])
        conn.unbind()

    start = time.perf_counter()
    await timed_batch(hook, names, concurrency)
    created_rate = count / (time.perf_counter() - start)
    existing = await timed_batch(hook, names, concurrency)
    baseline = await timed_batch(lambda n: asyncio.to_thread(bare, n), names, concurrency)
    hook_p50, base_p50 = statistics.median(existing), statistics.median(baseline)
    print(f"ldap_hooks: concurrency {concurrency:2d}: first-time users {created_rate:7.1f}/s")
    print(
        f"ldap_hooks: concurrency {concurrency:2d}: existing users  p50 {hook_p50 * 1000:6.2f} ms"
        f"  p99 {percentile(existing, 0.99) * 1000:6.2f} ms"
    )
    print(
        f"ldap_hooks: concurrency {concurrency:2d}: bare bind+search p50 {base_p50 * 1000:6.2f} ms"
        f"  p99 {percentile(baseline, 0.99) * 1000:6.2f} ms"
    )
    print(
        f"ldap_hooks: concurrency {concurrency:2d}: ratio hook/bare p50 = {hook_p50 / base_p50:.2f}"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        slapd = Slapd(Path(tmp) / "slapd")
        slapd.start()
        try:
            await measure(slapd, 1, 200, "solo")
            await measure(slapd, 50, 500, "crowd")
        finally:
            slapd.stop()


if __name__ == "__main__":
    asyncio.run(main())
