"""Leak soak: create/delete cycles with faults, then ``corc reap --yes``: nothing may be left.

Against moto (EC2 through libcloud) and the local OCI API server, each cycle orders a machine and
removes it. In ``--fault-rate`` of the cycles (default 30 %) one fault is injected, chosen at
random:

- ``cancel``: the create call is slowed down and ``setup()`` is cancelled at a random moment
  (before, during or after the provider's create call);
- ``kill``: a ``corc <provider> instance create`` process is SIGKILLed at a random moment (a hub
  host dying mid-spawn: no clean-up code runs at all);
- ``delete``: the cloud fails the next 1-6 terminate calls (tear-down retries 3 times, so some
  deletes fail for good and are left for reap).

After the cycles, ``corc reap --yes`` runs once; machines whose create *finished* before its
process was killed belong to their user (a running record) and are deleted as the user would.
Then the cloud itself is listed: the resources left must be 0. Prints, per cloud: cycles, faults, what was left before reap, what is left after,
and the time taken.

Usage: python bench/corc_leak_soak.py [--cycles 200] [--fault-rate 0.3] [--clouds ec2,oci]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from corc_core import CorcError, RecordStore  # noqa: E402
from corc_core.orchestrator import Orchestrator  # noqa: E402
from corc_core.providers.libcloud import LibcloudOrchestrator  # noqa: E402
from corc_core.providers.oci import OCIOrchestrator  # noqa: E402
from tests.harness.clouds import ec2_options, start_moto  # noqa: E402
from tests.harness.process import Daemon, free_port, port_open  # noqa: E402

CORC = str(Path(sys.executable).with_name("corc"))
OCI_API = HERE.parent / "tests" / "harness" / "oci_api.py"


def control(url: str, **settings: Any) -> None:
    request = urllib.request.Request(
        f"{url}/_control", data=json.dumps(settings).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # loopback test server
        answer.read()


class Cloud:
    """One test cloud: how to start it, its corc options, its knobs, and a direct listing."""

    name: str
    provider: str
    orchestrator: type[Orchestrator]
    options: dict[str, Any]
    url: str

    def live(self) -> list[str]:
        raise NotImplementedError

    def slow_create(self, seconds: float) -> None:
        raise NotImplementedError

    def failing_deletes(self, count: int) -> None:
        raise NotImplementedError


class EC2(Cloud):
    name, provider, orchestrator = "ec2 (moto)", "libcloud", LibcloudOrchestrator

    def __init__(self, directory: Path) -> None:
        from libcloud.compute.providers import get_driver

        self.daemon, port = start_moto(directory)
        self.options = ec2_options(port)
        self.url = f"http://127.0.0.1:{port}"
        self.driver = get_driver("ec2")(
            self.options["key"], self.options["secret"], **self.options["driver_kwargs"]
        )

    def live(self) -> list[str]:
        return [n.id for n in self.driver.list_nodes() if str(n.state).lower() != "terminated"]

    def slow_create(self, seconds: float) -> None:
        control(self.url, create_delay=seconds)

    def failing_deletes(self, count: int) -> None:
        control(self.url, terminate_failures=count)


class OCI(Cloud):
    name, provider, orchestrator = "oci (local API)", "oci", OCIOrchestrator

    def __init__(self, directory: Path) -> None:
        from tests.corc_core.conftest import rsa_key

        private, public, fingerprint = rsa_key(directory, "oci_api_key")
        port = free_port()
        self.state = directory / "oci_state.json"
        self.daemon = Daemon(
            "oci-api",
            [sys.executable, str(OCI_API), str(port), str(public), str(self.state)],
            directory / "oci_api.log",
        )
        self.daemon.start(lambda: port_open("127.0.0.1", port), timeout=30)
        self.url = f"http://127.0.0.1:{port}"
        self.options = {
            "profile": {"name": "DEFAULT", "compartment_id": "ocid1.compartment.oc1..soak"},
            "instance": {"operating_system": "CentOS", "operating_system_version": "7"},
            "sdk_config": {
                "user": "ocid1.user.oc1..soak",
                "tenancy": "ocid1.tenancy.oc1..soak",
                "fingerprint": fingerprint,
                "key_file": str(private),
                "region": "eu-frankfurt-1",
            },
            "service_endpoint": self.url,
            "check_reachable": False,
        }

    def live(self) -> list[str]:
        if not self.state.exists():
            return []
        instances = json.loads(self.state.read_text())["instances"].values()
        return [i["id"] for i in instances if i["lifecycleState"] != "TERMINATED"]

    def slow_create(self, seconds: float) -> None:
        control(self.url, launch_delay=seconds)

    def failing_deletes(self, count: int) -> None:
        control(self.url, terminate_failures=count)


async def one_cycle(
    cloud: Cloud, store: RecordStore, config: Path, fault: str | None, rng: random.Random
) -> None:
    def orchestrator() -> Orchestrator:
        made = cloud.orchestrator(cloud.options, store=store, owner="soak", poll_interval=0.02)
        made.delete_backoff = 0.02
        return made

    request = cloud.orchestrator.make_resource_config()
    if fault == "cancel":
        delay = rng.uniform(0.1, 0.8)
        await asyncio.to_thread(cloud.slow_create, delay)
        task = asyncio.ensure_future(orchestrator().setup(request))
        await asyncio.sleep(rng.uniform(0, delay + 0.5))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, CorcError):
            await task
        await asyncio.to_thread(cloud.slow_create, 0)
    elif fault == "kill":
        await asyncio.to_thread(cloud.slow_create, 1.0)
        process = await asyncio.create_subprocess_exec(
            CORC,
            cloud.provider,
            "instance",
            "create",
            "--owner",
            "soak",
            env=dict(os.environ, CORC_CONFIG_FILE=str(config)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(rng.uniform(0.3, 4.0))
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await process.wait()
        await asyncio.to_thread(cloud.slow_create, 0)
    else:
        made = orchestrator()
        await made.setup(request)
        if fault == "delete":
            await asyncio.to_thread(cloud.failing_deletes, rng.randint(1, 6))
        with contextlib.suppress(CorcError):  # a delete failed for good: left for reap
            await made.tear_down()
        await asyncio.to_thread(cloud.failing_deletes, 0)


async def soak(
    make_cloud: Callable[[Path], Cloud], cycles: int, rate: float, rng: random.Random
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        cloud = make_cloud(directory)
        try:
            config = directory / "corc.yml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "corc": {
                            "store": {"path": str(directory / "records.sqlite")},
                            "ssh": {"directory": str(directory / "ssh")},
                            "providers": {cloud.provider: cloud.options},
                        }
                    }
                )
            )
            store = RecordStore(directory / "records.sqlite")
            faults: Counter[str] = Counter()
            started = time.monotonic()
            for _ in range(cycles):
                fault = rng.choice(["cancel", "kill", "delete"]) if rng.random() < rate else None
                faults[fault or "none"] += 1
                await one_cycle(cloud, store, config, fault, rng)
            soaked = time.monotonic() - started
            before = await asyncio.to_thread(cloud.live)
            reap = await asyncio.to_thread(
                subprocess.run,
                [CORC, "reap", "--yes", "--json", "--provider", cloud.provider],
                env=dict(os.environ, CORC_CONFIG_FILE=str(config)),
                capture_output=True,
                text=True,
                timeout=600,
            )
            # A create that finished before its process was killed made a machine its user now
            # owns (a running record): the user deletes it, as they would. That is no leak.
            owned = [r for r in store.list_sync() if r.state == "running"]
            for record in owned:
                state = {"record_id": record.record_id, "resource": record.details}
                made = await cloud.orchestrator.from_state(
                    state, store=store, owner="soak", options=cloud.options
                )
                await made.tear_down()
            after = await asyncio.to_thread(cloud.live)
            stuck = [r for r in store.list_sync() if r.state in ("creating", "deleting")]
            if after or stuck or reap.returncode:
                records = {r.resource_id: r for r in store.list_sync() if r.resource_id}
                for resource_id in after:
                    print(f"LEFT {resource_id}: record {records.get(resource_id)}", file=sys.stderr)
                print(f"reap said: {reap.stdout} {reap.stderr}", file=sys.stderr)
        finally:
            cloud.daemon.stop()
    return {
        "cloud": cloud.name,
        "cycles": cycles,
        "faults": dict(faults),
        "seconds": round(soaked, 1),
        "left_before_reap": len(before),
        "reaped": len(json.loads(reap.stdout or "[]")),
        "reap_exit": reap.returncode,
        "owned": len(owned),
        "left_after_reap": len(after),
        "records_stuck": len(stuck),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=200, help="create/delete cycles per cloud")
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of faulty cycles")
    parser.add_argument("--clouds", default="ec2,oci", help="comma-separated: ec2, oci")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)  # noqa: S311 - a fault schedule
    clouds = {"ec2": EC2, "oci": OCI}
    failed = False
    for name in args.clouds.split(","):
        rng = random.Random(seed)  # noqa: S311 - a fault schedule, not a secret
        result = await soak(clouds[name], args.cycles, args.fault_rate, rng)
        print(
            f"corc leak soak: {result['cloud']}: {result['cycles']} cycles in"
            f" {result['seconds']} s, faults {result['faults']} (seed {seed});"
            f" left before reap {result['left_before_reap']}, reaped {result['reaped']}"
            f" (+{result['owned']} finished before a kill: deleted by their user),"
            f" left after reap {result['left_after_reap']}, records stuck"
            f" {result['records_stuck']}"
        )
        failed |= bool(result["left_after_reap"] or result["records_stuck"] or result["reap_exit"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    asyncio.run(main())
