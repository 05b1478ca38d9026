"""How fast CloudSSHSpawner heals a tunnel, and how fast the hub learns that a host died.

A real hub spawns a notebook on a remote host (an sshd in its own network namespace), with the
spawner's default keepalive (5 s x 3), reconnect (backoff capped at 4 s) and reconnect_timeout (30 s)
settings, and JupyterHub's default poll interval (30 s). Measured:
- recovery: the host's link goes silent (``ip link set down``: no FIN, no RST) for 25 s, longer than
  the keepalive bound, so the tunnel has given the connection up; time from the link coming back to
  the notebook answering through the hub's proxy again (median and worst of ROUNDS; target < 10 s);
- dead host: the link goes down for good; time until the hub's REST API reports the server stopped
  (target < 60 s).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.cloudsshspawner.conftest import Remote, cloudssh_config, login  # noqa: E402
from tests.harness.hub import Hub, spawn  # noqa: E402
from tests.harness.sshd import host_with_key  # noqa: E402

ROUNDS = 3
SILENCE = 25.0


def answers(hub: Hub) -> bool:
    try:
        response = httpx.get(
            f"{hub.url}/user/alice/api/status",
            headers={"Authorization": f"token {hub.api_token}"},
            timeout=2,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def until(condition, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        host, key, known_hosts = host_with_key(root)
        if not host.namespace:
            print("cloudssh_recovery: needs network namespaces; skipped")
            host.stop()
            return
        remote = Remote(host, key, known_hosts, root / "remote-servers")
        hub = Hub(
            root / "hub", cloudssh_config(remote, "c.CloudSSHSpawner.remote_grace_period = 600")
        )
        try:
            hub.start()
            login(hub, "alice")
            ok, message = spawn(hub, "alice")
            if not ok:
                raise RuntimeError(f"spawn failed: {message}")
            until(lambda: answers(hub), 30)
            recoveries = []
            for _ in range(ROUNDS):
                host.set_link(False)
                time.sleep(SILENCE)
                host.set_link(True)
                recoveries.append(until(lambda: answers(hub), 120))
                time.sleep(2)
            api = hub.api()
            host.set_link(False)
            dead = until(lambda: not api.get("/users/alice").json()["servers"], 300)
        finally:
            hub.stop()
            host.stop()
    print(
        f"cloudssh_recovery: link back after {SILENCE:.0f} s of silence -> notebook answers through"
        f" the hub in median {statistics.median(recoveries):.1f} s, worst {max(recoveries):.1f} s"
        f" (target < 10 s; rounds: {', '.join(f'{r:.1f}' for r in recoveries)})"
    )
    print(f"cloudssh_recovery: dead host reported stopped after {dead:.1f} s (target < 60 s)")


if __name__ == "__main__":
    main()
