#!/usr/bin/env bash
# Installs what the compose stack targets (make stack-test / stack-demo / stack-down) need on top of
# `make install`: Debian's Docker engine (docker.io: dockerd, containerd, runc), Compose v1
# (docker-compose 1.29.2, the only Compose in Debian 12) and debootstrap, which makes the local base
# image (no image registry is reachable). Kept apart from scripts/install-system.sh so `make test` stays lean.
# Idempotent: whatever is already there is skipped. The packages' own daemons are not started.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(docker.io docker-compose debootstrap containerd runc)
declare -A PROVIDES=(
    [docker.io]=/usr/sbin/dockerd
    [docker-compose]=/usr/bin/docker-compose
    [debootstrap]=/usr/sbin/debootstrap
    [containerd]=/usr/bin/containerd
    [runc]=/usr/sbin/runc
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    [ -x "${PROVIDES[$pkg]}" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "stack-install: apt-get install ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The compose-spec validator and the Dockerfile linter (pyproject extra "stack") into the project venv.
if [ ! -x .venv/bin/check-jsonschema ] || [ ! -x .venv/bin/hadolint ] || ! .venv/bin/python -c "import websocket" 2>/dev/null; then
    echo "stack-install: pip install -e '.[stack]'"
    .venv/bin/python -m pip install --quiet -e '.[stack]'
fi
