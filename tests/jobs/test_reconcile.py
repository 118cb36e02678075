"""Reconcile: Stripe's Checkout Sessions against the bookings. Each test looks only at the
checkouts it created (`sandbox_since`): the sandbox is shared by the whole session."""

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests import factories as f
from tests.jobs.helpers import (
    admin_client,
    booked,
    confirmed,
    later,
    paid_at_stripe,
    row,
    run,
    sandbox_since,
    set_columns,
    webhooks_off,
)
from tests.support import payments as pay
from tests.support.servers import http_post
from tutorbook import jobs
from tutorbook.admin import reports
from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.models import Booking, Refund
from tutorbook.clock import utc_now
from tutorbook.jobs import tasks
from tutorbook.payments import gateway as gw


@pytest.fixture
def since(sandbox):
    return sandbox_since(sandbox)


def report(api, since):
    return reports.reconciliation(api.state.services, now=utc_now(), since=since)


def findings(result) -> list[tuple]:
    return sorted((str(i.booking_id or "-"), i.kind, i.outcome) for i in result.mismatches)


def test_a_paid_booking_whose_webhook_was_lost_is_confirmed_by_reconcile(api, c, sandbox, since):
    webhooks_off(sandbox)
    b = paid_at_stripe(c)["b"]
    assert row(api, b["id"]).status == 0
    assert findings(report(api, since)) == [(b["id"], "paid_not_confirmed", "paid_not_confirmed")]
    result = run(api, "reconcile", since=since)
    assert findings(result) == [(b["id"], "paid_not_confirmed", "confirmed")] and result.unsettled == []
    booking = row(api, b["id"])
    assert booking.status == 1 and booking.paid_at and booking.stripe_payment_intent_id and booking.meeting_url
    assert pay.history(api.state.db, b["id"])[-1] == (0, 1, "paid")
    assert report(api, since).mismatches == []  # 0 is the healthy answer


def test_the_report_changes_nothing(api, c, sandbox, since):
    webhooks_off(sandbox)
    b = paid_at_stripe(c)["b"]
    for _ in range(2):
        assert len(report(api, since).mismatches) == 1
    assert row(api, b["id"]).status == 0


def test_a_late_payment_for_a_slot_taken_meanwhile_is_refunded_by_reconcile(api, c, sandbox, since):
    webhooks_off(sandbox)
    x = booked(c, days=3)
    api.state.services.tx_sync(
        tasks.cancel_pending,
        booking_id=uuid.UUID(x["b"]["id"]),
        reason=Reason.CHECKOUT_EXPIRED,
        job="test",
        now=utc_now(),
    )
    booked(c, teacher=x["t"], days=3)  # someone else takes the freed slot
    assert pay.pay(x["b"]["checkoutUrl"]).status_code == 303  # the old page still took the money
    result = run(api, "reconcile", since=since)
    assert findings(result) == [(x["b"]["id"], "paid_not_confirmed", "late_payment_refunded")]
    [refund] = pay.refunds(api.state.db, x["b"]["id"])
    assert refund.status == "succeeded" and refund.amount == 6000
    assert row(api, x["b"]["id"]).status == 3
    assert report(api, since).mismatches == []


def test_a_pending_booking_whose_checkout_expired_at_stripe_is_cancelled(api, c, sandbox, since):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    http_post(
        f"{sandbox.base_url}/v1/checkout/sessions/{b['stripeSessionId']}/expire",
        headers={"Authorization": "Bearer sk_test_sandbox"},
    ).raise_for_status()
    assert findings(run(api, "reconcile", since=since)) == [(b["id"], "pending_but_expired", "checkout_expired")]
    assert row(api, b["id"]).cancellation_reason == "checkout_expired"


def test_what_reconcile_cannot_settle_is_reported_and_left_alone(api, c, sandbox, since):
    webhooks_off(sandbox)
    unpaid = booked(c, days=2)["b"]
    set_columns(api, unpaid["id"], status=1, paid_at=utc_now())  # "Confirmed" without a payment
    orphan = paid_at_stripe(c, days=3)["b"]
    with api.state.db.session_scope() as s:
        s.delete(s.get(Booking, uuid.UUID(orphan["id"])))  # a payment with no booking
    result = run(api, "reconcile", since=since)
    assert findings(result) == sorted(
        [("-", "paid_without_booking", "reported"), (unpaid["id"], "unpaid_at_stripe", "reported")]
    )
    assert len(result.unsettled) == 2
    assert row(api, unpaid["id"]).status == 1
    assert len(report(api, since).mismatches) == 2  # still there for a person to look at


