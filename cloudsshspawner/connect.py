"""``ssh_connect``: ``asyncssh.connect`` with an overall deadline that never orphans a connection.

``asyncssh.connect`` bounds itself with ``asyncio.wait_for``, which on Python 3.11 returns its
result when it is cancelled in the step that result arrives. Wrapped in a second ``wait_for`` (for
a deadline of our own), the outer one then raises ``CancelledError`` and drops that connection:
it stays open, with nobody left to close it (seen under load when a spawn was stopped, or a tunnel
closed, while it reconnected). Here the connect runs as a task of its own; if the caller is
cancelled or the deadline passes first, the task is cancelled and whatever connection it still
returns is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

# Beyond asyncssh's own connect_timeout (which does not cover every step): the overall deadline.
MARGIN = 5.0


async def ssh_connect(host: str, timeout: float, **options: Any) -> asyncssh.SSHClientConnection:
    """Connect to ``host`` (``options`` as for ``asyncssh.connect``) within ``timeout`` seconds.

    Raises what ``asyncssh.connect`` raises, or ``TimeoutError``; a cancelled caller leaves no
    connection behind.
    """
    attempt = asyncio.ensure_future(asyncssh.connect(host, connect_timeout=timeout, **options))
    try:
        done, _ = await asyncio.wait({attempt}, timeout=timeout + MARGIN)
    except asyncio.CancelledError:
        _abandon(attempt)
        raise
    if not done:
        _abandon(attempt)
        raise TimeoutError(f"no SSH connection to {host} within {timeout + MARGIN:.0f} s")
    return attempt.result()


def _abandon(attempt: asyncio.Future[asyncssh.SSHClientConnection]) -> None:
    attempt.cancel()
    attempt.add_done_callback(_close_result)


def _close_result(attempt: asyncio.Future[asyncssh.SSHClientConnection]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        attempt.result().close()  # the connect finished despite the cancel
