"""A person logs in through the front proxy in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.harness.browser import basic_auth
from tests.headerauthenticator.conftest import FrontedHub


@pytest.mark.browser
def test_browser_login_through_nginx_shows_home(
    fronted: FrontedHub, browser, tmp_path: Path
) -> None:
    basic_auth(browser, "carol", "carol-pw")
    browser.get(f"{fronted.nginx.url}/hub/login")
    assert browser.current_url.endswith("/hub/home")
    assert "carol" in browser.page_source
    start = WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "start"))
    assert start.text.strip() == "Start My Server"
    assert browser.find_element(By.LINK_TEXT, "Admin")  # carol is an admin
    shot = tmp_path / "hub-home.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
