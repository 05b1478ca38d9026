"""Blocking ldap3 operations. They run in a worker thread, never on the hub's event loop."""

from __future__ import annotations

import random
import ssl
import time
from typing import Any
from urllib.parse import urlparse

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from .errors import LDAPHookError

NO_SUCH_ATTRIBUTE = 16
ENTRY_ALREADY_EXISTS = 68


class Directory:
    """One bound connection to the LDAP server, for the duration of one hook call."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        start_tls: bool = False,
        ca_file: str = "",
        timeout: float = 10,
    ) -> None:
        self.url = url if "://" in url else f"ldap://{url}"
        parsed = urlparse(self.url)
        if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname:
            raise LDAPHookError(f"LDAP url {url!r} must look like ldap://host[:port]")
        tls = None
        if parsed.scheme == "ldaps" or start_tls or ca_file:
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=ca_file or None,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        server = ldap3.Server(
            parsed.hostname,
            port=parsed.port,
            use_ssl=parsed.scheme == "ldaps",
            tls=tls,
            connect_timeout=max(1, round(timeout)),
            get_info=ldap3.NONE,
        )
        self.connection = ldap3.Connection(
            server,
            user=user or None,
            password=password or None,
            receive_timeout=max(1, round(timeout)),  # ldap3 packs it as an integer
            raise_exceptions=False,
            read_only=False,
        )
        try:
            self.connection.open()
            if start_tls and parsed.scheme == "ldap":
                self.connection.start_tls()
            bound = self.connection.bind()
        except (LDAPException, OSError) as error:
            raise LDAPHookError(
                f"cannot reach the LDAP server at {self.url}: {_reason(error)}"
            ) from None
        if not bound:
            result = self.connection.result or {}
            raise LDAPHookError(
                f"the LDAP server at {self.url} refused the bind as {user or 'anonymous'}"
                f" ({result.get('description', 'unknown error')})"
            )

    def close(self) -> None:
        try:
            self.connection.unbind()
        except LDAPException:
            pass

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads --------------------------------------------------------------------------------

    def search(
        self, base: str, search_filter: str, attributes: list[str], scope: str = ldap3.SUBTREE
    ) -> list[dict[str, list[Any]]]:
        """Entries as {"dn": [dn], attribute: [values]}; raises on errors other than no result."""
        try:
            ok = self.connection.search(base, search_filter, scope, attributes=attributes)
        except LDAPException as error:
            raise LDAPHookError(f"LDAP search under {base} failed: {_reason(error)}") from None
        if not ok and self.connection.result.get("result") not in (0, 32):  # 32: noSuchObject
            raise self._error(f"LDAP search under {base}")
        entries = []
        for entry in self.connection.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            attrs = {k: v if isinstance(v, list) else [v] for k, v in entry["attributes"].items()}
            attrs["dn"] = [entry["dn"]]
            entries.append(attrs)
        return entries

    def find_entry(
        self, base: str, object_classes: list[str], match: dict[str, str]
    ) -> dict[str, list[Any]] | None:
        """The one entry with all ``object_classes`` and exactly the ``match`` values."""
        terms = [f"(objectClass={escape_filter_chars(oc)})" for oc in object_classes]
        terms += [f"({attr}={escape_filter_chars(str(value))})" for attr, value in match.items()]
        entries = self.search(base, f"(&{''.join(terms)})", ["*"])
        if len(entries) > 1:
            raise LDAPHookError(
                f"{len(entries)} LDAP entries match {', '.join(match)}; they must be unique"
            )
        return entries[0] if entries else None

    # -- writes -------------------------------------------------------------------------------

    def add(self, dn: str, object_classes: list[str], attributes: dict[str, Any]) -> bool:
        """Add an entry; False when it already exists (a concurrent spawn made it)."""
        try:
            if self.connection.add(dn, object_classes, attributes):
                return True
        except LDAPException as error:
            raise LDAPHookError(f"cannot add the LDAP entry {dn}: {_reason(error)}") from None
        if self.connection.result.get("result") == ENTRY_ALREADY_EXISTS:
            return False
        raise self._error(f"adding the LDAP entry {dn}")

    def increment(self, dn: str, attribute: str, retries: int) -> int:
        """Atomically allocate the next value of a counter entry's attribute.

        One modify deletes the value read and adds value + 1; when another client won the race the
        delete finds no such value (noSuchAttribute), and we read again after a short random wait.
        """
        for attempt in range(retries):
            entries = self.search(dn, "(objectClass=*)", [attribute], scope=ldap3.BASE)
            values = entries[0].get(attribute) if entries else None
            if not values:
                raise LDAPHookError(
                    f"the counter entry {dn} has no {attribute} (is it bootstrapped?)"
                )
            current = int(values[0])
            change = {
                attribute: [
                    (ldap3.MODIFY_DELETE, [str(current)]),
                    (ldap3.MODIFY_ADD, [str(current + 1)]),
                ]
            }
            try:
                if self.connection.modify(dn, change):
                    return current + 1
            except LDAPException as error:
                raise LDAPHookError(f"cannot update the counter {dn}: {_reason(error)}") from None
            if self.connection.result.get("result") != NO_SUCH_ATTRIBUTE:
                raise self._error(f"updating the counter {dn}")
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311
        raise LDAPHookError(f"could not allocate {attribute} from {dn} after {retries} attempts")

    def _error(self, doing: str) -> LDAPHookError:
        result = self.connection.result or {}
        message = result.get("message") or ""
        return LDAPHookError(
            f"{doing} failed: {result.get('description', 'unknown error')}"
            + (f" ({message})" if message else "")
        )


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
