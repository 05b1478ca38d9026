"""Check the MultipleSpawner's configuration when the hub starts, not at the first spawn.

JupyterHub builds spawners only for users, so nothing would read the templates before someone
spawns. Importing this package while the hub loads its config (``spawner_class = "multiple"``)
schedules one check on the hub's loop, which runs once the config file has been applied; an
invalid configuration stops the hub with a line naming the bad key.
"""

from __future__ import annotations

import asyncio


def schedule_check() -> None:
    """Check once the hub's config is loaded (only inside a running JupyterHub)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_soon(check_hub_config)


def check_hub_config() -> None:
    from jupyterhub.app import JupyterHub

    from .errors import ConfigError
    from .spawner import MultipleSpawner

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
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
