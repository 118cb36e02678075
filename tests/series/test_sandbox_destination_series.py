"""A card series of a teacher WITH payouts against the real sandbox (issue #29): each later lesson is
charged off-session as a destination charge, like a lone booking's checkout: the whole price is
transferred to the teacher's connected account and the platform's fee is taken from it, so the
teacher keeps price - fee; the teacher's earnings list that lesson."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from tests import factories as f
from tests.connect.helpers import charge_of, onboard, stripe_get
from tests.jobs import helpers as h
from tests.series.test_sandbox_series import due
from tests.support import payments as pay
from tests.support.servers import http_get, wait_for
from tutorbook.series.models import Series


def test_a_later_lesson_of_a_teacher_with_payouts_is_a_destination_charge(api, c, sandbox):
    t, p = f.teacher(c, rate=3333), f.parent(c)
    payouts = onboard(t)
    account = payouts["accountId"]
    body = {
        "teacherId": t["user"]["id"],
        "studentId": p["students"][0],
        "subject": "Mathematics",
        "firstStartsAt": f.slot(days=5, hour=10),
        "durationMinutes": 60,
        "weeks": 3,
        "payWith": "card",
    }
    made = p["client"].post("/api/Series", json=body)
    assert made.status_code == 201, made.text
    series = made.json()["data"]
    weeks = {o["week"]: o for o in series["occurrences"]}
    assert pay.pay(series["checkoutUrl"]).status_code == 303  # week 1 on Checkout, the card saved
    first = p["client"].get(f"/api/Sessions/{weeks[1]['bookingId']}").json()["data"]
    confirmed = p["client"].post(f"/api/Sessions/confirm-payment/{first['stripeSessionId']}")
    assert confirmed.json()["data"]["status"] == 1

    assert h.run(api, "series", now=due(weeks[2]["startsAt"], api)).counts() == {"confirmed": 1}
    second = weeks[2]["bookingId"]
    row = wait_for(lambda: (r := pay.booking_row(api.state.db, second)).stripe_transfer_id and r, message="split")
    # 15 % of 3,333 = 499.95 -> 500 (half up), as for a lone booking.
    assert (row.payout_destination, row.platform_fee_amount) == (account, 500)
    intent = stripe_get(sandbox, f"/v1/payment_intents/{row.stripe_payment_intent_id}")
    assert (intent["status"], intent["customer"], intent["metadata"]["booking_id"]) == (
        "succeeded",
        series_customer(api, series["id"]),
        second,
    )
    assert intent["payment_method"] and intent["transfer_data"]["destination"] == account
    assert intent["application_fee_amount"] == 500
    charge = charge_of(sandbox, row.stripe_payment_intent_id)
    transfer, fee = charge["transfer"], charge["application_fee"]
    # Stripe's destination charge: the whole price to the teacher, the fee taken from it.
    assert (transfer["destination"], transfer["amount"]) == (account, 3333)
    assert transfer["source_transaction"] == charge["id"]
    assert (fee["account"], fee["amount"]) == (account, 500)
    teacher_side = http_get(
        f"{sandbox.base_url}/v1/balance_transactions",
        params={"source": transfer["destination_payment"]},
        headers={"Authorization": "Bearer sk_test_sandbox", "Stripe-Account": account},
        timeout=30,
    ).json()["data"]
    assert [(x["amount"], x["fee"], x["net"]) for x in teacher_side] == [(3333, 500, 2833)]
    assert (row.stripe_charge_id, row.stripe_transfer_id, row.stripe_application_fee_id) == (
        charge["id"],
        transfer["id"],
        fee["id"],
    )

    earned = t["client"].get("/api/Teachers/me/earnings").json()["data"]
    lessons = {s["bookingId"]: s for s in earned["sessions"]}
    # weeks 1 (its Checkout) and 2 (off-session); week 3 is not charged yet
    assert set(lessons) == {weeks[1]["bookingId"], second}
    lesson = lessons[second]
    assert (lesson["gross"], lesson["fee"], lesson["net"], lesson["refunded"]) == (3333, 500, 2833, 0)
    assert lesson["paidOut"] and lesson["settled"] and lesson["status"] == 1
    assert lessons[weeks[1]["bookingId"]]["net"] == 2833


def series_customer(api, series_id: str) -> str:
    with api.state.db.session_scope() as s:
        found = s.scalar(sa.select(Series.stripe_customer_id).where(Series.id == uuid.UUID(series_id)))
    assert found
    return found
