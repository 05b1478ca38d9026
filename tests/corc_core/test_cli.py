"""The corc command line, run as an admin would."""

from __future__ import annotations

import json
import stat

import yaml

from corc_core import RecordStore
from tests.corc_core.conftest import corc, live_nodes, raw_driver, write_config


def test_config_generate_writes_every_provider_section(tmp_path) -> None:
    target = tmp_path / "generated.yml"
    result = corc(tmp_path / "unused.yml", "config", "generate", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    config = yaml.safe_load(target.read_text())
    assert {"sandbox", "local", "libcloud", "oci"} <= set(config["corc"]["providers"])
    again = corc(tmp_path / "unused.yml", "config", "generate", "--output", str(target))
    assert again.returncode == 1
    assert "exists; use --force" in again.stderr


def test_sandbox_instance_lifecycle(tmp_path) -> None:
    config = write_config(tmp_path, {"sandbox": {"directory": str(tmp_path / "sandbox")}})
    created = corc(config, "sandbox", "instance", "create", "--json", "--owner", "alice")
    assert created.returncode == 0, created.stderr
    resource = json.loads(created.stdout)
    assert resource["state"] == "running"
    known_hosts = (tmp_path / "ssh" / "known_hosts").read_text()
    assert resource["host_key"] in known_hosts  # pinned at creation
    listed = corc(config, "sandbox", "orchestration", "instance", "list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [resource["id"]]
    got = corc(config, "sandbox", "instance", "get", resource["id"], "--json")
    assert json.loads(got.stdout)["addresses"] == resource["addresses"]
    deleted = corc(config, "sandbox", "instance", "delete", resource["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(corc(config, "sandbox", "instance", "list", "--json").stdout) == []
    missing = corc(config, "sandbox", "instance", "get", resource["id"])
    assert missing.returncode == 1
    assert "corc: error: sandbox" in missing.stderr


def test_reap_finds_only_orphans_and_deletes_only_when_asked(tmp_path, moto) -> None:
    config = write_config(tmp_path, {"libcloud": moto})
    owned = corc(config, "libcloud", "instance", "create", "--json", "--owner", "alice")
    assert owned.returncode == 0, owned.stderr
    owned_id = json.loads(owned.stdout)["id"]
    driver = raw_driver(moto)
    size = next(s for s in driver.list_sizes() if s.id == "t3.micro")
    image = driver.get_image(moto["image"])
    deployment = RecordStore(tmp_path / "records.sqlite").deployment_id
    orphan = driver.create_node(
        name="lost",
        size=size,
        image=image,
        ex_metadata={"gridhub": "true", "gridhub-record": "gone", "gridhub-deployment": deployment},
    )
    stranger = driver.create_node(name="not-ours", size=size, image=image)
    # Another hub's orphan (same cloud account, another store): never ours to delete.
    neighbour = driver.create_node(
        name="theirs",
        size=size,
        image=image,
        ex_metadata={"gridhub": "true", "gridhub-record": "gone", "gridhub-deployment": "other"},
    )

    dry = corc(config, "reap", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == [{"provider": "libcloud", "id": orphan.id, "deleted": False}]
    assert {n.id for n in live_nodes(moto)} == {owned_id, orphan.id, stranger.id, neighbour.id}

    real = corc(config, "reap", "--yes")
    assert real.returncode == 0, real.stderr
    assert f"{orphan.id}\tdeleted" in real.stdout
    assert {n.id for n in live_nodes(moto)} == {owned_id, stranger.id, neighbour.id}


def test_bad_config_and_unknown_provider(tmp_path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("corc: [unclosed\n")
    result = corc(bad, "reap")
    assert result.returncode == 1
    assert result.stderr.strip() == f"corc: error: {bad} is not valid YAML at line 2"
    unknown = corc(bad, "nosuchcloud", "instance", "list")
    assert unknown.returncode == 2
    assert "invalid choice: 'nosuchcloud'" in unknown.stderr
