"""Who may choose what: JupyterHub groups (courses) map to deployments and hardware limits.

``c.MultipleSpawner.access_rules`` maps a group name to ``{"deployments": [names] or "*",
"limits": {"cpu", "memory_gb", "gpus", "minutes"}}``. A user may use a deployment when one of
their groups allows it, with the largest limits among those groups. Admins see everything.
Without any rules, everyone may use everything (within the providers' limits).

Per-course overrides (a course's teachers choosing what the course offers) can only narrow a
rule: ``{"course": {"images": [deployment names], "limits": {...}}}`` keeps the deployments both
allow and the smaller of each limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

LIMIT_KEYS = ("cpu", "memory_gb", "gpus", "minutes")
_RULE_KEYS = {"deployments", "limits"}


@dataclass(frozen=True)
class Limits:
    """Maximum CPU cores, memory (GB), GPUs and session minutes."""

    cpu: int
    memory_gb: float
    gpus: int
    minutes: int

    def narrowed(self, other: Mapping[str, Any]) -> Limits:
        """These limits, lowered by any smaller value in ``other``."""
        values = {key: getattr(self, key) for key in LIMIT_KEYS}
        for key in LIMIT_KEYS:
            if other.get(key) is not None:
                values[key] = min(values[key], type(values[key])(other[key]))
        return Limits(**values)

    def widened(self, other: Limits) -> Limits:
        return Limits(**{key: max(getattr(self, key), getattr(other, key)) for key in LIMIT_KEYS})

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in LIMIT_KEYS}


def check_rules(rules: Any, where: str = "access_rules") -> dict[str, dict[str, Any]]:
    """Validate ``access_rules``; ConfigError names the bad key."""
    if not isinstance(rules, dict):
        raise ConfigError(f"{where}: expected a mapping of group name to rule")
    for group, rule in rules.items():
        here = f"{where}.{group}"
        if not isinstance(rule, dict):
            raise ConfigError(f"{here}: expected a mapping with 'deployments' and 'limits'")
        unknown = sorted(set(rule) - _RULE_KEYS)
        if unknown:
            raise ConfigError(f"{here}.{unknown[0]}: unknown key; known: {sorted(_RULE_KEYS)}")
        deployments = rule.get("deployments", "*")
        if deployments != "*" and not (
            isinstance(deployments, list) and all(isinstance(d, str) for d in deployments)
        ):
            raise ConfigError(f"{here}.deployments: expected a list of deployment names or '*'")
        limits = rule.get("limits") or {}
        if not isinstance(limits, dict):
            raise ConfigError(f"{here}.limits: expected a mapping")
        for key, value in limits.items():
            if key not in LIMIT_KEYS:
                raise ConfigError(f"{here}.limits.{key}: unknown limit; known: {LIMIT_KEYS}")
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{here}.limits.{key}: expected a number >= 0")
    return rules


def allowed_deployments(
    *,
    groups: Iterable[str],
    is_admin: bool,
    deployments: Iterable[str],
    ceiling: Limits,
    rules: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Limits]:
    """The deployments a user may use, each with the user's limits for it.

    ``ceiling`` bounds everything (the hub's own maximums); ``rules`` are ``access_rules``;
    ``overrides`` are per-course choices (``{course: {"images": [...], "limits": {...}}}``) that
    can only narrow that course's rule. Admins, and everyone when there are no rules, get every
    deployment at the ceiling.
    """
    names = list(deployments)
    if is_admin or not rules:
        return {name: ceiling for name in names}
    overrides = overrides or {}
    allowed: dict[str, Limits] = {}
    for group in groups:
        rule = rules.get(group)
        if rule is None:
            continue
        permitted = set(names) if rule.get("deployments", "*") == "*" else set(rule["deployments"])
        limits = ceiling.narrowed(rule.get("limits") or {})
        override = overrides.get(group)
        if override:
            if override.get("images") is not None:
                permitted &= set(override["images"])
            limits = limits.narrowed(override.get("limits") or {})
        for name in names:
            if name in permitted:
                allowed[name] = allowed[name].widened(limits) if name in allowed else limits
    return allowed
