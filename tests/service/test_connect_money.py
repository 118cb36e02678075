"""The platform's fee and the teacher's share as Stripe moved them (issue 32, RELIABILITY §11):
a payment kept on the platform counts as no platform fee, refunded or not; a destination charge
Stripe made without the application fee counts no fee and is reported by reconcile; the price,
the fee asked of Stripe and the fee recorded never drift apart, whatever the rounding."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.service.world import World, hours_from_now, later
from tutorbook.admin import console
from tutorbook.bookings import earnings, policy
from tutorbook.bookings.reserving import price_for
from tutorbook.clock import utc_now
from tutorbook.flows import booking as flows

pytestmark = pytest.mark.service


def report(world: World) -> dict[str, earnings.TeacherPayouts]:
    """The platform's payouts report over every session booked here, by teacher name."""
    rows = world.svc.tx_sync(
        earnings.platform_report, start=utc_now() - timedelta(days=1), end=utc_now() + timedelta(days=30)
    )
    return {r.teacher_name: r for r in rows}


def test_payments_kept_on_the_platform_count_no_platform_fee_whatever_was_refunded(world: World):
    # A teacher without payouts: the payment stays on the platform; it is never a "platform fee".
    t = world.teacher(rate=6000, late_refund_percent=50)
    kept = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    p = world.parent()
    half = world.book_and_pay(p, t, starts_at=hours_from_now(5))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=half.id))  # late: 50 % back
    p = world.parent()
    full = world.book_and_pay(p, t, starts_at=hours_from_now(72))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=full.id))  # early: all back
    lines = {b.id: world.earning(t, b.id) for b in (kept, half, full)}
    assert [(x.gross, x.refunded, x.fee, x.net, x.paid_out, x.settled) for x in lines.values()] == [
        (6000, 0, 6000, 0, False, True),
        (6000, 3000, 3000, 0, False, True),
        (6000, 6000, 0, 0, False, True),
    ]
    row = report(world)[t.full_name]
    assert (row.sessions, row.gross, row.refunded) == (3, 18000, 9000)
    assert (row.platform_fees, row.kept_on_platform, row.transferred, row.unsettled) == (0, 9000, 0, 0)


def test_the_report_counts_a_destination_charges_fee_less_its_refunds_and_a_kept_payment_apart(world: World):
    payable, plain = world.payable_teacher(rate=6000, late_refund_percent=50), world.teacher(rate=6000)
    fee = policy.platform_fee(amount=6000, percent=world.settings.platform_fee_percent)
    p = world.parent()
    paid = world.book_and_pay(p, payable, starts_at=hours_from_now(5))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))  # half back, half the fee back
    world.book_and_pay(world.parent(), plain, starts_at=hours_from_now(48))
    rows = report(world)
    kept_fee = fee - fee // 2
    assert (rows[payable.full_name].platform_fees, rows[payable.full_name].kept_on_platform) == (kept_fee, 0)
    assert rows[payable.full_name].transferred == 6000 - 3000 - kept_fee
    assert (rows[plain.full_name].platform_fees, rows[plain.full_name].kept_on_platform) == (0, 6000)


def test_a_destination_charge_stripe_made_without_the_fee_counts_no_fee_and_reconcile_reports_it(world: World):
    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.sessions[booked.stripe_session_id].application_fee = None  # e.g. the checkout made by hand
    world.deliver(world.fake.pay(booked.stripe_session_id))
    payment = world.fake.payments[str(world.view(booked.id).stripe_payment_intent_id)]
    assert (payment.transfer_amount, payment.fee_id) == (6000, None)  # the teacher got it all
    line = world.earning(t, booked.id)
    assert (line.gross, line.fee, line.net, line.settled) == (6000, 0, 6000, True)
    assert report(world)[t.full_name].platform_fees == 0
    [month] = world.svc.tx_sync(console.revenue_by_month, now=utc_now())
    assert (month["gross"], month["platform_fees"], month["to_teachers"]) == (6000, 0, 6000)
    found = world.job("reconcile", at=later(0.1))
    assert [(i.booking_id, i.kind) for i in found.items if i.kind == "charge_without_fee"] == [
        (booked.id, "charge_without_fee")
    ]
    assert found.counts() == {"reported": 1}


