"""Request handlers HeaderAuthenticator adds to the hub: /hub/login and /hub/set-user-data."""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.orm import User as ORMUser
from jupyterhub.scopes import has_scope
from tornado import web
from tornado.httputil import HTTPHeaders

USER_DATA_KEY = "user_data"
"""auth_state key under which ``POST /hub/set-user-data`` keeps what the user posted.

It is kept apart from the header values because the user controls it: code that decides *who* a
user is (e.g. ``ldap_hooks``) must read header values, never this.
"""


class HeaderLoginHandler(LoginHandler):
    """Logs the user in from the forwarded headers, through JupyterHub's ``login_user``.

    A request with the username header always logs in as that user (the front proxy decides who
    the person is). Without it, a user who is already logged in is sent on; anyone else is told to
    come through the front proxy.
    """

    login_headers: HTTPHeaders | None = None
    """The login headers of this request, set aside before anything else runs (see prepare)."""

    async def prepare(self) -> None:
        # Move the login headers (and the secret) out of the request first: JupyterHub logs every
        # request header of a request that fails with a 500, and nothing may log these.
        headers = self.request.headers
        self.login_headers = HTTPHeaders()
        for name in self.authenticator.login_header_names():
            for value in headers.get_list(name):
                self.login_headers.add(name, value)
            if name in headers:
                del headers[name]
        await super().prepare()

    async def get(self) -> None:
        if not self.authenticator.has_auth_header(self):
            user = self.current_user
            if user is None:
                header = self.authenticator.allowed_headers["auth"]
                raise web.HTTPError(
                    401, f"No {header} header was received: sign in through the front proxy."
                )
            self.set_login_cookie(user)
            self.redirect(self.get_next_url(user), permanent=False)
            return
        user = await self.login_user()
        if user is None:
            raise web.HTTPError(403, "Your account is not allowed to use this hub.")
        self._jupyterhub_user = user
        self.redirect(self.get_next_url(user), permanent=False)

    async def post(self) -> None:
        await self.get()


class SetUserDataHandler(APIHandler):
    """``POST /hub/set-user-data``: store a JSON object of allowed attributes in auth_state.

    Authenticated as the user (session cookie with XSRF token, or a user API token with full
    authority; narrowed tokens are refused). Only keys listed in
    ``HeaderAuthenticator.user_external_allow_attributes`` are accepted; the values are stored under
    ``auth_state["user_data"]`` and persist across logins and restarts.
    """

    async def post(self) -> None:
        authenticator = self.authenticator
        user = self.current_user
        if user is None or not isinstance(user.orm_user, ORMUser):
            raise web.HTTPError(403, "Log in first: set-user-data needs a user's credentials.")
        # Full authority over the user (a session cookie, or a token that could mint tokens); a
        # narrowed token (e.g. read-only) may not change what identifies the user downstream.
        if not has_scope(f"tokens!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, "These credentials may not change this user's data.")
        if not authenticator.enable_auth_state:
            raise web.HTTPError(
                409,
                "auth_state is disabled on this hub (enable_auth_state), so data cannot be kept.",
            )
        body = self.request.body or b""
        if len(body) > authenticator.user_data_max_bytes:
            raise web.HTTPError(
                413, f"The data is larger than {authenticator.user_data_max_bytes} bytes."
            )
        data = _decode_object(body)
        allowed = set(authenticator.user_external_allow_attributes)
        unknown = sorted(set(data) - allowed)
        if unknown:
            accepted = ", ".join(sorted(allowed)) or "none"
            raise web.HTTPError(
                400, f"Not allowed to set {', '.join(unknown)} (accepted: {accepted})."
            )
        auth_state = await user.get_auth_state() or {}
        stored = dict(auth_state.get(USER_DATA_KEY) or {})
        stored.update(data)
        auth_state[USER_DATA_KEY] = stored
        await user.save_auth_state(auth_state)
        self.log.info("Stored user data %s for %s", sorted(data), user.name)
        self.write({"user_data": sorted(stored)})


def _decode_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPError(400, "The body must be a JSON object.") from None
    if not isinstance(data, dict):
        raise web.HTTPError(400, 'The body must be a JSON object, e.g. {"key": "value"}.')
    return data
