"""Meeting links on bookings: make one for a Confirmed booking, retry, fall back, delete.

The database side (the booking's `meeting_links` row, issue #27): which bookings need a link, what
to ask, what was answered. The provider
is called between two transactions (`tutorbook.flows.followups`), never inside one. A
booking's status is never changed here: a paid booking stays Confirmed whatever the provider
does.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.accounts.models import User
from tutorbook.bookings import link_records
from tutorbook.bookings import repository as bookings
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.lists import AnySelect
from tutorbook.bookings.models import Booking as PS
from tutorbook.bookings.models import MeetingLink as Link
from tutorbook.db.columns import read_columns
from tutorbook.errors import BadRequest, NotFound
from tutorbook.meetings import policy
from tutorbook.meetings.base import MeetingLink, MeetingRequest
from tutorbook.teachers.models import TeacherProfile

log = logging.getLogger("tutorbook.meetings")
STOPPED = "stopped:"


def needs_link() -> sa.ColumnElement[bool]:
    """Confirmed, no link, and not stopped by a permanent error (over `with_link`'s outer join:
    a booking without a meeting_links row has had no attempt yet)."""
    return sa.and_(
        PS.status == Status.CONFIRMED,
        Link.url.is_(None),
        sa.or_(Link.error.is_(None), sa.not_(Link.error.startswith(STOPPED))),
    )


def with_link(stmt: AnySelect) -> AnySelect:
    """`stmt` over bookings, with each booking's link row (if any) to filter on."""
    return stmt.outerjoin(Link, Link.booking_id == PS.id)


