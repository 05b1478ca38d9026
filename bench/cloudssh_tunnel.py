"""Our SSH tunnel vs OpenSSH ``ssh -N -L`` vs no tunnel, to one HTTP server on a remote host.

The remote host is an sshd in its own network namespace (or on 127.0.0.1 where namespaces are not
available). The HTTP server there sends a 100 MB file with sendfile(2), so the source is not what
caps the figures; "direct" reaches it without any tunnel (the ceiling of this machine). Each tunnel
runs in its own process; ours by default hands each connection to one of two OpenSSH processes
(``cloudsshspawner/muxforward.py``), "ours asyncssh" carries it in the tunnel's own process
(``tunnel_processes = 0``). Measured:
- throughput: one 100 MB download at a time, alternating between the paths for several rounds
  (so load on this shared machine hits all alike), median MB/s; and 4 downloads at once, MB/s in all;
- CPU: seconds of CPU per GB downloaded for each process on the path (tunnel client with its ssh
  children, sshd sessions, HTTP source, reader), far less sensitive to the machine's load than MB/s: on a machine whose
  cores are all busy, throughput follows the sum; and the cores the tunnel client uses while 4
  downloads run at once;
- latency: 1000 sequential 1 KiB GETs on one keep-alive connection, p50/p99.
Prints each path's figures and the ratios ours / ``ssh -L`` (targets: throughput >= 1.5x,
p99 < 1 ms).

``--two-hosts`` models a hub and a notebook host that are two machines, as in a deployment: the
remote side (sshd and the HTTP source) runs on CPU 1 and the hub's side (the tunnel processes with
their ssh clients, ``ssh -L``, the reader) on CPU 0, so neither side takes the other's core. By
default all of them share every core of this machine.
"""

from __future__ import annotations

import http.client
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._http_server import download  # noqa: E402
from tests.harness.process import children_named, free_port, port_open  # noqa: E402
from tests.harness.sshd import SSHHost, host_with_key  # noqa: E402

BIG_MB = 100
REQUESTS = 1000
ROUNDS = 5
PARALLEL = 4
TICK = os.sysconf("SC_CLK_TCK")
CPU_KEYS = ("client", "sshd", "source", "reader")


def fetch(address: tuple[str, int]) -> float:
    """Seconds for one /big download."""
    return download(address).seconds


