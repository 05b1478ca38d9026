"""OCI through the real oci SDK (signing, serialisation, pagination, waiters) on a local API."""

from __future__ import annotations

import pytest

from corc_core import ProviderError, SetupFailed, SSHAuthenticator
from corc_core.providers.oci import OCIOrchestrator
from tests.corc_core.conftest import corc, oci_options, oci_state, rsa_key, write_config


def live(options: dict) -> list[dict]:
    return [
        i
        for i in oci_state(options)["instances"].values()
        if i["lifecycleState"] not in ("TERMINATED",)
    ]


async def test_gpu_request_gets_the_smallest_gpu_shape_and_is_torn_down(oci_api, store, tmp_path):
    credentials = await SSHAuthenticator(tmp_path / "ssh").credentials_for("alice", "opc")
    orchestrator = OCIOrchestrator(
        oci_options(oci_api), store=store, owner="alice", poll_interval=0.05
    )
    request = OCIOrchestrator.make_resource_config(cpu=1, memory_gb=8, gpus=1)
    resource = await orchestrator.setup(request, credentials)
    assert resource.state == "running"
    assert resource.addresses == ["192.0.2.10", "10.0.1.10"]  # from the VNIC
    [instance] = live(oci_api)
    assert instance["shape"] == "VM.GPU2.1"
    assert instance["imageId"] == "ocid1.image.oc1..centos7"
    assert instance["metadata"]["ssh_authorized_keys"] == credentials.public_key
    assert instance["freeformTags"]["gridhub-owner"] == "alice"
    assert instance["freeformTags"]["gridhub-record"] == orchestrator.record.record_id
    await orchestrator.tear_down()
    assert live(oci_api) == []


async def test_flex_shape_grants_the_memory_and_networking_is_reused(oci_api, store):
    first = OCIOrchestrator(oci_options(oci_api), store=store, owner="a", poll_interval=0.05)
    await first.setup(OCIOrchestrator.make_resource_config(cpu=2, memory_gb=200))
    [instance] = live(oci_api)
    assert instance["shape"] == "VM.Standard.E4.Flex"
    assert instance["shapeConfig"] == {"ocpus": 4.0, "memoryInGBs": 200.0}
    # Two GPUs are on the last page of shapes: the SDK's paginator must follow opc-next-page.
    second = OCIOrchestrator(oci_options(oci_api), store=store, owner="b", poll_interval=0.05)
    await second.setup(OCIOrchestrator.make_resource_config(gpus=2))
    state = oci_state(oci_api)
    assert {i["shape"] for i in live(oci_api)} == {"VM.Standard.E4.Flex", "VM.GPU3.2"}
    assert len(state["vcns"]) == 1 and len(state["subnets"]) == 1  # made once, then reused
    await first.tear_down()
    await second.tear_down()
    state = oci_state(oci_api)
    assert len(state["vcns"]) == 1 and len(state["subnets"]) == 1  # shared: never deleted
    assert not any(
        call.startswith("DELETE /vcns") or call.startswith("DELETE /subnets")
        for call in state["calls"]
    )


async def test_failure_after_launch_terminates_the_instance(oci_api, store):
    orchestrator = OCIOrchestrator(oci_options(oci_api), store=store, owner="a", poll_interval=0.05)
    real_state = orchestrator.get_resource_state
    calls = 0

    async def flaky(resource_id):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ProviderError("injected: GetInstance timed out")
        return await real_state(resource_id)

    orchestrator.get_resource_state = flaky
    with pytest.raises(SetupFailed, match="nothing was left behind"):
        await orchestrator.setup(OCIOrchestrator.make_resource_config())
    assert live(oci_api) == []
    assert len(oci_state(oci_api)["instances"]) == 1


async def test_a_wrong_api_key_is_refused_and_nothing_is_made(oci_api, store, tmp_path):
    other, _, _ = rsa_key(tmp_path, "other")
    options = oci_options(oci_api)
    options["sdk_config"] = dict(options["sdk_config"], key_file=str(other))
    orchestrator = OCIOrchestrator(options, store=store, owner="a")
    with pytest.raises(SetupFailed, match="401 NotAuthenticated"):
        await orchestrator.setup(OCIOrchestrator.make_resource_config())
    assert oci_state(oci_api)["instances"] == {}


def test_cli_lists_oci_instances_as_in_the_corc_paper(oci_api, tmp_path):
    config = write_config(tmp_path, {"oci": oci_options(oci_api)})
    created = corc(config, "oci", "instance", "create", "--cpu", "2", "--memory", "16", "--json")
    assert created.returncode == 0, created.stderr
    listed = corc(config, "oci", "orchestration", "instance", "list")
    assert listed.returncode == 0, listed.stderr
    [instance] = live(oci_api)
    assert listed.stdout.split("\t")[0] == instance["id"]
    assert corc(config, "reap").stdout.strip() == "no orphaned resources"
