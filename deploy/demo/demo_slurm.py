"""The demo's SLURM child: batchspawner's SlurmSpawner for hub users without an account here.

batchspawner looks the hub user up in the system's user database for the job's home directory and
environment; the demo's users (demo, alice) exist only in nginx's password file. So their jobs run
as the account that runs the demo, each in its own directory under ``.demo/home``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from batchspawner import MultiSlurmSpawner


class DemoSlurmSpawner(MultiSlurmSpawner):
    """A SLURM job per server, in ``req_homedir`` (made at start), as the demo's own account."""

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env["HOME"] = self.req_homedir
        return env

    async def start(self) -> Any:
        await asyncio.to_thread(os.makedirs, self.req_homedir, 0o700, True)
        return await super().start()
