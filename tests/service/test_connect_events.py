"""Stripe's Connect events about a destination charge (transfer.*, application_fee.*) and the
earnings read from them (bookings/earnings.py): totals only grow, in any order; an event with an
amount left out raises nothing; a split not recorded yet counts nothing for anybody; reconcile
reads again only the refunded charges changed since its lookback began."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.series import steps
from tests.service.world import World, hours_from_now, later
from tutorbook.accounts.models import Student
from tutorbook.bookings import earnings, policy
from tutorbook.bookings.models import Booking, Payment
from tutorbook.clock import utc_now
from tutorbook.flows import booking as flows

pytestmark = pytest.mark.service
_ids = itertools.count(1)


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A Stripe event as it is posted (the fake makes none of these)."""
    return {
        "id": f"evt_connect{next(_ids):06d}",
        "object": "event",
        "type": kind,
        "created": int(utc_now().timestamp()),
        "api_version": "2026-10-28.endive",
        "data": {"object": obj},
        "request": {"id": None, "idempotency_key": None},
    }


def paid_by_destination(world: World, **terms: int):
    t = world.payable_teacher(rate=6000, **terms)
    p = world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(5 if terms else 48))
    return t, p, paid, world.fake.payments[str(paid.stripe_payment_intent_id)]


def test_transfer_events_raise_the_totals_and_an_older_or_emptier_one_lowers_nothing(world: World):
    t, _, paid, payment = paid_by_destination(world)
    transfer = {"id": payment.transfer_id, "object": "transfer", "source_transaction": payment.charge_id}
    # An event with amount_reversed left out (Stripe always sends it; a malformed one) reverses nothing.
    assert world.deliver(event("transfer.created", {**transfer, "amount": 6000})) == "transfer_recorded"
    line = world.earning(t, paid.id)
    assert (line.net + line.fee, line.settled) == (6000, True)
    world.deliver(event("transfer.reversed", {**transfer, "amount": 6000, "amount_reversed": 2000}))
    assert world.earning(t, paid.id).net + world.earning(t, paid.id).fee == 4000
    # Older news (delivered late), or an event with the amounts left out: nothing goes down or up.
    world.deliver(event("transfer.updated", {**transfer, "amount": 6000, "amount_reversed": 500}))
    world.deliver(event("transfer.updated", {"id": payment.transfer_id, "object": "transfer"}))
    after = world.earning(t, paid.id)
    assert after.net + after.fee == 4000 and after.gross == 6000


def test_a_transfer_event_found_by_its_charge_alone_records_the_transfer(world: World):
    t, _, paid, payment = paid_by_destination(world)
    obj = {"id": "tr_other", "object": "transfer", "source_transaction": payment.charge_id, "amount": 6000}
    assert world.deliver(event("transfer.created", obj)) == "transfer_recorded"
    unknown = {"id": "tr_unknown", "object": "transfer", "source_transaction": "ch_unknown", "amount": 1}
    assert world.deliver(event("transfer.created", unknown)) == "unknown_booking"
    assert world.earning(t, paid.id).transfer_id in (payment.transfer_id, "tr_other")


def test_fee_refund_events_raise_the_fee_refunded_and_never_lower_it(world: World):
    t, _, paid, payment = paid_by_destination(world)
    fee = {"id": payment.fee_id, "object": "application_fee", "charge": payment.charge_id}
    assert world.deliver(event("application_fee.created", fee)) == "fee_recorded"  # nothing refunded yet
    assert world.earning(t, paid.id).fee == payment.fee_amount
    assert world.deliver(event("application_fee.refunded", {**fee, "amount_refunded": 300})) == "fee_recorded"
    line = world.earning(t, paid.id)
    assert line.fee == payment.fee_amount - 300 and line.net == 6000 - line.fee
    world.deliver(event("application_fee.refunded", {**fee, "amount_refunded": 100}))  # older
    world.deliver(event("application_fee.created", {"id": payment.fee_id, "object": "application_fee"}))
    assert world.earning(t, paid.id).fee == payment.fee_amount - 300
    assert world.deliver(event("application_fee.created", {"id": "fee_x", "charge": "ch_x"})) == "unknown_booking"


def test_a_destination_charge_whose_split_is_not_recorded_counts_nothing_yet(world: World):
    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.fail_next("payment_split", world_error())  # the split cannot be read when it is paid
    world.deliver(world.fake.pay(booked.stripe_session_id))
    line = world.earning(t, booked.id)
    assert (line.gross, line.refunded, line.fee, line.net, line.paid_out, line.settled) == (
        6000, 0, 0, 0, True, False
    )  # fmt: skip
    [row] = world.svc.tx_sync(
        earnings.platform_report, start=utc_now() - timedelta(days=1), end=utc_now() + timedelta(days=30)
    )
    assert (row.unsettled, row.platform_fees, row.transferred, row.kept_on_platform) == (1, 0, 0, 0)


