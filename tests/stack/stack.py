"""The compose stack (deploy/compose.yml) on a confined engine: build, up, wait, exec, down.

Used by tests/stack/check_stack.py (``make stack-test``) and, as a program, by ``make stack-demo`` /
``make stack-down``:

    python -m tests.stack.stack demo            # engine + images + stack, prints the URL and a login
    python -m tests.stack.stack down [--volumes]
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.docker import CACHE, DOCKER_CLI, DockerEngine, EngineUnavailable
from tests.harness.process import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "deploy" / "compose.yml"
COMPOSE = "/usr/bin/docker-compose"
SERVICES = ["openldap", "slurmdbd", "slurmctld", "slurmd", "hub", "proxy"]


def version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    return match.group(1) if match else "dev"


class Stack:
    """One compose project on one engine; settings in an env file next to the engine's files."""

    def __init__(self, engine: DockerEngine, project: str, port: int | None = None) -> None:
        self.engine = engine
        self.project = project
        self.env_file = engine.dir / "stack.env"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def write_env(self, extra: dict[str, str] | None = None) -> None:
        settings = {
            "GRIDHUB_TAG": version(),
            "GRIDHUB_HTTP_PORT": str(self.port),
            "GRIDHUB_BIND": "127.0.0.1",
            "GRIDHUB_DOCKER_SOCKET": str(self.engine.socket),
            "GRIDHUB_DOCKER_GID": str(os.stat(self.engine.socket).st_gid),
            **(extra or {}),
        }
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))

    def compose(
        self, *args: str, check: bool = True, timeout: float = 600, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [COMPOSE, "--no-ansi", "-p", self.project, "-f", str(COMPOSE_FILE)]
        argv += ["--env-file", str(self.env_file), *args]
        done = subprocess.run(
            argv,
            env=self.engine.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker-compose {' '.join(args[:2])} failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
        return done

    def build_images(self) -> None:
        done = subprocess.run(
            [sys.executable, str(REPO / "docker" / "build.py"), "--tag", version()],
            env=self.engine.env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building the images failed:\n{done.stderr[-4000:]}")

    def up(self, timeout: float = 420) -> None:
        self.compose("up", "-d", timeout=timeout)
        self.wait_healthy(timeout)

    def containers(self, service: str | None = None) -> list[dict]:
        """``docker inspect`` of the project's containers (of one service)."""
        labels = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            labels += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.engine.docker("ps", "-aq", *labels).stdout.split()
        if not ids:
            return []
        return json.loads(self.engine.docker("inspect", *ids).stdout)

    def wait_healthy(self, timeout: float = 420) -> None:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states, services = {}, set()
            for info in self.containers():
                service = info["Config"]["Labels"]["com.docker.compose.service"]
                if service == "secrets":
                    continue
                services.add(service)
                health = info["State"].get("Health", {}).get("Status", info["State"]["Status"])
                states[info["Name"].lstrip("/")] = health
            healthy = all(state == "healthy" for state in states.values())
            if healthy and services >= set(SERVICES):
                return
            time.sleep(2)
        raise RuntimeError(
            f"the stack was not healthy after {timeout:.0f} s: {states}\n{self.logs()}"
        )

    def logs(self, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", check=False).stdout

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.project}_{service}_{index}"

    def exec(
        self,
        container: str,
        command: str,
        user: str = "root",
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a bash command in a container (by name) as ``user`` (name or uid[:gid])."""
        args = ["exec", "-u", user]
        if input is not None:
            args.append("-i")
        return self.engine.docker(
            *args, container, "bash", "-c", command, check=check, input=input, timeout=timeout
        )

    def add_front_user(self, name: str, password: str) -> None:
        self.exec(self.container("proxy"), f"gridhub-front-user {name}", input=password + "\n")

    def down(self, volumes: bool = False) -> None:
        self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []), check=False)


# ----------------------------------------------------------------------------- make stack-demo/down

DEMO_DIR = CACHE / "demo"


def _demo(port: int) -> int:
    started = subprocess.run(
        [sys.executable, "-m", "tests.harness.docker", "start", str(DEMO_DIR)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        print(started.stderr.strip(), file=sys.stderr)
        return 1
    host = started.stdout.strip().split("=", 1)[1]
    engine = DockerEngine.attach(DEMO_DIR, host)
    stack = Stack(engine, "gridhub", port=port)
    print(f"stack-demo: building the images on {host} (cached after the first time)")
    stack.build_images()
    stack.write_env()
    print("stack-demo: starting the stack")
    stack.up()
    password = secrets.token_urlsafe(9)
    stack.add_front_user("demo", password)
    (DEMO_DIR / "demo-login").write_text(f"demo {password}\n")
    print(f"stack-demo: open {stack.url}/ and log in as demo / {password}")
    print("stack-demo: `make stack-down` stops it (volumes kept; VOLUMES=1 removes them too)")
    return 0


def _down(volumes: bool) -> int:
    state = DEMO_DIR / "engine.host"
    if not state.exists():
        print("stack-down: no demo stack is running")
        return 0
    engine = DockerEngine.attach(DEMO_DIR, state.read_text().strip())
    if engine.ping():
        Stack(engine, "gridhub", port=1).down(volumes=volumes)
    subprocess.run(
        [sys.executable, "-m", "tests.harness.docker", "stop", str(DEMO_DIR)], cwd=REPO, check=False
    )
    print("stack-down: stopped" + (" and removed the volumes" if volumes else " (volumes kept)"))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["demo"]:
        port = int(os.environ.get("GRIDHUB_HTTP_PORT", "8000"))
        try:
            return _demo(port)
        except (EngineUnavailable, RuntimeError) as exc:
            print(f"stack-demo: {exc}", file=sys.stderr)
            return 1
    if argv[:1] == ["down"]:
        return _down("--volumes" in argv)
    print("usage: python -m tests.stack.stack demo | down [--volumes]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["DOCKER_CLI", "Stack"]
