"""The teacher page: a course's teachers choose which admin-approved images and limits it offers.

``GET /hub/teachers`` shows, for every course the logged-in user teaches (a member of the
course's teacher group in ``c.TeacherPage.course_teachers``; admins teach every course), the
images the admin's ``access_rules`` approve for the course and the hardware bounds, with the
course's current choice. ``POST /hub/teachers`` (XSRF-protected) saves one course's choice in a
JSON file, written atomically, and logs who changed what. The MultipleSpawner reads the file at
the next form or spawn (``course_overrides``): a choice can only narrow the admin's rule, and the
server side accepts only approved image names and limits within the admin's bounds.

Enable it in ``jupyterhub_config.py``::

    from multiplespawner.teachers import enable_teacher_page
    enable_teacher_page(c)
    c.TeacherPage.course_teachers = {"course-a": "course-a-teachers"}
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jupyterhub.handlers.base import BaseHandler
from tornado import web
from traitlets import Dict, Unicode
from traitlets.config import Configurable

from . import access
from .errors import ConfigError
from .options import LABELS, MINIMUM

#: The page, read once when the hub loads its config (it extends JupyterHub's page.html).
TEMPLATE_SOURCE = (Path(__file__).resolve().parent / "templates" / "teachers.html").read_text()
ROUTE = r"/teachers"
FILE_VERSION = 1
#: The page's field labels ("Maximum ..."); error messages use the spawn form's LABELS.
PAGE_LABELS = {
    "cpu": "Maximum CPU cores",
    "memory_gb": "Maximum memory (GB)",
    "gpus": "Maximum GPUs",
    "minutes": "Maximum session length (minutes)",
}


class TeacherPage(Configurable):
    """Settings of the teacher page and of the course choices it stores."""

    course_teachers = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""Course group -> teacher group, e.g. ``{"course-a": "course-a-teachers"}``.
        Members of the teacher group choose what the course (a group in
        ``c.MultipleSpawner.access_rules``) offers; admins may change every course.""",
    )
    offers_file = Unicode(
        "course_offers.json",
        config=True,
        help="""JSON file where the courses' choices are kept (relative paths are relative to the
        hub's working directory). Written atomically; read again whenever it changes.""",
    )

    def path(self) -> Path:
        return Path(self.offers_file).expanduser().resolve()


@dataclass(frozen=True)
class CourseChoice:
    """What one course offers: deployment names and limits, and who set them when."""

    images: tuple[str, ...]
    limits: dict[str, float]
    changed_by: str = ""
    changed_at: str = ""

    def override(self) -> dict[str, Any]:
        """The ``{"images", "limits"}`` mapping ``access.allowed_deployments`` narrows with."""
        return {"images": list(self.images), "limits": dict(self.limits)}

    def to_json(self) -> dict[str, Any]:
        return {**self.override(), "changed_by": self.changed_by, "changed_at": self.changed_at}


