"""corc's own overhead per create + delete, against the raw libcloud calls, on a moto EC2 server.

Baselines, the bare libcloud calls a script would make with a size and image already in hand:

- ``create_node`` then ``destroy_node`` (the issue's baseline: it never waits for the machine);
- ``create_node``, DescribeInstances of that node until it runs (once on moto), then
  ``destroy_node``: the same work corc does, since ``setup()`` returns a *running* machine.

corc: ``Orchestrator.setup()`` (record first, size choice, image lookup, tags at birth, wait until
running) then ``tear_down()`` (delete, record update). All run in this process against the same
moto server, interleaved. Prints the median time per create+delete, the ratios, the provider API
calls corc makes, and where corc's time goes: inside provider calls vs. its own bookkeeping
(record writes, thread hops, size choice).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from corc_core import RecordStore  # noqa: E402
from corc_core.providers.libcloud import LibcloudOrchestrator  # noqa: E402
from tests.harness.clouds import ec2_options, start_moto  # noqa: E402

ROUNDS = 30
IMAGE = "ami-03cf127a"


async def main() -> None:
    from libcloud.compute.providers import get_driver

    with tempfile.TemporaryDirectory() as tmp:
        moto, port = start_moto(Path(tmp))
        try:
            options = dict(ec2_options(port), image=IMAGE)
            driver = get_driver("ec2")(
                options["key"], options["secret"], **options["driver_kwargs"]
            )
            size = next(s for s in driver.list_sizes() if s.id == "t2.micro")
            image = driver.get_image(IMAGE)

            def raw() -> None:
                node = driver.create_node(name="raw", size=size, image=image)
                driver.destroy_node(node)

            def raw_waiting() -> None:
                node = driver.create_node(name="raw", size=size, image=image)
                while driver.list_nodes(ex_node_ids=[node.id])[0].state != "running":
                    time.sleep(0.01)
                driver.destroy_node(node)

            store = RecordStore(Path(tmp) / "records.sqlite")
            calls: list[int] = []
            in_provider: list[float] = []
            in_store = [0.0]
            for name in ("create", "update", "get", "release"):
                method = getattr(store, name)

                async def timed_store(*args, _method=method, **kwargs):
                    start = time.perf_counter()
                    try:
                        return await _method(*args, **kwargs)
                    finally:
                        in_store[0] += time.perf_counter() - start

                setattr(store, name, timed_store)

            async def ours() -> None:
                orchestrator = LibcloudOrchestrator(
                    options, store=store, owner="bench", poll_interval=0.01
                )
                spent = 0.0
                blocking = orchestrator.call_blocking

                async def timed(func, *args, **kwargs):
                    nonlocal spent
                    start = time.perf_counter()
                    try:
                        return await blocking(func, *args, **kwargs)
                    finally:
                        spent += time.perf_counter() - start

                orchestrator.call_blocking = timed  # type: ignore[method-assign]
                await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
                await orchestrator.tear_down()
                calls.append(orchestrator.api_calls)
                in_provider.append(spent)

            raw()
            raw_waiting()
            await ours()  # warm-up (catalogue cache, key pair, connections)
            calls.clear()
            in_provider.clear()
            in_store[0] = 0.0
            times: dict[str, list[float]] = {"raw": [], "raw_waiting": [], "ours": []}
            for _ in range(ROUNDS):
                for name, run in (("raw", raw), ("raw_waiting", raw_waiting)):
                    start = time.perf_counter()
                    await asyncio.to_thread(run)
                    times[name].append(time.perf_counter() - start)
                start = time.perf_counter()
                await ours()
                times["ours"].append(time.perf_counter() - start)
        finally:
            moto.stop()
    ms = {name: statistics.median(values) * 1000 for name, values in times.items()}
    provider_ms = statistics.median(in_provider) * 1000
    print(f"corc: raw libcloud create+destroy          {ms['raw']:7.1f} ms (median of {ROUNDS})")
    print(f"corc: raw create+describe+destroy     {ms['raw_waiting']:7.1f} ms")
    print(f"corc: corc setup+tear_down                 {ms['ours']:7.1f} ms")
    store_ms = in_store[0] / ROUNDS * 1000
    print(
        f"corc:   of which in provider calls {provider_ms:.1f} ms,"
        f" outside them {ms['ours'] - provider_ms:.1f} ms"
        f" (record store: {store_ms:.2f} ms for 5 writes; the rest is the provider's own"
        " code on the loop: size choice, user data)"
    )
    print(f"corc: ratio corc/raw create+destroy = {ms['ours'] / ms['raw']:.2f}")
    print(f"corc: ratio corc/raw same work (with the wait) = {ms['ours'] / ms['raw_waiting']:.2f}")
    print(
        f"corc: provider API calls per setup+tear_down = {statistics.median(calls):.0f}"
        " (raw: 2 without the wait, 3 with it)"
    )


if __name__ == "__main__":
    asyncio.run(main())
