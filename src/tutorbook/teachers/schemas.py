"""Teacher profile, availability and free-slot shapes."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tutorbook import currencies
from tutorbook.accounts.schemas import Name, Zone, check_zone
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.schemas import CamelModel, InputModel, UtcDatetime
from tutorbook.validation import Instant, Line, crlf_to_lf, multi_line, single_line

MAX_RATE = 100_000_00  # 100,000.00 in minor units per hour is already absurd
Bio = Annotated[str, StringConstraints(max_length=2000), BeforeValidator(crlf_to_lf), AfterValidator(multi_line)]
# A subject to search for.
SubjectFilter = Annotated[str, StringConstraints(max_length=100), AfterValidator(single_line)]
# Why a teacher is away (shown only to the teacher).
TimeOffNote = Annotated[str, StringConstraints(max_length=200), AfterValidator(single_line)]


class TeacherOut(CamelModel):
    id: uuid.UUID
    full_name: str
    subjects: list[str]
    hourly_rate: int
    currency: str
    time_zone: str
    bio: str


class ProfileIn(InputModel):
    subjects: list[Line] = Field(min_length=1, max_length=20)
    # Before the rate, which is checked against its minimum charge.
    currency: str = Field(
        min_length=3, max_length=3, description="one of Stripe's currencies Tutorbook supports (tutorbook.currencies)"
    )
    hourly_rate: int = Field(
        ge=0,
        le=MAX_RATE,
        description="minor units per hour; 0: no price yet (not listed); else the shortest session "
        "must cost at least Stripe's minimum charge in the currency",
    )
    time_zone: Zone
    bio: Bio = ""
    full_name: Name | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", v):
            raise ValueError("a three-letter ISO currency code, like usd")
        if currencies.get(v) is None:
            raise ValueError(
                f"not a currency Tutorbook can charge in; one of {', '.join(sorted(currencies.SUPPORTED))}"
            )
        return v.lower()

    @field_validator("hourly_rate")
    @classmethod
    def _rate(cls, v: int, info: ValidationInfo) -> int:
        currency = currencies.get(info.data.get("currency") or "")
        if v == 0 or currency is None:
            return v  # no price yet; or the currency's own error says what is wrong
        shortest = min(ALLOWED_DURATIONS)
        least = currencies.minimum_rate(currency, minutes=shortest)
        if v < least:
            raise ValueError(
                f"at least {currency.text(least)} an hour: a {shortest}-minute session must cost at least "
                f"Stripe's minimum charge, {currency.text(currency.minimum)}"
            )
        return v

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, v: list[str]) -> list[str]:
        cleaned = [s.strip() for s in v]
        if any(not s or len(s) > 100 for s in cleaned):
            raise ValueError("each subject needs 1 to 100 characters")
        return list(dict.fromkeys(cleaned))

    _zone = field_validator("time_zone")(classmethod(lambda cls, v: check_zone(v)))


class WindowIn(InputModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday, in the teacher's time zone")
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM local")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", description="HH:MM local")

    @model_validator(mode="after")
    def _order(self) -> Self:
        if minutes(self.end) <= minutes(self.start):
            raise ValueError("end must be after start")
        return self


class AvailabilityIn(InputModel):
    windows: list[WindowIn] = Field(max_length=100)


class WindowOut(CamelModel):
    weekday: int
    start: str
    end: str


class SlotOut(CamelModel):
    starts_at: UtcDatetime
    ends_at: UtcDatetime


class MeOut(TeacherOut):
    """Your profile, and what you still lack before parents see you (empty: listed)."""

    listed: bool
    missing: list[str] = Field(description="checklist steps still to do: price, subjects, hours")


class TimeOffIn(InputModel):
    starts_at: Instant
    ends_at: Instant
    note: TimeOffNote = ""

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("endsAt must be after startsAt")
        return self


class AffectedSession(CamelModel):
    """A paid session inside time off: still booked, for the teacher to cancel or move."""

    id: uuid.UUID
    subject: str
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    student_name: str
    parent_name: str
    parent_email: str


class TimeOffOut(CamelModel):
    id: uuid.UUID
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    note: str
    affected_sessions: list[AffectedSession] = Field(default_factory=list)


def minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class PayoutStatusOut(CamelModel):
    connected: bool
    account_id: str | None
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    currently_due: list[str]
    disabled_reason: str | None
    enabled: bool


class OnboardingOut(CamelModel):
    url: str = Field(description="the Stripe-hosted onboarding page; single use, short-lived")


MAX_HOURS = 24 * 366


class PolicyIn(InputModel):
    """A teacher's cancellation and reschedule terms."""

    full_refund_hours: int = Field(
        ge=0, le=MAX_HOURS, description="a parent who cancels at least this early gets a full refund"
    )
    late_refund_percent: int = Field(ge=0, le=100, description="the share refunded to a parent who cancels later")
    reschedule_deadline_hours: int = Field(
        ge=0, le=MAX_HOURS, description="a parent may change the time until this long before the start"
    )
    max_reschedules: int = Field(ge=0, le=20, description="how many times a parent may change one booking's time")


class PolicyOut(CamelModel):
    full_refund_hours: int
    late_refund_percent: int
    reschedule_deadline_hours: int
    max_reschedules: int
    is_default: bool = Field(description="true while the teacher has set no terms of their own (the platform's apply)")
    sentence: str = Field(description="the terms in one sentence, as the checkout and My Bookings state them")
