"""Templates (listing 12), deployments (listing 11) and providers: parsed, checked, reloaded.

A *template* says how to run one resource type on some providers: which sub-spawner (by class
path) with which keyword arguments, and optionally which configurer and SSH authenticator. A
*deployment* is one image offered for a resource type (on one provider, or on any). Both are
accepted exactly in the thesis's layout, from JSON or YAML files or from traitlets, and every
error names the bad key, e.g. ``templates[0].spawner.class``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .placeholders import check

RESOURCE_TYPES = ("virtual_machine", "container", "bare_metal")
RESOURCE_TYPE_NAMES = {
    "virtual_machine": "Virtual machine",
    "container": "Container",
    "bare_metal": "Bare metal",
}
PROVIDER_NAMES = {
    "oci": "Oracle Cloud",
    "libcloud": "Amazon EC2",
    "ec2": "Amazon EC2",
    "local": "This machine",
    "sandbox": "Sandbox VM",
}
#: Seconds a provider may take to hand over a usable resource, by resource type.
DEFAULT_PROVISION_TIMEOUT = {"virtual_machine": 900, "container": 300, "bare_metal": 120}

_TEMPLATE_KEYS = {"name", "resource_type", "providers", "spawner", "configurer", "authenticator"}
_DEPLOYMENT_KEYS = {"name", "provider", "image", "display_name"}
_PROVIDER_KEYS = {"display_name", "corc", "options", "provision_timeout", "limits", "ssh_user"}


@dataclass(frozen=True)
class ClassSpec:
    """A class named by its import path, with the keyword arguments (or options) it gets."""

    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    """How one resource type is spawned on some providers (thesis listing 12)."""

    name: str
    resource_type: str
    providers: tuple[str, ...]
    spawner: ClassSpec
    configurer: ClassSpec | None = None
    authenticator: ClassSpec | None = None


@dataclass(frozen=True)
class Deployment:
    """One image offered for a resource type, on one provider or on any (thesis listing 11)."""

    name: str
    resource_type: str
    provider: str | None = None
    image: str = ""
    display_name: str = ""

    @property
    def label(self) -> str:
        return self.display_name or self.image or self.name


@dataclass(frozen=True)
class Provider:
    """Where resources come from: a corc provider (orders machines) or none (runs in place)."""

    name: str
    display_name: str
    corc: str | None
    options: dict[str, Any] | None = None
    provision_timeout: float | None = None
    limits: dict[str, float] = field(default_factory=dict)
    ssh_user: str = ""


@dataclass(frozen=True)
class Offer:
    """One thing a user can choose: a deployment on a provider, spawned by a template."""

    provider: Provider
    deployment: Deployment
    template: Template

    @property
    def key(self) -> str:
        return f"{self.provider.name}/{self.deployment.resource_type}/{self.deployment.name}"


@dataclass(frozen=True)
class Catalog:
    """Everything the configuration offers, checked for consistency."""

    templates: tuple[Template, ...]
    deployments: tuple[Deployment, ...]
    providers: dict[str, Provider]
    offers: tuple[Offer, ...]

    def offer(self, provider: str, resource_type: str, deployment: str) -> Offer | None:
        for offer in self.offers:
            if (
                offer.provider.name == provider
                and offer.deployment.resource_type == resource_type
                and offer.deployment.name == deployment
            ):
                return offer
        return None


# -- loading and checking ------------------------------------------------------------------------


def import_class(path: str, where: str) -> type:
    """The class at ``path`` (``package.module.Class``); ConfigError naming ``where`` if not."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{where}: expected a class path like 'package.module.Class'")
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{where}: cannot import {path!r} ({error})") from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"{where}: {module_name!r} has no class {name!r}")
    return cls


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string")
    return value


