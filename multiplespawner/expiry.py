"""Session length, enforced: at its end the server is stopped (and its resource removed).

The end is fixed when the sub-spawner starts the notebook (a VM's boot time is not taken from the
student), handed to the notebook as ``GRIDHUB_SESSION_END`` (ISO 8601, UTC) with
``GRIDHUB_SESSION_WARNING`` (when the warning is due), and kept in the spawner's state, so a hub
restart re-arms the timer from it (a session that ended while the hub was down is stopped as soon
as the hub is back). JupyterLab shows the warning: the notebook's ``JUPYTER_PATH`` and
``JUPYTER_CONFIG_PATH`` also name ``session_notice/`` (a prebuilt lab extension that counts down
in a banner, and a server config that hands it the two times), where that directory exists on the
notebook's host (this machine, a sandbox VM, a SLURM node; not a container: its image keeps its
own paths). At the end the hub stops the server exactly as its own stop button does:
proxy route removed, ``stop()`` (which tears the resource down), state cleared.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyterhub.spawner import Spawner
from traitlets import Float

END_VARIABLE = "GRIDHUB_SESSION_END"
WARNING_VARIABLE = "GRIDHUB_SESSION_WARNING"
STATE_KEY = "session_end"
#: The lab extension (``share/jupyter``) and the server config that feeds it (``etc/jupyter``).
NOTICE_DIR = Path(__file__).resolve().with_name("session_notice")
NOTICE_PATHS = {
    "JUPYTER_PATH": str(NOTICE_DIR / "share" / "jupyter"),
    "JUPYTER_CONFIG_PATH": str(NOTICE_DIR / "etc" / "jupyter"),
}
#: Seconds between tries while the hub is still busy with the server (spawning, checking).
BUSY_RETRY = 1.0


def iso(epoch: float) -> str:
    """``epoch`` as ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class SessionExpiry(Spawner):
    """A spawner whose servers stop when their session ends.

    Subclasses call :meth:`session_expiry_prepare` with the sub-spawner and the session length
    right before the sub-spawner starts, :meth:`session_expiry_start` once it runs and
    :meth:`session_expiry_stop` when it stops; ``get_state``/``load_state``/``clear_state`` keep
    the end across hub restarts.
    """

    session_unit_seconds = Float(
        60.0,
        config=True,
        help="""Seconds in one minute of session length. Only tests change it (e.g. to 2, so a
        5-minute session lasts 10 seconds).""",
    )
    session_warning_minutes = Float(
        5.0,
        config=True,
        help="""How many minutes before the end the server is warned (``GRIDHUB_SESSION_WARNING``
        and a line in the hub's log). At most half the session.""",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._session_minutes: float | None = None
        self._session_end: float | None = None
        self._session_timer: asyncio.TimerHandle | None = None
        self._session_warning_timer: asyncio.TimerHandle | None = None
        self._session_task: asyncio.Task[None] | None = None

    # The server itself is the subclass's business.
    async def start(self) -> Any:
        raise NotImplementedError

    async def stop(self, now: bool = False) -> None:
        raise NotImplementedError

    async def poll(self) -> int | None:
        raise NotImplementedError

    # -- the end ---------------------------------------------------------------------------------

    @property
    def session_end(self) -> float | None:
        """When the session ends (epoch seconds), once the server has been started."""
        return self._session_end

    def _fix_end(self) -> float:
        if self._session_end is None:
            assert self._session_minutes is not None
            # Whole seconds, so the end the notebook reads is exactly the one enforced.
            end = time.time() + self._session_minutes * self.session_unit_seconds
            self._session_end = float(math.ceil(end))
        return self._session_end

    def _warning_lead(self) -> float:
        assert self._session_minutes is not None
        return min(self.session_warning_minutes, self._session_minutes / 2) * (
            self.session_unit_seconds
        )

    def session_expiry_prepare(
        self, child: Spawner, minutes: float | None, notice: bool = True
    ) -> None:
        """Give ``child`` the session's end in its environment (fixed when it builds the
        environment, i.e. when it starts the notebook). ``minutes`` None or 0: no limit.
        ``notice``: also put ``session_notice/`` on the notebook's Jupyter paths (not for a
        container, whose image has its own paths and not our files)."""
        self.session_expiry_disarm()
        self._session_end = None
        self._session_minutes = minutes or None
        if not minutes:
            return
        environment = dict(child.environment)
        # Callables are evaluated by Spawner.get_env() when the child starts the notebook.
        environment[END_VARIABLE] = lambda _spawner: iso(self._fix_end())
        environment[WARNING_VARIABLE] = lambda _spawner: iso(self._fix_end() - self._warning_lead())
        for variable, directory in NOTICE_PATHS.items() if notice else ():
            environment[variable] = prepend_path(directory, environment.get(variable))
        child.environment = environment

    async def session_expiry_start(self) -> None:
        """The server runs: fix the end (if the child did not) and arm the timers."""
        if self._session_minutes:
            self._fix_end()
            self.log.info(
                "%s: session of %g minutes ends at %s",
                self._log_name,
                self._session_minutes,
                iso(self._session_end or 0),
            )
            self._session_arm()

    async def session_expiry_stop(self) -> None:
        """The server stopped: nothing is left to expire."""
        self.session_expiry_disarm()

    # -- timers ----------------------------------------------------------------------------------

    def _session_arm(self) -> None:
        self.session_expiry_disarm()
        if self._session_end is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not inside the hub (e.g. a config check): nothing to enforce
        left = self._session_end - time.time()
        self._session_timer = loop.call_later(max(left, 0), self._session_expired)
        if self._session_minutes and left > self._warning_lead():
            self._session_warning_timer = loop.call_later(
                left - self._warning_lead(), self._session_warn
            )

    def session_expiry_disarm(self) -> None:
        """Cancel the timers (the end itself is kept until ``clear_state``)."""
        for timer in (self._session_timer, self._session_warning_timer):
            if timer is not None:
                timer.cancel()
        self._session_timer = self._session_warning_timer = None

    def _session_warn(self) -> None:
        self._session_warning_timer = None
        self.log.warning(
            "%s: session ends at %s; the server will be stopped then",
            self._log_name,
            iso(self._session_end or 0),
        )

    def _session_expired(self) -> None:
        self._session_timer = None
        self._session_task = asyncio.ensure_future(self._session_stop())

    async def _session_stop(self) -> None:
        if self._stop_pending or self._session_end is None:
            return
        if self._spawn_pending or self._check_pending:
            # The hub is still starting or (after a restart) checking this server; let it finish.
            self._session_timer = asyncio.get_running_loop().call_later(
                BUSY_RETRY, self._session_expired
            )
            return
        self.log.warning(
            "%s: session ended at %s; stopping the server",
            self._log_name,
            iso(self._session_end),
        )
        try:
            await stop_like_the_hub(self)
        except Exception:
            self.log.exception("%s: could not stop the expired session", self._log_name)

    # -- state -----------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._session_end is not None:
            state[STATE_KEY] = {"end": self._session_end, "minutes": self._session_minutes}
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        saved = state.get(STATE_KEY)
        if not isinstance(saved, dict) or not isinstance(saved.get("end"), int | float):
            return
        self._session_end = float(saved["end"])
        self._session_minutes = saved.get("minutes") or None
        self._session_arm()

    def clear_state(self) -> None:
        super().clear_state()
        self.session_expiry_disarm()
        self._session_end = None
        self._session_minutes = None


def prepend_path(directory: str, current: Any) -> Any:
    """``directory`` first on the search path ``current`` (a string, a callable or None)."""
    if callable(current):
        return lambda spawner: prepend_path(directory, current(spawner))
    parts = [part for part in str(current or "").split(":") if part and part != directory]
    return ":".join([directory, *parts])


async def stop_like_the_hub(spawner: Spawner) -> None:
    """Stop ``spawner``'s server as the hub's stop button does (route, stop, state, tokens)."""
    from jupyterhub.app import JupyterHub

    user = spawner.user
    if JupyterHub.initialized() and spawner.server is not None:
        await JupyterHub.instance().proxy.delete_user(user, spawner.name)
    await user.stop(spawner.name)


__all__ = [
    "END_VARIABLE",
    "NOTICE_DIR",
    "NOTICE_PATHS",
    "WARNING_VARIABLE",
    "SessionExpiry",
    "iso",
    "prepend_path",
    "stop_like_the_hub",
]
