#!/usr/bin/env python3
"""Build every image of the gridhub compose stack against the engine in $DOCKER_HOST.

    python3 docker/build.py [--tag TAG] [IMAGE ...]

No image registry is needed: the base image is a Debian bookworm minbase root file system made with
debootstrap (cached in build/docker/) and imported. Python wheels and the npm configurable-http-proxy
are fetched on the host with the host's own pip and npm settings (index, mirrors, constraints, CA)
into git-ignored build contexts, so the image builds themselves need no package index for them. apt
runs inside the builds on the host network with the host's Debian mirrors passed in as build
arguments. No secret is passed to a build.

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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.docker import (  # noqa: E402 - the repository root is put on the path first
    BASE_IMAGE,
    DOCKER_CLI,
    base_tarball,
    build_args,
)

DOCKER = REPO / "docker"
CONTEXTS = REPO / "build" / "docker" / "context"
PYTHON_REQUIREMENTS = ["jupyterlab>=4,<5", "dockerspawner>=13"]
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


def python_context() -> Path:
    """build/docker/context/python: wheels/deps (everything gridhub[ldap], JupyterLab and DockerSpawner
    need) and wheels/gridhub (the gridhub wheel alone, rebuilt every time)."""
    ctx = CONTEXTS / "python"
    deps, own = ctx / "wheels" / "deps", ctx / "wheels" / "gridhub"
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir(parents=True)
    deps.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DOCKER / "python" / "Dockerfile", ctx / "Dockerfile")
    pyproject = (REPO / "pyproject.toml").read_text()
    # only what decides the dependency set: a new entry point elsewhere does not refetch
    wanted = re.findall(r"^dependencies = \[.*?^\]|^ldap = .*?$", pyproject, re.M | re.S)
    stamp_text = "\n".join(wanted + PYTHON_REQUIREMENTS)
    stamp = hashlib.sha256(stamp_text.encode()).hexdigest()
    stamp_file = ctx / "wheels.stamp"
    pip = [host_python(), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    pip_log = REPO / "build" / "docker" / "pip.log"
    with open(pip_log, "w") as out:
        subprocess.run(
            [*pip, "wheel", "--no-deps", "--wheel-dir", str(own), str(REPO)],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        gridhub = next(own.glob("gridhub-*.whl"))
        if not stamp_file.exists() or stamp_file.read_text() != stamp:
            log("fetching wheels with the host's pip settings (log: build/docker/pip.log)")
            shutil.rmtree(deps)
            deps.mkdir()
            platforms = [arg for tag in TARGET_PLATFORMS for arg in ("--platform", tag)]
            done = subprocess.run(
                [*pip, "download", "--only-binary=:all:", *TARGET_PYTHON, *platforms,
                 "--dest", str(deps), f"gridhub[ldap] @ {gridhub.as_uri()}",
                 *PYTHON_REQUIREMENTS],
                stdout=out, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                tail = pip_log.read_text(errors="replace").splitlines()[-15:]
                raise SystemExit("build: fetching wheels failed:\n" + "\n".join(tail))
            for copy in deps.glob("gridhub-*.whl"):
                copy.unlink()
            stamp_file.write_text(stamp)
    return ctx


def hub_context() -> Path:
    """build/docker/context/hub: docker/hub plus configurable-http-proxy from npm."""
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
    return ctx


def context_for(name: str) -> Path:
    if name == "python":
        return python_context()
    if name == "hub":
        return hub_context()
    return DOCKER / IMAGES[name][0]


def ensure_base() -> str:
    if subprocess.run(
        [DOCKER_CLI, "image", "inspect", BASE_IMAGE], capture_output=True, env=_env(), check=False
    ).returncode:
        tarball = base_tarball()
        log(f"importing {tarball.name} as {BASE_IMAGE}")
        docker("import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE_IMAGE, capture=True)
    return BASE_IMAGE


def build(name: str, tag: str) -> float:
    started = time.monotonic()
    _, from_arg, parent = IMAGES[name]
    ctx = context_for(name)
    args = build_args()
    args["BASE_IMAGE"] = ensure_base()
    if parent:
        args[from_arg] = image(parent, tag)
    argv = ["build", "--network", "host", "-t", image(name, tag)]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    argv += ["-f", str(ctx / "Dockerfile"), str(ctx)]
    logfile = REPO / "build" / "docker" / f"build-{name}.log"
    with open(logfile, "w") as out:
        done = subprocess.run(
            [DOCKER_CLI, *argv], env=_env(), stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"build: {image(name, tag)} failed (log: {logfile}):\n{tail}")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=os.environ.get("GRIDHUB_TAG") or version())
    parser.add_argument("images", nargs="*", metavar="IMAGE", help=", ".join(IMAGES))
    args = parser.parse_args(argv)
    unknown = [name for name in args.images if name not in IMAGES]
    if unknown:
        parser.error(f"unknown image {unknown[0]!r}; the images are {', '.join(IMAGES)}")
    names = args.images or list(IMAGES)
    (REPO / "build" / "docker").mkdir(parents=True, exist_ok=True)
    total = time.monotonic()
    for name in names:
        seconds = build(name, args.tag)
        log(f"{image(name, args.tag)} in {seconds:.0f} s")
    log(f"all images in {time.monotonic() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
