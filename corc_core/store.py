"""``RecordStore``: the local SQLite record of every resource corc creates.

A record is written *before* the provider is asked to create anything, and every resource is tagged
with its record's id and the store's deployment id, so a crash at any point leaves either a record
to tear down or a tagged resource that ``corc reap`` recognises as orphaned, and a reap never
touches what another store (another deployment) made.

Each record also names the *session* (host, pid and process start time) that is creating or
deleting it: a record stuck in ``creating``/``deleting`` whose session is gone was abandoned by a
crash, and reap finishes the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LIVE_STATES = ("creating", "running", "deleting")
#: States in which a record is only alive while the session working on it is.
BUSY_STATES = ("creating", "deleting")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    resource_id TEXT,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    session TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS records_by_provider ON records (provider, state);
CREATE TABLE IF NOT EXISTS allocations (
    pool TEXT NOT NULL,
    host TEXT NOT NULL,
    gpu INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (pool, host, gpu)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = "record_id, provider, resource_id, owner, created, state, details, session"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), which a reused pid changes."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


_session: tuple[int, str] | None = None


def current_session() -> str:
    """This process, as ``host:pid:start-time``."""
    global _session
    pid = os.getpid()
    if _session is None or _session[0] != pid:
        _session = (pid, f"{socket.gethostname()}:{pid}:{_start_time(pid) or 0}")
    return _session[1]


def session_alive(session: str) -> bool:
    """True unless ``session`` is a process of this host that has ended (or an empty session).

    Sessions of other hosts are taken to be alive: only their own host can tell.
    """
    host, _, rest = session.partition(":")
    pid, _, started = rest.partition(":")
    if not session or not pid.isdigit():
        return False
    if host != socket.gethostname():
        return True
    return _start_time(int(pid)) == started


@dataclass(frozen=True)
class Record:
    """One resource corc created (or is creating) for an owner."""

    record_id: str
    provider: str
    resource_id: str | None
    owner: str
    created: float
    state: str
    details: dict[str, Any]
    session: str = ""

    def abandoned(self) -> bool:
        """Stuck in creating/deleting by a session that has ended (a crash, a kill)."""
        return self.state in BUSY_STATES and not session_alive(self.session)


class RecordStore:
    """SQLite-backed records.

    The ``*_sync`` methods use a connection that waits up to 30 s for a busy database (call them
    from worker threads). The async methods run a small write or read *inline* when the database
    is free (a WAL commit without fsync takes ~0.1 ms, less than a thread hop) and in a worker
    thread when another process holds the write lock; listings always run in a thread. The
    inline connection never checkpoints (no fsync on the event loop): a worker thread does.
    """

    #: Inline commits between two checkpoints of the write-ahead log (run in a worker thread).
    CHECKPOINT_EVERY = 500

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
        # WAL with synchronous=NORMAL: each commit is durable against a process crash (the
        # failure corc guards against) without an fsync per record update.
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._db.executescript(_SCHEMA)
        with self._transaction() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
            if "session" not in columns:  # a store made by an older corc
                db.execute("ALTER TABLE records ADD COLUMN session TEXT NOT NULL DEFAULT ''")
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('deployment', ?)", (uuid.uuid4().hex[:16],)
            )
            (self.deployment_id,) = db.execute(
                "SELECT value FROM meta WHERE key = 'deployment'"
            ).fetchone()
        self._inline_lock = threading.Lock()
        self._inline = sqlite3.connect(
            self.path, timeout=0, isolation_level=None, check_same_thread=False
        )
        self._inline.execute("PRAGMA synchronous=NORMAL")
        self._inline.execute("PRAGMA wal_autocheckpoint=0")
        self._inline_writes = 0
        self._checkpoints: set[asyncio.Future[None]] = set()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._inline_lock:
            self._inline.close()
        with self._lock:
            self._db.close()

    async def _run(self, func: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """``func(connection)``: inline when the database is free, else in a worker thread."""
        if self._inline_lock.acquire(blocking=False):
            try:
                result = func(self._inline)
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if self._inline.in_transaction:
                    self._inline.execute("ROLLBACK")
            else:
                if write:
                    self._inline_writes += 1
                    if self._inline_writes % self.CHECKPOINT_EVERY == 0:
                        self._checkpoint_soon()
                return result
            finally:
                self._inline_lock.release()
        return await asyncio.to_thread(self._locked, func)

    def _locked(self, func: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return func(self._db)

    def _checkpoint_soon(self) -> None:
        def checkpoint() -> None:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

        future = asyncio.ensure_future(asyncio.to_thread(checkpoint))
        self._checkpoints.add(future)
        future.add_done_callback(self._checkpoints.discard)

    # -- synchronous core -------------------------------------------------------------------------

    def create_sync(
        self, provider: str, owner: str, details: dict[str, Any] | None = None
    ) -> Record:
        return self._locked(_create(provider, owner, details))

    def update_sync(self, record_id: str, **changes: Any) -> None:
        """Change fields of a record; a change of state also names this session as its keeper."""
        self._locked(_update(record_id, changes))

    def get_sync(self, record_id: str) -> Record | None:
        return self._locked(_get(record_id))

    def list_sync(self, provider: str | None = None, live_only: bool = False) -> list[Record]:
        query, args = f"SELECT {_COLUMNS} FROM records WHERE 1=1", []  # noqa: S608
        if provider:
            query += " AND provider = ?"
            args.append(provider)
        if live_only:
            query += f" AND state IN ({', '.join('?' * len(LIVE_STATES))})"
            args.extend(LIVE_STATES)
        return [_record(row) for row in self._query(query + " ORDER BY created", args)]

    def find_sync(
        self, provider: str, record_ids: Iterable[str] = (), states: Iterable[str] = ()
    ) -> list[Record]:
        """Records of ``provider`` whose id is one of ``record_ids`` or whose state is one of
        ``states``: indexed look-ups (primary key; provider and state), so the cost follows what
        is asked for, not the size of the store's history."""
        ids = sorted(set(record_ids))
        wanted_states = list(states)
        found: dict[str, Record] = {}
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    rows = self._db.execute(
                        f"SELECT {_COLUMNS} FROM records WHERE provider = ?"  # noqa: S608
                        f" AND record_id IN ({', '.join('?' * len(chunk))})",
                        (provider, *chunk),
                    )
                    found.update((row[0], _record(row)) for row in rows)
                if wanted_states:
                    rows = self._db.execute(
                        f"SELECT {_COLUMNS} FROM records WHERE provider = ?"  # noqa: S608
                        f" AND state IN ({', '.join('?' * len(wanted_states))})",
                        (provider, *wanted_states),
                    )
                    found.update((row[0], _record(row)) for row in rows)
            finally:
                self._db.execute("COMMIT")
        return list(found.values())

    def allocate_gpus_sync(
        self, pool: str, candidates: dict[str, int], count: int, record_id: str
    ) -> tuple[str, list[int]] | None:
        """Atomically take ``count`` free GPUs on one host of ``candidates`` ({host: gpu count})."""
        with self._transaction() as db:
            for host, total in candidates.items():
                taken = {
                    gpu
                    for (gpu,) in db.execute(
                        "SELECT gpu FROM allocations WHERE pool = ? AND host = ?", (pool, host)
                    )
                }
                free = [gpu for gpu in range(total) if gpu not in taken]
                if len(free) >= count:
                    chosen = free[:count]
                    db.executemany(
                        "INSERT INTO allocations VALUES (?, ?, ?, ?)",
                        [(pool, host, gpu, record_id) for gpu in chosen],
                    )
                    return host, chosen
            return None

    def release_sync(self, record_id: str) -> None:
        self._locked(_release(record_id))

    def allocations_sync(self, pool: str) -> dict[str, tuple[str, list[int]]]:
        """{record id: (host, [gpu, ...])} of every allocation in ``pool``."""
        found: dict[str, tuple[str, list[int]]] = {}
        for host, gpu, record_id in self._query(
            "SELECT host, gpu, record_id FROM allocations WHERE pool = ? ORDER BY gpu", (pool,)
        ):
            found.setdefault(record_id, (host, []))[1].append(gpu)
        return found

    def hosts_in_use_sync(self, pool: str) -> dict[str, int]:
        rows = self._query(
            "SELECT host, COUNT(DISTINCT record_id) FROM allocations WHERE pool = ? GROUP BY host",
            (pool,),
        )
        return dict(rows)

    # -- async wrappers (never block the event loop) ----------------------------------------------

    async def create(
        self, provider: str, owner: str, details: dict[str, Any] | None = None
    ) -> Record:
        return await self._run(_create(provider, owner, details))

    async def update(self, record_id: str, **changes: Any) -> None:
        await self._run(_update(record_id, changes))

    async def get(self, record_id: str) -> Record | None:
        return await self._run(_get(record_id), write=False)

    async def list(self, provider: str | None = None, live_only: bool = False) -> list[Record]:
        return await asyncio.to_thread(self.list_sync, provider, live_only)

    async def find(
        self, provider: str, record_ids: Iterable[str] = (), states: Iterable[str] = ()
    ) -> list[Record]:
        """``find_sync`` in a worker thread."""
        return await asyncio.to_thread(self.find_sync, provider, list(record_ids), list(states))

    async def release(self, record_id: str) -> None:
        await self._run(_release(record_id))


