"""One schema for form, REST and discovery; access rules by group; teachers can only narrow."""

from __future__ import annotations

import copy

import pytest

from multiplespawner.access import Limits, allowed_deployments, check_rules
from multiplespawner.config import build_catalog
from multiplespawner.errors import ConfigError, OptionsError
from multiplespawner.form import render_form
from multiplespawner.options import build_space, from_form, json_schema, validate
from tests.multiplespawner.test_config import LISTING_11, LISTING_12

CEILING = Limits(cpu=8, memory_gb=32, gpus=2, minutes=480)
RULES = {
    "course-a": {"deployments": ["local_machine"], "limits": {"cpu": 2, "gpus": 0, "minutes": 90}},
    "gpu-lab": {"deployments": "*", "limits": {"cpu": 4, "gpus": 1}},
}


def space_for(groups=(), admin=False, overrides=None, providers=None):
    catalog = build_catalog(LISTING_12, LISTING_11, providers or {})
    allowed = allowed_deployments(
        groups=groups,
        is_admin=admin,
        deployments=[d.name for d in catalog.deployments],
        ceiling=CEILING,
        rules=RULES,
        overrides=overrides,
    )
    return build_space(catalog, allowed, CEILING)


def test_empty_options_get_the_defaults() -> None:
    choice = validate(space_for(admin=True), {})
    assert choice.to_user_options() == {
        "provider": "oci",
        "resource_type": "virtual_machine",
        "deployment": "oracle_linux_7_8",
        "cpu": 1,
        "memory_gb": 1.0,
        "gpus": 0,
        "minutes": 60,
    }


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"cpu": 3}, "Number of CPU cores (cpu) must be from 1 to 2"),
        ({"gpus": 1}, "Number of GPUs (gpus) must be from 0 to 0"),
        ({"minutes": 91}, "Session length (minutes) (minutes) must be from 5 to 90"),
        ({"cpu": "2"}, "must be a whole number, not '2'"),
        ({"cpu": True}, "must be a whole number"),
        ({"cpu": 1.5}, "must be a whole number"),
        (
            {"deployment": "oracle_linux_7_8"},
            "Image 'oracle_linux_7_8' is unknown or not open to you",
        ),
        ({"provider": "oci"}, "Provider 'oci' is unknown or not open to you"),
        ({"profile": "x"}, "Unknown option 'profile'"),
        ({"deployment": ["local_machine"]}, "must be a name"),
    ],
)
def test_what_a_course_member_may_not_choose_is_refused_with_the_reason(options, reason) -> None:
    with pytest.raises(OptionsError) as error:
        validate(space_for(groups=["course-a"]), options)
    assert error.value.status_code == 400
    assert reason in error.value.message


def test_a_user_in_no_group_may_start_nothing() -> None:
    with pytest.raises(OptionsError) as error:
        validate(space_for(groups=["other"]), {})
    assert error.value.status_code == 403


def test_groups_add_up_and_admins_see_everything() -> None:
    both = space_for(groups=["course-a", "gpu-lab"])
    assert validate(both, {"deployment": "local_machine", "gpus": 1, "cpu": 4}).cpu == 4
    assert validate(both, {"deployment": "oracle_linux_7_8", "gpus": 1}).gpus == 1
    admin = space_for(admin=True)
    assert validate(admin, {"deployment": "local_machine", "cpu": 8, "gpus": 2}).cpu == 8


def test_teacher_overrides_only_narrow_the_rules() -> None:
    overrides = {
        "gpu-lab": {"images": ["local_machine", "not-approved"], "limits": {"cpu": 64, "gpus": 0}}
    }
    space = space_for(groups=["gpu-lab"], overrides=overrides)
    assert [offer.deployment.name for offer, _ in space.offers] == ["local_machine"]
    _, limits = space.offers[0]
    assert (limits.cpu, limits.gpus) == (4, 0)  # 64 is above the rule's 4: ignored


def test_provider_limits_narrow_the_offer() -> None:
    space = space_for(admin=True, providers={"local": {"limits": {"gpus": 1, "cpu": 2}}})
    with pytest.raises(OptionsError, match="from 0 to 1"):
        validate(space, {"deployment": "local_machine", "gpus": 2})


def test_form_fields_become_the_same_options() -> None:
    form = {
        "provider": ["local"],
        "resource_type": ["bare_metal"],
        "deployment": ["local_machine"],
        "cpu": ["2"],
        "memory_gb": ["1.5"],
        "gpus": ["0"],
        "minutes": ["30"],
    }
    choice = validate(space_for(admin=True), from_form(form))
    assert (choice.cpu, choice.memory_gb, choice.minutes) == (2, 1.5, 30)
    with pytest.raises(OptionsError, match="must be a number"):
        from_form({"cpu": ["two"]})


