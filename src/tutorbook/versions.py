"""Version counters in the database, one per cached thing, so that every process drops a cached
answer the moment what it was made from changes (issue #33).

- `schedule:<teacher id>`: what a teacher's free times are made of (their bookings, weekly hours,
  time off, time zone, and any busy times another feature adds, e.g. a synced calendar). Whatever
  changes one of them calls `schedule_changed` in the same transaction; the availability cache
  (`tutorbook.bookings.availability`) keys each teacher's week by it.
- `teachers`: what the public teacher list shows (names, subjects, prices, listing, hours); its
  ETag and cache are keyed by it (`teachers_changed`).

A counter moves in the writer's transaction, so a reader that sees the new data sees the new
version, and one that read the old version first computes from data at least as new (a cached
answer is never newer-labelled than its data). A missing row is version 0.
"""

from __future__ import annotations

import secrets
import uuid
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from tutorbook.db import Base

TEACHERS = "teachers"


class CacheVersion(Base):
    __tablename__ = "cache_versions"

    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    version: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


def schedule_key(teacher_id: uuid.UUID) -> str:
    return f"schedule:{teacher_id}"


_TABLE = cast(sa.Table, CacheVersion.__table__)
_READ = sa.select(_TABLE.c.key, _TABLE.c.version).where(_TABLE.c.key.in_(sa.bindparam("keys", expanding=True)))
# One key (every request of the list and of availability): no expanding IN, whose SQL is
# rendered again on every execution.
_READ_ONE = sa.select(_TABLE.c.version).where(_TABLE.c.key == sa.bindparam("key"))


def bump(session: Session, keys: set[str] | list[str]) -> None:
    """Move each counter on by one, in the caller's transaction. In key order, so two transactions
    bumping the same keys never deadlock on each other. A missing row starts at a random value,
    not 1: after its row was deleted (a database emptied or restored) a counter cannot come back
    to a value some process still holds a cached answer under."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for key in sorted(set(keys)):
        stmt = insert(_TABLE).values(key=key, version=secrets.randbits(62))
        next_version = {"version": _TABLE.c.version + 1}
        session.execute(stmt.on_conflict_do_update(index_elements=[_TABLE.c.key], set_=next_version))


def bump_rows(keys: set[str] | list[str]) -> list[dict[str, object]]:
    """The rows `bump` upserts (each moved on by one, or started at a random value), for a caller
    that sends them in a statement of its own (INSERT ... ON CONFLICT (key) DO UPDATE SET version
    = version + 1: a credit booking's one statement)."""
    return [{"key": key, "version": secrets.randbits(62)} for key in sorted(set(keys))]


def schedule_changed(session: Session, *, teacher_ids: set[uuid.UUID] | list[uuid.UUID]) -> None:
    """The one call after anything that changes these teachers' free times (a booking made,
    cancelled, moved, completed; hours, time off, time zone; busy times from elsewhere)."""
    bump(session, [schedule_key(t) for t in teacher_ids])


def teachers_changed(session: Session) -> None:
    """The one call after anything the public teacher list shows changed."""
    bump(session, [TEACHERS])


def read(session: Session, keys: list[str]) -> dict[str, int]:
    """The counters of `keys` (0 for a key never bumped): one indexed read."""
    if len(keys) == 1:
        return {keys[0]: session.execute(_READ_ONE, {"key": keys[0]}).scalar() or 0}
    found = {row.key: row.version for row in session.execute(_READ, {"keys": keys})}
    return {key: found.get(key, 0) for key in keys}