def _class_spec(value: Any, where: str, args_key: str) -> ClassSpec:
    value = _mapping(value, where)
    # The thesis writes "kwargs" for spawners/authenticators and "options" for configurers.
    unknown = sorted(set(value) - {"class", args_key})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected 'class' and '{args_key}')")
    if "class" not in value:
        raise ConfigError(f"{where}.class: missing (a class path like 'package.module.Class')")
    import_class(value["class"], f"{where}.class")
    kwargs = _mapping(value.get(args_key) or {}, f"{where}.{args_key}")
    check(kwargs, f"{where}.{args_key}")
    return ClassSpec(value["class"], dict(kwargs))


def parse_templates(data: Any, where: str = "templates") -> tuple[Template, ...]:
    """Templates from a list of mappings in listing 12's layout."""
    from jupyterhub.spawner import Spawner

    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a list of templates")
    templates = []
    for index, raw in enumerate(data):
        here = f"{where}[{index}]"
        raw = _mapping(raw, here)
        unknown = sorted(set(raw) - _TEMPLATE_KEYS)
        if unknown:
            raise ConfigError(f"{here}.{unknown[0]}: unknown key; known: {sorted(_TEMPLATE_KEYS)}")
        for key in ("name", "resource_type", "providers", "spawner"):
            if key not in raw:
                raise ConfigError(f"{here}.{key}: missing")
        name = _name(raw["name"], f"{here}.name")
        if raw["resource_type"] not in RESOURCE_TYPES:
            raise ConfigError(
                f"{here}.resource_type: {raw['resource_type']!r} is not one of {RESOURCE_TYPES}"
            )
        providers = raw["providers"]
        if not isinstance(providers, list) or not providers:
            raise ConfigError(f"{here}.providers: expected a non-empty list of provider names")
        for position, provider in enumerate(providers):
            _name(provider, f"{here}.providers[{position}]")
        spawner = _class_spec(raw["spawner"], f"{here}.spawner", "kwargs")
        spawner_class = import_class(spawner.path, f"{here}.spawner.class")
        if not issubclass(spawner_class, Spawner):
            raise ConfigError(f"{here}.spawner.class: {spawner.path!r} is not a JupyterHub Spawner")
        from .child import settable

        known = settable(spawner_class)
        for key in spawner.kwargs:
            if key not in known:
                raise ConfigError(
                    f"{here}.spawner.kwargs.{key}: {spawner_class.__name__} has no setting {key!r}"
                )
        configurer = (
            _class_spec(raw["configurer"], f"{here}.configurer", "options")
            if raw.get("configurer")
            else None
        )
        authenticator = (
            _class_spec(raw["authenticator"], f"{here}.authenticator", "kwargs")
            if raw.get("authenticator")
            else None
        )
        templates.append(
            Template(
                name, raw["resource_type"], tuple(providers), spawner, configurer, authenticator
            )
        )
    names = [template.name for template in templates]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(f"{where}[{index}].name: {name!r} is used twice")
    return tuple(templates)


def parse_deployments(data: Any, where: str = "deployments") -> tuple[Deployment, ...]:
    """Deployments from listing 11's layout: ``{resource_type: [{name, provider, image}]}``."""
    data = _mapping(data, where)
    deployments = []
    for resource_type, entries in data.items():
        here = f"{where}.{resource_type}"
        if resource_type not in RESOURCE_TYPES:
            raise ConfigError(f"{here}: unknown resource type; known: {', '.join(RESOURCE_TYPES)}")
        if not isinstance(entries, list):
            raise ConfigError(f"{here}: expected a list of deployments")
        for index, raw in enumerate(entries):
            entry = f"{here}[{index}]"
            raw = _mapping(raw, entry)
            unknown = sorted(set(raw) - _DEPLOYMENT_KEYS)
            if unknown:
                raise ConfigError(
                    f"{entry}.{unknown[0]}: unknown key; known: {sorted(_DEPLOYMENT_KEYS)}"
                )
            if "name" not in raw:
                raise ConfigError(f"{entry}.name: missing")
            for key in ("provider", "image", "display_name"):
                if key in raw and not isinstance(raw[key], str):
                    raise ConfigError(f"{entry}.{key}: expected a string")
            deployments.append(
                Deployment(
                    _name(raw["name"], f"{entry}.name"),
                    resource_type,
                    raw.get("provider") or None,
                    raw.get("image", ""),
                    raw.get("display_name", ""),
                )
            )
    seen: set[str] = set()
    for deployment in deployments:
        if deployment.name in seen:
            raise ConfigError(f"{where}: deployment name {deployment.name!r} is used twice")
        seen.add(deployment.name)
    return tuple(deployments)


