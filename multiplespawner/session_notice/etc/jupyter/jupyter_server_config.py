"""gridhub: hand the session's end to JupyterLab's page (read by gridhub-session-notice).

The MultipleSpawner puts this directory on the notebook's ``JUPYTER_CONFIG_PATH`` and sets
``GRIDHUB_SESSION_END`` / ``GRIDHUB_SESSION_WARNING`` (ISO 8601, UTC); JupyterLab copies the
server's ``page_config_data`` setting into every page it renders.
"""

import os

c = get_config()  # noqa: F821 (defined by traitlets when it loads a config file)

_notice = {
    key: os.environ[variable]
    for key, variable in (
        ("gridhubSessionEnd", "GRIDHUB_SESSION_END"),
        ("gridhubSessionWarning", "GRIDHUB_SESSION_WARNING"),
    )
    if os.environ.get(variable)
}
if _notice:
    # A plain dict, merged by hand: JupyterHub's singleuser extension reads this setting with `in`,
    # which a lazy config value (``.update()`` on an unset trait) does not support.
    _settings = dict(c.ServerApp.get("tornado_settings") or {})
    _settings["page_config_data"] = {**_settings.get("page_config_data", {}), **_notice}
    c.ServerApp.tornado_settings = _settings
