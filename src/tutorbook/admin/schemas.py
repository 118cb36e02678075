"""Admin responses (camelCase in JSON)."""

from __future__ import annotations

import uuid

from tutorbook.bookings.lifecycle import STATUS_NAMES
from tutorbook.bookings.models import Booking
from tutorbook.bookings.schemas import SessionOut, SessionStatus, StatusName
from tutorbook.jobs.result import JobResult
from tutorbook.schemas import CamelModel, UtcDatetime


class OrphanedSession(CamelModel):
    id: uuid.UUID
    student_id: uuid.UUID
    teacher_id: uuid.UUID
    status: SessionStatus
    status_name: StatusName
    stripe_session_id: str | None
    created_at: UtcDatetime
    paid_at: UtcDatetime | None
    checkout_expires_at: UtcDatetime | None


def orphaned_out(booking: Booking) -> OrphanedSession:
    return OrphanedSession(
        id=booking.id,
        student_id=booking.student_id,
        teacher_id=booking.teacher_id,
        status=booking.status,
        status_name=STATUS_NAMES[booking.status],
        stripe_session_id=booking.stripe_session_id,
        created_at=booking.created_at,
        paid_at=booking.paid_at,
        checkout_expires_at=booking.checkout_expires_at,
    )


class OrphanedReport(CamelModel):
    threshold_minutes: int
    count: int
    items: list[OrphanedSession]


class InvalidStatus(CamelModel):
    id: uuid.UUID
    status: int | None
    count: int


class InvalidStatusReport(CamelModel):
    count: int
    items: list[InvalidStatus]


class JobItem(CamelModel):
    booking_id: uuid.UUID | None
    outcome: str
    kind: str | None = None
    checkout_id: str | None = None
    refund_id: uuid.UUID | None = None


class JobRun(CamelModel):
    """One job run: what it did to each booking; for reconcile, `mismatches` found and how many
    of them are `unsettled` (left for a person)."""

    job: str
    dry_run: bool
    counts: dict[str, int]
    mismatches: int
    unsettled: int
    items: list[JobItem]


def job_run_out(result: JobResult) -> JobRun:
    return JobRun.model_validate(result.to_dict())


class AdminBooking(SessionOut):
    parent_email: str


class BookingPage(CamelModel):
    """One keyset page: pass `nextCursor` back as `after` for the next one (null: the last page)."""

    items: list[AdminBooking]
    next_cursor: str | None
