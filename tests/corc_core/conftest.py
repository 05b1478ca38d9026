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
from tests.harness.clouds import ec2_options, start_moto
from tests.harness.process import Daemon, free_port, port_open

CORC = str(Path(sys.executable).with_name("corc"))


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(tmp_path / "records.sqlite")


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[dict]:
    """libcloud options for a moto EC2 server on loopback."""
    daemon, port = start_moto(tmp_path)
    yield ec2_options(port)
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


OCI_API = Path(__file__).resolve().parents[1] / "harness" / "oci_api.py"


def rsa_key(directory: Path, name: str) -> tuple[Path, Path, str]:
    """An RSA key pair as OCI API keys are: (private PEM 0600, public PEM, fingerprint)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / f"{name}.pem"
    private.touch(mode=0o600)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = directory / f"{name}_public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.md5(der).hexdigest()  # noqa: S324 - OCI's key fingerprint is MD5
    return private, public, ":".join(digest[i : i + 2] for i in range(0, 32, 2))


@pytest.fixture
def oci_api(tmp_path: Path) -> Iterator[dict]:
    """corc OCI options pointing at a local OCI API server that checks the SDK's signatures."""
    private, public, fingerprint = rsa_key(tmp_path, "oci_api_key")
    port = free_port()
    state = tmp_path / "oci_state.json"
    daemon = Daemon(
        "oci-api",
        [sys.executable, str(OCI_API), str(port), str(public), str(state)],
        tmp_path / "oci_api.log",
    )
    daemon.start(lambda: port_open("127.0.0.1", port), timeout=30)
    yield {
        "profile": {"name": "DEFAULT", "compartment_id": "ocid1.compartment.oc1..test"},
        "instance": {"operating_system": "CentOS", "operating_system_version": "7"},
        "vcn": {"display_name": "gridhub", "subnet": {"display_name": "workers"}},
        "sdk_config": {
            "user": "ocid1.user.oc1..test",
            "tenancy": "ocid1.tenancy.oc1..test",
            "fingerprint": fingerprint,
            "key_file": str(private),
            "region": "eu-frankfurt-1",
        },
        "service_endpoint": f"http://127.0.0.1:{port}",
        "check_reachable": False,
        "_state": str(state),
    }
    daemon.stop()


def oci_state(options: dict) -> dict:
    """What the OCI API server holds (nothing until an authenticated request arrived)."""
    import json

    path = Path(options["_state"])
    empty = {"instances": {}, "vcns": {}, "subnets": {}, "calls": []}
    return json.loads(path.read_text()) if path.exists() else empty


def oci_options(options: dict) -> dict:
    return {k: v for k, v in options.items() if not k.startswith("_")}
