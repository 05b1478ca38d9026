"""The local pool hands out GPUs exclusively; the sandbox makes real SSH hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest

from corc_core import SetupFailed, SSHAuthenticator
from corc_core.providers.local import LocalOrchestrator
from corc_core.providers.sandbox import SandboxOrchestrator
from tests.harness.sshd import SSHHost


@pytest.fixture
def machine(tmp_path: Path):
    """One real sshd standing in for the institution's machines (pool members share it)."""
    host = SSHHost(tmp_path / "machine")
    host.start()
    yield host
    host.stop()


def pool(machine: SSHHost) -> dict:
    member = {
        "address": machine.address,
        "port": machine.port,
        "username": "root",
        "cpu": 8,
        "memory_gb": 32,
    }
    return {
        "hosts": [
            dict(member, name="gpu-a", gpus=2),
            dict(member, name="gpu-b", gpus=1),
            dict(member, name="cpu-only", gpus=0),
        ]
    }


async def test_gpus_are_never_handed_out_twice(machine, store) -> None:
    options = pool(machine)
    orchestrators = [LocalOrchestrator(options, store=store, owner=f"u{i}") for i in range(4)]
    request = LocalOrchestrator.make_resource_config(gpus=1, resource_type="bare_metal")
    results = await asyncio.gather(
        *(o.setup(request) for o in orchestrators), return_exceptions=True
    )
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(granted) == 3 and len(refused) == 1
    assert isinstance(refused[0], SetupFailed)
    assert "GPU capacity in the pool is in use" in str(refused[0])
    pairs = {(r.details["host"], gpu) for r in granted for gpu in r.details["gpus"]}
    assert pairs == {("gpu-a", 0), ("gpu-a", 1), ("gpu-b", 0)}

    # Released GPUs can be allocated again, and CPU-only requests go to the GPU-less host.
    holder = next(o for o in orchestrators if o.resource and o.resource.details["host"] == "gpu-b")
    await holder.tear_down()
    again = LocalOrchestrator(options, store=store, owner="u9")
    regranted = await again.setup(request)
    assert (regranted.details["host"], regranted.details["gpus"]) == ("gpu-b", [0])
    assert regranted.gpu_ids == ["0"]
    assert sorted(g for r in granted for g in r.gpu_ids) == ["0", "0", "1"]
    cpu = LocalOrchestrator(options, store=store, owner="u10")
    cpu_only = LocalOrchestrator.make_resource_config(resource_type="bare_metal")
    assert (await cpu.setup(cpu_only)).details["host"] == "cpu-only"


def test_local_refuses_virtual_machines_and_bad_pools(machine, store) -> None:
    from corc_core import ConfigError

    with pytest.raises(ConfigError, match="cannot make a virtual_machine"):
        LocalOrchestrator.make_resource_config(gpus=1, resource_type="virtual_machine")
    with pytest.raises(ConfigError, match="each host needs a name and an address"):
        LocalOrchestrator({"hosts": [{"name": "x"}]}, store=store, owner="a")


async def test_sandbox_host_is_real_and_goes_away(store, tmp_path) -> None:
    orchestrator = SandboxOrchestrator(
        {"directory": str(tmp_path / "sandbox")}, store=store, owner="alice", poll_interval=0.05
    )
    ssh = SSHAuthenticator(tmp_path / "ssh")
    credentials = await ssh.credentials_for("alice", "root")
    resource = await orchestrator.setup(SandboxOrchestrator.make_resource_config(), credentials)
    address = resource.addresses[0]
    await ssh.pin_host_key(address, resource.ssh_port, resource.host_key)
    async with asyncssh.connect(
        address,
        port=resource.ssh_port,
        username="root",
        client_keys=[credentials.key_file],
        known_hosts=str(ssh.known_hosts),
        agent_path=None,
        config=[],
    ) as conn:
        assert (await conn.run("echo hello", check=True)).stdout.strip() == "hello"
    host_dir = Path(resource.details["host"]["directory"])
    pid = resource.details["host"]["pid"]
    await orchestrator.tear_down()
    assert not host_dir.exists()
    assert (
        not Path(f"/proc/{pid}").exists()
        or b"sshd" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    assert await orchestrator.list_resources() == []


async def test_state_survives_a_restart_and_tear_down_still_works(store, tmp_path) -> None:
    import json

    options = {"directory": str(tmp_path / "sandbox")}
    first = SandboxOrchestrator(options, store=store, owner="alice", poll_interval=0.05)
    resource = await first.setup(SandboxOrchestrator.make_resource_config())
    saved = json.loads(json.dumps(first.get_state()))  # what a spawner persists
    again = await SandboxOrchestrator.from_state(saved, store=store, owner="alice")
    assert again.resource_id() == resource.id
    assert again.endpoint() == resource.addresses[0]
    assert await again.is_ready() and await again.is_reachable()
    await again.tear_down()
    assert await again.list_resources() == []
    assert (await store.get(saved["record_id"])).state == "deleted"