# -- the small queries, as functions of a connection ------------------------------------------


def _create(
    provider: str, owner: str, details: dict[str, Any] | None
) -> Callable[[sqlite3.Connection], Record]:
    record = Record(
        uuid.uuid4().hex,
        provider,
        None,
        owner,
        time.time(),
        "creating",
        details or {},
        current_session(),
    )
    row = (*astuple(record)[:6], json.dumps(record.details), record.session)

    def run(db: sqlite3.Connection) -> Record:
        db.execute(
            f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            row,
        )
        return record

    return run


def _update(record_id: str, changes: dict[str, Any]) -> Callable[[sqlite3.Connection], None]:
    changes = dict(changes)
    if "details" in changes:
        changes["details"] = json.dumps(changes["details"])
    if "state" in changes and "session" not in changes:
        changes["session"] = current_session()
    unknown = set(changes) - set(_COLUMNS.split(", "))
    if unknown:
        raise ValueError(f"records have no field {', '.join(sorted(unknown))}")
    columns = ", ".join(f"{name} = ?" for name in changes)  # names checked just above
    sql = f"UPDATE records SET {columns} WHERE record_id = ?"  # noqa: S608

    def run(db: sqlite3.Connection) -> None:
        db.execute(sql, (*changes.values(), record_id))

    return run


def _get(record_id: str) -> Callable[[sqlite3.Connection], Record | None]:
    def run(db: sqlite3.Connection) -> Record | None:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM records WHERE record_id = ?",  # noqa: S608
            (record_id,),
        ).fetchone()
        return _record(row) if row else None

    return run


def _release(record_id: str) -> Callable[[sqlite3.Connection], None]:
    def run(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM allocations WHERE record_id = ?", (record_id,))

    return run


def _record(row: tuple) -> Record:
    record_id, provider, resource_id, owner, created, state, details, session = row
    return Record(
        record_id, provider, resource_id, owner, created, state, json.loads(details), session
    )
