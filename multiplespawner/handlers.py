"""``GET /hub/api/multiplespawner/options``: the JSON schema of what a user may choose.

Query arguments: ``server`` (a named server; default the default server) and ``user`` (another
user's options; needs the ``admin:servers`` scope). Registered with the hub's API handlers when
this module is imported, as batchspawner does for its own API.
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers import default_handlers
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from .errors import ConfigError, OptionsError

ROUTE = r"/api/multiplespawner/options"


class OptionsAPIHandler(APIHandler):
    """The options schema of the current user (or, for admins, of ``?user=``)."""

    async def get(self) -> None:
        current = self.current_user
        if current is None:
            raise web.HTTPError(403, "Log in or send a token to see the spawn options")
        me = getattr(current, "name", None) if hasattr(current, "orm_user") else None
        wanted = self.get_argument("user", me or "")
        if not wanted:
            raise web.HTTPError(400, "Say whose options to show with ?user=")
        if wanted != me and not self.has_scope("admin:servers"):
            raise web.HTTPError(403, f"Only admins may see another user's options ({wanted})")
        user = self.find_user(wanted)
        if user is None:
            raise web.HTTPError(404, f"No such user {wanted}")
        spawner = user.spawner  # the options do not depend on the server's name
        schema_of = getattr(spawner, "options_schema", None)
        if schema_of is None:
            raise web.HTTPError(404, "This hub's spawner is not the MultipleSpawner")
        try:
            schema = await schema_of()
        except OptionsError as error:
            raise web.HTTPError(error.status_code, error.message) from None
        except ConfigError as error:
            raise web.HTTPError(500, f"The spawner's configuration is invalid: {error}") from None
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(schema))


def register() -> None:
    """Add the handler to the hub's API routes (once)."""
    if all(route[0] != ROUTE for route in default_handlers):
        default_handlers.append((ROUTE, OptionsAPIHandler))
