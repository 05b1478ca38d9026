#!/usr/bin/env bash
# Installs the system programs gridhub's demo and tests run for real: nginx (front proxy), Chromium and
# its driver (spawn-page tests), OpenLDAP (ldap_hooks tests), OpenSSH
# and iproute2 (remote hosts in network namespaces), SLURM and munge (a throwaway cluster for
# batchspawner), Docker and debootstrap (DockerSpawner on a confined engine with a locally made
# image), sshfs and bubblewrap (persistent homes), openssl (a password hash for the test SFTP
# service), and the npm configurable-http-proxy
# (JupyterHub's proxy) into .venv.
# Idempotent: whatever is already there is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(nginx chromium chromium-driver slapd ldap-utils openssh-server openssh-client iproute2 procps slurm-wlm munge sshfs bubblewrap docker.io debootstrap openssl)
declare -A PROVIDES=(
    [nginx]=/usr/sbin/nginx
    [chromium]=/usr/bin/chromium
    [chromium-driver]=/usr/bin/chromedriver
    [slapd]=/usr/sbin/slapd
    [ldap-utils]=/usr/bin/ldapsearch
    [openssh-server]=/usr/sbin/sshd
    [openssh-client]=/usr/bin/ssh-keygen
    [iproute2]=/usr/sbin/ip
    [procps]=/usr/bin/pgrep
    [slurm-wlm]=/usr/sbin/slurmctld
    [munge]=/usr/sbin/munged
    [docker.io]=/usr/sbin/dockerd
    [debootstrap]=/usr/sbin/debootstrap
    [sshfs]=/usr/bin/sshfs
    [bubblewrap]=/usr/bin/bwrap
    [openssl]=/usr/bin/openssl
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    [ -x "${PROVIDES[$pkg]}" ] || missing+=("$pkg")
done
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install: apt-get install ${missing[*]}"
    $SUDO apt-get update -q
    # slapd: install only; the tests run their own throwaway servers.
    echo 'slapd slapd/no_configuration boolean true' | $SUDO debconf-set-selections
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

CHP_DIR=.venv/chp
if [ ! -x "$CHP_DIR/node_modules/.bin/configurable-http-proxy" ]; then
    echo "install: npm configurable-http-proxy"
    npm install --silent --no-audit --no-fund --prefix "$CHP_DIR" configurable-http-proxy@^5
fi
ln -sf "../chp/node_modules/.bin/configurable-http-proxy" .venv/bin/configurable-http-proxy
