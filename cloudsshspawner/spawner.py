"""CloudSSHSpawner: a notebook on a remote host, reached only through SSH tunnels."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

from jupyterhub.spawner import Spawner
from jupyterhub.utils import url_path_join
from traitlets import Dict, Float, Integer, List, Unicode, default

from . import remote
from .target import SSHTarget
from .tunnel import DEFAULT_CIPHERS, Forwards, Tunnel, TunnelError


class SpawnError(RuntimeError):
    """A start that failed; JupyterHub shows ``jupyterhub_message`` on the spawn page."""

    @property
    def jupyterhub_message(self) -> str:
        return str(self)


class CloudSSHSpawner(Spawner):
    """Start ``jupyterhub-singleuser`` on a remote host over SSH.

    All traffic between the hub and the notebook travels inside one SSH connection: a local
    forward carries the hub's requests to the notebook (which listens on the remote host's
    127.0.0.1 only) and a reverse forward carries the notebook's API calls back to the hub. The host
    key is always verified. The API token reaches the notebook over the SSH channel, never on a
    command line or in a world-readable file.

    Use it on its own (``remote_hosts``), or construct it with ``target=SSHTarget(...)`` to run on a
    machine someone else ordered (the MultipleSpawner does this).
    """

    remote_hosts = List(
        Unicode(),
        config=True,
        help="""Hosts to start notebooks on, as ``host`` or ``host:port``; one is chosen at random
        per spawn. Ignored when a ``target`` is handed in.""",
    )
    remote_user = Unicode(
        "{username}",
        config=True,
        help="Remote account to log in as; ``{username}`` is the hub user's name.",
    )
    ssh_key_file = Unicode(
        config=True,
        help="""Private key to log in with (mode 0600); ``{username}`` is expanded, so each user
        can have their own key, e.g. ``/srv/gridhub/keys/{username}/id_ed25519``.""",
    )
    ssh_certificate_file = Unicode(
        "",
        config=True,
        help="OpenSSH user certificate for the key (``{username}`` expanded); empty: none.",
    )
    known_hosts = Unicode(
        "",
        config=True,
        help="known_hosts file the remote hosts' keys are checked against (exact entries).",
    )
    remote_command = List(
        Unicode(),
        ["jupyterhub-singleuser"],
        config=True,
        help="Command that starts the notebook on the remote host (``Spawner.args`` are appended).",
    )
    remote_path = Unicode(
        "",
        config=True,
        help="Directories prepended to PATH on the remote host, e.g. ``/opt/conda/bin``.",
    )
    remote_environment = Dict(
        config=True, help="Extra environment for the remote notebook (added to ``environment``)."
    )
    keepalive_interval = Float(10, config=True, help="Seconds between SSH keepalives.")
    ssh_ciphers = List(
        Unicode(),
        list(DEFAULT_CIPHERS),
        config=True,
        help="SSH ciphers in order of preference (AES-GCM is fastest with AES-NI).",
    )
    stop_timeout = Integer(
        10, config=True, help="Seconds the notebook gets to exit on SIGTERM before SIGKILL."
    )
    reconnect_timeout = Float(
        60,
        config=True,
        help="How long poll() waits for a dropped SSH connection to come back before the server is"
        " considered gone.",
    )

    @default("env_keep")
    def _env_keep_default(self) -> list[str]:
        return []  # the hub's PATH, VIRTUAL_ENV, ... mean nothing on another machine

    def __init__(self, target: SSHTarget | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.tunnel: Tunnel | None = None
        self.pid: int | None = None
        self.remote_dir = ""
        self.forwards = Forwards()
        self._events: list[dict[str, Any]] = []

    # -- state ------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.pid and self.target:
            state.update(
                target=self.target.to_state(),
                pid=self.pid,
                remote_dir=self.remote_dir,
                notebook_port=self.forwards.notebook_port,
                local_port=self.forwards.local_port,
                api_port=self.forwards.api_port,
            )
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        if state.get("pid") and state.get("target"):
            self.target = SSHTarget.from_state(state["target"])
            self.pid = int(state["pid"])
            self.remote_dir = state["remote_dir"]
            self.forwards = Forwards(
                notebook_port=int(state["notebook_port"]),
                local_port=int(state["local_port"]),
                api_port=int(state["api_port"]),
            )

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = None
        self.remote_dir = ""
        self.forwards = Forwards()

    # -- helpers ----------------------------------------------------------------------------------

    def _expand(self, template: str) -> str:
        return template.replace("{username}", self.user.name)

    def _configured_target(self) -> SSHTarget:
        if not self.remote_hosts:
            raise TunnelError("CloudSSHSpawner.remote_hosts is empty and no target was handed in")
        if not self.ssh_key_file:
            raise TunnelError("CloudSSHSpawner.ssh_key_file is not set")
        host, _, port = random.choice(self.remote_hosts).partition(":")  # noqa: S311
        return SSHTarget(
            host=host,
            port=int(port or 22),
            username=self._expand(self.remote_user),
            key_file=self._expand(self.ssh_key_file),
            certificate_file=self._expand(self.ssh_certificate_file) or None,
            known_hosts=self.known_hosts or None,
        )

    def _hub_address(self) -> tuple[str, int]:
        api_url = self.hub_connect_url or self.hub.api_url
        parsed = urlparse(api_url)
        host = parsed.hostname or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a bind-all address: connect locally
            host = "127.0.0.1"
        return host, parsed.port or (443 if parsed.scheme == "https" else 80)

    def _tunnel(self) -> Tunnel:
        if self.tunnel is None:
            assert self.target is not None
            self.tunnel = Tunnel(
                self.target,
                self.log,
                keepalive_interval=self.keepalive_interval,
                ciphers=tuple(self.ssh_ciphers),
            )
        return self.tunnel

    def _progress(self, percent: int, message: str) -> None:
        self._events.append({"progress": percent, "message": message})
        self.log.info("%s: %s", self._log_name, message)

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        api_url = f"http://127.0.0.1:{self.forwards.api_port}{urlparse(self.hub.api_url).path}"
        env["JUPYTERHUB_API_URL"] = api_url
        env["JUPYTERHUB_ACTIVITY_URL"] = url_path_join(
            api_url, "users", getattr(self.user, "escaped_name", self.user.name), "activity"
        )
        env.update(self.remote_environment)
        if self.remote_path:
            env["PATH"] = f"{self.remote_path}:/usr/local/bin:/usr/bin:/bin"
        return env

    # -- Spawner API ------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self._events = []
        if self.target is None:
            self.target = self._configured_target()
        host = self.target.host
        self._progress(10, f"Connecting to {host} over SSH")
        tunnel = self._tunnel()
        try:
            hub_host, hub_port = self._hub_address()
            self.forwards = Forwards(hub_host=hub_host, hub_port=hub_port)
            await tunnel.connect()
            # The reverse forward first: the notebook needs the hub's API as soon as it starts.
            await tunnel.open(self.forwards)
            self.ip, self.port = "127.0.0.1", 0  # the remote OS picks a free port: no race
            self.remote_dir = f".gridhub/servers/{self.user.name}-{self.name or 'default'}"
            self._progress(30, f"Starting the notebook server on {host}")
            argv = [*self.remote_command, *self.get_args()]
            output = await tunnel.run(
                remote.launch_command(self.remote_dir, argv),
                stdin=remote.encode_environment(self.get_env()),
            )
            self.pid = int(output.strip().splitlines()[-1])
            self._progress(50, f"Waiting for the notebook server on {host} (pid {self.pid})")
            self.forwards.notebook_port = await self._wait_for_port()
            # The local forward can point at the notebook only now that its port is known.
            await tunnel.open_local()
        except (TunnelError, RuntimeError, ValueError) as error:
            await self._tear_down()
            raise SpawnError(f"Could not start your server on {host}: {error}") from None
        except BaseException:
            await self._tear_down()
            raise
        self._progress(90, f"Notebook server on {host} is up; connecting the hub to it")
        return "127.0.0.1", self.forwards.local_port

    async def _wait_for_port(self) -> int:
        assert self.tunnel is not None
        deadline = asyncio.get_running_loop().time() + self.start_timeout
        while asyncio.get_running_loop().time() < deadline:
            probe = await self.tunnel.run(
                remote.shell(remote.PORT_PROBE, self.remote_dir, str(self.pid))
            )
            port = remote.parse_port(probe)
            if port is not None:
                return port
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the notebook server did not start within {self.start_timeout} s")

    async def _tear_down(self) -> None:
        """Stop whatever a failed start left: the remote process, then the tunnel."""
        if self.pid is not None and self.tunnel is not None:
            try:
                await self.tunnel.run(
                    remote.shell(
                        remote.STOP, str(self.pid), self.remote_dir, str(self.stop_timeout)
                    ),
                    timeout=self.stop_timeout + 10,
                )
            except TunnelError as error:
                self.log.error("Could not stop pid %s on %s: %s", self.pid, self.target, error)
        if self.tunnel is not None:
            await self.tunnel.close()
            self.tunnel = None
        self.clear_state()

    async def poll(self) -> int | None:
        if self.pid is None or self.target is None:
            return 0
        tunnel = self._tunnel()
        try:
            if (
                tunnel.forwards is None
            ):  # after a hub restart: re-make the tunnels on the same ports
                self.forwards.hub_host, self.forwards.hub_port = self._hub_address()
                await tunnel.open(self.forwards)
            elif not await tunnel.wait_ready(self.reconnect_timeout):
                self.log.error("%s: SSH tunnel to %s is down", self._log_name, self.target.host)
                return 1
            await tunnel.run(remote.shell(remote.ALIVE, str(self.pid)))
        except TunnelError as error:
            if "exited with" in str(error):
                return 1  # the process is gone
            self.log.error("%s: cannot check the server: %s", self._log_name, error)
            return 1
        return None

    async def stop(self, now: bool = False) -> None:
        if self.pid is None or self.target is None:
            return
        self._tunnel()
        try:
            await self.tunnel.connect()
        except TunnelError as error:
            self.log.error("%s: cannot reach %s to stop it: %s", self._log_name, self.target, error)
        await self._tear_down()

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if self._spawn_future is None or self._spawn_future.done():
                return
            await asyncio.sleep(0.2)
