"""Packages and the wallet through the API, on both databases, against the sandbox: a teacher
sells a package, a parent buys it on the hosted checkout, books with credits (no Stripe call),
cancels early (credit back) and late (credit used), refunds the rest pro rata."""

from __future__ import annotations

from tests import factories as f
from tests.credits import helpers as h
from tests.support import payments as pay
from tests.support.servers import http_client, wait_for


def test_a_teacher_sells_packages_that_anyone_can_see_with_their_saving(api, c):
    t = f.teacher(c, rate=6000)
    pkg = h.package(t, lessons=5, duration=60, price=25000)
    assert (pkg["perLessonPrice"], pkg["singleLessonPrice"], pkg["saving"], pkg["savingPercent"]) == (
        5000,
        6000,
        5000,
        16,
    )
    assert pkg["currency"] == "usd"
    listed = c.get(f"/api/Teachers/{t['user']['id']}/packages").json()["data"]
    assert [p["id"] for p in listed] == [pkg["id"]]
    bad = t["client"].post(
        "/api/Teachers/me/packages", json={"lessons": 3, "durationMinutes": 60, "price": 9000, "validDays": 20}
    )
    assert bad.status_code == 422 and bad.json()["success"] is False
    r = t["client"].delete(f"/api/Teachers/me/packages/{pkg['id']}")
    assert r.status_code == 200
    assert c.get(f"/api/Teachers/{t['user']['id']}/packages").json()["data"] == []
    other = f.teacher(c)
    assert other["client"].delete(f"/api/Teachers/me/packages/{pkg['id']}").status_code == 404


def test_only_a_teacher_sells_and_only_a_parent_buys(api, c):
    t, p = f.teacher(c), f.parent(c)
    pkg = h.package(t)
    r = p["client"].post(
        "/api/Teachers/me/packages", json={"lessons": 3, "durationMinutes": 60, "price": 9000, "validDays": 30}
    )
    assert r.status_code == 403
    assert t["client"].post(f"/api/Packages/{pkg['id']}/buy").status_code == 403
    assert c.get("/api/Credits").status_code == 401


def test_buying_adds_the_credits_once_whether_webhook_or_success_page(api, c, sandbox):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    pkg = h.package(t, lessons=3, price=15000)
    bought = h.buy_and_pay(p, pkg)
    cs = pay.sandbox_session(sandbox, bought["stripeSessionId"])
    base = api.state.settings.public_url
    assert cs["success_url"] == f"{base}/payment/success?session_id={{CHECKOUT_SESSION_ID}}&type=package-purchase"
    assert "type=package-purchase" in cs["cancel_url"] and bought["purchaseId"] in cs["cancel_url"]
    assert cs["metadata"] == {"purchase_id": bought["purchaseId"], "type": "package-purchase"}
    # Both the webhook and the success page (called again) arrive: the credits come in once.
    wait_for(lambda: pay.sandbox_events(sandbox, "checkout.session.completed"), message="the webhook")
    p["client"].post(f"/api/Packages/confirm-payment/{bought['stripeSessionId']}")
    credits = h.credits(p)
    assert credits["total"] == 3
    [balance] = credits["balances"]
    assert (balance["teacherId"], balance["durationMinutes"], balance["lessons"]) == (t["user"]["id"], 60, 3)
    entries = h.ledger(p)["items"]
    assert [(e["kind"], e["lessons"], e["amount"]) for e in entries] == [("purchase", 3, 15000)]
    with api.state.db.session_scope() as s:
        from tutorbook.credits.models import CreditPurchase

        row = s.get(CreditPurchase, __import__("uuid").UUID(bought["purchaseId"]))
        assert row.transfer_group == f"purchase_{row.id.hex}" and row.stripe_charge_id.startswith("ch_")


def test_an_abandoned_purchase_leaves_nothing(api, c, sandbox):
    t, p = f.teacher(c), f.parent(c)
    pkg = h.package(t)
    bought = p["client"].post(f"/api/Packages/{pkg['id']}/buy").json()["data"]
    r = p["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/cancel")
    assert r.status_code == 200 and r.json()["data"]["state"] == "withdrawn"
    assert pay.sandbox_session(sandbox, bought["stripeSessionId"])["status"] == "expired"
    assert h.credits(p)["total"] == 0 and h.ledger(p)["items"] == []
    again = p["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/cancel")
    assert again.status_code == 200
    other = f.parent(c)
    assert other["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/cancel").status_code == 403


def test_booking_with_a_credit_confirms_at_once_without_stripe_and_409_without_one(api, c, sandbox):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    r = h.book_with_credit(p, t)
    assert r.status_code == 409 and "credit" in r.json()["message"].lower()
    pkg = h.package(t, lessons=2, price=10000)
    h.buy_and_pay(p, pkg)
    before = len(pay.sandbox_events(sandbox, "checkout.session.completed"))
    r = h.book_with_credit(p, t, days=3)
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert (b["status"], b["statusName"], b["checkoutUrl"], b["stripeSessionId"]) == (1, "Confirmed", None, None)
    assert b["meetingUrl"] and b["priceAmount"] == 5000 and b["paidAt"]
    assert len(pay.sandbox_events(sandbox, "checkout.session.completed")) == before  # no checkout made
    assert h.credits(p)["total"] == 1
    assert [e["kind"] for e in h.ledger(p)["items"]] == ["draw", "purchase"]
    assert h.ledger(p)["items"][0]["bookingId"] == b["id"]
    with api.state.db.session_scope() as s:
        from tutorbook.bookings.models import Booking

        row = s.get(Booking, __import__("uuid").UUID(b["id"]))
        assert (row.payment.kind, row.payment.state) == ("credit", "paid")


