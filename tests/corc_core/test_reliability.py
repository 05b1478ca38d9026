"""Nothing ordered is ever lost track of: cancel mid-create, crash mid-create, failed deletes,
eventual consistency, two deployments side by side. The cloud is always listed directly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from corc_core import RecordStore, SetupFailed, SSHAuthenticator
from corc_core.errors import TearDownFailed
from corc_core.orchestrator import TAG_DEPLOYMENT, Orchestrator
from corc_core.providers import libcloud as libcloud_provider
from corc_core.providers.libcloud import LibcloudOrchestrator
from corc_core.providers.local import POOL, LocalOrchestrator
from corc_core.providers.oci import OCIOrchestrator
from corc_core.providers.sandbox import SandboxOrchestrator
from tests.corc_core.conftest import (
    CORC,
    live_nodes,
    oci_options,
    oci_state,
    raw_driver,
    write_config,
)
from tests.harness.clouds import record_requests
from tests.harness.sshd import SSHHost


def control(url: str, **settings) -> None:
    """Set faults on a test cloud server (moto wrapper or OCI API server)."""
    request = urllib.request.Request(
        f"{url}/_control", data=json.dumps(settings).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def moto_url(options: dict) -> str:
    return f"http://127.0.0.1:{options['driver_kwargs']['port']}"


def live_oci(options: dict) -> list[dict]:
    return [
        i for i in oci_state(options)["instances"].values() if i["lifecycleState"] != "TERMINATED"
    ]


async def eventually(check: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def cancel_while_creating(
    orchestrator: Orchestrator,
    request,
    made: Callable[[], object],
    how: str,
) -> None:
    """Cancel setup() while the provider's create call runs in its worker thread: by
    task.cancel() once the resource exists (a user stopping a pending spawn, hub shutdown), or by
    an asyncio.wait_for timeout that falls inside the slow call (JupyterHub's start_timeout).
    ``made()`` tells whether the provider has made the resource (and stays true after)."""
    if how == "cancel":
        task = asyncio.ensure_future(orchestrator.setup(request))
        await eventually(made)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(orchestrator.setup(request), SLOW_CALL / 2)
        assert time.monotonic() - started >= SLOW_CALL / 2  # the in-flight call was waited for
        assert await asyncio.to_thread(made), "the timeout fell before the create call"
    assert orchestrator.record is not None
    assert (await orchestrator.store.get(orchestrator.record.record_id)).state == "deleted"


#: Seconds the provider's create call takes in these tests (its answer is late by that much).
SLOW_CALL = 6.0


# -- 1. cancel during create, every provider --------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancel_during_a_slow_ec2_create(moto, store, how) -> None:
    control(moto_url(moto), create_delay=SLOW_CALL)
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    request = LibcloudOrchestrator.make_resource_config()
    await cancel_while_creating(orchestrator, request, lambda: raw_driver(moto).list_nodes(), how)
    assert live_nodes(moto) == []
    assert len(raw_driver(moto).list_nodes()) == 1  # it was made, then terminated


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancel_during_a_slow_oci_launch(oci_api, store, how) -> None:
    control(oci_api["service_endpoint"], launch_delay=SLOW_CALL)
    orchestrator = OCIOrchestrator(oci_options(oci_api), store=store, owner="a", poll_interval=0.05)
    await cancel_while_creating(
        orchestrator,
        OCIOrchestrator.make_resource_config(),
        lambda: oci_state(oci_api)["instances"],
        how,
    )
    assert live_oci(oci_api) == []
    assert len(oci_state(oci_api)["instances"]) == 1


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancel_during_a_slow_sandbox_create(store, tmp_path, monkeypatch, how) -> None:
    made = threading.Event()
    original = SandboxOrchestrator._make

    def slow_make(self, host, keys, deployment):
        started = time.monotonic()
        original(self, host, keys, deployment)
        made.set()
        time.sleep(max(0, SLOW_CALL - (time.monotonic() - started)))  # up, not yet answered

    monkeypatch.setattr(SandboxOrchestrator, "_make", slow_make)
    options = {"directory": str(tmp_path / "sandbox")}
    orchestrator = SandboxOrchestrator(options, store=store, owner="a", poll_interval=0.05)
    await cancel_while_creating(
        orchestrator, SandboxOrchestrator.make_resource_config(), made.is_set, how
    )
    assert await orchestrator.list_resources() == []
    assert list((tmp_path / "sandbox").glob("*/sshd_config")) == []


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancel_during_a_slow_local_allocation(store, monkeypatch, how) -> None:
    made = threading.Event()
    original = store.allocate_gpus_sync

    def slow_allocate(*args):
        result = original(*args)
        made.set()
        time.sleep(SLOW_CALL)
        return result

    monkeypatch.setattr(store, "allocate_gpus_sync", slow_allocate)
    host = {"name": "gpu", "address": "127.0.0.1", "gpus": 2}
    options = {"hosts": [host], "check_reachable": False}
    orchestrator = LocalOrchestrator(options, store=store, owner="a", poll_interval=0.05)
    await cancel_while_creating(
        orchestrator, LocalOrchestrator.make_resource_config(gpus=2), made.is_set, how
    )
    assert store.allocations_sync(POOL) == {}  # both GPUs free again
    monkeypatch.setattr(store, "allocate_gpus_sync", original)
    again = LocalOrchestrator(options, store=store, owner="b")
    granted = await again.setup(LocalOrchestrator.make_resource_config(gpus=2))
    assert granted.gpu_ids == ["0", "1"]


# -- 2. crash mid-create, failed deletes, two deployments -------------------------------------


def _corc_env(config: Path) -> dict:
    return dict(os.environ, CORC_CONFIG_FILE=str(config))


async def _kill_mid_create(config: Path, provider: str, created: Callable[[], object]) -> None:
    process = subprocess.Popen(
        [CORC, provider, "instance", "create", "--owner", "alice"],
        env=_corc_env(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await eventually(created)
        process.send_signal(signal.SIGKILL)  # a hub host dying mid-create: no clean-up at all
    finally:
        process.wait(30)
    assert process.returncode == -signal.SIGKILL


def _reap(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CORC, "reap", "--json", *args],
        env=_corc_env(config),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_sigkill_mid_create_then_reap_leaves_nothing_on_ec2(moto, tmp_path) -> None:
    config = write_config(tmp_path, {"libcloud": moto})
    control(moto_url(moto), create_delay=60)
    await _kill_mid_create(config, "libcloud", lambda: live_nodes(moto))
    control(moto_url(moto), create_delay=0)
    [leaked] = live_nodes(moto)
    [record] = RecordStore(tmp_path / "records.sqlite").list_sync()
    assert record.state == "creating" and record.abandoned()
    dry = _reap(config)
    assert json.loads(dry.stdout) == [{"provider": "libcloud", "id": leaked.id, "deleted": False}]
    real = _reap(config, "--yes")
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)[0]["deleted"] is True
    assert live_nodes(moto) == []
    [record] = RecordStore(tmp_path / "records.sqlite").list_sync()
    assert record.state == "deleted"


async def test_sigkill_mid_launch_then_reap_leaves_nothing_on_oci(oci_api, tmp_path) -> None:
    config = write_config(tmp_path, {"oci": oci_options(oci_api)})
    control(oci_api["service_endpoint"], launch_delay=60)
    await _kill_mid_create(config, "oci", lambda: live_oci(oci_api))
    control(oci_api["service_endpoint"], launch_delay=0)
    real = _reap(config, "--yes")
    assert real.returncode == 0, real.stderr
    assert [o["deleted"] for o in json.loads(real.stdout)] == [True]
    assert live_oci(oci_api) == []


async def test_a_delete_that_keeps_failing_is_typed_and_reap_finishes_it(moto, store) -> None:
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    orchestrator.delete_backoff = 0.05
    await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    control(moto_url(moto), terminate_failures=100)
    with pytest.raises(TearDownFailed) as failed:
        await orchestrator.tear_down()
    message = str(failed.value)
    assert "\n" not in message and "corc reap --yes" in message
    assert len(live_nodes(moto)) == 1
    record = await store.get(orchestrator.record.record_id)
    assert record.state == "deleting" and record.abandoned()  # nobody is retrying it now

    control(moto_url(moto), terminate_failures=2)  # the cloud recovers after two more failures
    reaper = LibcloudOrchestrator(moto, store=store, owner="admin")
    reaper.delete_backoff = 0.05
    [entry] = await reaper.reap(delete=True, attempts=5)
    assert entry["deleted"] is True
    assert live_nodes(moto) == []
    assert (await store.get(orchestrator.record.record_id)).state == "deleted"


async def test_two_stores_side_by_side_never_reap_each_other(moto, tmp_path) -> None:
    first, second = (RecordStore(tmp_path / f"{n}.sqlite") for n in ("first", "second"))
    assert first.deployment_id != second.deployment_id
    request = LibcloudOrchestrator.make_resource_config()
    made = {}
    for name, store in (("a1", first), ("a2", first), ("b1", second), ("b2", second)):
        orchestrator = LibcloudOrchestrator(moto, store=store, owner=name, poll_interval=0.05)
        made[name] = (orchestrator, await orchestrator.setup(request))
    # a2's record was lost (deleted without the VM); b2's creator died mid-way.
    first.update_sync(made["a2"][0].record.record_id, state="deleted")
    dead = f"{socket.gethostname()}:{2**22 + 7}:0"
    second.update_sync(made["b2"][0].record.record_id, state="creating", session=dead)

    reap_first = LibcloudOrchestrator(moto, store=first, owner="admin")
    reap_second = LibcloudOrchestrator(moto, store=second, owner="admin")
    assert [o["id"] for o in await reap_first.reap()] == [made["a2"][1].id]
    assert [o["id"] for o in await reap_second.reap()] == [made["b2"][1].id]
    await reap_first.reap(delete=True)
    assert {n.id for n in live_nodes(moto)} == {made[k][1].id for k in ("a1", "b1", "b2")}
    await reap_second.reap(delete=True)
    assert {n.id for n in live_nodes(moto)} == {made[k][1].id for k in ("a1", "b1")}
    tags = {n.id: n.extra["tags"][TAG_DEPLOYMENT] for n in live_nodes(moto)}
    assert tags == {made["a1"][1].id: first.deployment_id, made["b1"][1].id: second.deployment_id}


# -- 3. eventual consistency and typed errors -------------------------------------------------


async def test_ec2_not_found_for_a_new_instance_is_retried(moto, store) -> None:
    control(moto_url(moto), not_found_reads=3)
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    resource = await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    assert resource.state == "running"
    await orchestrator.tear_down()
    assert live_nodes(moto) == []


async def test_oci_not_found_for_a_new_instance_is_retried(oci_api, store) -> None:
    control(oci_api["service_endpoint"], not_found_reads=3)
    orchestrator = OCIOrchestrator(oci_options(oci_api), store=store, owner="a", poll_interval=0.05)
    resource = await orchestrator.setup(OCIOrchestrator.make_resource_config())
    assert resource.state == "running"
    await orchestrator.tear_down()
    assert live_oci(oci_api) == []


async def test_not_found_for_good_fails_within_the_grace_and_leaves_nothing(moto, store) -> None:
    control(moto_url(moto), not_found_reads=10_000)
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    orchestrator.not_found_grace = 1.5
    started = time.monotonic()
    with pytest.raises(SetupFailed) as failed:
        await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    assert time.monotonic() - started < 30
    assert "\n" not in str(failed.value)
    assert live_nodes(moto) == []


def test_cli_errors_are_one_line(moto, tmp_path) -> None:
    config = write_config(tmp_path, {"libcloud": moto})
    env = _corc_env(config)
    missing = subprocess.run(
        [CORC, "libcloud", "instance", "delete", "i-0123456789abcdef0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("corc: error: ") and missing.stderr.count("\n") == 1
    created = subprocess.run(
        [CORC, "libcloud", "instance", "create", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    node_id = json.loads(created.stdout)["id"]
    control(moto_url(moto), terminate_failures=100)
    failed = subprocess.run(
        [CORC, "libcloud", "instance", "delete", node_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert "corc reap --yes" in failed.stderr
    control(moto_url(moto), terminate_failures=0)
    assert _reap(config, "--yes").returncode == 0
    assert live_nodes(moto) == []


# -- 4. what a parent needs: progress, on_ordered, state without secrets ----------------------


async def test_progress_and_on_ordered_come_before_the_boot_wait(oci_api, store) -> None:
    events: list[tuple[int, str]] = []
    states: list[dict] = []

    async def on_ordered(state: dict) -> None:
        states.append(json.loads(json.dumps(state)))
        if state["resource"] is not None:
            # Nothing slow was awaited yet: the instance has not been read back once.
            assert not any(c.startswith("GET /instances") for c in oci_state(oci_api)["calls"])

    orchestrator = OCIOrchestrator(oci_options(oci_api), store=store, owner="a", poll_interval=0.05)
    resource = await orchestrator.setup(
        OCIOrchestrator.make_resource_config(cpu=2),
        progress=lambda percent, message: events.append((percent, message)),
        on_ordered=on_ordered,
    )
    assert [s["resource"] is None for s in states] == [True, False]
    assert states[0]["record_id"] == states[1]["record_id"] == orchestrator.record.record_id
    assert states[1]["resource"]["id"] == resource.id
    percents = [p for p, _ in events]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 80
    text = " | ".join(m for _, m in events)
    assert "ordering" in text and "boot" in text and "ready" in text
    await orchestrator.tear_down()
    await orchestrator.tear_down()  # harmless twice


async def test_state_holds_no_secrets_and_options_come_from_config(
    moto, oci_api, store, tmp_path
) -> None:
    libcloud = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    await libcloud.setup(LibcloudOrchestrator.make_resource_config())
    oci_opts = oci_options(oci_api)
    oci = OCIOrchestrator(oci_opts, store=store, owner="a", poll_interval=0.05)
    await oci.setup(OCIOrchestrator.make_resource_config())
    local_opts = {"hosts": [{"name": "h", "address": "127.0.0.1", "gpus": 1}]}
    local = LocalOrchestrator(dict(local_opts, check_reachable=False), store=store, owner="a")
    await local.setup(LocalOrchestrator.make_resource_config(gpus=1))
    secrets = [
        moto["key"],
        moto["secret"],
        oci_opts["sdk_config"]["fingerprint"],
        oci_opts["sdk_config"]["key_file"],
        oci_opts["sdk_config"]["user"],
    ]
    for orchestrator in (libcloud, oci, local):
        state = orchestrator.get_state()
        assert set(state) == {"provider", "record_id", "resource"}
        text = json.dumps(state)
        assert not [secret for secret in secrets if secret in text], orchestrator.provider
    # After a restart: the state plus the configured options tear everything down.
    for orchestrator, options in ((libcloud, moto), (oci, oci_opts)):
        state = json.loads(json.dumps(orchestrator.get_state()))
        again = await type(orchestrator).from_state(state, store=store, owner="a", options=options)
        await again.tear_down()
    assert live_nodes(moto) == [] and live_oci(oci_api) == []


# -- readiness: log in with our key, host keys from the provider -------------------------------


async def test_open_port_is_not_ready_until_our_key_logs_in(store, tmp_path) -> None:
    ssh = SSHAuthenticator(tmp_path / "ssh")
    mine = await ssh.credentials_for("alice", "root")
    other = await ssh.credentials_for("mallory", "root")
    # The host is given another key than the one we log in with: sshd answers, login fails.
    wrong = type(mine)(mine.username, mine.key_file, other.public_key)
    options = {"directory": str(tmp_path / "sandbox")}
    orchestrator = SandboxOrchestrator(
        options, store=store, owner="alice", poll_interval=0.1, ready_timeout=4
    )
    with pytest.raises(SetupFailed, match="not usable within 4 s"):
        await orchestrator.setup(SandboxOrchestrator.make_resource_config(), wrong)
    assert await orchestrator.list_resources() == []
    good = SandboxOrchestrator(options, store=store, owner="alice", poll_interval=0.1)
    assert (await good.setup(SandboxOrchestrator.make_resource_config(), mine)).host_key
    await good.tear_down()


@pytest.fixture
def ssh_machine(tmp_path: Path):
    host = SSHHost(tmp_path / "machine")
    host.start()
    yield host
    host.stop()


async def test_local_host_with_another_host_key_is_refused(ssh_machine, store, tmp_path) -> None:
    from tests.harness.oci_api import new_host_key

    member = {"name": "m", "address": ssh_machine.address, "port": ssh_machine.port}
    good = LocalOrchestrator(
        {"hosts": [dict(member, host_key=ssh_machine.host_public_key)]}, store=store, owner="a"
    )
    await good.setup(LocalOrchestrator.make_resource_config())
    await good.tear_down()
    forged = LocalOrchestrator(
        {"hosts": [dict(member, host_key=new_host_key())]}, store=store, owner="b"
    )
    with pytest.raises(SetupFailed, match="different SSH host key"):
        await forged.setup(LocalOrchestrator.make_resource_config())


@pytest.mark.parametrize("console", ["true key", "forged key"])
async def test_oci_pins_the_console_host_key_and_logs_in(
    oci_api, store, tmp_path, ssh_machine, console
) -> None:
    from tests.harness.oci_api import new_host_key

    ssh = SSHAuthenticator(tmp_path / "ssh")
    credentials = await ssh.credentials_for("alice", "root")
    ssh_machine.authorize_key(credentials.public_key)
    control(
        oci_api["service_endpoint"],
        public_ip=ssh_machine.address,
        host_key=ssh_machine.host_public_key,
        console_host_key="" if console == "true key" else new_host_key(),
    )
    options = dict(oci_options(oci_api), check_reachable=True, ssh_username="root")
    orchestrator = OCIOrchestrator(
        options, store=store, owner="alice", poll_interval=0.05, ssh=ssh, ready_timeout=60
    )
    request = OCIOrchestrator.make_resource_config()
    if console == "forged key":
        with pytest.raises(SetupFailed, match="different SSH host key"):
            await orchestrator.setup(request, credentials)
        assert live_oci(oci_api) == []
        return
    resource = await orchestrator.setup(request, credentials)
    assert resource.host_key == ssh_machine.host_public_key
    assert ssh.host_key_for(ssh_machine.address) == ssh_machine.host_public_key  # pinned
    await orchestrator.tear_down()
    assert ssh.host_key_for(ssh_machine.address) is None  # forgotten with the machine
    assert live_oci(oci_api) == []


def test_cli_local_instance_create_works(ssh_machine, tmp_path) -> None:
    host = {
        "name": "gpu-box",
        "address": ssh_machine.address,
        "port": ssh_machine.port,
        "username": "root",
        "gpus": 2,
        "cpu": 4,
        "memory_gb": 8,
    }
    config = write_config(tmp_path, {"local": {"hosts": [host]}})
    env = _corc_env(config)
    command = [CORC, "local", "instance", "create", "--gpus", "1", "--json", "--owner", "alice"]
    refused = subprocess.run(
        [*command, "--timeout", "3"], env=env, capture_output=True, text=True, timeout=120
    )
    # Port 22 answers, but our key is not authorized there yet: not ready, and nothing is held.
    assert refused.returncode == 1
    assert "not usable within 3 s" in refused.stderr
    assert RecordStore(tmp_path / "records.sqlite").allocations_sync(POOL) == {}
    credentials = asyncio.run(SSHAuthenticator(tmp_path / "ssh").credentials_for("alice"))
    ssh_machine.authorize_key(credentials.public_key)
    created = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    resource = json.loads(created.stdout)
    assert resource["gpu_ids"] == ["0"] and resource["state"] == "running"
    deleted = subprocess.run(
        [CORC, "local", "instance", "delete", resource["id"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deleted.returncode == 0, deleted.stderr
    assert RecordStore(tmp_path / "records.sqlite").allocations_sync(POOL) == {}


async def test_reap_sees_past_the_first_page_of_instances(moto, store, monkeypatch) -> None:
    """EC2 answers DescribeInstances a page at a time (corc asks for 1,000 per page, AWS's most;
    40 here): a leak on a later page is a leak."""
    monkeypatch.setattr(libcloud_provider, "EC2_PAGE_SIZE", 40)
    driver = raw_driver(moto)
    size = next(s for s in driver.list_sizes() if s.id == "t2.micro")
    image = driver.get_image(moto["image"])
    tags = {"gridhub": "true", "gridhub-record": "lost", TAG_DEPLOYMENT: store.deployment_id}

    def make(count: int) -> list[str]:
        return [
            driver.create_node(name="lost", size=size, image=image, ex_metadata=tags).id
            for _ in range(count)
        ]

    made = await asyncio.to_thread(make, 101)  # one reservation each: three pages
    reaper = LibcloudOrchestrator(moto, store=store, owner="admin")
    sent = record_requests(await reaper._get_driver())
    assert sorted(o["id"] for o in await reaper.reap()) == sorted(made)
    pages = [params for params in sent if params.get("Action") == "DescribeInstances"]
    assert [params["MaxResults"] for params in pages] == ["40"] * 3
    assert [params.get("NextToken") is not None for params in pages] == [False, True, True]


async def test_reap_lists_the_cloud_once_whatever_the_number_of_records(moto, store) -> None:
    """Scale: one paginated listing and one store read per reap, never a read per record or per
    resource (10,000 records must cost about ten times 1,000), and no DescribeAddresses: an
    instance's public IP is its Elastic IP."""
    request = LibcloudOrchestrator.make_resource_config()
    live = []
    for owner in ("a", "b", "c"):
        orchestrator = LibcloudOrchestrator(moto, store=store, owner=owner, poll_interval=0.05)
        live.append(await orchestrator.setup(request))
    lost = live.pop()  # its record says deleted: an orphan
    store.update_sync(
        next(r.record_id for r in store.list_sync() if r.resource_id == lost.id), state="deleted"
    )
    for index in range(500):  # history: records of machines long gone
        record = store.create_sync("libcloud", f"old{index}")
        store.update_sync(record.record_id, resource_id=f"i-gone{index}", state="deleted")
    driver = raw_driver(moto)
    [node] = [n for n in driver.list_nodes() if n.id == live[0].id]
    address = driver.ex_allocate_address()
    driver.ex_associate_address_with_node(node, address)

    reaper = LibcloudOrchestrator(moto, store=store, owner="admin")
    sent = record_requests(await reaper._get_driver())
    reads = []
    original_get = reaper.get_resource_state

    async def counting_get(resource_id):
        reads.append(resource_id)
        return await original_get(resource_id)

    reaper.get_resource_state = counting_get
    assert [o["id"] for o in await reaper.reap()] == [lost.id]
    actions = [params.get("Action") for params in sent]
    assert actions == ["DescribeInstances"]
    assert reads == []

    sent.clear()
    listed = {r.id: r for r in await reaper.list_resources()}
    assert set(listed) == {r.id for r in (*live, lost)}
    assert listed[live[0].id].addresses.count(address.ip) == 1
    assert [params.get("Action") for params in sent] == actions


async def test_reap_during_a_spawn_never_takes_the_new_machine(moto, store) -> None:
    """A spawn that writes its record and creates its VM while reap runs keeps its VM: reap lists
    the cloud first and then reads the records that listing names (read the other way round,
    the new VM's record was not in reap's snapshot and the VM was deleted as an orphan)."""
    spawn = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    reaper = LibcloudOrchestrator(moto, store=store, owner="admin")
    listing = reaper.list_resources

    async def listing_while_a_spawn_runs(tags=None):
        await spawn.setup(LibcloudOrchestrator.make_resource_config())
        return await listing(tags)

    reaper.list_resources = listing_while_a_spawn_runs
    assert await reaper.reap(delete=True) == []
    assert [node.id for node in live_nodes(moto)] == [spawn.resource.id]
    await spawn.tear_down()
    assert live_nodes(moto) == []


def test_store_find_reads_only_the_records_asked_for(store) -> None:
    made = [store.create_sync("libcloud", f"u{i}") for i in range(1200)]
    for record in made[:-2]:
        store.update_sync(record.record_id, state="deleted")
    other = store.create_sync("oci", "x")
    asked = [made[0].record_id, made[700].record_id, other.record_id, "no-such-record"]
    found = store.find_sync("libcloud", asked, states=("creating",))
    assert {r.record_id for r in found} == {
        made[0].record_id,
        made[700].record_id,
        made[-2].record_id,
        made[-1].record_id,
    }
    assert store.find_sync("libcloud") == []
