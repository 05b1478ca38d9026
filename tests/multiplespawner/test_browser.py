"""A student in a real browser: log in, choose on the form, watch the progress, land in JupyterLab.
And the same form without JavaScript (a plain HTML form post)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.multiplespawner.conftest import (
    REPO,
    SECRET,
    hub_config,
    login,
    make_setup,
    server_status,
    wait_stopped,
)

ARTIFACTS = REPO / "tests" / "artifacts"


def _shot(browser, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 5_000
    return path


@pytest.mark.browser
def test_a_student_picks_a_vm_and_lands_in_jupyterlab(tmp_path: Path, hub_factory, browser):
    setup = make_setup(tmp_path / "ms")
    # The form's POST answers at once (no slow_spawn_timeout wait), so the progress page is shown
    # even when the VM comes up in a few seconds.
    hub = hub_factory(
        hub_config(
            setup,
            'c.Spawner.default_url = "/lab"\n'
            "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}",
        )
    )
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders",
        {"headers": {"Remote-User": "alice", "X-Gridhub-Secret": SECRET}},
    )
    browser.get(f"{hub.url}/hub/login")
    browser.get(f"{hub.url}/hub/spawn")
    form = WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "spawn_form"))
    provider = Select(form.find_element(By.ID, "ms-provider"))
    assert [o.text for o in provider.options] == ["This machine", "Sandbox VM"]
    provider.select_by_value("sandbox")
    # Dependent choices: the resource type and image follow the provider.
    assert (
        Select(form.find_element(By.ID, "ms-resource-type")).first_selected_option.get_attribute(
            "value"
        )
        == "virtual_machine"
    )
    image = Select(form.find_element(By.ID, "ms-deployment")).first_selected_option
    assert image.get_attribute("value") == "sandbox_debian"
    minutes = form.find_element(By.ID, "ms-minutes")
    minutes.clear()
    minutes.send_keys("45")
    browser.set_window_size(1280, 1500)  # the whole form in one picture
    browser.execute_script("window.scrollTo(0, 0)")
    _shot(browser, "multiplespawner-form.png")
    button = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    browser.set_window_size(1280, 900)

    WebDriverWait(browser, 30).until(
        lambda b: "spawn-pending" in b.current_url or "/user/" in b.current_url
    )
    seen = set()
    deadline = time.monotonic() + 180
    progress_shot = None
    while "/lab" not in browser.current_url:
        assert time.monotonic() < deadline, (browser.current_url, seen)
        try:
            text = browser.find_element(By.ID, "progress-message").text
        except Exception:
            text = ""
        if text:
            seen.add(text)
            if progress_shot is None and (
                "Ordering" in text or "Starting" in text or "Connecting" in text
            ):
                progress_shot = _shot(browser, "multiplespawner-progress.png")
        time.sleep(0.2)
    WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".jp-LabShell"))
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".jp-Launcher"))
    _shot(browser, "multiplespawner-jupyterlab.png")
    assert progress_shot is not None, seen
    saved = hub.api().get("/users/alice").json()["servers"][""]["user_options"]
    assert saved["provider"] == "sandbox" and saved["minutes"] == 45
    assert len(setup.sandbox_hosts_alive()) == 1

    hub.api().delete("/users/alice/server")
    wait_stopped(hub, "alice")
    assert setup.sandbox_hosts_alive() == [] and setup.live_records() == []


def test_the_form_works_without_javascript(tmp_path: Path, hub_factory):
    setup = make_setup(tmp_path / "ms")
    hub = hub_factory(hub_config(setup))
    login(hub, "dave")
    client = httpx.Client(base_url=hub.url, follow_redirects=False, timeout=30)
    headers = {"Remote-User": "dave", "X-Gridhub-Secret": SECRET}
    assert client.get("/hub/login", headers=headers).status_code == 302
    page = client.get("/hub/spawn")
    assert page.status_code == 200
    action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert 'name="deployment"' in page.text and "<script" in page.text
    fields = {
        "provider": "local",
        "resource_type": "bare_metal",
        "deployment": "local_machine",
        "cpu": "9",
        "memory_gb": "1",
        "gpus": "0",
        "minutes": "30",
    }
    refused = client.post(action, data=fields)
    assert refused.status_code == 400
    # The bound is the local pool's largest host (2 CPUs in corc's inventory), not the ceiling of 8.
    assert "Number of CPU cores (cpu) must be from 1 to 2" in refused.text
    # A provider that does not run that resource type: refused with the reason, no JavaScript needed.
    mixed = client.post(action, data={**fields, "cpu": "1", "provider": "sandbox"})
    assert mixed.status_code == 400 and "no such combination" in mixed.text.lower()
    accepted = client.post(action, data={**fields, "cpu": "2"})
    assert accepted.status_code == 302, accepted.text[-2000:]
    assert server_status(hub, "dave", timeout=90).status_code == 200
    hub.api().delete("/users/dave/server")
    wait_stopped(hub, "dave")
    assert setup.live_records() == []
