"""Run the demo: nginx on 127.0.0.1:8000 in front of a JupyterHub, until Ctrl-C.

Log in as demo / demo (or alice / alice). State lives in .demo/ at the repository root.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PORT = int(os.environ.get("GRIDHUB_DEMO_PORT", "8000"))
HUB_PORT = int(os.environ.get("GRIDHUB_DEMO_HUB_PORT", "8001"))
PROXY_API_PORT = int(os.environ.get("GRIDHUB_DEMO_PROXY_API_PORT", "8002"))
DEMO_USERS = {"demo": "demo", "alice": "alice"}


def prepare(state: Path) -> dict[str, str]:
    state.mkdir(exist_ok=True)
    (state / "nginx-tmp").mkdir(exist_ok=True)
    # Plain-text passwords are fine for a demo on loopback; use hashed ones anywhere else.
    (state / "htpasswd").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in DEMO_USERS.items()))
    conf = (HERE / "nginx.conf").read_text()
    for key, value in {
        "@STATE@": str(state),
        "@PORT@": str(PORT),
        "@HUB_PORT@": str(HUB_PORT),
    }.items():
        conf = conf.replace(key, value)
    if os.geteuid() == 0:
        conf = "user root;\n" + conf
    (state / "nginx.conf").write_text(conf)
    key_file = state / "crypt_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_hex(32))
    env = dict(os.environ)
    env.update(
        GRIDHUB_DEMO_DIR=str(state),
        GRIDHUB_DEMO_HUB_PORT=str(HUB_PORT),
        GRIDHUB_DEMO_PROXY_API_PORT=str(PROXY_API_PORT),
        JUPYTERHUB_CRYPT_KEY=key_file.read_text().strip(),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    return env


def stop_leftover_proxy(pid_file: Path) -> None:
    """A hub that crashed may leave its configurable-http-proxy behind: stop it by its PID file."""
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    except (OSError, ValueError):
        pass


def main() -> int:
    state = ROOT / ".demo"
    env = prepare(state)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(HERE / "jupyterhub_config.py")],
        cwd=state,
        env=env,
    )
    front = subprocess.Popen(
        [nginx, "-c", str(state / "nginx.conf"), "-e", str(state / "nginx-error.log")]
    )
    print(
        f"\n  gridhub demo: open http://127.0.0.1:{PORT}/ and log in as demo / demo\n", flush=True
    )

    def stop(*_: object) -> None:
        for proc in (front, hub):
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while hub.poll() is None and front.poll() is None:
            try:
                hub.wait(1)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for proc in (front, hub):
            proc.wait(30)
        stop_leftover_proxy(state / "proxy.pid")
    return hub.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
