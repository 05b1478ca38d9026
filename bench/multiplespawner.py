"""MultipleSpawner overhead, measured against the same sub-spawner configured directly.

1. Spawn latency: POST /users/<u>/server until the server answers, one at a time, alternating
   between a hub whose spawner is the MultipleSpawner (a SimpleLocalProcessSpawner template on a
   provider that orders nothing) and a hub whose spawner is SimpleLocalProcessSpawner itself.
   Ratio of the medians; target <= 1.02.
2. Hub API p99 under load: 50 spawns at once while a client times GET /hub/api/users/<u>; the
   p99 with the MultipleSpawner over the p99 with SimpleLocalProcessSpawner. Target <= 1.2.

Both hubs start tests/harness/light_server.py as the single-user server, so the hub's own work is
what is measured, not JupyterLab's import time.
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

import httpx  # noqa: E402

from tests.harness.hub import Hub  # noqa: E402

LIGHT = str(HERE.parent / "tests" / "harness" / "light_server.py")
COMMON = f"""
# JupyterHub's random_port() can hand two concurrent spawns the same port: take the next free one,
# below the kernel's ephemeral range (32768 and up), where the bench's own client connections may
# take a port between the pick and the server's bind (the notebook then dies at start, and
# JupyterHub 6.1.1 answers that spawn with a bare 500). Free means "can be bound", as the server will.
import itertools, os, socket
_ports = itertools.count(20000 + (os.getpid() % 50) * 200)
def _unique_port(spawner):
    for port in _ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        spawner.port = port
        return
c.Spawner.pre_spawn_hook = _unique_port
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Spawner.cmd = [{sys.executable!r}, {LIGHT!r}]
c.Spawner.args = []
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.log_level = "INFO"
"""
DIRECT = COMMON + 'c.JupyterHub.spawner_class = "simple"\n'
MULTIPLE = (
    COMMON
    + """
c.JupyterHub.spawner_class = "multiple"
c.MultipleSpawner.providers = {"here": {"display_name": "This machine", "corc": None}}
c.MultipleSpawner.templates = [{
    "name": "local", "resource_type": "bare_metal", "providers": ["here"],
    "spawner": {"class": "jupyterhub.spawner.SimpleLocalProcessSpawner",
                "kwargs": {"home_dir_template": "/tmp/ms-bench-home/{username}"}},
}]
c.MultipleSpawner.deployments = {"bare_metal": [{"name": "machine", "provider": "here"}]}
"""
)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def create_users(client: httpx.AsyncClient, names: list[str]) -> None:
    response = await client.post("/users", json={"usernames": names})
    assert response.status_code in (201, 409), response.text


async def wait_ready(client: httpx.AsyncClient, user: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = (await client.get(f"/users/{user}")).json()["servers"].get("")
        if server and server["ready"]:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{user} not ready")


async def spawn(client: httpx.AsyncClient, user: str) -> float:
    started = time.perf_counter()
    response = await client.post(f"/users/{user}/server", json={})
    assert response.status_code in (201, 202), response.text
    if response.status_code == 202:
        await wait_ready(client, user)
    return time.perf_counter() - started


async def stop(client: httpx.AsyncClient, user: str) -> None:
    await client.delete(f"/users/{user}/server")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not (await client.get(f"/users/{user}")).json()["servers"]:
            return
        await asyncio.sleep(0.05)


def client_for(hub: Hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{hub.url}/hub/api",
        headers={"Authorization": f"token {hub.api_token}"},
        timeout=180,
        limits=httpx.Limits(max_connections=200),
    )


async def latency(hubs: dict[str, Hub], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in hubs}
    clients = {name: client_for(hub) for name, hub in hubs.items()}
    for name, client in clients.items():
        await create_users(client, [f"lat{i}" for i in range(rounds)])
        await stop(client, "lat0")
        times[name].append(0)  # warm-up below is discarded
        await spawn(client, "lat0")
        await stop(client, "lat0")
        times[name].clear()
    for i in range(1, rounds):
        order = list(clients.items())
        for name, client in order if i % 2 else reversed(order):  # ABBA: no side goes first always
            times[name].append(await spawn(client, f"lat{i}"))
            await stop(client, f"lat{i}")
    for client in clients.values():
        await client.aclose()
    return times


async def under_load(hub: Hub, count: int, prefix: str) -> list[float]:
    async with client_for(hub) as client:
        names = [f"{prefix}{i}" for i in range(count)]
        await create_users(client, [*names, f"{prefix}probe"])
        probes: list[float] = []
        spawns = asyncio.gather(*(spawn(client, name) for name in names))
        task = asyncio.ensure_future(spawns)
        async with client_for(hub) as prober:
            while not task.done():
                started = time.perf_counter()
                response = await prober.get(f"/users/{prefix}probe")
                probes.append(time.perf_counter() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.01)
        await task
        await asyncio.gather(*(stop(client, name) for name in names))
        return probes


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hubs = {
            "direct": Hub(Path(tmp) / "direct", DIRECT),
            "multiple": Hub(Path(tmp) / "multiple", MULTIPLE),
        }
        for hub in hubs.values():
            hub.start()
        try:
            times = await latency(hubs, 41)
            direct, multiple = (statistics.median(times[n]) for n in ("direct", "multiple"))
            means = {n: statistics.mean(times[n]) for n in times}
            print(
                f"multiplespawner: spawn latency p50 direct {direct * 1000:7.1f} ms,"
                f" via MultipleSpawner {multiple * 1000:7.1f} ms"
            )
            print(
                f"multiplespawner: spawn latency ratio multiple/direct = {multiple / direct:.3f}"
                f" (p50), {means['multiple'] / means['direct']:.3f} (mean of {len(times['direct'])})"
            )

            p99: dict[str, list[float]] = {"direct": [], "multiple": []}
            for round_ in range(2):
                for name, hub in hubs.items():
                    probes = await under_load(hub, 50, f"r{round_}u")
                    p99[name].append(percentile(probes, 0.99))
                    print(
                        f"multiplespawner: round {round_} {name:8s} 50 spawns: API p50"
                        f" {statistics.median(probes) * 1000:6.1f} ms p99"
                        f" {p99[name][-1] * 1000:6.1f} ms ({len(probes)} requests)"
                    )
            ratio = statistics.mean(p99["multiple"]) / statistics.mean(p99["direct"])
            print(
                f"multiplespawner: hub API p99 ratio multiple/direct under 50 spawns = {ratio:.3f}"
            )
        except BaseException:
            for name, hub in hubs.items():  # what the hubs said, before their directory goes
                log = hub.log()
                at = log.find("Uncaught exception")
                print(f"--- {name} hub:\n{log[at : at + 4000] if at >= 0 else log[-3000:]}")
            raise
        finally:
            for hub in hubs.values():
                hub.stop()


if __name__ == "__main__":
    asyncio.run(main())
