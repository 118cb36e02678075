"""Booking shapes: status is always 0-3 with its name beside it."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field, computed_field

from tutorbook.bookings.lifecycle import STATUS_NAMES
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.schemas import CamelModel, InputModel, UtcDatetime
from tutorbook.validation import Instant, line

Subject = line(100, min_length=1)


class BookIn(InputModel):
    teacher_id: uuid.UUID
    student_id: uuid.UUID
    subject: Subject
    starts_at: Instant
    duration_minutes: Literal[ALLOWED_DURATIONS] = Field(description="minutes")


class SessionOut(CamelModel):
    id: uuid.UUID
    parent_id: uuid.UUID
    student_id: uuid.UUID
    teacher_id: uuid.UUID
    teacher_name: str | None = None
    student_name: str | None = None
    subject: str
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    price_amount: int
    currency: str
    status: int = Field(ge=0, le=3)
    stripe_session_id: str | None
    stripe_payment_intent_id: str | None
    checkout_url: str | None
    checkout_expires_at: UtcDatetime | None
    paid_at: UtcDatetime | None
    cancelled_at: UtcDatetime | None
    cancellation_reason: str | None
    refunded_amount: int
    meeting_url: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @computed_field
    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]


class SessionPage(CamelModel):
    items: list[SessionOut]
    page: int
    page_size: int
    total: int


class HistoryOut(CamelModel):
    from_status: int | None
    to_status: int
    reason: str
    actor: str
    created_at: UtcDatetime


def session_out(booking, teacher_name: str | None = None, student_name: str | None = None) -> SessionOut:
    out = SessionOut.model_validate(booking)
    out.teacher_name, out.student_name = teacher_name, student_name
    return out
