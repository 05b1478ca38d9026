"""HeaderAuthenticator: log in users from headers set by a trusted front proxy."""

from __future__ import annotations

import hmac
import json
import os
import re
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from tornado.httputil import HTTPHeaders
from traitlets import Bool, Dict, Integer, List, Unicode, default, validate

from .handlers import USER_DATA_KEY, HeaderLoginHandler, SetUserDataHandler
from .parsers import HeaderParseError, Parser, as_parser
from .peers import address_in, front_peer, parse_networks
from .scrub import scrubbing_log_function

_ENV_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0 (but tab), DEL, C1
_EXPORTED_ATTR = "_headerauthenticator_exported"
MIN_SECRET_LENGTH = 16
"""Shortest shared secret accepted (characters)."""
MAX_GROUP_NAME = 255


class HeaderAuthenticator(Authenticator):
    """Authenticate users from HTTP headers forwarded by a trusted front proxy.

    The front proxy (the institution's portal, Apache or nginx) authenticates the person and forwards
    the username in one header and, optionally, more data in others. Login still runs through
    JupyterHub's normal path (``normalize_username``, allow and block lists, admin, groups); the extra
    header values are kept in the encrypted ``auth_state``.

    Only requests from ``trusted_proxy_ips`` that carry ``shared_secret`` in
    ``shared_secret_header`` are believed; any other request carrying the username header is refused
    with 403. The hub does not start without a secret unless ``insecure_no_shared_secret`` is set.
    A repeated header, a username with a comma, invalid UTF-8, control characters or an
    unparseable value are refused with 400 and a short reason that never repeats the value.
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
        own proxy), never a client-supplied ``X-Forwarded-For`` entry. IPv4-mapped IPv6 entries
        (``::ffff:10.0.0.1``) match the IPv4 address. This check comes on top of the shared secret:
        on a machine that runs user code, "the peer is 127.0.0.1" proves nothing by itself. An empty
        list accepts any peer (the secret alone decides).
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
        "X-Gridhub-Secret",
        config=True,
        help="""Header that must carry ``shared_secret`` on every login request.

        The front proxy sets it on the login location only, and clears it (with every other login
        header) on all other locations, so no user's server ever sees it.
        """,
    )

    shared_secret = Unicode(
        "",
        config=True,
        help="""Secret the front proxy sends in ``shared_secret_header``; compared in constant time.

        Required (at least 16 characters) unless ``insecure_no_shared_secret`` is set: without it,
        any process on the hub machine, including every user's notebook, could send the login
        headers itself. Prefer setting it from the environment (``GRIDHUB_HEADER_SECRET``) or a
        0600 file over writing it in the config file.
        """,
    )

    @default("shared_secret")
    def _shared_secret_default(self) -> str:
        return os.environ.get("GRIDHUB_HEADER_SECRET", "")

    insecure_no_shared_secret = Bool(
        False,
        config=True,
        help="""Accept login headers without a shared secret, trusting the peer address alone.

        UNSAFE wherever anything else runs on the front proxy's machine or the hub's machine (local
        notebooks, SSH reverse tunnels): any such process can log in as any user, admins included.
        Only for a hub whose port nothing but the front proxy can reach. Logged as a warning at
        every start.
        """,
    )

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
        self._check_secret_settings()

    def _check_secret_settings(self) -> None:
        if self.shared_secret:
            if not self.shared_secret_header.strip():
                raise ValueError(
                    "HeaderAuthenticator.shared_secret is set but shared_secret_header is empty:"
                    " name the header the front proxy sends it in (e.g. X-Gridhub-Secret)."
                )
            if len(self.shared_secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"HeaderAuthenticator.shared_secret (GRIDHUB_HEADER_SECRET) is shorter than"
                    f" {MIN_SECRET_LENGTH} characters: use a random one, e.g. `openssl rand -hex 32`."
                )
            return
        if not self.insecure_no_shared_secret:
            raise ValueError(
                "HeaderAuthenticator needs a shared secret: any process on this machine (a"
                " notebook, an SSH tunnel) could otherwise log in as anyone. Set"
                " GRIDHUB_HEADER_SECRET (or c.HeaderAuthenticator.shared_secret) and have the front"
                f" proxy send it in the {self.shared_secret_header or 'X-Gridhub-Secret'} header on"
                " /hub/login, or set c.HeaderAuthenticator.insecure_no_shared_secret = True."
            )
        if not self._trusted:
            raise ValueError(
                "HeaderAuthenticator.trusted_proxy_ips is empty and no shared_secret is set: anyone"
                " could log in as anyone. Name the front proxy's address or set a shared secret."
            )
        self.log.warning(
            "INSECURE: HeaderAuthenticator.insecure_no_shared_secret is set. Login headers are"
            " believed from any process at %s, so every local process (notebooks, SSH tunnels)"
            " can log in as any user, admins included. Set GRIDHUB_HEADER_SECRET instead.",
            ", ".join(self.trusted_proxy_ips),
        )

    # -- JupyterHub API ---------------------------------------------------------------------------

    def get_handlers(self, app: Any) -> list[tuple[str, type]]:
        # JupyterHub builds its tornado settings before it asks for handlers and makes the tornado
        # application after: the request log is wrapped here, for every hub request.
        settings = getattr(app, "tornado_settings", None)
        if isinstance(settings, dict) and callable(settings.get("log_function")):
            settings["log_function"] = scrubbing_log_function(
                settings["log_function"], self.login_header_names()
            )
        return [("/login", HeaderLoginHandler), ("/set-user-data", SetUserDataHandler)]

    def login_header_names(self) -> list[str]:
        """Every header the login reads: the configured ones and the shared-secret header."""
        names = list(self.allowed_headers.values())
        if self.shared_secret_header.strip():
            names.append(self.shared_secret_header)
        return names

    def has_auth_header(self, handler: web.RequestHandler) -> bool:
        """True when the request carries the username header at all."""
        return self.allowed_headers["auth"] in login_headers(handler)

    def check_request_source(self, handler: web.RequestHandler) -> None:
        """Raise 403 unless the request comes from a trusted front proxy and carries the secret."""
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
            sent = login_headers(handler).get_list(self.shared_secret_header)
            # One header, equal in constant time; bytes, so any character compares safely.
            if len(sent) != 1 or not hmac.compare_digest(
                sent[0].encode("utf-8", "surrogateescape"),
                self.shared_secret.encode("utf-8", "surrogateescape"),
            ):
                self.log.warning("Refused login headers without the front proxy's shared secret")
                raise web.HTTPError(403, "Login headers did not carry the front proxy's secret.")

    async def authenticate(
        self, handler: web.RequestHandler, data: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Read the configured headers into an auth model; 400 for a malformed value."""
        self.check_request_source(handler)
        values = {key: self._read_header(handler, key) for key in self.allowed_headers}
        username = values.pop("auth")
        header = self.allowed_headers["auth"]
        if username is None:
            raise web.HTTPError(401, f"No {header} header: sign in through the front proxy.")
        if not isinstance(username, str) or not username.strip():
            raise web.HTTPError(400, f"The {header} header holds no username.")
        auth_state = {key: value for key, value in values.items() if value is not None}
        model: dict[str, Any] = {"name": username.strip(), "auth_state": auth_state}
        if self.manage_groups:
            # No groups header: keep the user's groups (None tells JupyterHub not to sync them).
            groups = auth_state.get(self.groups_key)
            model["groups"] = None if groups is None else self._groups(groups)
        # Keep what the user posted to /set-user-data: a new login replaces the header values only.
        if self.enable_auth_state:
            user = handler.find_user(self.normalize_username(model["name"]))
            previous = (await user.get_auth_state() if user is not None else None) or {}
            if USER_DATA_KEY in previous:
                auth_state[USER_DATA_KEY] = previous[USER_DATA_KEY]
        return model

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Export ``spawner_shared_headers`` from the current auth_state into the environment.

        The values are those of the user's latest login. What an earlier spawn of the same spawner
        exported is undone first (the configured value comes back), so a key the latest login did
        not send is never handed on stale.
        """
        environment = dict(spawner.environment)
        previous: dict[str, tuple[str, Any]] = getattr(spawner, _EXPORTED_ATTR, {})
        for name, (ours, replaced) in previous.items():
            if environment.get(name) == ours:
                if replaced is None:
                    environment.pop(name)
                else:
                    environment[name] = replaced
        exported: dict[str, tuple[str, Any]] = {}
        if self.spawner_shared_headers:
            auth_state = await user.get_auth_state() or {}
            for key in self.spawner_shared_headers:
                if key not in auth_state:
                    continue
                value = auth_state[key]
                name = _ENV_NAME_UNSAFE.sub("_", key).upper()
                ours = value if isinstance(value, str) else json.dumps(value)
                exported[name] = (ours, environment.get(name))
                environment[name] = ours
        spawner.environment = environment
        setattr(spawner, _EXPORTED_ATTR, exported)

    # -- helpers ----------------------------------------------------------------------------------

    def _read_header(self, handler: web.RequestHandler, key: str) -> Any:
        header = self.allowed_headers[key]
        values = login_headers(handler).get_list(header)
        if not values:
            return None
        if len(values) > 1:
            raise web.HTTPError(400, f"The {header} header was sent more than once.")
        raw = values[0]
        if len(raw) > self.max_header_length:
            raise web.HTTPError(
                400, f"The {header} header is longer than {self.max_header_length} characters."
            )
        try:
            # HTTP headers arrive as bytes that tornado decodes as latin-1; senders use UTF-8.
            text = raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise web.HTTPError(400, f"The {header} header is not valid UTF-8.") from None
        if _CONTROL.search(text):
            raise web.HTTPError(400, f"The {header} header contains control characters.")
        if key == "auth" and "," in text:
            # Proxies join repeated headers with commas: "victim,alice" is two values, not one.
            raise web.HTTPError(400, f"The {header} header holds more than one value.")
        parser = self._parsers.get(key)
        if parser is None:
            return text
        try:
            return parser.parse(text)
        except HeaderParseError as error:
            raise web.HTTPError(400, f"The {header} header {error}.") from None

    def _groups(self, value: Any) -> list[str]:
        if isinstance(value, str):
            groups = [group.strip() for group in value.split(",") if group.strip()]
        elif isinstance(value, list) and all(isinstance(group, str) for group in value):
            groups = value
        else:
            raise web.HTTPError(
                400, f"The groups header ({self.groups_key}) must list group names."
            )
        if any(len(group) > MAX_GROUP_NAME for group in groups):
            raise web.HTTPError(
                400,
                f"The groups header ({self.groups_key}) holds a name longer than"
                f" {MAX_GROUP_NAME} characters.",
            )
        return groups


def login_headers(handler: web.RequestHandler) -> HTTPHeaders:
    """The login headers of ``handler``'s request (set aside by the login handler, if it ran)."""
    headers = getattr(handler, "login_headers", None)
    return handler.request.headers if headers is None else headers
