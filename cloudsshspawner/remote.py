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

# The agent runs beside the notebook, in its own session, as the same user. It holds the one API
# port the notebook knows (JUPYTERHUB_API_URL) for the notebook's whole life and relays each
# connection to the reverse forward's current port, which the spawner writes to ``hub_port`` after
# every (re)connect: a new SSH connection can always take a fresh remote port, even while a
# half-open old session still holds the previous one. It also watches the hub: when the hub's
# API has not answered for ``grace`` seconds, it stops the notebook and removes its files.
# Before it announces its own port it writes ``notebook_port``: a port it reserves for the notebook,
# from 20000 up to the kernel's ephemeral range (no outgoing connection can take it), so notebooks
# starting together on one host never get the same one. (The hub cannot pick it: it does not know
# the host's ports, and a URL with port 0 makes jupyterhub-singleuser bind port 80.)
# argv: directory (absolute), grace seconds, check interval seconds, API path (/hub/api).
AGENT = r"""
import asyncio, os, random, shutil, signal, socket, sys, time

directory, grace, interval, api_path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]


def path(name):
    return os.path.join(directory, name)


def read_int(name):
    try:
        with open(path(name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


relayed = {}  # hub port -> the notebook-side writers of connections relayed to it


async def relay(reader, writer):
    port = read_int("hub_port")
    try:
        hub_reader, hub_writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TypeError):
        writer.close()
        return
    relayed.setdefault(port, set()).add(writer)
    try:
        await asyncio.gather(pipe(reader, hub_writer), pipe(hub_reader, writer))
    finally:
        relayed.get(port, set()).discard(writer)


async def drop_stale():
    # A request relayed to an old forward's port may never get an answer (its SSH connection is
    # gone); once the port changes, end those connections so the notebook retries on the new one.
    while True:
        await asyncio.sleep(0.5)
        current = read_int("hub_port")
        for port in [p for p in relayed if p != current]:
            for writer in relayed.pop(port):
                writer.close()


async def hub_answers():
    port = read_int("hub_port")
    if port is None:
        return False
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        writer.write(("GET %s/ HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n" % api_path).encode())
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return line.startswith(b"HTTP/1.")
    except (OSError, asyncio.TimeoutError):
        return False


def stop_notebook(pid):
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
        try:
            os.killpg(pid, sig)
        except OSError:
            pass
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    shutil.rmtree(directory, ignore_errors=True)


def reserve_notebook_port():
    # Bound without SO_REUSEADDR, so a port anyone holds is refused (another agent's reservation
    # too), then flagged SO_REUSEADDR and kept, not listening: the notebook's own bind (Tornado
    # sets SO_REUSEADDR) still succeeds, and no other agent can take the port meanwhile.
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    ports = range(20000 if ephemeral > 21000 else 1024, ephemeral)
    start = random.randrange(len(ports))
    for i in range(len(ports)):
        reservation = socket.socket()
        try:
            reservation.bind(("127.0.0.1", ports[(start + i) % len(ports)]))
        except OSError:
            reservation.close()
            continue
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return reservation
    raise SystemExit("no free port for the notebook in %d-%d" % (ports[0], ports[-1]))


async def main():
    reservation = reserve_notebook_port()  # held while the agent lives
    with open(path("notebook_port.tmp"), "w") as f:
        f.write("%d\n" % reservation.getsockname()[1])
    os.replace(path("notebook_port.tmp"), path("notebook_port"))
    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(path("agent_port.tmp"), "w") as f:
        f.write("%d\n" % port)
    os.replace(path("agent_port.tmp"), path("agent_port"))
    deadline = time.monotonic() + 60
    while (pid := read_int("notebook.pid")) is None:
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)
    last_answer = time.monotonic()
    asyncio.ensure_future(drop_stale())
    while alive(pid):
        if await hub_answers():
            last_answer = time.monotonic()
        elif time.monotonic() - last_answer > grace:
            print("the hub has not answered for %.0f s: stopping the notebook" % grace, flush=True)
            stop_notebook(pid)
            return
        await asyncio.sleep(interval)


asyncio.run(main())
"""

# `ours PID DIR`: whether PID is a process of the server whose directory is DIR (absolute): its
# agent (the command line names DIR/agent.py) or its notebook (its environment has
# JUPYTER_RUNTIME_DIR=DIR/runtime). A pid read from a file, or kept in the hub's state, may belong
# to another process by now (the old one ended, the host rebooted): that one is never signalled.
# /proc/PID/environ is readable only by the process's own user (or root).
OURS = r"""
ours() {
  [ "${1:-0}" -gt 0 ] 2>/dev/null || return 1
  grep -qsF -- "$2/agent.py" "/proc/$1/cmdline" ||
    grep -qsF -- "JUPYTER_RUNTIME_DIR=$2/runtime" "/proc/$1/environ"
}
# The server's directory as the launcher resolved it ($1 may be relative to $HOME).
absolute() {
  (cd "$1" 2>/dev/null && pwd) || case "$1" in /*) echo "$1" ;; *) echo "$HOME/$1" ;; esac
}
"""

