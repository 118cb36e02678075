"""The engines: SQLite's (one writer at a time, WAL, BEGIN IMMEDIATE) and PostgreSQL's (psycopg for
sync code, asyncpg for the async path), and how a lost race shows."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

SQLITE_WRITER_WAIT_S = 30  # as the connections' busy_timeout
# The async engine does not ping a connection before each use (a round trip per transaction, an
# eighth of a webhook's CPU): a connection found dead fails its one request with 503 and the pool
# drops every connection older than it; connections are renewed after this many seconds anyway.
ASYNC_POOL_RECYCLE_S = 1800


class WriterLock:
    """One SQLite writer at a time: re-entrant for the thread holding it (a scope opened inside
    another), yet released by whichever thread leaves the scope. FastAPI enters a request's
    session in one worker thread and leaves it in another; with an
    RLock that release failed, the lock stayed held and every later write waited for ever (found
    by the model-based test's heavy run)."""

    def __init__(self) -> None:
        self._free = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, timeout: float) -> bool:
        me = threading.get_ident()
        with self._free:
            if self._depth and self._owner == me:
                self._depth += 1
                return True
            if not self._free.wait_for(lambda: self._depth == 0, timeout):
                return False
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._free:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._free.notify()


def async_url(url: str, *, pgbouncer: bool = False) -> tuple[str, dict[str, Any]] | None:
    """The asyncpg URL and connect arguments for a PostgreSQL URL (None for SQLite): the same
    server, database and credentials; libpq's `sslmode` becomes asyncpg's `ssl` (same values),
    `application_name` a server setting.

    `pgbouncer` (a transaction-mode pooler in between, TUTORBOOK_DB_PGBOUNCER): each transaction
    may run on another server connection, so a prepared statement cached on one is unknown on
    the next. As SQLAlchemy documents for PgBouncer: no statement cache (SQLAlchemy's nor
    asyncpg's), and every prepared statement a unique name, so two clients' names never collide
    on a server connection."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    query = dict(parsed.query)
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    connect_args: dict[str, Any] = {}
    if "application_name" in query:
        connect_args["server_settings"] = {"application_name": str(query.pop("application_name"))}
    if pgbouncer:
        query["prepared_statement_cache_size"] = "0"
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    asyncpg_url = parsed.set(drivername="postgresql+asyncpg", query=query)
    return asyncpg_url.render_as_string(hide_password=False), connect_args


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


# libpq's TCP settings for every psycopg connection (the sync engine, the mail worker's LISTEN).
# Without them a connection whose peer went silent (a network partition, a host that vanished: no
# RST) blocks its caller until the kernel gives up, a quarter of an hour later, and a worker
# thread waiting on it never comes back (tests/cluster/test_hosts.py, drill 3). With them, data
# unacknowledged for 15 s, or an idle connection unanswered for 10 + 3 x 5 s, fails the call (the
# job logs it and runs again next interval), and a connect gives up after 10 s. A slow query is
# not cut: the server's kernel acknowledges the bytes at once, however long the query runs.
TCP_SETTINGS: dict[str, int] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # milliseconds
}


def make_engine(
    url: str, *, echo: bool, pool_size: int, max_overflow: int = 0, pool_timeout: float = 30, pgbouncer: bool = False
) -> sa.Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo)
    # psycopg prepares a statement on the server after its 5th run on a connection; through a
    # transaction-mode PgBouncer that connection is not the same server's next time: never prepare.
    connect_args: dict[str, Any] = {**TCP_SETTINGS, "prepare_threshold": None} if pgbouncer else {**TCP_SETTINGS}
    return sa.create_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        echo=echo,
    )


def _sqlite_engine(url: str, *, echo: bool) -> sa.Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = sa.engine.make_url(url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(url, echo=echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: object) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Take the write lock at BEGIN so check-then-insert is atomic on SQLite.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# PostgreSQL's deadlock_detected and serialization_failure: two writers raced for the same rows
# (e.g. two moves to one slot checked by the exclusion constraint without the teacher's lock);
# the database rolled one back, so that one lost the race.
LOST_RACE_SQLSTATES = frozenset({"40P01", "40001"})


def lost_race(exc: sa.exc.DBAPIError) -> bool:
    """Whether the database refused this transaction because a concurrent one won: an exclusion
    or unique violation, a deadlock or a serialization failure."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in LOST_RACE_SQLSTATES
