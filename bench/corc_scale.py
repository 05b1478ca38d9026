"""Scale: ``corc libcloud instance list`` and ``corc reap`` with many records and instances (moto).

Two sizes, each on a fresh moto server and store: 1,000 records with 100 instances, and 10,000
records with 1,000 instances. Every instance is tagged at birth as corc tags it (deployment and
record); one record in ten belongs to an instance, the others are history (deleted); one instance
in ten is an orphan (its record says deleted), which reap must report. Prints the wall time of the
two commands (run as an admin would, a fresh process each, best of ``--runs``) and, in process,
``reap()`` split into its one listing of the cloud (``list_resources`` with the deployment tag)
and the rest (the records: an indexed read of those the listing names, and the matching), plus
``store.list()`` of the whole history for scale, and the same DescribeInstances pages sent bare
(moto's own time, the baseline for the listing); and the growth of each from the small to the
large size: no worse than linear means a ratio of at most 10.

Usage: python bench/corc_scale.py [--small 1000] [--large 10000] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from corc_core import RecordStore  # noqa: E402
from corc_core.orchestrator import TAG, TAG_DEPLOYMENT, TAG_OWNER, TAG_RECORD  # noqa: E402
from corc_core.providers.libcloud import LibcloudOrchestrator  # noqa: E402
from tests.harness.clouds import ec2_options, start_moto  # noqa: E402

CORC = str(Path(sys.executable).with_name("corc"))
IMAGE = "ami-03cf127a"


def populate(options: dict, store: RecordStore, records: int) -> int:
    """``records`` records, one in ten with an instance on moto (one in ten of those orphaned)."""
    from libcloud.compute.providers import get_driver

    driver = get_driver("ec2")(options["key"], options["secret"], **options["driver_kwargs"])
    size = next(s for s in driver.list_sizes() if s.id == "t2.micro")
    image = driver.get_image(IMAGE)
    made = [store.create_sync("libcloud", f"user{i}") for i in range(records)]
    with_instance = made[::10]

    def create(index: int) -> None:
        record = with_instance[index]
        tags = {
            TAG: "true",
            TAG_RECORD: record.record_id,
            TAG_OWNER: record.owner,
            TAG_DEPLOYMENT: store.deployment_id,
        }
        node = driver.create_node(name="scale", size=size, image=image, ex_metadata=tags)
        state = "deleted" if index % 10 == 9 else "running"  # the orphans: a lost VM
        store.update_sync(record.record_id, resource_id=node.id, state=state)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(len(with_instance))))
    instance_records = {record.record_id for record in with_instance}
    for record in made:
        if record.record_id not in instance_records:
            store.update_sync(record.record_id, state="deleted")
    return len(with_instance) // 10


def count_on_moto(options: dict) -> int:
    from libcloud.compute.providers import get_driver

    from corc_core.providers.libcloud import EC2Extras

    driver = get_driver("ec2")(options["key"], options["secret"], **options["driver_kwargs"])
    nodes = EC2Extras().list_nodes(driver, {})  # every page (libcloud's own reads only one)
    return sum(str(node.state).lower() != "terminated" for node in nodes)


def bare_listing(options: dict, deployment: str) -> int:
    """The cloud alone: the same DescribeInstances pages corc asks for, sent bare, not parsed."""
    from libcloud.compute.drivers.ec2 import NAMESPACE
    from libcloud.compute.providers import get_driver
    from libcloud.utils.xml import findall, findtext

    from corc_core.providers.libcloud import EC2_PAGE_SIZE

    driver = get_driver("ec2")(options["key"], options["secret"], **options["driver_kwargs"])
    params = {"Action": "DescribeInstances", "MaxResults": str(EC2_PAGE_SIZE)}
    params.update(driver._build_filters({f"tag:{TAG_DEPLOYMENT}": deployment}))
    reservations = 0
    while True:
        page = driver.connection.request(driver.path, params=params).object
        reservations += len(findall(page, "reservationSet/item", NAMESPACE))
        token = findtext(page, "nextToken", NAMESPACE)
        if not token:
            return reservations
        params["NextToken"] = token


def best_of(runs: int, command: list[str], env: dict) -> tuple[float, str]:
    times, output = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {result.stderr}")
        output = result.stdout
    return min(times), output


async def measure(records: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        moto, port = start_moto(directory)
        try:
            options = dict(ec2_options(port), image=IMAGE)
            # moto renders ~30 ms of XML per instance on a loaded 2-core machine: a page of
            # 1,000 can take longer than libcloud's default 60 s read timeout (EC2: a second).
            options["driver_kwargs"] = dict(options["driver_kwargs"], timeout=600)
            store = RecordStore(directory / "records.sqlite")
            started = time.perf_counter()
            orphans = await asyncio.to_thread(populate, options, store, records)
            print(
                f"corc scale: {records} records, {records // 10} instances made in"
                f" {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
            config = directory / "corc.yml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "corc": {
                            "store": {"path": str(directory / "records.sqlite")},
                            "ssh": {"directory": str(directory / "ssh")},
                            "providers": {"libcloud": options},
                        }
                    }
                )
            )
            env = dict(os.environ, CORC_CONFIG_FILE=str(config))
            list_s, listed = best_of(runs, [CORC, "libcloud", "instance", "list", "--json"], env)
            reap_s, reaped = best_of(runs, [CORC, "reap", "--json"], env)
            on_moto = await asyncio.to_thread(count_on_moto, options)
            if on_moto != records // 10 or len(json.loads(listed)) != on_moto:
                print(
                    f"corc scale: moto holds {on_moto} instances (of {records // 10} made),"
                    f" corc listed {len(json.loads(listed))}",
                    file=sys.stderr,
                )
            assert len(json.loads(listed)) == on_moto, "list must show every instance"
            assert len(json.loads(reaped)) == orphans, "reap must find exactly the orphans"
            orchestrator = LibcloudOrchestrator(options, store=store, owner="admin")
            listing = orchestrator.list_resources
            in_listing = [0.0]

            async def timed_listing(tags=None):
                start = time.perf_counter()
                try:
                    return await listing(tags)
                finally:
                    in_listing[0] += time.perf_counter() - start

            orchestrator.list_resources = timed_listing  # type: ignore[method-assign]
            best: dict[str, float] = {}
            for _ in range(runs):
                start = time.perf_counter()
                await asyncio.to_thread(bare_listing, options, store.deployment_id)
                took = {"bare_in": time.perf_counter() - start}
                start = time.perf_counter()
                await store.list("libcloud")
                took["store_in"] = time.perf_counter() - start
                in_listing[0] = 0.0
                start = time.perf_counter()
                await orchestrator.reap()
                took["reap_in"] = time.perf_counter() - start
                took["cloud_in"] = in_listing[0]
                took["records_in"] = took["reap_in"] - in_listing[0]
                for name, value in took.items():
                    best[name] = min(best.get(name, value), value)
        finally:
            moto.stop()
    return {"list": list_s, "reap": reap_s, **best}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="records in the small store")
    parser.add_argument("--large", type=int, default=10000, help="records in the large store")
    parser.add_argument("--runs", type=int, default=2, help="runs of each command (best of)")
    args = parser.parse_args()
    small = await measure(args.small, args.runs)
    large = await measure(args.large, args.runs)
    factor = args.large / args.small
    for name, label in (
        ("list", "corc libcloud instance list"),
        ("reap", "corc reap (dry run)"),
        ("reap_in", "reap() in process"),
        ("cloud_in", "  of which: its one cloud listing"),
        ("records_in", "  of which: records and matching"),
        ("bare_in", "bare DescribeInstances (moto)"),
        ("store_in", "store.list(): whole history"),
    ):
        print(
            f"corc scale: {label:30s} {args.small:>6} records {small[name] * 1000:9.1f} ms,"
            f" {args.large:>6} records {large[name] * 1000:9.1f} ms,"
            f" growth {large[name] / small[name]:5.1f}x"
            f" (linear: {factor:g}x)"
        )
    print(
        "corc scale: corc's cloud listing / the bare DescribeInstances pages:"
        f" {small['cloud_in'] / small['bare_in']:.2f} at {args.small} records,"
        f" {large['cloud_in'] / large['bare_in']:.2f} at {args.large}"
    )
    print(
        "corc scale: the commands include a fresh Python process (imports, ~1 s) each; the cloud"
        " listing is moto's time (one page of up to 1,000 instances; moto's answer grows faster"
        " than its instance count even in one page, see the bare line); the records part is"
        " corc's own: one indexed read of the records the listing names"
    )


if __name__ == "__main__":
    asyncio.run(main())