def parse_providers(data: Any, used: set[str], where: str = "providers") -> dict[str, Provider]:
    """Provider settings (``c.MultipleSpawner.providers``) for every provider a template names."""
    from corc_core import provider_names

    data = _mapping(data or {}, where)
    corc_names = set(provider_names())
    providers = {}
    for name in sorted(used | set(data)):
        raw = _mapping(data.get(name) or {}, f"{where}.{name}")
        unknown = sorted(set(raw) - _PROVIDER_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}.{name}.{unknown[0]}: unknown key; known: {sorted(_PROVIDER_KEYS)}"
            )
        corc = raw.get("corc", name if name in corc_names else None)
        if corc is not None and corc not in corc_names:
            raise ConfigError(
                f"{where}.{name}.corc: {corc!r} is not a corc provider;"
                f" installed: {', '.join(sorted(corc_names))} (or null to run in place)"
            )
        limits = _mapping(raw.get("limits") or {}, f"{where}.{name}.limits")
        for key, value in limits.items():
            if key not in ("cpu", "memory_gb", "gpus", "minutes"):
                raise ConfigError(f"{where}.{name}.limits.{key}: unknown limit")
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}.{name}.limits.{key}: expected a number >= 0")
        timeout = raw.get("provision_timeout")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ConfigError(f"{where}.{name}.provision_timeout: expected seconds > 0")
        options = raw.get("options")
        if options is not None:
            options = dict(_mapping(options, f"{where}.{name}.options"))
        providers[name] = Provider(
            name=name,
            display_name=str(raw.get("display_name") or PROVIDER_NAMES.get(name, name)),
            corc=corc,
            options=options,
            provision_timeout=timeout,
            limits=dict(limits),
            ssh_user=str(raw.get("ssh_user", "")),
        )
    return providers


def build_catalog(templates: Any, deployments: Any, providers: Any) -> Catalog:
    """Parse and cross-check the three parts; ConfigError names the first bad key."""
    parsed_templates = parse_templates(templates)
    parsed_deployments = parse_deployments(deployments)
    used = {p for template in parsed_templates for p in template.providers}
    parsed_providers = parse_providers(providers, used)
    for deployment in parsed_deployments:
        if deployment.provider and not any(
            t.resource_type == deployment.resource_type and deployment.provider in t.providers
            for t in parsed_templates
        ):
            raise ConfigError(
                f"deployments.{deployment.resource_type}: {deployment.name!r} names provider"
                f" {deployment.provider!r}, but no template runs a {deployment.resource_type}"
                f" on it"
            )
    offers = []
    for deployment in parsed_deployments:
        for template in parsed_templates:
            if template.resource_type != deployment.resource_type:
                continue
            for provider in template.providers:
                if deployment.provider not in (None, provider):
                    continue
                offer = Offer(parsed_providers[provider], deployment, template)
                if all(o.key != offer.key for o in offers):  # the first template wins
                    offers.append(offer)
    return Catalog(parsed_templates, parsed_deployments, parsed_providers, tuple(offers))


