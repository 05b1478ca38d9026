"""cloudsshspawner: notebooks on remote hosts over SSH tunnels (not implemented yet)."""
