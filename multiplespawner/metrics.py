"""Prometheus metrics of the MultipleSpawner, served with the hub's own on ``/hub/metrics``.

JupyterHub exposes prometheus_client's default registry, so registering here is enough:

- ``multiplespawner_spawn_duration_seconds{provider, resource_type}``: histogram of successful
  starts, from ``start()`` until the sub-spawner returned the server's URL (ordering, booting,
  configuring included);
- ``multiplespawner_spawn_failures_total{provider, resource_type, step}``: failed starts by the
  step that failed: ``order`` (the provider), ``configure`` (the configurer), ``start`` (the
  sub-spawner), or ``prepare``; a start the hub cancelled (its ``start_timeout``) counts too;
- ``multiplespawner_live_resources{provider, resource_type}``: servers running or resources held
  right now (ordered machines count from the moment they are ordered);
- ``multiplespawner_live_resource_age_seconds{provider, resource_type, user, server}``: how long
  each of them has existed, so a forgotten or leaked machine stands out.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: Buckets from a local process (seconds) to a slow cloud VM (many minutes).
DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, float("inf"))
STEPS = ("prepare", "order", "configure", "start")

SPAWN_DURATION = Histogram(
    "multiplespawner_spawn_duration_seconds",
    "Seconds from start() until the sub-spawner returned the server's URL (successful starts)",
    ["provider", "resource_type"],
    buckets=DURATION_BUCKETS,
)
SPAWN_FAILURES = Counter(
    "multiplespawner_spawn_failures_total",
    "Failed or cancelled starts, by the step that failed",
    ["provider", "resource_type", "step"],
)

#: Every MultipleSpawner of this hub (weakly: the hub decides when one goes away).
_spawners: weakref.WeakSet[Any] = weakref.WeakSet()


def track(spawner: Any) -> None:
    """Count ``spawner`` in the live-resource metrics while it holds something."""
    _spawners.add(spawner)


class SpawnTimer:
    """Times one ``start()`` and records its outcome; ``step`` says what is being done."""

    def __init__(self, provider: str, resource_type: str) -> None:
        self.labels = {"provider": provider, "resource_type": resource_type}
        self.step = "prepare"
        self.began = time.monotonic()

    def succeeded(self) -> None:
        SPAWN_DURATION.labels(**self.labels).observe(time.monotonic() - self.began)

    def failed(self) -> None:
        SPAWN_FAILURES.labels(step=self.step, **self.labels).inc()


def _live(spawner: Any) -> tuple[str, str, str, str, float] | None:
    """(provider, resource type, user, server, age) of what ``spawner`` holds, or None."""
    choice = getattr(spawner, "choice", None)
    orm_spawner = getattr(spawner, "orm_spawner", None)
    if choice is None or orm_spawner is None:
        return None
    holding = getattr(spawner, "_resource_state", None) or orm_spawner.server is not None
    if not holding:
        return None
    started = orm_spawner.started
    age = 0.0
    if started is not None:
        since = started if started.tzinfo else started.replace(tzinfo=UTC)
        age = max(0.0, (datetime.now(UTC) - since).total_seconds())
    user = getattr(getattr(spawner, "user", None), "name", "")
    return choice.provider, choice.resource_type, user, spawner.name or "", age


class LiveResources(Collector):
    """Computes the live-resource gauges at scrape time from the hub's spawners."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily(
            "multiplespawner_live_resources",
            "Servers running or resources held now, by provider and resource type",
            labels=["provider", "resource_type"],
        )
        ages = GaugeMetricFamily(
            "multiplespawner_live_resource_age_seconds",
            "Seconds since each live server's spawn began (its resource's age)",
            labels=["provider", "resource_type", "user", "server"],
        )
        tally: Tally[tuple[str, str]] = Tally()
        for spawner in list(_spawners):
            live = _live(spawner)
            if live is None:
                continue
            provider, kind, user, server, age = live
            tally[(provider, kind)] += 1
            ages.add_metric([provider, kind, user, server], age)
        for (provider, kind), number in sorted(tally.items()):
            count.add_metric([provider, kind], number)
        yield count
        yield ages

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


_collector = LiveResources()
REGISTRY.register(_collector)

__all__ = ["SPAWN_DURATION", "SPAWN_FAILURES", "STEPS", "LiveResources", "SpawnTimer", "track"]
