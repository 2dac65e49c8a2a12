"""The upload journal: a small SQLite state machine, one row per record sent to one Fincome target.

Every record the uploader handles moves through named states::

    pending ──mark_sent──▶ sent ──mark_acknowledged──▶ acknowledged
       ▲                    │ ├──mark_rejected──────▶ rejected
       │                    │ ├──mark_conflict──────▶ conflict
       └──mark_unanswered───┘ └──(killed: left in sent, re-queued by requeue_in_flight)
    held_back: a record not sent because of the audit or of a record it references.

Each transition is one method and one transaction, so a crash leaves the journal in a state the
next run understands: `sent` means "the request may or may not have reached Fincome", and the
uploader re-sends it (a POST of the same id is an upsert or a 409 that the uploader resolves).

Durability: WAL mode with `synchronous=NORMAL`. In WAL mode a commit is a `write()` into the WAL
file before `commit()` returns, so a SIGKILL of the process cannot lose a committed transition
(the operating system still holds the written pages); only a power cut or kernel crash could roll
back the last few commits, and those are safe to lose because the uploader re-sends anything not
`acknowledged`, which the A4 conflict path makes idempotent. `FULL` would add an fsync per
transition (several per record) for no gain in exactness.

The API key is never given to the journal, so it cannot be written to it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl

from fincome_toolkit.errors import ConfigError

STATES = ("pending", "sent", "acknowledged", "rejected", "conflict", "held_back")
MAX_MESSAGE_CHARS = 2000  # server bodies can be whole HTML error pages: keep the start only
_SCHEMA_VERSION = "1"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    entity       TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    attempts     INTEGER NOT NULL DEFAULT 0,
    http_status  INTEGER,
    message      TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (entity, record_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

JOURNAL_SCHEMA: dict[str, pl.DataType] = {
    "entity": pl.String(),
    "record_id": pl.String(),
    "payload_hash": pl.String(),
    "state": pl.String(),
    "attempts": pl.Int64(),
    "http_status": pl.Int64(),
    "message": pl.String(),
    "created_at": pl.String(),
    "updated_at": pl.String(),
}


class JournalStateError(RuntimeError):
    """A transition was asked from a state that does not allow it (a bug in the caller)."""


@dataclass(frozen=True)
class JournalEntry:
    """One record as the journal knows it."""

    entity: str
    record_id: str
    payload_hash: str
    state: str
    attempts: int
    http_status: int | None
    message: str | None
    created_at: str
    updated_at: str


def default_journal_path(base_url: str, *, directory: Path | str = ".fincome") -> Path:
    """`.fincome/journal-<host>-<sha of base_url>.sqlite`: one journal per target API."""
    host = urlsplit(base_url).hostname or "local"
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:12]
    return Path(directory) / f"journal-{host}-{digest}.sqlite"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _cut(message: str | None) -> str | None:
    if message is None or len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + f"… [{len(message) - MAX_MESSAGE_CHARS} more characters]"


class Journal:
    """The SQLite journal of one upload target (a base URL). Use as a context manager or close().

    `Journal(path, base_url=...)` creates the file if needed and refuses a journal that was
    written for another base URL, so two targets never share (and corrupt) each other's state.
    """

    def __init__(self, path: Path | str, *, base_url: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise ConfigError(
                f"cannot open the upload journal: {error}",
                where=str(self.path),
                fix="point --journal to a writable file, or move the damaged file away",
            ) from error
        self._check_target(base_url)

    @classmethod
    def for_target(cls, base_url: str, *, directory: Path | str = ".fincome") -> Journal:
        """The journal at the default path for `base_url`."""
        return cls(default_journal_path(base_url, directory=directory), base_url=base_url)

    def _check_target(self, base_url: str | None) -> None:
        stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if base_url is None:
            return
        target = base_url.rstrip("/")
        if "base_url" not in stored:
            with self._transaction() as db:
                db.execute("INSERT INTO meta VALUES ('base_url', ?)", (target,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (_SCHEMA_VERSION,))
        elif stored["base_url"] != target:
            raise ConfigError(
                f"this journal records uploads to {stored['base_url']}, not to {target}",
                where=str(self.path),
                fix="use one journal per target: drop --journal to get the default one",
            )

    @property
    def base_url(self) -> str | None:
        """The target this journal belongs to (None for a journal opened without one)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'base_url'").fetchone()
        return row[0] if row else None

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _move(
        self,
        entity: str,
        record_id: str,
        *,
        allowed_from: tuple[str, ...],
        to: str,
        http_status: int | None = None,
        message: str | None = None,
        add_attempt: bool = False,
    ) -> None:
        """Move one record between states, or raise when its current state forbids it."""
        placeholders = ", ".join("?" for _ in allowed_from)
        with self._transaction() as db:
            cursor = db.execute(
                f"""UPDATE records SET state = ?, http_status = coalesce(?, http_status),
                        message = ?, attempts = attempts + ?, updated_at = ?
                    WHERE entity = ? AND record_id = ? AND state IN ({placeholders})""",
                (
                    to,
                    http_status,
                    _cut(message),
                    int(add_attempt),
                    _now(),
                    entity,
                    record_id,
                    *allowed_from,
                ),
            )
            if cursor.rowcount != 1:
                current = self.get(entity, record_id)
                state = current.state if current else "absent"
                raise JournalStateError(f"{entity} {record_id}: cannot go from {state} to {to}")

    # --- transitions -----------------------------------------------------------------------

    def mark_pending(self, entity: str, records: Iterable[tuple[str, str]]) -> None:
        """Queue `(record_id, payload_hash)` pairs for sending (new, changed or re-sent records).

        One transaction for the whole batch. Attempts restart at zero when the content changed.
        """
        now = _now()
        rows = [(entity, record_id, payload_hash, now, now) for record_id, payload_hash in records]
        with self._transaction() as db:
            db.executemany(
                """INSERT INTO records (entity, record_id, payload_hash, state, attempts,
                                       created_at, updated_at)
                   VALUES (?, ?, ?, 'pending', 0, ?, ?)
                   ON CONFLICT (entity, record_id) DO UPDATE SET
                       state = 'pending',
                       attempts = CASE WHEN payload_hash = excluded.payload_hash
                                       THEN attempts ELSE 0 END,
                       payload_hash = excluded.payload_hash,
                       updated_at = excluded.updated_at""",
                rows,
            )

    def mark_sent(self, entity: str, record_id: str) -> None:
        """A write request for this record is about to leave (counted as one attempt)."""
        self._move(entity, record_id, allowed_from=("pending", "sent"), to="sent", add_attempt=True)

    def mark_acknowledged(self, entity: str, record_id: str, *, http_status: int) -> None:
        """Fincome holds the record with exactly this content."""
        self._move(
            entity, record_id, allowed_from=("sent",), to="acknowledged", http_status=http_status
        )

    def mark_rejected(
        self, entity: str, record_id: str, *, http_status: int | None, message: str
    ) -> None:
        """Fincome refused the record (validation error): it is not re-sent unless asked."""
        self._move(
            entity,
            record_id,
            allowed_from=("sent",),
            to="rejected",
            http_status=http_status,
            message=message,
        )

    def mark_conflict(self, entity: str, record_id: str, *, http_status: int, message: str) -> None:
        """Fincome holds a different version of the record and updates were not allowed."""
        self._move(
            entity,
            record_id,
            allowed_from=("sent",),
            to="conflict",
            http_status=http_status,
            message=message,
        )

    def mark_unanswered(
        self, entity: str, record_id: str, *, http_status: int | None, message: str
    ) -> None:
        """No usable answer after every attempt: back to pending, the next run sends it again."""
        self._move(
            entity,
            record_id,
            allowed_from=("sent",),
            to="pending",
            http_status=http_status,
            message=message,
        )

    def mark_held_back(self, entity: str, records: Iterable[tuple[str, str, str]]) -> None:
        """Record `(record_id, payload_hash, reason)` triples as not sent in this run."""
        now = _now()
        rows = [(entity, rid, digest, _cut(reason), now, now) for rid, digest, reason in records]
        with self._transaction() as db:
            db.executemany(
                """INSERT INTO records (entity, record_id, payload_hash, state, attempts,
                                       message, created_at, updated_at)
                   VALUES (?, ?, ?, 'held_back', 0, ?, ?, ?)
                   ON CONFLICT (entity, record_id) DO UPDATE SET
                       state = 'held_back', payload_hash = excluded.payload_hash,
                       message = excluded.message, updated_at = excluded.updated_at""",
                rows,
            )

    def requeue_in_flight(self) -> int:
        """Put back to pending every record left in `sent` by a run that was killed."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE records SET state = 'pending', updated_at = ? WHERE state = 'sent'",
                (_now(),),
            )
            return cursor.rowcount

    # --- reading -------------------------------------------------------------------------------

    def get(self, entity: str, record_id: str) -> JournalEntry | None:
        """The journal's row for one record, or None when it never saw it."""
        row = self._db.execute(
            f"SELECT {', '.join(JOURNAL_SCHEMA)} FROM records WHERE entity = ? AND record_id = ?",
            (entity, record_id),
        ).fetchone()
        return JournalEntry(*row) if row else None

    def to_frame(self, entity: str | None = None) -> pl.DataFrame:
        """Every row (or those of one entity) as a polars frame with `JOURNAL_SCHEMA`."""
        query = f"SELECT {', '.join(JOURNAL_SCHEMA)} FROM records"
        params: tuple[str, ...] = ()
        if entity is not None:
            query += " WHERE entity = ?"
            params = (entity,)
        rows = self._db.execute(query + " ORDER BY entity, record_id", params).fetchall()
        return pl.DataFrame(rows, schema=JOURNAL_SCHEMA, orient="row")

    def counts(self) -> pl.DataFrame:
        """Records per entity and state: `entity, state, records`."""
        rows = self._db.execute(
            "SELECT entity, state, count(*) FROM records GROUP BY entity, state ORDER BY 1, 2"
        ).fetchall()
        schema = {"entity": pl.String(), "state": pl.String(), "records": pl.Int64()}
        return pl.DataFrame(rows, schema=schema, orient="row")
