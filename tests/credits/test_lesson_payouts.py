"""Issue #28's "Done when", on both databases, against the sandbox: a teacher sets a package; a
parent buys it on the sandbox's checkout; books three lessons with credits (no Stripe call for
them); cancels one early (credit back) and one late (credit used); one lesson completes and the
teacher's transfer is that lesson's share less the fee; the rest is refunded pro rata; the
ledger's sum matches Stripe's money for the purchase and reconcile reports no mismatch. Then the
lesson payouts' own rules: once per lesson, waiting for a teacher without payouts."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests import factories as f
from tests.connect.helpers import onboard, stripe_get
from tests.credits import helpers as h
from tests.jobs.helpers import run, sandbox_since
from tests.support import payments as pay
from tutorbook.admin import reports
from tutorbook.bookings.models import Booking
from tutorbook.clock import utc_now

PRICE, LESSON, FEE = 15000, 5000, 750  # 3 lessons; 15 % of 5,000


def stripe_objects(sandbox) -> tuple[int, int]:
    """How many events and Checkout Sessions the sandbox holds (any Stripe write adds to them)."""
    events = stripe_get(sandbox, "/v1/events", limit=100)["data"]
    sessions = stripe_get(sandbox, "/v1/checkout/sessions", limit=100)["data"]
    return len(events), len(sessions)


def late_lesson(p: dict, t: dict) -> dict:
    """A lesson starting within 24 hours: cancelled, its credit is used up."""
    r = h.book_with_credit(p, t, starts_at=f.slot(days=0, hour=23, minute=55))
    if r.status_code != 201:  # too close to midnight for a slot today: tomorrow, still inside 24 h
        r = h.book_with_credit(p, t, days=1, hour=0, minute=30)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def ends_of(api, booking_id: str):
    with api.state.db.session_scope() as s:
        row = s.get(Booking, uuid.UUID(booking_id))
        return row.ends_at


def purchase_transfers(sandbox, purchase_id: str) -> list[dict]:
    return stripe_get(sandbox, "/v1/transfers", transfer_group=f"purchase_{uuid.UUID(purchase_id).hex}")["data"]


def test_a_package_from_purchase_to_the_teachers_transfer_and_the_refund_reconciles(api, c, sandbox):
    since = sandbox_since(sandbox)
    t, p = f.teacher(c, rate=6000), f.parent(c)
    account = onboard(t)["accountId"]
    pkg = h.package(t, lessons=3, duration=60, price=PRICE)
    bought = h.buy_and_pay(p, pkg)
    before = stripe_objects(sandbox)
    early = h.book_with_credit(p, t, days=3).json()["data"]
    late = late_lesson(p, t)
    delivered = h.book_with_credit(p, t, days=4).json()["data"]
    assert {b["status"] for b in (early, late, delivered)} == {1}
    assert stripe_objects(sandbox) == before  # booking with credits asked Stripe for nothing
    assert p["client"].post(f"/api/Sessions/{early['id']}/cancel").status_code == 200
    assert p["client"].post(f"/api/Sessions/{late['id']}/cancel").status_code == 200
    assert h.credits(p)["total"] == 1  # the early one came back, the late one is used up

    ends = ends_of(api, delivered["id"])
    result = run(api, "complete", now=ends + timedelta(minutes=1))
    assert (uuid.UUID(delivered["id"]), "transferred") in [(i.booking_id, i.outcome) for i in result.items]
    [transfer] = purchase_transfers(sandbox, bought["purchaseId"])
    cs = pay.sandbox_session(sandbox, bought["stripeSessionId"])
    intent = stripe_get(sandbox, f"/v1/payment_intents/{cs['payment_intent']}")
    assert (transfer["amount"], transfer["destination"], transfer["source_transaction"]) == (
        LESSON - FEE,
        account,
        intent["latest_charge"],
    )
    assert transfer["metadata"]["booking_id"] == delivered["id"]
    # Exactly once: the next runs find nothing due.
    again = run(api, "complete", now=ends + timedelta(hours=1))
    assert [i for i in again.items if i.booking_id == uuid.UUID(delivered["id"])] == []
    assert len(purchase_transfers(sandbox, bought["purchaseId"])) == 1

    # The teacher's earnings show the lessons like the others.
    earned = {s["bookingId"]: s for s in t["client"].get("/api/Teachers/me/earnings").json()["data"]["sessions"]}
    lesson = earned[delivered["id"]]
    assert (lesson["gross"], lesson["fee"], lesson["net"], lesson["settled"], lesson["paidOut"]) == (
        LESSON,
        FEE,
        LESSON - FEE,
        True,
        True,
    )
    assert (earned[late["id"]]["net"], earned[late["id"]]["fee"]) == (0, LESSON)  # used up, not delivered
    assert (earned[early["id"]]["net"], earned[early["id"]]["refunded"]) == (0, LESSON)  # credit came back

    # The rest (the returned lesson) refunded pro rata.
    r = p["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/refund")
    assert r.status_code == 200 and r.json()["data"]["refundedAmount"] == LESSON, r.text
    charge = stripe_get(sandbox, f"/v1/charges/{intent['latest_charge']}")
    ledger = h.ledger(p, pageSize=100)["items"]
    assert sum(e["amount"] for e in ledger) == charge["amount"] - charge["amount_refunded"] == PRICE - LESSON
    # The refund leaves the teacher's transfer alone.
    assert purchase_transfers(sandbox, bought["purchaseId"])[0]["amount_reversed"] == 0

    found = reports.reconciliation(api.state.services, now=utc_now(), since=since)
    assert found.mismatches == []

    # Reconcile can tell: a transfer in the purchase's group that no lesson recorded is a finding.
    api.state.services.gateway.create_transfer_sync(
        amount=100,
        currency="usd",
        destination=account,
        source_transaction=intent["latest_charge"],
        transfer_group=f"purchase_{uuid.UUID(bought['purchaseId']).hex}",
        idempotency_key=f"stray-{bought['purchaseId']}",
    )
    found = reports.reconciliation(api.state.services, now=utc_now(), since=since)
    assert [(i.kind, i.subject) for i in found.mismatches] == [
        ("purchase_transfer_mismatch", f"purchase:{bought['purchaseId']}")
    ]


def test_a_teacher_without_payouts_is_paid_once_they_can_receive_them(api, c, sandbox):
    since = sandbox_since(sandbox)
    t, p = f.teacher(c, rate=6000), f.parent(c)
    bought = h.buy_and_pay(p, h.package(t, lessons=2, price=10000))
    lesson = h.book_with_credit(p, t, days=3).json()["data"]
    ends = ends_of(api, lesson["id"])
    result = run(api, "complete", now=ends + timedelta(minutes=1))
    assert [i.outcome for i in result.items if i.booking_id == uuid.UUID(lesson["id"])] == ["completed"]
    assert purchase_transfers(sandbox, bought["purchaseId"]) == []
    found = reports.reconciliation(api.state.services, now=utc_now(), since=since)
    assert [(i.kind, str(i.booking_id)) for i in found.mismatches] == [("payout_missing", lesson["id"])]
    [session] = t["client"].get("/api/Teachers/me/earnings").json()["data"]["sessions"]
    assert (session["net"], session["settled"]) == (0, False)

    onboard(t)
    result = run(api, "complete", now=ends + timedelta(minutes=2))
    assert [i.outcome for i in result.items if i.booking_id == uuid.UUID(lesson["id"])] == ["transferred"]
    [transfer] = purchase_transfers(sandbox, bought["purchaseId"])
    assert transfer["amount"] == 5000 - 750
    assert reports.reconciliation(api.state.services, now=utc_now(), since=since).mismatches == []


def test_a_lesson_is_transferred_once_through_stripe_outages_and_a_lost_record(api, c, sandbox):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    onboard(t)
    bought = h.buy_and_pay(p, h.package(t, lessons=2, price=10000))
    lesson = h.book_with_credit(p, t, days=3).json()["data"]
    ends = ends_of(api, lesson["id"])
    mine = uuid.UUID(lesson["id"])
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        result = run(api, "complete", now=ends + timedelta(minutes=1))
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert [i.outcome for i in result.items if i.booking_id == mine] == ["completed", "stripe_unavailable"]
    assert purchase_transfers(sandbox, bought["purchaseId"]) == []
    result = run(api, "complete", now=ends + timedelta(minutes=2))
    assert [i.outcome for i in result.items if i.booking_id == mine] == ["transferred"]
    # The record lost (a crash between Stripe's answer and the commit): the next run finds the
    # lesson's transfer at Stripe and adopts it; Stripe still has one.
    with api.state.db.session_scope() as s:
        payment = s.get(Booking, mine).payment
        first, fee = payment.stripe_transfer_id, payment.platform_fee_amount
        payment.stripe_transfer_id, payment.transfer_amount = None, 0
    result = run(api, "complete", now=ends + timedelta(minutes=3))
    assert [i.outcome for i in result.items if i.booking_id == mine] == ["transferred"]
    [transfer] = purchase_transfers(sandbox, bought["purchaseId"])
    with api.state.db.session_scope() as s:
        payment = s.get(Booking, mine).payment
        assert (payment.stripe_transfer_id, payment.transfer_amount, payment.platform_fee_amount) == (
            first,
            5000 - 750,
            fee,
        )
    assert transfer["id"] == first
