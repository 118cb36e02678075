"""A series' shapes: the preview (each week free or why not), the request, the series with its
occurrences (status and payment) and the cancellation of the rest."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from tutorbook.bookings.schemas import STATUS_DESCRIPTION, SessionStatus, StatusName, Subject
from tutorbook.config import Duration
from tutorbook.schemas import CamelModel, InputModel, UtcDatetime
from tutorbook.series.weeks import MAX_WEEKS, MIN_WEEKS
from tutorbook.validation import Day, Instant

# Why a week cannot be booked: another booking holds the time, the teacher is away, outside their
# weekly hours, one of their calendars is busy, or more than a year ahead.
NotFree = Literal["busy", "time_off", "outside_hours", "calendar", "too_far"]
PayWith = Literal["card", "credit"]
# How an occurrence is paid: paid (card or checkout), credit, "reserved" (its card charge is due
# on `chargeOn`), "due" (the charge failed: the parent has a link to pay it by `payDeadlineAt`),
# "checkout" (the first week's checkout is open), "unpaid" (cancelled before it was paid),
# "refunded".
PaymentShown = Literal["paid", "credit", "reserved", "due", "checkout", "unpaid", "refunded"]


class SeriesPreviewIn(InputModel):
    teacher_id: uuid.UUID
    student_id: uuid.UUID
    subject: Subject
    first_starts_at: Instant
    duration_minutes: Duration = Field(description="minutes")
    weeks: int = Field(ge=MIN_WEEKS, le=MAX_WEEKS, description="how many weeks, the first included")


class SeriesIn(SeriesPreviewIn):
    pay_with: PayWith = Field(description="card: the first lesson at Checkout, the card saved for the rest")
    skip: list[Day] = Field(
        default_factory=list, max_length=MAX_WEEKS, description="the dates (teacher's zone) of weeks to leave out"
    )


class CancelFromIn(InputModel):
    from_: Day = Field(alias="from", description="this date's occurrence and every later one are cancelled")


class WeekOut(CamelModel):
    week: int = Field(description="1 for the first week")
    date: date
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    free: bool
    reason: NotFree | None = None


class PreviewOut(CamelModel):
    price_amount: int = Field(description="each lesson's price, minor units")
    currency: str
    time_zone: str = Field(description="the teacher's zone: the weeks keep its wall-clock time")
    weeks: list[WeekOut]


class OccurrenceOut(CamelModel):
    week: int
    booking_id: uuid.UUID
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    original_starts_at: UtcDatetime = Field(description="the week's start before any move")
    status: SessionStatus = Field(description=STATUS_DESCRIPTION)
    status_name: StatusName
    payment: PaymentShown
    charge_on: date | None = Field(default=None, description="a reserved lesson: the day its card is charged")
    pay_deadline_at: UtcDatetime | None = None
    checkout_url: str | None = None
    refunded_amount: int = 0
    label: str = Field(description='what the pages show, e.g. "Reserved — charged on 2027-01-05"')


class SeriesOut(CamelModel):
    id: uuid.UUID
    parent_id: uuid.UUID
    student_id: uuid.UUID
    teacher_id: uuid.UUID
    subject: str
    first_starts_at: UtcDatetime
    duration_minutes: int
    weeks: int
    time_zone: str
    pay_with: PayWith
    sequence: int = Field(description="the calendar invite's SEQUENCE: raised by every change of an occurrence")
    price_amount: int
    currency: str
    checkout_url: str | None = Field(default=None, description="the first lesson's checkout, while open")
    occurrences: list[OccurrenceOut]
