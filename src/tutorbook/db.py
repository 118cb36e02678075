"""Engine, declarative Base, the UTC datetime type, and the transaction helpers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool

from tutorbook.clock import as_utc
from tutorbook.errors import ServiceUnavailable

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else as_utc(value)


def new_id() -> uuid.UUID:
    """A random primary key."""
    return uuid.uuid4()


SQLITE_WRITER_WAIT_S = 30  # as the connections' busy_timeout


class WriterLock:
    """One SQLite writer at a time: re-entrant for the thread holding it (a scope opened inside
    another), yet released by whichever thread leaves the scope. FastAPI enters a request's
    session (the DbSession dependency) in one worker thread and leaves it in another; with an
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


class Database:
    """One engine and session factory; SQLite writes are serialised through one lock."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False):
        self.url = url
        self.engine = _make_engine(url, pool_size=pool_size, echo=echo)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Many SQLite writers give long tail latencies; one writer at a time keeps them short.
        self._sqlite_lock = WriterLock() if self.is_sqlite else None

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error."""
        lock = self._sqlite_lock
        if lock is not None and not lock.acquire(SQLITE_WRITER_WAIT_S):
            raise ServiceUnavailable("The database is busy; try again in a moment")
        try:
            with self.sessions() as session:
                with session.begin():
                    yield session
        finally:
            if lock is not None:
                lock.release()

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, *, pool_size: int, echo: bool) -> sa.Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo)
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo)


def _sqlite_engine(url: str, *, echo: bool) -> sa.Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = sa.engine.make_url(url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(url, echo=echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
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
