"""Persistent home throughput: sshfs through the spawner's SSH connection vs plain sftp.

A throwaway sshd host (network namespace) stands in for the VM; the hub side is this process. Both
paths reach the same hub-side directory through the same SSH connection and the same sandboxed
OpenSSH sftp-server:

- mount: ``cloudsshspawner.home.PersistentHome`` (``sshfs -o passive`` in an exec channel), with
  ``dd`` writing and reading on the host;
- sftp: OpenSSH's ``sftp`` client on the host, its SFTP stream relayed over an exec channel of the
  same connection (``put``/``get``).

Also 1,000 files of 4 KB through the mount vs the host's local disk. With ``--external`` the
storage is an external SFTP service instead (a chrooted, password-only OpenSSH sshd on loopback,
as in the tests): the hub logs in to it and relays its SFTP to the mount, and to the plain sftp
client for the baseline. Usage:
``python bench/persistent_home.py [--mib 64] [--rounds 2] [--external]``. Prints the ratios
(target: mount throughput >= 0.8 x sftp).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncssh

from cloudsshspawner import SSHTarget, Tunnel
from cloudsshspawner.home import (
    CHUNK,
    ExternalSFTP,
    PersistentHome,
    _ExternalServer,
    _SandboxedServer,
    _Source,
    shell,
)
from tests.cloudsshspawner.test_external_home import ERDA
from tests.harness.sshd import host_with_key

# $1: the sftp batch. The client's SFTP stream goes out on stdout and comes back on stdin.
SFTP_RELAY = r"""
d=$(mktemp -d) && mkfifo "$d/req" "$d/resp" && printf '%s\n' "$1" >"$d/batch" || exit 3
exec 3<&0  # a background job's stdin would be /dev/null
cat "$d/req" &
cat <&3 >"$d/resp" &
sftp -q -b "$d/batch" -D "sh -c 'cat $d/resp & exec cat >$d/req'" </dev/null >/dev/null 2>&1
rc=$?
echo "DONE $rc" >&2
wait
rm -rf "$d"
"""

SMALL_FILES = r"""
import os, sys, time
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
start = time.perf_counter()
for i in range(1000):
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(b"x" * 4096)
written = time.perf_counter() - start
start = time.perf_counter()
for i in range(1000):
    with open(os.path.join(d, "f%d" % i), "rb") as f:
        f.read()
