"""Headers are believed only from the front proxy (and, optionally, only with its secret)."""

from __future__ import annotations

import httpx
import pytest

from headerauthenticator.peers import address_in, parse_networks
from tests.harness.hub import Hub
from tests.harness.nginx import proxy_headers
from tests.headerauthenticator.conftest import START_TIMEOUT, FrontedHub


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (another host on the loopback network)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_forged_header_to_the_hub_port_is_refused(fronted: FrontedHub) -> None:
    with from_address("127.0.0.2") as attacker:
        response = attacker.get(f"{fronted.hub.url}/hub/login", headers={"Remote-User": "mallory"})
    assert response.status_code == 403
    assert "only from the configured front proxy" in response.text
    assert "jupyterhub-hub-login" not in response.headers.get("set-cookie", "")
    assert fronted.hub.api().get("/users/mallory").status_code == 404


def test_forged_x_forwarded_for_does_not_help(fronted: FrontedHub) -> None:
    with from_address("127.0.0.2") as attacker:
        response = attacker.get(
            f"{fronted.hub.url}/hub/login",
            headers={"Remote-User": "mallory1", "X-Forwarded-For": "127.0.0.1"},
        )
    assert response.status_code == 403
    assert fronted.hub.api().get("/users/mallory1").status_code == 404


def test_forged_header_to_the_internal_hub_port_is_refused(fronted: FrontedHub) -> None:
    with from_address("127.0.0.2") as attacker:
        response = attacker.get(
            f"http://127.0.0.1:{fronted.hub.hub_port}/hub/login",
            headers={"Remote-User": "mallory2", "X-Forwarded-For": "127.0.0.1"},
        )
    assert response.status_code == 403
    assert fronted.hub.api().get("/users/mallory2").status_code == 404


SECRET = "s3cr3t-front-proxy-token-0123456789"


@pytest.fixture
def secret_hub(hub_factory, nginx_factory):
    hub: Hub = hub_factory(
        """
        c.JupyterHub.authenticator_class = "header"
        c.Authenticator.allow_all = True
        c.HeaderAuthenticator.trusted_proxy_ips = []
        c.HeaderAuthenticator.shared_secret_header = "X-Front-Secret"
        """,
        env={"GRIDHUB_HEADER_SECRET": SECRET},
    )
    nginx = nginx_factory(
        f"""
        location / {{
            proxy_set_header Remote-User $http_x_test_user;
            proxy_set_header X-Front-Secret "{SECRET}";
            {proxy_headers(hub.url)}
        }}
        """
    )
    return hub, nginx


def test_shared_secret_mode(secret_hub) -> None:
    hub, nginx = secret_hub
    # Through the front proxy, which adds the secret: logged in, from any peer address.
    with from_address("127.0.0.3") as person:
        ok = person.get(f"{nginx.url}/hub/login", headers={"X-Test-User": "dave"})
    assert ok.status_code == 302
    assert hub.api().get("/users/dave").status_code == 200
    # Straight to the hub with a wrong secret or none: refused.
    for headers in ({"Remote-User": "erin"}, {"Remote-User": "erin", "X-Front-Secret": "guess"}):
        response = httpx.get(f"{hub.url}/hub/login", headers=headers)
        assert response.status_code == 403
        assert "secret" in response.text
    assert hub.api().get("/users/erin").status_code == 404
    assert SECRET not in hub.log()


def test_empty_trust_list_without_secret_refuses_to_start(hub_factory) -> None:
    hub = hub_factory(
        """
        c.JupyterHub.authenticator_class = "header"
        c.HeaderAuthenticator.trusted_proxy_ips = []
        c.HeaderAuthenticator.insecure_no_shared_secret = True
        """,
        start=False,
    )
    with pytest.raises(RuntimeError) as failed:
        hub.start(timeout=START_TIMEOUT)
    assert "anyone could log in as anyone" in str(failed.value)


def test_header_login_without_a_secret_refuses_to_start(hub_factory) -> None:
    hub = hub_factory('c.JupyterHub.authenticator_class = "header"\n', start=False)
    with pytest.raises(RuntimeError) as failed:
        hub.start(timeout=START_TIMEOUT)
    assert "HeaderAuthenticator needs a shared secret" in str(failed.value)
    assert "GRIDHUB_HEADER_SECRET" in str(failed.value)


def test_a_short_secret_refuses_to_start(hub_factory) -> None:
    hub = hub_factory(
        'c.JupyterHub.authenticator_class = "header"\n',
        env={"GRIDHUB_HEADER_SECRET": "tiny-s3cr3t"},
        start=False,
    )
    with pytest.raises(RuntimeError) as failed:
        hub.start(timeout=START_TIMEOUT)
    assert "shorter than 16 characters" in str(failed.value)
    assert "tiny-s3cr3t" not in hub.log()


def test_the_insecure_opt_out_starts_and_says_so(hub_factory) -> None:
    hub = hub_factory(
        """
        c.JupyterHub.authenticator_class = "header"
        c.Authenticator.allow_all = True
        c.HeaderAuthenticator.insecure_no_shared_secret = True
        """
    )
    assert "INSECURE: HeaderAuthenticator.insecure_no_shared_secret is set" in hub.log()
    # It does what it says: any local process logs in as anyone (the reason it is opt-in).
    response = httpx.get(f"{hub.url}/hub/login", headers={"Remote-User": "anyone"})
    assert response.status_code == 302


def test_ipv4_mapped_entries_match_the_ipv4_peer() -> None:
    networks = parse_networks(["::ffff:10.0.0.1", "::ffff:192.168.0.0/112"], "trusted_proxy_ips")
    assert address_in("10.0.0.1", networks)
    assert address_in("::ffff:10.0.0.1", networks)
    assert address_in("192.168.7.9", networks)
    assert not address_in("10.0.0.2", networks)
    assert not address_in("192.169.0.1", networks)


def test_ipv4_mapped_trusted_proxy_logs_in(hub_factory, nginx_factory) -> None:
    hub = hub_factory(
        """
        c.JupyterHub.authenticator_class = "header"
        c.Authenticator.allow_all = True
        c.HeaderAuthenticator.trusted_proxy_ips = ["::ffff:127.0.0.1"]
        """,
        env={"GRIDHUB_HEADER_SECRET": SECRET},
    )
    nginx = nginx_factory(
        f"""
        location = /hub/login {{
            proxy_set_header Remote-User $http_x_test_user;
            proxy_set_header X-Gridhub-Secret "{SECRET}";
            {proxy_headers(f"{hub.url}/hub/login")}
        }}
        """
    )
    response = httpx.get(f"{nginx.url}/hub/login", headers={"X-Test-User": "mapped"})
    assert response.status_code == 302, response.text
    assert hub.api().get("/users/mapped").status_code == 200
