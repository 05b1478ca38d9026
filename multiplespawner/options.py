"""The one options schema: what a user may choose, its defaults, and its validation.

The form, ``options_from_form``, REST ``user_options`` and the JSON schema endpoint all use the
``Space`` built here, so a choice the form would not offer is refused everywhere, with a reason.

``user_options`` keys: ``provider``, ``resource_type``, ``deployment`` (names from the
configuration), ``cpu`` (cores), ``memory_gb``, ``gpus`` and ``minutes`` (session length).
Missing keys take their defaults, so ``{}`` starts the default offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .access import LIMIT_KEYS, Limits
from .config import RESOURCE_TYPE_NAMES, Catalog, Offer
from .errors import OptionsError

OFFER_KEYS = ("provider", "resource_type", "deployment")
HARDWARE_KEYS = ("cpu", "memory_gb", "gpus", "minutes")
OPTION_KEYS = OFFER_KEYS + HARDWARE_KEYS
MINIMUM = {"cpu": 1, "memory_gb": 0.5, "gpus": 0, "minutes": 5}
LABELS = {
    "provider": "Provider",
    "resource_type": "Resource type",
    "deployment": "Image",
    "cpu": "Number of CPU cores",
    "memory_gb": "Amount of memory (GB)",
    "gpus": "Number of GPUs",
    "minutes": "Session length (minutes)",
}


@dataclass(frozen=True)
class Choice:
    """A validated spawn request."""

    provider: str
    resource_type: str
    deployment: str
    cpu: int
    memory_gb: float
    gpus: int
    minutes: int

    def to_user_options(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Space:
    """The offers one user may choose from, each with that user's limits, and the defaults."""

    offers: tuple[tuple[Offer, Limits], ...]
    default_minutes: int = 60

    def limits_for(self, offer: Offer) -> Limits:
        return next(limits for candidate, limits in self.offers if candidate.key == offer.key)

    def default(self, offer: Offer | None = None) -> Choice:
        if not self.offers:
            raise OptionsError(
                "You may not start any server: no provider, resource type and image is open to"
                " your groups; ask your course's teacher or the hub's admin.",
                status_code=403,
            )
        offer = offer or self.offers[0][0]
        limits = self.limits_for(offer)
        return Choice(
            provider=offer.provider.name,
            resource_type=offer.deployment.resource_type,
            deployment=offer.deployment.name,
            cpu=1,
            memory_gb=min(1.0, float(limits.memory_gb)),
            gpus=0,
            minutes=max(MINIMUM["minutes"], min(self.default_minutes, limits.minutes)),
        )


def build_space(
    catalog: Catalog,
    allowed: Mapping[str, Limits],
    ceiling: Limits,
    default_minutes: int = 60,
    inventory: Mapping[str, Mapping[str, Any]] | None = None,
) -> Space:
    """The offers whose deployment is in ``allowed``, with limits narrowed by their provider's
    (configured, and ``inventory``: per provider, what its machines hold)."""
    offers = []
    for offer in catalog.offers:
        limits = allowed.get(offer.deployment.name)
        if limits is None:
            continue
        limits = limits.narrowed(offer.provider.limits).narrowed(ceiling.to_dict())
        limits = limits.narrowed((inventory or {}).get(offer.provider.name, {}))
        if limits.cpu < MINIMUM["cpu"] or limits.memory_gb < MINIMUM["memory_gb"]:
            continue
        offers.append((offer, limits))
    return Space(tuple(offers), default_minutes)


