"""Scale: ``corc libcloud instance list`` and ``corc reap`` with many records and instances (moto).

Two sizes, each on a fresh moto server and store: 1,000 records with 100 instances, and 10,000
records with 1,000 instances. Every instance is tagged at birth as corc tags it (deployment and
record); one record in ten belongs to an instance, the others are history (deleted); one instance
in ten is an orphan (its record says deleted), which reap must report. Prints the wall time of the
two commands (run as an admin would, a fresh process each, best of ``--runs``) and of the same work in
process (``list_resources()``, ``reap()``), and the growth from the small to the large size: no
worse than linear means a ratio of at most 10.

Usage: python bench/corc_scale.py [--small 1000] [--large 10000]
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
            tags = {TAG_DEPLOYMENT: store.deployment_id}
            best: dict[str, float] = {}
            for _ in range(runs):
                for name, work in (
                    ("cloud_in", lambda: orchestrator.list_resources(tags)),
                    ("store_in", lambda: store.list("libcloud")),
                    ("list_in", orchestrator.list_resources),
                    ("reap_in", orchestrator.reap),
                ):
                    start = time.perf_counter()
                    await work()
                    elapsed = time.perf_counter() - start
                    best[name] = min(best.get(name, elapsed), elapsed)
        finally:
            moto.stop()
    # reap() = one listing of the cloud + one load of the store + matching: the records part is
    # what is left when the cloud listing is taken away.
    best["records_in"] = max(best["reap_in"] - best["cloud_in"], 1e-6)
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
        ("list_in", "list_resources() in process"),
        ("reap_in", "reap() in process"),
        ("cloud_in", "  of which: listing the cloud"),
        ("records_in", "  of which: records (the rest)"),
        ("store_in", "  store.list() alone"),
    ):
        print(
            f"corc scale: {label:30s} {args.small:>6} records {small[name]:8.3f} s,"
            f" {args.large:>6} records {large[name]:8.3f} s, growth {large[name] / small[name]:5.1f}x"
            f" (linear: {factor:g}x)"
        )
    print(
        "corc scale: the commands include a fresh Python process (imports, ~1 s) each; moto's"
        " DescribeInstances filters every instance again per page, so pages (1,000 instances"
        " each) beyond the first would grow as n^2 on moto, not on EC2"
    )


if __name__ == "__main__":
    asyncio.run(main())
