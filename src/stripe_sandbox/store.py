"""SQLite persistence of the sandbox: objects, events, deliveries, idempotency, clock."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_type_seq ON objects (type, seq);
-- A list is newest first: by created, then by insertion (seq, the rowid every index ends with).
-- These two serve it from the index for a type, and for a type and status, with a created
-- range; the third finds the open sessions due to expire without reading every open one.
CREATE INDEX IF NOT EXISTS objects_type_created ON objects (type, created);
DROP INDEX IF EXISTS objects_status;
CREATE INDEX IF NOT EXISTS objects_status_created
    ON objects (type, json_extract(data, '$.status'), created);
CREATE INDEX IF NOT EXISTS objects_status_expiry
    ON objects (type, json_extract(data, '$.status'), json_extract(data, '$.expires_at'));
-- One row per event and webhook endpoint it goes to (a Connect event to the Connect endpoints,
-- any other to the platform's).
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    next_attempt_at REAL NOT NULL,
    delivered_at REAL,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (delivered, next_attempt_at);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Filter operators the service may ask for; anything else is a programming error.
_OPS = {"=", ">", ">=", "<", "<=", "like", "in"}
_FIELD = re.compile(r"[a-z_]+(\.[a-z_]+)*")


@dataclass(frozen=True)
class Filter:
    """A condition on a column (``created``) or a top-level JSON field of an object."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Delivery:
    """One event's webhook delivery state."""

    event_id: str
    endpoint_id: str
    attempts: int
    delivered: bool
    last_status: int | None
    last_error: str | None
    next_attempt_at: float
    delivered_at: float | None


@dataclass(frozen=True)
class IdempotentResult:
    """A stored response for an Idempotency-Key."""

    fingerprint: str
    status: int
    body: str
    request_id: str


class CursorNotFound(LookupError):
    """A pagination cursor names no object of the listed type."""


