"""Worker threads for corc's slow blocking work, kept apart from the event loop's default pool.

Provider SDK waiters and Ansible plays can block a thread for minutes. Run on the loop's default
executor, a handful of them would starve everything else that uses it (DNS look-ups, file reads,
the record store), so they run here instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Threads for slow provider calls and configuration plays (each mostly waits on the network).
SLOW_WORKERS = int(os.environ.get("CORC_SLOW_WORKERS", "32"))

_executor: ThreadPoolExecutor | None = None


def slow_executor() -> ThreadPoolExecutor:
    """The process-wide pool for slow blocking calls (made on first use)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=SLOW_WORKERS, thread_name_prefix="corc-slow")
    return _executor


async def run_slow(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a blocking ``func(*args, **kwargs)`` on the slow pool, keeping context variables."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(slow_executor(), call)
