"""A moto EC2 server for libcloud, a record store, and corc configs for the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from corc_core import RecordStore
from tests.harness.process import Daemon, free_port, port_open

MOTO = Path(__file__).resolve().parents[1] / "harness" / "moto_ec2.py"
CORC = str(Path(sys.executable).with_name("corc"))


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(tmp_path / "records.sqlite")


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[dict]:
    """libcloud options for a moto EC2 server on loopback (reachability is not probed: moto's
    addresses are fictitious and must never be contacted)."""
    port = free_port()
    daemon = Daemon("moto", [sys.executable, str(MOTO), str(port)], tmp_path / "moto.log")
    daemon.start(lambda: port_open("127.0.0.1", port), timeout=30)
    yield {
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
    daemon.stop()


def raw_driver(options: dict):
    from libcloud.compute.providers import get_driver

    return get_driver(options["driver"])(
        options["key"], options["secret"], **options["driver_kwargs"]
    )


def live_nodes(options: dict) -> list:
    return [n for n in raw_driver(options).list_nodes() if str(n.state).lower() != "terminated"]


def write_config(tmp_path: Path, providers: dict) -> Path:
    path = tmp_path / "corc.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "corc": {
                    "store": {"path": str(tmp_path / "records.sqlite")},
                    "ssh": {"directory": str(tmp_path / "ssh")},
                    "providers": providers,
                }
            }
        )
    )
    return path


def corc(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CORC_CONFIG_FILE=str(config))
    return subprocess.run([CORC, *args], capture_output=True, text=True, env=env, timeout=120)
