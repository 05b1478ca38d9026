"""Cloud API servers on loopback: moto for EC2 and a fake OpenStack, both through libcloud."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
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


OPENSTACK = Path(__file__).resolve().parent / "openstack_api.py"


def start_openstack(directory: Path) -> tuple[Daemon, int, Path]:
    """The fake Keystone+Nova+Glance server; returns it, its port and its state file."""
    port = free_port()
    state = directory / "openstack_state.json"
    daemon = Daemon(
        "openstack",
        [sys.executable, str(OPENSTACK), str(port), str(state)],
        directory / "openstack.log",
    )
    daemon.start(lambda: port_open("127.0.0.1", port), timeout=30)
    return daemon, port, state


def openstack_options(port: int) -> dict:
    """corc libcloud options for the fake OpenStack (its addresses are never contacted)."""
    return {
        "driver": "openstack",
        "key": "demo",
        "secret": "secret-password",
        "driver_kwargs": {
            "ex_force_auth_url": f"http://127.0.0.1:{port}/identity",
            "ex_force_auth_version": "3.x_password",
            "ex_tenant_name": "gridhub",
            "ex_domain_name": "Default",
            "ex_force_service_region": "RegionOne",
            "api_version": "2.0",
        },
        "image": "ubuntu-22.04",
        "ssh_username": "ubuntu",
        "check_reachable": False,
    }


@contextlib.contextmanager
def openstack_cloud(directory: Path) -> Iterator[dict]:
    """Options for a running fake OpenStack; ``_state`` names its state file (not an option)."""
    daemon, port, state = start_openstack(directory)
    try:
        yield dict(openstack_options(port), _state=str(state))
    finally:
        daemon.stop()


def record_requests(driver) -> list[dict]:
    """The parameters of every API request a libcloud ``driver`` sends from now on."""
    sent: list[dict] = []
    original = driver.connection.request

    def recording(action, params=None, *args, **kwargs):
        sent.append(dict(params or {}))
        return original(action, params, *args, **kwargs)

    driver.connection.request = recording
    return sent
