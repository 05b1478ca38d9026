"""The notebook playbook against a real sshd host, with host-key checking on."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import asyncssh
import pytest

from corc_core import SSHAuthenticator
from corc_core.configurer import AnsibleConfigurer, ConfigurationFailed
from tests.harness.sshd import SSHHost

BIN = str(Path(sys.executable).parent)


@pytest.fixture
def host(tmp_path: Path):
    ssh = SSHAuthenticator(tmp_path / "ssh")
    machine = SSHHost(tmp_path / "host")
    machine.start()
    yield machine, ssh
    machine.stop()


@pytest.fixture
def notebook_user():
    name = f"gridhubnb{os.getpid() % 100000}"
    yield name
    subprocess.run(["userdel", "-r", name], capture_output=True)


async def test_playbook_prepares_the_notebook_user(host, notebook_user, tmp_path) -> None:
    machine, ssh = host
    admin = await ssh.credentials_for("corc-admin", "root")
    machine.authorize_key(admin.public_key)
    await ssh.verify_host(machine.address, machine.port)
    hub = await ssh.credentials_for(notebook_user)
    await AnsibleConfigurer().configure(
        machine.address,
        machine.port,
        admin,
        ssh.known_hosts,
        {
            "notebook_user": notebook_user,
            "authorized_key": hub.public_key,
            "hub_host_key": "hub.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEEXAMPLE",
            "singleuser_path": BIN,
        },
    )
    # The hub can now log in as the notebook user with its own key.
    async with asyncssh.connect(
        machine.address,
        port=machine.port,
        username=notebook_user,
        client_keys=[hub.key_file],
        known_hosts=str(ssh.known_hosts),
        agent_path=None,
        config=[],
    ) as conn:
        result = await conn.run("whoami; stat -c %a ~/.ssh ~/.ssh/authorized_keys", check=True)
    assert result.stdout.split() == [notebook_user, "700", "600"]


async def test_missing_singleuser_is_reported(host, tmp_path) -> None:
    machine, ssh = host
    admin = await ssh.credentials_for("corc-admin", "root")
    machine.authorize_key(admin.public_key)
    await ssh.verify_host(machine.address, machine.port)
    with pytest.raises(ConfigurationFailed, match="is not installed on this machine"):
        await AnsibleConfigurer().configure(
            machine.address,
            machine.port,
            admin,
            ssh.known_hosts,
            {
                "notebook_user": "root",
                "authorized_key": admin.public_key,
                "singleuser_command": "no-such-notebook-command",
            },
        )


async def test_unknown_host_key_is_refused(host, tmp_path) -> None:
    machine, ssh = host
    admin = await ssh.credentials_for("corc-admin", "root")
    machine.authorize_key(admin.public_key)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(ConfigurationFailed, match=r"Host key verification failed"):
        await AnsibleConfigurer().configure(
            machine.address,
            machine.port,
            admin,
            empty,
            {"notebook_user": "root", "authorized_key": admin.public_key, "singleuser_path": BIN},
        )


async def test_the_play_runs_on_corcs_slow_pool_not_the_default_executor(tmp_path) -> None:
    """A play blocks a thread for minutes: it must not take one of the loop's default workers."""
    configurer = AnsibleConfigurer()
    threads = []
    configurer._play = lambda *args: threads.append(threading.current_thread().name)
    admin = await SSHAuthenticator(tmp_path / "ssh").credentials_for("corc-admin", "root")
    await configurer.configure(
        "127.0.0.1",
        22,
        admin,
        tmp_path / "known_hosts",
        {"notebook_user": "root", "authorized_key": admin.public_key},
    )
    assert len(threads) == 1
    assert threads[0].startswith("corc-slow")