def test_reconcile_reports_a_destination_charge_without_its_transfer_and_records_it_once_made(world: World):
    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.pay(booked.stripe_session_id)
    intent = str(world.fake.session_of(booked.id).payment_intent)
    payment = world.fake.payments[intent]
    made = (payment.transfer_id, payment.fee_id, payment.fee_amount)
    payment.transfer_id, payment.fee_id = None, None  # not made yet at Stripe
    world.deliver_all("checkout.session.completed")
    assert world.earning(t, booked.id).settled is False
    found = world.job("reconcile", at=later(0.1))
    kinds = sorted(str(i.kind) for i in found.items if i.booking_id == booked.id)
    assert kinds == ["charge_without_fee", "charge_without_transfer"]
    payment.transfer_id, payment.fee_id, payment.fee_amount = made
    again = world.job("reconcile", at=later(0.2))
    assert [(i.kind, i.outcome) for i in again.items] == [("split_missing", "split_recorded")]
    line = world.earning(t, booked.id)
    assert (line.fee, line.net, line.settled) == (made[2], 6000 - made[2], True)
    assert [i.kind for i in world.job("reconcile", at=later(0.3)).items] == []


def test_a_refund_made_in_the_dashboard_without_reversing_the_transfer_is_reported(world: World):
    t = world.payable_teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    intent = str(paid.stripe_payment_intent_id)
    world.deliver(world.fake.refund_in_dashboard(intent, 1000))
    [refund] = [r for r in world.fake.refunds if r.payment_intent == intent]
    found = world.job("reconcile", at=later(0.1))
    assert [(i.kind, i.refund_id) for i in found.items] == [("refund_without_reversal", refund.id)]
    line = world.earning(t, paid.id)
    assert (line.refunded, line.net + line.fee) == (1000, 6000)  # the platform paid the teacher's share


@pytest.mark.parametrize(("rate", "minutes"), [(3333, 60), (3333, 45), (2999, 45), (1001, 90), (1001, 30)])
def test_the_price_the_fee_asked_of_stripe_and_the_fee_recorded_are_one(world: World, rate: int, minutes: int):
    t = world.payable_teacher(rate=rate)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48), minutes=minutes)
    price = price_for(hourly_rate=rate, minutes=minutes)
    fee = policy.platform_fee(amount=price, percent=world.settings.platform_fee_percent)
    checkout = world.fake.session_of(paid.id)
    assert (paid.price_amount, checkout.amount, checkout.application_fee) == (price, price, fee)
    line = world.earning(t, paid.id)
    assert (line.gross, line.fee, line.net) == (price, fee, price - fee)


def test_the_fee_recorded_is_the_one_stripe_took_when_it_differs_by_a_minor_unit(world: World):
    t = world.payable_teacher(rate=3333)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    asked = world.fake.sessions[booked.stripe_session_id].application_fee
    assert asked == policy.platform_fee(amount=3333, percent=world.settings.platform_fee_percent)
    world.fake.sessions[booked.stripe_session_id].application_fee = asked + 1  # e.g. rounded otherwise
    world.deliver(world.fake.pay(booked.stripe_session_id))
    line = world.earning(t, booked.id)
    assert (line.gross, line.fee, line.net) == (3333, asked + 1, 3333 - asked - 1)


def test_a_destination_charge_at_a_0_percent_fee_has_no_fee_to_miss_and_reconcile_leaves_it_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(world.settings, "platform_fee_percent", 0)  # the platform takes nothing
    t = world.payable_teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    payment = world.fake.payments[str(paid.stripe_payment_intent_id)]
    assert (payment.transfer_amount, payment.fee_id) == (6000, None)  # rightly no application fee
    line = world.earning(t, paid.id)
    assert (line.gross, line.fee, line.net, line.settled) == (6000, 0, 6000, True)
    reads = len(world.fake.called("payment_split"))
    assert world.job("reconcile", at=later(0.1)).items == []  # no fee was asked, so none is missing
    assert len(world.fake.called("payment_split")) == reads  # nor is its split read again at Stripe
