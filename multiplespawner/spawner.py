"""``MultipleSpawner``: a student picks provider, resource type, image and hardware on the spawn
page; corc orders the machine if needed, and a sub-spawner starts JupyterLab there."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

from jupyterhub.spawner import Spawner
from jupyterhub.utils import maybe_future
from sqlalchemy import inspect as orm_inspect
from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Integer, List, Unicode, default, observe

from . import access, metrics
from .child import build_child, choice_kwargs, configured, push_later_attributes, target_class
from .config import (
    DEFAULT_PROVISION_TIMEOUT,
    RESOURCE_TYPE_NAMES,
    Catalog,
    Offer,
    Sources,
    cache_for,
    import_class,
)
from .errors import ConfigError, OptionsError, SpawnFailed
from .expiry import SessionExpiry
from .form import render_form
from .homes import PersistentHomes
from .options import Choice, Space, build_space, from_form, json_schema, validate
from .orchestration import CorcSettings, Provisioning, record_store
from .placeholders import RESOURCE_PLACEHOLDERS, fill, uses_resource

T = TypeVar("T")

STATE_VERSION = 1
#: Seconds the sub-spawner gets to start, and the hub to see the server answer, by resource type.
DEFAULT_TIMEOUTS = {
    "virtual_machine": {"start": 300, "http": 120},
    "container": {"start": 300, "http": 120},
    "bare_metal": {"start": 120, "http": 120},
}


async def _render_options_form(spawner: MultipleSpawner) -> str:
    return await spawner.render_options_form()


def _options_applied_in_pre_spawn_hook(spawner: MultipleSpawner, user_options: dict) -> None:
    """The hub's apply_user_options step: ours are validated and applied in run_pre_spawn_hook."""


