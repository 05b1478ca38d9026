"""corc_core: async cloud orchestration core (not implemented yet)."""
