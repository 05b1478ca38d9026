"""corc's YAML configuration (``~/.corc/config``; ``CORC_CONFIG_FILE`` overrides).

The layout is the thesis's appendix H: a top-level ``corc`` mapping with ``providers``,
``configurers``, ``job`` and ``storage``. gridhub reads ``providers`` and adds ``store`` (the record
database) and ``ssh`` (keys, certificates, known hosts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

DEFAULT_PATH = "~/.corc/config"


def config_path() -> Path:
    return Path(os.environ.get("CORC_CONFIG_FILE") or DEFAULT_PATH).expanduser()


def default_config() -> dict[str, Any]:
    """A complete configuration with every provider's section, ready to edit."""
    return {
        "corc": {
            "configurers": {"ANSIBLE": {}},
            "store": {"path": "~/.corc/records.sqlite"},
            "ssh": {"directory": "~/.corc/ssh", "use_certificates": False},
            "providers": {
                "sandbox": {"directory": "~/.corc/sandbox", "use_netns": True, "username": "root"},
                "local": {
                    "hosts": [
                        {
                            "name": "localhost",
                            "address": "127.0.0.1",
                            "port": 22,
                            "username": "",
                            "cpu": 1,
                            "memory_gb": 1,
                            "gpus": 0,
                        }
                    ]
                },
                "libcloud": {
                    "driver": "ec2",
                    "key": "",
                    "secret": "",
                    "driver_kwargs": {"region": "eu-north-1"},
                    "image": "",
                    "ssh_username": "ec2-user",
                    "size": "",
                    "location": "",
                    "host_key": "user_data",
                },
                "oci": {
                    "profile": {
                        "name": "DEFAULT",
                        "compartment_id": "",
                        "config_file": "~/.oci/config",
                    },
                    "instance": {
                        "availability_domain": "",
                        "operating_system": "CentOS",
                        "operating_system_version": "7",
                    },
                    "vcn": {
                        "display_name": "gridhub",
                        "cidr_block": "10.0.0.0/16",
                        "subnet": {"display_name": "gridhub", "cidr_block": "10.0.1.0/24"},
                    },
                },
            },
            "job": {},
            "storage": {},
        }
    }


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The configuration as a dict (``{"corc": {...}}``); a missing file gives the defaults."""
    path = path or config_path()
    if not path.exists():
        return default_config()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(data, dict) or not isinstance(data.get("corc", {}), dict):
        raise ConfigError(f"{path} must hold a mapping with a top-level 'corc' key")
    data.setdefault("corc", {})
    return data


def section(config: dict[str, Any], *keys: str) -> dict[str, Any]:
    value: Any = config.get("corc", config)
    for key in keys:
        value = (value or {}).get(key) or {}
    return value if isinstance(value, dict) else {}
