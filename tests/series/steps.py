"""The steps of the series tests: a series previewed, booked, seen; the job run at a time."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests.service.world import World, hours_from_now
from tutorbook.flows import series as flows
from tutorbook.identity import AuthUser
from tutorbook.notifications.models import Notification
from tutorbook.series.schemas import OccurrenceOut, PreviewOut, SeriesIn, SeriesOut, SeriesPreviewIn

PENDING, CONFIRMED, COMPLETED, CANCELLED = 0, 1, 2, 3


def body(teacher: AuthUser, child: uuid.UUID, *, first: datetime, weeks: int, **more: Any) -> dict[str, Any]:
    return {
        "teacher_id": teacher.id,
        "student_id": child,
        "subject": "Mathematics",
        "first_starts_at": first,
        "duration_minutes": 60,
        "weeks": weeks,
        **more,
    }


def preview(world: World, parent: tuple[AuthUser, uuid.UUID], teacher: AuthUser, **kw: Any) -> PreviewOut:
    who, child = parent
    return world.run(flows.preview(world.svc, parent=who, body=SeriesPreviewIn(**body(teacher, child, **kw))))


def book(
    world: World,
    parent: tuple[AuthUser, uuid.UUID],
    teacher: AuthUser,
    *,
    skip: list[date] | None = None,
    pay_with: str = "card",
    **kw: Any,
) -> SeriesOut:
    who, child = parent
    request = SeriesIn(**body(teacher, child, **kw), pay_with=pay_with, skip=skip or [])
    return world.run(flows.create(world.svc, parent=who, body=request))


def show(world: World, user: AuthUser, series_id: uuid.UUID) -> SeriesOut:
    return world.run(flows.show(world.svc, user=user, series_id=series_id))


def notices(world: World, booking_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    """The notices written for a booking: (kind, payload), oldest first."""
    stmt = (
        sa.select(Notification)
        .where(Notification.booking_id == booking_id)
        .order_by(Notification.created_at, Notification.kind)
    )
    return world.svc.tx_sync(lambda s: [(n.kind, dict(n.payload or {})) for n in s.scalars(stmt)])


def due(start: datetime, world: World) -> datetime:
    """A minute after the charge of the week starting at `start` falls due."""
    return start - timedelta(days=world.settings.series_charge_days_before) + timedelta(minutes=1)


def declined_week_with_pay_link(
    world: World, parent: tuple[AuthUser, uuid.UUID], teacher: AuthUser, *, weeks: int
) -> tuple[dict[int, OccurrenceOut], str]:
    """A card series of `weeks` from 50 hours ahead: week 1 paid (the card saved), week 2's
    off-session charge declined, and the parent opened week 2's emailed pay link. The occurrences
    by week, and that pay link's checkout id."""
    made = book(world, parent, teacher, first=hours_from_now(50), weeks=weeks)
    by_week = {o.week: o for o in made.occurrences}
    checkout = world.fake.session_of(by_week[1].booking_id)
    assert world.deliver(world.fake.pay(checkout.id)) == "confirmed"
    assert checkout.customer is not None
    world.fake.save_card(checkout.customer, charge="declined")
    assert world.job("series", at=due(by_week[2].starts_at, world)).counts() == {"declined": 1}
    link = world.run(flows.pay_lesson(world.svc, parent=parent[0], booking_id=by_week[2].booking_id))
    assert link.stripe_session_id is not None
    return by_week, link.stripe_session_id