def test_cancelling_early_returns_the_credit_late_uses_it_and_the_teacher_always_returns_it(api, c):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=3, price=15000))
    early = h.book_with_credit(p, t, days=3).json()["data"]
    late = h.book_with_credit(p, t, starts_at=f.slot(days=0, hour=23, minute=55)).json()
    if not late["success"]:  # too close to midnight for a slot today: tomorrow, still inside 24 h
        late = h.book_with_credit(p, t, days=1, hour=0, minute=30).json()
    late = late["data"]
    by_teacher = h.book_with_credit(p, t, days=4).json()["data"]
    assert h.credits(p)["total"] == 0
    r = p["client"].post(f"/api/Sessions/{early['id']}/cancel")
    assert r.status_code == 200 and r.json()["data"]["refundedAmount"] == 0
    assert h.credits(p)["total"] == 1
    assert p["client"].post(f"/api/Sessions/{late['id']}/cancel").status_code == 200
    assert h.credits(p)["total"] == 1  # used up: the terms refund nothing this late
    assert t["client"].post(f"/api/Sessions/{by_teacher['id']}/cancel").status_code == 200
    assert h.credits(p)["total"] == 2
    kinds = [e["kind"] for e in h.ledger(p)["items"]]
    assert kinds.count("return") == 2 and kinds.count("draw") == 3


def test_a_credit_paid_lesson_can_be_moved(api, c):
    t, p = f.teacher(c), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=1, price=6000))
    b = h.book_with_credit(p, t, days=3).json()["data"]
    r = p["client"].post(f"/api/Sessions/{b['id']}/reschedule", json={"startsAt": f.slot(days=5)})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == 1 and h.credits(p)["total"] == 0


def test_refunding_unused_credit_refunds_lessons_left_times_the_per_lesson_price(api, c, sandbox):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    bought = h.buy_and_pay(p, h.package(t, lessons=3, price=15000))
    assert h.book_with_credit(p, t, days=3).status_code == 201
    teacher_try = t["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/refund")
    assert teacher_try.status_code == 403
    r = p["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/refund")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["refundedAmount"] == 10000
    assert h.credits(p)["total"] == 0
    [refund] = [e for e in h.ledger(p)["items"] if e["kind"] == "refund"]
    assert (refund["lessons"], refund["amount"], refund["refundStatus"]) == (-2, -10000, "succeeded")
    cs = pay.sandbox_session(sandbox, bought["stripeSessionId"])
    intent = pay.sandbox_get(sandbox, f"/v1/payment_intents/{cs['payment_intent']}")
    charge = pay.sandbox_get(sandbox, f"/v1/charges/{intent['latest_charge']}")
    assert charge["amount_refunded"] == 10000
    again = p["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/refund")
    assert again.status_code == 409
    money = sum(e["amount"] for e in h.ledger(p)["items"])
    assert money == charge["amount"] - charge["amount_refunded"]


def test_an_operator_sees_the_wallet_and_grants_or_removes_credit_with_a_reason(api, c, admin):
    t, p = f.teacher(c), f.parent(c)
    token = f.login(c, email=admin["email"])
    ops = http_client(base_url=str(c.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=30)
    url = f"/api/Admin/families/{p['user']['id']}/credits"
    body = {"teacherId": t["user"]["id"], "durationMinutes": 60, "lessons": 2, "reason": "goodwill"}
    assert p["client"].post(url, json=body).status_code == 403
    r = ops.post(url, json=body)
    assert r.status_code == 201, r.text
    assert h.credits(p)["total"] == 2
    r = ops.post(url, json={**body, "lessons": -3})
    assert r.status_code == 409
    assert ops.post(url, json={**body, "lessons": -1, "reason": " "}).status_code == 422
    assert ops.post(url, json={**body, "lessons": -1}).status_code == 201
    wallet = ops.get(url).json()["data"]
    assert wallet["credits"]["total"] == 1
    assert [(e["kind"], e["lessons"], e["actor"], e["reason"]) for e in wallet["ledger"]] == [
        ("adjust", -1, f"user:{admin['id']}", "goodwill"),
        ("adjust", 2, f"user:{admin['id']}", "goodwill"),
    ]
    ops.close()


def test_the_ledger_pages_by_cursor_newest_first(api, c, admin):
    t, p = f.teacher(c), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=5, price=20000))
    for days in (3, 4, 5):
        assert h.book_with_credit(p, t, days=days).status_code == 201
    first = h.ledger(p, pageSize=2)
    assert len(first["items"]) == 2 and first["nextCursor"]
    second = h.ledger(p, pageSize=2, after=first["nextCursor"])
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4 and second["nextCursor"] is None
    assert p["client"].get("/api/Credits/ledger", params={"after": "nope"}).status_code == 422
