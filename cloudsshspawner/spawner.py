"""CloudSSHSpawner: a notebook on a remote host, reached only through SSH tunnels."""

from __future__ import annotations

import asyncio
import posixpath
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from jupyterhub.spawner import Spawner
from jupyterhub.utils import url_path_join
from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, default, validate

from . import remote
from .home import (
    HomeError,
    PersistentHome,
    check_sftp_setting,
    external_sftp,
    install_startup_check,
)
from .target import SSHTarget
from .tunnel import DEFAULT_CIPHERS, Forwards, Refresher, Tunnel, TunnelError

if TYPE_CHECKING:
    from corc_core import SSHAuthenticator


install_startup_check()  # a bad persistent_home_sftp stops the hub at start, naming the key


class SpawnError(RuntimeError):
    """A start that failed; JupyterHub shows ``jupyterhub_message`` on the spawn page."""

    @property
    def jupyterhub_message(self) -> str:
        return str(self)


class CloudSSHSpawner(Spawner):
    """Start ``jupyterhub-singleuser`` on a remote host over SSH.

    All traffic between the hub and the notebook travels inside one SSH connection: a local
    forward carries the hub's requests to the notebook (which listens on the remote host's
    127.0.0.1 only) and a reverse forward carries the notebook's API calls back to the hub's REST
    API, and only to it (``apifilter``). The host key is always verified. The API token reaches the
    notebook over the SSH channel, never on a command line or in a world-readable file. Beside the
    notebook runs a small agent that keeps the notebook's API URL valid across reconnects and
    stops the notebook when the hub stays unreachable for ``remote_grace_period``.

    Use it on its own (``remote_hosts``), or as the child of a parent spawner (the MultipleSpawner)
    that ordered the machine. A parent constructs it with the attributes JupyterHub gives every
    spawner, plus the machine::

        child = CloudSSHSpawner(
            target=SSHTarget(host, username, key_file, port=..., certificate_file=...,
                             host_key=..., gpu_ids=(...)),
            parent=self, config=self.config,        # so c.CloudSSHSpawner.* applies
            user=self.user, hub=self.hub, orm_spawner=self.orm_spawner,
            api_token=self.api_token, oauth_client_id=self.oauth_client_id,
            server=self.server, hub_connect_url=self.hub_connect_url,
            cert_paths=self.cert_paths, start_timeout=self.start_timeout,
        )
        child._spawn_future = self._spawn_future   # so the child's progress() streams
        child.credentials_refresher = renew        # optional: re-issues an expiring certificate

    and delegates ``start``/``poll``/``stop``/``progress`` to it, keeping ``child.get_state()``
    inside its own state (it holds no secret: references only).
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
    corc_ssh_directory = Unicode(
        "",
        config=True,
        help="""Instead of ``ssh_key_file``: a corc_core ``SSHAuthenticator`` directory whose CA
        issues each (user, server) its own key and a short-lived certificate. The certificate is
        renewed when a reconnect finds it about to expire; the key is removed at stop. The remote
        hosts must trust the CA (``TrustedUserCAKeys``).""",
    )
    certificate_validity = Float(
        3600, config=True, help="Seconds a certificate from ``corc_ssh_directory`` is valid."
    )
    certificate_margin = Float(
        300,
        config=True,
        help="A certificate that expires within this many seconds is renewed before connecting.",
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
    remote_python = Unicode(
        "python3",
        config=True,
        help="Python 3 on the remote host that runs the small agent beside the notebook.",
    )
    remote_root = Unicode(
        ".gridhub/servers",
        config=True,
        help="""Directory on the remote host that holds each server's files (mode 0700), in
        ``<user>-<server>`` subdirectories; relative paths are under the remote user's home.""",
    )
    remote_path = Unicode(
        "",
        config=True,
        help="Directories prepended to PATH on the remote host, e.g. ``/opt/conda/bin``.",
    )
    remote_environment = Dict(
        config=True, help="Extra environment for the remote notebook (added to ``environment``)."
    )
    remote_grace_period = Float(
        600,
        config=True,
        help="""The agent beside the notebook stops it (and removes its files) when the hub's API
        has not answered through the tunnel for this many seconds.""",
    )
    remote_check_interval = Float(
        10, config=True, help="Seconds between the agent's checks that the hub answers."
    )
    local_forward_ip = Unicode(
        "127.0.0.1",
        config=True,
        help="""Address the local forward listens on, on the hub's machine. ``127.0.0.1`` when the
        proxy runs beside the hub; the hub container's address (or ``0.0.0.0``) when the proxy runs
        in another container.""",
    )
    local_forward_connect_ip = Unicode(
        "",
        config=True,
        help="""Address the proxy uses to reach the local forward; empty: ``local_forward_ip``, or
        this machine's hostname when that is a bind-all address.""",
    )
    keepalive_interval = Float(
        5,
        config=True,
        help="Seconds between SSH keepalives; a silent connection is dropped after"
        " keepalive_interval x keepalive_count seconds and re-made.",
    )
    keepalive_count = Integer(
        3, config=True, help="Unanswered keepalives after which the connection counts as lost."
    )
    reconnect_max_delay = Float(
        4, config=True, help="Longest wait between two reconnect attempts (the backoff's cap)."
    )
    ssh_ciphers = List(
        Unicode(),
        list(DEFAULT_CIPHERS),
        config=True,
        help="SSH ciphers in order of preference (AES-GCM is fastest with AES-NI).",
    )
    tunnel_processes = Integer(
        2,
        config=True,
        help="""OpenSSH ``ssh`` processes (each with its own SSH connection) that carry the local
        forward to the notebook: the bytes stay in C and concurrent downloads use several cores.
        0: the hub process carries it (asyncssh), as it does when no ``ssh`` client is on PATH.""",
    )
    stop_timeout = Integer(
        10, config=True, help="Seconds the notebook gets to exit on SIGTERM before SIGKILL."
    )
    stop_deadline = Float(
        30,
        config=True,
        help="""Upper bound for stop() as a whole (connecting included). What could not be cleaned
        up in time is kept in the state and finished at the next start.""",
    )
    reconnect_timeout = Float(
        30,
        config=True,
        help="How long a lost SSH connection may stay down before poll() reports the server gone.",
    )
    persistent_home_root = Unicode(
        "",
        config=True,
        help="""Hub-side directory holding each user's persistent home in ``<root>/<username>``
        (mode 0700). When set, that home is mounted (sshfs over the SSH connection) at
        ``persistent_home_mount`` on the remote host before the notebook starts, and is the
        notebook's working directory and $HOME. Empty: no persistent home.""",
    )
    persistent_home_sftp = Dict(
        config=True,
        help="""Instead of ``persistent_home_root``: an external SFTP service (ERDA, say) that holds
        each user's home. The hub logs in to it with the credential the user's login stored in
        auth_state (e.g. a header forwarded to the HeaderAuthenticator; needs
        ``enable_auth_state``), checks its host key, and relays its SFTP to the mount: the
        credential never reaches the remote host. Keys: ``host``; ``port`` (22); ``known_hosts``
        (absolute path of a file with the service's host key); ``username`` (template,
        ``{username}``: the hub user; default ``{username}``) or ``username_key`` (auth_state
        key); ``password_key`` or ``private_key_key`` (the auth_state key of the password, or of
        an OpenSSH/PEM private key); ``path`` (directory to mount on the service, ``{username}``
        expanded; empty: the login directory). Keys may be dotted (``mount.PASSWORD``) to reach
        into a JSON header's object.""",
    )

    @validate("persistent_home_sftp")
    def _check_persistent_home_sftp(self, proposal: Any) -> dict[str, Any]:
        if not proposal["value"]:
            return {}
        try:
            return check_sftp_setting(dict(proposal["value"]))
        except ValueError as error:
            raise TraitError(f"CloudSSHSpawner.{error}") from None

    persistent_home_mount = Unicode(
        "work",
        config=True,
        help="""Mount point of the persistent home on the remote host (absolute, or relative to
        the remote user's home; ``{username}`` is expanded).""",
    )
    persistent_home_optional = Bool(
        False,
        config=True,
        help="""If the persistent home cannot be mounted: False fails the spawn; True starts the
        notebook anyway, with a warning (progress message and $GRIDHUB_EPHEMERAL_HOME) that its
        files are lost when the server stops.""",
    )

    @default("env_keep")
    def _env_keep_default(self) -> list[str]:
        return []  # the hub's PATH, VIRTUAL_ENV, ... mean nothing on another machine

    def __init__(self, target: SSHTarget | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        #: A parent may set this: called with a target whose certificate expires soon, it returns
        #: the target with a renewed certificate.
        self.credentials_refresher: Refresher | None = None
        self.tunnel: Tunnel | None = None
        self.pid: int | None = None
        self.agent_pid: int | None = None
        self._launch_begun = False  # the launcher may have run: stops look in remote_dir
        self._cancelled_teardown: asyncio.Future[None] | None = None
        self.remote_dir = ""
        self.forwards = Forwards()
        #: Remote servers a stop could not reach: kept in the state and stopped later.
        self.unfinished: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._handed_target = target is not None
        self.home: PersistentHome | None = None
        self._home_lock = asyncio.Lock()
        self._remount: asyncio.Future[None] | None = None

    # -- state ------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.pid and self.target:
            state.update(
                target=self.target.to_state(),
                pid=self.pid,
                agent_pid=self.agent_pid or 0,
                remote_dir=self.remote_dir,
                notebook_port=self.forwards.notebook_port,
                local_port=self.forwards.local_port,
            )
        if self.unfinished:
            state["unfinished"] = self.unfinished
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        if state.get("pid") and state.get("target"):
            self.target = SSHTarget.from_state(state["target"])
            self.pid = int(state["pid"])
            self.agent_pid = int(state.get("agent_pid") or 0) or None
            self.remote_dir = state["remote_dir"]
            self.forwards = Forwards(
                notebook_port=int(state["notebook_port"]),
                local_port=int(state["local_port"]),
            )
        self.unfinished = list(state.get("unfinished", []))

    def clear_state(self) -> None:
        super().clear_state()  # ``unfinished`` stays: it outlives this server
        self.pid = None
        self.agent_pid = None
        self._launch_begun = False
        self.remote_dir = ""
        self.forwards = Forwards()
        if not self._handed_target:
            self.target = None

    # -- helpers ----------------------------------------------------------------------------------

    def _expand(self, template: str) -> str:
        return template.replace("{username}", self.user.name)

    def _ssh_authenticator(self) -> SSHAuthenticator:
        from corc_core import SSHAuthenticator  # only when used: corc_core imports cloud SDKs

        return SSHAuthenticator(
            self.corc_ssh_directory,
            use_certificates=True,
            certificate_validity=self.certificate_validity,
            refresh_margin=self.certificate_margin,
        )

    async def _configured_target(self) -> SSHTarget:
        if not self.remote_hosts:
            raise TunnelError("CloudSSHSpawner.remote_hosts is empty and no target was handed in")
        if not self.ssh_key_file and not self.corc_ssh_directory:
            raise TunnelError("set CloudSSHSpawner.ssh_key_file or corc_ssh_directory")
        host, _, port = random.choice(self.remote_hosts).partition(":")  # noqa: S311
        username = self._expand(self.remote_user)
        key_file = self._expand(self.ssh_key_file)
        certificate_file = self._expand(self.ssh_certificate_file) or None
        if self.corc_ssh_directory:
            credentials = await self._ssh_authenticator().credentials_for(
                self.user.name, remote_user=username, server_name=self.name
            )
            key_file, certificate_file = credentials.key_file, credentials.certificate_file
        return SSHTarget(
            host=host,
            port=int(port or 22),
            username=username,
            key_file=key_file,
            certificate_file=certificate_file,
            known_hosts=self.known_hosts or None,
        )

    async def _refresh(self, target: SSHTarget) -> SSHTarget:
        """``target`` with a certificate that does not expire soon (see ``certificate_margin``)."""
        if self.credentials_refresher is not None:
            renewed = await self.credentials_refresher(target)
        elif self.corc_ssh_directory and target.certificate_file:
            from corc_core import CorcError, SSHCredentials

            try:
                credentials = await self._ssh_authenticator().refresh(
                    SSHCredentials(target.username, target.key_file, "", target.certificate_file)
                )
            except CorcError as error:
                raise TunnelError(str(error)) from None
            renewed = replace(target, certificate_file=credentials.certificate_file)
        else:
            return target
        if self.target is not None and self.target.host == renewed.host:
            self.target = renewed
        return renewed

    def _hub_address(self) -> tuple[str, int]:
        api_url = self.hub_connect_url or self.hub.api_url
        parsed = urlparse(api_url)
        host = parsed.hostname or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a bind-all address: connect locally
            host = "127.0.0.1"
        return host, parsed.port or (443 if parsed.scheme == "https" else 80)

    def _api_path(self) -> str:
        return urlparse(self.hub.api_url).path.rstrip("/") or "/hub/api"

    def _new_tunnel(self, target: SSHTarget) -> Tunnel:
        return Tunnel(
            target,
            self.log,
            keepalive_interval=self.keepalive_interval,
            keepalive_count=self.keepalive_count,
            reconnect_max_delay=self.reconnect_max_delay,
            ciphers=tuple(self.ssh_ciphers),
            refresh=self._refresh,
            certificate_margin=self.certificate_margin,
            on_established=self._established,
            forward_processes=self.tunnel_processes,
        )

    def _tunnel(self) -> Tunnel:
        if self.tunnel is None:
            assert self.target is not None
            self.tunnel = self._new_tunnel(self.target)
        return self.tunnel

    def _forwards(self, local_port: int = 0, notebook_port: int = 0) -> Forwards:
        hub_host, hub_port = self._hub_address()
        return Forwards(
            notebook_port=notebook_port,
            local_port=local_port,
            hub_host=hub_host,
            hub_port=hub_port,
            api_prefix=self._api_path() + "/",
            local_bind=self.local_forward_ip,
        )

    async def _established(self, tunnel: Tunnel) -> None:
        """After each (re)connect: tell the agent the reverse forward's new port."""
        if self.pid and self.remote_dir and tunnel.forwards is not None:
            await tunnel.run(
                remote.shell(remote.SET_HUB_PORT, self.remote_dir, str(tunnel.forwards.api_port))
            )
        if self.pid and (self.persistent_home_root or self.persistent_home_sftp):
            # sshfs ended with the old connection (or with the hub, after a restart)
            try:
                await self._mount_home(tunnel)
            except HomeError as error:
                self.log.error("%s: %s", self._log_name, error)

    async def _mount_home(self, tunnel: Tunnel) -> dict[str, str]:
        """Mount the persistent home; the notebook's environment for it (see the traits)."""
        if not self.persistent_home_root and not self.persistent_home_sftp:
            return {}
        try:
            if self.home is None:
                self.home = await self._new_home()
                self.home.on_lost = self._home_lost
            await tunnel.connect()
            assert tunnel._conn is not None  # the tunnel's live connection carries the mount
            async with self._home_lock:
                path = await self.home.mount(tunnel._conn)
        except HomeError as error:
            message = f"your persistent home could not be mounted: {error}"
            if not self.persistent_home_optional:
                raise HomeError(message) from None
            self._progress(40, f"WARNING: {message}; files you save are lost when it stops")
            return {"GRIDHUB_EPHEMERAL_HOME": message}
        return {"HOME": path, "GRIDHUB_PERSISTENT_HOME": path}

    def _home_lost(self) -> None:
        """The mount ended under a running notebook: mount again (once at a time).

        When the SSH connection itself dropped, ``_established`` mounts again after the reconnect.
        """
        if self._remount is None or self._remount.done():
            self._remount = asyncio.ensure_future(self._remount_home())

    async def _remount_home(self) -> None:
        await asyncio.sleep(1)  # let a dropped SSH connection be noticed; spare the storage
        tunnel, home = self.tunnel, self.home
        if not self.pid or tunnel is None or not tunnel.connected or home is None or home.mounted:
            return
        try:
            await self._mount_home(tunnel)
        except HomeError as error:
            self.log.error("%s: %s", self._log_name, error)

    async def _new_home(self) -> PersistentHome:
        if self.persistent_home_root and self.persistent_home_sftp:
            raise HomeError(
                "the hub sets both persistent_home_root and persistent_home_sftp; an admin must"
                " choose one"
            )
        external = None
        if self.persistent_home_sftp:
            auth_state = await self.user.get_auth_state()
            external = external_sftp(self.persistent_home_sftp, self.user.name, auth_state)
        return PersistentHome(
            self.persistent_home_root,
            self.user.name,
            self._expand(self.persistent_home_mount),
            self.log,
            external=external,
        )

    async def _unmount_home(self) -> None:
        if self._remount is not None:
            self._remount.cancel()
        if self.home is not None:
            self.home.on_lost = None  # this unmount is ours
            conn = self.tunnel._conn if self.tunnel is not None else None
            await self.home.unmount(conn if conn is not None and not conn.is_closed() else None)
            self.home = None  # the next start reads the (maybe renewed) credential again

    def _connect_ip(self) -> str:
        if self.local_forward_connect_ip:
            return self.local_forward_connect_ip
        if self.local_forward_ip in ("0.0.0.0", "::", ""):  # noqa: S104
            return socket.gethostname()
        return self.local_forward_ip

    def _progress(self, percent: int, message: str) -> None:
        self._events.append({"progress": percent, "message": message})
        self.log.info("%s: %s", self._log_name, message)

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        # The launcher points these at the agent's port on the remote host, and the notebook's own
        # URL at the free port the agent finds there.
        env.pop("JUPYTERHUB_API_URL", None)
        env.pop("JUPYTERHUB_ACTIVITY_URL", None)
        env["GRIDHUB_SERVICE_PATH"] = urlparse(env.pop("JUPYTERHUB_SERVICE_URL", "/")).path or "/"
        api_path = self._api_path()
        env["GRIDHUB_API_PATH"] = api_path
        env["GRIDHUB_ACTIVITY_PATH"] = url_path_join(
            api_path, "users", getattr(self.user, "escaped_name", self.user.name), "activity"
        )
        if self.target is not None and self.target.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.target.gpu_ids)
        env.update(self.remote_environment)
        if self.remote_path:
            env["PATH"] = f"{self.remote_path}:/usr/local/bin:/usr/bin:/bin"
        return env

    def _launch_environment(self) -> dict[str, str]:
        env = self.get_env()
        env.update(
            GRIDHUB_AGENT=remote.AGENT,
            GRIDHUB_PYTHON=self.remote_python,
            GRIDHUB_GRACE=str(self.remote_grace_period),
            GRIDHUB_CHECK=str(self.remote_check_interval),
            GRIDHUB_HUB_PORT=str(self.forwards.api_port),
        )
        return env

    # -- Spawner API ------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self._events = []
        await self._cancelled_start_torn_down()
        await self.finish_unfinished()
        host = "the remote host"
        try:
            if self.target is None:
                self.target = await self._configured_target()
            host = self.target.host
            self._progress(10, f"Connecting to {host} over SSH")
            tunnel = self._tunnel()
            self.forwards = self._forwards()
            # The reverse forward first: the notebook needs the hub's API as soon as it starts.
            await tunnel.open(self.forwards)
            # The notebook's port on the host is the one remote.AGENT reserves there.
            self.ip, self.port = "127.0.0.1", 0
            self.remote_dir = posixpath.join(
                self.remote_root, f"{self.user.name}-{self.name or 'default'}"
            )
            home_env = await self._mount_home(tunnel)
            self._progress(30, f"Starting the notebook server on {host}")
            argv = [*self.remote_command, *self.get_args()]
            # From here a stop must look in remote_dir: a cancel can land before the pids do.
            self._launch_begun = True
            if "GRIDHUB_PERSISTENT_HOME" in home_env:
                argv.append(f"--notebook-dir={home_env['GRIDHUB_PERSISTENT_HOME']}")
            output = await tunnel.run(
                remote.launch_command(self.remote_dir, argv),
                stdin=remote.encode_environment({**self._launch_environment(), **home_env}),
            )
            lines = output.split()
            self.pid, self.agent_pid = int(lines[-2]), int(lines[-1])
            self._progress(50, f"Waiting for the notebook server on {host} (pid {self.pid})")
            self.forwards.notebook_port = await self._wait_for_port()
            # The local forward can point at the notebook only now that its port is known.
            await tunnel.open_local()
        except (TunnelError, RuntimeError, ValueError, IndexError) as error:
            await self._tear_down()
            raise SpawnError(f"Could not start your server on {host}: {error}") from None
        except asyncio.CancelledError:
            # JupyterHub gives a cancelled start about a second to end before it calls stop()
            # (else the user's DELETE fails), and the teardown may wait for the launcher on the
            # host: it runs on, and stop() and the next start() wait for it.
            self._cancelled_teardown = asyncio.ensure_future(self._tear_down())
            raise
        except BaseException:
            await self._tear_down()
            raise
        self._progress(90, f"Notebook server on {host} is up; connecting the hub to it")
        return self._connect_ip(), self.forwards.local_port

    async def _wait_for_port(self) -> int:
        assert self.tunnel is not None
        deadline = asyncio.get_running_loop().time() + self.start_timeout
        interval = 0.1
        while asyncio.get_running_loop().time() < deadline:
            try:
                probe = await self.tunnel.run(
                    remote.shell(remote.PORT_PROBE, self.remote_dir, str(self.pid))
                )
            except TunnelError:
                if self.tunnel.connected:
                    raise
                # The connection dropped under us: the tunnel reconnects; the probe can wait.
                left = deadline - asyncio.get_running_loop().time()
                await self.tunnel.wait_ready(max(0.0, min(left, self.reconnect_timeout)))
                continue
            port = remote.parse_port(probe)
            if port is not None:
                return port
            # Each probe is an SSH exec (sshd forks a shell): back off so that a slow start on a
            # busy host is not slowed further by the probes.
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 1.0)
        raise RuntimeError(f"the notebook server did not start within {self.start_timeout} s")

    def _stop_command(self, pid: int, agent_pid: int | None, remote_dir: str) -> str:
        return remote.shell(
            remote.STOP, str(pid), remote_dir, str(self.stop_timeout), str(agent_pid or 0)
        )

    def _remember_unfinished(self, reason: str) -> None:
        """Keep what a stop could not clean up (the state outlives this server)."""
        assert self.target is not None
        self.log.error(
            "%s: could not stop pid %s on %s (%s); kept in the state to finish later",
            self._log_name,
            self.pid or f"(the one {self.remote_dir} records)",
            self.target.host,
            reason,
        )
        self.unfinished.append(
            {
                "target": self.target.to_state(),
                "pid": self.pid or 0,
                "agent_pid": self.agent_pid or 0,
                "remote_dir": self.remote_dir,
                "server_name": self.name,
            }
        )

    async def _close_tunnel(self) -> None:
        if self.tunnel is not None:
            tunnel, self.tunnel = self.tunnel, None
            await tunnel.close()

    async def _remove_credentials(self, server_name: str) -> None:
        if self.corc_ssh_directory and not self._handed_target:
            await self._ssh_authenticator().remove(self.user.name, server_name)

    async def _cancelled_start_torn_down(self) -> None:
        """Wait for the teardown of a cancelled start (bounded by ``stop_deadline``)."""
        task, self._cancelled_teardown = self._cancelled_teardown, None
        if task is not None:
            try:
                await asyncio.shield(task)
            except Exception:
                self.log.exception("%s: tearing down the cancelled start failed", self._log_name)

    async def _tear_down(self, deadline: float | None = None) -> None:
        """Stop the remote process (within ``deadline`` s), close the tunnel, forget the server.

        What cannot be stopped in time is remembered in ``unfinished``.
        """
        stopped = True
        if (self.pid is not None or self._launch_begun) and self.tunnel is not None:
            try:
                async with asyncio.timeout(deadline or self.stop_deadline):
                    await self.tunnel.run(
                        self._stop_command(self.pid or 0, self.agent_pid, self.remote_dir),
                        timeout=self.stop_timeout + 10,
                    )
            except (TunnelError, TimeoutError) as error:
                stopped = False
                self._remember_unfinished(str(error) or "timed out")
        await self._unmount_home()
        await self._close_tunnel()
        if stopped:
            await self._remove_credentials(self.name)
        self.clear_state()

    async def finish_unfinished(self, deadline: float | None = None) -> None:
        """Stop the remote servers earlier stops could not reach (bounded; kept if unreachable)."""
        left = []
        for record in self.unfinished:
            target = SSHTarget.from_state(record["target"])
            tunnel = self._new_tunnel(target)
            tunnel.on_established = None
            try:
                async with asyncio.timeout(deadline or min(self.stop_deadline, 15)):
                    await tunnel.run(
                        self._stop_command(
                            record["pid"], record.get("agent_pid"), record["remote_dir"]
                        ),
                        timeout=self.stop_timeout + 10,
                    )
                self.log.info(
                    "%s: stopped pid %s on %s, left from an earlier stop",
                    self._log_name,
                    record["pid"],
                    target.host,
                )
                await self._remove_credentials(record.get("server_name", ""))
            except (TunnelError, TimeoutError) as error:
                self.log.warning("%s: %s is still unreachable: %s", self._log_name, target, error)
                left.append(record)
            finally:
                await tunnel.close()
        self.unfinished = left

    async def poll(self) -> int | None:
        if self.pid is None or self.target is None:
            return 0
        tunnel = self._tunnel()
        loop = asyncio.get_running_loop()
        try:
            if tunnel.forwards is None:  # after a hub restart: re-make the tunnels
                self.forwards = self._forwards(
                    local_port=self.forwards.local_port, notebook_port=self.forwards.notebook_port
                )
                await tunnel.open(self.forwards)
            elif not tunnel.connected:
                lost = tunnel.lost_since if tunnel.lost_since is not None else loop.time()
                left = self.reconnect_timeout - (loop.time() - lost)
                if left <= 0 or not await tunnel.wait_ready(left):
                    raise TunnelError(
                        f"the SSH tunnel to {self.target.host} has been down for more than"
                        f" {self.reconnect_timeout:.0f} s"
                    )
            await tunnel.run(remote.shell(remote.ALIVE, str(self.pid), self.remote_dir), timeout=15)
        except TunnelError as error:
            if "exited with" in str(error):  # the process is gone: clean up after it
                self.log.warning("%s: the notebook process has ended", self._log_name)
                await self._tear_down(deadline=15)
                return 1
            self.log.error("%s: cannot check the server: %s", self._log_name, error)
            # The hub will forget this server: remember it, so a later start stops it.
            self._remember_unfinished(str(error))
            await self._close_tunnel()
            self.clear_state()
            return 1
        return None

    async def stop(self, now: bool = False) -> None:
        await self._cancelled_start_torn_down()
        if self.pid is None or self.target is None:
            await self.finish_unfinished()
            return
        self._tunnel()
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
