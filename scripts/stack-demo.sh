#!/usr/bin/env bash
# make stack-demo: the compose stack on a confined Docker engine for a person to try: front page on
# http://127.0.0.1:${GRIDHUB_HTTP_PORT:-8000}/, a demo login printed at the end. `make stack-down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/stack-install.sh
PATH="$PWD/.venv/bin:$PATH" exec .venv/bin/python -m tests.stack.stack demo
