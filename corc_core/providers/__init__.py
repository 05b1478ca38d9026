"""Built-in providers; each is also registered under the ``corc_core.providers`` entry points."""