def world_error() -> Exception:
    from tutorbook.payments.port import GatewayError

    return GatewayError("down")


def test_reconcile_reads_again_only_the_refunded_charges_changed_within_its_lookback(world: World):
    t, p, paid, payment = paid_by_destination(world, late_refund_percent=50)
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))  # refunded in part
    assert payment.refunded == 3000
    lookback = timedelta(hours=world.settings.reconcile_lookback_hours)
    since = utc_now() - timedelta(minutes=1)
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=since) == [paid.id]
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=later(1)) == []
    world.fake.calls.clear()
    world.job("reconcile", at=later(1))
    assert [c["payment_intent"] for c in world.fake.called("payment_split")] == [payment.id]
    world.fake.calls.clear()
    world.job("reconcile", at=utc_now() + lookback + timedelta(hours=1))  # changed before the lookback
    assert world.fake.called("payment_split") == []


def test_the_teachers_month_totals_add_up_their_sessions_from_the_first_instant_of_the_range(world: World):
    t = world.payable_teacher(rate=6000, late_refund_percent=50)
    p = world.parent()
    first = world.book_and_pay(p, t, starts_at=hours_from_now(5))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=first.id))  # half refunded
    world.book_and_pay(world.parent(), t, starts_at=first.starts_at + timedelta(hours=2))
    # The range starts at the first session's very start: it is in (start inclusive, end exclusive).
    found = world.svc.tx_sync(
        earnings.for_teacher, teacher_id=t.id, start=first.starts_at, end=first.starts_at + timedelta(hours=3)
    )
    assert len(found.sessions) == 2
    totals = [(m.sessions, m.gross, m.refunded, m.fee, m.net) for m in found.months]
    assert sum(m[0] for m in totals) == 2 and sum(m[1] for m in totals) == 12000
    assert sum(m[2] for m in totals) == 3000
    assert sum(m[3] + m[4] for m in totals) == 12000 - 3000  # fee + net = what was not refunded
    assert sum(m[4] for m in totals) == sum(s.net for s in found.sessions)
    none = world.svc.tx_sync(
        earnings.for_teacher, teacher_id=t.id, start=first.starts_at - timedelta(hours=1), end=first.starts_at
    )
    assert (none.sessions, none.months) == ([], [])


def test_a_payment_refused_for_its_amount_is_no_earning(world: World):
    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.sessions[booked.stripe_session_id].amount = 5000  # paid at another price: refused, refunded
    assert world.deliver(world.fake.pay(booked.stripe_session_id)) == "amount_mismatch"
    found = world.svc.tx_sync(
        earnings.for_teacher, teacher_id=t.id, start=utc_now() - timedelta(days=1), end=utc_now() + timedelta(days=30)
    )
    assert (found.sessions, found.months) == ([], [])
    assert world.svc.tx_sync(earnings.missing_splits) == []


def test_each_teacher_reads_only_their_own_earnings_and_reconcile_each_refunded_charge_once(world: World):
    teachers = [world.payable_teacher(rate=6000, late_refund_percent=50) for _ in range(3)]
    booked = {}
    for t in teachers:
        p = world.parent()
        booked[t.id] = world.book_and_pay(p, t, starts_at=hours_from_now(5)).id
        world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=booked[t.id]))  # half refunded
    window = {"start": utc_now() - timedelta(days=1), "end": utc_now() + timedelta(days=30)}
    for t in teachers:  # whichever way their ids sort
        found = world.svc.tx_sync(earnings.for_teacher, teacher_id=t.id, **window)
        assert [s.booking_id for s in found.sessions] == [booked[t.id]]
    since = utc_now() - timedelta(minutes=5)
    refunded = world.svc.tx_sync(earnings.refunded_destination_charges, since=since)
    assert sorted(refunded) == sorted(booked.values())  # each once


def test_a_charge_without_its_fee_is_read_again_from_the_instant_it_last_changed(world: World):
    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.sessions[booked.stripe_session_id].application_fee = None
    world.deliver(world.fake.pay(booked.stripe_session_id))
    changed = world.svc.tx_sync(
        lambda s: s.scalars(sa.select(Payment.updated_at).where(Payment.booking_id == booked.id)).one()
    )
    assert world.svc.tx_sync(earnings.charges_without_fee, since=changed) == [booked.id]
    assert world.svc.tx_sync(earnings.charges_without_fee, since=changed + timedelta(microseconds=1)) == []


