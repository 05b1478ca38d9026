"""libcloud's EC2 driver against a moto EC2 server: create, tag, list, destroy; never leak."""

from __future__ import annotations

import asyncio
import base64
import json

import asyncssh
import pytest
import yaml

from corc_core import (
    HostKeyMismatch,
    ProviderError,
    ResourceNotFound,
    SetupFailed,
    SSHAuthenticator,
)
from corc_core.providers import libcloud as libcloud_provider
from corc_core.providers.libcloud import Catalogue, LibcloudOrchestrator
from tests.corc_core.conftest import live_nodes, raw_driver
from tests.harness.clouds import record_requests
from tests.harness.sshd import SSHHost


async def test_setup_tags_and_tear_down(moto, store, tmp_path) -> None:
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="alice", poll_interval=0.05)
    credentials = await SSHAuthenticator(tmp_path / "ssh").credentials_for("alice", "ec2-user")
    request = LibcloudOrchestrator.make_resource_config(cpu=2, memory_gb=4, gpus=1)
    resource = await orchestrator.setup(request, credentials)
    assert resource.state == "running"
    nodes = live_nodes(moto)
    assert [n.id for n in nodes] == [resource.id]
    tags = nodes[0].extra["tags"]
    assert tags["gridhub"] == "true"
    assert tags["gridhub-owner"] == "alice"
    assert tags["gridhub-record"] == orchestrator.record.record_id
    size = nodes[0].extra["instance_type"]
    assert size == resource.details["shape"]
    assert size.startswith(("g", "p"))  # a GPU family
    assert nodes[0].extra["key_name"].startswith("corc-")
    record = await store.get(orchestrator.record.record_id)
    assert (record.state, record.resource_id, record.owner) == ("running", resource.id, "alice")

    await orchestrator.tear_down()
    assert live_nodes(moto) == []
    assert (await store.get(orchestrator.record.record_id)).state == "deleted"


@pytest.mark.parametrize(
    "step", ["create_call", "record_id", "wait_ready", "not_reachable", "cancel"]
)
async def test_a_failure_at_any_step_leaves_nothing(moto, store, step) -> None:
    orchestrator = LibcloudOrchestrator(
        moto, store=store, owner="bob", poll_interval=0.05, ready_timeout=2
    )
    original_call = orchestrator._call

    async def failing_call(method, *args, **kwargs):
        result = await original_call(method, *args, **kwargs)
        if step == "create_call" and method == "create_node":
            raise ProviderError("injected: the answer to create_node was lost")
        return result

    orchestrator._call = failing_call
    if step == "record_id":
        original_update = store.update

        async def failing_update(record_id, **changes):
            if "resource_id" in changes:
                raise OSError("injected: disk full")
            await original_update(record_id, **changes)

        store.update = failing_update
    if step == "wait_ready":

        async def broken_state(resource_id):
            raise ProviderError("injected: DescribeInstances failed")

        orchestrator.get_resource_state = broken_state
    if step == "not_reachable":
        orchestrator.options["check_reachable"] = True

        async def never(timeout=3):  # stands for SSH never answering
            return False

        orchestrator.is_reachable = never

    request = LibcloudOrchestrator.make_resource_config(cpu=1, memory_gb=1)
    if step == "cancel":

        async def slow_state(resource_id):
            await asyncio.sleep(30)

        orchestrator.get_resource_state = slow_state
        task = asyncio.ensure_future(orchestrator.setup(request))
        while orchestrator.resource is None:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises((SetupFailed, OSError)) as failed:
            await orchestrator.setup(request)
        if isinstance(failed.value, SetupFailed):
            assert "nothing was left behind" in str(failed.value) or "removed" in str(failed.value)
    assert live_nodes(moto) == []
    assert (await store.get(orchestrator.record.record_id)).state == "deleted"


async def test_unknown_image_is_a_clear_error_and_creates_nothing(moto, store) -> None:
    orchestrator = LibcloudOrchestrator(dict(moto, image="no-such-image"), store=store, owner="c")
    with pytest.raises(SetupFailed) as failed:
        await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    assert "no image with id or name 'no-such-image'" in str(failed.value)
    assert live_nodes(moto) == []
    _ = raw_driver


def boto(options: dict):
    import boto3

    kwargs = options["driver_kwargs"]
    return boto3.client(
        "ec2",
        region_name=kwargs["region"],
        endpoint_url=f"http://{kwargs['host']}:{kwargs['port']}",
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
    )


