"""Booking and paying: book -> checkout -> paid -> Confirmed, once however many times it is told."""

from __future__ import annotations

import pytest

from tests.service.world import World, hours_from_now, later, refused
from tutorbook.bookings.schemas import session_out
from tutorbook.flows import booking as flows
from tutorbook.payments.port import GatewayError, GatewayTimeout, Refused

pytestmark = pytest.mark.service

PENDING, CONFIRMED, COMPLETED, CANCELLED = 0, 1, 2, 3


def test_a_booking_opens_a_checkout_for_its_price_and_holds_the_slot_pending(world: World):
    t, p = world.teacher(rate=6000), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48), minutes=90)
    assert (booked.status, booked.price_amount, booked.currency) == (PENDING, 9000, "usd")
    checkout = world.fake.session_of(booked.id)
    assert booked.stripe_session_id == checkout.id and booked.checkout_url == f"https://checkout.fake/{checkout.id}"
    assert (checkout.amount, checkout.currency, checkout.status, checkout.destination) == (9000, "usd", "open", None)
    assert checkout.customer_email == p[0].email and "Mathematics" in checkout.product_name
    with refused(409):  # the slot is held
        world.book(world.parent(), t, starts_at=booked.starts_at + (booked.ends_at - booked.starts_at) / 3)


