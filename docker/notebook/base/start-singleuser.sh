#!/bin/bash
# What a JupyterHub spawner runs: jupyterhub-singleuser with the spawner's arguments.
set -euo pipefail
exec /usr/local/bin/start.sh jupyterhub-singleuser "$@"
