"""JupyterLab warns before the session ends: a banner from the warning time on, counting down.

A real hub spawns the notebook; headless Chromium opens JupyterLab, which loads the prebuilt
``gridhub-session-notice`` extension from ``multiplespawner/session_notice``.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from multiplespawner.expiry import iso
from tests.multiplespawner.conftest import (
    LOCAL,
    SECRET,
    hub_config,
    login,
    make_setup,
    wait_stopped,
)
from tests.multiplespawner.test_browser import _shot
from tests.multiplespawner.test_expiry import expiry_config, saved_end
from tests.multiplespawner.test_spawn import start

BANNER = "gridhub-session-notice"
TEXT = re.compile(
    r"Your session ends at (\d\d:\d\d) \(in (\d+) (seconds?|minutes)\); save your work\."
)


def open_lab(browser, hub, user: str) -> None:
    """Log ``user`` in through the header authenticator and open their JupyterLab."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders",
        {"headers": {"Remote-User": user, "X-Gridhub-Secret": SECRET}},
    )
    browser.get(f"{hub.url}/hub/login")
    browser.get(f"{hub.url}/user/{user}/lab")
    WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".jp-LabShell"))


def notice_state(browser) -> str | None:
    """What the extension made of the page config ("armed", "none"), None before it ran."""
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-gridhub-session-notice")


def page_config(browser) -> dict:
    return json.loads(browser.find_element(By.ID, "jupyter-config-data").get_attribute("innerHTML"))


@pytest.mark.browser
def test_jupyterlab_counts_down_to_the_end_from_the_warning_on(
    tmp_path: Path, hub_factory, browser
):
    setup = make_setup(tmp_path / "ms")
    # 30 minutes of 4 s: a 120 s session, warned 60 s before its end (at most half the session).
    hub = hub_factory(hub_config(setup, expiry_config(unit=4, warning_minutes=15)))
    login(hub, "alice")
    ok, message = start(hub, "alice", {**LOCAL, "minutes": 30})
    assert ok, message + "\n" + hub.log()[-3000:]
    end = saved_end(hub, "alice")
    warning = end - 60

    open_lab(browser, hub, "alice")
    WebDriverWait(browser, 60).until(lambda b: notice_state(b) is not None)
    assert notice_state(browser) == "armed"
    config = page_config(browser)
    assert config["gridhubSessionEnd"] == iso(end)
    assert config["gridhubSessionWarning"] == iso(warning)
    if time.time() < warning - 2:  # JupyterLab was up before the warning was due
        assert not browser.find_elements(By.ID, BANNER), "warned before the warning time"

    banner = WebDriverWait(browser, max(end - time.time(), 1)).until(
        lambda b: b.find_elements(By.ID, BANNER)
    )[0]
    assert time.time() >= warning - 1, "the banner came before the warning time"
    first = TEXT.fullmatch(banner.text)
    assert first, banner.text
    assert first.group(1) == datetime.fromtimestamp(end).strftime("%H:%M")
    assert first.group(3).startswith("second")  # under two minutes left: counted in seconds
    _shot(browser, "multiplespawner-session-notice.png")
    time.sleep(3)
    later = TEXT.fullmatch(browser.find_element(By.ID, BANNER).text)
    assert later, browser.find_element(By.ID, BANNER).text
    assert int(later.group(2)) < int(first.group(2)), (first.group(0), later.group(0))

    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")
    assert setup.live_records() == []


@pytest.mark.browser
def test_no_banner_while_the_end_is_far(tmp_path: Path, hub_factory, browser):
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup))  # real minutes: a 60-minute session, warned 5 before
    login(hub, "bob")
    ok, message = start(hub, "bob", {**LOCAL, "minutes": 60})
    assert ok, message + "\n" + hub.log()[-3000:]
    end = saved_end(hub, "bob")

    open_lab(browser, hub, "bob")
    WebDriverWait(browser, 60).until(lambda b: notice_state(b) is not None)
    assert notice_state(browser) == "armed"  # the extension runs and knows the end...
    assert page_config(browser)["gridhubSessionEnd"] == iso(end)
    time.sleep(3)
    assert not browser.find_elements(By.ID, BANNER)  # ...but says nothing yet

    hub.api().delete("/users/bob/server")
    wait_stopped(hub, "bob")


@pytest.mark.browser
def test_forged_session_times_show_nothing_and_break_nothing(tmp_path: Path, browser):
    """A JupyterLab with the notice on its paths but times that are not times (or markup): the
    extension stays silent, injects nothing, and JupyterLab works."""
    import os
    import secrets
    import sys

    from multiplespawner.expiry import NOTICE_PATHS
    from tests.harness.process import Daemon, free_port, port_open

    port, token = free_port(), secrets.token_hex(16)
    forged = '<img src=x onerror="document.title=1">'
    lab = Daemon(
        "jupyter-lab",
        [
            str(Path(sys.executable).with_name("jupyter-lab")),
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.root_dir={tmp_path}",
            f"--IdentityProvider.token={token}",
        ],
        tmp_path / "lab.log",
        env={
            **os.environ,
            **NOTICE_PATHS,
            "GRIDHUB_SESSION_END": forged,
            "GRIDHUB_SESSION_WARNING": "yesterday",
            "HOME": str(tmp_path),
        },
    )
    lab.start(lambda: port_open("127.0.0.1", port), timeout=120)
    try:
        browser.get(f"http://127.0.0.1:{port}/lab?token={token}")
        WebDriverWait(browser, 120).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, ".jp-LabShell")
        )
        WebDriverWait(browser, 60).until(lambda b: notice_state(b) is not None)
        assert page_config(browser)["gridhubSessionEnd"] == forged  # it did reach the page...
        assert notice_state(browser) == "none"  # ...and was not taken for a time
        time.sleep(2)
        assert not browser.find_elements(By.ID, BANNER)
        assert not browser.find_elements(By.CSS_SELECTOR, "img[src=x]")
        assert browser.title != "1"
    finally:
        lab.stop()
