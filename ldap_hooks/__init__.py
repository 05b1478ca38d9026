"""ldap_hooks: POSIX accounts in LDAP at spawn time (not implemented yet)."""
