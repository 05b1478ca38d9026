#!/usr/bin/env bash
# make stack-down: stops the demo stack and its engine; volumes (homes, LDAP, hub DB, secrets) are kept
# unless VOLUMES=1.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
[ "${VOLUMES:-0}" = 1 ] && args+=(--volumes)
exec .venv/bin/python -m tests.stack.stack down "${args[@]}"
