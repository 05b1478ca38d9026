"""A confined Docker engine and a locally made Debian base image (no image registry is reachable here).

``DockerEngine`` runs Debian's ``dockerd`` as a child of the test process with its data, exec root,
socket and PID file in directories of its own, no default bridge and no iptables rules on the host
(see shared ENVIRONMENT.md), so it never touches another engine on the machine. Containers must join a
user-defined network; each engine hands out subnets from a /16 that no host route uses.

``base_tarball()`` makes a Debian bookworm ``minbase`` root file system with debootstrap from the
host's own apt mirror, once, and caches it as ``build/docker/bookworm-minbase.tar`` (git-ignored;
``$GRIDHUB_BUILD_DIR`` instead of ``build/docker`` when set);
``DockerEngine.base_image()`` imports it as ``BASE_IMAGE``.

    engine = DockerEngine(tmp_path / "docker")
    engine.start()
    engine.base_image()                       # "gridhub/bookworm-base:12"
    engine.build("me/img:1", context_dir)     # host network, host apt mirror as build args
    engine.docker("run", "--rm", "--network", engine.network("t"), "me/img:1", "true")
    engine.stop()

Run as a program it manages a long-lived engine for the compose stack (``make stack-demo``):
``python -m tests.harness.docker start|stop|env|base DIR``.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import ipaddress
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .process import Daemon, kill_pidfile

REPO = Path(__file__).resolve().parents[2]
# Where the base tarball, build contexts, logs and the stack's engine live; GRIDHUB_BUILD_DIR moves them
# all (e.g. to measure a run with nothing cached).
CACHE = Path(os.environ.get("GRIDHUB_BUILD_DIR") or REPO / "build" / "docker").resolve()
BASE_TARBALL = CACHE / "bookworm-minbase.tar"
BASE_IMAGE = "gridhub/bookworm-base:12"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DOCKERD = "/usr/sbin/dockerd"
# The engine's own client (docker.io); another docker CLI on PATH may want buildx for builds.
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


class EngineUnavailable(RuntimeError):
    """The Docker engine is not installed or could not be started on this machine."""


# ----------------------------------------------------------------------------- host apt settings


def host_apt_mirrors() -> tuple[str, str]:
    """The host's Debian and Debian security mirror URIs (from /etc/apt), or the public defaults."""
    main, security = DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR
    texts: list[str] = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in {".list", ".sources"} and path.is_file():
            texts.append(path.read_text(errors="replace"))
    found_main = found_security = None
    for text in texts:
        # deb822 stanzas: URIs + Suites
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites:
                names = suites.group(1).split()
                if SUITE in names and not found_main:
                    found_main = uris.group(1)
                if f"{SUITE}-security" in names and not found_security:
                    found_security = uris.group(1)
        # one-line format
        for match in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            uri, suite = match.groups()
            if suite == SUITE and not found_main:
                found_main = uri
            if suite.startswith(f"{SUITE}-security") or suite == f"{SUITE}/updates":
                found_security = found_security or uri
    for uri in (found_main, found_security):
        if uri and "@" in uri.split("//", 1)[-1].split("/", 1)[0]:
            raise EngineUnavailable(
                "the host's apt mirror URI carries credentials; images would keep them in their "
                "history, so give a mirror without credentials in GRIDHUB_APT_MIRROR"
            )
    main = os.environ.get("GRIDHUB_APT_MIRROR") or found_main or main
    security = os.environ.get("GRIDHUB_APT_SECURITY_MIRROR") or found_security or security
    return main.rstrip("/"), security.rstrip("/")


