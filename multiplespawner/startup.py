"""Check the MultipleSpawner's configuration when the hub starts, not at the first spawn.

JupyterHub builds spawners only for users, so nothing would read the templates before someone
spawns, and it loads spawner classes before its event loop and config exist. So importing this
package wraps ``JupyterHub.init_spawners`` (the first start-up step that concerns spawners, run
after the config is loaded) with one check; an invalid configuration stops the hub with a line
naming the bad key. Other hubs' spawner classes are left alone.
"""

from __future__ import annotations

from typing import Any

_MARK = "_multiplespawner_checks_config"


def install_startup_check() -> None:
    """Make ``JupyterHub.init_spawners`` check the MultipleSpawner's config first (once)."""
    from jupyterhub.app import JupyterHub

    original = JupyterHub.init_spawners
    if getattr(original, _MARK, False):
        return

    async def init_spawners(self: Any) -> Any:
        check_hub_config(self)
        return await original(self)

    setattr(init_spawners, _MARK, True)
    init_spawners.__doc__ = original.__doc__
    JupyterHub.init_spawners = init_spawners


def check_hub_config(app: Any) -> None:
    """Validate the config of ``app``'s spawner class if it is a MultipleSpawner."""
    from .errors import ConfigError
    from .spawner import MultipleSpawner

    spawner_class = app.spawner_class
    if not (isinstance(spawner_class, type) and issubclass(spawner_class, MultipleSpawner)):
        return
    try:
        catalog = spawner_class(config=app.config).check_config()
    except ConfigError as error:
        app.log.critical("MultipleSpawner configuration is invalid: %s", error)
        raise SystemExit(1) from None
    app.log.info(
        "MultipleSpawner: %d templates, %d deployments, %d offers",
        len(catalog.templates),
        len(catalog.deployments),
        len(catalog.offers),
    )
