"""Run the demo: nginx on 127.0.0.1:8000 in front of a JupyterHub, until Ctrl-C.

Log in as demo / demo (or alice / alice) and choose this machine or a sandbox VM on the spawn page,
or the SLURM cluster when one answers here (``sinfo`` lists a node that is up; ``SLURM_CONF`` or
/etc/slurm/slurm.conf says where).
State lives in .demo/ at the repository root, never
committed: the header secret nginx sends the hub and the auth_state key are made at first start, in
0600 files, and handed to the hub in its environment.
"""

from __future__ import annotations

import json
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
HUB_API_PORT = int(os.environ.get("GRIDHUB_DEMO_HUB_API_PORT", "8081"))  # the hub's own server
DEMO_USERS = {"demo": "demo", "alice": "alice"}


def private_file(path: Path, content: str) -> None:
    """Write ``content`` to ``path``, readable by its owner only from the moment it exists."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content)


def secret(path: Path) -> str:
    """The random secret kept in ``path``, made (0600) at the first start."""
    if not path.exists():
        private_file(path, secrets.token_hex(32))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def corc_config(state: Path) -> Path:
    """corc's config for the demo: records, SSH keys and sandbox VMs under ``state``/corc.

    Two providers: ``local`` (this machine, a pool of one host with its CPUs and memory) and
    ``sandbox`` (a network namespace with its own sshd per VM, reached over SSH like a cloud VM).
    """
    corc = state / "corc"
    corc.mkdir(mode=0o700, exist_ok=True)
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024**3
    this_machine = {
        "name": "this-machine",
        "address": "127.0.0.1",
        "cpu": os.cpu_count() or 1,
        "memory_gb": max(1, memory_gb),
        "gpus": 0,
    }
    config = {
        "corc": {
            "store": {"path": str(corc / "records.sqlite")},
            "ssh": {"directory": str(corc / "ssh")},
            "providers": {
                "local": {"hosts": [this_machine], "check_reachable": False},
                "sandbox": {
                    "directory": str(corc / "sandbox"),
                    "use_netns": True,
                    "username": "root",
                },
            },
        }
    }
    path = corc / "config"
    path.write_text(json.dumps(config, indent=2))  # YAML reads JSON
    return path


def slurm_cluster(env: dict[str, str]) -> dict[str, object] | None:
    """The SLURM cluster this machine reaches, or None: its nodes' addresses (for batchspawner's
    ``daemon_resolver``), the most CPUs and memory one node has, and ``SLURM_CONF`` if set."""
    sinfo = shutil.which("sinfo", path=env.get("PATH"))
    if sinfo is None:
        return None
    try:
        listing = subprocess.run(
            [sinfo, "--noheader", "--Node", "--format", "%N %o %c %m %t"],
            env=env,
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # no slurm.conf, or no controller answers
    nodes = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[4].rstrip("*~#").startswith(("idle", "mix", "alloc")):
            name, address, cpus, memory_mb, _state = fields
            if cpus.isdigit() and memory_mb.isdigit():
                nodes[name] = (address, int(cpus), int(memory_mb))
    if not nodes:
        return None
    return {
        "resolver": {name: address for name, (address, _, _) in nodes.items()},
        "cpu": max(cpus for _, cpus, _ in nodes.values()),
        "memory_gb": max(memory for _, _, memory in nodes.values()) // 100 / 10,
        "slurm_conf": env.get("SLURM_CONF", ""),
    }


def prepare(
    state: Path,
    port: int = PORT,
    hub_port: int = HUB_PORT,
    proxy_api_port: int = PROXY_API_PORT,
    hub_api_port: int = HUB_API_PORT,
) -> dict[str, str]:
    """Write the demo's state (passwords, nginx config, secrets) under ``state``; the hub's env."""
    state.mkdir(exist_ok=True)
    (state / "nginx-tmp").mkdir(exist_ok=True)
    # Plain-text passwords are fine for a demo on loopback; use hashed ones anywhere else.
    (state / "htpasswd").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in DEMO_USERS.items()))
    header_secret = secret(state / "header_secret")
    conf = (HERE / "nginx.conf").read_text()
    for key, value in {
        "@STATE@": str(state),
        "@PORT@": str(port),
        "@HUB_PORT@": str(hub_port),
        "@HEADER_SECRET@": header_secret,
    }.items():
        conf = conf.replace(key, value)
    if os.geteuid() == 0:
        conf = "user root;\n" + conf
    private_file(state / "nginx.conf", conf)
    env = dict(os.environ)
    env.update(
        GRIDHUB_DEMO_DIR=str(state),
        GRIDHUB_DEMO_HUB_PORT=str(hub_port),
        GRIDHUB_DEMO_PROXY_API_PORT=str(proxy_api_port),
        GRIDHUB_DEMO_HUB_API_PORT=str(hub_api_port),
        GRIDHUB_HEADER_SECRET=header_secret,
        CORC_CONFIG_FILE=str(corc_config(state)),
        JUPYTERHUB_CRYPT_KEY=secret(state / "crypt_key"),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    cluster = slurm_cluster(env)
    if cluster is not None:
        env["GRIDHUB_DEMO_SLURM"] = json.dumps(cluster)
    else:
        env.pop("GRIDHUB_DEMO_SLURM", None)
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
    offers = "this machine, a sandbox VM" + (
        " and the SLURM cluster" if "GRIDHUB_DEMO_SLURM" in env else " (no SLURM cluster answers)"
    )
    print(
        f"\n  gridhub demo: open http://127.0.0.1:{PORT}/ and log in as demo / demo"
        f"\n  offers: {offers}\n",
        flush=True,
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
