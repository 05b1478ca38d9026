"""multiplespawner: a student picks provider, resource type, image and hardware on the spawn page;
corc orders the machine when needed and a sub-spawner starts JupyterLab on it."""

from .errors import ConfigError, OptionsError, SpawnFailed
from .handlers import register as _register_handlers
from .spawner import MultipleSpawner
from .startup import install_startup_check as _install_startup_check

_register_handlers()
_install_startup_check()

__all__ = ["ConfigError", "MultipleSpawner", "OptionsError", "SpawnFailed"]
