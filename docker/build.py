#!/usr/bin/env python3
"""Build every image of the gridhub compose stack against the engine in $DOCKER_HOST.

    python3 docker/build.py [--tag TAG] [IMAGE ...]

No image registry is needed: the base image is a Debian bookworm minbase root file system made with
debootstrap (cached in build/docker/, or $GRIDHUB_BUILD_DIR) and imported. Python wheels and the npm configurable-http-proxy
are fetched on the host with the host's own pip and npm settings (index, mirrors, constraints, CA)
into git-ignored build contexts, so the image builds themselves need no package index for them. apt
runs inside the builds on the host network with the host's Debian mirrors passed in as build
arguments. No secret is passed to a build.

Independent images build at the same time (``--jobs``, default 4): the wheels and npm packages are
fetched while the base image and gridhub/runtime build, and the images FROM gridhub/runtime build
side by side once it is there. Each image's log is build/docker/build-NAME.log; the time each took
is printed (and kept in build/docker/build-times.log).

Images (all tagged TAG, default the gridhub version): gridhub/runtime, gridhub/python, gridhub/hub,
gridhub/notebook-base, gridhub/notebook-hpc, gridhub/notebook-gpu, gridhub/slurm, gridhub/ldap,
gridhub/proxy.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.docker import (  # noqa: E402 - the repository root is put on the path first
    BASE_IMAGE,
    CACHE,
    DOCKER_CLI,
    base_tarball,
    build_args,
)

DOCKER = REPO / "docker"
CONTEXTS = CACHE / "context"
PYTHON_REQUIREMENTS = ["jupyterlab>=4,<5", "dockerspawner>=13"]
# installs those wheels inside the python image's build (not kept in the image)
UV_REQUIREMENT = "uv>=0.4"
# configurable-http-proxy 5 needs Node 20; Debian bookworm's nodejs is 18, which CHP 4.6 supports.
CHP_PACKAGE = "configurable-http-proxy@~4.6"

# name -> (Dockerfile directory, the image it is built FROM through which build argument)
IMAGES: dict[str, tuple[str, str | None, str | None]] = {
    "runtime": ("runtime", "BASE_IMAGE", None),
    "python": ("python", "RUNTIME_IMAGE", "runtime"),
    "hub": ("hub", "PYTHON_IMAGE", "python"),
    "notebook-base": ("notebook/base", "PYTHON_IMAGE", "python"),
    "notebook-hpc": ("notebook/hpc", "NOTEBOOK_IMAGE", "notebook-base"),
    "notebook-gpu": ("notebook/gpu", "NOTEBOOK_IMAGE", "notebook-base"),
    "slurm": ("slurm", "RUNTIME_IMAGE", "runtime"),
    "ldap": ("ldap", "RUNTIME_IMAGE", "runtime"),
    "proxy": ("proxy", "RUNTIME_IMAGE", "runtime"),
}


class BuildError(RuntimeError):
    """An image did not build; the message ends with its log's tail."""


def version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    return match.group(1) if match else "dev"


def image(name: str, tag: str) -> str:
    return f"gridhub/{name}:{tag}"


def log(message: str) -> None:
    print(f"build: {message}", file=sys.stderr, flush=True)


def docker(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER_CLI, *args], check=True, text=True, capture_output=capture, env=_env()
    )


def _env() -> dict[str, str]:
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    if "DOCKER_HOST" not in env:
        raise SystemExit("build: set DOCKER_HOST to the engine to build on")
    return env


