"""corc's own overhead per create + delete, against the raw libcloud calls, on a moto EC2 server.

Baseline: the bare libcloud calls a script would make with a size and image already in hand:
``create_node`` then ``destroy_node``. corc: ``Orchestrator.setup()`` (record first, size choice,
image lookup, tags, wait until running) then ``tear_down()`` (delete, record update). Both run in
this process against the same moto server. Prints the median time per create+delete for both, the
ratio, and the provider API calls corc makes per create.
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
            size = next(s for s in driver.list_sizes() if s.id == "t3.micro")
            image = driver.get_image(IMAGE)

            def raw() -> None:
                node = driver.create_node(name="raw", size=size, image=image)
                driver.destroy_node(node)

            store = RecordStore(Path(tmp) / "records.sqlite")
            calls = []

            async def ours() -> None:
                orchestrator = LibcloudOrchestrator(
                    options, store=store, owner="bench", poll_interval=0.01
                )
                await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
                calls.append(orchestrator.api_calls)
                await orchestrator.tear_down()

            raw()
            await ours()  # warm-up
            calls.clear()
            raw_times, our_times = [], []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                await asyncio.to_thread(raw)
                raw_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                await ours()
                our_times.append(time.perf_counter() - start)
        finally:
            moto.stop()
    raw_ms, our_ms = statistics.median(raw_times) * 1000, statistics.median(our_times) * 1000
    print(f"corc: raw libcloud create+delete  {raw_ms:7.1f} ms (median of {ROUNDS})")
    print(f"corc: corc setup+tear_down       {our_ms:7.1f} ms (median of {ROUNDS})")
    print(f"corc: ratio corc/raw = {our_ms / raw_ms:.2f}")
    print(
        f"corc: provider API calls per create (setup) = {statistics.median(calls):.0f}"
        " (raw: 1 create_node)"
    )


if __name__ == "__main__":
    asyncio.run(main())
