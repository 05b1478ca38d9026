"""multiplespawner: spawner that orders hardware through corc_core (not implemented yet)."""