def _number(value: Any, key: str, whole: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a whole number" if whole else "a number"
        raise OptionsError(f"{LABELS[key]} ({key}) must be {kind}, not {value!r}.")
    if whole and value != int(value):
        raise OptionsError(f"{LABELS[key]} ({key}) must be a whole number, not {value!r}.")
    return int(value) if whole else float(value)


def validate(space: Space, user_options: Any) -> Choice:
    """The Choice that ``user_options`` asks for; OptionsError (400) with the reason if none."""
    if user_options is None:
        user_options = {}
    if not isinstance(user_options, dict):
        raise OptionsError("user_options must be a JSON object.")
    unknown = sorted(set(user_options) - set(OPTION_KEYS))
    if unknown:
        raise OptionsError(
            f"Unknown option {unknown[0]!r}; the options are: {', '.join(OPTION_KEYS)}."
        )
    for key in OFFER_KEYS:
        if key in user_options and not isinstance(user_options[key], str):
            raise OptionsError(f"{LABELS[key]} ({key}) must be a name, not {user_options[key]!r}.")
    wanted = {key: user_options[key] for key in OFFER_KEYS if key in user_options}
    space.default()  # 403 when nothing is open to this user
    matching = [
        (offer, limits)
        for offer, limits in space.offers
        if all(
            wanted.get(key, value) == value
            for key, value in (
                ("provider", offer.provider.name),
                ("resource_type", offer.deployment.resource_type),
                ("deployment", offer.deployment.name),
            )
        )
    ]
    if not matching:
        raise OptionsError(_no_offer_reason(space, wanted))
    offer, limits = matching[0]
    base = space.default(offer)
    values: dict[str, Any] = {}
    for key in HARDWARE_KEYS:
        whole = key != "memory_gb"
        value = _number(user_options.get(key, getattr(base, key)), key, whole)
        maximum = getattr(limits, key)
        if value < MINIMUM[key] or value > maximum:
            raise OptionsError(
                f"{LABELS[key]} ({key}) must be from {MINIMUM[key]:g} to {maximum:g} for"
                f" {offer.deployment.label} on {offer.provider.display_name}, not {value:g}."
            )
        values[key] = value
    return Choice(
        provider=offer.provider.name,
        resource_type=offer.deployment.resource_type,
        deployment=offer.deployment.name,
        **values,
    )


def _no_offer_reason(space: Space, wanted: dict[str, str]) -> str:
    names = {key: {getattr_offer(o, key) for o, _ in space.offers} for key in OFFER_KEYS}
    for key in OFFER_KEYS:
        if key in wanted and wanted[key] not in names[key]:
            return (
                f"{LABELS[key]} {wanted[key]!r} is unknown or not open to you; choose one of:"
                f" {', '.join(sorted(names[key]))}."
            )
    asked = ", ".join(f"{key}={value}" for key, value in wanted.items())
    return f"There is no such combination ({asked}); the spawn page lists the ones that exist."


def getattr_offer(offer: Offer, key: str) -> str:
    if key == "provider":
        return offer.provider.name
    if key == "resource_type":
        return offer.deployment.resource_type
    return offer.deployment.name


def from_form(form_data: Mapping[str, list[str]]) -> dict[str, Any]:
    """``user_options`` from the spawn form's fields (strings), before ``validate``."""
    options: dict[str, Any] = {}
    for key in OPTION_KEYS:
        values = form_data.get(key) or []
        if not values or values[0].strip() == "":
            continue
        text = values[0].strip()
        if key in OFFER_KEYS:
            options[key] = text
            continue
        try:
            number = float(text)
        except ValueError:
            raise OptionsError(f"{LABELS[key]} must be a number, not {text!r}.") from None
        options[key] = int(number) if number.is_integer() and key != "memory_gb" else number
    return options


def json_schema(space: Space) -> dict[str, Any]:
    """A JSON schema of the ``user_options`` this user may send, with the offers listed."""
    if not space.offers:
        return {"type": "object", "additionalProperties": False, "x-offers": [], "not": {}}
    default = space.default()
    overall = {
        key: max(getattr(limits, key) for _, limits in space.offers) for key in HARDWARE_KEYS
    }
    kinds = {"cpu": "integer", "memory_gb": "number", "gpus": "integer", "minutes": "integer"}
    properties: dict[str, Any] = {
        key: {
            "title": LABELS[key],
            "enum": sorted({getattr_offer(offer, key) for offer, _ in space.offers}),
            "default": getattr(default, key),
        }
        for key in OFFER_KEYS
    }
    for key in HARDWARE_KEYS:
        properties[key] = {
            "title": LABELS[key],
            "type": kinds[key],
            "minimum": MINIMUM[key],
            "maximum": overall[key],
            "default": getattr(default, key),
        }
    offers = []
    any_of = []
    for offer, limits in space.offers:
        offers.append(
            {
                "provider": offer.provider.name,
                "provider_name": offer.provider.display_name,
                "resource_type": offer.deployment.resource_type,
                "resource_type_name": RESOURCE_TYPE_NAMES[offer.deployment.resource_type],
                "deployment": offer.deployment.name,
                "image": offer.deployment.image,
                "label": offer.deployment.label,
                "limits": limits.to_dict(),
            }
        )
        branch: dict[str, Any] = {key: {"const": getattr_offer(offer, key)} for key in OFFER_KEYS}
        for key in HARDWARE_KEYS:
            branch[key] = {"maximum": getattr(limits, key)}
        any_of.append({"properties": branch})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MultipleSpawner user_options",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "anyOf": any_of,
        "default": default.to_user_options(),
        "x-offers": offers,
    }


__all__ = ["LIMIT_KEYS", "OPTION_KEYS", "Choice", "Space", "build_space", "from_form", "validate"]
