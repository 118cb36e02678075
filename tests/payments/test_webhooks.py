"""The webhook endpoint: signed, handled once, order-proof, and never cancelling a paid booking."""

import json
import time

import pytest
import sqlalchemy as sa

from tests import factories as f
from tests.support import payments as pay
from tests.support import webhooks as wh
from tests.support.servers import http_post
from tutorbook.payments.models import StripeEvent
from tutorbook.payments.webhooks import HANDLED


@pytest.fixture
def pending(api, c, sandbox):
    pay.sandbox_config(sandbox, deliver_webhooks=False)  # these tests deliver events themselves
    t, p = f.teacher(c), f.parent(c)
    b = f.book(p, t).json()["data"]
    return {"p": p, "t": t, "b": b}


def checkout_object(sandbox, b) -> dict:
    return pay.sandbox_session(sandbox, b["stripeSessionId"])


def snapshot(db, booking_id):
    row = pay.booking_row(db, booking_id)
    return (row.status, row.paid_at, row.cancellation_reason, len(pay.history(db, booking_id)))


def events_recorded(db) -> int:
    with db.session_scope() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(StripeEvent))


def test_a_completed_event_confirms_once_even_when_delivered_twice(api, sandbox, pending):
    b = pending["b"]
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    evt = wh.event("checkout.session.completed", checkout_object(sandbox, b))
    first, second = wh.post(api.state.base_url, evt), wh.post(api.state.base_url, evt)
    assert first.json()["data"] == "confirmed" and second.json()["data"] == "duplicate"
    assert pay.history(api.state.db, b["id"]) == [(None, 0, "booked"), (0, 1, "paid")]
    # The same payment seen again through another event id is still a no-op.
    again = wh.post(api.state.base_url, wh.event("checkout.session.completed", checkout_object(sandbox, b)))
    assert again.json()["data"] == "already_fulfilled"


def test_an_expired_event_after_completed_never_cancels_a_paid_booking(api, sandbox, pending):
    b = pending["b"]
    pay.pay(b["checkoutUrl"])
    paid = checkout_object(sandbox, b)
    wh.post(api.state.base_url, wh.event("checkout.session.completed", paid))
    stale = dict(paid, status="expired", payment_status="unpaid")
    r = wh.post(api.state.base_url, wh.event("checkout.session.expired", stale))
    assert r.status_code == 200 and r.json()["data"] == "no_change"
    assert pay.booking_row(api.state.db, b["id"]).status == 1


def test_an_expired_event_cancels_a_pending_booking(api, sandbox, pending):
    b = pending["b"]
    expired = dict(checkout_object(sandbox, b), status="expired")
    r = wh.post(api.state.base_url, wh.event("checkout.session.expired", expired))
    assert r.json()["data"] == "checkout_expired"
    row = pay.booking_row(api.state.db, b["id"])
    assert (row.status, row.cancellation_reason) == (3, "checkout_expired")
    assert pending["p"]["client"].get("/api/Sessions/my-bookings").json()["data"]["items"] == []


def test_the_apps_own_expiry_says_why_so_a_webhook_that_overtakes_the_cancel_records_the_parent(api, sandbox, pending):
    """The parent presses Back: the app expires the checkout, and Stripe's expired event may be
    handled before the app writes its cancellation. The event carries the app's reason."""
    b, p = pending["b"], pending["p"]
    r = p["client"].post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}")
    assert r.status_code == 200
    [event] = [
        e
        for e in pay.sandbox_events(sandbox, "checkout.session.expired")
        if e["data"]["object"]["id"] == b["stripeSessionId"]
    ]
    assert event["request"]["idempotency_key"] == f"tutorbook-expire:payment_cancelled:{b['stripeSessionId']}"

    # Replayed on a second booking whose cancel the webhook overtakes: the reason is the parent's.
    other = f.book(p, pending["t"], starts_at=f.slot(days=5)).json()["data"]
    overtaking = dict(
        event, id="evt_overtaking", data={"object": dict(checkout_object(sandbox, other), status="expired")}
    )
    overtaking["request"] = {
        "id": "req_1",
        "idempotency_key": f"tutorbook-expire:payment_cancelled:{other['stripeSessionId']}",
    }
    assert wh.post(api.state.base_url, overtaking).json()["data"] == "payment_cancelled"
    assert pay.history(api.state.db, other["id"])[-1] == (0, 3, "payment_cancelled")