def read_file(path: str | os.PathLike[str]) -> Any:
    """A JSON (``.json``) or YAML file's data; ConfigError naming the file when unreadable."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'} ({error})"
        ) from None


# -- reloading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where the catalog comes from: traitlet values and optional files (read and appended)."""

    templates: tuple[Any, ...] = ()
    deployments: tuple[tuple[str, Any], ...] = ()
    providers: tuple[tuple[str, Any], ...] = ()
    template_file: str = ""
    deployment_file: str = ""

    @classmethod
    def of(
        cls,
        templates: list[Any],
        deployments: dict[str, Any],
        providers: dict[str, Any],
        template_file: str,
        deployment_file: str,
    ) -> Sources:
        freeze = json.dumps  # values are JSON-like; a stable key for the shared cache
        return cls(
            (freeze(templates, sort_keys=True, default=str),),
            (("", freeze(deployments, sort_keys=True, default=str)),),
            (("", freeze(providers, sort_keys=True, default=str)),),
            template_file,
            deployment_file,
        )

    def stamp(self) -> tuple[Any, ...]:
        stamps = []
        for path in (self.template_file, self.deployment_file):
            if not path:
                stamps.append(None)
                continue
            try:
                info = os.stat(Path(path).expanduser())
                stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError:
                stamps.append("missing")
        return tuple(stamps)

    def load(self) -> Catalog:
        templates = list(json.loads(self.templates[0]))
        deployments = dict(json.loads(self.deployments[0][1]))
        providers = json.loads(self.providers[0][1])
        if self.template_file:
            from_file = read_file(self.template_file)
            if isinstance(from_file, dict):  # a single template
                from_file = [from_file]
            if not isinstance(from_file, list):
                raise ConfigError(f"{self.template_file}: expected a list of templates")
            templates += from_file
        if self.deployment_file:
            from_file = read_file(self.deployment_file)
            if not isinstance(from_file, dict):
                raise ConfigError(f"{self.deployment_file}: expected a mapping of resource types")
            for resource_type, entries in from_file.items():
                existing = deployments.get(resource_type) or []
                deployments[resource_type] = [*existing, *(entries or [])]
        if not templates:
            raise ConfigError("templates: none configured (set template_file or templates)")
        return build_catalog(templates, deployments, providers)


class CatalogCache:
    """The last good catalog of one set of sources, reloaded when a file changes.

    An invalid new file is rejected with a log line naming the bad key; the last good catalog stays
    in use. Without any good catalog yet, the error is raised.
    """

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.catalog: Catalog | None = None
        self.stamp: tuple[Any, ...] | None = None
        self.error: ConfigError | None = None
        self._lock = asyncio.Lock()

    def load_now(self) -> Catalog:
        """Load synchronously (hub start-up checks); raises ConfigError."""
        stamp = self.sources.stamp()
        self.catalog, self.stamp, self.error = self.sources.load(), stamp, None
        return self.catalog

    async def get(self, log: logging.Logger | logging.LoggerAdapter) -> Catalog:
        stamp = self.sources.stamp()
        if stamp == self.stamp:
            if self.catalog is None:
                assert self.error is not None
                raise self.error
            return self.catalog
        async with self._lock:
            stamp = self.sources.stamp()
            if stamp == self.stamp:  # another spawn reloaded it meanwhile
                if self.catalog is None:
                    assert self.error is not None
                    raise self.error
                return self.catalog
            try:
                catalog = await asyncio.to_thread(self.sources.load)
            except ConfigError as error:
                self.stamp, self.error = stamp, error
                if self.catalog is None:
                    log.error("MultipleSpawner configuration is invalid: %s", error)
                    raise
                log.error(
                    "MultipleSpawner configuration change rejected: %s; keeping the last good one",
                    error,
                )
                return self.catalog
            if self.stamp is not None:
                log.info("MultipleSpawner configuration reloaded (%d offers)", len(catalog.offers))
            self.catalog, self.stamp, self.error = catalog, stamp, None
            return catalog


_caches: dict[Sources, CatalogCache] = {}


def cache_for(sources: Sources) -> CatalogCache:
    """The one cache per set of sources, shared by every user's spawner in this hub."""
    if sources not in _caches:
        _caches[sources] = CatalogCache(sources)
    return _caches[sources]
