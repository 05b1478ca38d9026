#!/usr/bin/env bash
# make stack-test: installs the engine and tools (scripts/stack-install.sh), then runs
# tests/stack/check_stack.py, which makes the base image, builds every image, brings deploy/compose.yml
# up on a confined Docker engine, runs the MODI path end to end and tears it all down.
# Exits non-zero, saying why, when the engine cannot start: it never passes without the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
# GRIDHUB_BUILD_DIR (default build/docker) holds the base image tarball, build contexts, logs and the
# engine's data root; a fresh one measures a run with nothing cached.
build_dir=${GRIDHUB_BUILD_DIR:-build/docker}
began=$(date +%s)
bash scripts/stack-install.sh
started=$(date +%s)
# The base image's root file system (debootstrap, the longest step of a cold run) is made while the
# static checks run and the engine starts; docker/build.py waits for it (a file lock) and reports any
# failure itself.
GRIDHUB_BUILD_DIR=$build_dir .venv/bin/python -c \
    "from tests.harness.docker import base_tarball; base_tarball()" > /dev/null 2>&1 &
base=$!
status=0
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest tests/stack/check_stack.py -v -p no:cacheprovider \
    --durations=0 ${PYTEST_ARGS:-} || status=$?
wait $base || true
echo "stack-test: install $(( started - began )) s, tests $(( $(date +%s) - started )) s," \
    "load $(cut -d' ' -f1-3 /proc/loadavg), exit status $status"
for log in "$build_dir/build-times.log" "$build_dir/stack-test-times.log"; do
    [ -f "$log" ] && sed 's/^/stack-test: /' "$log"
done
exit $status
