"""The long-lived collaborators a use case needs, built once per process, and the three doors
into the database.

A use case is a sync function `fn(session, *, ...)` doing one transaction's work. Routes, pages,
jobs and the CLI run it through one of three doors: `await services.tx(fn, ...)` (a write
transaction, from async code), `await services.read(fn, ...)` (a read, with a `ReadSession` that
refuses to write), `services.tx_sync(fn, ...)` (a write transaction from sync code: jobs, the CLI,
follow-ups). The cheaper paths of the hot writes (one statement, the coalescer) are hints to the
write door (`tutorbook.db.doors`), not doors of their own; the read door's cheaper path for one
Core SELECT with no ORM around it is `services.read_row(select, params)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import Session

from tutorbook import meetings
from tutorbook.accounts.security import password_hasher
from tutorbook.accounts.throttle import LoginThrottle
from tutorbook.bookings.availability import WeekCache
from tutorbook.config import Settings
from tutorbook.db import Database, ReadOnlySessionError, ReadSession
from tutorbook.db.doors import BatchWrite, Hinted, WritePath
from tutorbook.meetings.base import MeetingProvider
from tutorbook.metrics import Metrics
from tutorbook.payments.gateway import StripeGateway
from tutorbook.payments.port import PaymentGateway
from tutorbook.teachers.listing import ListCache
from tutorbook.teachers.policy import Terms

P = ParamSpec("P")
T = TypeVar("T")
AnySelect = sa.Select[*tuple[Any, ...]]
AnyRow = sa.Row[*tuple[Any, ...]]


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` on one of anyio's worker threads (its default limiter, 40 threads,
    as Starlette's run_in_threadpool, which does the same), awaited from the event loop."""
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


@dataclass
class Services:
    settings: Settings
    db: Database
    gateway: PaymentGateway  # StripeGateway; a fake in the service-level tests (tests/service)
    meetings: MeetingProvider
    meetings_fallback: MeetingProvider
    hasher: PasswordHash
    metrics: Metrics
    login_throttle: LoginThrottle
    # Per-process caches of the common reads, each checked against a version counter in the
    # database on every read (tutorbook.versions): the teacher list, teachers' free weeks.
    teacher_list: ListCache = field(default_factory=ListCache)
    availability: WeekCache = field(default_factory=WeekCache)

    @property
    def terms(self) -> Terms:
        """The platform's cancellation and reschedule terms (for teachers who set none)."""
        return Terms.platform(self.settings)

    async def tx(self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """The write door: run `fn(session, *args, **kwargs)` in one transaction (commit on success,
        roll back on error). On PostgreSQL on the event loop through the asyncio engine
        (`AsyncSession.run_sync`: the same sync ORM code on greenlets, no thread hop); on SQLite (or
        with TUTORBOOK_DB_ASYNC off) on a worker thread, behind `Database.sync_slot`. A `Hinted`
        use case (`tutorbook.db.doors`) may take a cheaper path: one statement without BEGIN and
        COMMIT, coalesced with its neighbours, or a worker thread for CPU-bound work."""
        hint = fn if isinstance(fn, Hinted) else None
        if not self.db.is_async or (hint is not None and hint.path is WritePath.THREAD):
            return await self._on_thread(self.tx_sync, fn, *args, **kwargs)
        if hint is None:
            async with self.db.async_scope() as session:
                return await session.run_sync(fn, *args, **kwargs)
        if hint.batch is not None and not args:
            coalescer = self.db.coalescer(hint.name, partial(self._write_batch, hint.batch))
            answer: T = await coalescer.submit(kwargs)
            return answer
        async with self.db.async_statement_scope() as session:
            return await session.run_sync(fn, *args, **kwargs)

    async def read(self, fn: Callable[Concatenate[ReadSession, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """The read door: run `fn(session, *args, **kwargs)` with a `ReadSession`, which refuses to
        write. On PostgreSQL in autocommit, without BEGIN and COMMIT: each statement sees the
        data committed when it starts, which is what READ COMMITTED (PostgreSQL's default, ours)
        gives every statement of a transaction too; so reads lose nothing and save two round
        trips. A use case that needs one snapshot across its statements uses `tx`. Otherwise on
        a worker thread, as `tx`."""
        if not self.db.is_async:
            return await self._on_thread(self._read_sync, fn, *args, **kwargs)
        async with self.db.async_read_scope() as session:
            return await session.run_sync(_as_read, fn, *args, **kwargs)

    async def read_row(self, select: AnySelect, params: dict[str, Any]) -> AnyRow | None:
        """The read door's path for ONE Core SELECT of at most one row (the caller's row, read on
        every authenticated request): on PostgreSQL on an autocommit connection of the asyncio
        engine, no ORM session made around it (issue #33: 570 Python calls against 670 through
        `read`); otherwise through `read`. The row, or None."""
        if not self.db.is_async:
            return await self.read(_one_row, select, params)
        async with self.db.async_connection() as conn:
            row: AnyRow | None = (await conn.execute(select, params)).one_or_none()
            return row

    def tx_sync(self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """The sync door (jobs, the CLI, follow-ups): run `fn(session, *args, **kwargs)` in one
        transaction on the calling thread."""
        with self.db.session_scope() as session:
            return fn(session, *args, **kwargs)

    def _read_sync(self, fn: Callable[Concatenate[ReadSession, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`read` for the read door's thread path: `fn` in one transaction with a `ReadSession`."""
        with self.db.session_scope(read_only=True) as session:
            return _as_read(session, fn, *args, **kwargs)

    async def _on_thread(self, door: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        # Behind a place among the sync pool's connections, waited for on the event loop (503 after
        # the pool timeout), so no request holds a worker thread waiting for a connection (issue #33).
        async with self.db.sync_slot():
            return await in_thread(door, *args, **kwargs)

    async def _write_batch(self, batch: BatchWrite[T], calls: list[dict[str, Any]]) -> list[T]:
        async with self.db.async_connection() as conn:
            return await batch(conn, calls)


def _one_row(session: ReadSession, select: AnySelect, params: dict[str, Any]) -> AnyRow | None:
    return session.execute(select, params).one_or_none()


def _as_read(session: Session, fn: Callable[Concatenate[ReadSession, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    if not isinstance(session, ReadSession):
        raise ReadOnlySessionError("the read door's session is a ReadSession")
    return fn(session, *args, **kwargs)


def open_database(settings: Settings) -> Database:
    """The database the settings name, with their pool sizes and async path."""
    return Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        use_async=settings.db_async,
        async_pre_ping=settings.db_async_pre_ping,
        pgbouncer=settings.db_pgbouncer,
    )


def build_services(settings: Settings, db: Database, *, metrics: Metrics | None = None) -> Services:
    """Gateway, meeting providers, password hasher and login throttle from the configuration."""
    primary = meetings.provider_from_config(
        provider=settings.meeting_provider,
        jitsi_base_url=settings.jitsi_base_url,
        google=settings.google_config() if settings.meeting_provider == "google" else None,
    )
    fallback = meetings.provider_from_config(provider="jitsi", jitsi_base_url=settings.jitsi_base_url)
    return Services(
        settings=settings,
        db=db,
        gateway=StripeGateway(settings),
        meetings=primary,
        meetings_fallback=fallback,
        hasher=password_hasher(settings),
        metrics=metrics or Metrics(),
        login_throttle=LoginThrottle(
            max_failures=settings.login_max_failures,
            window_seconds=settings.login_window_seconds,
            secret=settings.jwt_secret,
        ),
    )


__all__ = ["Services", "build_services", "open_database"]