class Store:
    """Thread-safe access to the sandbox's SQLite file (one connection per thread)."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Called after a transaction that queued webhook deliveries commits.
        self.on_deliveries_queued: Callable[[], None] | None = None
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        columns = {row["name"] for row in conn.execute("PRAGMA table_info(deliveries)")}
        if columns and "endpoint_id" not in columns:
            # A file from before webhook endpoints (one delivery per event): its pending
            # deliveries are dropped; `POST /_sandbox/deliveries/redeliver` queues them again.
            conn.execute("DROP TABLE deliveries")
        conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            self._local.depth = 0
            self._local.queued = False
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (BEGIN IMMEDIATE); nested uses join the outer one."""
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        self._local.queued = False
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.depth = 0
        if self._local.queued and self.on_deliveries_queued:
            self.on_deliveries_queued()

    # -- objects ---------------------------------------------------------------

    def get(self, object_id: str, type_: str | None = None) -> dict[str, Any] | None:
        """The stored object with this id (optionally of this type), or None."""
        row = self._conn().execute("SELECT type, data FROM objects WHERE id = ?", (object_id,)).fetchone()
        if row is None or (type_ is not None and row["type"] != type_):
            return None
        return json.loads(row["data"])

    def insert(self, obj: dict[str, Any]) -> None:
        """Store a new object (its ``object`` field is its type)."""
        self._conn().execute(
            "INSERT INTO objects (id, type, created, data) VALUES (?, ?, ?, ?)",
            (obj["id"], obj["object"], obj["created"], json.dumps(obj)),
        )

    def update(self, obj: dict[str, Any]) -> None:
        """Overwrite an existing object."""
        self._conn().execute("UPDATE objects SET data = ? WHERE id = ?", (json.dumps(obj), obj["id"]))

    def delete(self, object_id: str) -> None:
        """Forget an object."""
        self._conn().execute("DELETE FROM objects WHERE id = ?", (object_id,))

    def ids_where(self, type_: str, filters: Sequence[Filter]) -> list[str]:
        """Ids of objects of a type matching every filter, oldest first."""
        where, args = _where(type_, filters)
        rows = self._conn().execute(f"SELECT id FROM objects WHERE {where} ORDER BY seq", args).fetchall()
        return [row["id"] for row in rows]

    def page(
        self,
        type_: str,
        filters: Sequence[Filter],
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of objects, newest first (by created, then by insertion, as Stripe lists
        them), and whether more exist past it."""
        where, args = _where(type_, filters)
        order = "DESC"
        # Past the cursor in list order. Written out rather than as the row value (created, seq)
        # < (?, ?), which led SQLite to the type's index instead of the status's (10x slower).
        if starting_after:
            created, seq = self._cursor(type_, starting_after)
            where += " AND (created < ? OR (created = ? AND seq < ?))"
            args += [created, created, seq]
        elif ending_before:
            created, seq = self._cursor(type_, ending_before)
            where += " AND (created > ? OR (created = ? AND seq > ?))"
            args += [created, created, seq]
            order = "ASC"
        rows = (
            self._conn()
            .execute(
                f"SELECT data FROM objects WHERE {where} ORDER BY created {order}, seq {order} LIMIT ?",
                [*args, limit + 1],
            )
            .fetchall()
        )
        items = [json.loads(row["data"]) for row in rows[:limit]]
        if order == "ASC":
            items.reverse()
        return items, len(rows) > limit

    def _cursor(self, type_: str, object_id: str) -> tuple[int, int]:
        row = (
            self._conn()
            .execute("SELECT created, seq FROM objects WHERE id = ? AND type = ?", (object_id, type_))
            .fetchone()
        )
        if row is None:
            raise CursorNotFound(object_id)
        return int(row["created"]), int(row["seq"])

    # -- key/value -------------------------------------------------------------

    def get_value(self, key: str, default: str | None = None) -> str | None:
        """A small persisted setting (e.g. the clock offset)."""
        row = self._conn().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else row["value"]

    def set_value(self, key: str, value: str) -> None:
        """Persist a small setting."""
        self._conn().execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- idempotency -----------------------------------------------------------

    def get_idempotent(self, scope: str, key: str) -> IdempotentResult | None:
        """The stored response for an Idempotency-Key, if any."""
        row = (
            self._conn()
            .execute(
                "SELECT fingerprint, status, body, request_id FROM idempotency WHERE scope = ? AND key = ?",
                (scope, key),
            )
            .fetchone()
        )
        if row is None:
            return None
        return IdempotentResult(row["fingerprint"], row["status"], row["body"], row["request_id"])

    def put_idempotent(self, scope: str, key: str, result: IdempotentResult, now: float) -> None:
        """Remember the response given for an Idempotency-Key."""
        self._conn().execute(
            "INSERT INTO idempotency (scope, key, fingerprint, status, body, request_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scope, key, result.fingerprint, result.status, result.body, result.request_id, now),
        )

    def purge_idempotent(self, older_than: float) -> int:
        """Forget idempotency records created before a (real) time."""
        cur = self._conn().execute("DELETE FROM idempotency WHERE created < ?", (older_than,))
        return cur.rowcount

    def delete_test_data(self) -> dict[str, int]:
        """Forget every object, delivery and idempotency record (Stripe's "Delete all test data").

        The clock offset and the runtime settings are kept."""
        counts = {}
        for table in ("objects", "deliveries", "idempotency"):
            counts[table] = self._conn().execute(f"DELETE FROM {table}").rowcount  # noqa: S608 - fixed names
        return counts

    # -- deliveries ------------------------------------------------------------

    def queue_delivery(self, event_id: str, endpoint_id: str, now: float) -> None:
        """(Re)queue an event for delivery to one webhook endpoint, due now."""
        self._conn().execute(
            "INSERT INTO deliveries (event_id, endpoint_id, next_attempt_at) VALUES (?, ?, ?) "
            "ON CONFLICT (event_id, endpoint_id) DO UPDATE SET delivered = 0, next_attempt_at = excluded."
            "next_attempt_at, delivered_at = NULL",
            (event_id, endpoint_id, now),
        )
        self._local.queued = True

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Undelivered deliveries whose next attempt is due, oldest event first."""
        rows = (
            self._conn()
            .execute(
                "SELECT d.* FROM deliveries d JOIN objects o ON o.id = d.event_id "
                "WHERE d.delivered = 0 AND d.next_attempt_at <= ? ORDER BY o.seq LIMIT ?",
                (now, limit),
            )
            .fetchall()
        )
        return [_delivery(row) for row in rows]

    def next_due_at(self, exclude: Collection[tuple[str, str]] = ()) -> float | None:
        """When the earliest undelivered delivery not in ``exclude`` ((event, endpoint) pairs)
        becomes due."""
        rows = self._conn().execute(
            "SELECT event_id, endpoint_id, next_attempt_at FROM deliveries WHERE delivered = 0 "
            "ORDER BY next_attempt_at LIMIT ?",
            (len(exclude) + 1,),
        )
        for row in rows:
            if (row["event_id"], row["endpoint_id"]) not in exclude:
                return float(row["next_attempt_at"])
        return None

    def get_delivery(self, event_id: str, endpoint_id: str) -> Delivery | None:
        """One event's delivery state at one endpoint."""
        row = (
            self._conn()
            .execute("SELECT * FROM deliveries WHERE event_id = ? AND endpoint_id = ?", (event_id, endpoint_id))
            .fetchone()
        )
        return None if row is None else _delivery(row)

    def deliveries_of(self, event_id: str) -> list[Delivery]:
        """An event's deliveries, one per endpoint it goes to."""
        rows = self._conn().execute("SELECT * FROM deliveries WHERE event_id = ?", (event_id,)).fetchall()
        return [_delivery(row) for row in rows]

    def record_attempt(
        self,
        event_id: str,
        endpoint_id: str,
        *,
        status: int | None,
        error: str | None,
        delivered: bool,
        now: float,
        next_attempt_at: float,
    ) -> None:
        """Store the outcome of one delivery attempt."""
        self._conn().execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, "
            "delivered = ?, delivered_at = ?, next_attempt_at = ? WHERE event_id = ? AND endpoint_id = ?",
            (status, error, int(delivered), now if delivered else None, next_attempt_at, event_id, endpoint_id),
        )

    def list_deliveries(self) -> list[tuple[Delivery, str]]:
        """Every delivery with its event type, oldest event first."""
        rows = (
            self._conn()
            .execute(
                "SELECT d.*, json_extract(o.data, '$.type') AS event_type FROM deliveries d "
                "JOIN objects o ON o.id = d.event_id ORDER BY o.seq, d.endpoint_id"
            )
            .fetchall()
        )
        return [(_delivery(row), row["event_type"]) for row in rows]


def _where(type_: str, filters: Sequence[Filter]) -> tuple[str, list[Any]]:
    clauses, args = ["type = ?"], [type_]
    for f in filters:
        if f.op not in _OPS:
            raise ValueError(f"unsupported filter operator {f.op!r}")
        if not _FIELD.fullmatch(f.field):
            raise ValueError(f"unsupported filter field {f.field!r}")
        # Field names come from code, never from requests; inlined so indexes apply.
        column = "created" if f.field == "created" else f"json_extract(data, '$.{f.field}')"
        if f.op == "in":
            marks = ", ".join("?" for _ in f.value) or "NULL"
            clauses.append(f"{column} IN ({marks})")
            args += list(f.value)
        elif f.op == "like":
            clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            args.append(f.value)
        else:
            clauses.append(f"{column} {f.op} ?")
            args.append(f.value)
    return " AND ".join(clauses), args


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        attempts=row["attempts"],
        delivered=bool(row["delivered"]),
        last_status=row["last_status"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"],
    )