@pytest.mark.parametrize("key", [None, "tutorbook-expire:paid:cs_x", "tutorbook-expire:nonsense:cs_x", "other-key"])
def test_an_expiry_without_a_usable_reason_is_a_plain_expiry(api, sandbox, pending, key):
    b = pending["b"]
    evt = wh.event("checkout.session.expired", dict(checkout_object(sandbox, b), status="expired"))
    evt["request"] = {"id": "req_1" if key else None, "idempotency_key": key}
    assert wh.post(api.state.base_url, evt).json()["data"] == "checkout_expired"
    assert pay.booking_row(api.state.db, b["id"]).cancellation_reason == "checkout_expired"


def test_a_completed_event_for_an_unpaid_async_payment_waits(api, sandbox, pending):
    b = pending["b"]
    unpaid = dict(checkout_object(sandbox, b), status="complete", payment_status="unpaid")
    r = wh.post(api.state.base_url, wh.event("checkout.session.completed", unpaid))
    assert r.json()["data"] == "awaiting_payment"
    assert pay.booking_row(api.state.db, b["id"]).status == 0


def test_async_payment_failed_cancels_the_pending_booking(api, sandbox, pending):
    b = pending["b"]
    obj = dict(checkout_object(sandbox, b), status="complete", payment_status="unpaid")
    r = wh.post(api.state.base_url, wh.event("checkout.session.async_payment_failed", obj))
    assert r.json()["data"] == "payment_failed"
    assert pay.booking_row(api.state.db, b["id"]).cancellation_reason == "payment_failed"


@pytest.mark.parametrize(
    "attack", ["forged", "wrong_secret", "stale", "future", "no_header", "malformed_json", "oversized"]
)
def test_attacks_are_refused_and_change_nothing(api, sandbox, pending, attack):
    b = pending["b"]
    pay.pay(b["checkoutUrl"])
    before, recorded = snapshot(api.state.db, b["id"]), events_recorded(api.state.db)
    payload = json.dumps(wh.event("checkout.session.completed", checkout_object(sandbox, b))).encode()
    url = f"{api.state.base_url}/api/StripeWebhook/webhook"
    headers = {"Stripe-Signature": wh.signature(payload)}
    if attack == "forged":
        payload = payload.replace(b'"paid"', b'"paid" ')  # body changed after signing
    elif attack == "wrong_secret":
        headers["Stripe-Signature"] = wh.signature(payload, secret="whsec_attacker")
    elif attack == "stale":
        headers["Stripe-Signature"] = wh.signature(payload, timestamp=int(time.time()) - 301)
    elif attack == "future":  # an hour ahead: replayable for an hour and five minutes if it were taken
        headers["Stripe-Signature"] = wh.signature(payload, timestamp=int(time.time()) + 3600)
    elif attack == "no_header":
        headers = {}
    elif attack == "malformed_json":
        payload = b"{not json"
        headers["Stripe-Signature"] = wh.signature(payload)
    elif attack == "oversized":
        payload = b"{" + b" " * (600 * 1024) + b"}"
        headers["Stripe-Signature"] = wh.signature(payload)
    r = http_post(url, content=payload, headers=headers, timeout=30)
    assert r.status_code in (400, 413) and r.json()["success"] is False
    assert snapshot(api.state.db, b["id"]) == before
    assert events_recorded(api.state.db) == recorded


def test_a_replayed_event_with_a_fresh_signature_is_a_no_op(api, sandbox, pending):
    b = pending["b"]
    pay.pay(b["checkoutUrl"])
    evt = wh.event("checkout.session.completed", checkout_object(sandbox, b))
    wh.post(api.state.base_url, evt)
    before = snapshot(api.state.db, b["id"])
    r = wh.post(api.state.base_url, evt, timestamp=int(time.time()) + 1)
    assert r.status_code == 200 and r.json()["data"] == "duplicate"
    assert snapshot(api.state.db, b["id"]) == before


