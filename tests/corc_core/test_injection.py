"""No user name, header value or spawn option runs code on the hub (issue 10 §2).

Each payload, if anything evaluated it as a template or handed it to a shell, would create a marker
file under /tmp. The tests put them in every value corc hands to Ansible or a cloud API and check
that the value is refused with a clear error or travels as plain text, and that no marker appears.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from corc_core import ConfigError, SSHAuthenticator
from corc_core.configurer import AnsibleConfigurer, unsafe_yaml
from corc_core.validation import (
    resource_name,
    validate_image,
    validate_path,
    validate_resource_name,
    validate_username,
)
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
