"""Run one cloudsshspawner Tunnel in its own process (for bench/cloudssh_tunnel.py).

Usage: _tunnel_process.py HOST PORT USER KEY KNOWN_HOSTS TARGET_PORT [FORWARD_PROCESSES]
Prints the local port once the forward is open, then forwards until killed. FORWARD_PROCESSES:
the OpenSSH processes that carry the local forward (default 2; 0: this process carries it).

It also measures its event loop's lag, as a hub's would suffer: a 5 ms sleep, over and over, and
how late each wakes up. Each line on stdin answers with "p99 max" of the lags (ms) since the last
line, and starts over.
"""

import asyncio
import logging
import sys

from cloudsshspawner import SSHTarget, Tunnel
from cloudsshspawner.tunnel import Forwards

TICK = 0.005


async def watch_lag(lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(TICK)
        lags.append(loop.time() - start - TICK)


def report(lags: list[float]) -> None:
    if not sys.stdin.readline():  # stdin closed: nobody asks any more
        asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
        return
    samples = sorted(lags) or [0.0]
    lags.clear()
    p99 = samples[int(len(samples) * 0.99)] * 1000
    print(f"{p99:.2f} {samples[-1] * 1000:.2f}", flush=True)


async def main() -> None:
    host, port, user, key, known_hosts, target_port = sys.argv[1:7]
    processes = int(sys.argv[7]) if len(sys.argv) > 7 else 2
    target = SSHTarget(
        host=host, port=int(port), username=user, key_file=key, known_hosts=known_hosts
    )
    tunnel = Tunnel(target, logging.getLogger("bench"), forward_processes=processes)
    forwards = await tunnel.open(Forwards(notebook_port=int(target_port), hub_port=9))
    lags: list[float] = []
    watcher = asyncio.ensure_future(watch_lag(lags))
    try:
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), report, lags)
    except (OSError, ValueError):  # stdin is a file or /dev/null: no one to answer
        watcher.cancel()
    print(forwards.local_port, flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