def host_python() -> str:
    """The Python whose pip carries the host's settings (the project venv when there is one)."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# The images' interpreter (Debian bookworm's python3) and platform: wheels are chosen for it, not for
# whichever Python runs this script.
TARGET_PYTHON = ["--python-version", "3.11.2", "--implementation", "cp", "--abi", "cp311"]
TARGET_PLATFORMS = ["manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64"]
TARGET_PLATFORMS += ["manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]


_WHEEL_LOCK = threading.Lock()
_WHEEL: list[Path] = []


def gridhub_wheel() -> Path:
    """gridhub's own wheel, built from this checkout once per run into build/docker/context/gridhub."""
    with _WHEEL_LOCK:
        if not _WHEEL:
            out = CONTEXTS / "gridhub"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            with open(CACHE / "pip-wheel.log", "w") as log_file:
                subprocess.run(
                    [*_pip(), "wheel", "--no-deps", "--wheel-dir", str(out), str(REPO)],
                    check=True,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            _WHEEL.append(next(out.glob("gridhub-*.whl")))
        return _WHEEL[0]


def _pip() -> list[str]:
    return [host_python(), "-m", "pip", "--quiet", "--disable-pip-version-check"]


def python_requirements() -> list[str]:
    """What the images' environment needs: gridhub's dependencies with its ``ldap`` and ``ssh``
    extras (read from pyproject.toml, so the fetch need not wait for gridhub's wheel), JupyterLab and
    DockerSpawner."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["ldap"], *extras["ssh"], *PYTHON_REQUIREMENTS]


def python_context() -> Path:
    """build/docker/context/python: wheels/deps, every wheel gridhub[ldap,ssh], JupyterLab and
    DockerSpawner need (gridhub's own wheel goes to the hub image), and tools/, uv's wheel; fetched
    again only when pyproject's dependency lists change."""
    ctx = CONTEXTS / "python"
    deps = ctx / "wheels" / "deps"
    deps.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DOCKER / "python" / "Dockerfile", ctx / "Dockerfile")
    requirements = python_requirements()
    stamp = hashlib.sha256("\n".join([*requirements, UV_REQUIREMENT]).encode()).hexdigest()
    stamp_file = ctx / "wheels.stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return ctx
    log("fetching wheels with the host's pip settings (log: build/docker/pip.log)")
    pip_log = CACHE / "pip.log"
    shutil.rmtree(deps)
    deps.mkdir()
    platforms = [arg for tag in TARGET_PLATFORMS for arg in ("--platform", tag)]
    with open(pip_log, "w") as out:
        done = subprocess.run(
            [*_pip(), "download", "--only-binary=:all:", *TARGET_PYTHON, *platforms,
             "--dest", str(deps), *requirements],
            stdout=out, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        tail = pip_log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError("fetching wheels failed:\n" + "\n".join(tail))
    # uv, to install them in the image (the wheel carries a static binary)
    tools = ctx / "tools"
    shutil.rmtree(tools, ignore_errors=True)
    with open(pip_log, "a") as out:
        done = subprocess.run(
            [*_pip(), "download", "--no-deps", "--only-binary=:all:", *TARGET_PYTHON, *platforms,
             "--dest", str(tools), UV_REQUIREMENT],
            stdout=out, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        tail = pip_log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError("fetching uv failed:\n" + "\n".join(tail))
    stamp_file.write_text(stamp)
    return ctx


def hub_context() -> Path:
    """build/docker/context/hub: docker/hub, configurable-http-proxy from npm and gridhub's wheel."""
    ctx = CONTEXTS / "hub"
    ctx.mkdir(parents=True, exist_ok=True)
    for item in (DOCKER / "hub").iterdir():
        shutil.copy2(item, ctx / item.name)
    chp = ctx / "chp"
    if not (chp / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        log("fetching configurable-http-proxy with the host's npm settings")
        chp.mkdir(exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--omit=dev",
             "--prefix", str(chp), CHP_PACKAGE],
            check=True,
        )  # fmt: skip
    own = ctx / "wheels" / "gridhub"
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir(parents=True)
    shutil.copy2(gridhub_wheel(), own)
    return ctx


def context_for(name: str) -> Path:
    if name == "python":
        return python_context()
    if name == "hub":
        return hub_context()
    return DOCKER / IMAGES[name][0]


_BASE_LOCK = threading.Lock()


def ensure_base() -> str:
    with _BASE_LOCK:
        return _ensure_base()


def _ensure_base() -> str:
    if subprocess.run(
        [DOCKER_CLI, "image", "inspect", BASE_IMAGE], capture_output=True, env=_env(), check=False
    ).returncode:
        tarball = base_tarball()
        log(f"importing {tarball.name} as {BASE_IMAGE}")
        docker("import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE_IMAGE, capture=True)
    return BASE_IMAGE


def build(name: str, tag: str, ctx: Path) -> float:
    started = time.monotonic()
    _, from_arg, parent = IMAGES[name]
    args = build_args()
    args["BASE_IMAGE"] = ensure_base()
    if parent:
        args[from_arg] = image(parent, tag)
    argv = ["build", "--network", "host", "-t", image(name, tag)]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    argv += ["-f", str(ctx / "Dockerfile"), str(ctx)]
    logfile = CACHE / f"build-{name}.log"
    with open(logfile, "w") as out:
        done = subprocess.run(
            [DOCKER_CLI, *argv], env=_env(), stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise BuildError(f"{image(name, tag)} failed (log: {logfile}):\n{tail}")
    return time.monotonic() - started


def build_all(names: list[str], tag: str, jobs: int) -> dict[str, tuple[float, float]]:
    """Build ``names`` (their parents too when missing from ``names`` they are taken as built) at
    most ``jobs`` at a time, each as soon as its parent is done. Returns name -> (start, seconds)
    relative to the call. The first failure stops new builds and is raised once the running ones end.
    """
    t0 = time.monotonic()
    slots = threading.Semaphore(max(1, jobs))
    failed = threading.Event()
    times: dict[str, tuple[float, float]] = {}
    with ThreadPoolExecutor(max_workers=len(names) + 3) as pool:
        # contexts first, in the background: the wheels and npm fetches need no engine
        contexts = {
            name: pool.submit(context_for, name) for name in names if name in ("python", "hub")
        }
        base = pool.submit(ensure_base)
        done: dict[str, Future[None]] = {}

        def one(name: str) -> None:
            parent = IMAGES[name][2]
            base.result()
            if parent in done:
                done[parent].result()  # raises when the parent failed
            ctx = contexts[name].result() if name in contexts else context_for(name)
            with slots:
                if failed.is_set():
                    raise BuildError(f"{image(name, tag)} not built: another image failed")
                began = time.monotonic() - t0
                try:
                    seconds = build(name, tag, ctx)
                except BaseException:
                    failed.set()
                    raise
            times[name] = (began, seconds)
            log(f"{image(name, tag)} in {seconds:.0f} s (started at {began:.0f} s)")

        # parents are listed before their children in IMAGES, so each parent's future exists
        for name in [name for name in IMAGES if name in names]:
            done[name] = pool.submit(one, name)
        errors = []
        for future in done.values():
            exc = future.exception()
            if exc is not None and not str(exc).endswith("another image failed"):
                errors.append(exc)
        for future in [base, *contexts.values()]:
            if future.exception() is not None:
                errors.insert(0, future.exception())
        if errors:
            raise errors[0]
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=os.environ.get("GRIDHUB_TAG") or version())
    parser.add_argument(
        "--jobs", type=int, default=4, help="how many images may build at once (default 4)"
    )
    parser.add_argument("images", nargs="*", metavar="IMAGE", help=", ".join(IMAGES))
    args = parser.parse_args(argv)
    unknown = [name for name in args.images if name not in IMAGES]
    if unknown:
        parser.error(f"unknown image {unknown[0]!r}; the images are {', '.join(IMAGES)}")
    names = args.images or list(IMAGES)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "build-times.log").unlink(missing_ok=True)
    total = time.monotonic()
    try:
        times = build_all(names, args.tag, args.jobs)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        log(f"{exc}")
        return 1
    summary = f"all images in {time.monotonic() - total:.0f} s with up to {args.jobs} at once"
    log(summary)
    lines = [
        f"{name}: started at {began:.0f} s, took {took:.0f} s"
        for name, (began, took) in times.items()
    ]
    (CACHE / "build-times.log").write_text("\n".join([*lines, summary]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
