"""Fixtures that start real services (JupyterHub + proxy, nginx, Chromium) for one test each."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.hub import Hub
from tests.harness.nginx import Nginx

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Remember each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(item: pytest.Item) -> bool:
    return any(
        getattr(getattr(item, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


@pytest.fixture(autouse=True)
def keep_logs_of_failures(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """When a test fails, copy every log its services wrote (hub, proxy, daemons) to tests/artifacts/.

    The artifacts of a flaky failure are the bug report: CI keeps them, and so does a local run.
    """
    yield
    if not _failed(request.node):
        return
    target = ARTIFACTS / re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.nodeid)[:150]
    for log in tmp_path.rglob("*.log"):
        if log.is_file():
            destination = target / log.relative_to(tmp_path)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, destination)


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
        hub.stop_servers()
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