def host_apt_proxy() -> str:
    """The host's apt HTTP proxy (``Acquire::http::Proxy``), or ``""``."""
    try:
        out = subprocess.run(
            ["apt-config", "shell", "P", "Acquire::http::Proxy"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except FileNotFoundError:
        return ""
    match = re.search(r"P='([^']*)'", out)
    return match.group(1) if match else ""


def build_args() -> dict[str, str]:
    """Build arguments every gridhub Dockerfile accepts: the host's apt mirrors and proxy."""
    main, security = host_apt_mirrors()
    return {"APT_MIRROR": main, "APT_SECURITY_MIRROR": security, "APT_PROXY": host_apt_proxy()}


# ----------------------------------------------------------------------------- base image


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


MINIMIZE = {
    # what debuerreotype's minimizing config adds: no daemons started by package installs, no
    # fsync per file, no translations, no cached .debs
    "usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
    "etc/dpkg/dpkg.cfg.d/gridhub-unsafe-io": "force-unsafe-io\n",
    "etc/apt/apt.conf.d/gridhub-minimal": (
        'Acquire::Languages "none";\n'
        'APT::Install-Recommends "false";\n'
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
    ),
}


def base_tarball(path: Path = BASE_TARBALL, timeout: float = 1800) -> Path:
    """The cached bookworm minbase root file system as a tarball; made with debootstrap if absent."""
    with _locked(path.with_suffix(".lock")):
        if path.exists():
            return path
        if not Path("/usr/sbin/debootstrap").exists():
            raise EngineUnavailable(
                "debootstrap is not installed; run scripts/stack-install.sh (make stack-test does)"
            )
        main, security = host_apt_mirrors()
        proxy = host_apt_proxy()
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if proxy:
            env["http_proxy"] = proxy
        with tempfile.TemporaryDirectory(dir=path.parent, prefix="rootfs.") as tmp:
            rootfs = Path(tmp) / "rootfs"
            log = path.with_suffix(".debootstrap.log")
            with open(log, "wb") as out:
                done = subprocess.run(
                    ["/usr/sbin/debootstrap", "--variant=minbase", SUITE, str(rootfs), main],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout,
                    check=False,
                )
            if done.returncode != 0:
                tail = log.read_text(errors="replace").splitlines()[-15:]
                raise EngineUnavailable(
                    f"debootstrap of {SUITE} from {main} failed:\n" + "\n".join(tail)
                )
            for rel, text in MINIMIZE.items():
                target = rootfs / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                if rel.startswith("usr/sbin/"):
                    target.chmod(0o755)
            (rootfs / "etc/apt/sources.list").write_text(
                f"deb {main} {SUITE} main\n"
                f"deb {main} {SUITE}-updates main\n"
                f"deb {security} {SUITE}-security main\n"
            )
            shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
            (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
            for lists in (rootfs / "var/lib/apt/lists").glob("*"):
                if lists.is_file():
                    lists.unlink()
            partial = path.with_suffix(".tar.partial")
            subprocess.run(
                ["tar", "--numeric-owner", "-cf", str(partial), "-C", str(rootfs), "."],
                check=True,
            )
            partial.rename(path)
        return path


# ----------------------------------------------------------------------------- the engine


def _free_pool() -> str:
    """A 10.X.0.0/16 (X in 201..250) that no host route overlaps, for this engine's networks."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=False
    ).stdout
    used = []
    for word in re.findall(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", routes):
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    candidates = list(range(201, 251))
    random.shuffle(candidates)
    for octet in candidates:
        pool = ipaddress.ip_network(f"10.{octet}.0.0/16")
        if not any(pool.overlaps(net) for net in used if net.prefixlen > 0):
            return str(pool)
    raise EngineUnavailable("no free 10.X.0.0/16 address pool for the engine's networks")


def remove_run_dir(path: Path) -> None:
    """Unmount what dockerd left mounted under its exec root (its ``netns/default`` bind mount stays
    after it exits), deepest first, then delete the directory."""
    root = str(Path(path).resolve())
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted((m for m in points if m == root or m.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 2.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class DockerEngine:
    """``dockerd`` confined to ``workdir`` (data root, exec root, socket, PID file, log).

    ``data_root`` may point elsewhere to keep images between runs; it is locked while the engine runs,
    so two engines never share one.
    """

    def __init__(self, workdir: Path, data_root: Path | None = None) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_root = Path(data_root) if data_root else self.dir / "root"
        # unix socket paths must stay under 108 bytes, so the exec root lives in a short /tmp dir
        self.run_dir = Path(tempfile.mkdtemp(prefix="ghd-", dir="/tmp"))
        self.socket = self.run_dir / "docker.sock"
        self.pidfile = self.run_dir / "docker.pid"
        self.host = f"unix://{self.socket}"
        self.pool = ""
        self.daemon: Daemon | None = None
        self._lock: int | None = None

    @classmethod
    def attach(cls, workdir: Path, host: str) -> DockerEngine:
        """A handle on an engine that is already running at ``host`` (not stopped by ``stop()``)."""
        engine = cls.__new__(cls)
        engine.dir = Path(workdir)
        engine.data_root = engine.dir / "root"
        engine.host = host
        engine.socket = Path(host.removeprefix("unix://"))
        engine.run_dir = engine.socket.parent
        engine.pidfile = engine.run_dir / "docker.pid"
        engine.pool = ""
        engine.daemon = None
        engine._lock = None
        return engine

    @property
    def env(self) -> dict[str, str]:
        """The environment for docker clients (``docker``, ``docker-compose``) of this engine."""
        env = dict(os.environ, DOCKER_HOST=self.host)
        env.pop("DOCKER_CONTEXT", None)
        env.setdefault("DOCKER_CONFIG", str(self.dir / "client-config"))
        return env

    def start(self, timeout: float = 90) -> None:
        if not Path(DOCKERD).exists():
            raise EngineUnavailable(
                "dockerd is not installed; run scripts/stack-install.sh (make stack-test does)"
            )
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(
            self.data_root.parent / f".{self.data_root.name}.lock", os.O_CREAT | os.O_RDWR
        )
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            remove_run_dir(self.run_dir)
            raise EngineUnavailable(
                f"another engine is using {self.data_root}; stop it or give another data root"
            ) from None
        self.pool = _free_pool()
        argv = [
            DOCKERD,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.run_dir / "exec"),
            "-H", self.host,
            "--pidfile", str(self.pidfile),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--storage-driver=overlay2",
            "--default-address-pool", f"base={self.pool},size=24",
            "--log-level=warn",
            "--containerd-namespace", f"gridhub-{os.getpid()}",
            "--containerd-plugins-namespace", f"gridhub-{os.getpid()}-plugins",
        ]  # fmt: skip
        self.daemon = Daemon("dockerd", argv, self.dir / "dockerd.log")
        try:
            self.daemon.start(self.ping, timeout=timeout)
        except RuntimeError as exc:
            self._unlock()
            remove_run_dir(self.run_dir)
            raise EngineUnavailable(f"the Docker engine did not start: {exc}") from exc

    def ping(self) -> bool:
        """Whether the engine answers ``GET /_ping``."""
        if not self.socket.exists():
            return False
        conn = _UnixHTTPConnection(str(self.socket))
        try:
            conn.request("GET", "/_ping")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        """Remove all containers and networks, then stop dockerd (its containerd goes with it)."""
        if self.daemon is not None and self.daemon.proc and self.daemon.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
            self.docker("network", "prune", "-f", check=False)
            self.daemon.stop(timeout=30)
        self._unlock()
        remove_run_dir(self.run_dir)

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def docker(
        self, *args: str, check: bool = True, timeout: float = 600, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker client against this engine; output captured as text."""
        done = subprocess.run(
            [DOCKER_CLI, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )
        return done

    def has_image(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0

    def base_image(self, tag: str = BASE_IMAGE) -> str:
        """Import the cached bookworm minbase tarball as ``tag`` (made first if absent)."""
        if not self.has_image(tag):
            tarball = base_tarball()
            self.docker("import", "--change", 'CMD ["/bin/bash"]', str(tarball), tag, timeout=900)
        return tag

    def build(
        self,
        tag: str,
        context: Path,
        dockerfile: Path | None = None,
        args: dict[str, str] | None = None,
        log: Path | None = None,
        timeout: float = 1800,
    ) -> None:
        """``docker build`` on the host network with the host's apt settings as build args."""
        argv = [DOCKER_CLI, "build", "--network", "host", "-t", tag]
        if dockerfile is not None:
            argv += ["-f", str(dockerfile)]
        for key, value in {**build_args(), **(args or {})}.items():
            argv += ["--build-arg", f"{key}={value}"]
        argv.append(str(context))
        env = dict(self.env, DOCKER_BUILDKIT="0")
        out_path = log or self.dir / f"build-{re.sub(r'[^a-z0-9]+', '-', tag)}.log"
        with open(out_path, "ab") as out:
            done = subprocess.run(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        if done.returncode != 0:
            tail = out_path.read_text(errors="replace").splitlines()[-25:]
            raise RuntimeError(f"building {tag} failed:\n" + "\n".join(tail))

    def network(self, name: str) -> str:
        """Create (once) a user-defined bridge network; containers need one (no default bridge)."""
        if self.docker("network", "inspect", name, check=False).returncode != 0:
            self.docker("network", "create", name)
        return name


# ----------------------------------------------------------------------------- command line


def _main(argv: Sequence[str]) -> int:
    """``start DIR``: a detached engine for the compose stack, printing DOCKER_HOST; ``stop DIR``;
    ``env DIR`` prints ``DOCKER_HOST=...`` of a running one; ``base DIR`` imports the base image."""
    if len(argv) != 2 or argv[0] not in {"start", "stop", "env", "base"}:
        print("usage: python -m tests.harness.docker start|stop|env|base DIR", file=sys.stderr)
        return 2
    command, workdir = argv[0], Path(argv[1]).resolve()
    state = workdir / "engine.host"
    if command == "env":
        if not state.exists():
            print(f"no engine running for {workdir}", file=sys.stderr)
            return 1
        print(f"DOCKER_HOST={state.read_text().strip()}")
        return 0
    if command == "stop":
        if state.exists():
            host = state.read_text().strip()
            env = dict(os.environ, DOCKER_HOST=host)
            ids = subprocess.run(
                [DOCKER_CLI, "ps", "-aq"], env=env, capture_output=True, text=True, check=False
            ).stdout.split()
            if ids:
                subprocess.run(
                    [DOCKER_CLI, "rm", "-f", *ids], env=env, capture_output=True, check=False
                )
            subprocess.run(
                [DOCKER_CLI, "network", "prune", "-f"], env=env, capture_output=True, check=False
            )
            kill_pidfile(Path(host.removeprefix("unix://")).with_name("docker.pid"))
            remove_run_dir(Path(host.removeprefix("unix://")).parent)
            state.unlink()
        return 0
    if command == "base":
        print(DockerEngine.attach(workdir, state.read_text().strip()).base_image())
        return 0
    if state.exists():
        host = state.read_text().strip()
        if (
            subprocess.run(
                [DOCKER_CLI, "version"],
                env=dict(os.environ, DOCKER_HOST=host),
                capture_output=True,
                check=False,
            ).returncode
            == 0
        ):
            print(f"DOCKER_HOST={host}")
            return 0
    engine = DockerEngine(workdir, data_root=workdir / "root")
    try:
        engine.start()
    except EngineUnavailable as exc:
        print(f"The Docker engine could not start: {exc}", file=sys.stderr)
        return 1
    # detached on purpose: the demo stack outlives this command; `stop` ends it by its PID file
    engine._unlock()
    state.write_text(engine.host)
    print(f"DOCKER_HOST={engine.host}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
