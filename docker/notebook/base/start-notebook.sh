#!/bin/bash
# JupyterLab without a hub (docker run -p 8888:8888 IMAGE).
set -euo pipefail
exec /usr/local/bin/start.sh jupyter lab --ip=0.0.0.0 --port=8888 "$@"
