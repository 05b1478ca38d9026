"""A throwaway slapd, and hubs configured as in thesis listing 7 against it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ldap3
import pytest

from tests.harness.hub import Hub
from tests.harness.process import server_environment
from tests.harness.slapd import Slapd

LIGHT_SERVER = Path(__file__).resolve().parents[1] / "harness" / "light_server.py"


FRONT_SECRET = "ldap-hooks-tests-front-proxy-secret"
"""The secret the front proxy (``login``, the nginx of test_listing7) sends with every login."""

HEADER_LOGIN = f"""
from headerauthenticator import JSONParser
c.JupyterHub.authenticator_class = "header"
c.HeaderAuthenticator.shared_secret_header = "X-Gridhub-Secret"
c.HeaderAuthenticator.shared_secret = {FRONT_SECRET!r}
c.Authenticator.allow_all = True
c.JupyterHub.default_url = "/hub/home"
c.HeaderAuthenticator.enable_auth_state = True
c.HeaderAuthenticator.allowed_headers = {{"auth": "Remote-User", "User": "User"}}
c.HeaderAuthenticator.header_parser_classes = {{"User": JSONParser}}
c.HeaderAuthenticator.user_external_allow_attributes = ["User", "CERT"]
"""
"""HeaderAuthenticator as the front proxy's hub: a ``User`` header carries a JSON object,
``{"CERT": "/C=DK/..."}``, which JSONParser stores as ``auth_state["User"]["CERT"]``: the path that
listing 7's ``submit_spawner_attribute_keys = ("User", "CERT")`` names."""


def listing_7(url: str, password: str, extra: str = "") -> str:
    """Thesis listing 7 (with our authenticator and a generic spawner), pointed at the test's slapd."""
    return (
        HEADER_LOGIN
        + f"""
from ldap_hooks import setup_ldap_entry_hook
from ldap_hooks import (
    LDAP,
    LDAP_SEARCH_ATTRIBUTE_QUERY,
    SPAWNER_SUBMIT_DATA,
    INCREMENT_ATTRIBUTE,
    LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
)
c.Spawner.pre_spawn_hook = setup_ldap_entry_hook

LDAP.url = {url!r}
LDAP.user = "cn=admin,dc=migrid,dc=org"
LDAP.password = {password!r}
LDAP.base_dn = "dc=migrid,dc=org"
LDAP.submit_spawner_attribute = "user.data"
LDAP.submit_spawner_attribute_keys = ("User", "CERT")
LDAP.replace_object_with = {{"/": "+"}}
LDAP.dynamic_attributes = {{
    "uid": LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
    "emailAddress": SPAWNER_SUBMIT_DATA,
    "uidNumber": LDAP_SEARCH_ATTRIBUTE_QUERY,
}}
LDAP.set_spawner_attributes = {{
    "environment": {{"NB_USER": "{{uid}}", "NB_UID": "{{uidNumber}}"}},
}}
LDAP.unique_object_attributes = ["uid"]
LDAP.search_attribute_queries = [
    {{
        "search_base": LDAP.base_dn,
        "search_filter": "(objectclass=X-nextUserIdentifier)",
        "attributes": ["uidNumber"],
    }}
]
modify_dn = "cn=uidNext" + "," + LDAP.base_dn
LDAP.search_result_operations = {{
    "uidNumber": {{"action": INCREMENT_ATTRIBUTE, "modify_dn": modify_dn}}
}}
LDAP.object_classes = ["X-certsDistinguishedName", "PosixAccount"]
LDAP.object_attributes = {{
    "uid": "{{uid}}",
    "uidNumber": "{{uidNumber}}",
    "gidNumber": "100",
    "homeDirectory": "/home/{{uid}}",
}}
{extra}
"""
    )


LIGHT_SPAWNER = f"""
# JupyterHub's random_port() binds port 0 and lets it go, so dozens of concurrent local spawns can
# be handed the same port; these tests spawn 50 at once, so each spawn takes the next free port.
# Ports stay below the kernel's ephemeral range (32768 and up), where any outgoing connection on
# this busy machine may hold the port; a port is free when it can be bound, as the server will.
import itertools, os, socket
from jupyterhub.spawner import SimpleLocalProcessSpawner

_next_port = itertools.count(20000 + (os.getpid() % 100) * 120)

def _unique_port():
    for port in _next_port:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port

class UniquePortSpawner(SimpleLocalProcessSpawner):
    async def start(self):
        self.port = _unique_port()
        return await super().start()

c.JupyterHub.spawner_class = UniquePortSpawner
c.Spawner.cmd = [{sys.executable!r}, {str(LIGHT_SERVER)!r}]
c.Spawner.args = []
"""


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    server = Slapd(tmp_path / "slapd")
    server.start()
    yield server
    server.stop()


def user_header(dn: str) -> str:
    """The ``User`` header a front proxy sends for a certificate DN."""
    return json.dumps({"CERT": dn})


def login(
    hub: Hub, user: str, dn: str | None = "/CN=Some One", extra: dict[str, str] | None = None
) -> None:
    """Log ``user`` in through the hub's login page, as the front proxy would."""
    headers = {"Remote-User": user, "X-Gridhub-Secret": FRONT_SECRET}
    headers |= {"User": user_header(dn)} if dn is not None else {}
    response = httpx.get(f"{hub.url}/hub/login", headers=headers | (extra or {}))
    assert response.status_code == 302, response.text


def post_user_data(hub: Hub, user: str, data: dict) -> None:
    """``user`` posts ``data`` to /hub/set-user-data with an API token of their own."""
    token = hub.api().post(f"/users/{user}/tokens", json={"note": "t"}).json()["token"]
    response = httpx.post(
        f"{hub.url}/hub/set-user-data", json=data, headers={"Authorization": f"token {token}"}
    )
    assert response.status_code == 200, response.text


def server_env(hub: Hub, user: str, timeout: float = 10) -> dict[str, str]:
    """The environment of ``user``'s server process started by ``hub`` (not another test's hub)."""
    return server_environment(user, timeout, api_url=hub.api_url)


def admin(slapd: Slapd) -> ldap3.Connection:
    server = ldap3.Server(slapd.url, get_info=ldap3.NONE)  # raw values: always lists of str
    return ldap3.Connection(server, slapd.rootdn, slapd.password, auto_bind=True)


def posix_accounts(slapd: Slapd) -> dict[str, dict]:
    """uid -> attributes of every posixAccount entry."""
    conn = admin(slapd)
    conn.search(slapd.suffix, "(objectClass=posixAccount)", attributes=["*"])
    accounts = {}
    for entry in conn.response:
        attrs = {k: v if isinstance(v, list) else [v] for k, v in entry["attributes"].items()}
        attrs["dn"] = entry["dn"]
        accounts[str(attrs["uid"][0])] = attrs
    conn.unbind()
    return accounts


def counter(slapd: Slapd) -> int:
    conn = admin(slapd)
    conn.search(f"cn=uidNext,{slapd.suffix}", "(objectClass=*)", "BASE", attributes=["uidNumber"])
    value = int(conn.response[0]["attributes"]["uidNumber"][0])
    conn.unbind()
    return value
