"""The spawn form: a Jinja template rendered from the user's options ``Space``."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .config import RESOURCE_TYPE_NAMES
from .options import LABELS, MINIMUM, Choice, Space, json_schema

TEMPLATES = Path(__file__).resolve().parent / "templates"
UNITS = {"cpu": " cores", "memory_gb": " GB", "gpus": "", "minutes": " minutes"}


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True)
    )


def render_form(space: Space, chosen: Choice, template: str = "form.html") -> str:
    """The form's HTML (goes inside JupyterHub's spawn.html), with ``chosen`` preselected."""
    schema = json_schema(space)
    offers: list[dict[str, Any]] = schema["x-offers"]
    providers: dict[str, str] = {}
    kinds: dict[str, list[str]] = {}
    for offer in offers:
        providers.setdefault(offer["provider"], offer["provider_name"])
        kinds.setdefault(offer["resource_type"], [])
        if offer["provider"] not in kinds[offer["resource_type"]]:
            kinds[offer["resource_type"]].append(offer["provider"])
    chosen_limits = next(
        (
            o["limits"]
            for o in offers
            if (o["provider"], o["resource_type"], o["deployment"])
            == (chosen.provider, chosen.resource_type, chosen.deployment)
        ),
        offers[0]["limits"],
    )
    hardware = [
        {
            "key": key,
            "label": LABELS[key],
            "min": MINIMUM[key],
            "max": chosen_limits[key],
            "step": 0.5 if key == "memory_gb" else 1,
            "value": getattr(chosen, key),
            "unit": UNITS[key],
        }
        for key in ("memory_gb", "cpu", "gpus", "minutes")
    ]
    return (
        _environment()
        .get_template(template)
        .render(
            providers=[{"name": n, "display_name": d} for n, d in providers.items()],
            resource_types=[
                {"name": kind, "label": RESOURCE_TYPE_NAMES[kind], "providers": names}
                for kind, names in kinds.items()
            ],
            offers=offers,
            show_provider=len(providers) > 1,
            chosen=chosen,
            hardware=hardware,
        )
    )
