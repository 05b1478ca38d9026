"""Keep login headers and the shared secret out of the hub's request log.

JupyterHub's request log writes every request header of a request that fails with a 500. The front
proxy should send the login headers to ``/hub/login`` only, where the login handler sets them aside
first; this wraps the hub's log function so that, should a proxy send them elsewhere, their values
still never reach a log line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

REMOVED = "[removed]"
"""What the log shows in place of a login header's value."""


def scrubbing_log_function(
    log_function: Callable[[Any], None], header_names: Iterable[str]
) -> Callable[[Any], None]:
    """Wrap a tornado ``log_function`` so that ``header_names`` are logged as ``[removed]``."""
    names = list(header_names)

    def log_request(handler: Any) -> None:
        headers = handler.request.headers
        for name in names:
            count = len(headers.get_list(name))
            if count:
                del headers[name]
                for _ in range(count):
                    headers.add(name, REMOVED)
        log_function(handler)

    return log_request
