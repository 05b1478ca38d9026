"""Templates and deployments as the thesis writes them; every error names the bad key."""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

import pytest

from multiplespawner.config import CatalogCache, Sources, build_catalog
from multiplespawner.errors import ConfigError
from multiplespawner.placeholders import fill

# Listing 12 (the VM template) and listing 11, with our class paths.
LISTING_12 = [
    {
        "name": "VirtualMachine Spawner",
        "resource_type": "virtual_machine",
        "providers": ["oci"],
        "spawner": {"class": "cloudsshspawner.CloudSSHSpawner", "kwargs": {}},
        "configurer": {
            "class": "corc_core.configurer.AnsibleConfigurer",
            "options": {
                "host_variables": {
                    "ansible_user": "opc",
                    "ansible_become": "yes",
                    "users": [{"name": "{JUPYTERHUB_USER}", "auth_key": "{auth_key}"}],
                    "jupyterhub": {
                        "server_public_ip": "{server_public_ip}",
                        "server_host_key": "{server_host_key}",
                    },
                },
                "host_settings": {"group": "compute", "port": "22"},
                "apply_kwargs": {"playbook_paths": ["~/.multiplespawner/playbooks/x.yml"]},
            },
        },
        "authenticator": {
            "class": "corc_core.SSHAuthenticator",
            "kwargs": {"create_certificate": "True", "key_name": "{JUPYTERHUB_USER}_id_rsa"},
        },
    },
    {
        "name": "Local Spawner",
        "resource_type": "bare_metal",
        "providers": ["local"],
        "spawner": {"class": "jupyterhub.spawner.SimpleLocalProcessSpawner", "kwargs": {}},
    },
]
LISTING_11 = {
    "container": [{"name": "python_notebook", "image": "nielsbohr/python-notebook"}],
    "virtual_machine": [
        {"name": "oracle_linux_7_8", "provider": "oci", "image": "Oracle Linux 7.8"}
    ],
    "bare_metal": [{"name": "local_machine", "provider": "local"}],
}


def test_the_thesis_listings_are_accepted_as_written() -> None:
    catalog = build_catalog(LISTING_12, LISTING_11, {})
    keys = [offer.key for offer in catalog.offers]
    # The container deployment has no template for containers: it is not offered.
    assert keys == ["oci/virtual_machine/oracle_linux_7_8", "local/bare_metal/local_machine"]
    assert catalog.providers["oci"].display_name == "Oracle Cloud"
    assert catalog.providers["oci"].corc == "oci"


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda t, d: t[0].update(resource_typ="x"), "templates[0].resource_typ"),
        (lambda t, d: t[0].update(resource_type="vm"), "templates[0].resource_type"),
        (
            lambda t, d: t[0]["spawner"].update({"class": "nope.Spawner"}),
            "templates[0].spawner.class",
        ),
        (
            lambda t, d: t[0]["spawner"].update({"class": "json.JSONDecoder"}),
            "templates[0].spawner.class",
        ),
        (
            lambda t, d: t[0]["spawner"]["kwargs"].update(remote_hostz=[]),
            "templates[0].spawner.kwargs.remote_hostz",
        ),
        (
            lambda t, d: t[0]["configurer"]["options"]["host_variables"].update(x="{endpont}"),
            "templates[0].configurer.options.host_variables.x",
        ),
        (lambda t, d: t[1].update(name=t[0]["name"]), "templates[1].name"),
        (lambda t, d: t[1].pop("providers"), "templates[1].providers"),
        (lambda t, d: d["bare_metal"][0].update(imagee="x"), "deployments.bare_metal[0].imagee"),
        (lambda t, d: d.update(vm=[]), "deployments.vm"),
    ],
)
def test_errors_name_the_bad_key(mutate, key: str) -> None:
    templates, deployments = copy.deepcopy(LISTING_12), copy.deepcopy(LISTING_11)
    mutate(templates, deployments)
    with pytest.raises(ConfigError) as error:
        build_catalog(templates, deployments, {})
    assert str(error.value).startswith(key), str(error.value)


def test_an_unknown_provider_needs_settings() -> None:
    templates = copy.deepcopy(LISTING_12)
    templates[1]["providers"] = ["this_machine"]
    deployments = {"bare_metal": [{"name": "here"}]}
    catalog = build_catalog(templates, deployments, {"this_machine": {"corc": None}})
    assert catalog.providers["this_machine"].corc is None
    with pytest.raises(ConfigError, match=r"^providers\.this_machine\.corc"):
        build_catalog(templates, deployments, {"this_machine": {"corc": "nimbus"}})


def test_placeholders_keep_their_type_and_braces() -> None:
    values = {"gpus": 2, "JUPYTERHUB_USER": "alice", "endpoint": "10.0.0.2"}
    assert fill("{gpus}", values) == 2
    assert fill(["{JUPYTERHUB_USER}@{endpoint}", "{{literal}}"], values) == [
        "alice@10.0.0.2",
        "{literal}",
    ]


def _write(path: Path, data) -> None:
    path.write_text(json.dumps(data))
    # Make the change visible to an mtime check even within one clock tick.
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


async def test_an_edited_file_takes_effect_and_a_bad_edit_is_rejected(
    tmp_path: Path, caplog
) -> None:
    templates, deployments = tmp_path / "templates.json", tmp_path / "deployments.yaml"
    _write(templates, LISTING_12)
    deployments.write_text("bare_metal:\n  - name: local_machine\n    provider: local\n")
    cache = CatalogCache(Sources.of([], {}, {}, str(templates), str(deployments)))
    log = logging.getLogger("test")
    assert [o.deployment.name for o in (await cache.get(log)).offers] == ["local_machine"]

    deployments.write_text(
        "bare_metal:\n  - name: local_machine\n    provider: local\n  - name: second\n"
    )
    os.utime(deployments, ns=(1, 1))
    assert [o.deployment.name for o in (await cache.get(log)).offers] == [
        "local_machine",
        "second",
    ]

    broken = copy.deepcopy(LISTING_12)
    broken[1]["spawner"]["kwargs"] = {"cmd": ["{nope}"]}
    _write(templates, broken)
    with caplog.at_level(logging.ERROR):
        catalog = await cache.get(log)
    assert [o.deployment.name for o in catalog.offers] == ["local_machine", "second"]
    assert "templates[1].spawner.kwargs.cmd[0]: unknown placeholder {nope}" in caplog.text
    assert "keeping the last good one" in caplog.text
