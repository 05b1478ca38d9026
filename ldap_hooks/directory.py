"""Blocking ldap3 operations on pooled, bound connections. They run in worker threads, never on the
hub's event loop."""

from __future__ import annotations

import queue
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlparse

import ldap3
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException
from ldap3.utils.conv import escape_filter_chars

from .errors import LDAPHookError

NO_SUCH_ATTRIBUTE = 16
NO_SUCH_OBJECT = 32
ENTRY_ALREADY_EXISTS = 68
T = TypeVar("T")


class ConnectionLost(LDAPHookError):
    """A pooled connection broke (the server restarted or dropped it); a fresh one may work."""


@dataclass(frozen=True)
class ServerSettings:
    """Where and how to connect and bind; equal settings share one connection pool."""

    url: str
    user: str
    password: str = field(repr=False)
    start_tls: bool = False
    ca_file: str = ""
    timeout: float = 10


def check_url(url: str, start_tls: bool, ca_file: str) -> str:
    """The normalised URL; an error for a malformed one or a CA file that would not be used."""
    full = url if "://" in url else f"ldap://{url}"
    parsed = urlparse(full)
    if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname:
        raise LDAPHookError(f"LDAP url {url!r} must look like ldap://host[:port]")
    if parsed.scheme == "ldap" and ca_file and not start_tls:
        raise LDAPHookError(
            f"LDAP.ca_file is set but LDAP.url ({full}) is plain ldap:// and LDAP.start_tls is off,"
            " so the bind password would cross the network in cleartext: set LDAP.start_tls = True"
            " or use an ldaps:// url"
        )
    return full