def test_unhandled_event_types_are_acknowledged(api):
    r = wh.post(api.state.base_url, wh.event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert r.status_code == 200 and r.json()["data"] == "ignored"


def test_events_from_the_sandbox_are_signed_so_the_app_accepts_them(api, sandbox, c):
    pay.sandbox_config(sandbox, deliver_webhooks=True)
    t, p = f.teacher(c), f.parent(c)
    b = f.book(p, t).json()["data"]
    pay.pay(b["checkoutUrl"])
    with api.state.db.session_scope() as s:
        outcomes = list(s.scalars(sa.select(StripeEvent.outcome)))
    assert outcomes == ["confirmed"]


def test_an_ignored_type_is_recorded_in_one_statement_and_a_redelivery_is_a_duplicate(api, pending):
    evt = wh.event("payment_intent.created", {"object": "payment_intent", "id": "pi_ignored"})
    assert wh.post(api.state.base_url, evt).json()["data"] == "ignored"
    assert wh.post(api.state.base_url, evt).json()["data"] == "duplicate"
    with api.state.db.session_scope() as s:
        assert s.get(StripeEvent, evt["id"]).outcome == "ignored"


@pytest.mark.parametrize("type_", sorted(HANDLED))
def test_every_handled_type_is_dispatched(api, pending, type_):
    obj = {"object": "checkout.session", "id": "cs_unknown", "payment_status": "paid", "status": "complete"}
    if type_ == "charge.refunded":
        obj = {"object": "charge", "id": "ch_unknown", "payment_intent": "pi_unknown", "amount_refunded": 100}
    outcome = wh.post(api.state.base_url, wh.event(type_, obj)).json()["data"]
    assert outcome not in ("ignored", "duplicate")


def test_ignored_events_arriving_together_are_each_answered_as_if_sent_one_by_one(api, pending):
    """On PostgreSQL events of an ignored type that arrive together share one INSERT (the
    webhook's Coalescer); each still gets its own answer: the first delivery of an id `ignored`,
    every other `duplicate`, and each id recorded once."""
    from concurrent.futures import ThreadPoolExecutor

    base = api.state.base_url
    events = [wh.event("customer.updated", {"object": "customer", "id": f"cus_{i}"}) for i in range(12)]
    sends = events * 3  # every event delivered three times, all at once
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda e: (e["id"], wh.post(base, e)), sends))
    assert all(r.status_code == 200 for _, r in answers)
    by_id: dict[str, list[str]] = {}
    for event_id, r in answers:
        by_id.setdefault(event_id, []).append(r.json()["data"])
    assert {event_id: sorted(kinds) for event_id, kinds in by_id.items()} == {
        e["id"]: ["duplicate", "duplicate", "ignored"] for e in events
    }
    with api.state.db.session_scope() as s:
        rows = s.execute(sa.select(StripeEvent.id, StripeEvent.outcome, StripeEvent.type)).all()
    assert sorted(rows) == sorted((e["id"], "ignored", "customer.updated") for e in events)


def test_a_batch_of_ignored_events_names_a_repeat_within_it_and_one_seen_before_duplicates(database_url):
    """`record_ignored_many`, the batch's one statement (PostgreSQL)."""
    import asyncio

    from tutorbook.clock import utc_now
    from tutorbook.db import Database
    from tutorbook.payments import webhooks

    if database_url.startswith("sqlite"):
        pytest.skip("the batched INSERT is PostgreSQL's (SQLite records an event in a statement of its own)")
    db = Database(database_url, pool_size=1)
    seen = {"id": "evt_batch_seen", "type": "customer.created"}
    fresh = {"id": "evt_batch_fresh", "type": "invoice.paid"}

    async def main():
        try:
            async with db.async_connection() as conn:
                first = await webhooks.record_ignored_many(conn, [seen], now=utc_now())
            async with db.async_connection() as conn:
                second = await webhooks.record_ignored_many(conn, [fresh, seen, fresh], now=utc_now())
            return first, second
        finally:
            await db.dispose_async()

    try:
        first, second = asyncio.run(main())
        assert [o.kind for o in first] == ["ignored"]
        assert [o.kind for o in second] == ["ignored", "duplicate", "duplicate"]
        with db.session_scope() as s:
            mine = sa.select(StripeEvent.id, StripeEvent.type).where(StripeEvent.id.like("evt_batch_%"))
            rows = dict(s.execute(mine).all())
        assert rows == {"evt_batch_seen": "customer.created", "evt_batch_fresh": "invoice.paid"}
    finally:
        with db.session_scope() as s:
            s.execute(sa.delete(StripeEvent).where(StripeEvent.id.like("evt_batch_%")))
        db.dispose()


def test_a_webhook_body_over_512_kib_is_refused_before_its_signature_and_one_of_512_kib_is_read(api):
    url = f"{api.state.base_url}/api/StripeWebhook/webhook"
    limit = 512 * 1024  # the webhook's own bound, under the app's 1 MiB
    recorded = events_recorded(api.state.db)
    for size, status in ((limit + 1, 413), (limit, 400)):  # 400: read, then its signature is checked
        payload = b"{" + b" " * (size - 2) + b"}"
        assert len(payload) == size
        r = http_post(url, content=payload, headers={"Stripe-Signature": "t=1,v1=bad"}, timeout=30)
        assert (r.status_code, r.json()["success"]) == (status, False), size
    assert events_recorded(api.state.db) == recorded
