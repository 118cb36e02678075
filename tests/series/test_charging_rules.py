"""A card series' charging rules at the service level (`series/charging.py`; the fake Stripe, the
clock of each job run set from the weeks' own starts): a week is charged only once the first week
is paid (its card saved), and a lesson that left Pending is not cancelled again for its deadline."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.series import steps
from tests.series.steps import CONFIRMED
from tests.service.world import World, hours_from_now
from tutorbook.clock import utc_now
from tutorbook.notifications.models import Notification
from tutorbook.series import charging


@pytest.fixture
def made(world: World):
    t, p = world.teacher(), world.parent()
    return steps.book(world, p, t, first=hours_from_now(50), weeks=3)


def test_no_week_is_charged_before_the_first_week_is_paid(world: World, made):
    two = made.occurrences[1]
    now = steps.due(two.starts_at, world)
    # The first week's checkout is open, unpaid: no card is saved yet (the customer exists).
    assert world.svc.tx_sync(charging.claim, booking_id=two.booking_id, now=now) == "waiting"
    assert world.fake.called("charge_off_session") == []


def test_a_lesson_paid_before_its_deadline_ran_out_is_not_cancelled_nor_announced_so(world: World, made):
    world.deliver(world.fake.pay(world.fake.session_of(made.occurrences[0].booking_id).id))
    one = made.occurrences[0]
    assert world.view(one.booking_id).status == CONFIRMED
    assert world.svc.tx_sync(charging.cancel_overdue, booking_id=one.booking_id, now=utc_now()) == "skipped"
    assert world.view(one.booking_id).status == CONFIRMED

    def cancel_notices(session) -> list[str]:
        stmt = sa.select(Notification.kind).where(Notification.booking_id == one.booking_id)
        return [k for k in session.scalars(stmt) if k.startswith("cancelled.")]

    assert world.svc.tx_sync(cancel_notices) == []