def test_json_schema_lists_only_what_the_user_may_choose() -> None:
    schema = json_schema(space_for(groups=["course-a"]))
    assert schema["properties"]["deployment"]["enum"] == ["local_machine"]
    assert schema["properties"]["cpu"]["maximum"] == 2
    assert schema["additionalProperties"] is False
    assert schema["x-offers"][0]["limits"] == {
        "cpu": 2,
        "memory_gb": 32.0,
        "gpus": 0,
        "minutes": 90,
    }


def test_the_form_escapes_names_and_marks_the_choice() -> None:
    templates = copy.deepcopy(LISTING_12)
    deployments = {
        "bare_metal": [{"name": "x", "provider": "local", "display_name": "<b>evil</b>"}]
    }
    catalog = build_catalog(templates, deployments, {})
    space = build_space(catalog, {"x": CEILING}, CEILING)
    html = render_form(space, validate(space, {}))
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt;" in html
    assert 'name="memory_gb"' in html and 'max="8"' in html


def test_bad_rules_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^access_rules\.c\.limits\.cpus"):
        check_rules({"c": {"limits": {"cpus": 1}}})


def test_the_local_pools_largest_host_bounds_each_request() -> None:
    from corc_core.providers.local import LocalOrchestrator

    options = LocalOrchestrator.validate_options(
        {
            "hosts": [
                {"name": "a", "address": "10.0.0.1", "cpu": 16, "memory_gb": 64, "gpus": 0},
                {"name": "b", "address": "10.0.0.2", "cpu": 4, "memory_gb": 96, "gpus": 2},
                {"name": "c", "address": "10.0.0.3"},  # corc's defaults: 1 CPU, 1 GB, no GPU
            ]
        }
    )
    assert LocalOrchestrator.inventory_limits(options) == {"cpu": 16, "memory_gb": 96, "gpus": 2}


def test_provider_inventory_narrows_the_limits_but_never_widens_them() -> None:
    catalog = build_catalog(LISTING_12, LISTING_11, {})
    allowed = {d.name: CEILING for d in catalog.deployments}
    inventory = {"local": {"cpu": 3, "memory_gb": 100, "gpus": 1}}
    space = build_space(catalog, allowed, CEILING, inventory=inventory)
    local = next(limits for offer, limits in space.offers if offer.provider.name == "local")
    assert local.to_dict() == {"cpu": 3, "memory_gb": 32.0, "gpus": 1, "minutes": 480}
    others = [limits for offer, limits in space.offers if offer.provider.name != "local"]
    assert others and all(limits == CEILING for limits in others)
    with pytest.raises(OptionsError, match=r"Number of CPU cores \(cpu\) must be from 1 to 3"):
        validate(space, {"deployment": "local_machine", "provider": "local", "cpu": 4})


async def test_a_pool_corc_cannot_read_leaves_the_bound_to_the_config(tmp_path, caplog) -> None:
    import logging

    import yaml
    from traitlets.config import Config

    from multiplespawner import MultipleSpawner
    from tests.multiplespawner.conftest import make_setup

    setup = make_setup(tmp_path / "ms")  # the pool: one host with 2 CPUs, 4 GB, 2 GPUs

    def local_limits(spawner: MultipleSpawner, space) -> dict:
        return next(
            limits.to_dict() for offer, limits in space.offers if offer.provider.name == "local"
        )

    spawner = MultipleSpawner(
        config=Config(),
        template_file=str(setup.template_file),
        deployment_file=str(setup.deployment_file),
        corc_config_file=str(setup.corc_config),
    )
    assert local_limits(spawner, await spawner.options_space())["cpu"] == 2
    # A forged/broken pool (no hosts): corc refuses it; the form keeps every offer, bounded by
    # the configured ceiling only, and the log says why.
    config = yaml.safe_load(setup.corc_config.read_text())
    config["corc"]["providers"]["local"]["hosts"] = []
    setup.corc_config.write_text(yaml.safe_dump(config))
    with caplog.at_level(logging.WARNING):
        space = await spawner.options_space()
    assert local_limits(spawner, space) == {"cpu": 8, "memory_gb": 64.0, "gpus": 8, "minutes": 1440}
    assert {offer.provider.name for offer, _ in space.offers} == {"local", "sandbox"}
    assert "no inventory for local" in caplog.text and "at least one host" in caplog.text
