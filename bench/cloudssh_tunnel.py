"""Our SSH tunnel vs a default OpenSSH ``ssh -N -L``, to the same HTTP server on a remote host.

The remote host is an sshd in its own network namespace (or on 127.0.0.1 where namespaces are not
available) with an HTTP server on its loopback. Each tunnel runs in its own process. Measured:
- throughput: 100 MB downloads, alternating between the tunnels for 7 rounds, median MB/s;
- latency: 1000 sequential 1 KiB GETs on one keep-alive connection, p50/p99.
Prints both tunnels' figures and the ratios ours/ssh (targets: throughput >= 1.0, p99 < 5 ms).
"""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.harness.process import free_port, port_open  # noqa: E402
from tests.harness.sshd import host_with_key  # noqa: E402

BIG_MB = 100
REQUESTS = 1000


def download(port: int) -> float:
    """MB/s of one /big download over a raw socket."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\n\r\n")
        start = time.perf_counter()
        received = 0
        header_end = -1
        buffer = b""
        while header_end < 0:
            buffer += sock.recv(65536)
            header_end = buffer.find(b"\r\n\r\n")
        received = len(buffer) - header_end - 4
        total = BIG_MB << 20
        while received < total:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("connection closed early")
            received += len(chunk)
        return (total / (1 << 20)) / (time.perf_counter() - start)


def latencies(port: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        conn.request("GET", "/small")
        response = conn.getresponse()
        assert len(response.read()) == 1024
        samples.append(time.perf_counter() - start)
    conn.close()
    return samples


def measure(ports: dict[str, int], rounds: int = 7) -> dict[str, tuple[float, float, float]]:
    """Throughput: downloads through each tunnel in turn, ``rounds`` times (so load on this
    2-core machine hits both alike), median MB/s. Latency: 1000 GETs per tunnel, p50/p99."""
    rates: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, port in ports.items():
            rates[name].append(download(port))
    results = {}
    for name, port in ports.items():
        latencies(port)[:10]  # warm-up
        samples = sorted(latencies(port))
        results[name] = (
            statistics.median(rates[name]),
            samples[len(samples) // 2],
            samples[int(len(samples) * 0.99)],
        )
    return results


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the tunnel did not come up")
        time.sleep(0.05)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        host, key, known_hosts = host_with_key(root)
        server_port = 18000
        argv = [sys.executable, str(HERE / "_http_server.py"), str(server_port), str(BIG_MB)]
        if host.namespace:
            argv = ["ip", "netns", "exec", host.namespace, *argv]
        else:
            server_port = free_port()
            argv[3] = str(server_port)
        server = subprocess.Popen(argv)
        processes = [server]
        try:
            time.sleep(1)
            ours = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_tunnel_process.py"),
                    host.address,
                    str(host.port),
                    "root",
                    str(key),
                    str(known_hosts),
                    str(server_port),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(ours)
            our_port = int(ours.stdout.readline())
            ssh_port = free_port()
            ssh = subprocess.Popen(
                [
                    "ssh",
                    "-N",
                    "-L",
                    f"{ssh_port}:127.0.0.1:{server_port}",
                    "-i",
                    str(key),
                    "-o",
                    f"UserKnownHostsFile={known_hosts}",
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    "BatchMode=yes",
                    "-p",
                    str(host.port),
                    f"root@{host.address}",
                ]
            )
            processes.append(ssh)
            wait_port(ssh_port, ssh)
            wait_port(our_port, ours)
            download(our_port), download(ssh_port)  # warm-up
            results = measure({"ours": our_port, "ssh -L": ssh_port})
        finally:
            for proc in reversed(processes):
                proc.terminate()
                proc.wait(10)
            host.stop()
    for name, (rate, p50, p99) in results.items():
        print(
            f"cloudssh_tunnel: {name:7s} {rate:7.1f} MB/s   1 KiB GET p50 {p50 * 1000:6.2f} ms"
            f"  p99 {p99 * 1000:6.2f} ms"
        )
    (ours_rate, _, ours_p99), (ssh_rate, _, ssh_p99) = results["ours"], results["ssh -L"]
    print(
        f"cloudssh_tunnel: throughput ratio ours/ssh = {ours_rate / ssh_rate:.2f} (target >= 1.0)"
    )
    print(f"cloudssh_tunnel: p99 ratio ours/ssh = {ours_p99 / ssh_p99:.2f} (target: ours < 5 ms)")


if __name__ == "__main__":
    main()
