"""``AnsibleConfigurer``: configure a machine with a playbook shipped in ``corc_core/playbooks``."""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .credentials import SSHCredentials
from .errors import ConfigError, CorcError
from .threads import run_slow
from .validation import (
    validate_command,
    validate_host,
    validate_known_hosts_line,
    validate_path,
    validate_public_key,
    validate_search_path,
    validate_username,
)

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"

Validator = Callable[[object, str], str]

#: The variables each shipped playbook takes, with the check each value must pass.
PLAYBOOK_VARIABLES: dict[str, dict[str, Validator]] = {
    "notebook.yml": {
        "notebook_user": validate_username,
        "authorized_key": validate_public_key,
        "hub_host_key": validate_known_hosts_line,
        "singleuser_command": validate_command,
        "singleuser_path": validate_search_path,
    },
}

_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class ConfigurationFailed(CorcError):
    """The playbook failed; the message names the task and Ansible's reason."""


class _Unsafe(str):
    """A string Ansible must never template (written with the ``!unsafe`` YAML tag)."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


_UnsafeDumper.add_representer(
    _Unsafe, lambda dumper, data: dumper.represent_scalar("!unsafe", str(data), style="'")
)


def _unsafe(value: Any) -> Any:
    """``value`` with every string in it marked unsafe (keys are checked variable names)."""
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not _VARIABLE_NAME.match(key):
                raise ConfigError(f"{key!r} is not a valid Ansible variable name")
        return {key: _unsafe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_unsafe(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ConfigError(f"a playbook variable cannot hold a {type(value).__name__}")


def unsafe_yaml(data: dict[str, Any]) -> str:
    """YAML in which every string is tagged ``!unsafe``: Ansible uses it as data, never as a
    template, so ``{{ lookup('pipe', ...) }}`` in a value stays text."""
    return yaml.dump(_unsafe(data), Dumper=_UnsafeDumper, default_flow_style=False)


class AnsibleConfigurer:
    """Runs a playbook over SSH through ansible-runner, on corc's pool for slow work.

    Host-key checking stays on: the host must be in ``known_hosts`` (corc pins or records it when
    the machine is created). The private key is passed as a file path, never as a value. Every
    variable is checked against the playbook's allow-lists and reaches Ansible marked ``!unsafe``
    (so neither a user name nor an option can run a template on the hub), inventory values too.
    """

    def __init__(
        self,
        playbook: str = "notebook.yml",
        timeout: float = 600,
        python_interpreter: str = "/usr/bin/python3",
    ) -> None:
        self.playbook = PLAYBOOKS / playbook
        if not re.match(r"^[A-Za-z0-9_-]+\.ya?ml$", playbook) or not self.playbook.is_file():
            raise CorcError(f"no playbook {playbook!r} in {PLAYBOOKS}")
        self.variable_checks = PLAYBOOK_VARIABLES.get(playbook)
        self.python_interpreter = validate_path(python_interpreter, "python_interpreter")
        self.timeout = timeout

    def check_variables(self, variables: dict[str, Any]) -> dict[str, Any]:
        """The variables after the playbook's checks; ConfigError names the first bad one."""
        if self.variable_checks is None:
            return dict(variables)
        unknown = sorted(set(variables) - set(self.variable_checks))
        if unknown:
            raise ConfigError(
                f"{self.playbook.name} takes no variable {', '.join(map(repr, unknown))};"
                f" known: {', '.join(self.variable_checks)}"
            )
        return {name: self.variable_checks[name](value, name) for name, value in variables.items()}

    async def configure(
        self,
        host: str,
        port: int,
        credentials: SSHCredentials,
        known_hosts: Path,
        variables: dict[str, Any],
    ) -> None:
        """Run the playbook against ``host`` as ``credentials``; ConfigurationFailed on failure.

        ConfigError (before anything runs) when a variable, the host or the user is not valid.
        """
        variables = self.check_variables(variables)
        inventory = self._inventory(host, port, credentials, known_hosts)
        await run_slow(self._play, inventory, variables, host)

    def _inventory(
        self, host: str, port: int, credentials: SSHCredentials, known_hosts: Path
    ) -> dict[str, Any]:
        validate_host(host, "the host")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"the SSH port {port!r} is not a port number")
        validate_username(credentials.username, "the remote user")
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
            (Path(private) / "inventory" / "hosts.yml").write_text(unsafe_yaml(inventory))
            # ansible-runner passes env/extravars as ``-e @file``: our YAML keeps the !unsafe
            # tags that its own JSON dump of ``extravars=`` would lose.
            (Path(private) / "env").mkdir()
            (Path(private) / "env" / "extravars").write_text(unsafe_yaml(variables))
            result = ansible_runner.run(
                private_data_dir=private,
                playbook=str(self.playbook),
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
                text = " ".join(str(message).split())  # one line, however many it had
                if len(text) > 500:
                    text = text[:497] + "..."
                return f"configuring {host} failed at '{data.get('task', '?')}': {text}"
        return f"configuring {host} failed (ansible status {result.status}, rc {result.rc})"
