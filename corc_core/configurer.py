"""``AnsibleConfigurer``: configure a machine with a playbook shipped in ``corc_core/playbooks``."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .credentials import SSHCredentials
from .errors import CorcError

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


class ConfigurationFailed(CorcError):
    """The playbook failed; the message names the task and Ansible's reason."""


class AnsibleConfigurer:
    """Runs a playbook over SSH through ansible-runner, in a worker thread.

    Host-key checking stays on: the host must be in ``known_hosts`` (corc pins or records it when
    the machine is created). The private key is passed as a file path, never as a value.
    """

    def __init__(
        self,
        playbook: str = "notebook.yml",
        timeout: float = 600,
        python_interpreter: str = "/usr/bin/python3",
    ) -> None:
        self.playbook = PLAYBOOKS / playbook
        self.python_interpreter = python_interpreter
        if not self.playbook.is_file():
            raise CorcError(f"no playbook {playbook!r} in {PLAYBOOKS}")
        self.timeout = timeout

    async def configure(
        self,
        host: str,
        port: int,
        credentials: SSHCredentials,
        known_hosts: Path,
        variables: dict[str, Any],
    ) -> None:
        """Run the playbook against ``host`` as ``credentials``; ConfigurationFailed on failure."""
        inventory = self._inventory(host, port, credentials, known_hosts)
        await asyncio.to_thread(self._play, inventory, variables, host)

    def _inventory(
        self, host: str, port: int, credentials: SSHCredentials, known_hosts: Path
    ) -> dict[str, Any]:
        ssh_args = [
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
        ]
        if credentials.certificate_file:
            ssh_args += ["-o", f"CertificateFile={credentials.certificate_file}"]
        target = {
            "ansible_host": host,
            "ansible_port": port,
            "ansible_user": credentials.username,
            "ansible_ssh_private_key_file": credentials.key_file,
            "ansible_ssh_common_args": shlex.join(ssh_args),
            "ansible_python_interpreter": self.python_interpreter,
        }
        return {"all": {"hosts": {"target": target}}}

    def _play(self, inventory: dict[str, Any], variables: dict[str, Any], host: str) -> None:
        import ansible_runner

        bin_dir = str(Path(sys.executable).parent)
        with tempfile.TemporaryDirectory(prefix="corc-ansible-") as private:
            (Path(private) / "inventory").mkdir()
            (Path(private) / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
            result = ansible_runner.run(
                private_data_dir=private,
                playbook=str(self.playbook),
                extravars=variables,
                envvars={
                    "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
                    "ANSIBLE_HOST_KEY_CHECKING": "True",
                    "ANSIBLE_PIPELINING": "True",
                    "ANSIBLE_NOCOLOR": "True",
                },
                quiet=True,
                timeout=int(self.timeout),
            )
            if result.rc != 0 or result.status != "successful":
                raise ConfigurationFailed(self._reason(result, host))

    @staticmethod
    def _reason(result: Any, host: str) -> str:
        for event in reversed(list(result.events)):
            data = event.get("event_data", {})
            if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                res = data.get("res", {})
                message = res.get("msg") or res.get("stderr") or "failed"
                return f"configuring {host} failed at '{data.get('task', '?')}': {message}".strip()
        return f"configuring {host} failed (ansible status {result.status}, rc {result.rc})"
