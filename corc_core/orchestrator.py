"""``Orchestrator``: order a machine, wait until it is usable, and remove it again. Leak-proof.

A provider plugin subclasses ``Orchestrator`` and implements five small coroutines (create, get,
delete, list, shapes). The flow around them lives here, once:

1. a record is written to the local store before the provider is called;
2. the resource is created, tagged at birth with that record's id and the store's deployment id,
   and its id recorded (``on_ordered`` tells the caller, before anything slow is awaited);
3. we wait until the provider says it is running and we can log in with our key and run a
   command (host key verified when the provider reported one);
4. any failure, timeout or cancellation on the way tears down whatever was created. A provider
   call already running in a worker thread when the cancellation comes is waited for (its thread
   cannot be stopped), and what it made is torn down, before the cancellation is re-raised.

``reap()`` finishes what crashes left behind: resources carrying this deployment's tag whose record
is gone, deleted, or stuck in creating/deleting by a session that has ended.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from .credentials import SSHAuthenticator, SSHCredentials
from .errors import (
    ConfigError,
    CorcError,
    HostKeyMismatch,
    ResourceNotFound,
    SetupFailed,
    TearDownFailed,
    one_line,
)
from .resources import Resource, ResourceConfig, ResourceType
from .shapes import Shape
from .store import BUSY_STATES, Record, RecordStore
from .threads import run_slow

log = logging.getLogger("corc_core")

TAG = "gridhub"
TAG_RECORD = "gridhub-record"
TAG_OWNER = "gridhub-owner"
TAG_DEPLOYMENT = "gridhub-deployment"

#: ``progress(percent, message)``: percent 0..80, a message a student can read.
ProgressCallback = Callable[[int, str], None]
#: ``on_ordered(state)``: awaited (when it returns an awaitable) with ``get_state()``.
OrderedCallback = Callable[[dict[str, Any]], Awaitable[None] | None]

T = TypeVar("T")


async def _wait_out(future: asyncio.Future[Any]) -> bool:
    """Wait until ``future`` is done, through any cancellation; True if we were cancelled."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