print(written, time.perf_counter() - start)
"""


async def pump(read, write, end) -> None:
    try:
        while data := await read.read(CHUNK):
            write.write(data)
            await write.drain()
    except (OSError, asyncssh.Error, ConnectionError):
        pass
    finally:
        try:
            end()
        except Exception:  # noqa: S110 - already closed
            pass


async def sftp_transfer(
    conn: asyncssh.SSHClientConnection, open_server: Callable[[], Awaitable[_Source]], batch: str
) -> float:
    """Seconds for one ``sftp`` batch on the host, relayed to a freshly opened server."""
    server = await open_server()
    start = time.perf_counter()
    client = await conn.create_process(shell(SFTP_RELAY, batch), encoding=None)
    pumps = [
        asyncio.ensure_future(pump(client.stdout, server.writer, server.end_input)),
        asyncio.ensure_future(pump(server.reader, client.stdin, client.stdin.write_eof)),
    ]
    line = await client.stderr.readline()
    elapsed = time.perf_counter() - start
    if not line.startswith(b"DONE 0"):
        raise RuntimeError(f"sftp failed: {line!r}")
    client.close()
    for task in pumps:
        task.cancel()
    await server.close()
    return elapsed


async def timed(conn: asyncssh.SSHClientConnection, command: str) -> float:
    start = time.perf_counter()
    result = await conn.run(command, check=True)
    del result
    return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="size of each transfer (MiB)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the median is reported")
    parser.add_argument(
        "--external", action="store_true", help="the home on an external SFTP service"
    )
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    log = logging.getLogger("bench")
    erda: ERDA | None = None
    # The external service's files are under /data, its login directory, as written here.
    folder = "/data/" if args.external else ""

    def put(source: Path, i: int) -> str:
        # -f: the server fsyncs the file, as the mount's write does (dd conv=fsync); without it
        # the baseline would stop timing while its data is still in the hub's page cache.
        return f"put -f {source} {folder}sw{i}"

    def get(i: int) -> str:
        return f"get {folder}sr{i} /dev/null"

    with tempfile.TemporaryDirectory(prefix="bench-home-") as tmp:
        work = Path(tmp)
        host, key, known_hosts = host_with_key(work)
        try:
            target = SSHTarget(
                host=host.address,
                port=host.port,
                username="root",
                key_file=str(key),
                known_hosts=str(known_hosts),
            )
            tunnel = Tunnel(target, log)
            await tunnel.connect()
            conn = tunnel._conn
            assert conn is not None
            homes, mount = work / "homes", work / "mnt"
            external = None
            if args.external:
                erda = ERDA(work / "erda")
                erda.start()
                (work / "erda_known_hosts").write_text(erda.known_hosts_line())
                external = ExternalSFTP(
                    "127.0.0.1",
                    erda.port,
                    str(work / "erda_known_hosts"),
                    erda.username,
                    password=erda.password,
                    path="/data",
                )
                user_dir = erda.data
            else:
                user_dir = homes / "bench"
            home = PersistentHome(str(homes), "bench", str(mount), log, external=external)
            await home.mount(conn)

            async def open_server() -> _Source:
                if external is not None:
                    return await _ExternalServer.open(external)
                return await _SandboxedServer.start(str(homes), "bench")

            local = work / "host-local"  # the host's own disk (same file system, not mounted)
            local.mkdir()
            source = local / "source"
            source.write_bytes(os.urandom(size))
            results: dict[str, list[float]] = {k: [] for k in ("mw", "mr", "sw", "sr")}
            for i in range(args.rounds):
                # Reads come from files written on the hub side: nothing cached on the host.
                for name in (f"mr{i}", f"sr{i}"):
                    (user_dir / name).write_bytes(os.urandom(size))
                results["mw"].append(
                    await timed(
                        conn, f"dd if={source} of={mount}/mw{i} bs=1M conv=fsync status=none"
                    )
                )
                results["mr"].append(
                    await timed(conn, f"dd if={mount}/mr{i} of=/dev/null bs=1M status=none")
                )
                results["sw"].append(await sftp_transfer(conn, open_server, put(source, i)))
                results["sr"].append(await sftp_transfer(conn, open_server, get(i)))
                assert (user_dir / f"mw{i}").stat().st_size == size
                assert (user_dir / f"sw{i}").stat().st_size == size
            rate = {k: args.mib / statistics.median(v) for k, v in results.items()}
            # Each round times the mount and sftp back to back: the median of the per-round
            # ratios cancels the load drifting between rounds (a ratio of medians does not).
            paired = {
                kind: statistics.median(
                    s / m for m, s in zip(results[f"m{kind}"], results[f"s{kind}"], strict=True)
                )
                for kind in ("w", "r")
            }
            small_mount = (
                await conn.run(f"python3 -c {shlex.quote(SMALL_FILES)} {mount}/small")
            ).stdout
            small_local = (
                await conn.run(f"python3 -c {shlex.quote(SMALL_FILES)} {local}/small")
            ).stdout
            mw, mr = map(float, str(small_mount).split())
            lw, lr = map(float, str(small_local).split())
            await home.unmount(conn)
            await tunnel.close()
        finally:
            host.stop()
            if erda is not None:
                erda.stop()
    where = "external SFTP service (relayed by the hub)" if args.external else "hub directory"
    print(f"storage: {where}")
    print(f"transfer size {args.mib} MiB, {args.rounds} rounds (medians; ratio: median of"
          " the per-round mount/sftp ratios)")  # fmt: skip
    print(f"write: mount {rate['mw']:.1f} MiB/s, sftp {rate['sw']:.1f} MiB/s,"
          f" ratio {paired['w']:.2f} (target >= 0.8)")  # fmt: skip
    print(f"read:  mount {rate['mr']:.1f} MiB/s, sftp {rate['sr']:.1f} MiB/s,"
          f" ratio {paired['r']:.2f} (target >= 0.8)")  # fmt: skip
    print(f"1,000 x 4 KB: write mount {mw:.2f} s vs local {lw:.3f} s ({mw / lw:.0f}x),"
          f" read mount {mr:.2f} s vs local {lr:.3f} s ({mr / lr:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
