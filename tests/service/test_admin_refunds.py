"""Refund rows (bookings/refunds.py) through an admin's refunds without cancelling, without
HTTP: what is left to give back is the price less this booking's own refunds (none of another
booking's), the whole price can be given back at once, every accepted refund is told to the
parent once, and a refund keeps the first answer Stripe gave it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.service.world import World, hours_from_now, later, refused
from tutorbook.bookings import refunds
from tutorbook.bookings.models import Refund
from tutorbook.clock import utc_now
from tutorbook.flows import booking as flows
from tutorbook.flows import followups
from tutorbook.payments.port import GatewayError

pytestmark = pytest.mark.service


def give_back(world: World, admin, booking_id: uuid.UUID, amount: int, key: str) -> None:
    world.run(
        flows.refund_as_admin(world.svc, admin=admin, booking_id=booking_id, amount=amount, note="goodwill", key=key)
    )


def left(world: World, admin, booking_id: uuid.UUID) -> int:
    """What the admin form says is left to give back (its 422 names it)."""
    with refused(422) as caught:
        give_back(world, admin, booking_id, 10**6, key=f"probe-{uuid.uuid4()}")
    return int(caught[0].data[0]["left"])  # type: ignore[attr-defined]


def test_the_whole_price_of_a_booking_never_refunded_can_be_given_back_at_once(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    assert left(world, admin, paid.id) == 6000
    give_back(world, admin, paid.id, 6000, key="all")
    assert world.refunds(paid.id) == [(6000, "succeeded")] and world.stripe_refunds(paid.id) == [6000]
    assert world.view(paid.id).refunded_amount == 6000
    assert left(world, admin, paid.id) == 0


def test_each_of_two_refunds_of_one_booking_is_told_to_the_parent_and_both_count(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    give_back(world, admin, paid.id, 1000, key="first")
    give_back(world, admin, paid.id, 2500, key="second")
    give_back(world, admin, paid.id, 2500, key="second")  # the form again: nothing more
    assert world.refunds(paid.id) == [(1000, "succeeded"), (2500, "succeeded")]
    assert world.view(paid.id).refunded_amount == 3500
    assert world.mail_sent(paid.id).get("refund_issued.parent") == 2
    assert left(world, admin, paid.id) == 2500


def test_a_bookings_refunds_count_for_no_other_booking(world: World):
    admin, t, p = world.admin(), world.teacher(rate=6000), world.parent()
    paid = [world.book_and_pay(p, t, starts_at=hours_from_now(48 + 2 * n)) for n in range(3)]
    for n, b in enumerate(paid):
        give_back(world, admin, b.id, 1000 * (n + 1), key=f"k{n}")
    for n, b in enumerate(paid):  # whichever way their ids sort
        assert world.view(b.id).refunded_amount == 1000 * (n + 1)
        assert left(world, admin, b.id) == 6000 - 1000 * (n + 1)
        assert world.mail_sent(b.id).get("refund_issued.parent") == 1
        assert world.refunds(b.id) == [(1000 * (n + 1), "succeeded")]


def test_a_refund_keeps_the_first_answer_stripe_gave_it(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    ok = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    give_back(world, admin, ok.id, 1000, key="ok")
    assert ok.stripe_payment_intent_id is not None
    world.fake.refund_in_dashboard(ok.stripe_payment_intent_id, 5000)  # the event lost: 1,000 asked is refused
    give_back(world, admin, ok.id, 1000, key="refused")
    assert [s for _, s in world.refunds(ok.id)] == ["succeeded", "failed"]
    [(done_id, *_), (failed_id, *_)] = world.refunds_asked(ok.id)[:2]
    # A late, stale answer (another sender's) for each changes neither row nor the amount refunded.
    for refund_id, status in ((done_id, "failed"), (failed_id, "succeeded")):
        world.svc.tx_sync(
            refunds.record_answer, refund_id=refund_id, stripe_id="re_late", status=status, counted=1000, now=utc_now()
        )
    assert [s for _, s in world.refunds(ok.id)][:2] == ["succeeded", "failed"]
    assert world.view(ok.id).refunded_amount == 6000  # Stripe's total (1,000 + 5,000), nothing more
    assert world.mail_sent(ok.id).get("refund_issued.parent") == 1  # the refused one was never issued
    assert followups.send_refund(world.svc, refund_id=failed_id) == "failed"  # a second sender: not again
    assert len(world.fake.called("refund")) == 2


def test_a_pending_refund_recorded_without_its_payment_intent_is_sent_with_its_payments(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"))
    give_back(world, admin, paid.id, 1500, key="old")
    [(refund_id, amount, status, _)] = world.refunds_asked(paid.id)
    assert (amount, status) == (1500, "pending")
    # A row written before refunds named their payment intent (migration 0006 left it NULL).
    unnamed = sa.update(Refund).where(Refund.id == refund_id).values(payment_intent_id=None)
    world.svc.tx_sync(lambda s: s.execute(unnamed))
    world.job("reconcile", at=later(0.1))
    assert world.refunds(paid.id) == [(1500, "succeeded")]
    assert [c["payment_intent"] for c in world.fake.called("refund")][-1] == paid.stripe_payment_intent_id


def test_a_refund_stripe_fails_at_once_gives_nothing_back_and_tells_nobody_it_was_issued(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.refund_status = "failed"
    give_back(world, admin, paid.id, 1000, key="failed")
    assert world.refunds(paid.id) == [(1000, "failed")]
    assert world.view(paid.id).refunded_amount == 0
    assert "refund_issued.parent" not in world.mail_sent(paid.id)


def test_a_refund_answered_already_is_not_sent_again_by_a_second_sender(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    give_back(world, admin, paid.id, 1000, key="once")
    [(refund_id, *_)] = world.refunds_asked(paid.id)
    assert followups.send_refund(world.svc, refund_id=refund_id) == "succeeded"  # e.g. reconcile, racing
    assert followups.send_refund(world.svc, refund_id=uuid.uuid4()) == "missing"
    assert len(world.fake.called("refund")) == 1 and world.stripe_refunds(paid.id) == [1000]


def test_only_a_refund_stripe_refused_is_replaced_by_what_is_left(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.refund_status = "canceled"
    give_back(world, admin, paid.id, 1000, key="canceled")
    [(refund_id, _, status, _)] = world.refunds_asked(paid.id)
    assert status == "canceled"
    replaced = world.svc.tx_sync(refunds.replace_refused, refund_id=refund_id, refunded_at_stripe=0, now=utc_now())
    assert replaced is None and world.refunds(paid.id) == [(1000, "canceled")]


def test_a_refund_stripe_refused_before_the_lookback_is_not_reported_again(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    assert paid.stripe_payment_intent_id is not None
    world.fake.refund_in_dashboard(paid.stripe_payment_intent_id, 6000)  # all of it, the event lost
    give_back(world, admin, paid.id, 1000, key="refused")  # more than Stripe has left: refused
    assert world.refunds(paid.id) == [(1000, "failed")]
    lookback = world.settings.reconcile_lookback_hours

    def reported(hours: float) -> list[str]:
        return [str(i.kind) for i in world.job("reconcile", at=later(hours)).items if i.kind == "refund_failed"]

    assert reported(1) == ["refund_failed"]  # within the lookback: reported
    assert reported(lookback + 1) == []  # not sent again, not listed as stuck, not reported for ever
    assert len(world.fake.called("refund")) == 1


def test_a_late_payment_refunded_for_one_booking_leaves_the_late_payments_of_others_to_confirm(world: World):
    from tests.service.test_late_payments import cancelled_while_payment_pending

    made = [cancelled_while_payment_pending(world, hours=48 + 2 * n) for n in range(3)]
    (_, low), (t_mid, mid), (_, high) = sorted(made, key=lambda m: m[1].id)  # ids in order: the mutants' sides
    world.book_and_pay(world.parent(), t_mid, starts_at=mid.starts_at)  # mid's slot taken meanwhile
    assert mid.stripe_session_id and low.stripe_session_id and high.stripe_session_id
    assert world.deliver(world.fake.settle_async(mid.stripe_session_id)) == "late_payment_refunded"
    assert world.deliver(world.fake.settle_async(low.stripe_session_id)) == "late_payment_confirmed"
    assert world.deliver(world.fake.settle_async(high.stripe_session_id)) == "late_payment_confirmed"
    assert [world.view(b.id).status for b in (low, mid, high)] == [1, 3, 1]


def test_a_refused_refund_with_one_minor_unit_left_at_stripe_asks_for_that_unit(world: World):
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    assert paid.stripe_payment_intent_id is not None
    world.fake.refund_in_dashboard(paid.stripe_payment_intent_id, 5999)  # the event lost: 1 left
    give_back(world, admin, paid.id, 1000, key="refused")  # more than is left: refused
    assert world.refunds(paid.id) == [(1000, "failed"), (1, "succeeded")]
    assert world.fake.payments[paid.stripe_payment_intent_id].left == 0
    assert world.view(paid.id).refunded_amount == 6000


@pytest.mark.parametrize("answer", ["succeeded", "pending", "canceled"])
def test_a_refund_stripe_did_not_refuse_is_never_replaced(world: World, answer: str):
    # Only a `failed` refund is replaced by what is left; one Stripe accepted (succeeded, or still
    # processing: Stripe's "pending") or that was canceled is not, whatever a caller asks.
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.refund_status = answer
    give_back(world, admin, paid.id, 1000, key=answer)
    [(refund_id, _, status, _)] = world.refunds_asked(paid.id)
    assert status == {"pending": "processing"}.get(answer, answer)
    replaced = world.svc.tx_sync(refunds.replace_refused, refund_id=refund_id, refunded_at_stripe=0, now=utc_now())
    assert replaced is None and world.refunds(paid.id) == [(1000, status)]


def test_a_pending_refund_is_sent_again_once_it_is_exactly_the_grace_old(world: World):
    from tutorbook.jobs.reconcile import REFUND_GRACE

    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"))
    give_back(world, admin, paid.id, 1500, key="later")
    [(_, _, status, asked_at)] = world.refunds_asked(paid.id)
    assert status == "pending"
    young = world.job("reconcile", at=asked_at + REFUND_GRACE - timedelta(microseconds=1))
    assert young.counts().get("refund_succeeded") is None
    assert world.job("reconcile", at=asked_at + REFUND_GRACE).counts().get("refund_succeeded") == 1
    assert world.refunds(paid.id) == [(1500, "succeeded")]


def test_two_refunds_answered_newest_first_are_each_told_to_the_parent(world: World):
    # The first refund Stripe could not take at once is sent again by reconcile after the second
    # was accepted: each is still told once ("refund issued", its place among the booking's
    # refunds being the notice's version), so the parent hears of both.
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"))
    give_back(world, admin, paid.id, 1000, key="first")
    give_back(world, admin, paid.id, 2000, key="second")
    assert world.refunds(paid.id) == [(1000, "pending"), (2000, "succeeded")]
    assert world.job("reconcile", at=later(1)).counts().get("refund_succeeded") == 1
    assert world.refunds(paid.id) == [(1000, "succeeded"), (2000, "succeeded")]
    assert world.view(paid.id).refunded_amount == 3000
    assert world.mail_sent(paid.id, at=later(1)).get("refund_issued.parent") == 2


def test_stripes_answer_for_one_pending_refund_changes_that_refund_alone(world: World):
    # Two refunds of one booking wait to be sent (Stripe was down for both); the answer for each,
    # whichever id sorts first, is written on its own row: the other stays pending, to be sent.
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"), times=2)
    give_back(world, admin, paid.id, 1000, key="one")
    give_back(world, admin, paid.id, 2000, key="two")
    low, high = sorted(world.refunds_asked(paid.id))  # by id
    assert (low[2], high[2]) == ("pending", "pending")
    assert followups.send_refund(world.svc, refund_id=low[0]) == "succeeded"
    status = {r[0]: r[2] for r in world.refunds_asked(paid.id)}
    assert (status[low[0]], status[high[0]]) == ("succeeded", "pending")
    assert world.view(paid.id).refunded_amount == low[1]
    assert followups.send_refund(world.svc, refund_id=high[0]) == "succeeded"
    assert world.view(paid.id).refunded_amount == 3000 and len(world.fake.refunds) == 2


def test_a_refused_destination_charge_is_refunded_with_the_teachers_share_pulled_back(world: World):
    # A payment through another checkout naming the booking, made as a destination charge to the
    # teacher: refused (other_checkout) and refunded in full, the transfer reversed and the fee
    # refunded, so neither the teacher nor the platform keeps any of it.
    from tests.service.test_late_payments import a_foreign_checkout_paid_for

    t = world.payable_teacher(rate=6000)
    booked = world.book(world.parent(), t, starts_at=hours_from_now(48))
    foreign_id = a_foreign_checkout_paid_for(world, booked.id)
    intent = world.fake.sessions[foreign_id].payment_intent
    [refund] = [r for r in world.fake.refunds if r.payment_intent == intent]
    assert (refund.amount, refund.reverse_transfer, refund.refund_application_fee) == (6000, True, True)
    assert world.fake.payments[str(intent)].transfer_reversed == world.fake.payments[str(intent)].transfer_amount
    assert world.view(booked.id).status == 0  # Pending: its own checkout still open


def test_two_refunds_asked_at_the_same_instant_are_each_told_to_the_parent(world: World):
    # Refund rows asked in one transaction share its instant: the notice's version (a refund's
    # place among the booking's refunds) tells them apart by id, so the parent hears of each.
    from tutorbook.bookings import lookup

    t = world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    at = utc_now()

    def ask_two(s):
        booking = lookup.must_get(s, booking_id=paid.id)
        return [refunds.request(s, booking=booking, amount=a, reason="admin_refund", now=at).id for a in (1000, 2000)]

    for refund_id in sorted(world.svc.tx_sync(ask_two), reverse=True):
        assert followups.send_refund(world.svc, refund_id=refund_id) == "succeeded"
    assert world.view(paid.id).refunded_amount == 3000
    assert world.mail_sent(paid.id).get("refund_issued.parent") == 2


def test_a_refund_asked_and_not_yet_accepted_counts_against_what_is_left(world: World):
    # Stripe was down when the first refund was asked: it waits, pending, to be sent again. What
    # is left to give back already counts it, so a second refund cannot ask for it twice.
    admin, t = world.admin(), world.teacher(rate=6000)
    paid = world.book_and_pay(world.parent(), t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", GatewayError("down"))
    give_back(world, admin, paid.id, 1000, key="waiting")
    assert world.refunds(paid.id) == [(1000, "pending")] and world.view(paid.id).refunded_amount == 0
    assert left(world, admin, paid.id) == 5000
