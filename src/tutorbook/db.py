"""Engine, declarative Base, the UTC datetime type, and the transaction helpers."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool

from tutorbook import tracing
from tutorbook.clock import as_utc
from tutorbook.errors import ServiceUnavailable
from tutorbook.loops import PerLoop

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
# The async engine does not ping a connection before each use (a round trip per transaction, an
# eighth of a webhook's CPU): a connection found dead fails its one request with 503 and the pool
# drops every connection older than it; connections are renewed after this many seconds anyway.
ASYNC_POOL_RECYCLE_S = 1800


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


@dataclass(frozen=True)
class _AsyncParts:
    """One event loop's asyncio engine and its session factories."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    autocommit: AsyncEngine
    autocommit_sessions: async_sessionmaker[AsyncSession]


Item = TypeVar("Item")
Answer = TypeVar("Answer")


class Coalescer(Generic[Item, Answer]):
    """Many callers' single-row writes sent as one statement, without waiting to fill a batch.

    `await submit(item)` answers what `write(items)` answered for that item. The first item
    starts a write at once; items submitted while a write is in flight wait for the next one,
    which takes them all (at most `max_batch`). So at low load each item is written alone, with
    no added latency, and under load a write carries every item that arrived during the last
    one's round trip. One write at a time per event loop. If a write fails, each of its items'
    callers gets the error (the write is one statement: all of it or none of it happened).
    A caller that stops waiting (a dropped request) does not stop its item's write."""

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Answer]]], *, max_batch: int = 500) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps a task weakly

    async def submit(self, item: Item) -> Answer:
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._drainer is None or self._drainer.done():  # no write in flight: start one now
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                answers = await self._write([item for item, _ in batch])
                if len(answers) != len(batch):
                    raise RuntimeError(f"a write answered {len(answers)} of {len(batch)} items")
            except Exception as exc:  # every caller of this batch sees it
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for (_, answer), value in zip(batch, answers, strict=True):
                if not answer.done():
                    answer.set_result(value)


