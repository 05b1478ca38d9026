"""HeaderAuthenticator: log in users from headers set by a trusted front proxy."""

from __future__ import annotations

import hmac
import json
import os
import re
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Bool, Dict, Integer, List, Unicode, default, validate

from .handlers import USER_DATA_KEY, HeaderLoginHandler, SetUserDataHandler
from .parsers import HeaderParseError, Parser, as_parser
from .peers import address_in, front_peer, parse_networks

_ENV_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class HeaderAuthenticator(Authenticator):
    """Authenticate users from HTTP headers forwarded by a trusted front proxy.

    The front proxy (the institution's portal, Apache or nginx) authenticates the person and forwards
    the username in one header and, optionally, more data in others. Login still runs through
    JupyterHub's normal path (``normalize_username``, allow and block lists, admin, groups); the extra
    header values are kept in the encrypted ``auth_state``.

    Only requests from ``trusted_proxy_ips`` (and, when configured, carrying ``shared_secret``) are
    believed; any other request carrying the username header is refused with 403.
    """

    auto_login = Bool(
        True,
        config=True,
        help="Log in on the first visit to /hub/login, without a login form (the front proxy did it).",
    )

    allowed_headers = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""Headers to read at login, as {key: header name}.

        The key ``auth`` (required) names the header that carries the username; it defaults to
        ``Remote-User``. Every other key names a header whose parsed value is stored in the user's
        auth_state under that key, e.g. ``{"auth": "Remote-User", "auth_data": "Auth-Data"}``.
        """,
    )

    @default("allowed_headers")
    def _allowed_headers_default(self) -> dict[str, str]:
        return {"auth": "Remote-User"}

    @validate("allowed_headers")
    def _check_allowed_headers(self, proposal: Any) -> dict[str, str]:
        headers = dict(proposal["value"])
        headers.setdefault("auth", "Remote-User")
        for key, header in headers.items():
            if not header.strip():
                raise ValueError(
                    f"allowed_headers[{key!r}] must name a header, got an empty string"
                )
        if USER_DATA_KEY in headers:
            raise ValueError(
                f"allowed_headers may not use the key {USER_DATA_KEY!r}: it is reserved"
            )
        return headers

    header_parser_classes = Dict(
        config=True,
        help="""How to parse each header, as {key: Parser class or instance}.

        Keys are those of ``allowed_headers``; a key without an entry keeps the raw string.
        Available: ``Parser`` (identity), ``JSONParser``, ``RegexUsernameParser``, or a subclass of
        ``headerauthenticator.Parser`` of your own. Example:
        ``{"auth": RegexUsernameParser, "auth_data": JSONParser}``.
        """,
    )

    @validate("header_parser_classes")
    def _check_parsers(self, proposal: Any) -> dict[str, Any]:
        for key, parser in proposal["value"].items():
            as_parser(parser)  # raises a TypeError naming the bad entry
            if not isinstance(key, str):
                raise ValueError(f"header_parser_classes keys must be strings, got {key!r}")
        return proposal["value"]

    spawner_shared_headers = List(
        Unicode(),
        config=True,
        help="""auth_state keys exported to the spawned server's environment.

        The variable is named after the key, upper-cased, with characters other than letters, digits
        and ``_`` replaced by ``_`` (``auth_data`` becomes ``AUTH_DATA``). Strings are exported as
        they are; other values as JSON.
        """,
    )

    user_external_allow_attributes = List(
        Unicode(),
        config=True,
        help="""Attributes a logged-in user may set with ``POST /hub/set-user-data``.

        The JSON object posted there may hold only these keys; they are stored in the user's
        auth_state under ``user_data`` and persist across logins and hub restarts.
        """,
    )

    user_data_max_bytes = Integer(
        16384,
        config=True,
        help="Largest JSON body accepted by /hub/set-user-data, in bytes.",
    )

    max_header_length = Integer(
        8192,
        config=True,
        help="Longest header value accepted, in characters; a longer value is refused with 400.",
    )

    trusted_proxy_ips = List(
        Unicode(),
        ["127.0.0.1", "::1"],
        config=True,
        help="""Addresses (IPs or CIDR blocks) of the front proxies whose headers are believed.

        The address is the TCP peer that connected to the hub's public port (as recorded by the hub's
        own proxy), never a client-supplied ``X-Forwarded-For`` entry. An empty list accepts any peer
        and is allowed only together with ``shared_secret``.
        """,
    )

    hub_proxy_ips = List(
        Unicode(),
        ["127.0.0.1", "::1"],
        config=True,
        help="""Addresses of the hub's own proxy (configurable-http-proxy).

        When a request reaches the hub from one of these, the front peer is the last
        ``X-Forwarded-For`` entry, which that proxy appends itself.
        """,
    )

    shared_secret_header = Unicode(
        "",
        config=True,
        help="Header that must carry ``shared_secret`` (e.g. ``X-Gridhub-Secret``). Empty: not used.",
    )

    shared_secret = Unicode(
        "",
        config=True,
        help="""Secret the front proxy sends in ``shared_secret_header``; compared in constant time.

        Use it where peer addresses cannot be trusted. Prefer setting it from the environment
        (``GRIDHUB_HEADER_SECRET``) over writing it in the config file.
        """,
    )

    @default("shared_secret")
    def _shared_secret_default(self) -> str:
        return os.environ.get("GRIDHUB_HEADER_SECRET", "")

    groups_key = Unicode(
        "groups",
        config=True,
        help="""allowed_headers key whose value lists the user's groups when ``manage_groups`` is on.

        The value may be a JSON list (with ``JSONParser``) or a comma-separated string.
        """,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._trusted = parse_networks(self.trusted_proxy_ips, "trusted_proxy_ips")
        self._hub_proxy = parse_networks(self.hub_proxy_ips, "hub_proxy_ips")
        self._parsers: dict[str, Parser] = {
            key: as_parser(parser) for key, parser in self.header_parser_classes.items()
        }
        if not self._trusted and not self.shared_secret:
            raise ValueError(
                "HeaderAuthenticator.trusted_proxy_ips is empty and no shared_secret is set: anyone"
                " could log in as anyone. Name the front proxy's address or set a shared secret."
            )
        if bool(self.shared_secret) != bool(self.shared_secret_header):
            raise ValueError(
                "HeaderAuthenticator.shared_secret and shared_secret_header must be set together"
            )

    # -- JupyterHub API ---------------------------------------------------------------------------

    def get_handlers(self, app: Any) -> list[tuple[str, type]]:
        return [("/login", HeaderLoginHandler), ("/set-user-data", SetUserDataHandler)]

    def has_auth_header(self, handler: web.RequestHandler) -> bool:
        """True when the request carries the username header at all."""
        return self.allowed_headers["auth"] in handler.request.headers

    def check_request_source(self, handler: web.RequestHandler) -> None:
        """Raise 403 unless the request comes from a trusted front proxy (and carries the secret)."""
        if self._trusted:
            peer = front_peer(handler.request, self._hub_proxy)
            if not address_in(peer, self._trusted):
                self.log.warning("Refused login headers from untrusted peer %s", peer or "unknown")
                raise web.HTTPError(
                    403,
                    "Login headers are accepted only from the configured front proxy."
                    " Open this service through its front page.",
                )
        if self.shared_secret:
            sent = handler.request.headers.get(self.shared_secret_header, "")
            if not hmac.compare_digest(sent.encode(), self.shared_secret.encode()):
                self.log.warning("Refused login headers without the front proxy's shared secret")
                raise web.HTTPError(403, "Login headers did not carry the front proxy's secret.")

    async def authenticate(
        self, handler: web.RequestHandler, data: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Read the configured headers into an auth model; 400 for a malformed value."""
        self.check_request_source(handler)
        values = {key: self._read_header(handler, key) for key in self.allowed_headers}
        username = values.pop("auth")
        if username is None:
            raise web.HTTPError(
                401, f"No {self.allowed_headers['auth']} header: sign in through the front proxy."
            )
        if not isinstance(username, str) or not username.strip():
            raise web.HTTPError(
                400, f"The {self.allowed_headers['auth']} header holds no username."
            )
        auth_state = {key: value for key, value in values.items() if value is not None}
        model: dict[str, Any] = {"name": username.strip(), "auth_state": auth_state}
        if self.manage_groups:
            model["groups"] = self._groups(auth_state.get(self.groups_key))
        # Keep what the user posted to /set-user-data: a new login replaces the header values only.
        if self.enable_auth_state:
            user = handler.find_user(self.normalize_username(model["name"]))
            previous = (await user.get_auth_state() if user is not None else None) or {}
            if USER_DATA_KEY in previous:
                auth_state[USER_DATA_KEY] = previous[USER_DATA_KEY]
        return model

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Export ``spawner_shared_headers`` from auth_state into the spawner's environment."""
        if not self.spawner_shared_headers:
            return
        auth_state = await user.get_auth_state() or {}
        for key in self.spawner_shared_headers:
            if key not in auth_state:
                continue
            value = auth_state[key]
            name = _ENV_NAME_UNSAFE.sub("_", key).upper()
            spawner.environment[name] = value if isinstance(value, str) else json.dumps(value)

    # -- helpers ----------------------------------------------------------------------------------

    def _read_header(self, handler: web.RequestHandler, key: str) -> Any:
        header = self.allowed_headers[key]
        raw = handler.request.headers.get(header)
        if raw is None:
            return None
        if len(raw) > self.max_header_length:
            raise web.HTTPError(
                400, f"The {header} header is longer than {self.max_header_length} characters."
            )
        parser = self._parsers.get(key)
        if parser is None:
            return raw
        try:
            return parser.parse(raw)
        except HeaderParseError as error:
            raise web.HTTPError(400, f"The {header} header {error}.") from None

    def _groups(self, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [group.strip() for group in value.split(",") if group.strip()]
        if isinstance(value, list) and all(isinstance(group, str) for group in value):
            return value
        raise web.HTTPError(400, f"The groups header ({self.groups_key}) must list group names.")
