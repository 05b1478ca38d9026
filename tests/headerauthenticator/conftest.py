"""A hub with HeaderAuthenticator behind nginx, shared by the tests of one module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.harness.hub import Hub
from tests.harness.nginx import Nginx, proxy_headers
from tests.harness.process import server_environment

START_TIMEOUT = 180.0
"""Seconds a hub may take to start (or to fail): on a loaded 2-core machine importing JupyterHub
alone can take half a minute."""

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

SECRET_HEADER = "X-Gridhub-Secret"
SECRET = "front-proxy-secret-5b1e0c7a9d3f4e2b8a6c"
"""The shared secret nginx adds on /hub/login (the hub reads it from GRIDHUB_HEADER_SECRET)."""

AUTH_HEADERS = ("Remote-User", "Auth-Data", "Mail", "Groups", SECRET_HEADER)
"""Every header the hub believes at login: only the login location may send them."""

HEADER_CONFIG = f"""
from headerauthenticator import JSONParser
c.JupyterHub.authenticator_class = "header"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"carol"}}
c.JupyterHub.default_url = "/hub/home"
c.HeaderAuthenticator.enable_auth_state = True
c.HeaderAuthenticator.shared_secret_header = {SECRET_HEADER!r}
c.HeaderAuthenticator.allowed_headers = {{
    "auth": "Remote-User", "auth_data": "Auth-Data", "mail": "Mail", "groups": "Groups",
}}
c.HeaderAuthenticator.manage_groups = True
c.HeaderAuthenticator.header_parser_classes = {{"auth_data": JSONParser}}
c.HeaderAuthenticator.spawner_shared_headers = ["auth_data", "mail"]
c.HeaderAuthenticator.user_external_allow_attributes = ["PersonalDistinguishedName", "quota", "mail"]
c.HeaderAuthenticator.user_data_max_bytes = 1024
c.HeaderAuthenticator.max_header_length = 1024
"""


def basic_auth_front(hub: Hub, secret: str = SECRET) -> str:
    """nginx locations that authenticate with HTTP basic auth and forward Remote-User.

    Only ``/hub/login`` gets the login headers and the shared secret; every other path (the hub's
    pages, the users' servers) gets them cleared, so no server behind the proxy ever sees them and a
    client cannot send its own. Extra data the portal would compute is taken from ``X-Portal-*``
    request headers, standing in for the portal's own session data.
    """
    cleared = "\n".join(f'proxy_set_header {header} "";' for header in AUTH_HEADERS)
    # The login location names its upstream path itself: whatever path the client wrote to reach
    # this location, only the hub's login page gets the headers.
    login = proxy_headers(f"{hub.url}/hub/login")
    return f"""
    auth_basic "gridhub";
    auth_basic_user_file {hub.dir / "htpasswd"};
    location = /hub/login {{
        proxy_set_header Remote-User $remote_user;
        proxy_set_header Auth-Data $http_x_portal_auth_data;
        proxy_set_header Mail $http_x_portal_mail;
        proxy_set_header Groups $http_x_portal_groups;
        proxy_set_header {SECRET_HEADER} "{secret}";
        proxy_set_header Authorization "";
        {login}
    }}
    location / {{
        {cleared}
        proxy_set_header Authorization "";
        {proxy_headers(hub.url)}
    }}
    """


def write_htpasswd(hub: Hub) -> None:
    lines = [f"{user}:{{PLAIN}}{password}" for user, password in PASSWORDS.items()]
    (hub.dir / "htpasswd").write_text("\n".join(lines) + "\n")


@dataclass
class FrontedHub:
    hub: Hub
    nginx: Nginx

    def client(self, user: str | None = None, **kwargs) -> httpx.Client:
        """A client of the front proxy, logged in to nginx as ``user`` (basic auth)."""
        auth = (user, PASSWORDS[user]) if user else None
        return httpx.Client(base_url=self.nginx.url, auth=auth, timeout=30, **kwargs)

    def login(self, user: str, **headers: str) -> httpx.Client:
        client = self.client(user, follow_redirects=True)
        response = client.get("/hub/login", headers=headers)
        assert response.status_code == 200, response.text
        assert response.url.path == "/hub/home"
        return client


def hub_server_environment(hub: Hub, user: str, timeout: float = 30) -> dict[str, str]:
    """The environment of ``user``'s running server spawned by ``hub`` (not another test's hub)."""
    return server_environment(user, timeout, api_url=hub.api_url)


def start_fronted(root, config: str = HEADER_CONFIG) -> FrontedHub:
    """Start a hub with ``config`` and the GRIDHUB_HEADER_SECRET, behind a basic-auth nginx."""
    hub = Hub(root / "hub", config, env={"GRIDHUB_HEADER_SECRET": SECRET})
    write_htpasswd(hub)
    hub.start(timeout=START_TIMEOUT)
    nginx = Nginx(root / "nginx", basic_auth_front(hub))
    try:
        nginx.start()
    except BaseException:
        hub.stop()
        raise
    return FrontedHub(hub, nginx)


@pytest.fixture(scope="module")
def fronted(tmp_path_factory) -> Iterator[FrontedHub]:
    """JupyterHub with HeaderAuthenticator behind an nginx that does HTTP basic auth."""
    front = start_fronted(tmp_path_factory.mktemp("fronted"))
    try:
        yield front
    finally:
        front.nginx.stop()
        front.hub.stop()
