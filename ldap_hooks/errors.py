"""The exception every ldap_hooks failure raises."""


class LDAPHookError(Exception):
    """The user's LDAP identity could not be found or made; the message says why (no secrets).

    JupyterHub shows ``jupyterhub_message`` on the spawn page and in REST API errors.
    """

    @property
    def jupyterhub_message(self) -> str:
        return f"Your account could not be prepared: {self}"