class Directory:
    """One bound connection to the LDAP server, used by one thread at a time."""

    def __init__(self, settings: ServerSettings) -> None:
        self.url = check_url(settings.url, settings.start_tls, settings.ca_file)
        parsed = urlparse(self.url)
        tls = None
        if parsed.scheme == "ldaps" or settings.start_tls:
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=settings.ca_file or None,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        timeout = max(1, round(settings.timeout))  # ldap3 packs it as an integer
        server = ldap3.Server(
            parsed.hostname,
            port=parsed.port,
            use_ssl=parsed.scheme == "ldaps",
            tls=tls,
            connect_timeout=timeout,
            get_info=ldap3.NONE,
        )
        self.connection = ldap3.Connection(
            server,
            user=settings.user or None,
            password=settings.password or None,
            receive_timeout=timeout,
            raise_exceptions=False,
            read_only=False,
        )
        try:
            self.connection.open()
            if settings.start_tls and parsed.scheme == "ldap":
                self.connection.start_tls()
            bound = self.connection.bind()
        except (LDAPException, OSError) as error:
            self.close()
            raise LDAPHookError(
                f"cannot reach the LDAP server at {self.url}: {_reason(error)}"
            ) from None
        if not bound:
            result = self.connection.result or {}
            self.close()
            raise LDAPHookError(
                f"the LDAP server at {self.url} refused the bind as"
                f" {settings.user or 'anonymous'} ({result.get('description', 'unknown error')})"
            )

    def close(self) -> None:
        try:
            self.connection.unbind()
        except (LDAPException, OSError):
            pass

    # -- reads --------------------------------------------------------------------------------

    def search(
        self, base: str, search_filter: str, attributes: list[str], scope: str = ldap3.SUBTREE
    ) -> list[dict[str, list[Any]]]:
        """Entries as {"dn": [dn], attribute: [values]}; raises on errors other than no result."""
        ok = self._call(
            f"LDAP search under {base}",
            self.connection.search,
            base,
            search_filter,
            scope,
            attributes=attributes,
        )
        if not ok and self.connection.result.get("result") not in (0, NO_SUCH_OBJECT):
            raise self._error(f"LDAP search under {base}")
        entries = []
        for entry in self.connection.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            attrs = {k: v if isinstance(v, list) else [v] for k, v in entry["attributes"].items()}
            attrs["dn"] = [entry["dn"]]
            entries.append(attrs)
        return entries

    def read(self, dn: str) -> dict[str, list[Any]] | None:
        """The entry at ``dn`` with its attributes, or None when there is none."""
        entries = self.search(dn, "(objectClass=*)", ["*"], scope=ldap3.BASE)
        return entries[0] if entries else None

    def find_entries(
        self, base: str, object_classes: list[str], match: dict[str, str]
    ) -> list[dict[str, list[Any]]]:
        """Every entry with all ``object_classes`` and exactly the ``match`` values (one search)."""
        terms = [f"(objectClass={escape_filter_chars(oc)})" for oc in object_classes]
        terms += [f"({attr}={escape_filter_chars(str(value))})" for attr, value in match.items()]
        return self.search(base, f"(&{''.join(terms)})", ["*"])

    def find_entry(
        self, base: str, object_classes: list[str], match: dict[str, str]
    ) -> dict[str, list[Any]] | None:
        """The one entry with all ``object_classes`` and exactly the ``match`` values."""
        entries = self.find_entries(base, object_classes, match)
        if len(entries) > 1:
            raise LDAPHookError(
                f"{len(entries)} LDAP entries match {', '.join(match)}; they must be unique"
            )
        return entries[0] if entries else None

    # -- writes -------------------------------------------------------------------------------

    def add(self, dn: str, object_classes: list[str], attributes: dict[str, Any]) -> bool:
        """Add an entry; False when an entry with that DN already exists."""
        if self._call(
            f"adding the LDAP entry {dn}", self.connection.add, dn, object_classes, attributes
        ):
            return True
        if self.connection.result.get("result") == ENTRY_ALREADY_EXISTS:
            return False
        raise self._error(f"adding the LDAP entry {dn}")

    def delete(self, dn: str) -> None:
        if not self._call(f"deleting the LDAP entry {dn}", self.connection.delete, dn):
            raise self._error(f"deleting the LDAP entry {dn}")

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
            if self._call(f"updating the counter {dn}", self.connection.modify, dn, change):
                return current + 1
            if self.connection.result.get("result") != NO_SUCH_ATTRIBUTE:
                raise self._error(f"updating the counter {dn}")
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311
        raise LDAPHookError(f"could not allocate {attribute} from {dn} after {retries} attempts")

    # -- helpers ------------------------------------------------------------------------------

    def _call(self, doing: str, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return operation(*args, **kwargs)
        except LDAPCommunicationError as error:
            raise ConnectionLost(
                f"lost the connection to the LDAP server at {self.url} while {doing}:"
                f" {_reason(error)}"
            ) from None
        except LDAPException as error:
            raise LDAPHookError(f"{doing} failed: {_reason(error)}") from None

    def _error(self, doing: str) -> LDAPHookError:
        result = self.connection.result or {}
        message = result.get("message") or ""
        return LDAPHookError(
            f"{doing} failed: {result.get('description', 'unknown error')}"
            + (f" ({message})" if message else "")
        )


class ConnectionPool:
    """Bound connections to one server, reused across hook calls.

    A connection is used by one worker thread at a time. One that breaks is dropped; when it had been
    reused (the server may have restarted since), the work runs once more on a fresh connection.
    """

    def __init__(self, settings: ServerSettings, max_idle: int = 16) -> None:
        self.settings = settings
        self._idle: queue.LifoQueue[Directory] = queue.LifoQueue(max_idle)

    def run(self, work: Callable[[Directory], T]) -> T:
        """``work(directory)`` on a pooled connection (in the calling, worker, thread)."""
        try:
            directory, reused = self._idle.get_nowait(), True
        except queue.Empty:
            directory, reused = Directory(self.settings), False
        if reused and directory.connection.closed:
            directory, reused = Directory(self.settings), False
        try:
            return self._use(directory, work)
        except ConnectionLost:
            if not reused:
                raise
        return self._use(Directory(self.settings), work)

    def _use(self, directory: Directory, work: Callable[[Directory], T]) -> T:
        try:
            result = work(directory)
        except ConnectionLost:
            directory.close()
            raise
        except LDAPHookError:
            self._give_back(directory)
            raise
        except BaseException:
            directory.close()
            raise
        self._give_back(directory)
        return result

    def _give_back(self, directory: Directory) -> None:
        try:
            self._idle.put_nowait(directory)
        except queue.Full:
            directory.close()

    def close(self) -> None:
        """Unbind every idle connection."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


_POOLS: dict[ServerSettings, ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def connection_pool(settings: ServerSettings) -> ConnectionPool:
    """The process-wide pool for ``settings`` (the hub process talks to one or a few servers)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(settings)
        if pool is None:
            pool = _POOLS[settings] = ConnectionPool(settings)
        return pool


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
