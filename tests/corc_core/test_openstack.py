"""The libcloud provider with a second driver: libcloud's OpenStack driver against a local
Keystone/Nova/Glance (tests/harness/openstack_api.py) over HTTP."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
import yaml

from corc_core import ConfigError, ProviderError, ResourceNotFound, SetupFailed, SSHAuthenticator
from corc_core.providers.libcloud import LibcloudOrchestrator, host_key_from_console
from tests.harness.clouds import openstack_cloud


@pytest.fixture
def openstack(tmp_path: Path) -> Iterator[dict]:
    with openstack_cloud(tmp_path) as cloud:
        yield cloud


def options(cloud: dict, **changes) -> dict:
    return {k: v for k, v in {**cloud, **changes}.items() if not k.startswith("_")}


def state(cloud: dict) -> dict:
    return json.loads(Path(cloud["_state"]).read_text())


def live(cloud: dict) -> list[dict]:
    return [s for s in state(cloud)["servers"].values() if not s["_deleted"]]


def orchestrator(cloud: dict, store, owner: str = "alice", **changes) -> LibcloudOrchestrator:
    return LibcloudOrchestrator(
        options(cloud, **changes), store=store, owner=owner, poll_interval=0.05, ready_timeout=20
    )


async def test_setup_tags_in_the_create_call_pins_the_host_key_and_tears_down(
    openstack, store, tmp_path
) -> None:
    credentials = await SSHAuthenticator(tmp_path / "ssh").credentials_for("alice", "ubuntu")
    corc = orchestrator(openstack, store)
    resource = await corc.setup(
        LibcloudOrchestrator.make_resource_config(cpu=2, memory_gb=4), credentials
    )
    assert resource.state == "running"
    assert resource.addresses == ["198.51.100.11", "10.0.0.11"]
    [server] = live(openstack)
    assert server["id"] == resource.id
    assert server["flavor"]["id"] == "3"  # m1.medium: the smallest with 2 CPUs and 4 GB
    assert resource.details["shape"] == "3"
    assert server["metadata"]["gridhub-record"] == corc.record.record_id
    assert server["metadata"]["gridhub-owner"] == "alice"
    # Tagged at birth: the one POST /servers carried the metadata; no later metadata call.
    calls = state(openstack)["calls"]
    assert sum(call == "POST /compute/v2.1/servers" for call in calls) == 1
    assert not any("metadata" in call for call in calls)
    keypair = state(openstack)["keypairs"][server["key_name"]]
    assert keypair["public_key"] == credentials.public_key
    # The host key corc generated went in through cloud-init's user data; only its public half
    # is kept (the state that JupyterHub stores holds no private key).
    user_data = yaml.safe_load(base64.b64decode(server["_user_data"]))
    private = asyncssh.import_private_key(user_data["ssh_keys"]["ed25519_private"])
    public = " ".join(private.export_public_key().decode().split()[:2])
    assert resource.host_key == public == user_data["ssh_keys"]["ed25519_public"]
    assert "PRIVATE" not in json.dumps(corc.get_state())

    assert [r.id for r in await corc.list_resources({"gridhub-owner": "alice"})] == [resource.id]
    assert await corc.list_resources({"gridhub-owner": "bob"}) == []
    await corc.tear_down()
    assert live(openstack) == []
    with pytest.raises(ResourceNotFound):
        await corc.get_resource_state(resource.id)
    with pytest.raises(ResourceNotFound):
        await corc.delete_resource(resource.id)


async def test_gpu_size_and_location_options_are_honoured(openstack, store) -> None:
    gpu = orchestrator(openstack, store, location="zone-b")
    await gpu.setup(LibcloudOrchestrator.make_resource_config(cpu=1, memory_gb=1, gpus=1))
    fixed = orchestrator(openstack, store, owner="bob", size="m1.large")
    await fixed.setup(LibcloudOrchestrator.make_resource_config(cpu=1, memory_gb=1))
    servers = {s["metadata"]["gridhub-owner"]: s for s in live(openstack)}
    assert servers["alice"]["flavor"]["id"] == "5"  # the GPU flavor, from its extra specs
    assert servers["alice"]["OS-EXT-AZ:availability_zone"] == "zone-b"
    assert servers["bob"]["flavor"]["id"] == "4"  # the configured size, not the smallest
    assert servers["bob"]["OS-EXT-AZ:availability_zone"] == "nova"
    shapes = {s.name: s for s in await gpu.list_shapes()}
    assert (shapes["5"].cpu, shapes["5"].memory_gb, shapes["5"].gpus) == (4, 16, 1)
    await gpu.tear_down()
    await fixed.tear_down()
    assert live(openstack) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"location": "zone-z"}, "no location 'zone-z' (option 'location'); known: nova, zone-b"),
        ({"size": "m9.huge"}, "no size 'm9.huge' (option 'size')"),
        ({"size": "m1.tiny"}, "no shape has 2 CPUs"),
        ({"image": "no-such-image"}, "no image with id or name 'no-such-image'"),
    ],
)
async def test_bad_options_are_clear_errors_and_create_nothing(
    openstack, store, changes, message
) -> None:
    corc = orchestrator(openstack, store, **changes)
    with pytest.raises(SetupFailed, match=re.escape(message)):
        await corc.setup(LibcloudOrchestrator.make_resource_config(cpu=2))
    assert state(openstack)["servers"] == {}


async def test_host_key_from_the_console(openstack, store) -> None:
    corc = orchestrator(openstack, store, host_key="console")
    resource = await corc.setup(LibcloudOrchestrator.make_resource_config())
    [server] = live(openstack)
    assert server["_user_data"] is None  # nothing installed: the VM made its own key
    driver = await corc._get_driver()
    node = driver.ex_get_node_details(resource.id)
    printed = host_key_from_console(driver.ex_get_console_output(node)["output"])
    assert printed and printed.startswith("ssh-ed25519 ")
    assert resource.host_key == printed
    await corc.tear_down()


def test_console_parsing_prefers_ed25519_and_ignores_junk() -> None:
    ed = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    ec = asyncssh.generate_private_key("ecdsa-sha2-nistp256").export_public_key().decode().strip()
    output = (
        "boot\n-----BEGIN SSH HOST KEY KEYS-----\n"
        f"{ec} root@vm\nssh-ed25519 not-base64 root@vm\n{ed} root@vm\n"
        "-----END SSH HOST KEY KEYS-----\n"
    )
    assert host_key_from_console(output) == " ".join(ed.split()[:2])
    assert host_key_from_console("no block here") is None
    assert host_key_from_console(None) is None


async def test_the_answer_to_create_lost_still_leaves_nothing(openstack, store) -> None:
    """The create request reached Nova but libcloud's follow-up read failed: the server is found
    by its record tag (written at birth) and deleted."""
    corc = orchestrator(openstack, store)
    real = corc._call

    async def losing(method, *args, **kwargs):
        result = await real(method, *args, **kwargs)
        if method == "create_node":
            raise ProviderError("injected: the connection dropped after POST /servers")
        return result

    corc._call = losing
    with pytest.raises(SetupFailed, match="nothing was left behind"):
        await corc.setup(LibcloudOrchestrator.make_resource_config())
    assert len(state(openstack)["servers"]) == 1
    assert live(openstack) == []


async def test_wrong_password_is_a_provider_error(openstack, store) -> None:
    corc = orchestrator(openstack, store, secret="wrong")
    with pytest.raises(SetupFailed, match=r"libcloud openstack .* failed") as failed:
        await corc.setup(LibcloudOrchestrator.make_resource_config())
    assert "\n" not in str(failed.value)
    assert state(openstack)["servers"] == {}


def test_unknown_host_key_source_is_refused(openstack, store) -> None:
    with pytest.raises(ConfigError, match="host_key must be one of user_data, console, none"):
        orchestrator(openstack, store, host_key="trust-me")
