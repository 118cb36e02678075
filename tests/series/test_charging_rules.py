"""A card series' charging rules at the service level (`series/charging.py`; the fake Stripe, the
clock of each job run set from the weeks' own starts): a week is charged only once the first week
is paid (its card saved), and a lesson that left Pending is not cancelled again for its deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.series import steps
from tests.series.steps import CANCELLED, CONFIRMED, PENDING
from tests.service.world import World, hours_from_now
from tutorbook.bookings import settling
from tutorbook.bookings.lifecycle import Reason
from tutorbook.clock import utc_now
from tutorbook.errors import Conflict, Forbidden
from tutorbook.flows import series as series_flows
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


def _first_week_paid(world: World, made, *, card: str) -> None:
    """Week 1 paid at its checkout (the card saved), the newest card charging `card`."""
    checkout = world.fake.session_of(made.occurrences[0].booking_id)
    assert world.deliver(world.fake.pay(checkout.id)) == "confirmed"
    assert checkout.customer is not None
    world.fake.save_card(checkout.customer, charge=card)  # type: ignore[arg-type]


def test_a_week_charged_after_it_was_cancelled_is_a_late_payment_confirmed_while_its_time_is_free(world: World, made):
    # The job claimed week 2 and asked Stripe; meanwhile the week was cancelled unpaid; then the
    # charge succeeded. The money is not kept for nothing: the week's time is still free and ahead,
    # so it is confirmed again, as any late payment (settling.confirm_charged).
    _first_week_paid(world, made, card="succeeded")
    two = made.occurrences[1]
    now = steps.due(two.starts_at, world)
    assert isinstance(world.svc.tx_sync(charging.claim, booking_id=two.booking_id, now=now), charging.Charge)
    cancelled = world.svc.tx_sync(
        settling.cancel_if_pending, booking_id=two.booking_id, reason=Reason.PAYMENT_FAILED, actor="test", now=now
    )
    assert cancelled == Reason.PAYMENT_FAILED.value
    assert world.view(two.booking_id).status == CANCELLED

    outcome = world.svc.tx_sync(
        charging.paid, booking_id=two.booking_id, payment_intent="pi_week2", platform=world.svc.terms, now=now
    )
    assert outcome.kind == Reason.LATE_PAYMENT_CONFIRMED
    assert world.view(two.booking_id).status == CONFIRMED
    assert world.refunds(two.booking_id) == []


def test_a_week_charged_after_it_was_cancelled_and_its_time_passed_is_refunded_in_full(world: World, made):
    _first_week_paid(world, made, card="succeeded")
    two = made.occurrences[1]
    now = steps.due(two.starts_at, world)
    world.svc.tx_sync(charging.claim, booking_id=two.booking_id, now=now)
    world.svc.tx_sync(
        settling.cancel_if_pending, booking_id=two.booking_id, reason=Reason.PAYMENT_FAILED, actor="test", now=now
    )
    after_start = two.starts_at + timedelta(minutes=5)
    outcome = world.svc.tx_sync(
        charging.paid, booking_id=two.booking_id, payment_intent="pi_week2", platform=world.svc.terms, now=after_start
    )
    assert outcome.kind == Reason.LATE_PAYMENT_REFUNDED
    assert world.view(two.booking_id).status == CANCELLED
    price = world.view(two.booking_id).price_amount
    assert [amount for amount, _ in world.refunds(two.booking_id)] == [price]


def test_the_link_to_pay_a_declined_week_closes_at_its_deadline_itself(world: World):
    # At the deadline the week is cancelled (charging.failed, the overdue job: deadline <= now),
    # so from that instant on the link no longer takes a payment.
    t, (parent, child) = world.teacher(), world.parent()
    made = steps.book(world, (parent, child), t, first=hours_from_now(50), weeks=2)
    _first_week_paid(world, made, card="declined")
    two = made.occurrences[1]
    assert world.job("series", at=steps.due(two.starts_at, world)).counts() == {"declined": 1}
    deadline = world.svc.tx_sync(charging.deadline_of, booking_id=two.booking_id)
    assert deadline is not None
    before = world.svc.tx_sync(
        charging.payable, parent=parent, booking_id=two.booking_id, now=deadline - timedelta(seconds=1)
    )
    assert before.id == two.booking_id
    for at in (deadline, deadline + timedelta(hours=1)):  # before the overdue job has cancelled it
        with pytest.raises(Conflict, match="The time to pay this lesson has passed"):
            world.svc.tx_sync(charging.payable, parent=parent, booking_id=two.booking_id, now=at)


def test_only_the_series_parent_may_open_a_declined_weeks_pay_link_however_the_ids_sort(world: World):
    t, (owner, child) = world.teacher(), world.parent()
    made = steps.book(world, (owner, child), t, first=hours_from_now(50), weeks=2)
    _first_week_paid(world, made, card="declined")
    two = made.occurrences[1]
    now = steps.due(two.starts_at, world)
    assert world.job("series", at=now).counts() == {"declined": 1}
    # Other parents until one's id sorts before the owner's and one's after (ids are random).
    before = after = None
    for _ in range(64):
        other, _child = world.parent()
        if other.id < owner.id:
            before = before or other
        else:
            after = after or other
        if before and after:
            break
    assert before is not None and after is not None
    for stranger in (before, after):
        with pytest.raises(Forbidden, match="This lesson is not yours"):
            world.svc.tx_sync(charging.payable, parent=stranger, booking_id=two.booking_id, now=now)
    assert world.svc.tx_sync(charging.payable, parent=owner, booking_id=two.booking_id, now=now).id == two.booking_id


def test_an_abandoned_week_is_cancelled_once_and_counted_once(world: World, made):
    # The first checkout was never paid (no card saved): the later weeks are let go. A week
    # already cancelled (a second run, or another worker first) is "skipped", not counted again.
    two = made.occurrences[1]
    assert world.view(two.booking_id).status == PENDING
    now = utc_now()
    assert world.svc.tx_sync(charging.cancel_abandoned, booking_id=two.booking_id, now=now) == "abandoned"
    assert world.view(two.booking_id).status == CANCELLED
    assert world.svc.tx_sync(charging.cancel_abandoned, booking_id=two.booking_id, now=now) == "skipped"


def test_a_week_cancelled_after_the_job_listed_it_is_not_claimed_nor_charged(world: World, made):
    # The job lists the due weeks, then claims each; a week the parent cancelled in between (its
    # charge never tried) is skipped: a cancelled lesson is never charged.
    _first_week_paid(world, made, card="succeeded")
    two = made.occurrences[1]
    now = steps.due(two.starts_at, world)
    assert world.svc.tx_sync(charging.due, now=now, limit=10) == [two.booking_id]
    world.svc.tx_sync(
        settling.cancel_if_pending, booking_id=two.booking_id, reason=Reason.PARENT_CANCELLED, actor="test", now=now
    )
    assert series_flows.charge_week(world.svc, booking_id=two.booking_id, now=now, dry_run=False) == "skipped"
    assert world.fake.called("charge_off_session") == []
    assert world.view(two.booking_id).status == CANCELLED


@pytest.mark.parametrize("past", [timedelta(0), timedelta(hours=1)], ids=["at", "an_hour_past"])
def test_a_charge_failing_at_or_past_its_deadline_cancels_the_week_at_once_telling_nothing_was_refunded(
    world: World, made, past: timedelta
):
    # The link would be of no use from the deadline on (payable refuses it there): the week is
    # cancelled at once, as the overdue job would, and the notice says nothing was refunded
    # (nothing was charged).
    _first_week_paid(world, made, card="declined")
    two = made.occurrences[1]
    deadline = two.starts_at - timedelta(hours=world.settings.series_pay_deadline_hours)
    failed = world.svc.tx_sync(
        charging.failed, booking_id=two.booking_id, failure="declined", settings=world.settings, now=deadline + past
    )
    assert failed == "cancelled_unpaid"
    assert world.view(two.booking_id).status == CANCELLED
    told = [(kind, payload) for kind, payload in steps.notices(world, two.booking_id) if kind.startswith("cancelled.")]
    expected = {"refund": 0, "reason": Reason.PAYMENT_FAILED.value, "by": "job"}
    assert told == [("cancelled.parent", expected), ("cancelled.teacher", expected)]


def test_a_charge_failing_a_second_before_its_deadline_emails_the_link(world: World, made):
    _first_week_paid(world, made, card="declined")
    two = made.occurrences[1]
    deadline = two.starts_at - timedelta(hours=world.settings.series_pay_deadline_hours)
    failed = world.svc.tx_sync(
        charging.failed,
        booking_id=two.booking_id,
        failure="declined",
        settings=world.settings,
        now=deadline - timedelta(seconds=1),
    )
    assert failed == "declined"
    assert world.view(two.booking_id).status == PENDING
    assert [kind for kind, _ in steps.notices(world, two.booking_id)] == ["series_payment_due.parent"]