class MultipleSpawner(SessionExpiry, PersistentHomes):
    """Offers every configured (provider, resource type, image) with CPU, memory, GPUs and
    session minutes, orders the resource through corc when it needs one, and runs the template's
    sub-spawner on it. The sub-spawner is owned fully: built before ``start()`` so the hub's hooks,
    certificates and progress reach it, and rebuilt from the saved state after a hub restart."""

    templates = List(
        config=True,
        help="""Spawner templates, as in the thesis's listing 12: a list of
        ``{"name", "resource_type", "providers": [...], "spawner": {"class", "kwargs"},
        "configurer": {"class", "options"}, "authenticator": {"class", "kwargs"}}``. String values
        may hold per-spawn placeholders such as ``{JUPYTERHUB_USER}`` or ``{endpoint}``. Entries
        from ``template_file`` are added after these.""",
    )
    template_file = Unicode(
        "",
        config=True,
        help="""JSON (``.json``) or YAML file with more templates. Edits take effect at the next
        form or spawn, without restarting the hub; an invalid edit is logged and ignored.""",
    )
    deployments = Dict(
        config=True,
        help="""Deployments, as in the thesis's listing 11: ``{resource_type: [{"name",
        "provider", "image"}]}``; resource types are virtual_machine, container, bare_metal. A
        deployment without a provider is offered on every provider of its type's templates.""",
    )
    deployment_file = Unicode(
        "",
        config=True,
        help="JSON or YAML file with more deployments (reloaded like ``template_file``).",
    )
    providers = Dict(
        config=True,
        help="""Per-provider settings: ``{name: {"display_name", "corc": corc provider name or
        null (run in place, nothing ordered), "options": corc provider options (default: from
        corc's config file), "provision_timeout": seconds, "limits": {"cpu", "memory_gb",
        "gpus", "minutes"}, "ssh_user"}}``. Providers named by templates but not listed here
        use corc's provider of the same name, if there is one.""",
    )
    access_rules = Dict(
        config=True,
        help="""JupyterHub group -> ``{"deployments": [names] or "*", "limits": {"cpu",
        "memory_gb", "gpus", "minutes"}}``. Without rules everyone may use everything; with rules a
        user sees only what one of their groups allows. Admins always see everything.""",
    )
    course_overrides = AnyTrait(
        None,
        allow_none=True,
        config=True,
        help="""Optional callable ``(spawner) -> {course: {"images": [...], "limits": {...}}}``
        (may be async): what each course's teachers chose. It can only narrow ``access_rules``.""",
    )
    limits = Dict(
        {"cpu": 8, "memory_gb": 64, "gpus": 8, "minutes": 1440},
        config=True,
        help="The hub's maximum CPU cores, memory (GB), GPUs and session minutes for anyone.",
    )
    default_minutes = Integer(
        60, config=True, help="Session length preselected on the form (minutes)."
    )
    timeouts = Dict(
        config=True,
        help="""Per resource type ``{"provision", "start", "http"}`` seconds: how long ordering a
        machine, starting the sub-spawner and the server's first answer may take. Defaults:
        virtual_machine 900/300/120, container 300/300/120, bare_metal 120/120/120. The
        sub-spawner's own ``start_timeout``/``http_timeout`` (in ``c.Spawner``, ``c.<Class>`` or
        the template's kwargs) win over these. The hub waits ``provision + start`` in all.""",
    )
    corc_config_file = Unicode(
        "",
        config=True,
        help="corc's YAML config (records, SSH keys, provider options); default ~/.corc/config.",
    )
    patience_after = Float(
        20,
        config=True,
        help="Seconds without news after which the progress page says the step is still running.",
    )

    @default("options_form")
    def _options_form_default(self) -> Any:
        return _render_options_form

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Any:
        return _options_applied_in_pre_spawn_hook

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.child: Spawner | None = None
        self.choice: Choice | None = None
        self.offer: Offer | None = None
        self.provisioning: Provisioning | None = None
        self._resource_state: dict[str, Any] | None = None
        self._resource_values: dict[str, Any] = {}
        self._saved: dict[str, Any] = {}
        self._auth_state: Any = None
        self._starting = False
        self._events: list[dict[str, Any]] = []
        self._news = asyncio.Event()
        self._child_starting = False
        self._cancelled_teardown: asyncio.Future[None] | None = None
        self._step: asyncio.Future[Any] | None = None
        metrics.track(self)

    # -- configuration and options ----------------------------------------------------------------

    def _sources(self) -> Sources:
        return Sources.of(
            list(self.templates),
            dict(self.deployments),
            dict(self.providers),
            self.template_file,
            self.deployment_file,
        )

    def check_config(self) -> Catalog:
        """Load and check everything now (hub start-up); ConfigError names the bad key."""
        access.check_rules(self.access_rules)
        for kind, table in self.timeouts.items():
            if kind not in DEFAULT_PROVISION_TIMEOUT or not isinstance(table, dict):
                raise ConfigError(f"timeouts.{kind}: expected a resource type with a mapping")
            for key, value in table.items():
                if key not in ("provision", "start", "http"):
                    raise ConfigError(f"timeouts.{kind}.{key}: unknown (provision, start, http)")
                if not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(f"timeouts.{kind}.{key}: expected seconds > 0")
        for key in self.limits:
            if key not in access.LIMIT_KEYS:
                raise ConfigError(f"limits.{key}: unknown; known: {', '.join(access.LIMIT_KEYS)}")
        return cache_for(self._sources()).load_now()

    async def catalog(self) -> Catalog:
        """The current configuration (reloaded when its files changed)."""
        return await cache_for(self._sources()).get(self.log)

    def _ceiling(self) -> access.Limits:
        values = {"cpu": 8, "memory_gb": 64, "gpus": 8, "minutes": 1440, **self.limits}
        return access.Limits(
            int(values["cpu"]),
            float(values["memory_gb"]),
            int(values["gpus"]),
            int(values["minutes"]),
        )

    async def _overrides(self) -> dict[str, Any]:
        if self.course_overrides is None:
            return {}
        return await maybe_future(self.course_overrides(self)) or {}

    async def options_space(self) -> Space:
        """What this user may choose (the one schema behind form, REST and JSON schema)."""
        catalog = await self.catalog()
        rules = access.check_rules(self.access_rules)
        groups = [group.name for group in getattr(self.user, "groups", [])]
        allowed = access.allowed_deployments(
            groups=groups,
            is_admin=bool(getattr(self.user, "admin", False)),
            deployments=[d.name for d in catalog.deployments],
            ceiling=self._ceiling(),
            rules=rules,
            overrides=await self._overrides(),
        )
        inventory = await self._inventory(catalog)
        return build_space(catalog, allowed, self._ceiling(), self.default_minutes, inventory)

    async def _inventory(self, catalog: Catalog) -> dict[str, dict[str, float]]:
        """Per provider, the most its corc inventory holds for one request (the local pool)."""
        if all(provider.corc is None for provider in catalog.providers.values()):
            return {}
        try:
            settings = await CorcSettings.load(self.corc_config_file)
        except Exception as error:  # spawns through corc fail with the reason; the form stays
            self.log.warning("%s: no provider inventory: %s", self._log_name, error)
            return {}

        def read() -> dict[str, dict[str, float]]:
            found = {}
            for name, provider in catalog.providers.items():
                try:
                    found[name] = settings.inventory_limits(provider)
                # A provider corc cannot load (options, SDK) fails its spawns with the reason;
                # the form still shows the others.
                except Exception as error:
                    self.log.warning("%s: no inventory for %s: %s", self._log_name, name, error)
            return found

        return await asyncio.to_thread(read)

    async def options_schema(self) -> dict[str, Any]:
        """The JSON schema of the ``user_options`` this user may send."""
        space = await self.options_space()
        space.default()  # nothing open to this user: the 403 that says why
        return json_schema(space)

    async def render_options_form(self) -> str:
        space = await self.options_space()
        if not space.offers:
            space.default()  # raises the 403 that says why
        try:
            chosen = validate(space, self.orm_spawner.user_options if self.orm_spawner else {})
        except OptionsError:
            chosen = space.default()  # saved options that no longer fit: preselect defaults
        return render_form(space, chosen)

    async def run_options_from_form(self, form_data: dict[str, list[str]]) -> dict[str, Any]:
        return validate(await self.options_space(), from_form(form_data)).to_user_options()

    async def options_from_query(self, query_data: dict[str, list[str]]) -> dict[str, Any]:
        return await self.run_options_from_form(query_data)

    def _fresh_request(self) -> bool:
        """True when this spawn's options were just sent (not the saved ones from the database)."""
        request = getattr(self.handler, "request", None)
        if request is None or request.method != "POST" or not request.body:
            return False
        if request.headers.get("Content-Type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            return True  # the spawn form
        try:
            body = json.loads(request.body)
        except ValueError:
            return False
        # As JupyterHub's UserServerAPIHandler reads it: no options means "the saved ones".
        if not body or not isinstance(body, dict):
            return False
        if "user_options" in body:
            return body["user_options"] is not None
        return "display_name" not in body

    async def _choose(self) -> Choice:
        space = await self.options_space()
        try:
            return validate(space, self.user_options)
        except OptionsError as error:
            if self._fresh_request() or error.status_code != 400:
                raise
            self.log.warning(
                "%s: saved options %s no longer fit (%s); starting with the defaults",
                self._log_name,
                self.user_options,
                error.message,
            )
            return space.default()

    # -- the child --------------------------------------------------------------------------------

    def _timeout(self, resource_type: str, kind: str) -> float:
        table = {
            **DEFAULT_TIMEOUTS.get(resource_type, {}),
            **(self.timeouts.get(resource_type) or {}),
        }
        if kind == "provision":
            return float(table.get("provision", DEFAULT_PROVISION_TIMEOUT[resource_type]))
        return float(table[kind])

    def _spawn_values(self) -> dict[str, Any]:
        assert self.choice is not None and self.offer is not None
        values: dict[str, Any] = {name: "" for name in RESOURCE_PLACEHOLDERS}
        values.update(
            JUPYTERHUB_USER=self.user.name,
            username=self.user.name,
            JUPYTERHUB_SERVER_NAME=self.name,
            image=self.offer.deployment.image,
            **self.choice.to_user_options(),
        )
        values.update(self._resource_values)
        return values

    def _make_child(self, resource_known: bool) -> Spawner:
        assert self.offer is not None and self.choice is not None
        template = self.offer.template
        cls = import_class(template.spawner.path, f"templates.{template.name}.spawner.class")
        values = self._spawn_values()
        kwargs = {
            key: fill(value, values)
            for key, value in template.spawner.kwargs.items()
            if resource_known or not uses_resource(value)
        }
        kind = self.choice.resource_type
        for trait, name in (("start_timeout", "start"), ("http_timeout", "http")):
            if trait not in kwargs and not configured(self.config, cls, trait):
                kwargs[trait] = int(self._timeout(kind, name))
        kwargs.update(choice_kwargs(cls, self.choice, self.offer.deployment))
        child = build_child(self, cls, kwargs)
        self.persistent_home_apply(child)
        return child

    def _apply_resource_kwargs(self) -> None:
        """Settings that need the resource (``{endpoint}``, ...), GPUs and the SSH target."""
        assert self.child is not None and self.offer is not None
        values = self._spawn_values()
        for key, value in self.offer.template.spawner.kwargs.items():
            if uses_resource(value):
                setattr(self.child, key, fill(value, values))
        if self.provisioning is not None and self.provisioning.resource() is not None:
            gpu_ids = self.provisioning.gpu_ids()
            if self.choice and (self.choice.gpus or "gpus" in self.provisioning.resource().details):
                env = dict(self.child.environment)
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
                self.child.environment = env
            target = target_class(self.child)
            if target is not None and self.provisioning.credentials is not None:
                self.child.target = target(**self._target_fields())

    def _target_fields(self) -> dict[str, Any]:
        assert self.provisioning is not None
        resource = self.provisioning.resource()
        credentials = self.provisioning.credentials
        assert resource is not None and credentials is not None
        return {
            "host": resource.addresses[0],
            "port": resource.ssh_port,
            "username": resource.username or credentials.username,
            "key_file": credentials.key_file,
            "certificate_file": credentials.certificate_file,
            "host_key": self.provisioning.host_key,
        }

    async def run_auth_state_hook(self, auth_state: Any) -> None:
        self._auth_state = auth_state  # kept in memory only until the child has run its hook
        await super().run_auth_state_hook(auth_state)

    async def run_pre_spawn_hook(self) -> None:
        """Validate the options and build the child (the hub calls this after setting
        ``user_options`` and before certificates and ``start()``), then run the hooks on it."""
        self.choice = await self._choose()
        catalog = await self.catalog()
        self.offer = catalog.offer(
            self.choice.provider, self.choice.resource_type, self.choice.deployment
        )
        assert self.offer is not None
        self.user_options = self.choice.to_user_options()
        self.child = self._make_child(resource_known=False)
        self.will_resume = self.child.will_resume
        budget = (
            self._timeout(self.choice.resource_type, "provision") if self.offer.provider.corc else 0
        )
        self.start_timeout = int(budget + self.child.start_timeout)
        self.http_timeout = int(self.child.http_timeout)
        self.log.info(
            "%s: %s on %s (%s) with %d CPU, %g GB, %d GPU for %d min; timeouts %ds + %ds",
            self._log_name,
            self.offer.deployment.label,
            self.offer.provider.display_name,
            self.choice.resource_type,
            self.choice.cpu,
            self.choice.memory_gb,
            self.choice.gpus,
            self.choice.minutes,
            self.start_timeout,
            self.http_timeout,
        )
        await self.child.apply_group_overrides()
        auth_state, self._auth_state = self._auth_state, None
        if auth_state is not None:
            await self.child.run_auth_state_hook(auth_state)
        if self.pre_spawn_hook and self.pre_spawn_hook is not self.child.pre_spawn_hook:
            await maybe_future(self.pre_spawn_hook(self))
        await maybe_future(self.child.run_pre_spawn_hook())

    async def create_certs(self) -> dict[str, str]:
        if self.child is not None:
            return await maybe_future(self.child.create_certs())
        return await super().create_certs()

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        if self.child is not None:
            return await maybe_future(self.child.move_certs(paths))
        return await super().move_certs(paths)

    @observe("port")
    def _port_changed(self, change: dict[str, Any]) -> None:
        # batchspawner's API posts the port to the spawner that owns the token: us.
        if getattr(self, "child", None) is not None:
            self.child.port = change["new"]

    # -- progress ---------------------------------------------------------------------------------

    def _progress(self, percent: int, message: str) -> None:
        self._events.append({"progress": percent, "message": message})
        self._news.set()
        self.log.info("%s: %s", self._log_name, message)

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Our steps (ordering, waiting, configuring, starting), then the child's own events."""
        sent = 0
        quiet_since = time.monotonic()
        patience_sent = False
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
                quiet_since, patience_sent = time.monotonic(), False
            if self._child_starting or self._spawn_future is None or self._spawn_future.done():
                break
            self._news.clear()
            try:
                await asyncio.wait_for(self._news.wait(), timeout=1)
            except TimeoutError:
                pass
            if not patience_sent and time.monotonic() - quiet_since > self.patience_after:
                last = self._events[-1]["message"] if self._events else "Preparing"
                yield {
                    "message": f"Still working on it: {last.rstrip('.')}. A new machine can take"
                    " a few minutes; you can leave this page open."
                }
                patience_sent = True
        if self.child is not None and self._child_starting:
            async with aclosing(self.child.progress()) as events:
                async for event in events:
                    if "progress" in event:
                        event = {**event, "progress": 75 + int(event["progress"]) // 4}
                    yield event

    # -- start, poll, stop ------------------------------------------------------------------------

    async def _persist(self, resource_state: dict[str, Any]) -> None:
        """Record the resource in the hub's database now: the hub saves state only after
        ``start()`` returns, and a restart in between must not orphan the machine."""
        self._resource_state = resource_state
        if self.orm_spawner is not None:
            self.orm_spawner.state = self.get_state()
            session = orm_inspect(self.orm_spawner).session
            if session is not None:
                session.commit()

    async def _provisioning(self) -> Provisioning | None:
        """The corc side of this spawn (made, or rebuilt from saved state); None if not needed."""
        if self.provisioning is not None:
            return self.provisioning
        if self.offer is None or self.offer.provider.corc is None:
            return None
        settings = await CorcSettings.load(self.corc_config_file)
        store = await record_store(settings.store_path)
        self.provisioning = Provisioning(
            self.offer.provider,
            settings,
            store,
            user=self.user.name,
            server_name=self.name,
            log=self.log,
            authenticator=self.offer.template.authenticator,
            ready_timeout=self._timeout(self.offer.deployment.resource_type, "provision"),
        )
        if self._resource_state:
            await self.provisioning.restore(self._resource_state)
        return self.provisioning

    async def start(self) -> Any:
        await self._cancelled_start_undone()
        if self.child is None or self.choice is None or self.offer is None:
            raise SpawnFailed("The server options were not prepared; please start it again.")
        self._events, self._child_starting, self._starting = [], False, True
        self._step = None
        offer, choice = self.offer, self.choice
        where = offer.provider.display_name
        timer = metrics.SpawnTimer(choice.provider, choice.resource_type)
        try:
            provisioning = await self._provisioning()
            if provisioning is not None:
                timer.step = "order"
                resource = await self._detached(
                    provisioning.order(
                        cpu=choice.cpu,
                        memory_gb=choice.memory_gb,
                        gpus=choice.gpus,
                        image=offer.deployment.image,
                        resource_type=choice.resource_type,
                        progress=self._progress,
                        on_ordered=self._persist,
                        values=self._spawn_values(),
                    )
                )
                self._resource_values = self._values_of(provisioning)
                where = resource.addresses[0] if resource.addresses else where
                if offer.template.configurer is not None:
                    timer.step = "configure"
                    self._progress(65, f"Configuring {where}")
                    await self._detached(
                        provisioning.configure(offer.template.configurer, self._spawn_values())
                    )
                self._apply_resource_kwargs()
                await self._persist(provisioning.state())
            timer.step = "start"
            self._progress(75, f"Starting the notebook server on {where}")
            push_later_attributes(self, self.child)
            self._child_starting = True
            self._news.set()
            self.session_expiry_prepare(
                self.child, choice.minutes, notice=choice.resource_type != "container"
            )
            await self.persistent_home_prepare(self.child)
            url = await self.child.start()
            await self.session_expiry_start()
            timer.succeeded()
            return url
        except asyncio.CancelledError as error:
            timer.failed()
            # JupyterHub waits about 1 s for a cancelled start, then stops the server and answers
            # the user's DELETE with 500 if the start still runs. Tearing down takes longer (the
            # child's notebook, then the resource): it goes on after the cancel, and stop(),
            # poll() and the next start() wait for it.
            self._cancelled_teardown = asyncio.ensure_future(self._undo_start(error))
            raise
        except BaseException as error:
            timer.failed()
            await asyncio.shield(self._undo_start(error))
            if isinstance(error, Exception) and not hasattr(error, "jupyterhub_message"):
                raise SpawnFailed(
                    f"Could not start your server on {where}: {str(error) or type(error).__name__}"
                ) from error
            raise
        finally:
            self._starting = False

    def _values_of(self, provisioning: Provisioning) -> dict[str, Any]:
        resource = provisioning.resource()
        credentials = provisioning.credentials
        if resource is None:
            return {}
        address = resource.addresses[0] if resource.addresses else ""
        return {
            "endpoint": address,
            "server_public_ip": address,
            "ssh_port": resource.ssh_port,
            "ssh_user": resource.username or (credentials.username if credentials else ""),
            "server_host_key": provisioning.host_key or "",
            "auth_key": credentials.public_key if credentials else "",
            "ssh_key_file": credentials.key_file if credentials else "",
            "ssh_certificate_file": (credentials.certificate_file or "") if credentials else "",
            "gpu_ids": ",".join(provisioning.gpu_ids()),
            "resource_id": resource.id,
        }

    async def _detached(self, step: Awaitable[T]) -> T:
        """Await one step of the start in a task of its own. A cancelled start returns at once:
        the step is cancelled, and ``_undo_start`` waits for it to unwind (a cancelled corc order
        waits for the provider's call in flight, then removes what it made)."""
        task = self._step = asyncio.ensure_future(step)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _undo_start(self, error: BaseException) -> None:
        """Stop the child if its start had begun, then remove the resource; never raises."""
        step, self._step = self._step, None
        if step is not None:
            await asyncio.wait([step])
            problem = None if step.cancelled() else step.exception()
            if problem is not None and problem is not error:
                self.log.warning("%s: the cancelled start's last step: %r", self._log_name, problem)
        if self._child_starting and self.child is not None:
            # A cancelled child may still be stopping its notebook on the resource (as
            # CloudSSHSpawner does after a cancel): the resource goes only once it is done.
            try:
                await self.child.stop()
            except Exception:
                self.log.exception(
                    "%s: could not stop the notebook after its start", self._log_name
                )
        await self._release(f"start failed: {error!r}")

    async def _cancelled_start_undone(self) -> None:
        """Wait for the teardown of a cancelled start, if one still runs."""
        task, self._cancelled_teardown = self._cancelled_teardown, None
        if task is not None:
            await asyncio.shield(task)

    async def _release(self, why: str) -> None:
        """Tear the resource down (if any); safe to call twice, and never raises."""
        try:
            provisioning = await self._provisioning() if self._resource_state else self.provisioning
            if provisioning is not None:
                self.log.info("%s: removing the resource (%s)", self._log_name, why)
                await provisioning.tear_down()
        except Exception:
            self.log.exception("%s: could not remove the resource", self._log_name)
            return
        self.provisioning = None
        self._resource_state = None
        self._resource_values = {}

    async def poll(self) -> int | None:
        if self._starting:
            return None
        await self._cancelled_start_undone()
        if self.child is None:
            if self._resource_state:
                await self._release("its spawn never finished")
            return 0
        status = await self.child.poll()
        if status is not None and self._resource_state:
            # The notebook is gone: the resource it ran on must not outlive it.
            await self._release(f"the server exited with status {status}")
        return status

    async def stop(self, now: bool = False) -> None:
        await self._cancelled_start_undone()
        try:
            if self.child is not None:
                await self.child.stop(now)
        finally:
            await self.session_expiry_stop()
            await self._release("the server was stopped")

    async def get_url(self) -> str:
        if self.child is not None:
            return await maybe_future(self.child.get_url())
        return await super().get_url()

    async def delete_forever(self) -> None:
        if self.child is not None:
            await maybe_future(self.child.delete_forever())

    async def rename(self, old_name: str, new_name: str) -> None:
        if self.child is not None:
            await maybe_future(self.child.rename(old_name, new_name))

    # session_expiry_prepare/start/stop and their state: see expiry.SessionExpiry

    # -- state ------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.child is None and not self._resource_state:
            return state
        state["multiplespawner"] = {
            "version": STATE_VERSION,
            "choice": self.choice.to_user_options() if self.choice else None,
            "template": self.offer.template.name if self.offer else None,
            "child_class": self.offer.template.spawner.path if self.offer else None,
            "child_state": self.child.get_state() if self.child is not None else {},
            "resource": self._resource_state,
            "values": {k: v for k, v in self._resource_values.items() if k != "auth_key"},
        }
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        saved = state.get("multiplespawner")
        if not saved:
            return
        self._resource_state = saved.get("resource")
        self._resource_values = dict(saved.get("values") or {})
        if not saved.get("choice"):
            return
        self.choice = Choice(**saved["choice"])
        try:
            catalog = cache_for(self._sources()).catalog or cache_for(self._sources()).load_now()
        except ConfigError as error:
            self.log.error("%s: cannot restore the server: %s", self._log_name, error)
            return
        self.offer = catalog.offer(
            self.choice.provider, self.choice.resource_type, self.choice.deployment
        )
        if self.offer is None or self.offer.template.name != saved.get("template"):
            self.offer = self._offer_from_saved(catalog, saved)
        if self.offer is None:
            self.log.error("%s: its template %r is gone", self._log_name, saved.get("template"))
            return
        self.child = self._make_child(resource_known=True)
        self.child.load_state(saved.get("child_state") or {})
        self.will_resume = self.child.will_resume

    def _offer_from_saved(self, catalog: Catalog, saved: dict[str, Any]) -> Offer | None:
        from .config import Deployment

        template = next((t for t in catalog.templates if t.name == saved.get("template")), None)
        if template is None or self.choice is None:
            return None
        provider = catalog.providers.get(self.choice.provider)
        if provider is None:
            return None
        deployment = next(
            (d for d in catalog.deployments if d.name == self.choice.deployment),
            Deployment(self.choice.deployment, self.choice.resource_type, self.choice.provider),
        )
        return Offer(provider, deployment, template)

    def clear_state(self) -> None:
        super().clear_state()
        if self.child is not None:
            self.child.clear_state()
        self.child = None
        self.provisioning = None
        self._resource_state = None
        self._resource_values = {}
        self._events = []
        self._child_starting = False


__all__ = ["RESOURCE_TYPE_NAMES", "MultipleSpawner"]
