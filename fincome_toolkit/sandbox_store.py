"""The sandbox's storage: one SQLite table of JSON records, and the request counters.

SQLite in WAL mode with `synchronous=NORMAL` keeps a write to tens of microseconds. One
connection is shared behind a lock: the server's event loop and the test thread reading
`stats()` or `records()` never use it at the same time. A file survives restarts; without one
the data lives in memory for the life of the server.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- listing order, and what cursors point at
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,                     -- the stored object (A9 fields) as JSON
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (entity, id)
)
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RecordStore:
    """Stored records by entity and id, in insertion order."""

    def __init__(self, db: str | Path | None = None) -> None:
        self.path = str(db) if db is not None else ":memory:"
        self._lock = threading.Lock()
        self._final_counts: dict[str, int] | None = None
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def close(self) -> None:
        """Close the database (checkpointing the WAL into the file); `counts()` stays readable."""
        final = self.counts()
        with self._lock:
            self._db.close()
            self._final_counts = final

    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        """The stored object (with `created_at`, `updated_at`), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT body, created_at, updated_at FROM records WHERE entity = ? AND id = ?",
                (entity, record_id),
            ).fetchone()
        return _answer(row) if row else None

    def exists(self, entity: str, record_id: str) -> bool:
        """Whether a record with this id is stored."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM records WHERE entity = ? AND id = ?", (entity, record_id)
            ).fetchone()
        return row is not None

    def put(self, entity: str, record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or replace a record (by its `id`); returns (stored object, created?)."""
        body, now = json.dumps(record, separators=(",", ":"), ensure_ascii=False), _now()
        with self._lock:
            created = self._db.execute(
                "INSERT INTO records (entity, id, body, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity, id) DO NOTHING",
                (entity, record["id"], body, now, now),
            ).rowcount
            if not created:
                self._db.execute(
                    "UPDATE records SET body = ?, updated_at = ? WHERE entity = ? AND id = ?",
                    (body, now, entity, record["id"]),
                )
            row = self._db.execute(
                "SELECT body, created_at, updated_at FROM records WHERE entity = ? AND id = ?",
                (entity, record["id"]),
            ).fetchone()
        return _answer(row), bool(created)

    def page(self, entity: str, *, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Up to `limit` records after position `after`, and the last position (0 if none)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body, created_at, updated_at, seq FROM records"
                " WHERE entity = ? AND seq > ? ORDER BY seq LIMIT ?",
                (entity, after, limit),
            ).fetchall()
        return [_answer(row) for row in rows], (rows[-1][3] if rows else 0)

    def has_after(self, entity: str, position: int) -> bool:
        """Whether any record of the entity comes after `position`."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM records WHERE entity = ? AND seq > ? LIMIT 1", (entity, position)
            ).fetchone()
        return row is not None

    def counts(self) -> dict[str, int]:
        """Stored records per entity (as they were at closing, once closed)."""
        with self._lock:
            if self._final_counts is not None:
                return dict(self._final_counts)
            rows = self._db.execute("SELECT entity, COUNT(*) FROM records GROUP BY entity")
            return dict(rows.fetchall())

    def all(self, entity: str) -> list[dict[str, Any]]:
        """Every stored object of an entity, in insertion order."""
        records, position = [], 0
        while True:
            page, position = self.page(entity, after=position, limit=10_000)
            if not page:
                return records
            records += page


def _answer(row: tuple[Any, ...]) -> dict[str, Any]:
    return json.loads(row[0]) | {"created_at": row[1], "updated_at": row[2]}


class RequestStats:
    """Requests served, by status and by route (`"POST /customers"`), plus injected faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_route: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._faults: Counter[str] = Counter()

    def record(self, route: str, status: int | str) -> None:
        """Count one request; `status` is the HTTP status, or "dropped" for a lost answer."""
        with self._lock:
            self._by_route[route][str(status)] += 1

    def fault(self, kind: str) -> None:
        """Count one injected fault (rate_limited, failed, dropped, delayed)."""
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """`{"requests": n, "by_status": {...}, "by_route": {route: {...}}, "faults": {...}}`."""
        with self._lock:
            by_status: Counter[str] = Counter()
            for counts in self._by_route.values():
                by_status.update(counts)
            return {
                "requests": sum(by_status.values()),
                "by_status": dict(sorted(by_status.items())),
                "by_route": {route: dict(c) for route, c in sorted(self._by_route.items())},
                "faults": dict(self._faults),
            }