def test_a_paid_checkout_confirms_the_booking_with_its_payment_and_meeting_link(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    assert world.deliver(world.fake.pay(booked.stripe_session_id)) == "confirmed"
    paid = world.view(booked.id)
    assert paid.status == CONFIRMED and paid.status_name == "Confirmed"
    assert paid.paid_at is not None and paid.meeting_url and paid.refunded_amount == 0
    assert paid.stripe_payment_intent_id == world.fake.session_of(booked.id).payment_intent
    assert [(h.from_status, h.to_status) for h in world.history(booked.id)] == [(None, PENDING), (PENDING, CONFIRMED)]
    assert paid.terms is not None and paid.terms.full_refund_hours == world.settings.refund_full_before_hours


def test_the_webhook_twice_and_the_success_page_confirm_once(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    completed = world.fake.pay(booked.stripe_session_id)
    assert world.deliver(completed) == "confirmed"
    assert world.deliver(completed) == "duplicate"  # the same event id: recorded once
    page = world.run(flows.confirm_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert page.status == CONFIRMED
    again = world.run(flows.fulfil(world.svc, checkout=world.fake.checkout(booked.id), actor="job"))
    assert again.kind == "already_fulfilled"
    assert [h.to_status for h in world.history(booked.id)] == [PENDING, CONFIRMED]
    assert world.fake.refunds == []
    # Sent once: one confirmation to each side (the payment nudge, due later, is dropped as paid).
    assert world.mail_sent(booked.id, at=later(1)) == {"confirmed.parent": 1, "confirmed.teacher": 1}
    world.deliver(completed)
    assert world.mail_sent(booked.id, at=later(2)) == {"confirmed.parent": 1, "confirmed.teacher": 1}


def test_the_success_page_before_the_webhook_confirms_and_the_webhook_then_changes_nothing(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(30))
    assert booked.stripe_session_id is not None
    completed = world.fake.pay(booked.stripe_session_id)
    page = world.run(flows.confirm_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert page.status == CONFIRMED and page.meeting_url
    assert world.deliver(completed) == "already_fulfilled"
    assert [h.to_status for h in world.history(booked.id)] == [PENDING, CONFIRMED]
    assert world.mail_sent(booked.id) == {"confirmed.parent": 1, "confirmed.teacher": 1}


def test_the_success_page_after_the_webhook_answers_from_the_record_without_asking_stripe(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book_and_pay(p, t, starts_at=hours_from_now(30))
    assert booked.stripe_session_id is not None
    world.fake.calls.clear()
    world.fake.fail_next("retrieve_checkout", GatewayError("Stripe is down"))  # not asked: no 502
    page = world.run(flows.confirm_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert page.status == CONFIRMED and page.meeting_url and page.id == booked.id
    assert world.fake.called("retrieve_checkout") == []
    assert [h.to_status for h in world.history(booked.id)] == [PENDING, CONFIRMED]
    assert world.mail_sent(booked.id) == {"confirmed.parent": 1, "confirmed.teacher": 1}
    with refused(403):  # someone else's booking is still refused, before any answer
        world.run(flows.confirm_payment(world.svc, parent=world.parent()[0], checkout_id=booked.stripe_session_id))


def test_the_success_page_of_a_pending_booking_still_asks_stripe_and_never_confirms_it_unpaid(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(30))
    assert booked.stripe_session_id is not None
    page = world.run(flows.confirm_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert page.status == PENDING
    assert world.fake.called("retrieve_checkout") == [{"checkout_id": booked.stripe_session_id}]
    world.fake.fail_next("retrieve_checkout", GatewayError("Stripe is down"))
    with refused(502):
        world.run(flows.confirm_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert world.view(booked.id).status == PENDING


def test_the_same_parent_retrying_the_same_slot_gets_the_same_open_checkout(world: World):
    t, p = world.teacher(), world.parent()
    start = hours_from_now(48)
    first = world.book(p, t, starts_at=start)
    again = world.book(p, t, starts_at=start)
    assert again.id == first.id and again.stripe_session_id == first.stripe_session_id
    assert len(world.fake.sessions) == 1


@pytest.mark.parametrize("error,answer", [(GatewayError("refused"), 502), (GatewayTimeout("timed out"), 504)])
def test_stripe_unreachable_at_booking_charges_nothing_and_frees_the_slot(world: World, error, answer):
    t, p = world.teacher(), world.parent()
    start = hours_from_now(48)
    world.fake.fail_next("create_checkout", error)
    with refused(answer):
        world.book(p, t, starts_at=start)
    assert world.fake.sessions == {}
    assert [(b.status, b.cancellation_reason) for b in world.every_booking()] == [(CANCELLED, "checkout_failed")]
    again = world.book(world.parent(), t, starts_at=start)  # the slot is free again
    assert again.status == PENDING


def test_a_checkout_stripe_refuses_says_so_and_cancels_the_booking(world: World):
    t, p = world.teacher(), world.parent()
    world.fake.fail_next("create_checkout", Refused("Amount must be at least $0.50 usd"))
    with refused(422) as caught:
        world.book(p, t, starts_at=hours_from_now(48))
    assert "refused" in str(caught[0]) and "at least $0.50" in str(caught[0])
    assert [(b.status, b.cancellation_reason) for b in world.every_booking()] == [(CANCELLED, "checkout_failed")]


def test_the_success_page_of_an_unpaid_checkout_answers_the_whole_booking_as_the_api_shows_it(world: World):
    # Fulfilment answers `awaiting_payment` and the page shows the booking it read, after its
    # transaction: that booking carries its meeting link and terms (none yet), not a lazy read
    # that would fail outside the transaction (the API's answer: a 500 instead of "waiting").
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(30))
    assert booked.stripe_session_id is not None
    page = world.run(flows.confirm_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    shown = session_out(page)
    assert shown.id == booked.id and shown.status == PENDING
    assert shown.meeting_url is None
    assert shown == world.view(booked.id)


@pytest.mark.parametrize(
    ("booked_in", "paid_in"), [("usd", "eur"), ("eur", "usd")], ids=["paid_in_one_sorting_before", "after"]
)
def test_a_payment_in_another_currency_is_refused_and_refunded_whichever_way_the_currencies_sort(
    world: World, booked_in: str, paid_in: str
):
    t, p = world.teacher(rate=6000, currency=booked_in), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    own = world.fake.session_of(booked.id)
    own.currency = paid_in  # the same number of minor units, in another currency
    assert world.deliver(world.fake.pay(own.id)) == "currency_mismatch"
    assert world.view(booked.id).status == PENDING
    assert world.refunds(booked.id) == [(booked.price_amount, "succeeded")]


def test_a_paid_checkout_that_charged_nothing_is_refused_with_no_refund_and_no_change(world: World):
    # A checkout completed for 0 (nothing charged: e.g. a full discount) cannot pay the booking's
    # price: it is refused, and with nothing to give back no refund is asked nor recorded.
    t, p = world.teacher(rate=6000), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    own = world.fake.session_of(booked.id)
    own.amount = 0
    assert world.deliver(world.fake.pay(own.id)) == "amount_mismatch"
    assert world.view(booked.id).status == PENDING
    assert world.refunds(booked.id) == []
    assert [h.to_status for h in world.history(booked.id)] == [PENDING]
