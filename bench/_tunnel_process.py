"""Run one cloudsshspawner Tunnel in its own process (for bench/cloudssh_tunnel.py).

Usage: _tunnel_process.py HOST PORT USER KEY KNOWN_HOSTS TARGET_PORT [FORWARD_PROCESSES]
Prints the local port once the forward is open, then forwards until killed. FORWARD_PROCESSES:
the OpenSSH processes that carry the local forward (default 2; 0: this process carries it).
"""

import asyncio
import logging
import sys

from cloudsshspawner import SSHTarget, Tunnel
from cloudsshspawner.tunnel import Forwards


async def main() -> None:
    host, port, user, key, known_hosts, target_port = sys.argv[1:7]
    processes = int(sys.argv[7]) if len(sys.argv) > 7 else 2
    target = SSHTarget(
        host=host, port=int(port), username=user, key_file=key, known_hosts=known_hosts
    )
    tunnel = Tunnel(target, logging.getLogger("bench"), forward_processes=processes)
    forwards = await tunnel.open(Forwards(notebook_port=int(target_port), hub_port=9))
    print(forwards.local_port, flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