def set_change_times(world: World, booking_id: uuid.UUID, times: dict[str, datetime]) -> None:
    """Write a booking's `updated_at` / `created_at` and its payment's `updated_at` (the three times
    the lookback reads) as `times` names them."""

    def write(s: Any) -> None:
        s.execute(
            sa.update(Booking)
            .where(Booking.id == booking_id)
            .values(updated_at=times["booking_updated"], created_at=times["booking_created"])
        )
        payment = sa.update(Payment).where(Payment.booking_id == booking_id)
        s.execute(payment.values(updated_at=times["payment_updated"]))

    world.svc.tx_sync(write)


def test_a_charge_whose_one_minor_unit_fee_is_missing_is_read_again(world: World, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(world.settings, "platform_fee_percent", 0.02)  # 0.02 % of 6,000 = 1.2 -> 1
    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    assert world.fake.sessions[booked.stripe_session_id].application_fee == 1
    world.fake.sessions[booked.stripe_session_id].application_fee = None  # Stripe took no fee
    world.deliver(world.fake.pay(booked.stripe_session_id))
    changed = world.svc.tx_sync(
        lambda s: s.scalars(sa.select(Payment.updated_at).where(Payment.booking_id == booked.id)).one()
    )
    assert world.svc.tx_sync(earnings.charges_without_fee, since=changed) == [booked.id]


def test_a_charge_refunded_by_one_minor_unit_is_read_again_for_its_reversal(world: World):
    t, _, paid, payment = paid_by_destination(world)
    since = utc_now() - timedelta(minutes=1)
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=since) == []  # nothing refunded yet
    assert world.deliver(world.fake.refund_in_dashboard(payment.id, 1)) == "refund_recorded"
    assert world.view(paid.id).refunded_amount == 1
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=since) == [paid.id]


def test_only_a_paid_destination_charge_has_a_split_to_read(world: World):
    t = world.payable_teacher(rate=6000)
    unpaid = world.book(world.parent(), t, starts_at=hours_from_now(48))  # a destination, no intent yet
    on_platform = world.book_and_pay(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(50))
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(52))

    def read(booking_id: uuid.UUID) -> earnings.SplitToRead | None:
        return world.svc.tx_sync(earnings.split_to_read, booking_id=booking_id)

    assert read(uuid.uuid4()) is None  # no such booking: no payment
    assert unpaid.stripe_payment_intent_id is None and read(unpaid.id) is None
    assert on_platform.stripe_payment_intent_id is not None and read(on_platform.id) is None  # no destination
    assert read(paid.id) == earnings.SplitToRead(paid.id, str(paid.stripe_payment_intent_id))


@pytest.mark.parametrize("at_since", ["booking_updated", "booking_created", "payment_updated"])
def test_a_refunded_charge_changed_at_the_lookbacks_first_instant_is_read_again(world: World, at_since: str):
    t, p, paid, _ = paid_by_destination(world, late_refund_percent=50)
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))  # refunded in part
    since = utc_now() + timedelta(hours=1)
    times = {name: since - timedelta(hours=2) for name in ("booking_updated", "booking_created", "payment_updated")}
    times[at_since] = since  # one of the three changed exactly at `since`, the others before
    set_change_times(world, paid.id, times)
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=since) == [paid.id]
    after = since + timedelta(microseconds=1)
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=after) == []


@pytest.mark.parametrize("changed", ["booking_updated", "booking_created", "payment_updated"])
def test_a_refunded_charge_changed_within_the_lookback_by_one_of_its_times_alone_is_read_again(
    world: World, changed: str
):
    t, p, paid, _ = paid_by_destination(world, late_refund_percent=50)
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))  # refunded in part
    since = utc_now() + timedelta(hours=1)
    times = {name: since - timedelta(hours=2) for name in ("booking_updated", "booking_created", "payment_updated")}
    times[changed] = since + timedelta(minutes=30)  # one of the three changed well after `since`, the others before
    set_change_times(world, paid.id, times)
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=since) == [paid.id]
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=since + timedelta(hours=1)) == []


def test_only_the_refunded_destination_charges_are_read_again_for_their_reversals(world: World):
    t, p, paid, payment = paid_by_destination(world, late_refund_percent=50)
    kept = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(72))  # paid, nothing refunded
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))  # refunded in part
    assert payment.refunded == 3000
    since = utc_now() - timedelta(minutes=1)  # both changed since
    assert kept.id not in world.svc.tx_sync(earnings.refunded_destination_charges, since=since)
    assert world.svc.tx_sync(earnings.refunded_destination_charges, since=since) == [paid.id]


