"""Cloud API servers on loopback: moto for EC2 (libcloud)."""

from __future__ import annotations

import sys
from pathlib import Path

from .process import Daemon, free_port, port_open

MOTO = Path(__file__).resolve().parent / "moto_ec2.py"


def start_moto(directory: Path) -> tuple[Daemon, int]:
    """A moto EC2 server (namespace reconciled for libcloud); returns it and its port."""
    port = free_port()
    daemon = Daemon("moto", [sys.executable, str(MOTO), str(port)], directory / "moto.log")
    daemon.start(lambda: port_open("127.0.0.1", port), timeout=30)
    return daemon, port


def ec2_options(port: int) -> dict:
    """corc libcloud options for that server. Reachability is not probed: moto's addresses are
    fictitious and must never be contacted."""
    return {
        "driver": "ec2",
        "key": "AKIDEXAMPLE",
        "secret": "moto-secret",
        "driver_kwargs": {
            "region": "us-east-1",
            "host": "127.0.0.1",
            "port": port,
            "secure": False,
            "signature_version": "4",
        },
        "image": "ami-03cf127a",
        "ssh_username": "ec2-user",
        "check_reachable": False,
    }
