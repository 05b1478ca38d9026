"""libcloud's EC2 driver against a moto EC2 server: create, tag, list, destroy; never leak."""

from __future__ import annotations

import asyncio

import pytest

from corc_core import ProviderError, SetupFailed, SSHAuthenticator
from corc_core.providers.libcloud import LibcloudOrchestrator
from tests.corc_core.conftest import live_nodes, raw_driver


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
