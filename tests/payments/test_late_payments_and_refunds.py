"""Late payments (confirm or refund), cancelling a Confirmed booking with the refund policy."""

from datetime import UTC, datetime, timedelta

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import http_client, http_get, wait_for
from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import Role
from tutorbook.bookings import settling
from tutorbook.bookings.lifecycle import Reason
from tutorbook.clock import utc_now


def cancel_locally(api, booking_id, reason=Reason.CHECKOUT_EXPIRED):
    """As if the app cancelled while Stripe's expire call was lost: the checkout stays open."""
    import uuid

    api.state.services.tx_sync(
        settling.cancel_unpaid, booking_id=uuid.UUID(booking_id), reason=reason, actor="test", now=utc_now()
    )


def wait_status(api, booking_id, status):
    return wait_for(
        lambda: (r := pay.booking_row(api.state.db, booking_id)).status == status and r, message=f"status {status}"
    )


def test_a_late_payment_confirms_the_booking_when_the_slot_is_still_free(api, c):
    t, p = f.teacher(c), f.parent(c)
    b = f.book(p, t).json()["data"]
    cancel_locally(api, b["id"])
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    row = wait_status(api, b["id"], 1)
    assert row.cancellation_reason is None and row.paid_at is not None
    assert pay.history(api.state.db, b["id"]) == [
        (None, 0, "booked"),
        (0, 3, "checkout_expired"),
        (3, 1, "late_payment_confirmed"),
    ]
    assert [x["id"] for x in p["client"].get("/api/Sessions/my-bookings").json()["data"]["items"]] == [b["id"]]


def test_a_late_payment_for_a_slot_taken_meanwhile_is_refunded_in_full(api, c, sandbox):
    t, p, other = f.teacher(c, rate=4000), f.parent(c), f.parent(c)
    b = f.book(p, t).json()["data"]
    cancel_locally(api, b["id"])
    taken = f.book(other, t, starts_at=b["startsAt"])
    assert taken.status_code == 201
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    wait_for(lambda: [r.status for r in pay.refunds(api.state.db, b["id"])] == ["succeeded"], message="refund")
    row = pay.booking_row(api.state.db, b["id"])
    assert row.status == 3 and row.refunded_amount == 4000
    assert pay.history(api.state.db, b["id"])[-1] == (3, 3, "late_payment_refunded")
    [refund] = pay.refunds(api.state.db, b["id"])
    assert refund.stripe_refund_id.startswith("re_") and refund.amount == 4000 and refund.reason == "late_payment"
    # Money is back at "Stripe": the charge is fully refunded.
    pi = pay.sandbox_session(sandbox, b["stripeSessionId"])["payment_intent"]
    r = http_get(
        f"{sandbox.base_url}/v1/payment_intents/{pi}",
        params={"expand[]": "latest_charge"},
        headers={"Authorization": "Bearer sk_test_sandbox"},
    )
    assert r.json()["latest_charge"]["amount_refunded"] == 4000
    # Delivering the same payment again does not refund twice.
    p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    assert len(pay.refunds(api.state.db, b["id"])) == 1


def confirmed_booking(c, *, days=3, rate=6000):
    t, p = f.teacher(c, rate=rate), f.parent(c)
    b = f.book(p, t, starts_at=f.slot(days=days)).json()["data"]
    pay.pay(b["checkoutUrl"])
    r = p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    assert r.json()["data"]["status"] == 1
    return t, p, r.json()["data"]


def test_a_parent_cancelling_early_gets_a_full_refund(api, c):
    t, p, b = confirmed_booking(c, days=3)
    r = p["client"].post(f"/api/Sessions/{b['id']}/cancel")
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["status"] == 3 and data["cancellationReason"] == "parent_cancelled"
    assert data["refundedAmount"] == 6000
    [refund] = pay.refunds(api.state.db, b["id"])
    assert refund.status == "succeeded" and refund.stripe_refund_id.startswith("re_")
    assert pay.history(api.state.db, b["id"])[-1] == (1, 3, "parent_cancelled")
    # Paid-then-cancelled bookings stay visible in My Bookings as Cancelled.
    items = p["client"].get("/api/Sessions/my-bookings").json()["data"]["items"]
    assert [(x["id"], x["statusName"]) for x in items] == [(b["id"], "Cancelled")]


def test_a_parent_cancelling_late_gets_no_refund(api, c):
    t, p = f.teacher(c), f.parent(c)
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    b = f.book(p, t, starts_at=soon.isoformat().replace("+00:00", "Z")).json()["data"]
    pay.pay(b["checkoutUrl"])
    p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    data = p["client"].post(f"/api/Sessions/{b['id']}/cancel").json()["data"]
    assert data["status"] == 3 and data["refundedAmount"] == 0
    assert pay.refunds(api.state.db, b["id"]) == []