def test_a_transfer_event_changes_its_own_charges_payment_alone(world: World):
    on_platform = world.book_and_pay(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    t, _, paid, payment = paid_by_destination(world)  # paid after: no fee or transfer recorded on the first
    transfer = {"id": payment.transfer_id, "object": "transfer", "source_transaction": payment.charge_id}
    reversed_ = event("transfer.reversed", {**transfer, "amount": 6000, "amount_reversed": 1000})
    assert world.deliver(reversed_) == "transfer_recorded"
    stored = world.svc.tx_sync(
        lambda s: {
            b: (transfer, reversed_)
            for b, transfer, reversed_ in s.execute(
                sa.select(Payment.booking_id, Payment.stripe_transfer_id, Payment.transfer_reversed_amount)
            )
        }
    )
    assert stored == {on_platform.id: (None, 0), paid.id: (payment.transfer_id, 1000)}


def test_an_application_fee_event_before_the_fee_is_recorded_finds_its_payment_by_its_charge(world: World):
    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.pay(booked.stripe_session_id)
    payment = world.fake.payments[str(world.fake.session_of(booked.id).payment_intent)]
    fee_id, fee_amount = payment.fee_id, payment.fee_amount
    payment.fee_id = None  # Stripe's answer at checkout shows no fee yet: the split is recorded without it
    world.deliver_all("checkout.session.completed")
    assert world.earning(t, booked.id).fee == 0
    fee = {"id": fee_id, "object": "application_fee", "charge": payment.charge_id, "amount_refunded": 200}
    assert world.deliver(event("application_fee.created", fee)) == "fee_recorded"
    line = world.earning(t, booked.id)
    assert (line.fee, line.net, line.settled) == (fee_amount - 200, 6000 - fee_amount + 200, True)


def test_a_series_week_not_charged_yet_is_no_earning_and_its_charged_week_is(world: World):
    t = world.payable_teacher(rate=6000)
    made = steps.book(world, world.parent(), t, first=hours_from_now(50), weeks=2)
    week = {o.week: o.booking_id for o in made.occurrences}
    assert world.deliver(world.fake.pay(world.fake.session_of(week[1]).id)) == "confirmed"
    # Week 2's card is charged some days before it starts: not yet, so it has no payment intent.
    window = (utc_now() - timedelta(days=1), utc_now() + timedelta(days=30))
    found = world.svc.tx_sync(earnings.for_teacher, teacher_id=t.id, start=window[0], end=window[1])
    assert [(e.booking_id, e.gross) for e in found.sessions] == [(week[1], 6000)]
    [row] = world.svc.tx_sync(earnings.platform_report, start=window[0], end=window[1])
    assert (row.sessions, row.gross) == (1, 6000)


def test_a_series_week_charged_off_session_earns_as_a_destination_charge_not_as_a_credit_lesson(world: World):
    t = world.payable_teacher(rate=6000)
    made = steps.book(world, world.parent(), t, first=hours_from_now(50), weeks=2)
    week = {o.week: o for o in made.occurrences}
    assert world.deliver(world.fake.pay(world.fake.session_of(week[1].booking_id).id)) == "confirmed"
    assert world.job("series", at=steps.due(week[2].starts_at, world)).counts() == {"confirmed": 1}
    [charge] = world.fake.called("charge_off_session")
    fee = charge["application_fee"]
    assert fee == policy.platform_fee(amount=6000, percent=world.settings.platform_fee_percent) and fee > 0
    # The whole price transferred to the teacher and the fee taken from it, as a lone checkout's.
    line = world.earning(t, week[2].booking_id)
    assert (line.gross, line.refunded, line.fee, line.net, line.paid_out, line.settled) == (
        6000, 0, fee, 6000 - fee, True, True
    )  # fmt: skip


def test_a_transfer_or_fee_event_of_ids_we_never_recorded_changes_no_payment(world: World):
    t, _, paid, payment = paid_by_destination(world)
    before = world.earning(t, paid.id)
    # Stripe's ids as it makes them (e.g. another platform's transfer): none is any payment's here.
    transfer = {"id": "tr_1QxA2b3C4d5E", "object": "transfer", "source_transaction": "ch_1QxA2b3C4d5E"}
    assert world.deliver(event("transfer.reversed", {**transfer, "amount": 6000, "amount_reversed": 6000})) == (
        "unknown_booking"
    )
    fee = {"id": "fee_1QxA2b3C4d5E", "object": "application_fee", "charge": "ch_1QxA2b3C4d5E"}
    assert world.deliver(event("application_fee.refunded", {**fee, "amount_refunded": 500})) == "unknown_booking"
    assert world.earning(t, paid.id) == before
    assert payment.transfer_id is not None and before.net + before.fee == 6000


def test_the_teachers_earnings_line_names_the_child_taught(world: World):
    t = world.payable_teacher(rate=6000)
    p = world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    name = world.svc.tx_sync(lambda s: s.scalars(sa.select(Student.full_name).where(Student.id == p[1])).one())
    assert name and world.earning(t, paid.id).student_name == name
