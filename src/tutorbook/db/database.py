"""The database: its engines and the scopes a use case runs in (a write transaction, a read, one
statement), and the read-only session a read gets.

Nothing above the kernel opens these scopes itself: routes, pages, jobs and the CLI go through the
three doors of `tutorbook.flows.services.Services` (docs/architecture.md, "One transaction idiom")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker

from tutorbook import tracing
from tutorbook.db.coalescer import Coalescer
from tutorbook.db.engines import ASYNC_POOL_RECYCLE_S, SQLITE_WRITER_WAIT_S, WriterLock, async_url, make_engine
from tutorbook.errors import ServiceUnavailable
from tutorbook.loops import PerLoop

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class ReadOnlySessionError(RuntimeError):
    """A use case run through the read door tried to write: a bug (run it through `tx`)."""


class ReadSession(Session):
    """The session of the read door (as polar's `AsyncReadSession`): it refuses to flush a change,
    to run an INSERT, UPDATE or DELETE, and to commit, so a read route cannot write."""

    def commit(self) -> None:
        raise ReadOnlySessionError("a read session does not commit")


@event.listens_for(ReadSession, "before_flush")
def _refuse_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    raise ReadOnlySessionError("a read session does not write (a change was about to be flushed)")


@event.listens_for(ReadSession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("a read session does not write (an INSERT, UPDATE or DELETE)")


class Places:
    """`async with places:` holds one of `size` places, waited for first come, first served (an
    asyncio.Semaphore: a released place goes to its first waiter, a newcomer queues behind the
    waiters), at most `wait_s`: then 503 `ServiceUnavailable` naming `cause`. One event loop's.
    A class, not a generator: it is entered for every database use of every request."""

    __slots__ = ("_sem", "_wait_s", "_cause")

    def __init__(self, size: int, *, wait_s: float, cause: str) -> None:
        self._sem, self._wait_s, self._cause = asyncio.Semaphore(size), wait_s, cause

    async def __aenter__(self) -> None:
        sem = self._sem
        if not sem.locked():
            await sem.acquire()  # free, nobody waiting: returns at once, no timer made
            return
        try:
            async with asyncio.timeout(self._wait_s):
                await sem.acquire()
        except TimeoutError:
            raise ServiceUnavailable(cause=self._cause) from None

    async def __aexit__(self, *_exc: object) -> None:
        self._sem.release()


@dataclass(frozen=True)
class _AsyncParts:
    """One event loop's asyncio engine and its session factories."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    autocommit: AsyncEngine
    autocommit_sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]  # autocommit, each a ReadSession
    read_tx_sessions: async_sessionmaker[AsyncSession]  # the same in a transaction (PgBouncer)


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
    ) -> None:
        self.url = url
        self.pgbouncer = pgbouncer
        self.pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
        self.engine = make_engine(url, echo=echo, pgbouncer=pgbouncer, **self.pool)
        tracing.engine_made(self.engine)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.engine, expire_on_commit=False, class_=ReadSession)
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
        places, wait_s = pool_size + max_overflow, pool_timeout
        self._sync_slots: PerLoop[Places] = PerLoop(lambda: Places(places, wait_s=wait_s, cause="db_sync_slot"))
        # The same for the asyncio engine, for a fair queue: its pool's own wait (an asyncio.Queue)
        # is not first come, first served. A connection returned wakes the longest waiter, but a
        # request arriving before that waiter runs takes it (`get_nowait`), and the robbed waiter
        # queues again at the back; under a crowd one request could wait past the pool timeout
        # (a 503) while the average wait was well under a second (issue #33, docs/PERFORMANCE.md
        # section 9, "Fifth round").
        self._async_slots: PerLoop[Places] = PerLoop(lambda: Places(places, wait_s=wait_s, cause="db_async_slot"))

    @property
    def is_async(self) -> bool:
        """Whether async callers get the asyncio engine (PostgreSQL with TUTORBOOK_DB_ASYNC on)."""
        return self.async_url is not None

    @contextmanager
    def session_scope(self, *, read_only: bool = False) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error (a `ReadSession` if `read_only`)."""
        lock = self._sqlite_lock
        if lock is not None and not lock.acquire(SQLITE_WRITER_WAIT_S):
            raise ServiceUnavailable("The database is busy; try again in a moment", cause="sqlite_writer")
        try:
            with (self.read_sessions if read_only else self.sessions)() as session:
                with session.begin():
                    yield session
        finally:
            if lock is not None:
                lock.release()

    def sync_slot(self) -> Places:
        """A place for one request's transaction on a worker thread (the write door's thread path),
        waited for on the event loop, at most the pool timeout: then 503. Holding one, the request's
        pool checkout does not wait (but for the jobs' and the CLI's own sessions)."""
        return self._sync_slots.get()

    def _async_slot(self) -> Places:
        """A place for one of the asyncio engine's connections, first come first served, waited for
        at most the pool timeout: then 503. Held until the connection is back in the pool, so a
        holder's checkout finds one at once."""
        return self._async_slots.get()

    def _async_sessions(self, *, autocommit: bool = False) -> async_sessionmaker[AsyncSession]:
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
            read_sessions=async_sessionmaker(autocommit, expire_on_commit=False, sync_session_class=ReadSession),
            read_tx_sessions=async_sessionmaker(engine, expire_on_commit=False, sync_session_class=ReadSession),
        )

    @asynccontextmanager
    async def async_scope(self) -> AsyncIterator[AsyncSession]:
        """One transaction on the asyncio engine (PostgreSQL): commit on success, roll back on error."""
        async with self._async_slot(), self._async_sessions()() as session, session.begin():
            yield session

    @asynccontextmanager
    async def async_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection of the asyncio engine in autocommit, for ONE statement with no ORM
        session around it (a `Coalescer`'s write)."""
        if self.pgbouncer:  # see async_statement_scope
            async with self._async_slot(), self._async_parts().engine.begin() as conn:
                yield conn
            return
        async with self._async_slot(), self._async_parts().autocommit.connect() as conn:
            yield conn

    def coalescer(self, name: str, write: Callable[[list[Item]], Awaitable[list[Answer]]]) -> Coalescer[Item, Answer]:
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
        async with self._async_slot(), self._async_sessions(autocommit=True)() as session:
            yield session

    @asynccontextmanager
    async def async_read_scope(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (its sync session a `ReadSession`) in autocommit: each statement
        on its own, no BEGIN or COMMIT (a transaction through PgBouncer, as `async_statement_scope`)."""
        parts = self._async_parts()
        if self.pgbouncer:
            async with self._async_slot(), parts.read_tx_sessions() as session, session.begin():
                yield session
            return
        async with self._async_slot(), parts.read_sessions() as session:
            yield session

    async def dispose_async(self) -> None:
        """Close the asyncio engine of the running loop (the app's shutdown)."""
        parts = self._async.pop()
        if parts is not None:
            await parts.engine.dispose()

    def dispose(self) -> None:
        """Close the sync engine's connections."""
        self.engine.dispose()
