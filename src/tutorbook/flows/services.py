"""The long-lived collaborators a use case needs, built once per process, and the one way a
use case runs in a transaction.

A use case is a sync function `fn(session, *, ...)` doing one transaction's work. It runs in
`Database.session_scope()` (commit on success, roll back on error): from async code through
`await services.tx(fn, ...)` (on a worker thread, so the event loop never waits on the
database), from sync code (jobs, CLI, follow-ups) through `services.tx_sync(fn, ...)`. A sync
route gets the same scope as its `DbSession` dependency (`tutorbook.api.deps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from pwdlib import PasswordHash
from sqlalchemy.orm import Session

from tutorbook import meetings
from tutorbook.accounts.security import password_hasher
from tutorbook.accounts.throttle import LoginThrottle
from tutorbook.bookings.availability import WeekCache
from tutorbook.config import Settings
from tutorbook.db import Database
from tutorbook.meetings.base import MeetingProvider
from tutorbook.metrics import Metrics
from tutorbook.payments.gateway import StripeGateway
from tutorbook.payments.port import PaymentGateway
from tutorbook.teachers.listing import ListCache
from tutorbook.teachers.policy import Terms

P = ParamSpec("P")
T = TypeVar("T")


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
        """Run `fn(session, **kwargs)` in one transaction: on PostgreSQL on the event loop through
        the asyncio engine (`AsyncSession.run_sync`: the same sync ORM code, on greenlets, with
        no thread hop); on SQLite (or with TUTORBOOK_DB_ASYNC off) on a worker thread."""
        if not self.db.is_async:
            return await in_thread(self.tx_sync, fn, *args, **kwargs)
        async with self.db.async_scope() as session:
            return await session.run_sync(fn, *args, **kwargs)

    async def statement(self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(session, **kwargs)`, a use case that sends exactly one statement (atomic on its
        own): on PostgreSQL without BEGIN and COMMIT around it; otherwise as `tx`."""
        return await self._autocommit(fn, *args, **kwargs)

    async def read(self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(session, **kwargs)`, a use case that only reads: on PostgreSQL in autocommit,
        without BEGIN and COMMIT. Each statement then sees the data committed when it starts,
        which is what READ COMMITTED (PostgreSQL's default, ours) gives every statement of a
        transaction too; so reads lose nothing and save two round trips. Otherwise as `tx`."""
        return await self._autocommit(fn, *args, **kwargs)

    async def _autocommit(self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if not self.db.is_async:
            return await in_thread(self.tx_sync, fn, *args, **kwargs)
        async with self.db.async_statement_scope() as session:
            return await session.run_sync(fn, *args, **kwargs)

    async def tx_in_thread(self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`tx` on a worker thread whatever the database: for a use case that spends CPU outside
        the database (hashing a password: tens of milliseconds), which on the event loop would
        hold up every other request meanwhile."""
        return await in_thread(self.tx_sync, fn, *args, **kwargs)

    def tx_sync(self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(session, **kwargs)` in one transaction."""
        with self.db.session_scope() as session:
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
