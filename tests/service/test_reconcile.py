"""Reconcile against the fake Stripe account (jobs/reconcile.py), without HTTP: each kind of
mismatch found and repaired or reported, once; a dry run finds the same and changes nothing; only
Tutorbook's own checkouts created within the lookback are compared."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest

from tests.series import steps
from tests.service.world import World, hours_from_now, later
from tutorbook.flows import booking as flows
from tutorbook.payments.port import GatewayError

pytestmark = pytest.mark.service

PENDING, CONFIRMED, CANCELLED = 0, 1, 3


def kinds(result) -> list[tuple[str, str]]:
    return sorted((str(i.kind), i.outcome) for i in result.items)


def test_a_pending_booking_whose_checkout_expired_at_stripe_is_cancelled_and_a_dry_run_only_says_so(world: World):
    b = world.book(world.parent(), world.teacher(), starts_at=hours_from_now(48))
    assert b.stripe_session_id is not None
    world.fake.expire_at_stripe(b.stripe_session_id)  # its event lost
    dry = world.job("reconcile", at=later(0.1), dry_run=True)
    assert kinds(dry) == [("pending_but_expired", "pending_but_expired")]
    assert world.view(b.id).status == PENDING
    assert kinds(world.job("reconcile", at=later(0.1))) == [("pending_but_expired", "checkout_expired")]
    done = world.view(b.id)
    assert (done.status, done.cancellation_reason) == (CANCELLED, "checkout_expired")
    assert kinds(world.job("reconcile", at=later(0.2))) == []


def test_an_open_or_unpaid_checkout_of_a_pending_booking_is_no_mismatch(world: World):
    t = world.teacher()
    open_ = world.book(world.parent(), t, starts_at=hours_from_now(48))
    later_pay = world.book(world.parent(), t, starts_at=hours_from_now(50))
    assert later_pay.stripe_session_id is not None
    world.fake.pay_later(later_pay.stripe_session_id)  # complete, not paid yet
    assert kinds(world.job("reconcile", at=later(0.1))) == []
    assert {world.view(open_.id).status, world.view(later_pay.id).status} == {PENDING}


def test_a_paid_booking_whose_webhook_was_lost_is_confirmed_once_and_a_dry_run_changes_nothing(world: World):
    b = world.book(world.parent(), world.teacher(), starts_at=hours_from_now(48))
    assert b.stripe_session_id is not None
    world.fake.pay(b.stripe_session_id)
    assert kinds(world.job("reconcile", at=later(0.1), dry_run=True)) == [("paid_not_confirmed", "paid_not_confirmed")]
    assert world.view(b.id).status == PENDING
    assert kinds(world.job("reconcile", at=later(0.1))) == [("paid_not_confirmed", "confirmed")]
    assert world.view(b.id).status == CONFIRMED
    assert kinds(world.job("reconcile", at=later(0.2))) == []


def test_a_payment_for_no_booking_and_a_confirmed_booking_stripe_calls_unpaid_are_reported(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    ghost = world.run(  # a checkout naming no booking of ours (made by hand at Stripe, say), paid
        world.fake.create_checkout(
            booking_id="b6a7c3e0-0000-4000-8000-000000000000", amount=6000, currency="usd", product_name="x",
            customer_email=None, success_url="-", cancel_url="-", expires_at=hours_from_now(1),
        )
    )  # fmt: skip
    world.fake.pay(ghost.id)
    stripe_side = world.fake.sessions[str(paid.stripe_session_id)]
    stripe_side.payment_status = "unpaid"  # Stripe says the confirmed booking's checkout is unpaid
    found = world.job("reconcile", at=later(0.1))
    assert ("paid_without_booking", "reported") in kinds(found)
    assert [(i.booking_id, i.kind, i.outcome) for i in found.items if i.kind == "unpaid_at_stripe"] == [
        (paid.id, "unpaid_at_stripe", "reported")
    ]
    assert world.view(paid.id).status == CONFIRMED  # reported, left alone


def test_checkouts_not_tutorbooks_or_older_than_the_lookback_are_not_compared(world: World):
    b = world.book(world.parent(), world.teacher(), starts_at=hours_from_now(72))
    assert b.stripe_session_id is not None
    world.fake.pay(b.stripe_session_id)
    lookback = timedelta(hours=world.settings.reconcile_lookback_hours)
    old = world.job("reconcile", at=later(0) + lookback + timedelta(minutes=5))
    assert kinds(old) == [] and world.view(b.id).status == PENDING
    world.fake.sessions[b.stripe_session_id].product_name = "x"
    original = world.fake._read

    for other in ("other", "package-purchase", "subscription"):  # sorting before and after ours

        def not_ours(session, other=other):
            checkout = original(session)
            return checkout.__class__(**{**checkout.__dict__, "metadata": {"type": other}})

        world.fake._read = not_ours  # type: ignore[method-assign]
        assert kinds(world.job("reconcile", at=later(0.1))) == [], other
    world.fake._read = original  # type: ignore[method-assign]
    assert kinds(world.job("reconcile", at=later(0.1))) == [("paid_not_confirmed", "confirmed")]


def test_a_refund_stuck_while_stripe_was_down_is_sent_once_it_is_past_its_grace(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert world.refunds(paid.id) == [(6000, "pending")]
    assert kinds(world.job("reconcile", at=later(0))) == []  # within its grace: its request may still send it
    assert [i.outcome for i in world.job("reconcile", at=later(0.1)).items] == ["refund_succeeded"]
    assert world.refunds(paid.id) == [(6000, "succeeded")] and world.stripe_refunds(paid.id) == [6000]


def test_the_listing_reports_its_progress_at_each_hundredth_checkout_listed(world: World):
    for _ in range(299):  # checkouts naming no booking, unpaid: listed, nothing to repair
        world.run(
            world.fake.create_checkout(
                booking_id=str(uuid.uuid4()), amount=6000, currency="usd", product_name="x",
                customer_email=None, success_url="-", cancel_url="-", expires_at=hours_from_now(1),
            )
        )  # fmt: skip
    seen: list[tuple[str, int]] = []
    found = world.job("reconcile", at=later(0.1), progress=lambda what, n: seen.append((what, n)))
    assert kinds(found) == []
    # the 100th and the 200th of 299, once each (not the 1st, not every one, not the 300th)
    assert seen == [("listed", 100), ("listed", 200)]


def test_a_refund_stripe_refused_at_the_lookbacks_first_instant_is_reported_and_one_before_it_is_not(world: World):
    t, p = world.teacher(rate=6000), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    assert paid.stripe_payment_intent_id is not None
    world.fake.refund_in_dashboard(paid.stripe_payment_intent_id, 1000)  # the event lost: the cancel's 6,000 refused
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    [(refused_id, asked_at)] = [(r[0], r[3]) for r in world.refunds_asked(paid.id) if r[2] == "failed"]

    def reported(since: datetime) -> list[tuple[object, object]]:
        found = world.job("reconcile", at=later(0.1), since=since)
        return [(i.refund_id, i.outcome) for i in found.items if i.kind == "refund_failed"]

    assert reported(asked_at) == [(refused_id, "reported")]
    assert reported(asked_at - timedelta(hours=1)) == [(refused_id, "reported")]  # well within the lookback
    assert reported(asked_at + timedelta(microseconds=1)) == []


def test_a_package_lessons_payout_read_by_reconcile_does_not_stop_the_destination_charges_after_it(world: World):
    t, p = world.payable_teacher(rate=6000), world.parent()
    world.buy_package(p, t, lessons=3, price=15000)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")  # its payment row comes first
    assert lesson.status == CONFIRMED
    done = world.job("complete", at=lesson.ends_at + timedelta(minutes=1))
    assert [i.outcome for i in done.items if i.booking_id == lesson.id] == ["completed", "transferred"]
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.sessions[booked.stripe_session_id].application_fee = None  # Stripe took no fee
    world.deliver(world.fake.pay(booked.stripe_session_id))
    # The lesson's transfer (no payment intent, no application fee: not a destination charge) is
    # listed with the charges without a fee, and skipped; the charge after it is still read.
    found = world.job("reconcile", at=later(0.1))
    assert [(i.booking_id, i.kind) for i in found.items if i.kind == "charge_without_fee"] == [
        (booked.id, "charge_without_fee")
    ]


@pytest.mark.parametrize(
    ("stripe_says", "outcome", "kind"),
    [
        ("succeeded", "refund_succeeded", None),
        ("canceled", "refund_canceled", None),  # not a refusal to look at: "canceled" sorts before "failed"
        ("failed", "refund_failed", "refund_failed"),  # refused: a person must look
        ("pending", "refund_processing", None),  # Stripe still processing it (recorded as such)
    ],
)
def test_a_stuck_refund_sent_by_reconcile_is_named_by_stripes_answer_and_only_a_failed_one_is_for_a_person(
    world: World, stripe_says: str, outcome: str, kind: str | None
):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    world.fake.refund_status = stripe_says
    [item] = world.job("reconcile", at=later(0.1)).items
    assert (item.outcome, item.kind) == (outcome, kind)


@pytest.mark.parametrize("first_read", ["no_succeeded_payment", "stripe_unreachable"])
def test_a_charge_whose_split_cannot_be_read_is_skipped_without_stopping_the_charges_after_it(
    world: World, first_read: str
):
    t = world.payable_teacher(rate=6000)
    booked = {}
    for hours in (48, 50, 52):
        b = world.book(world.parent(), t, starts_at=hours_from_now(hours))
        assert b.stripe_session_id is not None
        world.fake.sessions[b.stripe_session_id].application_fee = None  # Stripe took no fee
        world.deliver(world.fake.pay(b.stripe_session_id))
        booked[str(world.view(b.id).stripe_payment_intent_id)] = b.id
    before = len(world.fake.called("payment_split"))
    world.job("reconcile", at=later(0.1), dry_run=True)  # the order reconcile reads them in
    first, *rest = [booked[c["payment_intent"]] for c in world.fake.called("payment_split")[before:]]
    assert len(rest) == 2
    if first_read == "no_succeeded_payment":  # payment_split answers None
        [pi] = [pi for pi, b in booked.items() if b == first]
        world.fake.payments[pi].succeeded = False
    else:
        world.fake.fail_next("payment_split", GatewayError("down"))
    found = world.job("reconcile", at=later(0.1))
    assert sorted(str(i.booking_id) for i in found.items if i.kind == "charge_without_fee") == sorted(map(str, rest))
    unavailable = [i.booking_id for i in found.items if i.outcome == "stripe_unavailable"]
    assert unavailable == ([first] if first_read == "stripe_unreachable" else [])


def test_a_stuck_refunds_grace_is_one_minute_from_when_it_was_asked(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    [(_, _, _, asked_at)] = world.refunds_asked(paid.id)
    assert world.job("reconcile", at=asked_at + timedelta(seconds=59)).items == []  # its request may still send it
    resent = world.job("reconcile", at=asked_at + timedelta(minutes=1, seconds=1))
    assert [i.outcome for i in resent.items] == ["refund_succeeded"]


def test_a_series_lessons_expired_pay_link_is_no_mismatch_its_own_deadline_decides(world: World):
    t, p = world.payable_teacher(), world.parent()
    weeks, pay_link = steps.declined_week_with_pay_link(world, p, t, weeks=2)
    world.fake.expire_at_stripe(pay_link)  # its event lost
    assert kinds(world.job("reconcile", at=later(0.1))) == []
    assert world.view(weeks[2].booking_id).status == PENDING  # until the series job's deadline


def test_a_paid_checkout_naming_a_booking_it_was_not_made_for_is_refunded_not_reported_as_bookingless(world: World):
    b = world.book(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    assert b.stripe_session_id is not None
    own = world.fake.sessions[b.stripe_session_id]
    other = dataclasses.replace(own, id="cs_made_elsewhere", created=own.created + timedelta(seconds=1))
    world.fake.sessions[other.id] = other  # names the booking in its metadata; not the booking's checkout
    world.fake.pay(other.id)  # its event lost
    found = world.job("reconcile", at=later(0.1))
    assert [(i.booking_id, str(i.kind)) for i in found.items] == [(b.id, "other_checkout")]
    assert world.stripe_refunds(b.id) == [6000]  # all of it back
    assert world.view(b.id).status == PENDING  # its own checkout still pays for it


def test_a_paid_then_cancelled_booking_stripe_calls_unpaid_is_reported_too(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))  # refunded in full
    assert world.view(paid.id).status == CANCELLED
    world.fake.sessions[str(paid.stripe_session_id)].payment_status = "unpaid"  # yet Stripe says unpaid
    found = world.job("reconcile", at=later(0.1))
    assert [(i.booking_id, i.kind) for i in found.items] == [(paid.id, "unpaid_at_stripe")]  # it was paid


def test_a_checkout_of_ours_whose_booking_reference_is_no_uuid_is_reported_not_a_crash(world: World):
    b = world.book(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    assert b.stripe_session_id is not None
    own = world.fake.sessions[b.stripe_session_id]
    odd = dataclasses.replace(own, id="cs_odd_reference", booking_id="not-a-uuid")
    world.fake.sessions[odd.id] = odd
    world.fake.pay(odd.id)
    found = world.job("reconcile", at=later(0.1))
    assert [(i.booking_id, str(i.kind)) for i in found.items] == [(None, "paid_without_booking")]


def test_unpaid_checkouts_naming_a_booking_they_were_not_made_for_are_ignored(world: World):
    paid = world.book_and_pay(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    own = world.fake.sessions[str(paid.stripe_session_id)]
    for other_id in ("cs_!sorts_before", "cs_~sorts_after"):  # either side of the booking's own id
        other = dataclasses.replace(own, id=other_id, status="expired", payment_status="unpaid", payment_intent=None)
        world.fake.sessions[other_id] = other
    assert kinds(world.job("reconcile", at=later(0.1))) == []
    assert world.view(paid.id).status == CONFIRMED
