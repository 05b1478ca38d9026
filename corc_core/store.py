"""``RecordStore``: the local SQLite record of every resource corc creates.

A record is written *before* the provider is asked to create anything, and every resource is tagged
with its record's id, so a crash at any point leaves either a record to tear down or a tagged
resource that ``corc reap`` recognises as orphaned.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIVE_STATES = ("creating", "running", "deleting")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    resource_id TEXT,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS allocations (
    pool TEXT NOT NULL,
    host TEXT NOT NULL,
    gpu INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (pool, host, gpu)
);
"""


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


class RecordStore:
    """SQLite-backed records; the async methods run the queries in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    # -- synchronous core -------------------------------------------------------------------------

    def create_sync(
        self, provider: str, owner: str, details: dict[str, Any] | None = None
    ) -> Record:
        record = Record(
            uuid.uuid4().hex, provider, None, owner, time.time(), "creating", details or {}
        )
        with self._connect() as db:
            db.execute(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.record_id,
                    provider,
                    None,
                    owner,
                    record.created,
                    record.state,
                    json.dumps(record.details),
                ),
            )
        return record

    def update_sync(self, record_id: str, **changes: Any) -> None:
        if "details" in changes:
            changes["details"] = json.dumps(changes["details"])
        columns = ", ".join(f"{name} = ?" for name in changes)
        with self._connect() as db:
            db.execute(
                f"UPDATE records SET {columns} WHERE record_id = ?",  # noqa: S608 - fixed names
                (*changes.values(), record_id),
            )

    def get_sync(self, record_id: str) -> Record | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM records WHERE record_id = ?", (record_id,)).fetchone()
        return _record(row) if row else None

    def list_sync(self, provider: str | None = None, live_only: bool = False) -> list[Record]:
        query, args = "SELECT * FROM records WHERE 1=1", []
        if provider:
            query += " AND provider = ?"
            args.append(provider)
        if live_only:
            query += f" AND state IN ({', '.join('?' * len(LIVE_STATES))})"
            args.extend(LIVE_STATES)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created", args).fetchall()
        return [_record(row) for row in rows]

    def allocate_gpus_sync(
        self, pool: str, candidates: dict[str, int], count: int, record_id: str
    ) -> tuple[str, list[int]] | None:
        """Atomically take ``count`` free GPUs on one host of ``candidates`` ({host: gpu count})."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
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
                        db.execute("COMMIT")
                        return host, chosen
                db.execute("COMMIT")
                return None
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def release_sync(self, record_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM allocations WHERE record_id = ?", (record_id,))

    def hosts_in_use_sync(self, pool: str) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT host, COUNT(DISTINCT record_id) FROM allocations WHERE pool = ? GROUP BY host",
                (pool,),
            ).fetchall()
        return dict(rows)

    # -- async wrappers (never block the event loop) ----------------------------------------------

    async def create(
        self, provider: str, owner: str, details: dict[str, Any] | None = None
    ) -> Record:
        return await asyncio.to_thread(self.create_sync, provider, owner, details)

    async def update(self, record_id: str, **changes: Any) -> None:
        await asyncio.to_thread(self.update_sync, record_id, **changes)

    async def get(self, record_id: str) -> Record | None:
        return await asyncio.to_thread(self.get_sync, record_id)

    async def list(self, provider: str | None = None, live_only: bool = False) -> list[Record]:
        return await asyncio.to_thread(self.list_sync, provider, live_only)


def _record(row: tuple) -> Record:
    record_id, provider, resource_id, owner, created, state, details = row
    return Record(record_id, provider, resource_id, owner, created, state, json.loads(details))
