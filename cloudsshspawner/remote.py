"""Shell snippets run on the remote host, and the encoding of the notebook's environment.

Secrets never appear on a command line: the environment travels over the SSH channel's stdin and
is sourced by the launcher; the notebook's files live in a 0700 directory under the user's home.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# $1: the server's directory (relative to $HOME); the rest: the notebook command.
LAUNCHER = r"""
umask 077
cd || exit 4
dir="$1"; shift
mkdir -p "$dir/runtime" || exit 3
set -a
. /dev/stdin
set +a
export JUPYTER_RUNTIME_DIR="$HOME/$dir/runtime"
setsid "$@" </dev/null >"$dir/notebook.log" 2>&1 &
echo "$!"
"""

# $1: directory, $2: pid. Prints the server's runtime JSON, WAIT, or DEAD and the log's tail.
PORT_PROBE = r"""
cd || exit 4
f="$1/runtime/jpserver-$2.json"
if [ -s "$f" ]; then cat "$f"
elif kill -0 "$2" 2>/dev/null; then echo WAIT
else echo DEAD; tail -n 15 "$1/notebook.log" 2>/dev/null
fi
"""

ALIVE = r'kill -0 "$1" 2>/dev/null'

# $1: pid (also the process group), $2: directory, $3: seconds to wait before SIGKILL.
STOP = r"""
cd || exit 4
kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt "$(( $3 * 10 ))" ]; do sleep 0.1; i=$((i+1)); done
kill -KILL -- "-$1" 2>/dev/null
rm -rf "$2"
exit 0
"""


def shell(script: str, *args: str) -> str:
    """``sh -c SCRIPT`` with positional arguments, each quoted."""
    return " ".join(["sh", "-c", shlex.quote(script), "gridhub", *map(shlex.quote, args)])


def launch_command(directory: str, argv: Sequence[str]) -> str:
    return shell(LAUNCHER, directory, *argv)


def encode_environment(env: Mapping[str, str]) -> str:
    """``NAME='value'`` lines for the launcher's stdin; names are checked, values quoted."""
    lines = []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"environment variable name {name!r} is not valid")
        lines.append(f"{name}={shlex.quote(str(value))}")
    return "\n".join(lines) + "\n"


def parse_port(probe_output: str) -> int | None:
    """The port from the server's runtime JSON, None while it is starting; raises if it died."""
    text = probe_output.strip()
    if text == "WAIT" or not text:
        return None
    if text.startswith("DEAD"):
        log = text[4:].strip()
        raise RuntimeError(
            "the notebook server exited while starting" + (f":\n{log}" if log else "")
        )
    return int(json.loads(text)["port"])
