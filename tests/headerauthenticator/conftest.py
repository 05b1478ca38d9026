"""A hub with HeaderAuthenticator behind nginx, shared by the tests of one module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.harness.hub import Hub
from tests.harness.nginx import Nginx, proxy_headers

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

HEADER_CONFIG = """
from headerauthenticator import JSONParser
c.JupyterHub.authenticator_class = "header"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"carol"}
c.JupyterHub.default_url = "/hub/home"
c.HeaderAuthenticator.enable_auth_state = True
c.HeaderAuthenticator.allowed_headers = {
    "auth": "Remote-User", "auth_data": "Auth-Data", "mail": "Mail", "groups": "Groups",
}
c.HeaderAuthenticator.manage_groups = True
c.HeaderAuthenticator.header_parser_classes = {"auth_data": JSONParser}
c.HeaderAuthenticator.spawner_shared_headers = ["auth_data", "mail"]
c.HeaderAuthenticator.user_external_allow_attributes = ["PersonalDistinguishedName", "quota"]
c.HeaderAuthenticator.user_data_max_bytes = 1024
c.HeaderAuthenticator.max_header_length = 1024
"""


def basic_auth_front(hub: Hub, extra: str = "") -> str:
    """An nginx server block that authenticates with HTTP basic auth and forwards Remote-User.

    Extra data the portal would compute is taken from ``X-Portal-*`` request headers, standing in for
    the portal's own session data; a client-sent ``Remote-User`` is always overwritten.
    """
    return f"""
    location / {{
        auth_basic "gridhub";
        auth_basic_user_file {hub.dir / "htpasswd"};
        proxy_set_header Remote-User $remote_user;
        proxy_set_header Auth-Data $http_x_portal_auth_data;
        proxy_set_header Mail $http_x_portal_mail;
        proxy_set_header Groups $http_x_portal_groups;
        {extra}
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


@pytest.fixture(scope="module")
def fronted(tmp_path_factory) -> Iterator[FrontedHub]:
    """JupyterHub with HeaderAuthenticator behind an nginx that does HTTP basic auth."""
    root = tmp_path_factory.mktemp("fronted")
    hub = Hub(root / "hub", HEADER_CONFIG)
    write_htpasswd(hub)
    hub.start()
    nginx = Nginx(root / "nginx", basic_auth_front(hub))
    nginx.start()
    try:
        yield FrontedHub(hub, nginx)
    finally:
        nginx.stop()
        hub.stop()
