"""Logins per second through nginx: HeaderAuthenticator vs JupyterHub's DummyAuthenticator.

Both hubs run the same JupyterHub, proxy and nginx on this machine, one after the other. A login is
what a person's browser does: for the header hub one GET /hub/login (nginx checks HTTP basic auth and
adds Remote-User and the shared secret, as the demo does); for the dummy hub the form GET plus its POST. Each login is a fresh client with
no cookies and a new user name. Prints logins/s for both and the ratio (target >= 0.9).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.hub import Hub
from tests.harness.nginx import Nginx, proxy_headers

COMMON = """
c.Authenticator.allow_all = True
c.JupyterHub.default_url = "/hub/home"
c.JupyterHub.log_level = "WARN"
"""
WARMUP = 10
ROUNDS = 3


def header_login(url: str, user: str) -> None:
    with httpx.Client(base_url=url, auth=(user, "pw")) as client:
        response = client.get("/hub/login")
        assert response.status_code == 302, response.text


def dummy_login(url: str, user: str) -> None:
    with httpx.Client(base_url=url) as client:
        assert client.get("/hub/login").status_code == 200
        response = client.post(
            "/hub/login",
            data={"username": user, "password": "pw", "_xsrf": client.cookies["_xsrf"]},
        )
        assert response.status_code == 302, response.text


def user_names(count: int) -> list[str]:
    return [f"w{i}" for i in range(WARMUP)] + [
        f"r{r}u{i}" for r in range(ROUNDS) for i in range(count)
    ]


def measure(login: Callable[[str, str], None], url: str, count: int) -> float:
    names = user_names(count)
    for name in names[:WARMUP]:  # first requests warm caches and connections
        login(url, name)
    rates = []
    for round_ in range(ROUNDS):
        batch = names[WARMUP + round_ * count : WARMUP + (round_ + 1) * count]
        start = time.perf_counter()
        for name in batch:
            login(url, name)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def run(count: int) -> dict[str, float]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(f"{name}:{{PLAIN}}pw\n" for name in user_names(count)))
        secret = secrets.token_hex(32)
        logins = {"header": header_login, "dummy": dummy_login}
        for name in ("header", "dummy"):
            hub = Hub(
                root / name,
                COMMON + f'c.JupyterHub.authenticator_class = "{name}"',
                env={"GRIDHUB_HEADER_SECRET": secret},
            )
            if name == "header":  # the login page alone gets the name and the secret
                server = f"""
                    auth_basic "bench";
                    auth_basic_user_file {htpasswd};
                    location = /hub/login {{
                        proxy_set_header Remote-User $remote_user;
                        proxy_set_header X-Gridhub-Secret "{secret}";
                        {proxy_headers(f"{hub.url}/hub/login")}
                    }}
                    location / {{
                        proxy_set_header Remote-User "";
                        proxy_set_header X-Gridhub-Secret "";
                        {proxy_headers(hub.url)}
                    }}
                """
            else:
                server = f"location / {{ {proxy_headers(hub.url)} }}"
            nginx = Nginx(root / f"nginx-{name}", server)
            try:
                hub.start(timeout=300)  # a loaded machine starts hubs slowly; not measured
                nginx.start()
                results[name] = measure(logins[name], nginx.url, count)
            finally:
                nginx.stop()
                hub.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=100, help="logins per timed round")
    args = parser.parse_args()
    results = run(args.logins)
    ratio = results["header"] / results["dummy"]
    print(f"header_login: HeaderAuthenticator {results['header']:.1f} logins/s")
    print(f"header_login: DummyAuthenticator  {results['dummy']:.1f} logins/s")
    print(f"header_login: ratio header/dummy = {ratio:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