# $1: the server's directory (absolute, or relative to $HOME); the rest: the notebook command. The environment
# (stdin) carries GRIDHUB_* settings for the agent; the launcher points the notebook's API URLs at
# the agent and its own URL at the port the agent found, and prints the notebook's pid, then the
# agent's.
LAUNCHER = (
    OURS
    + r"""
umask 077
cd || exit 4
dir="$1"; shift
mkdir -p "$dir/runtime" || exit 3
dir=$(cd "$dir" && pwd) || exit 3
echo "$$" >"$dir/launcher.pid" || exit 3
# An earlier launch of this server whose pids never reached a hub (it was killed while this ran):
# its processes stop, and its files go, or they would point this launch at its agent and port.
for f in agent.pid notebook.pid; do
  old=$(cat "$dir/$f" 2>/dev/null)
  ours "$old" "$dir" && kill -KILL "-$old" 2>/dev/null
done
rm -f "$dir/agent.pid" "$dir/notebook.pid" "$dir/agent_port" "$dir/notebook_port"
set -a
. /dev/stdin
set +a
printf '%s\n' "$GRIDHUB_AGENT" >"$dir/agent.py" || exit 3
printf '%s\n' "$GRIDHUB_HUB_PORT" >"$dir/hub_port" || exit 3
setsid "$GRIDHUB_PYTHON" "$dir/agent.py" "$dir" "$GRIDHUB_GRACE" "$GRIDHUB_CHECK" \
  "$GRIDHUB_API_PATH" </dev/null >"$dir/agent.log" 2>&1 &
agent=$!
echo "$agent" >"$dir/agent.pid"
i=0
while [ ! -s "$dir/agent_port" ]; do
  if ! kill -0 "$agent" 2>/dev/null || [ "$i" -ge 300 ]; then
    echo "the gridhub agent ($GRIDHUB_PYTHON) did not start:" >&2
    tail -n 5 "$dir/agent.log" >&2
    kill "$agent" 2>/dev/null
    exit 5
  fi
  sleep 0.05; i=$((i+1))
done
port=$(cat "$dir/agent_port")
export JUPYTERHUB_API_URL="http://127.0.0.1:$port$GRIDHUB_API_PATH"
export JUPYTERHUB_ACTIVITY_URL="http://127.0.0.1:$port$GRIDHUB_ACTIVITY_PATH"
export JUPYTERHUB_SERVICE_URL="http://127.0.0.1:$(cat "$dir/notebook_port")$GRIDHUB_SERVICE_PATH"
unset GRIDHUB_AGENT GRIDHUB_HUB_PORT GRIDHUB_PYTHON GRIDHUB_GRACE GRIDHUB_CHECK GRIDHUB_API_PATH \
  GRIDHUB_ACTIVITY_PATH GRIDHUB_SERVICE_PATH
export JUPYTER_RUNTIME_DIR="$dir/runtime"
setsid "$@" </dev/null >"$dir/notebook.log" 2>&1 &
echo "$!" >"$dir/notebook.pid"
rm -f "$dir/launcher.pid"
echo "$!"
echo "$agent"
"""
)

# $1: directory, $2: the reverse forward's port on this host (after a reconnect).
SET_HUB_PORT = r"""
cd || exit 4
[ -d "$1" ] || exit 0
printf '%s\n' "$2" >"$1/hub_port.tmp" && mv -f "$1/hub_port.tmp" "$1/hub_port"
"""

# $1: directory, $2: pid. Prints the server's runtime JSON, WAIT, or DEAD and the log's tail.
PORT_PROBE = r"""
cd || exit 4
f="$1/runtime/jpserver-$2.json"
if [ -s "$f" ]; then cat "$f"
elif kill -0 "$2" 2>/dev/null; then echo WAIT
else echo DEAD; tail -n 15 "$1/notebook.log" 2>/dev/null || echo "(no notebook.log in $1)"
fi
exit 0
"""

# $1: pid, $2: directory. Exits 0 while the server's notebook runs.
ALIVE = (
    OURS
    + r"""
cd || exit 4
ours "$1" "$(absolute "$2")"
"""
)

# $1: pid (also the process group; 0: not known), $2: directory, $3: seconds to wait before
# SIGKILL, $4: the agent's pid (0: none). Only processes of this server are signalled (`ours`).
# Pid 0 is a launch whose pids never reached the hub (the
# spawn was cancelled while the launcher ran): the launcher is let finish (it is bounded), then the
# pids it recorded are stopped. The agent goes first, so it neither relays nor watches any more.
STOP = (
    OURS
    + r"""
cd || exit 4
pid="$1" agent="$4" dir=$(absolute "$2")
if [ "$pid" = 0 ]; then
  launcher=$(cat "$2/launcher.pid" 2>/dev/null)
  i=0
  # (a pid that is not a launcher of this directory any more is not waited for)
  while [ -n "$launcher" ] && grep -qsF -- "$2" "/proc/$launcher/cmdline" && [ "$i" -lt 200 ]; do
    sleep 0.1; i=$((i+1))
  done
  pid=$(cat "$2/notebook.pid" 2>/dev/null) agent=$(cat "$2/agent.pid" 2>/dev/null)
fi
ours "$agent" "$dir" && kill -KILL "-$agent" 2>/dev/null
if ours "$pid" "$dir"; then
  kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt "$(( $3 * 10 ))" ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "-$pid" 2>/dev/null
fi
rm -rf "$2"
exit 0
"""
)


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