async def test_tagged_in_run_instances_itself(moto, store) -> None:
    """Tag at birth: one RunInstances carrying TagSpecifications, and no CreateTags call, so a
    crash right after the create cannot leave an instance that reap cannot see."""
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="alice", poll_interval=0.05)
    sent = record_requests(await orchestrator._get_driver())
    await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    actions = [params.get("Action") for params in sent]
    assert actions.count("RunInstances") == 1
    assert "CreateTags" not in actions
    [run] = [params for params in sent if params.get("Action") == "RunInstances"]
    tagged = {
        run[key]: run[key.replace(".Key", ".Value")]
        for key in run
        if key.startswith("TagSpecification.1.Tag.") and key.endswith(".Key")
    }
    assert run["TagSpecification.1.ResourceType"] == "instance"
    assert tagged["gridhub-record"] == orchestrator.record.record_id
    assert tagged["gridhub-owner"] == "alice"
    await orchestrator.tear_down()


async def test_size_and_location_options_are_honoured(moto, store) -> None:
    options = dict(moto, size="m5.xlarge", location="us-east-1c")
    orchestrator = LibcloudOrchestrator(options, store=store, owner="a", poll_interval=0.05)
    resource = await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    [node] = live_nodes(moto)
    assert node.extra["instance_type"] == "m5.xlarge" == resource.details["shape"]
    assert node.extra["availability"] == "us-east-1c"
    await orchestrator.tear_down()
    bad = LibcloudOrchestrator(dict(moto, location="mars-1a"), store=store, owner="a")
    with pytest.raises(SetupFailed, match=r"no location 'mars-1a' \(option 'location'\); known: "):
        await bad.setup(LibcloudOrchestrator.make_resource_config())
    assert live_nodes(moto) == []


async def test_host_key_is_installed_by_user_data_pinned_and_a_mismatch_refused(
    moto, store, tmp_path
) -> None:
    """moto's console output is fixed text without host keys, so corc makes the host key and
    hands it to cloud-init; only the public half is kept, and it is pinned."""
    ssh = SSHAuthenticator(tmp_path / "ssh")
    orchestrator = LibcloudOrchestrator(
        moto, store=store, owner="alice", poll_interval=0.05, ssh=ssh
    )
    resource = await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    answer = boto(moto).describe_instance_attribute(InstanceId=resource.id, Attribute="userData")
    user_data = yaml.safe_load(base64.b64decode(answer["UserData"]["Value"]))
    private = asyncssh.import_private_key(user_data["ssh_keys"]["ed25519_private"])
    assert resource.host_key == " ".join(private.export_public_key().decode().split()[:2])
    assert user_data["ssh_genkeytypes"] == []  # the VM makes no other host key
    assert ssh.host_key_for(resource.addresses[0], 22) == resource.host_key  # pinned
    assert "PRIVATE KEY" not in json.dumps(orchestrator.get_state())

    # A machine at a pinned address that presents another key is refused.
    host = SSHHost(tmp_path / "host")
    host.start()
    try:
        await ssh.pin_host_key(host.address, host.port, resource.host_key)
        with pytest.raises(HostKeyMismatch):
            await ssh.verify_host(host.address, host.port)
    finally:
        host.stop()
    await orchestrator.tear_down()


async def test_not_found_is_resource_not_found(moto, store) -> None:
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a")
    with pytest.raises(ResourceNotFound):
        await orchestrator.get_resource_state("i-0123456789abcdef0")
    with pytest.raises(ResourceNotFound):
        await orchestrator.delete_resource("i-0123456789abcdef0")


async def test_a_just_created_instance_reported_missing_is_still_deleted(moto, store) -> None:
    """EC2 may answer NotFound for an instance it has just launched; the delete keeps asking
    (within the consistency window) instead of taking the answer for "already gone"."""
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    original_call = orchestrator._call
    refusals = 0

    async def not_yet(method, *args, **kwargs):
        nonlocal refusals
        if method == "destroy_node" and refusals < 2:
            refusals += 1
            raise ResourceNotFound("injected: InvalidInstanceID.NotFound")
        return await original_call(method, *args, **kwargs)

    orchestrator._call = not_yet
    await orchestrator.tear_down()
    assert refusals == 2
    assert live_nodes(moto) == []


async def test_not_found_right_after_run_instances_is_waited_out(moto, store) -> None:
    """EC2 answers InvalidInstanceID.NotFound for a while after RunInstances: the driver's error
    becomes ResourceNotFound, which the orchestrator asks again about instead of failing."""
    from libcloud.common.exceptions import BaseHTTPError

    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    driver = await orchestrator._get_driver()
    original = driver.connection.request
    refusals = 0

    def not_yet(action, params=None, *args, **kwargs):
        nonlocal refusals
        if (params or {}).get("InstanceId.1") and refusals < 2:
            refusals += 1
            raise BaseHTTPError(400, "InvalidInstanceID.NotFound: The instance ID does not exist")
        return original(action, params, *args, **kwargs)

    driver.connection.request = not_yet
    resource = await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    assert refusals == 2
    assert resource.state == "running"
    await orchestrator.tear_down()
    assert live_nodes(moto) == []


