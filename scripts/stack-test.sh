#!/usr/bin/env bash
# make stack-test: installs the engine and tools (scripts/stack-install.sh), then runs
# tests/stack/check_stack.py, which makes the base image, builds every image, brings deploy/compose.yml
# up on a confined Docker engine, runs the MODI path end to end and tears it all down.
# Exits non-zero, saying why, when the engine cannot start: it never passes without the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/stack-install.sh
started=$(date +%s)
status=0
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest tests/stack/check_stack.py -v -p no:cacheprovider \
    ${PYTEST_ARGS:-} || status=$?
echo "stack-test: $(( $(date +%s) - started )) s, exit status $status"
exit $status