def due_ids(session: Session, *, now: datetime, limit: int = 100) -> list[uuid.UUID]:
    """Bookings whose link is missing and whose next attempt is due."""
    stmt = (
        with_link(sa.select(PS.id))
        .where(needs_link(), sa.or_(Link.next_attempt_at.is_(None), Link.next_attempt_at <= now))
        .order_by(PS.starts_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


MOVE_FAILED = "move_failed:"


def moves_due(session: Session, *, now: datetime, limit: int = 100) -> list[uuid.UUID]:
    """Confirmed bookings still ahead whose meeting could not be moved to their new time (the
    provider failed when they were rescheduled): the meeting-links job tries again."""
    stmt = (
        sa.select(PS.id)
        .join(Link, Link.booking_id == PS.id)
        .where(
            PS.status == Status.CONFIRMED,
            Link.url.is_not(None),
            Link.error.startswith(MOVE_FAILED),
            PS.starts_at > now,
        )
        .order_by(PS.starts_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


_TEACHER = sa.orm.aliased(User, name="teacher")
_PARENT = sa.orm.aliased(User, name="parent")
# A booking with what its meeting request needs, in one query (not three gets after it).
_WITH_PARTIES = (
    sa.select(PS, _TEACHER.email, _TEACHER.full_name, _PARENT.email, TeacherProfile.time_zone)
    .join(_TEACHER, _TEACHER.id == PS.teacher_id)
    .outerjoin(_PARENT, _PARENT.id == PS.parent_id)
    .outerjoin(TeacherProfile, TeacherProfile.user_id == PS.teacher_id)
)


# Built once, like _WITH_PARTIES: a booking's link request when it still needs one, and its
# link's attempts so far, as plain columns: the booking is not loaded as an entity (with its
# records' three joined loads, that cost the webhook more than the rest of its row).
_TO_MAKE = with_link(
    sa.select(PS.id, PS.subject, PS.starts_at, PS.ends_at)
    .add_columns(_TEACHER.email, _TEACHER.full_name, _PARENT.email, TeacherProfile.time_zone, Link.attempts)
    .join(_TEACHER, _TEACHER.id == PS.teacher_id)
    .outerjoin(_PARENT, _PARENT.id == PS.parent_id)
    .outerjoin(TeacherProfile, TeacherProfile.user_id == PS.teacher_id)
).where(PS.id == sa.bindparam("booking_id", type_=PS.id.type), needs_link())


def request_for(
    booking: PS, teacher_email: str, teacher_name: str, parent_email: str | None, zone: str | None
) -> MeetingRequest:
    """What a provider is asked for this booking's link (its parties known: no read)."""
    return _request_from_columns(
        booking.id, booking.subject, booking.starts_at, booking.ends_at, teacher_email, teacher_name, parent_email, zone
    )


def _request(session: Session, booking: PS) -> MeetingRequest:
    row = session.execute(_WITH_PARTIES.where(PS.id == booking.id)).one()
    return request_for(*row)


def _request_from_columns(
    booking_id: uuid.UUID,
    subject: str,
    starts_at: datetime,
    ends_at: datetime,
    teacher_email: str,
    teacher_name: str,
    parent_email: str | None,
    zone: str | None,
) -> MeetingRequest:
    return MeetingRequest(
        booking_id=str(booking_id),
        teacher_email=teacher_email,
        parent_email=parent_email,
        title=f"Tutorbook: {subject} with {teacher_name}",
        starts_at=starts_at,
        ends_at=ends_at,
        time_zone=zone or "UTC",
    )


def to_make(session: Session, *, booking_id: uuid.UUID) -> tuple[MeetingRequest, int] | None:
    """What asking a provider for this booking's link needs: (request, attempts so far), or None
    when the booking needs no link (gone, not Confirmed, has one, stopped)."""
    row = read_columns(session, _TO_MAKE, {"booking_id": booking_id}).one_or_none()
    if row is None:
        return None
    *parties, attempts = row
    return _request_from_columns(*parties), attempts or 0


def to_move(session: Session, *, booking_id: uuid.UUID) -> tuple[MeetingRequest, MeetingLink] | None:
    """What moving a rescheduled booking's meeting needs: (request at its new time, its link),
    or None when it has no link of a provider's (nothing to move) or is no longer Confirmed."""
    booking = session.get(PS, booking_id)
    kept = None if booking is None else booking.meeting
    if booking is None or booking.status != Status.CONFIRMED or kept is None or not kept.url or not kept.provider:
        return None
    return _request(session, booking), MeetingLink(url=kept.url, provider=kept.provider, external_id=kept.external_id)


def record_move(
    session: Session, *, booking_id: uuid.UUID, starts_at: datetime, link: MeetingLink | None, error: str | None
) -> str:
    """Store a moved meeting's link (if the provider gave another), or why it was not moved, for
    the booking still at `starts_at` (a later move writes its own)."""
    values: dict[str, Any] = {"error": None if link else f"{MOVE_FAILED}{error}"}
    if link is not None:
        values |= {"url": link.url, "external_id": link.external_id}
    still_there = sa.select(PS.id).where(PS.id == booking_id, PS.starts_at == starts_at)
    session.execute(
        sa.update(Link)
        .where(Link.booking_id == booking_id, Link.url.is_not(None), sa.exists(still_there))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = "moved" if link else "move_failed"
    log.info("meeting moved", extra={"booking_id": str(booking_id), "outcome": result, "error": error})
    return result


def record(
    session: Session, *, booking_id: uuid.UUID, outcome: policy.LinkOutcome, booking: PS | None = None
) -> str:
    """Store what the provider answered (a link, or when to retry); returns what happened.
    `booking`: one made in this transaction, which gets its link row without a read back."""
    link_records.write_link(session, booking_id, _fields_for(outcome), without_url=True, booking=booking)
    return _logged(booking_id, outcome)


def row_for(booking_id: uuid.UUID, outcome: policy.LinkOutcome) -> dict[str, Any]:
    """What `record` would store for a booking not written yet (a credit booking's link, sent in
    its one statement: `link_records.known` sets it on the booking after), logged as `record` logs."""
    _logged(booking_id, outcome)
    return _fields_for(outcome)


def _logged(booking_id: uuid.UUID, outcome: policy.LinkOutcome) -> str:
    result = "created" if outcome.link else _plan(outcome).action
    log.info(
        "meeting link",
        extra={
            "booking_id": str(booking_id),
            "outcome": result,
            "provider": outcome.link.provider if outcome.link else None,
        },
    )
    return "fell_back" if outcome.fell_back else result


def _plan(outcome: policy.LinkOutcome) -> policy.FailurePlan:
    """The plan of an attempt that failed (no link, or the fallback's): create_link makes one."""
    if outcome.plan is None:
        raise ValueError("a failed meeting-link attempt without a plan")
    return outcome.plan


def _fields_for(outcome: policy.LinkOutcome) -> dict[str, Any]:
    if outcome.link is not None:
        return {
            "url": outcome.link.url,
            "provider": outcome.link.provider,
            "external_id": outcome.link.external_id,
            "attempts": outcome.attempts,
            "next_attempt_at": None,
            "error": f"fell_back:{_plan(outcome).code}" if outcome.fell_back else None,
        }
    plan = _plan(outcome)
    stopped = plan.action == "stop"
    return {
        "attempts": outcome.attempts,
        "next_attempt_at": None if stopped else plan.retry_at,
        "error": (STOPPED if stopped else "retrying:") + plan.code,
    }


def reset(
    session: Session, *, booking_id: uuid.UUID, actor: str, note: str | None, now: datetime
) -> tuple[str | None, str | None, str | None]:
    """Forget a Confirmed booking's link (and any stop) so a new one is made, recording who did
    it; the old (provider, external id, url), for deleting the old meeting."""
    booking = session.get(PS, booking_id)
    if booking is None:
        raise NotFound("Session not found")
    if booking.status != Status.CONFIRMED:
        raise BadRequest(f"A {Status(booking.status).label} booking has no meeting link to make")
    kept = booking.meeting
    old = (None, None, None) if kept is None else (kept.provider, kept.external_id, kept.url)
    link_records.clear_link(session, booking_id)
    detail = f"old link: {old[2]}" if old[2] else "no link before"
    bookings.record_action(
        session, booking_id, action="regenerate_meeting_link", actor=actor, note=note, detail=detail, at=now
    )
    return old


def failures(session: Session) -> list[PS]:
    """Bookings whose link creation stopped or fell back (for the admin report)."""
    stmt = sa.select(PS).join(Link, Link.booking_id == PS.id).where(Link.error.is_not(None)).order_by(PS.starts_at)
    return list(session.scalars(stmt))