async def test_image_by_name_is_looked_up_with_a_filter(moto, store) -> None:
    """By name, EC2 is asked for that name only (listing all 1,300 of moto's images takes ~15 s
    here, and a real region has far more)."""
    name = "Windows_Server-2016-English-Nano-Base-2017.10.13"  # moto's ami-03cf127a
    orchestrator = LibcloudOrchestrator(
        dict(moto, image=name), store=store, owner="a", poll_interval=0.05
    )
    driver = await orchestrator._get_driver()
    original = driver.list_images
    asked = []

    def recording(*args, **kwargs):
        asked.append(kwargs.get("ex_filters") or kwargs.get("ex_image_ids"))
        return original(*args, **kwargs)

    driver.list_images = recording
    await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    [node] = live_nodes(moto)
    assert node.extra["image_id"] == "ami-03cf127a"
    assert all(asked), asked  # never an unfiltered listing
    assert {"name": name} in asked
    await orchestrator.tear_down()


def test_catalogue_is_bounded_and_expires() -> None:
    now = [1000.0]
    catalogue = Catalogue(ttl=60, max_entries=3, clock=lambda: now[0])
    for key in "abc":
        catalogue.put(key, key.upper())
    assert catalogue.get("a") == "A"  # used: "b" is now the least recently used
    catalogue.put("d", "D")
    assert len(catalogue) == 3
    assert catalogue.get("b") is libcloud_provider._MISSING
    assert [catalogue.get(key) for key in "acd"] == ["A", "C", "D"]
    now[0] += 61
    assert catalogue.get("a") is libcloud_provider._MISSING
    assert len(catalogue) == 2  # an expired entry is dropped when met


async def test_sizes_are_listed_once_per_account_and_choices_reused(
    moto, store, monkeypatch
) -> None:
    """EC2's ~800 sizes are fetched and chosen from once per account (one orchestrator per spawn
    shares them); another account, or an expired catalogue, asks again."""
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    listed: list[str] = []
    original = EC2NodeDriver.list_sizes

    def counting(self, *args, **kwargs):
        listed.append(self.key)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EC2NodeDriver, "list_sizes", counting)
    chosen = []
    for cpu in (1, 1, 4):
        orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
        request = LibcloudOrchestrator.make_resource_config(cpu=cpu, memory_gb=1)
        chosen.append((await orchestrator.setup(request)).details["shape"])
        await orchestrator.tear_down()
    assert listed == [moto["key"]]
    assert chosen[0] == chosen[1] != chosen[2]
    other = LibcloudOrchestrator(dict(moto, key="AKIDOTHER"), store=store, owner="b")
    await other.setup(LibcloudOrchestrator.make_resource_config())
    await other.tear_down()
    assert listed == [moto["key"], "AKIDOTHER"]
    monkeypatch.setattr(libcloud_provider.CATALOGUE, "ttl", 0)
    again = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    await again.setup(LibcloudOrchestrator.make_resource_config())
    await again.tear_down()
    assert listed == [moto["key"], "AKIDOTHER", moto["key"]]
    assert live_nodes(moto) == []


async def test_an_instance_is_read_in_one_request_with_its_elastic_ip(moto, store) -> None:
    """The read that sees a new machine running is one DescribeInstances (libcloud's
    ``list_nodes`` adds a DescribeAddresses round trip); an Elastic IP still shows, as the
    instance's public IP."""
    orchestrator = LibcloudOrchestrator(moto, store=store, owner="a", poll_interval=0.05)
    resource = await orchestrator.setup(LibcloudOrchestrator.make_resource_config())
    driver = raw_driver(moto)
    [node] = [n for n in driver.list_nodes() if n.id == resource.id]
    address = driver.ex_allocate_address()
    driver.ex_associate_address_with_node(node, address)
    sent = record_requests(await orchestrator._get_driver())
    fresh = await orchestrator.get_resource_state(resource.id)
    assert [(p["Action"], p.get("InstanceId.1")) for p in sent] == [
        ("DescribeInstances", resource.id)
    ]
    assert fresh.state == "running" and fresh.addresses[0] == address.ip
    await orchestrator.tear_down()
    assert live_nodes(moto) == []