class Orchestrator(abc.ABC):
    """Orders one resource from one provider for one owner (e.g. a hub user's spawn).

    Async and cancellable: cancelling ``setup()`` waits for an in-flight provider call, tears down
    what it made and re-raises. ``get_state()`` returns a JSON-able dict without secrets from which
    ``from_state()`` (with the options from configuration) rebuilds the orchestrator after a restart.
    """

    provider: ClassVar[str]
    resource_types: ClassVar[tuple[ResourceType, ...]] = (ResourceType.VIRTUAL_MACHINE,)
    option_names: ClassVar[tuple[str, ...]] = ()
    # Options every provider takes: check_reachable (default true) waits until we can log in.
    common_options: ClassVar[tuple[str, ...]] = ("check_reachable",)
    ready_states: ClassVar[tuple[str, ...]] = ("running",)
    gone_states: ClassVar[tuple[str, ...]] = ("terminated", "deleted")
    #: The provider may answer "not found" for a resource it has just created (EC2, OCI): such
    #: answers are retried with a bounded backoff for ``not_found_grace`` seconds.
    eventually_consistent: ClassVar[bool] = True
    not_found_grace: ClassVar[float] = 30.0
    #: Attempts (and the first pause between them, doubling) at a delete that fails.
    delete_attempts: ClassVar[int] = 3
    delete_backoff: ClassVar[float] = 0.5

    def __init__(
        self,
        options: dict[str, Any] | None = None,
        *,
        store: RecordStore,
        owner: str,
        ready_timeout: float = 900,
        poll_interval: float = 2,
        ssh: SSHAuthenticator | None = None,
    ) -> None:
        self.options = self.validate_options(options or {})
        self.store = store
        self.owner = owner
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        self.ssh = ssh
        self.record: Record | None = None
        self.resource: Resource | None = None
        self.api_calls = 0
        self._credentials: SSHCredentials | None = None
        self._progress: ProgressCallback | None = None
        self._create_task: asyncio.Future[Resource] | None = None
        self._created_ids: set[str] = set()
        self._created_at = 0.0
        self._stopping = False
        self._torn_down = False

    # -- what a provider implements ---------------------------------------------------------------

    @abc.abstractmethod
    async def create_resource(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        """Ask the provider for the resource, tagged with ``tags`` in the create call itself;
        return as soon as it has an id. Blocking calls go through ``call_blocking``; a provider
        that makes more calls after the one that creates should ``note_created(id)`` first."""

    @abc.abstractmethod
    async def get_resource_state(self, resource_id: str) -> Resource:
        """The resource as the provider sees it now; ResourceNotFound when it is gone."""

    @abc.abstractmethod
    async def delete_resource(self, resource_id: str) -> None:
        """Ask the provider to remove the resource (ResourceNotFound when already gone)."""

    @abc.abstractmethod
    async def list_resources(self, tags: dict[str, str] | None = None) -> list[Resource]:
        """Resources of this provider carrying all ``tags`` (all of ours when None)."""

    async def list_shapes(self) -> list[Shape]:
        """The shapes (sizes) the provider offers; providers without shapes return []."""
        return []

    async def fetch_host_key(self, resource: Resource) -> str | None:
        """The SSH host key the provider reports for a running resource (None: not known yet)."""
        return resource.host_key

    def host_key_required(self) -> bool:
        """True when readiness must wait for ``fetch_host_key`` (no trust on first use)."""
        return False

    # -- helpers for providers --------------------------------------------------------------------

    async def call_blocking(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking provider call on corc's slow pool.

        Once a cancellation is under way the create step starts no new call (CancelledError
        instead): the one already running is waited for, and what it made is torn down.
        """
        if self._stopping and asyncio.current_task() is self._create_task:
            raise asyncio.CancelledError
        self.api_calls += 1
        return await run_slow(func, *args, **kwargs)

    def note_created(self, resource_id: str) -> None:
        """Remember a resource the provider made, so that tear-down removes it in any case."""
        self._created_ids.add(resource_id)

    # -- options and configuration ----------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Check provider options; unknown names are an error that lists the known ones."""
        if not isinstance(options, dict):
            raise ConfigError(f"{cls.provider} options must be a mapping")
        known = (*cls.option_names, *cls.common_options)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown {cls.provider} option(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return dict(options)

    @classmethod
    def is_configured(cls, options: dict[str, Any]) -> bool:
        """True when ``options`` name an account to use (``corc reap`` skips the others)."""
        return True

    @classmethod
    def load_config_options(cls, config: dict[str, Any]) -> dict[str, Any]:
        """This provider's options from a corc YAML config (``providers.<name>``)."""
        section = (config.get("corc", config).get("providers") or {}).get(cls.provider) or {}
        known = (*cls.option_names, *cls.common_options)
        return cls.validate_options({k: v for k, v in section.items() if k in known})

    @classmethod
    def make_resource_config(
        cls,
        cpu: int = 1,
        memory_gb: float = 1.0,
        gpus: int = 0,
        image: str = "",
        resource_type: ResourceType | str | None = None,
        **extra: Any,
    ) -> ResourceConfig:
        """A validated request (of the provider's first resource type unless one is named);
        refuses resource types this provider cannot make."""
        config = ResourceConfig(
            cpu=cpu,
            memory_gb=memory_gb,
            gpus=gpus,
            image=image,
            resource_type=resource_type or cls.resource_types[0],
            **extra,
        )
        if config.resource_type not in cls.resource_types:
            kinds = ", ".join(t.value for t in cls.resource_types)
            raise ConfigError(
                f"{cls.provider} cannot make a {config.resource_type.value} (it makes: {kinds})"
            )
        return config

    # -- the flow ---------------------------------------------------------------------------------

    def _report(self, percent: int, message: str) -> None:
        if self._progress is None:
            return
        try:
            self._progress(percent, message)
        except Exception:
            log.exception("%s: the progress callback failed", self.provider)

    async def _ordered(self, on_ordered: OrderedCallback | None) -> None:
        if on_ordered is None:
            return
        result = on_ordered(self.get_state())
        if inspect.isawaitable(result):
            await result

    async def setup(
        self,
        resource_config: ResourceConfig,
        credentials: SSHCredentials | None = None,
        *,
        progress: ProgressCallback | None = None,
        on_ordered: OrderedCallback | None = None,
    ) -> Resource:
        """Create the resource and wait until we can log in; tear down on failure or cancel.

        ``progress(percent, message)`` is called at each step; ``on_ordered(state)`` is awaited
        once the record is written and again once the resource id is known (before the boot wait).
        Errors are ``SetupFailed`` with a one-line reason; a cancellation is re-raised after the
        tear-down.
        """
        self._progress = progress
        self._credentials = credentials
        self._stopping = self._torn_down = False
        what = f"{resource_config.cpu} CPU, {resource_config.memory_gb:g} GB" + (
            f", {resource_config.gpus} GPU" if resource_config.gpus else ""
        )
        self._report(
            0, f"ordering a {resource_config.resource_type.value} ({what}) from {self.provider}"
        )
        try:
            await self._create_record(resource_config)
            await self._ordered(on_ordered)
            assert self.record is not None
            tags = {
                **resource_config.tags,
                TAG: "true",
                TAG_RECORD: self.record.record_id,
                TAG_OWNER: self.owner,
                TAG_DEPLOYMENT: self.store.deployment_id,
            }
            self.resource = await self._create(resource_config, credentials, tags)
            self._report(20, f"ordered {self.resource.id}; waiting for the machine to boot")
            await self.store.update(self.record.record_id, resource_id=self.resource.id)
            await self._ordered(on_ordered)
            await asyncio.wait_for(self._wait_usable(), self.ready_timeout)
            await self.store.update(
                self.record.record_id, state="running", details=self.resource.to_dict()
            )
            if self.ssh is not None and self.resource.host_key and self.resource.addresses:
                await self.ssh.pin_host_key(
                    self.resource.addresses[0], self.resource.ssh_port, self.resource.host_key
                )
            self._report(80, f"{self.resource.id} is ready")
            return self.resource
        except BaseException as error:
            what = self.resource.id if self.resource else "the resource being ordered"
            log.warning("%s: setup of %s failed (%r); tearing down", self.provider, what, error)
            self._stopping = True
            problem = await self._tear_down_after_failure()
            left = (
                f"; tearing it down failed too ({problem}): `corc reap --yes` will retry"
                if problem
                else ""
            )
            if isinstance(error, asyncio.CancelledError):
                raise
            if isinstance(error, TimeoutError):
                raise SetupFailed(
                    f"{self.provider}: the resource was not usable within {self.ready_timeout:g} s"
                    + (left or "; it has been removed")
                ) from None
            if isinstance(error, CorcError):
                raise SetupFailed(
                    f"{self.provider}: {error}" + (left or "; nothing was left behind")
                ) from error
            if isinstance(error, Exception):
                raise SetupFailed(
                    f"{self.provider}: unexpected {type(error).__name__}: {error}"
                    + (left or "; nothing was left behind")
                ) from error
            raise

    async def _create_record(self, resource_config: ResourceConfig) -> None:
        """Write the record; a cancellation while the write runs waits for it (so it is known)."""
        write = asyncio.ensure_future(
            self.store.create(self.provider, self.owner, {"config": resource_config.to_dict()})
        )
        cancelled = await _wait_out(write)
        self.record = write.result()
        if cancelled:
            raise asyncio.CancelledError

    async def _create(
        self, config: ResourceConfig, credentials: SSHCredentials | None, tags: dict[str, str]
    ) -> Resource:
        """The provider's create call, in a task of its own that a cancellation never interrupts:
        it is told to stop before its next call, waited for, and what it made is kept for the
        tear-down."""
        self._created_at = time.monotonic()
        self._create_task = task = asyncio.ensure_future(
            self.create_resource(config, credentials, tags)
        )
        if await _wait_out(task):
            self._stopping = True
            self._take_created(task)
            raise asyncio.CancelledError
        resource = task.result()
        self._created_ids.add(resource.id)
        return resource

    def _take_created(self, task: asyncio.Future[Resource]) -> None:
        if task.done() and not task.cancelled() and task.exception() is None:
            self.resource = task.result()
            self._created_ids.add(self.resource.id)

    async def _read_state(self, resource_id: str) -> Resource:
        """The provider's view; "not found" for a just-created id is retried (bounded backoff)."""
        delay, deadline = 0.1, self._created_at + self.not_found_grace
        while True:
            try:
                return await self.get_resource_state(resource_id)
            except ResourceNotFound:
                if not self.eventually_consistent or time.monotonic() + delay > deadline:
                    raise
                log.info("%s: %s not visible yet; asking again", self.provider, resource_id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _wait_usable(self) -> None:
        assert self.resource is not None
        booted = False
        while True:
            if self.resource.state not in self.ready_states:
                self._refresh(await self._read_state(self.resource.id))
            if self.resource.state in self.gone_states:
                raise CorcError(f"the resource {self.resource.id} ended while starting")
            if self.resource.state in self.ready_states:
                if not booted:
                    booted = True
                    where = self.endpoint() or "its address"
                    self._report(50, f"the machine is running; waiting for SSH at {where}")
                if await self._ready_to_log_in():
                    return
                self.resource.state = "starting"  # read the provider's view again
            await asyncio.sleep(self.poll_interval)

    async def _ready_to_log_in(self) -> bool:
        assert self.resource is not None
        if self.resource.host_key is None:
            try:
                self.resource.host_key = await self.fetch_host_key(self.resource)
            except CorcError as error:
                if self.host_key_required():
                    raise
                log.info("%s: no host key for %s (%s)", self.provider, self.resource.id, error)
        if not self.options.get("check_reachable", True):
            return True
        if self.resource.host_key is None and self.host_key_required():
            return False
        return await self.is_reachable(credentials=self._credentials)

    async def _tear_down_after_failure(self) -> str:
        """Tear down through any further cancellation; '' or the reason it failed."""
        if self._create_task is not None:
            await _wait_out(self._create_task)
            self._take_created(self._create_task)
        task = asyncio.ensure_future(self.tear_down())
        await _wait_out(task)
        if task.cancelled():
            return "cancelled"
        error = task.exception()
        if error is None:
            return ""
        log.error("%s: tear-down after a failed setup failed: %s", self.provider, error)
        return one_line(error)

    async def poll(self) -> Resource:
        """Refresh the resource from the provider."""
        if self.resource is None:
            raise ResourceNotFound("nothing has been set up")
        self._refresh(await self.get_resource_state(self.resource.id))
        return self.resource

    def _refresh(self, fresh: Resource) -> None:
        """Take the provider's view, keeping what only setup knew (shape, GPUs, host key)."""
        if self.resource is not None:
            fresh.details = {**self.resource.details, **fresh.details}
            fresh.host_key = fresh.host_key or self.resource.host_key
            fresh.gpu_ids = fresh.gpu_ids or self.resource.gpu_ids
        self.resource = fresh

    async def is_ready(self) -> bool:
        try:
            return (await self.poll()).state in self.ready_states
        except ResourceNotFound:
            return False

    async def is_reachable(
        self, timeout: float = 10, credentials: SSHCredentials | None = None
    ) -> bool:
        """True when we can log in with ``credentials`` and run a command (or, without them,
        complete an SSH handshake), the host key being the one the provider reported if any.

        A different host key raises HostKeyMismatch: the address is not the machine we ordered.
        """
        if not self.options.get("check_reachable", True):
            return True
        if self.resource is None or not self.resource.addresses:
            return False
        import asyncssh

        host, port, expected = self.resource.addresses[0], self.resource.ssh_port, None
        if self.resource.host_key:
            try:
                expected = asyncssh.import_public_key(self.resource.host_key)
            except (asyncssh.KeyImportError, ValueError):
                raise HostKeyMismatch(
                    f"the host key reported for {self.resource.id} is not an SSH public key"
                ) from None
        try:
            if credentials is None:
                key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port), timeout)
                if expected is not None and (
                    key is None or key.export_public_key() != expected.export_public_key()
                ):
                    raise HostKeyMismatch(_mismatch(host, port))
                return key is not None
            # Before any configuration only the image's login user exists (ec2-user, opc, root).
            username = self.resource.username or credentials.username
            client_key: Any = credentials.key_file
            if credentials.certificate_file and username == credentials.username:
                client_key = (credentials.key_file, credentials.certificate_file)
            async with asyncssh.connect(
                host,
                port=port,
                username=username,
                client_keys=[client_key],
                known_hosts=([expected], [], []) if expected is not None else None,
                agent_path=None,
                config=[],
                connect_timeout=timeout,
            ) as connection:
                result = await asyncio.wait_for(connection.run("true"), timeout)
                return result.exit_status == 0
        except asyncssh.HostKeyNotVerifiable:
            raise HostKeyMismatch(_mismatch(host, port)) from None
        except (OSError, asyncssh.Error, TimeoutError):
            return False

    def get_resource(self) -> Resource | None:
        return self.resource

    def resource_id(self) -> str | None:
        return self.resource.id if self.resource else None

    def endpoints(self) -> list[str]:
        return list(self.resource.addresses) if self.resource else []

    def endpoint(self) -> str | None:
        addresses = self.endpoints()
        return addresses[0] if addresses else None

    # -- removal ----------------------------------------------------------------------------------

    async def tear_down(self) -> None:
        """Remove the resource (and anything tagged with our record); idempotent.

        A create still in flight is waited for first. A delete that keeps failing raises
        TearDownFailed and leaves the record in ``deleting`` for ``corc reap`` to finish.
        """
        self._stopping = True
        if self._create_task is not None and not self._create_task.done():
            await asyncio.wait([self._create_task])
            self._take_created(self._create_task)
        if self._torn_down:
            return
        ids = set(self._created_ids)
        if self.resource is not None:
            ids.add(self.resource.id)
        if self.record is not None:
            await self.store.update(self.record.record_id, state="deleting")
        try:
            if self.record is not None and not ids:
                # The create call may have succeeded at the provider without telling us the id.
                try:
                    found = await self.list_resources({TAG_RECORD: self.record.record_id})
                except CorcError as error:
                    raise TearDownFailed(
                        f"{self.provider}: could not look for what record"
                        f" {self.record.record_id} made ({error}); `corc reap --yes` will retry"
                    ) from None
                ids |= {r.id for r in found}
            for resource_id in sorted(ids):
                await self._delete(resource_id, recent=True)
        except BaseException:  # a delete that failed for good, or a cancelled tear-down
            if self.record is not None:
                # Nobody is working on it any more: reap may take it over at once.
                await self.store.update(self.record.record_id, state="deleting", session="")
            raise
        if self.record is not None:
            await self.store.update(self.record.record_id, state="deleted")
        if self.ssh is not None and self.resource is not None and self.resource.addresses:
            await self.ssh.forget_host(self.resource.addresses[0], self.resource.ssh_port)
        self._torn_down = True

    async def _delete(
        self, resource_id: str, *, recent: bool = False, attempts: int | None = None
    ) -> None:
        """Delete with retries (doubling pauses); gone is fine, except that a just-created id
        the provider does not show yet is asked about again."""
        attempts = attempts or self.delete_attempts
        delay = self.delete_backoff
        deadline = self._created_at + self.not_found_grace
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.delete_resource(resource_id)
                return
            except ResourceNotFound:
                if not (recent and self.eventually_consistent and time.monotonic() < deadline):
                    return
                delay = min(delay, 1.0)
            except CorcError as error:
                if attempt >= attempts:
                    raise TearDownFailed(
                        f"{self.provider}: could not delete {resource_id} after {attempt}"
                        f" attempts ({error}); `corc reap --yes` will retry"
                    ) from None
                log.warning(
                    "%s: delete of %s failed (%s); retrying", self.provider, resource_id, error
                )
            except Exception as error:
                raise TearDownFailed(
                    f"{self.provider}: could not delete {resource_id} (unexpected"
                    f" {type(error).__name__}: {error}); `corc reap --yes` will retry"
                ) from None
            await asyncio.sleep(delay)
            delay *= 2

    async def reap(self, *, delete: bool = False, attempts: int = 5) -> list[dict[str, Any]]:
        """Find (and with ``delete`` remove) what crashes and failed deletes left behind.

        An orphan is a resource tagged with this store's deployment id whose record is missing,
        deleted, stuck in creating/deleting by a session that has ended, or points at another
        resource. Resources of other deployments are never touched. Records abandoned with
        nothing left on the provider are closed. Returns one entry per orphan:
        ``{"provider", "id", "deleted"}`` (and ``"error"`` when a delete kept failing).
        """
        deployment = self.store.deployment_id
        # Records abandoned before the listing are closed at the end if it shows nothing of
        # theirs (a dead session makes nothing more). Then the cloud, then the records it names:
        # a resource in the listing had its record written before it existed, so the read after
        # knows it (the other way round, a spawn between the two reads would look orphaned).
        # One listing and indexed reads of just those records: the cost follows the resources,
        # not the size of the store's history.
        abandoned = []
        if delete:
            busy = await self.store.find(self.provider, states=BUSY_STATES)
            abandoned = [record for record in busy if record.abandoned()]
        found = await self.list_resources({TAG_DEPLOYMENT: deployment})
        named = {
            r.tags.get(TAG_RECORD, "") for r in found if r.tags.get(TAG_DEPLOYMENT) == deployment
        }
        records = {r.record_id: r for r in await self.store.find(self.provider, named)}
        orphans: list[dict[str, Any]] = []
        handled: set[str] = set()
        for resource in found:
            tags = resource.tags
            if tags.get(TAG_DEPLOYMENT) != deployment:
                continue  # a provider that cannot filter by tag: not ours, never touched
            record = records.get(tags.get(TAG_RECORD, ""))
            if (
                record is not None
                and record.state != "deleted"
                and not record.abandoned()
                and record.resource_id in (None, resource.id)
            ):
                continue
            entry: dict[str, Any] = {"provider": self.provider, "id": resource.id, "deleted": False}
            orphans.append(entry)
            if record is not None:
                handled.add(record.record_id)
            if not delete:
                continue
            try:
                await self._delete(resource.id, attempts=attempts)
            except TearDownFailed as error:
                entry["error"] = str(error)
                continue
            entry["deleted"] = True
            if self.ssh is not None and resource.addresses:
                await self.ssh.forget_host(resource.addresses[0], resource.ssh_port)
            if record is not None and record.resource_id in (None, resource.id):
                await self.store.update(record.record_id, state="deleted")
                await self.store.release(record.record_id)
        for record in abandoned:
            if record.record_id not in handled:
                await self.store.update(record.record_id, state="deleted")
                await self.store.release(record.record_id)
        return orphans

    # -- state ------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """What a parent persists: provider, record id, resource. No options, no credentials."""
        return {
            "provider": self.provider,
            "record_id": self.record.record_id if self.record else None,
            "resource": self.resource.to_dict() if self.resource else None,
        }

    @classmethod
    async def from_state(
        cls,
        state: dict[str, Any],
        *,
        store: RecordStore,
        owner: str,
        options: dict[str, Any] | None = None,
        ssh: SSHAuthenticator | None = None,
    ) -> Orchestrator:
        """Rebuild from ``get_state()``; ``options`` come from configuration, not from state."""
        orchestrator = cls(options or {}, store=store, owner=owner, ssh=ssh)
        if state.get("record_id"):
            orchestrator.record = await store.get(state["record_id"])
        if state.get("resource"):
            orchestrator.resource = Resource.from_dict(state["resource"])
            orchestrator._created_ids.add(orchestrator.resource.id)
        return orchestrator


def _mismatch(host: str, port: int) -> str:
    return (
        f"{host}:{port} presented a different SSH host key than the provider reported;"
        " refusing to trust it (the address may belong to another machine)"
    )


__all__ = [
    "TAG",
    "TAG_DEPLOYMENT",
    "TAG_OWNER",
    "TAG_RECORD",
    "Orchestrator",
    "OrderedCallback",
    "ProgressCallback",
]
