"""A weekly series paid with credits (issue #29 item 2, the wallet of issue #28), both databases:
one credit drawn a week and every week Confirmed at once; a series needing more credits than the
family has is refused whole, saying how many are missing; cancelling the rest gives each week's
credit back by its own terms."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.series import steps
from tests.series.steps import CANCELLED, CONFIRMED
from tests.service.world import World, hours_from_now, refused
from tutorbook.clock import utc_now
from tutorbook.credits import ledger
from tutorbook.credits.models import EntryKind
from tutorbook.flows import series as flows

pytestmark = pytest.mark.service


def give_credits(world: World, parent, teacher, lessons: int, *, unit: int = 5000) -> None:
    world.svc.tx_sync(
        ledger.add_lot,
        parent_id=parent[0].id,
        teacher_id=teacher.id,
        duration_minutes=60,
        lessons=lessons,
        unit_amount=unit,
        currency="usd",
        expires_at=utc_now() + timedelta(days=400),
        kind=EntryKind.ADJUST,
        actor="admin:test",
        now=utc_now(),
        amount=0,
    )


def credits_left(world: World, parent, teacher) -> int:
    return world.svc.tx_sync(
        ledger.available, parent_id=parent[0].id, teacher_id=teacher.id, duration_minutes=60, now=utc_now()
    )


def test_a_credit_series_draws_a_credit_a_week_and_confirms_every_week_at_once(world: World):
    t, p = world.teacher(), world.parent()
    give_credits(world, p, t, 5)
    made = steps.book(world, p, t, first=hours_from_now(48), weeks=4, pay_with="credit")
    assert [(o.status, o.payment) for o in made.occurrences] == [(CONFIRMED, "credit")] * 4
    assert made.price_amount == 5000 and made.checkout_url is None
    assert credits_left(world, p, t) == 1
    assert world.fake.sessions == {} and world.fake.called("create_customer") == []
    assert all(world.view(o.booking_id).meeting_url for o in made.occurrences)


def test_a_credit_series_needing_more_credits_than_the_family_has_is_refused_whole(world: World):
    t, p = world.teacher(), world.parent()
    give_credits(world, p, t, 3)
    with refused(409) as caught:
        steps.book(world, p, t, first=hours_from_now(48), weeks=5, pay_with="credit")
    assert caught[0].data == {"needed": 5, "available": 3, "missing": 2}
    assert "2 missing" in caught[0].message
    assert world.every_booking() == [] and credits_left(world, p, t) == 3
    first = hours_from_now(48)
    made = steps.book(
        world,
        p,
        t,
        first=first,
        weeks=5,
        pay_with="credit",
        skip=[(first + timedelta(weeks=1)).date(), (first + timedelta(weeks=3)).date()],
    )
    assert [o.week for o in made.occurrences] == [1, 3, 5] and credits_left(world, p, t) == 0


def test_cancelling_the_rest_of_a_credit_series_gives_each_credit_back_by_its_terms(world: World):
    t, p = world.teacher(), world.parent()
    give_credits(world, p, t, 3)
    made = steps.book(world, p, t, first=hours_from_now(30), weeks=3, pay_with="credit")
    assert credits_left(world, p, t) == 0
    cancelled = world.run(
        flows.cancel_from(world.svc, user=p[0], series_id=made.id, day=made.occurrences[1].starts_at.date())
    )
    assert [o.status for o in cancelled.occurrences] == [CONFIRMED, CANCELLED, CANCELLED]
    assert credits_left(world, p, t) == 2  # both more than a day ahead: their credits come back
    assert world.fake.refunds == []
