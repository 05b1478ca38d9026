"""No user name, header value or spawn option runs code on the hub (issue 10 §2).

Each payload, if anything evaluated it as a template or handed it to a shell, would create a marker
file under /tmp. The tests put them in every value corc hands to Ansible or a cloud API and check
that the value is refused with a clear error or travels as plain text, and that no marker appears.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from corc_core import ConfigError, CorcError, SSHAuthenticator
from corc_core.configurer import AnsibleConfigurer, unsafe_yaml
from corc_core.providers.libcloud import LibcloudOrchestrator
from corc_core.validation import (
    resource_name,
    validate_image,
    validate_path,
    validate_resource_name,
    validate_username,
)
from tests.corc_core.conftest import live_nodes, oci_options, oci_state
from tests.harness.clouds import ec2_options, openstack_cloud, start_moto
from tests.harness.sshd import SSHHost

BIN = str(Path(sys.executable).parent)

PAYLOADS = [
    "{{ lookup('pipe', 'id > MARK') }}",
    "{% set x = lookup('pipe', 'id > MARK') %}",
    "$(id > MARK)",
    "`id > MARK`",
    "x; id > MARK",
    "x | id > MARK",
    "x && id > MARK",
    "x' ; id > MARK; echo '",
    'x" ; id > MARK; echo "',
    "x\nid > MARK",
]


@pytest.fixture
def marker():
    """A /tmp path that only a successful injection would create."""
    path = Path(f"/tmp/corc-pwned-{uuid.uuid4().hex}")
    yield path
    assert not path.exists(), f"an injected command ran on the hub: {path} exists"
    path.unlink(missing_ok=True)


def payloads(marker: Path) -> list[str]:
    return [p.replace("MARK", str(marker)) for p in PAYLOADS]


@pytest.fixture
def credentials(tmp_path):
    import asyncio

    return asyncio.run(SSHAuthenticator(tmp_path / "ssh").credentials_for("corc-admin", "root"))


NOTEBOOK_VALUES = {
    "notebook_user": "alice",
    "authorized_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkBT0fGkNuF8jEf5k4uEXAMPLE corc:alice",
    "hub_host_key": "hub.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEEXAMPLE",
    "singleuser_command": "jupyterhub-singleuser",
    "singleuser_path": BIN,
}


@pytest.mark.parametrize("variable", sorted(NOTEBOOK_VALUES))
async def test_every_playbook_variable_refuses_the_payloads(
    variable, marker, credentials, tmp_path
) -> None:
    configurer = AnsibleConfigurer()
    ran = []
    configurer._play = lambda *args: ran.append(args)  # must never be reached
    for payload in payloads(marker):
        values = dict(NOTEBOOK_VALUES, **{variable: payload})
        if variable in ("authorized_key", "hub_host_key"):
            values[variable] = NOTEBOOK_VALUES[variable] + " " + payload  # as a key comment
        with pytest.raises(ConfigError, match=variable) as refused:
            await configurer.configure(
                "127.0.0.1", 22, credentials, tmp_path / "known_hosts", values
            )
        assert "\n" not in str(refused.value)
    assert ran == []


async def test_host_user_and_unknown_variables_are_refused(marker, credentials, tmp_path) -> None:
    configurer = AnsibleConfigurer()
    configurer._play = lambda *args: pytest.fail("the play must not run")
    for payload in payloads(marker):
        with pytest.raises(ConfigError, match="the host"):
            await configurer.configure(
                payload, 22, credentials, tmp_path / "kh", dict(NOTEBOOK_VALUES)
            )
        bad_user = type(credentials)(payload, credentials.key_file, credentials.public_key)
        with pytest.raises(ConfigError, match="the remote user"):
            await configurer.configure(
                "127.0.0.1", 22, bad_user, tmp_path / "kh", dict(NOTEBOOK_VALUES)
            )
    with pytest.raises(ConfigError, match="takes no variable 'ansible_become_exe'"):
        await configurer.configure(
            "127.0.0.1",
            22,
            credentials,
            tmp_path / "kh",
            dict(NOTEBOOK_VALUES, ansible_become_exe="id"),
        )


async def test_without_the_checks_ansible_still_never_templates_a_value(
    marker, credentials, tmp_path
) -> None:
    """The second wall: even an unchecked value reaches Ansible marked !unsafe. The host is
    unreachable, yet on today's code the first task's condition alone runs the lookup."""
    configurer = AnsibleConfigurer()
    configurer.variable_checks = None
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    for payload in payloads(marker)[:3]:
        with pytest.raises(Exception, match=r"configuring 127\.0\.0\.1 failed"):
            await configurer.configure(
                "127.0.0.1",
                1,
                credentials,
                known_hosts,
                {"notebook_user": payload, "authorized_key": payload},
            )
        assert not marker.exists()


def test_unsafe_yaml_tags_every_string() -> None:
    text = unsafe_yaml({"a": "{{ x }}", "b": ["y", {"c": "z"}], "n": 3, "t": True, "none": None})
    assert text.count("!unsafe") == 3
    assert "!unsafe '{{ x }}'" in text
    with pytest.raises(ConfigError, match="not a valid Ansible variable name"):
        unsafe_yaml({"{{ x }}": "y"})


@pytest.fixture
def notebook_user():
    name = f"gridhubinj{os.getpid() % 100000}"
    yield name
    subprocess.run(["userdel", "-r", name], capture_output=True)


async def test_payloads_reach_a_real_host_as_plain_text(marker, notebook_user, tmp_path) -> None:
    """With the checks off, payloads written by the playbook land on the host verbatim."""
    ssh = SSHAuthenticator(tmp_path / "ssh")
    machine = SSHHost(tmp_path / "host")
    admin = await ssh.credentials_for("corc-admin", "root")
    machine.authorize_key(admin.public_key)
    machine.start()
    try:
        await ssh.verify_host(machine.address, machine.port)
        configurer = AnsibleConfigurer()
        configurer.variable_checks = None
        line = "hub.example.org " + " ".join(payloads(marker)[:2])
        await configurer.configure(
            machine.address,
            machine.port,
            admin,
            ssh.known_hosts,
            {
                "notebook_user": notebook_user,
                "authorized_key": NOTEBOOK_VALUES["authorized_key"],
                "hub_host_key": line,
                "singleuser_path": BIN,
            },
        )
    finally:
        machine.stop()
    home = Path(
        subprocess.run(
            ["getent", "passwd", notebook_user], capture_output=True, text=True
        ).stdout.split(":")[5]
    )
    assert line in (home / ".ssh" / "known_hosts").read_text()


def test_validators_accept_real_values_and_refuse_payloads(marker) -> None:
    assert validate_username("alice_b-2") == "alice_b-2"
    for image in (
        "ami-03cf127a",
        "ocid1.image.oc1..aaaa",
        "Ubuntu 22.04 LTS",
        "cirros:0.6@sha256:ab",
    ):
        assert validate_image(image) == image
    assert validate_path("/opt/conda/bin") == "/opt/conda/bin"
    for payload in payloads(marker):
        for check in (validate_username, validate_image, validate_resource_name, validate_path):
            with pytest.raises(ConfigError):
                check(payload)
    for bad in ("/opt/../etc", "relative/bin", "Alice", "-rf", ""):
        with pytest.raises(ConfigError):
            (validate_path if "/" in bad else validate_username)(bad)


def test_resource_name_is_valid_and_unambiguous() -> None:
    assert resource_name("gridhub", "alice", "gpu") == "gridhub-alice-gpu"
    odd = resource_name("gridhub", "{{ lookup('pipe', 'id') }}", "")
    assert validate_resource_name(odd) == odd
    assert resource_name("a b") != resource_name("a-b")
    assert len(resource_name("x" * 300)) <= 63


# -- cloud providers: names, images and tags ------------------------------------------------------


@pytest.fixture(params=["ec2", "openstack"])
def cloud(request, tmp_path):
    """libcloud options for moto EC2 and for the fake OpenStack, with a function listing the
    live machines as (name, tags)."""
    if request.param == "ec2":
        daemon, port = start_moto(tmp_path)
        options = ec2_options(port)

        def machines():
            return [(n.name, n.extra["tags"]) for n in live_nodes(options)]

        yield options, machines
        daemon.stop()
    else:
        with openstack_cloud(tmp_path) as options:
            path = Path(options.pop("_state"))

            def machines():
                servers = json.loads(path.read_text())["servers"].values()
                return [(s["name"], s["metadata"]) for s in servers if not s["_deleted"]]

            yield options, machines


async def test_libcloud_names_and_images_refuse_payloads(cloud, marker, store) -> None:
    options, machines = cloud
    for payload in payloads(marker):
        for field in ("name", "image"):
            corc = LibcloudOrchestrator(options, store=store, owner="alice", poll_interval=0.05)
            with pytest.raises(CorcError) as refused:
                request = LibcloudOrchestrator.make_resource_config(**{field: payload})
                await corc.setup(request)
            assert "\n" not in str(refused.value)
            assert "machine name" in str(refused.value) or "image" in str(refused.value)
    assert machines() == []


async def test_libcloud_tags_carry_payloads_as_plain_data(cloud, marker, store) -> None:
    """The owner (a hub user name) and request tags go to the cloud as data, verbatim."""
    options, machines = cloud
    owner = payloads(marker)[0]
    tags = {f"note{i}": payload for i, payload in enumerate(payloads(marker)[1:])}
    corc = LibcloudOrchestrator(options, store=store, owner=owner, poll_interval=0.05)
    await corc.setup(LibcloudOrchestrator.make_resource_config(name="corc-x", tags=tags))
    [(name, held)] = machines()
    assert name == "corc-x"
    assert held["gridhub-owner"] == owner
    assert {k: held[k] for k in tags} == tags
    assert [r.id for r in await corc.list_resources({"gridhub-owner": owner})] == [corc.resource.id]
    await corc.tear_down()
    assert machines() == []


async def test_oci_display_names_refuse_or_keep_payloads(oci_api, marker, store) -> None:
    from corc_core.providers.oci import OCIOrchestrator

    for payload in payloads(marker)[:4]:
        corc = OCIOrchestrator(oci_options(oci_api), store=store, owner=payload, poll_interval=0.05)
        try:
            await corc.setup(OCIOrchestrator.make_resource_config(name=payload))
        except CorcError as refused:
            assert "\n" not in str(refused)
            continue
        instance = oci_state(oci_api)["instances"][corc.resource.id]
        assert instance["displayName"] == payload
        assert instance["freeformTags"]["gridhub-owner"] == payload
        await corc.tear_down()
