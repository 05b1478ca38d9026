"""The teacher page: a course's teachers narrow what the course offers, within the admin's bounds."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
from pathlib import Path

import httpx
import pytest

from multiplespawner.teachers import ChoiceStore, CourseChoice
from tests.harness.browser import start_browser
from tests.harness.hub import Hub

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
SECRET = secrets.token_hex(16)


def teacher_config(hub_dir: Path) -> str:
    return f"""
from multiplespawner.teachers import enable_teacher_page
enable_teacher_page(c)
c.JupyterHub.authenticator_class = "header"
c.HeaderAuthenticator.shared_secret = {SECRET!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "multiple"
c.MultipleSpawner.templates = [{{
    "name": "here",
    "resource_type": "bare_metal",
    "providers": ["here"],
    "spawner": {{"class": "jupyterhub.spawner.SimpleLocalProcessSpawner", "kwargs": {{}}}},
}}]
c.MultipleSpawner.providers = {{"here": {{"corc": None, "display_name": "This machine"}}}}
c.MultipleSpawner.deployments = {{"bare_metal": [
    {{"name": "python", "display_name": "Python 3"}},
    {{"name": "rlang", "display_name": "R"}},
    {{"name": "julia", "display_name": "Julia"}},
    {{"name": "gpu-lab", "display_name": "GPU lab"}},
]}}
c.MultipleSpawner.limits = {{"cpu": 8, "memory_gb": 16, "gpus": 2, "minutes": 240}}
c.MultipleSpawner.access_rules = {{
    "course-a": {{
        "deployments": ["python", "rlang", "julia"],
        "limits": {{"cpu": 4, "memory_gb": 8, "gpus": 0, "minutes": 120}},
    }},
    "course-b": {{"deployments": ["gpu-lab"], "limits": {{"gpus": 2}}}},
}}
c.TeacherPage.course_teachers = {{"course-a": "course-a-teachers", "course-b": "course-b-teachers"}}
c.JupyterHub.load_groups = {{
    "course-a": {{"users": ["sam"]}},
    "course-a-teachers": {{"users": ["tina"]}},
    "course-b-teachers": {{"users": ["bea"]}},
}}
c.TeacherPage.offers_file = {str(hub_dir / "course_offers.json")!r}
"""


@pytest.fixture
def hub(hub_factory, tmp_path: Path) -> Hub:
    hub = hub_factory(teacher_config(tmp_path / "hub0"))
    return hub


def logged_in(hub: Hub, user: str) -> httpx.Client:
    """A browser-like client (cookies, no token) logged in as ``user``."""
    client = httpx.Client(base_url=hub.url, timeout=30)
    response = client.get("/hub/login", headers={"Remote-User": user, "X-Gridhub-Secret": SECRET})
    assert response.status_code == 302, response.text
    return client


def xsrf_of(page: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', page)
    assert match, "the page has no XSRF field"
    return match.group(1)


def offers_file(hub: Hub) -> Path:
    return hub.dir / "course_offers.json"


def options_of(hub: Hub, user: str) -> dict:
    with hub.api() as api:
        response = api.get("/multiplespawner/options", params={"user": user})
        assert response.status_code == 200, response.text
        return response.json()


def test_a_teacher_limits_a_course_and_its_students_see_only_that(hub, tmp_path):
    # Before any teacher acts, the admin's rule for course-a holds.
    before = options_of(hub, "sam")
    assert sorted(o["deployment"] for o in before["x-offers"]) == ["julia", "python", "rlang"]
    assert before["properties"]["cpu"]["maximum"] == 4

    driver = start_browser(tmp_path / "chromium")
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders",
            {"headers": {"Remote-User": "tina", "X-Gridhub-Secret": SECRET}},
        )
        driver.get(f"{hub.url}/hub/login")
        driver.get(f"{hub.url}/hub/teachers")
        form = driver.find_element("id", "course-course-a")
        # Only course-a is tina's; JupyterHub's own navigation bar frames the page.
        assert len(driver.find_elements("css selector", "form.teachers-course")) == 1
        assert driver.find_elements("id", "jupyterhub-logo")
        boxes = {
            box.get_attribute("value"): box
            for box in form.find_elements("css selector", "input[name=images]")
        }
        assert sorted(boxes) == ["julia", "python", "rlang"]  # gpu-lab is not approved for it
        assert all(box.is_selected() for box in boxes.values())
        boxes["julia"].click()
        for key, value in (("cpu", "2"), ("memory_gb", "4"), ("minutes", "30")):
            field = form.find_element("id", f"course-a-{key}")
            assert (
                field.get_attribute("max") == {"cpu": "4", "memory_gb": "8", "minutes": "120"}[key]
            )
            field.clear()
            field.send_keys(value)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "teacher-page-form.png"))
        form.find_element("css selector", "button[type=submit]").click()
        message = driver.find_element("id", "teachers-message").text
        assert "course-a" in message
        assert "Last changed by tina" in driver.find_element("id", "course-course-a").text
        driver.save_screenshot(str(ARTIFACTS / "teacher-page-saved.png"))
    finally:
        driver.quit()

    stored = json.loads(offers_file(hub).read_text())["courses"]["course-a"]
    assert stored["images"] == ["python", "rlang"]
    assert stored["limits"] == {"cpu": 2, "memory_gb": 4.0, "gpus": 0, "minutes": 30}
    assert stored["changed_by"] == "tina"
    assert re.search(
        r"Teacher page: tina changed course-a: images \(admin's\) -> \['python', 'rlang'\]",
        hub.log(),
    )

    # The next spawn of a student of the course sees only the teacher's choice...
    after = options_of(hub, "sam")
    assert sorted(o["deployment"] for o in after["x-offers"]) == ["python", "rlang"]
    assert {o["limits"]["cpu"] for o in after["x-offers"]} == {2}
    assert {o["limits"]["minutes"] for o in after["x-offers"]} == {30}
    sam = logged_in(hub, "sam")
    form = sam.get("/hub/spawn").text
    offered = re.findall(r'name="deployment".*?</select>', form, re.S)[0]
    assert "julia" not in offered and "python" in offered and "rlang" in offered
    assert re.search(r'id="ms-cpu"[^>]*max="2"', form), "the CPU field allows more than 2"

    # ... and the REST API refuses anything outside it, ordering nothing.
    with hub.api() as api:
        for options, reason in (
            ({"deployment": "julia"}, "julia"),
            ({"deployment": "python", "cpu": 3}, "cpu"),
            ({"deployment": "python", "minutes": 31}, "minutes"),
        ):
            response = api.post("/users/sam/server", json=options)
            assert response.status_code == 400, (options, response.text)
            assert reason in response.json()["message"]
        assert api.get("/users/sam").json()["servers"] == {}


def test_a_student_who_is_not_a_teacher_gets_403(hub):
    sam = logged_in(hub, "sam")
    response = sam.get("/hub/teachers")
    assert response.status_code == 403
    assert "teachers" in response.text
    xsrf = sam.cookies.get("_xsrf") or ""
    response = sam.post(
        "/hub/teachers",
        data={"_xsrf": xsrf, "course": "course-a", "images": "julia", "cpu": "8"},
    )
    assert response.status_code == 403
    assert not offers_file(hub).exists()


def test_forged_posts_are_refused_and_change_nothing(hub):
    tina = logged_in(hub, "tina")
    page = tina.get("/hub/teachers")
    assert page.status_code == 200
    xsrf = xsrf_of(page.text)
    good = {
        "_xsrf": xsrf,
        "course": "course-a",
        "images": ["python"],
        "cpu": "2",
        "memory_gb": "2",
        "gpus": "0",
        "minutes": "60",
    }
    for changes, status, reason in (
        ({"images": ["gpu-lab"]}, 400, "not approved"),  # approved, but for another course
        ({"images": ["python", "docker.io/evil/miner:latest"]}, 400, "not approved"),
        ({"images": []}, 400, "at least one image"),
        ({"cpu": "5"}, 400, "from 1 to 4"),  # above the admin's bound for course-a
        ({"minutes": "1000"}, 400, "from 5 to 120"),
        ({"gpus": "1"}, 400, "from 0 to 0"),
        ({"cpu": "1.5"}, 400, "whole number"),
        ({"memory_gb": "lots"}, 400, "must be a number"),
        ({"course": "course-b", "images": ["gpu-lab"]}, 403, "course-b"),  # not tina's course
        ({"_xsrf": ""}, 403, "'_xsrf' argument missing"),  # the hub logs why
        ({"_xsrf": "forged" + xsrf[6:]}, 403, "XSRF cookie does not match"),
    ):
        response = tina.post("/hub/teachers", data={**good, **changes})
        assert response.status_code == status, (changes, response.status_code)
        shown = hub.log() if "_xsrf" in changes else response.text
        assert reason in shown, (changes, response.text[-2000:])
        assert not offers_file(hub).exists(), changes
    assert "Teacher page: tina's change of course-a refused: Image 'gpu-lab'" in hub.log()

    # The untampered form is accepted.
    response = tina.post("/hub/teachers", data=good)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/hub/teachers?saved=course-a")
    assert json.loads(offers_file(hub).read_text())["courses"]["course-a"]["images"] == ["python"]


def test_a_broken_choices_file_narrows_nothing_open_to_more_and_is_logged(hub):
    offers_file(hub).write_text("{not json")
    offers = options_of(hub, "sam")["x-offers"]
    # The admin's rule still holds: nothing beyond it opened up, nothing crashed.
    assert sorted(o["deployment"] for o in offers) == ["julia", "python", "rlang"]
    assert "Teacher choices ignored" in hub.log()


async def test_concurrent_saves_of_different_courses_all_land(tmp_path):
    path = tmp_path / "offers" / "course_offers.json"
    store = ChoiceStore(path)
    await asyncio.gather(
        *(
            store.save(f"course-{n}", CourseChoice((f"image-{n}",), {"cpu": n + 1}, "t", "now"))
            for n in range(20)
        )
    )
    data = json.loads(path.read_text())["courses"]
    assert sorted(data) == sorted(f"course-{n}" for n in range(20))
    assert data["course-7"]["images"] == ["image-7"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left
    # A second store on the same file (another reader) sees every course.
    assert len(await ChoiceStore(path).read()) == 20
