"""Fixtures that start real services (JupyterHub + proxy, nginx, Chromium) for one test each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.hub import Hub
from tests.harness.nginx import Nginx


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[Callable[..., Hub]]:
    """Start a JupyterHub with the given config text; every hub is stopped at teardown."""
    hubs: list[Hub] = []

    def make(config: str, env: dict[str, str] | None = None, start: bool = True) -> Hub:
        hub = Hub(tmp_path / f"hub{len(hubs)}", config, env)
        hubs.append(hub)
        if start:
            hub.start()
        return hub

    yield make
    for hub in hubs:
        hub.stop()


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Start nginx with the given ``server`` block body; stopped at teardown."""
    servers: list[Nginx] = []

    def make(server: str) -> Nginx:
        nginx = Nginx(tmp_path / f"nginx{len(servers)}", server)
        servers.append(nginx)
        nginx.start()
        return nginx

    yield make
    for nginx in servers:
        nginx.stop()


@pytest.fixture
def browser(tmp_path: Path):
    """A headless Chromium (Selenium); screenshots go to the test's tmp dir."""
    from tests.harness.browser import start_browser

    driver = start_browser(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()