class Database:
    """One engine and session factory; SQLite writes are serialised through one lock.

    On PostgreSQL there is also an asyncio engine (asyncpg) for the async request paths
    (`async_scope`): the same ORM code runs through `AsyncSession.run_sync` on the event loop's
    thread, switching on greenlets while it waits on the database, instead of hopping to a worker
    thread per transaction (docs/PERFORMANCE.md, "the async database path"). SQLite has no such
    path: its driver is synchronous (aiosqlite runs each connection on a thread of its own) and
    its one-writer lock is a thread lock, so async callers keep the worker thread there.

    Connections: each engine keeps at most `pool_size` open (`max_overflow` more under a burst,
    closed again when returned; 0 by default so a burst waits for a connection rather than
    churning PostgreSQL backends), so one process opens at most 2 x (pool_size + max_overflow).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 0,
        pool_timeout: float = 30,
        use_async: bool = True,
        async_pre_ping: bool = False,
        pgbouncer: bool = False,
        echo: bool = False,
    ):
        self.url = url
        self.pgbouncer = pgbouncer
        self.pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
        self.engine = _make_engine(url, echo=echo, pgbouncer=pgbouncer, **self.pool)
        tracing.engine_made(self.engine)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Many SQLite writers give long tail latencies; one writer at a time keeps them short.
        self._sqlite_lock = WriterLock() if self.is_sqlite else None
        self.async_url = async_url(url, pgbouncer=pgbouncer) if use_async else None
        self._echo = echo
        self._async_pre_ping = async_pre_ping
        # An asyncio engine's connections belong to the event loop that opened them: one engine
        # per loop (the server's; a test's or the CLI's asyncio.run), forgotten once its loop closed.
        # Its connections cannot be closed without their loop; the OS closes the sockets.
        self._async: PerLoop[_AsyncParts] = PerLoop(
            self._new_async_parts, forget=lambda parts: parts.engine.sync_engine.dispose(close=False)
        )
        self._coalescers: PerLoop[dict[str, Coalescer[Any, Any]]] = PerLoop(dict)
        # Requests holding a sync session at once: no more than the sync pool has connections, so
        # none of them waits for a connection while holding a worker thread (issue #33).
        self._sync_slots: PerLoop[asyncio.Semaphore] = PerLoop(lambda: asyncio.Semaphore(pool_size + max_overflow))

    @property
    def is_async(self) -> bool:
        """Whether async callers get the asyncio engine (PostgreSQL with TUTORBOOK_DB_ASYNC on)."""
        return self.async_url is not None

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

    @asynccontextmanager
    async def sync_slot(self) -> AsyncIterator[None]:
        """A place for one request's sync transaction (the `DbSession` of a sync route), waited
        for on the event loop, at most the pool timeout: then 503. Holding one, the request's
        pool checkout does not wait (but for the jobs' and the CLI's own sessions)."""
        slots = self._sync_slots.get()
        try:
            async with asyncio.timeout(self.pool["pool_timeout"]):
                await slots.acquire()
        except TimeoutError:
            raise ServiceUnavailable() from None
        try:
            yield
        finally:
            slots.release()

    def _async_sessions(self, *, autocommit: bool = False) -> async_sessionmaker:
        parts = self._async_parts()
        return parts.autocommit_sessions if autocommit else parts.sessions

    def _async_parts(self) -> _AsyncParts:
        assert self.async_url is not None
        return self._async.get()

    def _new_async_parts(self) -> _AsyncParts:
        assert self.async_url is not None
        url, connect_args = self.async_url
        engine = create_async_engine(
            url,
            connect_args=connect_args,
            pool_pre_ping=self._async_pre_ping,
            pool_recycle=ASYNC_POOL_RECYCLE_S,
            echo=self._echo,
            **self.pool,
        )
        tracing.engine_made(engine.sync_engine)
        # the same pool, without BEGIN / COMMIT: for a use case of one statement
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        return _AsyncParts(
            engine=engine,
            sessions=async_sessionmaker(engine, expire_on_commit=False),
            autocommit=autocommit,
            autocommit_sessions=async_sessionmaker(autocommit, expire_on_commit=False),
        )

    @asynccontextmanager
    async def async_scope(self) -> AsyncIterator[AsyncSession]:
        """One transaction on the asyncio engine (PostgreSQL): commit on success, roll back on error."""
        async with self._async_sessions()() as session:
            async with session.begin():
                yield session

    @asynccontextmanager
    async def async_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection of the asyncio engine in autocommit, for ONE statement with no ORM
        session around it (a `Coalescer`'s write)."""
        if self.pgbouncer:  # see async_statement_scope
            async with self._async_parts().engine.begin() as conn:
                yield conn
            return
        async with self._async_parts().autocommit.connect() as conn:
            yield conn

    def coalescer(
        self, name: str, write: Callable[[list[Item]], Awaitable[list[Answer]]]
    ) -> Coalescer[Item, Answer]:
        """The running event loop's `Coalescer` called `name` (made with `write` the first time):
        one per loop, as its futures and the asyncio engine's connections belong to that loop."""
        per_loop = self._coalescers.get()
        found = per_loop.get(name)
        if found is None:
            found = per_loop[name] = Coalescer(write)
        return found

    @asynccontextmanager
    async def async_statement_scope(self) -> AsyncIterator[AsyncSession]:
        """A session for ONE statement, which is its own transaction (autocommit): the round trips
        of BEGIN and COMMIT saved. Only for use cases that send a single statement.

        Not through a transaction-mode PgBouncer: asyncpg prepares a statement and then runs it
        in two exchanges, which outside a transaction PgBouncer may send to two different server
        connections ("prepared statement does not exist"); there it is a transaction again."""
        if self.pgbouncer:
            async with self.async_scope() as session:
                yield session
            return
        async with self._async_sessions(autocommit=True)() as session:
            yield session

    async def dispose_async(self) -> None:
        """Close the asyncio engine of the running loop (the app's shutdown)."""
        parts = self._async.pop()
        if parts is not None:
            await parts.engine.dispose()

    def dispose(self) -> None:
        self.engine.dispose()


def async_url(url: str, *, pgbouncer: bool = False) -> tuple[str, dict] | None:
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
    connect_args: dict = {}
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


def _make_engine(
    url: str, *, echo: bool, pool_size: int, max_overflow: int = 0, pool_timeout: float = 30, pgbouncer: bool = False
) -> sa.Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo)
    # psycopg prepares a statement on the server after its 5th run on a connection; through a
    # transaction-mode PgBouncer that connection is not the same server's next time: never prepare.
    connect_args = {"prepare_threshold": None} if pgbouncer else {}
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