def test_a_refund_stuck_while_stripe_was_down_is_sent_by_reconcile(api, c, sandbox, since):
    x = confirmed(c, days=3)
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        r = x["p"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel")
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert r.status_code == 200 and r.json()["data"]["refundedAmount"] == 0
    [refund] = pay.refunds(api.state.db, x["b"]["id"])
    assert refund.status == "pending"
    assert run(api, "reconcile", since=since).items == []  # too fresh: its own request may still send it
    result = run(api, "reconcile", now=utc_now() + timedelta(minutes=2), since=since)
    assert [(i.outcome, i.refund_id) for i in result.items] == [("refund_succeeded", refund.id)]
    assert row(api, x["b"]["id"]).refunded_amount == 6000
    assert pay.refunds(api.state.db, x["b"]["id"])[0].status == "succeeded"


def test_a_stuck_refund_of_a_payment_stripe_does_not_know_fails_with_a_finding_and_the_run_goes_on(
    api, c, sandbox, since
):
    x = confirmed(c, days=3)
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        assert x["p"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel").status_code == 200
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    [refund] = pay.refunds(api.state.db, x["b"]["id"])
    with api.state.db.session_scope() as s:  # a refund naming a payment Stripe never saw, old enough to retry
        s.execute(
            sa.update(Refund)
            .where(Refund.id == refund.id)
            .values(payment_intent_id="pi_unknown_to_stripe", created_at=utc_now() - timedelta(minutes=5))
        )
    webhooks_off(sandbox)
    other = paid_at_stripe(c, days=4)["b"]  # and a lost payment the same run must still repair
    admin = admin_client(api, c)
    r = admin.post("/api/Admin/reconcile", params={"since": since.isoformat()})  # the console's reconcile
    assert r.status_code == 200, r.text
    items = {(i["bookingId"], i["outcome"], i["kind"]) for i in r.json()["data"]["items"]}
    assert (x["b"]["id"], "refund_failed", "refund_failed") in items  # a finding a person looks at
    assert row(api, other["id"]).status == 1
    assert pay.refunds(api.state.db, x["b"]["id"])[0].status == "failed"
    assert run(api, "reconcile", since=since).items == []  # not sent again; nothing stops the next run


def test_with_stripe_down_reconcile_fails_loudly_and_is_counted(api, sandbox, since):
    errors_before = api.state.metrics.value("tutorbook_jobs_runs_total", job="reconcile", result="error")
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        with pytest.raises(gw.GatewayError):
            run(api, "reconcile", since=since)
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert api.state.metrics.value("tutorbook_jobs_runs_total", job="reconcile", result="error") == errors_before + 1


def test_with_webhooks_off_the_jobs_alone_bring_every_booking_to_its_right_state(api, c, sandbox, since):
    """The issue's "done when": no webhook at all; one round of the jobs; 0 mismatches after."""
    webhooks_off(sandbox)
    t = f.teacher(c)
    abandoned = booked(c, teacher=t, days=2)["b"]
    paid = paid_at_stripe(c, teacher=t, days=3)["b"]
    declined = booked(c, teacher=t, days=4)["b"]
    pay.pay(declined["checkoutUrl"], card=pay.DECLINED_CARD)
    late = booked(c, teacher=t, days=5)["b"]
    api.state.services.tx_sync(
        tasks.cancel_pending,
        booking_id=uuid.UUID(late["id"]),
        reason=Reason.CHECKOUT_EXPIRED,
        job="test",
        now=utc_now(),
    )
    pay.pay(late["checkoutUrl"])  # paid after the app gave up on it; the slot is still free
    ended = confirmed(c, teacher=t, days=6)["b"]
    set_columns(
        api,
        ended["id"],
        starts_at=utc_now() - timedelta(hours=2),
        ends_at=utc_now() - timedelta(hours=1),
    )

    jobs.run_all(api.state.services, now=later(), metrics=api.state.metrics)

    state = {
        k: (row(api, b["id"]).status, row(api, b["id"]).cancellation_reason)
        for k, b in dict(abandoned=abandoned, paid=paid, declined=declined, late=late, ended=ended).items()
    }
    assert state == {
        "abandoned": (3, "checkout_expired"),
        "paid": (1, None),
        "declined": (3, "checkout_expired"),
        "late": (1, None),
        "ended": (2, None),
    }
    assert row(api, paid["id"]).meeting_url and row(api, late["id"]).meeting_url
    for b in (abandoned, declined):
        assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "expired"
    assert report(api, since).mismatches == []