def parallel(address: tuple[str, int]) -> float:
    """MB/s of PARALLEL downloads at once, all together."""
    threads = [threading.Thread(target=fetch, args=(address,)) for _ in range(PARALLEL)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return PARALLEL * BIG_MB / (time.perf_counter() - start)


def latencies(address: tuple[str, int]) -> list[float]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    samples = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        conn.request("GET", "/small")
        response = conn.getresponse()
        assert len(response.read()) == 1024
        samples.append(time.perf_counter() - start)
    conn.close()
    return sorted(samples)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


def sshd_sessions(host: SSHHost) -> list[int]:
    if not host.namespace:
        return []
    pids = subprocess.run(
        ["ip", "netns", "pids", host.namespace], capture_output=True, text=True
    ).stdout.split()
    found = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd: root"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def ssh_children(pid: int) -> list[int]:
    """The ``ssh`` processes a tunnel process started."""
    return children_named(pid, "ssh")


def loop_lag(tunnel: subprocess.Popen | None) -> tuple[float, float]:
    """p99 and max lag (ms) of the tunnel process's event loop since the last call."""
    if tunnel is None:
        return 0.0, 0.0
    tunnel.stdin.write("lag\n")
    tunnel.stdin.flush()
    p99, worst = tunnel.stdout.readline().split()
    return float(p99), float(worst)


def measure(
    paths: dict[str, tuple[str, int]],
    clients: dict[str, list[int]],
    host: SSHHost,
    source: int,
    tunnels: dict[str, subprocess.Popen],
) -> dict[str, dict[str, float]]:
    """Alternate the paths for ROUNDS rounds; median MB/s and CPU-seconds per GB of each process."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {
        name: [0.0] * 4 for name in paths
    }  # client, sshd, source, reader
    for _ in range(ROUNDS):
        for name, address in paths.items():
            client = clients[name]
            sshd = sshd_sessions(host) if client else []
            before = (cpu_seconds(client), cpu_seconds(sshd), cpu_seconds([source]), own_cpu())
            times[name].append(fetch(address))
            after = (cpu_seconds(client), cpu_seconds(sshd), cpu_seconds([source]), own_cpu())
            for index in range(4):
                cpu[name][index] += after[index] - before[index]
    results = {}
    gigabytes = ROUNDS * BIG_MB / 1024
    for name, address in paths.items():
        latencies(address)  # warm-up
        samples = latencies(address)
        client = clients[name]
        before = cpu_seconds(client)
        loop_lag(tunnels.get(name))
        start = time.perf_counter()
        at_once = parallel(address)
        parallel_cores = (cpu_seconds(client) - before) / (time.perf_counter() - start)
        lag_p99, lag_max = loop_lag(tunnels.get(name))
        results[name] = {
            "mbps": BIG_MB / statistics.median(times[name]),
            "parallel": at_once,
            "parallel_cores": parallel_cores,
            "lag_p99": lag_p99,
            "lag_max": lag_max,
            **{key: cpu[name][i] / gigabytes for i, key in enumerate(CPU_KEYS)},
            "p50": samples[len(samples) // 2] * 1000,
            "p99": samples[int(len(samples) * 0.99)] * 1000,
        }
    return results


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the tunnel did not come up")
        time.sleep(0.05)


def ssh_forward(host: SSHHost, key: Path, known_hosts: Path, server_port: int, *extra: str):
    port = free_port()
    argv = [
        "ssh", "-N", "-L", f"{port}:127.0.0.1:{server_port}", "-i", str(key),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", *extra, "-p", str(host.port), f"root@{host.address}",
    ]  # fmt: skip
    return port, subprocess.Popen(argv)


def main() -> None:
    two_hosts = "--two-hosts" in sys.argv[1:]
    if two_hosts:
        assert (os.cpu_count() or 1) >= 2, "--two-hosts needs two CPUs"
        os.sched_setaffinity(0, {0})  # the hub's side; what this process starts inherits it
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = root / "big.bin"
        with open(big, "wb") as out:
            block = os.urandom(1 << 20)
            for _ in range(BIG_MB):
                out.write(block)
        host, key, known_hosts = host_with_key(root)
        server_port = 18000 if host.namespace else free_port()
        listen = "0.0.0.0" if host.namespace else "127.0.0.1"  # noqa: S104 - inside the namespace
        argv = [sys.executable, str(HERE / "_http_server.py"), listen, str(server_port), str(big)]
        if host.namespace:
            argv = ["ip", "netns", "exec", host.namespace, *argv]
        server = subprocess.Popen(argv)
        processes = [server]
        if two_hosts:  # the remote side; sshd's sessions, forked later, inherit it
            for pid in (host.pid, server.pid):
                os.sched_setaffinity(pid, {1})
        try:
            deadline = time.monotonic() + 20
            while not port_open(host.address, server_port):
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.05)
            tunnels = {}
            for processes_arg in ("2", "0"):
                tunnel = subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "_tunnel_process.py"),
                        host.address,
                        str(host.port),
                        "root",
                        str(key),
                        str(known_hosts),
                        str(server_port),
                        processes_arg,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                processes.append(tunnel)
                tunnels[processes_arg] = (int(tunnel.stdout.readline()), tunnel)
            (our_port, ours), (hub_port, in_hub) = tunnels["2"], tunnels["0"]
            ssh_port, ssh = ssh_forward(host, key, known_hosts, server_port)
            gcm_port, ssh_gcm = ssh_forward(
                host, key, known_hosts, server_port, "-c", "aes128-gcm@openssh.com"
            )
            processes += [ssh, ssh_gcm]
            for port, proc in ((ssh_port, ssh), (gcm_port, ssh_gcm), (our_port, ours)):
                wait_port(port, proc)
            paths = {
                "direct": (host.address, server_port),
                "ours": ("127.0.0.1", our_port),
                "ours asyncssh": ("127.0.0.1", hub_port),
                "ssh -L": ("127.0.0.1", ssh_port),
                "ssh -L gcm": ("127.0.0.1", gcm_port),
            }
            clients = {
                "direct": [],
                "ours": [ours.pid, *ssh_children(ours.pid)],
                "ours asyncssh": [in_hub.pid],
                "ssh -L": [ssh.pid],
                "ssh -L gcm": [ssh_gcm.pid],
            }
            for address in paths.values():
                fetch(address)  # warm-up
            if two_hosts:
                sessions = sshd_sessions(host)
                assert sessions, "two hosts: no sshd session to check"
                assert all(os.sched_getaffinity(pid) == {1} for pid in sessions), sessions
            results = measure(
                paths, clients, host, server.pid, {"ours": ours, "ours asyncssh": in_hub}
            )
        finally:
            for proc in reversed(processes):
                proc.terminate()
                proc.wait(10)
            host.stop()
    print(f"cloudssh_tunnel: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    if two_hosts:
        print("cloudssh_tunnel: two hosts: sshd and the source on CPU 1, the hub's side on CPU 0")
    for name, r in results.items():
        print(
            f"cloudssh_tunnel: {name:13s} {r['mbps']:6.1f} MB/s  {PARALLEL} at once"
            f" {r['parallel']:6.1f} MB/s (client {r['parallel_cores']:.2f} cores)"
            f"  1 KiB GET p50 {r['p50']:5.2f} ms p99 {r['p99']:5.2f} ms"
        )
        print(
            f"cloudssh_tunnel: {name:13s} CPU-s per GB: client {r['client']:.2f}"
            f" sshd {r['sshd']:.2f} source {r['source']:.2f} reader {r['reader']:.2f}"
            f" (all {sum(r[key] for key in CPU_KEYS):.2f})"
        )
    ours, ssh, direct = results["ours"], results["ssh -L"], results["direct"]
    in_hub = results["ours asyncssh"]
    print(
        f"cloudssh_tunnel: the tunnel process's event loop (a hub's) during {PARALLEL} downloads:"
        f" lag p99 {ours['lag_p99']:.1f} ms, max {ours['lag_max']:.1f} ms with ssh processes;"
        f" p99 {in_hub['lag_p99']:.1f} ms, max {in_hub['lag_max']:.1f} ms carrying the bytes itself"
    )
    print(
        f"cloudssh_tunnel: throughput ours/ssh -L = {ours['mbps'] / ssh['mbps']:.2f}"
        f" (target >= 1.5); ours/direct = {ours['mbps'] / direct['mbps']:.2f};"
        f" {PARALLEL} at once ours/ssh -L = {ours['parallel'] / ssh['parallel']:.2f};"
        f" ours/ours asyncssh = {ours['mbps'] / in_hub['mbps']:.2f}"
        f" ({PARALLEL} at once {ours['parallel'] / in_hub['parallel']:.2f})"
    )
    cost = {name: sum(results[name][key] for key in CPU_KEYS) for name in ("ours", "ssh -L")}
    print(
        f"cloudssh_tunnel: CPU-s per GB, all processes, ssh -L / ours ="
        f" {cost['ssh -L'] / cost['ours']:.2f} (the throughput ratio a CPU-bound machine allows)"
    )
    print(
        f"cloudssh_tunnel: p99 ours {ours['p99']:.2f} ms (target < 1 ms), ssh -L {ssh['p99']:.2f} ms"
    )


if __name__ == "__main__":
    main()