def test_a_teacher_cancelling_refunds_in_full_and_others_cannot_cancel(api, c):
    t, p, b = confirmed_booking(c, days=1)
    stranger, other_teacher = f.parent(c), f.teacher(c)
    assert stranger["client"].post(f"/api/Sessions/{b['id']}/cancel").status_code == 403
    assert other_teacher["client"].post(f"/api/Sessions/{b['id']}/cancel").status_code == 403
    data = t["client"].post(f"/api/Sessions/{b['id']}/cancel").json()["data"]
    assert data["cancellationReason"] == "teacher_cancelled" and data["refundedAmount"] == 6000
    again = t["client"].post(f"/api/Sessions/{b['id']}/cancel")
    assert again.status_code == 200 and len(pay.refunds(api.state.db, b["id"])) == 1


def test_an_admin_can_cancel_any_booking_with_a_full_refund(api, c):
    t, p, b = confirmed_booking(c, days=1)
    with api.state.db.session_scope() as s:
        accounts.create_user(
            s,
            hasher=api.state.hasher,
            settings=api.state.settings,
            email="root@example.com",
            password=f.PASSWORD,
            full_name="Root",
            role=Role.ADMIN,
            now=utc_now(),
        )
    admin = http_client(
        base_url=api.state.base_url,
        timeout=30,
        headers={"Authorization": "Bearer " + f.login(c, email="root@example.com")},
    )
    data = admin.post(f"/api/Sessions/{b['id']}/cancel").json()["data"]
    assert data["cancellationReason"] == "admin_cancelled" and data["refundedAmount"] == 6000


def test_completing_needs_the_teacher_after_the_start(api, c):
    t, p, b = confirmed_booking(c, days=1)
    assert p["client"].post(f"/api/Sessions/{b['id']}/complete").status_code == 403
    r = t["client"].post(f"/api/Sessions/{b['id']}/complete")
    assert r.status_code == 400 and pay.booking_row(api.state.db, b["id"]).status == 1


def _request_refund(api, booking_id, amount):
    import uuid

    from tutorbook.bookings import refunds
    from tutorbook.bookings import repository as repo

    def request(session):
        booking = repo.get(session, uuid.UUID(booking_id))
        return refunds.request(session, booking=booking, amount=amount, reason="parent_cancelled", now=utc_now()).id

    return api.state.services.tx_sync(request)


def test_a_refund_is_counted_once_when_its_webhook_is_handled_before_its_answer(api, c):
    """charge.refunded (Stripe's total) may be handled before the app records Stripe's answer
    to its refund call; refunded_amount is a total either way, never the two added up."""
    from tests.support import webhooks as wh
    from tutorbook.flows.followups import send_refund

    _, _, b = confirmed_booking(c, days=3)
    intent = pay.booking_row(api.state.db, b["id"]).stripe_payment_intent_id
    refund_id = _request_refund(api, b["id"], 6000)
    charge = {"object": "charge", "id": "ch_x", "payment_intent": intent, "amount_refunded": 6000, "refunded": True}
    assert wh.post(api.state.base_url, wh.event("charge.refunded", charge)).json()["data"] == "refund_recorded"
    assert pay.booking_row(api.state.db, b["id"]).refunded_amount == 6000

    assert send_refund(api.state.services, refund_id=refund_id) == "succeeded"
    assert pay.booking_row(api.state.db, b["id"]).refunded_amount == 6000


def test_a_refund_stripe_is_still_processing_is_not_sent_again(api, c, monkeypatch):
    from tutorbook.bookings import refunds
    from tutorbook.flows.followups import send_refund
    from tutorbook.payments import gateway as gw

    _, _, b = confirmed_booking(c, days=3)
    refund_id = _request_refund(api, b["id"], 2500)
    svc = api.state.services
    monkeypatch.setattr(svc.gateway, "refund_sync", lambda **kw: gw.RefundResult("re_processing", "pending", 2500))
    assert send_refund(svc, refund_id=refund_id) == "processing"
    with api.state.db.session_scope() as s:
        assert refund_id not in refunds.pending_ids(s, older_than=utc_now())
    assert pay.booking_row(api.state.db, b["id"]).refunded_amount == 2500
    assert send_refund(svc, refund_id=refund_id) == "processing"  # a second call changes nothing
    assert pay.booking_row(api.state.db, b["id"]).refunded_amount == 2500
