"""Header values are parsed as configured; a malformed value is a clear 400, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.nginx import proxy_headers
from tests.headerauthenticator.conftest import SECRET, SECRET_HEADER, START_TIMEOUT

REGEX_CONFIG = r"""
from headerauthenticator import JSONParser, RegexUsernameParser
c.JupyterHub.authenticator_class = "header"
c.Authenticator.allow_all = True
c.HeaderAuthenticator.enable_auth_state = True
c.HeaderAuthenticator.allowed_headers = {"auth": "MyAuthHeader", "auth_data": "Auth-Data"}
# Thesis listing 5, as written there.
c.HeaderAuthenticator.header_parser_classes = {"auth": RegexUsernameParser, "auth_data": JSONParser}
RegexUsernameParser.username_extract_regex = '([a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+)'
RegexUsernameParser.replace_extract_chars = {'@': '_', '.': '_'}
"""


@pytest.fixture
def regex_front(hub_factory, nginx_factory):
    hub = hub_factory(REGEX_CONFIG, env={"GRIDHUB_HEADER_SECRET": SECRET})
    nginx = nginx_factory(
        f"""
        location / {{
            proxy_set_header MyAuthHeader $http_x_portal_identity;
            proxy_set_header Auth-Data $http_x_portal_auth_data;
            proxy_set_header {SECRET_HEADER} "{SECRET}";
            {proxy_headers(hub.url)}
        }}
        """
    )
    return hub, nginx


def test_regex_parser_extracts_the_username(regex_front) -> None:
    hub, nginx = regex_front
    identity = "/C=DK/O=NBI/CN=Jane Doe/emailAddress=Jane.Doe@nbi.ku.dk"
    response = httpx.get(f"{nginx.url}/hub/login", headers={"X-Portal-Identity": identity})
    assert response.status_code == 302, response.text
    # JupyterHub's normalisation (lower case) still applies after the parser.
    assert hub.api().get("/users/jane_doe_nbi_ku_dk").status_code == 200


def test_regex_without_match_is_a_clear_400(regex_front) -> None:
    _hub, nginx = regex_front
    response = httpx.get(f"{nginx.url}/hub/login", headers={"X-Portal-Identity": "no-address"})
    assert response.status_code == 400
    assert "MyAuthHeader header does not contain a username" in response.text


def test_json_parser_keeps_structured_data(regex_front) -> None:
    hub, nginx = regex_front
    data = '{"mount": {"host": "io.erda.dk", "port": 22}, "groups": ["hpc"]}'
    response = httpx.get(
        f"{nginx.url}/hub/login",
        headers={"X-Portal-Identity": "ann@ku.dk", "X-Portal-Auth-Data": data},
    )
    assert response.status_code == 302
    state = hub.api().get("/users/ann_ku_dk").json()["auth_state"]
    assert state == {"auth_data": {"mount": {"host": "io.erda.dk", "port": 22}, "groups": ["hpc"]}}


def test_bad_json_is_a_clear_400_and_logs_no_value(regex_front) -> None:
    hub, nginx = regex_front
    response = httpx.get(
        f"{nginx.url}/hub/login",
        headers={"X-Portal-Identity": "ann@ku.dk", "X-Portal-Auth-Data": '{"token": "tok-991'},
    )
    assert response.status_code == 400
    assert "Auth-Data header is not valid JSON" in response.text
    assert "tok-991" not in hub.log()


def test_invalid_parser_configuration_stops_the_hub(hub_factory) -> None:
    hub = hub_factory(
        """
        from headerauthenticator import RegexUsernameParser
        c.JupyterHub.authenticator_class = "header"
        c.HeaderAuthenticator.header_parser_classes = {
            "auth": RegexUsernameParser(username_extract_regex="(a)(b)"),
        }
        """,
        start=False,
    )
    with pytest.raises(RuntimeError) as failed:
        hub.start(timeout=START_TIMEOUT)
    assert "must have exactly one capture group" in str(failed.value)
