"""The smallest shape that meets a request is chosen, and the reasons are given."""

from __future__ import annotations

import json

import pytest

from corc_core import NoMatchingShape, Shape, choose_shape
from tests.corc_core.conftest import corc, write_config

SHAPES = [
    Shape("VM.Standard2.1", 1, 15),
    Shape("VM.Standard2.2", 2, 30),
    Shape("VM.GPU2.1", 12, 104, gpus=1),
    Shape("VM.GPU3.2", 12, 180, gpus=2),
    Shape(
        "VM.Standard.E4.Flex",
        1,
        1,
        flexible=True,
        max_cpu=64,
        max_memory_gb=1024,
        memory_per_cpu_gb=(1, 64),
    ),
]


def test_fixed_shapes_smallest_fit_wins() -> None:
    assert choose_shape(SHAPES, 2, 20).shape.name == "VM.Standard.E4.Flex"
    fixed = [s for s in SHAPES if not s.flexible]
    assert choose_shape(fixed, 2, 20).shape.name == "VM.Standard2.2"
    assert choose_shape(fixed, 1, 1, gpus=1).shape.name == "VM.GPU2.1"
    assert choose_shape(fixed, 1, 1, gpus=2).shape.name == "VM.GPU3.2"


def test_flexible_shape_grants_the_requested_memory() -> None:
    choice = choose_shape([SHAPES[-1]], 2, 200)
    # 200 GB at most 64 GB per CPU needs 4 CPUs; the configuration grants all 200 GB.
    assert (choice.cpu, choice.memory_gb) == (4, 200)
    assert "flexible" in choice.reasons[0]


def test_no_fit_names_every_shape_and_why() -> None:
    with pytest.raises(NoMatchingShape) as failed:
        choose_shape([s for s in SHAPES if not s.flexible], 1, 1, gpus=4)
    assert "VM.GPU3.2: 2 GPUs < 4" in str(failed.value)


def test_cli_shapes_for_libcloud_ec2(tmp_path, moto) -> None:
    config = write_config(tmp_path, {"libcloud": moto})
    result = corc(
        config,
        "shapes",
        "--provider",
        "libcloud",
        "--cpu",
        "2",
        "--memory",
        "8",
        "--gpus",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    choice = json.loads(result.stdout)
    assert choice["gpus"] >= 1 and choice["cpu"] >= 2 and choice["memory_gb"] >= 8
    assert choice["reasons"][0].startswith(f"{choice['shape']} is the smallest")
    too_big = corc(config, "shapes", "--provider", "libcloud", "--gpus", "64")
    assert too_big.returncode == 1
    assert too_big.stderr.startswith("corc: error: no shape has 1 CPUs")
    assert len(too_big.stderr.strip().splitlines()) == 1