class ChoiceStore:
    """The course choices in one JSON file: cached by the file's identity, written atomically.

    Reads and writes run in a thread; writes are serialised, so two teachers saving at once both
    land (each one re-reads the file before changing its own course).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._choices: dict[str, CourseChoice] = {}
        self._lock = asyncio.Lock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def _load(self) -> tuple[tuple[int, int, int] | None, dict[str, CourseChoice]]:
        stamp = self._stat()
        if stamp is None:
            return None, {}
        try:
            data = json.loads(self.path.read_text())
            courses = data["courses"]
            choices = {
                course: CourseChoice(
                    tuple(str(image) for image in entry["images"]),
                    {
                        key: entry["limits"][key]
                        for key in access.LIMIT_KEYS
                        if key in entry["limits"]
                    },
                    str(entry.get("changed_by", "")),
                    str(entry.get("changed_at", "")),
                )
                for course, entry in courses.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{self.path}: not a course choices file ({error!r})") from None
        return stamp, choices

    async def read(self) -> dict[str, CourseChoice]:
        """Every course's choice (courses without one are absent)."""
        stamp = await asyncio.to_thread(self._stat)
        if stamp != self._stamp:
            self._stamp, self._choices = await asyncio.to_thread(self._load)
        return dict(self._choices)

    def _write(self, choices: Mapping[str, CourseChoice]) -> None:
        data = {
            "version": FILE_VERSION,
            "courses": {course: choice.to_json() for course, choice in sorted(choices.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(data, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def save(self, course: str, choice: CourseChoice) -> CourseChoice | None:
        """Store ``course``'s new choice; returns the one it replaced (None if there was none)."""
        async with self._lock:
            _, choices = await asyncio.to_thread(self._load)
            previous = choices.get(course)
            choices[course] = choice
            await asyncio.to_thread(self._write, choices)
            self._stamp, self._choices = await asyncio.to_thread(self._load)
            return previous


@cache
def store_for(path: Path) -> ChoiceStore:
    """The one store of ``path`` in this hub (the page and the spawners share it)."""
    return ChoiceStore(path)


async def course_overrides(spawner: Any) -> dict[str, dict[str, Any]]:
    """``c.MultipleSpawner.course_overrides``: the teachers' choices, by course group."""
    settings = TeacherPage(config=spawner.config)
    try:
        choices = await store_for(settings.path()).read()
    except ConfigError as error:
        # A broken file must not open up more than the admin's rules: it narrows nothing, loudly.
        spawner.log.error("Teacher choices ignored: %s", error)
        return {}
    return {course: choice.override() for course, choice in choices.items()}


@dataclass(frozen=True)
class CourseBounds:
    """What the admin approved for one course: deployments (name -> label) and maximum limits."""

    course: str
    images: dict[str, str]
    limits: access.Limits


async def admin_bounds(spawner: Any, course: str) -> CourseBounds:
    """The admin's approval for ``course`` from the MultipleSpawner's catalog and access rules."""
    catalog = await spawner.catalog()
    allowed = access.allowed_deployments(
        groups=[course],
        is_admin=False,
        deployments=[deployment.name for deployment in catalog.deployments],
        ceiling=spawner._ceiling(),
        rules=access.check_rules(spawner.access_rules),
    )
    labels = {deployment.name: deployment.label for deployment in catalog.deployments}
    images = {name: labels[name] for name in allowed}
    limits = next(iter(allowed.values()), spawner._ceiling())
    return CourseBounds(course, images, limits)


class ChoiceRefused(ValueError):
    """A teacher's form asked for something the admin did not approve (HTTP 400)."""


def parse_choice(form: Mapping[str, list[str]], bounds: CourseBounds, by: str) -> CourseChoice:
    """The course choice a posted form asks for, checked against the admin's ``bounds``."""
    images = [value.strip() for value in form.get("images", []) if value.strip()]
    if not images:
        raise ChoiceRefused(f"Choose at least one image for {bounds.course}.")
    for image in images:
        if image not in bounds.images:
            raise ChoiceRefused(
                f"Image {image!r} is not approved by the admin for {bounds.course}; approved:"
                f" {', '.join(sorted(bounds.images)) or 'none'}."
            )
    limits: dict[str, float] = {}
    for key in access.LIMIT_KEYS:
        values = form.get(key) or [""]
        text = values[0].strip()
        if not text:
            raise ChoiceRefused(f"Give the maximum {LABELS[key].lower()} ({key}).")
        try:
            number = float(text)
        except ValueError:
            raise ChoiceRefused(f"{LABELS[key]} ({key}) must be a number, not {text!r}.") from None
        whole = key != "memory_gb"
        if whole and not number.is_integer():
            raise ChoiceRefused(f"{LABELS[key]} ({key}) must be a whole number, not {text!r}.")
        bound = getattr(bounds.limits, key)
        if not MINIMUM[key] <= number <= bound:
            raise ChoiceRefused(
                f"{LABELS[key]} ({key}) for {bounds.course} must be from {MINIMUM[key]:g} to"
                f" {bound:g} (the admin's bound), not {number:g}."
            )
        limits[key] = int(number) if whole else number
    unique = tuple(dict.fromkeys(images))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return CourseChoice(unique, limits, by, stamp)


class TeacherPageHandler(BaseHandler):
    """``/hub/teachers``: a teacher's courses, their approved images and limits, and a form each."""

    def _settings(self) -> TeacherPage:
        return TeacherPage(config=self.settings["config"])

    def _spawner(self) -> Any:
        cls = self.settings["spawner_class"]
        if not hasattr(cls, "catalog"):
            raise web.HTTPError(
                404, "The teacher page needs c.JupyterHub.spawner_class = 'multiple'"
            )
        return cls(config=self.settings["config"], log=self.log)

    def _courses(self) -> list[str]:
        """The courses the current user may change."""
        user = self.current_user
        teaching = self._settings().course_teachers
        if user.admin:
            return sorted(teaching)
        groups = {group.name for group in user.groups}
        return sorted(course for course, teachers in teaching.items() if teachers in groups)

    async def _render(
        self, courses: list[str], message: str = "", error: str = "", status: int = 200
    ) -> None:
        spawner = self._spawner()
        try:
            choices = await store_for(self._settings().path()).read()
        except ConfigError as failure:
            choices, error = {}, error or f"The stored choices cannot be read: {failure}"
        cards = []
        for course in courses:
            bounds = await admin_bounds(spawner, course)
            choice = choices.get(course)
            chosen_images = set(choice.images) if choice else set(bounds.images)
            cards.append(
                {
                    "course": course,
                    "images": [
                        {"name": name, "label": label, "checked": name in chosen_images}
                        for name, label in sorted(bounds.images.items())
                    ],
                    "limits": [
                        {
                            "key": key,
                            "label": PAGE_LABELS[key],
                            "min": MINIMUM[key],
                            "max": f"{getattr(bounds.limits, key):g}",
                            "step": 0.5 if key == "memory_gb" else 1,
                            "value": f"{choice.limits[key]:g}"
                            if choice and key in choice.limits
                            else f"{getattr(bounds.limits, key):g}",
                        }
                        for key in access.LIMIT_KEYS
                    ],
                    "changed_by": choice.changed_by if choice else "",
                    "changed_at": choice.changed_at if choice else "",
                }
            )
        self.set_status(status)
        namespace = dict(self.template_namespace)
        namespace.update(
            xsrf_token=self.xsrf_token.decode("ascii"),
            courses=cards,
            message=message,
            error=error,
            action=self.request.path,
        )
        self.finish(await _template(self.settings["jinja2_env"]).render_async(**namespace))

    @web.authenticated
    async def get(self) -> None:
        courses = self._courses()
        if not courses:
            raise web.HTTPError(403, "Only a course's teachers may choose what it offers.")
        saved = self.get_argument("saved", "")
        message = f"Saved: {saved} now offers your choice from its next spawn on." if saved else ""
        await self._render(courses, message=message if saved in courses else "")

    @web.authenticated
    async def post(self) -> None:
        courses = self._courses()
        if not courses:
            raise web.HTTPError(403, "Only a course's teachers may choose what it offers.")
        course = self.get_body_argument("course", "")
        if course not in courses:
            self.log.warning(
                "Teacher page: %s may not change course %r", self.current_user.name, course
            )
            raise web.HTTPError(403, f"You do not teach {course!r}.")
        form = {key: self.get_body_arguments(key) for key in ("images", *access.LIMIT_KEYS)}
        bounds = await admin_bounds(self._spawner(), course)
        try:
            choice = parse_choice(form, bounds, self.current_user.name)
        except ChoiceRefused as refused:
            self.log.warning(
                "Teacher page: %s's change of %s refused: %s",
                self.current_user.name,
                course,
                refused,
            )
            await self._render(courses, error=str(refused), status=400)
            return
        previous = await store_for(self._settings().path()).save(course, choice)
        self.log.info(
            "Teacher page: %s changed %s: images %s -> %s, limits %s -> %s",
            self.current_user.name,
            course,
            list(previous.images) if previous else "(admin's)",
            list(choice.images),
            previous.limits if previous else "(admin's)",
            choice.limits,
        )
        self.redirect(f"{self.request.path}?saved={course}", status=303)


@cache
def _template(environment: Any) -> Any:
    """``teachers.html`` compiled in the hub's own Jinja environment (so it extends page.html)."""
    return environment.from_string(TEMPLATE_SOURCE)


def teacher_handlers() -> list[tuple[str, type[BaseHandler]]]:
    """The page's routes, for ``c.JupyterHub.extra_handlers`` (served under ``/hub/``)."""
    return [(ROUTE, TeacherPageHandler)]


def enable_teacher_page(c: Any) -> None:
    """Serve ``/hub/teachers`` and let the MultipleSpawner apply what teachers choose."""
    c.JupyterHub.extra_handlers.extend(teacher_handlers())
    c.MultipleSpawner.course_overrides = course_overrides


__all__ = [
    "CourseChoice",
    "TeacherPage",
    "TeacherPageHandler",
    "course_overrides",
    "enable_teacher_page",
    "parse_choice",
    "teacher_handlers",
]
